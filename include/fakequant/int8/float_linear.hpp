// SPDX-License-Identifier: MIT
// fakequant/int8/float_linear.hpp: Int8FloatLinear, the integer linear layer of a transformer —
// float [m, in] -> float [m, out], with the input quantized inside the layer (the transformer
// convention: a QAT layer fake-quantizes its input, fq::QLinear's input quantizer slot, instead
// of the CNN convention of uint8 activations flowing between layers, fq::Int8Linear).
//
// Built from the QAT layer's quantizers (from_quantizers): the INPUT quantizer is either
//   static per tensor   fq::FakeQuantize / fq::FakeQuantizer (calibrated): scale s_x, zero point
//                       z_x and range; a signed range [-128, 127] runs as uint8 levels + 128 with
//                       zero point z_x + 128 (act_qparams, int8/params.hpp: the same real values)
//   dynamic per token   fq::GroupFakeQuantizer with a PerToken scheme (Int8ActPerTokenDynamic,
//                       ...Legacy, Int8ActPerTokenSymmetricDynamic, or any PerToken range within
//                       8 bits, e.g. Int4ActPerTokenDynamic; dynamic, not frozen): the
//                       scale s_x[i] and zero point z_x[i] of every row from that row, by the
//                       very function the fake quantizer uses (choose_group_qparams:
//                       TorchAO's rule, with the quantizer's rule())
// and the WEIGHT quantizer is per-output-channel symmetric (PerChannel<0>, range within int8:
// int8, int4, ...), calibrated: levels q_w = quantize(w, s_w) and scales s_w[o], as convert
// makes them (make_int8_params, int8/params.hpp).
// Forward, row i of x (rows in chunks of at most 2^20 accumulators, so the scratch stays
// bounded; rows are independent, so chunks change nothing):
//   x_q[i, k] = clamp(rne(x[i, k] · f32(1/s_x[i])) + z_x[i], qmin, qmax)   (+128 if signed)
//               — TorchNumerics, the levels the fake quantizer rounds to, bit for bit
//   acc[i, o] = Σ_k (x_q[i, k] − z_x[i]) · q_w[o, k]          (int32, exact: K <= kMaxGemmK)
//             = gemm_u8s8s32(x_q, zero point 0) − z_x[i] · Σ_k q_w[o, k]
//   y[i, o]   = fma(f32(s_x[i] · s_w[o]), f32(acc[i, o]), b[o])     (b = 0 without a bias)
// (for a static quantizer exactly Int8Linear's float output; f32(acc) is exact for |acc| <=
// 2^24). So y equals the float linear layer on the fake-quantized input and weights,
// fq(x) · fq(w)ᵀ + b, up to float rounding (about 1e-7 of Σ |fq(x) · fq(w)| + |b|).
// Non-finite input follows the fake quantizer: static — NaN / ±Inf get the level it gives them
// (TorchNumerics: quant_min), so y stays finite, as the fake-quant model's; per token — a row
// holding a NaN or an infinity, or whose max − min overflows float, has a non-finite scale and
// its fake-quantized row is NaN, so every y of that row is a quiet NaN (the other rows are
// unaffected). No exception: the fake-quant model does not raise either.
// forward is const but not reentrant (scratch buffers reused, as Int8Linear): one layer object
// per thread. Errors: see from_quantizers and forward.
#ifndef FQ_INT8_FLOAT_LINEAR_HPP_
#define FQ_INT8_FLOAT_LINEAR_HPP_

#include <algorithm>    // fill, max, min
#include <cmath>        // fma, isfinite
#include <cstddef>      // size_t
#include <cstdint>      // int8_t, int32_t, int64_t, uint8_t
#include <limits>       // numeric_limits
#include <type_traits>  // decay_t, false_type, is_same, true_type
#include <vector>       // vector

#include <fakequant/base/checked.hpp>
#include <fakequant/base/error.hpp>
#include <fakequant/core/checks.hpp>
#include <fakequant/core/group_layout.hpp>
#include <fakequant/core/tensor_view.hpp>
#include <fakequant/int8/params.hpp>
#include <fakequant/kernels/gemm.hpp>
#include <fakequant/kernels/group_fake_quantize.hpp>
#include <fakequant/kernels/packed_weights.hpp>
#include <fakequant/kernels/quantize.hpp>
#include <fakequant/observer/fake_quantize_module.hpp>
#include <fakequant/quantizer/fake_quantizer.hpp>
#include <fakequant/quantizer/group_quantizer.hpp>
#include <fakequant/scheme/numerics.hpp>
#include <fakequant/scheme/qscheme.hpp>
#include <fakequant/simd/arch.hpp>
#include <fakequant/simd/isa.hpp>

namespace fq {

namespace detail {
/// The input quantizers Int8FloatLinear takes: per tensor (FakeQuantize, FakeQuantizer) or
/// per token (GroupFakeQuantizer).
template <class Q>
struct float_linear_static_input : std::false_type {};
template <class S, class O>
struct float_linear_static_input<FakeQuantize<S, O>> : std::true_type {};
template <class S>
struct float_linear_static_input<FakeQuantizer<S>> : std::true_type {};
template <class Q>
struct float_linear_token_input : std::false_type {};
template <class S, class P>
struct float_linear_token_input<GroupFakeQuantizer<S, P>> : std::true_type {};
}  // namespace detail

/// The integer linear layer with a float input and output (file comment).
class Int8FloatLinear {
 public:
  /// Builds the layer from the QAT layer's quantizers (file comment): `input_quantizer` a
  /// per-tensor FakeQuantize / FakeQuantizer or a per-token GroupFakeQuantizer, `weight`
  /// [out_features, in_features] row-major as the weight quantizer saw it, `weight_quantizer`
  /// per-channel (axis 0) symmetric within int8, `bias` empty (none) or out_features entries.
  /// Errors: sizes <= 0 or a weight / bias of another size (kShapeMismatch), in_features above
  /// kMaxGemmK (kInvalidArgument), an uncalibrated quantizer (kInvalidState, naming it), a
  /// frozen per-token quantizer (kInvalidState), an input range that is not 8-bit or a weight
  /// range that is not int8 (kInvalidRange), a bad input scale (kInvalidScale), a weight
  /// quantizer with another channel count (kParamCountMismatch). Arch: the weight quantize
  /// kernel's instruction set (simd/arch.hpp; every Arch gives the same levels).
  template <class Arch = DefaultArch, class InputQ, class WeightQ>
  static Int8FloatLinear from_quantizers(const InputQ& input_quantizer,
                                         const std::vector<float>& weight,
                                         std::int64_t out_features, std::int64_t in_features,
                                         const WeightQ& weight_quantizer,
                                         const std::vector<float>& bias = {}) {
    constexpr bool kStatic = detail::float_linear_static_input<InputQ>::value;
    constexpr bool kToken = detail::float_linear_token_input<InputQ>::value;
    static_assert(kStatic || kToken,
                  "Int8FloatLinear: the input quantizer must be a per-tensor fq::FakeQuantize / "
                  "fq::FakeQuantizer or a per-token fq::GroupFakeQuantizer.");
    check_shapes(weight, out_features, in_features, bias);
    Int8FloatLinear l;
    if constexpr (kStatic) {
      l.set_static_input(input_quantizer);
    } else if constexpr (kToken) {
      l.set_token_input(input_quantizer);
    }
    // The weight levels and scales exactly as convert makes them; the integer bias that
    // make_int8_params also derives is not used (a float bias is added), so it gets zeros.
    const Int8LayerParams p = detail::make_int8_params<Arch>(
        weight.data(), out_features, in_features,
        std::vector<float>(static_cast<std::size_t>(out_features), 0.0f), weight_quantizer,
        ActQParams{}, nullptr, Activation::kNone, kWhere);
    l.packed_ = PackedWeights(p.weight.data(), out_features, in_features, in_features);
    l.weight_scale_ = p.weight_scale;
    l.bias_ =
        bias.empty() ? std::vector<float>(static_cast<std::size_t>(out_features), 0.0f) : bias;
    return l;
  }

  std::int64_t in_features() const noexcept { return packed_.k(); }
  std::int64_t out_features() const noexcept { return packed_.n(); }
  /// True for dynamic per-token input quantization, false for static per tensor.
  bool per_token() const noexcept { return per_token_; }
  /// Static input: the uint8 levels' scale and zero point (z_x + 128 for a signed range).
  const ActQParams& input_qparams() const noexcept { return in_; }
  /// The range of the uint8 input levels ([qmin, qmax], + 128 for a signed range).
  QuantRange input_level_range() const noexcept { return level_range_; }
  /// The packed weight levels q_w (PackedWeights::at reads them back) and their column sums.
  const PackedWeights& packed_weights() const noexcept { return packed_; }
  const std::vector<float>& weight_scale() const noexcept { return weight_scale_; }
  const std::vector<float>& bias() const noexcept { return bias_; }

  /// y [m, out] = the layer of x [m, in] (file comment), both row-major and contiguous. y may
  /// be x when out_features() <= in_features() (row i of y lies within rows <= i of x, read
  /// before it is written); any other overlap is kInvalidLayout. `path`: Isa::kAuto (the best
  /// kernels), Isa::kScalar (every kernel's scalar reference: bit-identical output), or
  /// Isa::kAvx2 / kAvx512Vnni / kAmx (that GEMM kernel). Errors: m < 0 (kShapeMismatch), null
  /// pointers for m > 0 (kInvalidArgument), m · in or m · out overflowing (kOutOfMemory).
  template <class Arch = DefaultArch>
  void forward(const float* x, std::int64_t m, float* y, Isa path = Isa::kAuto) const {
    constexpr const char* kF = "Int8FloatLinear::forward";
    FQ_CHECK(m >= 0, ErrorCode::kShapeMismatch, detail::msg(kF, ": negative row count m = ", m));
    if (m == 0) return;
    FQ_CHECK(x != nullptr && y != nullptr, ErrorCode::kInvalidArgument,
             detail::msg(kF, ": null input or output for m = ", m));
    const std::int64_t k = in_features(), n = out_features();
    const auto x_bytes = static_cast<std::int64_t>(
        detail::checked_bytes(detail::checked_mul(m, k, kF, "the input"), sizeof(float), kF));
    const auto y_bytes = static_cast<std::int64_t>(
        detail::checked_bytes(detail::checked_mul(m, n, kF, "the output"), sizeof(float), kF));
    FQ_CHECK((static_cast<const void*>(x) == y && n <= k) ||
                 !detail::byte_ranges_overlap(x, x_bytes, y, y_bytes),
             ErrorCode::kInvalidLayout,
             detail::msg(kF,
                         ": the output overlaps the input (in place, y = x, needs out <= in "
                         "features)"));
    const Isa qpath = path == Isa::kScalar ? Isa::kScalar : Isa::kAuto;  // quantize kernels
    // Rows in chunks whose accumulators stay in cache between the GEMM and the epilogue (and
    // whose scratch does not grow with m); rows are independent, so chunking changes nothing.
    const std::int64_t chunk = std::min(m, std::max<std::int64_t>(kChunkRowsMin, kChunkInts / n));
    const auto cs = static_cast<std::size_t>(chunk);
    levels_.resize(cs * static_cast<std::size_t>(k));
    acc_.resize(cs * static_cast<std::size_t>(n));
    row_scale_.resize(cs);
    row_zero_.resize(cs);
    for (std::int64_t r0 = 0; r0 < m; r0 += chunk) {
      const std::int64_t mc = std::min(chunk, m - r0);
      const float* xc = x + r0 * k;
      if (per_token_) {
        quantize_tokens<Arch>(xc, mc, levels_.data(), qpath);
      } else {
        std::fill(row_scale_.begin(), row_scale_.end(), in_.scale);
        std::fill(row_zero_.begin(), row_zero_.end(), in_.zero_point);
        quantize_per_tensor<TorchNumerics, Arch>(TensorView<const float>(xc, {mc, k}),
                                                 TensorView<std::uint8_t>(levels_.data(), {mc, k}),
                                                 in_.scale, in_.zero_point, level_range_, qpath);
      }
      // Zero point 0: the raw Σ x_q · q_w; each row's zero point is compensated in epilogue.
      gemm_u8s8s32<Arch>(levels_.data(), mc, k, packed_, acc_.data(), n, 0, path);
      epilogue(mc, y + r0 * n);
    }
  }
  /// x [..., in] -> y [..., out] (contiguous; the leading extents are the rows and must agree).
  template <class Arch = DefaultArch>
  void forward(TensorView<const float> x, TensorView<float> y, Isa path = Isa::kAuto) const {
    constexpr const char* kF = "Int8FloatLinear::forward";
    FQ_CHECK(x.is_contiguous() && y.is_contiguous(), ErrorCode::kInvalidLayout,
             detail::msg(kF, ": the input and output must be contiguous row-major tensors"));
    const int r = x.rank();
    bool ok = r == y.rank() && x.size(r - 1) == in_features() && y.size(r - 1) == out_features();
    for (int d = 0; ok && d + 1 < r; ++d) ok = x.size(d) == y.size(d);
    FQ_CHECK(ok, ErrorCode::kShapeMismatch,
             detail::msg(kF, ": input ", detail::shape_str(x), " and output ", detail::shape_str(y),
                         " do not fit a layer of ", in_features(), " -> ", out_features(),
                         " features ([..., in] -> [..., out])"));
    forward<Arch>(x.data(), x.numel() / in_features(), y.data(), path);
  }

 private:
  static constexpr const char* kWhere = "Int8FloatLinear";
  // forward's row chunk: at most kChunkInts accumulators (4 MiB), at least kChunkRowsMin rows.
  static constexpr std::int64_t kChunkInts = std::int64_t{1} << 20, kChunkRowsMin = 48;

  Int8FloatLinear() = default;

  static void check_shapes(const std::vector<float>& w, std::int64_t out, std::int64_t in,
                           const std::vector<float>& bias) {
    FQ_CHECK(
        in > 0 && out > 0, ErrorCode::kShapeMismatch,
        detail::msg(kWhere, ": ", in, " input features and ", out, " outputs: both must be > 0"));
    FQ_CHECK(in <= kMaxGemmK, ErrorCode::kInvalidArgument,
             detail::msg(kWhere, ": K = ", in, " input features exceed ", kMaxGemmK,
                         ", the largest K whose int32 accumulator cannot overflow"));
    const std::int64_t numel = detail::checked_mul(out, in, kWhere, "the weights");
    FQ_CHECK(static_cast<std::int64_t>(w.size()) == numel, ErrorCode::kShapeMismatch,
             detail::msg(kWhere, ": ", w.size(), " weights for a [", out, ", ", in, "] layer"));
    FQ_CHECK(bias.empty() || static_cast<std::int64_t>(bias.size()) == out,
             ErrorCode::kShapeMismatch,
             detail::msg(kWhere, ": ", bias.size(), " biases for ", out,
                         " outputs (pass none, or one per output)"));
  }

  template <class Q>
  void set_static_input(const Q& q) {
    detail::check_calibrated(q, kWhere, "input");
    const auto& fqz = detail::deployed_quantizer(q);  // a learned one: its snapshot
    using Scheme = typename std::decay_t<decltype(fqz)>::scheme;
    static_assert(std::is_same<typename Scheme::numerics, TorchNumerics>::value &&
                      std::is_same<typename Scheme::zero_point_policy, IntegerZeroPoint>::value,
                  "Int8FloatLinear: the input is quantized with TorchNumerics (ties to even, "
                  "x * f32(1/s)) and an integer zero point; the input quantizer's scheme must "
                  "use them.");
    in_ = act_qparams(q);  // per tensor (static_assert), zero point shifted for int8
    const QuantRange r = fqz.range();
    const std::int32_t offset = detail::act_level_offset(r);
    level_range_ = QuantRange{r.quant_min + offset, r.quant_max + offset};
    detail::check_scale(in_.scale, kWhere);
    per_token_ = false;
  }

  template <class S, class P>
  void set_token_input(const GroupFakeQuantizer<S, P>& q) {
    using G = typename S::granularity;
    static_assert(G::kGroupSize == kWholeAxisGroup && G::kAxis == -1,
                  "Int8FloatLinear: a group input quantizer must be per token (fq::PerToken: one "
                  "scale per row of the last axis), e.g. fq::Int8ActPerTokenDynamic.");
    static_assert(std::is_same<typename S::numerics, TorchNumerics>::value,
                  "Int8FloatLinear: the input is quantized with TorchNumerics (ties to even, "
                  "x * f32(1/s)); the per-token quantizer's scheme must use them.");
    FQ_CHECK(q.dynamic(), ErrorCode::kInvalidState,
             detail::msg(kWhere,
                         ": the per-token input quantizer is frozen; its qparams belong to the "
                         "rows of one batch, while the layer computes every row's own; "
                         "unfreeze() it"));
    token_range_ = q.range();
    const std::int32_t offset = detail::act_level_offset(token_range_);
    level_range_ = QuantRange{token_range_.quant_min + offset, token_range_.quant_max + offset};
    offset_ = offset;
    rule_ = q.rule();
    symmetric_ = S::mapping::kSymmetric;
    sym_zero_ = detail::torchao_symmetric_zero(token_range_);
    per_token_ = true;
  }

  /// Per-token levels: every row's qparams by the fake quantizer's own rule
  /// (choose_group_qparams, the function behind GroupFakeQuantizer), then the levels with
  /// those qparams (quantize_per_channel along the rows). (Fusing the two per row measured
  /// slower: the scalar qparams of a row then stall its quantize loop.)
  template <class Arch>
  void quantize_tokens(const float* x, std::int64_t m, std::uint8_t* q, Isa qpath) const {
    const std::int64_t k = in_features();
    const TensorView<const float> xv(x, {m, k});
    const GroupLayout L = detail::make_group_layout(xv.shape().data(), 2, -1, kWholeAxisGroup,
                                                    GroupTail::kMustDivide, kWhere);
    // The scheme argument selects only the mapping (the numerics are TorchNumerics, the range
    // is the quantizer's).
    if (symmetric_)
      choose_group_qparams<QScheme<Int8, Symmetric, PerToken>, Arch>(
          xv, L, token_range_, rule_, row_scale_.data(), row_zero_.data(), qpath);
    else
      choose_group_qparams<QScheme<Int8, Affine, PerToken>, Arch>(
          xv, L, token_range_, rule_, row_scale_.data(), row_zero_.data(), qpath);
    qscale_.resize(static_cast<std::size_t>(m));
    for (std::size_t i = 0; i < qscale_.size(); ++i) {
      // A non-finite row (NaN scale, or +inf: a NaN / Inf or a range overflowing float) is
      // NaN in the fake quantizer; its levels are not used (epilogue), any valid qparams do.
      // A finite scale is >= eps >= FLT_MIN: its inverse is finite.
      const bool finite = std::isfinite(row_scale_[i]);
      qscale_[i] = finite ? row_scale_[i] : 1.0f;
      row_zero_[i] = (finite ? row_zero_[i] : sym_zero_) + offset_;
    }
    quantize_per_channel<TorchNumerics, Arch>(xv, TensorView<std::uint8_t>(q, {m, k}),
                                              qscale_.data(), row_zero_.data(), m, 0, level_range_,
                                              qpath);
  }

  /// y[i, o] = fma(f32(s_x[i] · s_w[o]), f32(raw[i, o] − z_x[i] · Σ_k q_w[o, k]), b[o]).
  void epilogue(std::int64_t m, float* y) const {
    const std::int64_t n = out_features();
    const std::int32_t* cs = packed_.col_sums();
    const float* sw = weight_scale_.data();
    const float* b = bias_.data();
    for (std::int64_t i = 0; i < m; ++i) {
      const auto ii = static_cast<std::size_t>(i);
      const std::int32_t* acc = acc_.data() + i * n;
      float* yr = y + i * n;
      const float sx = row_scale_[ii];
      if (!std::isfinite(sx)) {  // a non-finite per-token row (file comment)
        for (std::int64_t o = 0; o < n; ++o) yr[o] = std::numeric_limits<float>::quiet_NaN();
        continue;
      }
      // Exact in int32: |z · Σ q_w| <= 255 · 128 · K and |acc| <= 255 · 128 · K < 2^31.
      const std::int32_t z = row_zero_[ii];
      for (std::int64_t o = 0; o < n; ++o)
        yr[o] = std::fma(sx * sw[o], static_cast<float>(acc[o] - z * cs[o]), b[o]);
    }
  }

  PackedWeights packed_;
  std::vector<float> weight_scale_, bias_;
  bool per_token_ = false, symmetric_ = false;
  ActQParams in_{};                    // static: the uint8 levels' qparams
  QuantRange level_range_{0, 255};     // the uint8 levels' range
  QuantRange token_range_{-128, 127};  // per token: the quantizer's own range
  std::int32_t offset_ = 0, sym_zero_ = 0;
  GroupQParamsRule rule_{};
  // forward's scratch, reused: forward is not reentrant (file comment).
  mutable std::vector<std::uint8_t> levels_;
  mutable std::vector<std::int32_t> acc_, row_zero_;
  mutable std::vector<float> row_scale_, qscale_;
};

}  // namespace fq

#endif  // FQ_INT8_FLOAT_LINEAR_HPP_
