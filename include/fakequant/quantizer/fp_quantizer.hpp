// SPDX-License-Identifier: MIT
// fakequant/quantizer/fp_quantizer.hpp: FpFakeQuantizer, fake quantization to a small
// floating-point element format (FP8 E4M3 / E5M2, FP6 E2M3 / E3M2, FP4 E2M1) with a float
// scale per tensor or per channel — the FP8 training recipes (TorchAO Float8FakeQuantizer).
//
//   fq::Fp8E4M3PerTensor q;                    // dynamic ("current scaling") by default
//   q.forward(x, y, &mask);                    // s = max(amax(x), 1e-12) / 448, y = Q(x)
//   q.backward(dy, mask, dx);                  // dx = dy * mask (STE)
//   q.freeze();                                // keep the last scale from now on
//
// Forward:  v = x / s;  y = round_to_format<F, O>(v) * s    (round to nearest even on F's
//           grid, subnormals included; FpSaturate: beyond +-max gives +-max, +-Inf too;
//           NaN gives NaN). Formulas: kernels/fp_fake_quantize.hpp.
// Scale:    dynamic (default): recomputed from x at every forward, s = max(amax, 1e-12) /
//           F::kMax per tensor or per channel (TorchAO's _choose_scale_float8, with
//           torchao.float8's amax floor 1e-12: TorchAO's QAT quantizer has no floor and gives
//           NaN for an all-zero tensor), kept and readable with scale(); NaN/Inf in x is
//           refused (ErrorCode::kNonFiniteInput) and the scales stay as they were.
//           Frozen: set_scale / set_scales (validated: finite, > 0) or freeze() (keeps the
//           last forward's scales); unfreeze() goes back to dynamic.
// Gradient: the straight-through estimator dx = dy * mask, s a constant. Frozen: mask =
//           [|x / s| <= F::kMax]. Dynamic: mask = 1 everywhere — every x lies within
//           [-amax, amax], the range s maps onto [-max, max]; x / s can exceed max by an ulp
//           through the rounding of s = amax / max (for ~8% of amax values), and that artifact
//           must not cut the largest element's gradient. TorchAO differentiates through its
//           dynamic scale (amax is in its autograd graph): that gives back dy to an amax
//           element its clamp cut (as here), and adds the scale's own gradient
//           sum_j dy_j (q_j - x_j / s) * sign(x_k) / max to the amax element x_k, which fq
//           leaves out (s is a constant, as in fq's other dynamic quantizers).
// PerChannel<Axis>: one scale per index along Axis. Fp8E4M3PerChannel (axis 0) on a [N, K]
// weight is TorchAO's PerRow; for activations of rank > 2 TorchAO's PerRow is one scale per
// row of the last axis (per token), which is not a single channel axis.
// A frozen per-channel quantizer takes any x with its channel count on Axis (else
// kShapeMismatch); a per-tensor one takes any shape. forward/backward are member templates on
// Arch (simd/arch.hpp).
#ifndef FQ_QUANTIZER_FP_QUANTIZER_HPP_
#define FQ_QUANTIZER_FP_QUANTIZER_HPP_

#include <cstdint>  // int64_t
#include <vector>   // vector

#include <fakequant/base/error.hpp>
#include <fakequant/base/state.hpp>
#include <fakequant/core/checks.hpp>
#include <fakequant/core/mask.hpp>
#include <fakequant/core/run_plan.hpp>
#include <fakequant/core/tensor_view.hpp>
#include <fakequant/format/minifloat.hpp>
#include <fakequant/kernels/fake_quantize.hpp>
#include <fakequant/kernels/fp_fake_quantize.hpp>
#include <fakequant/policy/clamp_grad.hpp>
#include <fakequant/policy/fp_overflow.hpp>
#include <fakequant/policy/granularity.hpp>
#include <fakequant/simd/arch.hpp>

namespace fq {

/// Fake quantization to format F with a per-tensor or per-channel float scale, dynamic
/// (current scaling) or frozen (see the file comment).
template <class F, class Granularity = PerTensor, class O = FpSaturate>
class FpFakeQuantizer {
  static_assert(is_float_format<F>::value,
                "FpFakeQuantizer: F must be an fq::FloatFormat (fq::FloatE4M3, FloatE5M2, "
                "FloatE2M3, FloatE3M2, FloatE2M1).");
  static_assert(is_granularity<Granularity>::value && !Granularity::kPerGroup,
                "FpFakeQuantizer: Granularity must be fq::PerTensor or fq::PerChannel<Axis> "
                "(block formats: the MX / NVFP4 quantizers).");
  static_assert(is_fp_overflow<O>::value,
                "FpFakeQuantizer: O must be fq::FpSaturate or fq::FpNoSaturate.");
  static_assert(O::kSaturate || F::kHasNaN,
                "FpFakeQuantizer: a format without Inf and NaN (FP6, FP4) can only saturate "
                "(fq::FpSaturate).");

 public:
  using format = F;
  using granularity = Granularity;
  using overflow = O;
  static constexpr bool kPerChannel = Granularity::kPerChannel;
  static constexpr int kAxis = Granularity::kAxis;
  static constexpr bool kRoundsToNearest = true;

  /// Per tensor; or per channel with the channel count taken from the first forward (or
  /// set_channel_count).
  FpFakeQuantizer() : channels_(kPerChannel ? 0 : 1) {}
  /// Per channel with `channels` channels (>= 1); per tensor only 1.
  explicit FpFakeQuantizer(std::int64_t channels) : channels_(channels) {
    FQ_CHECK(channels >= 1, ErrorCode::kInvalidArgument,
             detail::msg("FpFakeQuantizer: the channel count must be >= 1, got ", channels));
    FQ_CHECK(kPerChannel || channels == 1, ErrorCode::kInvalidArgument,
             "FpFakeQuantizer: a PerTensor quantizer has exactly one channel");
  }

  /// Number of scales: 1 per tensor; per channel 0 until known.
  std::int64_t channels() const noexcept { return channels_; }
  /// The scales in use: the last forward's (dynamic) or the frozen ones; empty before any.
  const std::vector<float>& scale() const noexcept { return scale_; }
  bool dynamic() const noexcept { return dynamic_; }
  bool has_scale() const noexcept { return !scale_.empty(); }

  /// Sizes a per-channel quantizer (the QAT layers call it with the weight's extent); a
  /// frozen one must keep its count (kShapeMismatch).
  void set_channel_count(std::int64_t channels) {
    constexpr const char* kWhere = "FpFakeQuantizer::set_channel_count";
    FQ_CHECK(channels >= 1, ErrorCode::kInvalidArgument,
             detail::msg(kWhere, ": the channel count must be >= 1, got ", channels));
    FQ_CHECK(kPerChannel || channels == 1, ErrorCode::kInvalidArgument,
             detail::msg(kWhere, ": a PerTensor quantizer has exactly one channel"));
    if (channels == channels_) return;
    FQ_CHECK(dynamic_, ErrorCode::kShapeMismatch,
             detail::msg(kWhere, ": the quantizer is frozen with ", channels_,
                         " scales; unfreeze() it before changing the channel count to ", channels));
    channels_ = channels;
    scale_.clear();
  }

  /// Freezes a per-tensor scale (finite, > 0).
  void set_scale(float s) { set_scales(&s, 1); }
  /// Freezes `count` scales (one per channel; finite, > 0). An unsized per-channel quantizer
  /// takes count as its channel count.
  void set_scales(const float* s, std::int64_t count) {
    constexpr const char* kWhere = "FpFakeQuantizer::set_scales";
    const std::int64_t want = channels_ > 0 ? channels_ : count;
    FQ_CHECK(count == want && count >= 1, ErrorCode::kParamCountMismatch,
             detail::msg(kWhere, ": ", count, " scales for ", want, " channels"));
    FQ_CHECK(s != nullptr, ErrorCode::kInvalidArgument, detail::msg(kWhere, ": null scales"));
    for (std::int64_t c = 0; c < count; ++c) detail::check_fp_scale(s[c], kWhere, c);
    scale_.assign(s, s + count);
    channels_ = count;
    dynamic_ = false;
  }
  void set_scales(const std::vector<float>& s) {
    set_scales(s.data(), static_cast<std::int64_t>(s.size()));
  }
  /// Keeps the last forward's scales from now on (kInvalidState if there are none).
  void freeze() {
    FQ_CHECK(has_scale(), ErrorCode::kInvalidState,
             "FpFakeQuantizer::freeze: no scale yet; run a forward or call set_scale(s)");
    dynamic_ = false;
  }
  /// Back to current scaling: the next forward recomputes the scales from x.
  void unfreeze() noexcept { dynamic_ = true; }

  /// The checkpoint state (base/state.hpp): the mode, the channel count and the scales of the
  /// last forward or the frozen ones.
  template <class V>
  void visit_state(V& v) {
    v.kind("fp_fake_quantizer");
    v.config("per_channel", kPerChannel);
    v.config("format_bits", F::kBits);
    v.config("format_exp_bits", F::kExpBits);
    v.state("dynamic", dynamic_);
    v.state("channels", channels_, kPerChannel ? state_in(0.0, 2147483647.0) : state_in(1.0, 1.0));
    v.state_vector("scale", scale_, state_scale(), StateSize{});
  }

  /// y = round_to_format<F, O>(x / s) * s, s dynamic or frozen; the STE mask goes to `mask`
  /// if not null. x contiguous row-major; y of x's shape, may be x.
  template <class Arch = DefaultArch>
  void forward(TensorView<const float> x, TensorView<float> y, Mask* mask = nullptr,
               Isa path = Isa::kAuto) {
    constexpr const char* kWhere = "FpFakeQuantizer::forward";
    if constexpr (kPerChannel) {
      const int ax = detail::normalize_axis(kAxis, x.rank(), kWhere);
      const std::int64_t c = x.size(ax);
      if (channels_ > 0 || !dynamic_)
        FQ_CHECK(c == channels_, ErrorCode::kShapeMismatch,
                 detail::msg(kWhere, ": x has ", c, " channels on axis ", kAxis, " (shape ",
                             detail::shape_str(x), "), the quantizer ", channels_,
                             dynamic_ ? "" : " (frozen)"));
      if (!dynamic_) check_frozen_count(kWhere);
      if (dynamic_) {
        detail::check_contiguous_io(x, y, kWhere);
        std::vector<float> s(static_cast<std::size_t>(c));  // scale_ changes only on success
        fp_dynamic_scales_per_channel<F, Arch>(x, s.data(), c, kAxis, path);
        scale_.swap(s);
        channels_ = c;
      }
      fp_fake_quantize_per_channel<F, O, Arch>(x, y, dynamic_ ? nullptr : mask, scale_.data(),
                                               channels_, kAxis, path);
    } else {
      if (dynamic_) {
        detail::check_contiguous_io(x, y, kWhere);
        const float s = fp_dynamic_scale_per_tensor<F, Arch>(x, path);
        scale_.assign(1, s);
      }
      if (!dynamic_) check_frozen_count(kWhere);
      fp_fake_quantize_per_tensor<F, O, Arch>(x, y, dynamic_ ? nullptr : mask, scale_[0], path);
    }
    if (dynamic_ && mask) {  // every element is in range (file comment)
      mask->prepare(x.rank(), x.shape(), detail::row_major_order());
      mask->set_all();
    }
  }

  /// dx = dy * mask (masked STE). dx may be dy.
  template <class Arch = DefaultArch>
  void backward(TensorView<const float> dy, const Mask& mask, TensorView<float> dx,
                Isa path = Isa::kAuto) const {
    fake_quantize_backward<MaskedSte, Arch>(dy, mask, dx, path);
  }

 private:
  // A frozen quantizer holds one scale per channel (set_scales and freeze keep it so; checked
  // here for state restored from a checkpoint).
  void check_frozen_count(const char* where) const {
    FQ_CHECK(
        static_cast<std::int64_t>(scale_.size()) == channels_ && channels_ >= 1,
        ErrorCode::kParamCountMismatch,
        detail::msg(where, ": ", scale_.size(), " frozen scales for ", channels_, " channels"));
  }

  std::vector<float> scale_;
  std::int64_t channels_;
  bool dynamic_ = true;
};

/// FP8 E4M3 ("fn", max 448), one current-scaling scale per tensor: TorchAO's
/// Float8FakeQuantizeConfig(torch.float8_e4m3fn, PerTensor()).
using Fp8E4M3PerTensor = FpFakeQuantizer<FloatE4M3, PerTensor>;
/// FP8 E5M2 (max 57344), per tensor: the gradient format of the HYBRID recipe.
using Fp8E5M2PerTensor = FpFakeQuantizer<FloatE5M2, PerTensor>;
/// FP8 E4M3, one scale per output row of a [N, K] weight: TorchAO's PerRow for weights.
using Fp8E4M3PerChannel = FpFakeQuantizer<FloatE4M3, PerChannel<0>>;
/// OCP MX FP6 E2M3 (max 7.5) with a per-tensor float scale.
using Fp6E2M3PerTensor = FpFakeQuantizer<FloatE2M3, PerTensor>;
/// OCP MX FP6 E3M2 (max 28) with a per-tensor float scale.
using Fp6E3M2PerTensor = FpFakeQuantizer<FloatE3M2, PerTensor>;
/// OCP MX FP4 E2M1 (max 6) with a per-tensor float scale.
using Fp4E2M1PerTensor = FpFakeQuantizer<FloatE2M1, PerTensor>;

}  // namespace fq

#endif  // FQ_QUANTIZER_FP_QUANTIZER_HPP_
