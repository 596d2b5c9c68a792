// SPDX-License-Identifier: MIT
// fakequant/learnable/lsq.hpp: LSQ / LSQ+ — fake quantization with a learned scale and zero
// point: the LsqScheme configuration and the LsqQuantizer that owns the parameters (the
// fused functions lsq_per_tensor / lsq_per_channel it calls: learnable/lsq_fused.hpp).
//
// Forward    y  = (clamp(rne(x * f32(1/s)) + zf, qmin, qmax) - zf) * s
// Backward   dx = dy * [not clipped]
//            d s = g * sum(dy * ds-term),  d z = g * sum(dy * (clipped ? -s : 0))
// (lsq_fused.hpp and lsq_numerics.hpp for the zero points, clipping and rounding), then
// chained through the restriction and the scale parametrization into the raw parameters.
// forward/forward_backward are member templates on Arch (fq::DefaultArch; simd/arch.hpp).
// The quantizer protocol (quantizer/concept.hpp), for ops::fake_quant and the testing kit:
// forward(x, y, mask) is forward(x, y) that also writes the in-range bits (the fake-quant
// mask); backward(x, dy, mask, dx) runs the fused pass with a scratch y, writes dx and ADDS
// the parameter gradients to scale_grad()/zero_point_grad() (so nodes sharing the quantizer
// sum up; the optimizer's zero_grad clears them); visit_parameters(f) reports
// ("lsq.scale", scale_param, scale_grad) and, if learned, ("lsq.zero_point", ...).
//
//   fq::LsqQuantizer<fq::LsqScheme<>> q(fq::QuantRange{0, 255});  // PyTorch defaults
//   q.set_scale(0.1f); q.set_zero_point(3.0f);
//   q.forward(x, y);                        // inference / forward only
//   q.forward_backward(x, dy, y, dx);       // y, dx; q.scale_grad(), q.zero_point_grad()
//   fq::ops::fake_quant(tape, xv, q);      // on a tape; optimizer on fq::optim::parameters_of(q)
#ifndef FQ_LEARNABLE_LSQ_HPP_
#define FQ_LEARNABLE_LSQ_HPP_

#include <cmath>    // isfinite
#include <cstddef>  // size_t
#include <cstdint>  // int32_t, int64_t
#include <utility>  // forward
#include <vector>   // vector

#include <fakequant/base/state.hpp>
#include <fakequant/core/checks.hpp>
#include <fakequant/core/mask.hpp>
#include <fakequant/core/tensor_view.hpp>
#include <fakequant/kernels/fake_quantize.hpp>
#include <fakequant/learnable/grad_scale.hpp>
#include <fakequant/learnable/lsq_fused.hpp>
#include <fakequant/learnable/lsq_numerics.hpp>
#include <fakequant/learnable/pact.hpp>
#include <fakequant/learnable/scale_param.hpp>
#include <fakequant/observer/scale_restriction.hpp>
#include <fakequant/policy/granularity.hpp>
#include <fakequant/simd/arch.hpp>

namespace fq {

/// A fixed-size view of a quantizer's parameter array: its elements are read and written
/// (by the user, the observer, an optimizer), but the array cannot be resized — the storage
/// is sized at construction and never moves, so pointers handed to an optimizer stay valid.
class ParamSpan {
 public:
  ParamSpan(float* data, std::size_t size) noexcept : data_(data), size_(size) {}
  float* data() const noexcept { return data_; }
  std::size_t size() const noexcept { return size_; }
  float& operator[](std::size_t i) const noexcept { return data_[i]; }
  float* begin() const noexcept { return data_; }
  float* end() const noexcept { return data_ + size_; }

 private:
  float* data_;
  std::size_t size_;
};

/// The compile-time configuration of an LsqQuantizer.
/// @tparam Numerics LsqTorch (default) | LsqTorchNoFma | LsqPaper.
/// @tparam GradScale TorchGradScale (default) | LsqPaperGradScale | NoGradScale.
/// @tparam ScaleParam LinearScale<> (default, floor 2^-23) | Log2Scale.
/// @tparam Restriction NoScaleRestriction (default) | PowerOfTwoRound | PowerOfTwoCeil.
/// @tparam Granularity PerTensor (default) | PerChannel<Axis> | PerGroup<G, Axis, Tail> (the last
/// for fq::LsqGroupQuantizer, learnable/lsq_group.hpp).
template <class Numerics = LsqTorch, class GradScale = TorchGradScale,
          class ScaleParam = LinearScale<>, class Restriction = NoScaleRestriction,
          class Granularity = PerTensor>
struct LsqScheme {
  static_assert(is_lsq_numerics<Numerics>::value,
                "LsqScheme: Numerics must be LsqTorch, LsqTorchNoFma or LsqPaper.");
  static_assert(is_grad_scale<GradScale>::value,
                "LsqScheme: GradScale must be TorchGradScale, LsqPaperGradScale or NoGradScale.");
  static_assert(is_scale_param<ScaleParam>::value,
                "LsqScheme: ScaleParam must be LinearScale<FloorExp> or Log2Scale.");
  static_assert(is_scale_restriction<Restriction>::value,
                "LsqScheme: Restriction must be NoScaleRestriction, PowerOfTwoRound or "
                "PowerOfTwoCeil.");
  static_assert(is_granularity<Granularity>::value,
                "LsqScheme: Granularity must be fq::PerTensor, fq::PerChannel<Axis> or "
                "fq::PerGroup<G, Axis, Tail> (fq::LsqGroupQuantizer).");
  using numerics = Numerics;
  using grad_scale = GradScale;
  using scale_param = ScaleParam;
  using restriction = Restriction;
  using granularity = Granularity;
};

/// PyTorch's _LearnableFakeQuantize numerics with its grad scaling (use_grad_scaling=True).
using TorchLsq = LsqScheme<>;
/// The LSQ paper: clip before rounding, 1/sqrt(N Qp) per channel, log2-domain scale.
using PaperLsq = LsqScheme<LsqPaper, LsqPaperGradScale, Log2Scale>;

/// Learned scale(s) and zero point(s) with their gradients. The parameters are stored in the
/// domain of Scheme::scale_param (the scale itself, or its log2) and as float zero points;
/// forward_backward() overwrites the gradients w.r.t. those parameters (chain rule through
/// the parametrization and the restriction included), ready for the user's optimizer. The
/// arrays are sized at construction (the channel count) and never reallocated: an optimizer
/// may keep pointers into scale_param() and zero_point() for the quantizer's lifetime.
template <class Scheme>
class LsqQuantizer {
  static_assert(!Scheme::granularity::kPerGroup,
                "LsqQuantizer: a PerGroup scheme needs fq::LsqGroupQuantizer "
                "(learnable/lsq_group.hpp).");

 public:
  using scheme = Scheme;
  using M = typename Scheme::numerics;
  using SP = typename Scheme::scale_param;
  using R = typename Scheme::restriction;
  static constexpr bool kPerChannel = Scheme::granularity::kPerChannel;
  static constexpr int kAxis = Scheme::granularity::kAxis;

  /// @param range [quant_min, quant_max]. @param channels 1 per tensor; the extent of the
  /// axis per channel. @param learn_zero_point false: the zero point stays fixed (symmetric
  /// schemes) and its gradient is 0. Initial scale 1, zero point 0.
  explicit LsqQuantizer(QuantRange range, std::int64_t channels = 1, bool learn_zero_point = true)
      : range_(range), learn_zero_point_(learn_zero_point) {
    detail::check_lsq_range(range_, "LsqQuantizer");
    FQ_CHECK(channels >= 1, ErrorCode::kInvalidArgument,
             detail::msg("LsqQuantizer: channel count must be >= 1, got ", channels));
    FQ_CHECK(kPerChannel || channels == 1, ErrorCode::kInvalidArgument,
             "LsqQuantizer: a PerTensor scheme has exactly one channel");
    const auto n = static_cast<std::size_t>(channels);
    scale_param_.assign(n, SP::from_scale(1.0f));
    zero_point_.assign(n, 0.0f);
    scale_grad_.assign(n, 0.0f);
    zero_point_grad_.assign(n, 0.0f);
  }

  std::int64_t channels() const noexcept { return static_cast<std::int64_t>(scale_param_.size()); }
  const QuantRange& range() const noexcept { return range_; }

  /// Sets every channel's scale (> 0, finite) and zero point.
  void set_scale(float s) {
    detail::check_scale(s, "LsqQuantizer::set_scale");
    for (auto& p : scale_param_) p = SP::from_scale(s);
    has_qparams_ = true;
  }
  void set_zero_point(float z) {
    detail::check_lsq_zero_point(z, "LsqQuantizer::set_zero_point");
    for (auto& v : zero_point_) v = z;
  }
  /// Sets each channel's scale (> 0, finite; a tiny one is floored by the parametrization, as
  /// an observed tensor of tiny values gives) and zero point (finite; `zero_point` may be null
  /// for "unchanged"); `count` must equal channels() (kParamCountMismatch). Validated first:
  /// nothing changes on an error.
  void set_qparams(const float* scale, const float* zero_point, std::int64_t count) {
    constexpr const char* kWhere = "LsqQuantizer::set_qparams";
    FQ_CHECK(count == channels(), ErrorCode::kParamCountMismatch,
             detail::msg(kWhere, ": ", count, " pairs for ", channels(), " channels"));
    for (std::int64_t c = 0; c < count; ++c) {
      FQ_CHECK(std::isfinite(scale[c]) && scale[c] > 0.0f, ErrorCode::kInvalidScale,
               detail::msg(kWhere, ": scale must be finite and > 0, got ", scale[c]));
      if (zero_point != nullptr) detail::check_lsq_zero_point(zero_point[c], kWhere);
    }
    for (std::size_t c = 0; c < scale_param_.size(); ++c) {
      scale_param_[c] = SP::from_scale(scale[c]);
      if (zero_point != nullptr) zero_point_[c] = zero_point[c];
    }
    has_qparams_ = true;
  }
  /// True once the scale stands for data, not the placeholder 1 of construction: after
  /// set_scale or set_qparams (an observer's initialisation calls it), or a training pass
  /// (forward_backward, backward). Writing scale_param() directly does not count: convert
  /// refuses an LSQ quantizer without qparams (int8/params.hpp), so set them through this API.
  bool has_qparams() const noexcept { return has_qparams_; }
  /// The raw parameters (the optimizer updates these; fixed size, see the class comment) and
  /// their last gradients.
  ParamSpan scale_param() noexcept { return {scale_param_.data(), scale_param_.size()}; }
  ParamSpan zero_point() noexcept { return {zero_point_.data(), zero_point_.size()}; }
  const std::vector<float>& scale_param() const noexcept { return scale_param_; }
  const std::vector<float>& zero_point() const noexcept { return zero_point_; }
  const std::vector<float>& scale_grad() const noexcept { return scale_grad_; }
  const std::vector<float>& zero_point_grad() const noexcept { return zero_point_grad_; }

  /// The effective scale of channel c: Restriction(ScaleParam(p)), always > 0.
  float scale(std::int64_t c = 0) const {
    check_channel(c);
    return R::apply(SP::to_scale(scale_param_[static_cast<std::size_t>(c)], "LsqQuantizer"));
  }
  /// The integer zero point the forward uses (clamp(rne(z))); a NaN or infinite learned zero
  /// point is kInvalidZeroPoint ("zero point is NaN").
  float forward_zero_point(std::int64_t c = 0) const {
    const float s = scale(c);
    const float z = zero_point_[static_cast<std::size_t>(c)];
    detail::check_lsq_zero_point(z, "LsqQuantizer");
    return detail::make_lsq_params<M>(s, z, range_, kPerChannel).zf;
  }

  /// Forward only: y = fake_quantize(x) with the effective scales and forward zero points.
  template <class Arch = DefaultArch, class X, class Y>
  void forward(X&& x, Y&& y, Isa path = Isa::kAuto) const {
    forward_masked<Arch>(std::forward<X>(x), std::forward<Y>(y), nullptr, path);
  }

  /// The protocol's forward: forward(x, y) and, if mask is not null, the in-range bits.
  template <class Arch = DefaultArch>
  void forward(TensorView<const float> x, TensorView<float> y, Mask* mask) const {
    forward_masked<Arch>(x, y, mask, Isa::kAuto);
  }

  /// The protocol's backward (file comment): dx = the fused pass's dx; the parameter
  /// gradients are ADDED to scale_grad() and zero_point_grad(). The mask is not needed (the
  /// fused pass recomputes the clipping from x).
  template <class Arch = DefaultArch>
  void backward(TensorView<const float> x, TensorView<const float> dy, const Mask& /*mask*/,
                TensorView<float> dx) {
    const std::vector<float> prev_s = scale_grad_, prev_z = zero_point_grad_;
    std::vector<float> y;
    forward_backward<Arch>(x, dy, detail::scratch_like(x, y), dx);
    for (std::size_t c = 0; c < scale_grad_.size(); ++c) {
      scale_grad_[c] = prev_s[c] + scale_grad_[c];
      zero_point_grad_[c] = prev_z[c] + zero_point_grad_[c];
    }
  }

  /// The learnable parameters (file comment): f(name, value, grad) per raw parameter array.
  template <class F>
  void visit_parameters(F&& f) {
    const auto n = static_cast<std::int64_t>(scale_param_.size());
    f("lsq.scale", TensorView<float>::vector(scale_param_.data(), n),
      TensorView<float>::vector(scale_grad_.data(), n));
    if (learn_zero_point_)
      f("lsq.zero_point", TensorView<float>::vector(zero_point_.data(), n),
        TensorView<float>::vector(zero_point_grad_.data(), n));
  }

 private:
  template <class Arch, class X, class Y>
  void forward_masked(X&& x, Y&& y, Mask* mask, Isa path) const {
    using N = typename M::forward_numerics;
    const std::size_t n = scale_param_.size();
    std::vector<float> s(n);
    std::vector<std::int32_t> z(n);
    for (std::size_t c = 0; c < n; ++c) {
      s[c] = scale(static_cast<std::int64_t>(c));
      z[c] = static_cast<std::int32_t>(forward_zero_point(static_cast<std::int64_t>(c)));
    }
    if constexpr (kPerChannel)
      fake_quantize_per_channel<N, Arch>(std::forward<X>(x), std::forward<Y>(y), mask, s.data(),
                                         z.data(), channels(), kAxis, range_, path);
    else
      fake_quantize_per_tensor<N, Arch>(std::forward<X>(x), std::forward<Y>(y), mask, s[0], z[0],
                                        range_, path);
  }

 public:
  /// Fused forward+backward: writes y and dx and overwrites scale_grad() and
  /// zero_point_grad() (w.r.t. the raw parameters).
  template <class Arch = DefaultArch, class X, class DY, class Y, class DX>
  void forward_backward(X&& x, DY&& dy, Y&& y, DX&& dx, Isa path = Isa::kAuto) {
    const TensorView<const float> xv = detail::as_view(std::forward<X>(x));
    const std::size_t n = scale_param_.size();
    std::vector<float> s_dom(n), s(n);
    for (std::size_t c = 0; c < n; ++c) {
      s_dom[c] = SP::to_scale(scale_param_[c], "LsqQuantizer");
      s[c] = R::apply(s_dom[c]);
    }
    const std::int64_t numel = xv.numel();
    const std::int64_t per_channel = numel / channels();
    const float g = Scheme::grad_scale::factor(numel, per_channel, range_);
    if constexpr (kPerChannel) {
      lsq_per_channel<M, Arch>(xv, std::forward<DY>(dy), std::forward<Y>(y), std::forward<DX>(dx),
                               s.data(), zero_point_.data(), channels(), kAxis, range_, g,
                               scale_grad_.data(), zero_point_grad_.data(), path);
    } else {
      const LsqGrad gr =
          lsq_per_tensor<M, Arch>(xv, std::forward<DY>(dy), std::forward<Y>(y),
                                  std::forward<DX>(dx), s[0], zero_point_[0], range_, g, path);
      scale_grad_[0] = gr.scale;
      zero_point_grad_[0] = gr.zero_point;
    }
    for (std::size_t c = 0; c < n; ++c) {
      scale_grad_[c] *= R::grad(s_dom[c], s[c]) * SP::grad(scale_param_[c], s_dom[c]);
      if (!learn_zero_point_) zero_point_grad_[c] = 0.0f;
    }
    has_qparams_ = true;  // trained on data: the scale is learned, whatever it started from
  }

  /// The checkpoint state (base/state.hpp): the raw parameters (their count is the channel
  /// count, fixed); range and learn_zero_point must match. The gradients are not state (the
  /// next backward overwrites them).
  template <class V>
  void visit_state(V& v) {
    v.kind("lsq_quantizer");
    v.config("quant_min", range_.quant_min);
    v.config("quant_max", range_.quant_max);
    v.config("learn_zero_point", learn_zero_point_);
    v.state_span("scale_param", scale_param_.data(), scale_param_.size(), state_finite());
    v.state_span("zero_point", zero_point_.data(), zero_point_.size(), state_finite());
    v.state("has_qparams", has_qparams_);
  }

 private:
  void check_channel(std::int64_t c) const {
    FQ_CHECK(c >= 0 && c < channels(), ErrorCode::kInvalidArgument,
             detail::msg("LsqQuantizer: channel ", c, " is outside [0, ", channels(), ")"));
  }

  QuantRange range_;
  bool learn_zero_point_;
  bool has_qparams_ = false;
  std::vector<float> scale_param_;
  std::vector<float> zero_point_;
  std::vector<float> scale_grad_;
  std::vector<float> zero_point_grad_;
};

}  // namespace fq

#endif  // FQ_LEARNABLE_LSQ_HPP_
