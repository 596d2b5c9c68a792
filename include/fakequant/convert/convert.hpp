// SPDX-License-Identifier: MIT
// fakequant/convert/convert.hpp: a QAT-trained layer becomes an integer layer that runs on the
// int8 kernels (kernels/), with the qparams its fake quantizers learned.
//
// The integer parameters (weights levels, int32 bias, fixed-point multipliers, output range
// with a fused ReLU or ReLU6) are those of convert/int8_params.hpp, computed by the layer's
// int8_params(in); for QConvBn2d batch norm is folded with its running statistics by the very
// float operations of the layer's evaluation forward, so the weight levels are the simulated
// ones exactly.
//
// Agreement with the simulation: the integer model equals the layers evaluated in integer
// arithmetic (layers/integer_eval.hpp) bit for bit. Against the float simulation, whose float32
// sum is not exact while the integer sum is (and whose bias is not rounded to the
// accumulator's unit), an output level differs by at most 1 LSB with single rounding, and only
// where the real pre-activation lies within float error of a rounding midpoint (tests/convert
// measure how often); double rounding (TFLite) adds its own <= 1 LSB.
//
// Size bounds: an integer layer is constructed only if each buffer it will use for one image —
// its packed weights, its input and output activations and, for a convolution, the padded and
// the unfolded (im2col) input — takes at most kMaxLayerBufferBytes (2^31 bytes), else
// ErrorCode::kOutOfMemory naming the buffer; and only if its parameter arrays have the sizes
// its shape implies and K is at most kMaxGemmK (else kInvalidArgument). A layer read from a
// crafted model file therefore cannot make construction or the first run allocate more.
#ifndef FQ_CONVERT_CONVERT_HPP_
#define FQ_CONVERT_CONVERT_HPP_

#include <cstdint>           // int8_t, int32_t, int64_t, uint8_t
#include <initializer_list>  // initializer_list
#include <string>            // string, to_string
#include <type_traits>       // is_same
#include <utility>           // move
#include <vector>            // vector

#include <fakequant/int8/params.hpp>
#include <fakequant/kernels/conv2d.hpp>
#include <fakequant/kernels/gemm.hpp>
#include <fakequant/kernels/linear.hpp>
#include <fakequant/layers/qlayers.hpp>

namespace fq {

/// The most bytes one buffer of an integer layer may take for one image (file comment).
inline constexpr std::int64_t kMaxLayerBufferBytes = std::int64_t{1} << 31;

namespace detail {
/// v rounded up to a multiple of m (v >= 0, m > 0, v small enough: checked by the caller).
constexpr std::int64_t round_up(std::int64_t v, std::int64_t m) noexcept {
  return (v + m - 1) / m * m;
}
/// Refuses a buffer whose size, the product of `factors` (each >= 0, at most 2^40 so that
/// round_up above cannot overflow), exceeds kMaxLayerBufferBytes.
inline void check_layer_buffer(std::initializer_list<std::int64_t> factors, const char* where,
                               const char* what) {
  std::int64_t n = 1;
  bool ok = true;
  std::string dims;
  for (std::int64_t f : factors) {
    dims += (dims.empty() ? "" : " x ") + std::to_string(f);
    ok = ok && f >= 0 && (f == 0 || n <= kMaxLayerBufferBytes / f);
    if (ok) n *= f;
  }
  FQ_CHECK(ok && n <= kMaxLayerBufferBytes, ErrorCode::kOutOfMemory,
           msg(where, ": ", what, " of one image (", dims, " bytes) exceeds the limit of ",
               kMaxLayerBufferBytes, " bytes"));
}
/// The parameter arrays of a layer with `out` channels and `weights` weight levels.
inline void check_layer_arrays(const Int8LayerParams& p, std::int64_t out, std::int64_t weights,
                               const char* where) {
  const auto o = static_cast<std::size_t>(out);
  FQ_CHECK(p.weight.size() == static_cast<std::size_t>(weights) && p.weight_scale.size() == o &&
               p.bias.size() == o && p.real_bias.size() == o &&
               p.multiplier.size() == (p.float_out ? 0 : o),
           ErrorCode::kInvalidArgument,
           msg(where, ": parameter arrays of sizes ", p.weight.size(), " (weights), ",
               p.weight_scale.size(), " (weight scales), ", p.bias.size(), " (bias), ",
               p.real_bias.size(), " (real bias), ", p.multiplier.size(),
               " (multipliers) do not match ", out, " channels and ", weights, " weights"));
}
/// Validates a linear layer's parameters (file comment); returns in_features.
inline std::int64_t checked_int8_linear(const Int8LayerParams& p, std::int64_t in_features) {
  constexpr const char* kWhere = "Int8Linear";
  const auto out = static_cast<std::int64_t>(p.bias.size());
  FQ_CHECK(
      in_features > 0 && out > 0, ErrorCode::kShapeMismatch,
      msg(kWhere, ": ", in_features, " input features and ", out, " outputs: both must be > 0"));
  FQ_CHECK(in_features <= kMaxGemmK, ErrorCode::kInvalidArgument,
           msg(kWhere, ": K = ", in_features, " input features exceed ", kMaxGemmK,
               ", the largest K whose int32 accumulator cannot overflow"));
  check_layer_buffer({out, in_features}, kWhere, "the weights");
  check_layer_arrays(p, out, out * in_features, kWhere);
  check_layer_buffer({round_up(out, kPanelCols), round_up(in_features, kGroupK)}, kWhere,
                     "the packed weights");
  return in_features;
}
/// Validates a convolution's shape, buffer sizes and parameters (file comment).
inline const Conv2dShape& checked_int8_conv2d(const Int8LayerParams& p, const Conv2dShape& s) {
  constexpr const char* kWhere = "Int8Conv2d";
  check_conv2d_shape(s, kWhere);  // extents > 0, groups divide, no int64 overflow
  const std::int64_t cig = s.in_channels / s.groups, cog = s.out_channels / s.groups;
  const std::int64_t kg = s.group_k();
  FQ_CHECK(kg <= kMaxGemmK, ErrorCode::kInvalidArgument,
           msg(kWhere, ": K = ", kg, " exceeds ", kMaxGemmK,
               ", the largest K whose int32 accumulator cannot overflow"));
  check_layer_buffer({s.in_channels, s.in_h, s.in_w}, kWhere, "the input");
  check_layer_buffer({s.out_channels, s.out_h(), s.out_w()}, kWhere, "the output");
  check_layer_buffer({cig, s.in_h + 2 * s.pad_h, s.in_w + 2 * s.pad_w}, kWhere, "the padded input");
  const std::int64_t positions = s.out_h() * s.out_w();  // <= the output's size, checked above
  check_layer_buffer({round_up(positions, 16), round_up(kg, kGroupK)}, kWhere,
                     "the unfolded (im2col) input");
  check_layer_buffer({s.groups, round_up(cog, kPanelCols), round_up(kg, kGroupK)}, kWhere,
                     "the packed weights");
  check_layer_arrays(p, s.out_channels, s.out_channels * kg, kWhere);
  return s;
}
}  // namespace detail

/// An int8 linear layer: uint8 [m, in] -> uint8 [m, out], or float [m, out] (logits) when
/// the trained layer had no output quantizer.
class Int8Linear {
 public:
  /// Validates the parameters and sizes first (file comment).
  explicit Int8Linear(detail::Int8LayerParams p, std::int64_t in_features)
      : p_(std::move(p)),
        packed_(p_.weight.data(), static_cast<std::int64_t>(p_.bias.size()),
                detail::checked_int8_linear(p_, in_features), in_features) {}

  std::int64_t in_features() const noexcept { return packed_.k(); }
  std::int64_t out_features() const noexcept { return packed_.n(); }
  const ActQParams& input_qparams() const noexcept { return p_.in; }
  const ActQParams& output_qparams() const noexcept { return p_.out; }
  bool float_output() const noexcept { return p_.float_out; }
  const detail::Int8LayerParams& params() const noexcept { return p_; }

  /// uint8 output (the layer had an output quantizer).
  void run(const std::uint8_t* x, std::int64_t m, std::uint8_t* y) const {
    FQ_CHECK(!p_.float_out, ErrorCode::kInvalidArgument,
             "Int8Linear::run: this layer has a float output; pass a float*");
    linear_u8(x, m, in_features(), p_.in.zero_point, packed_, p_.requant(), y, out_features());
  }
  /// Float output: y = fma(s_x·s_w[o], Σ(x_q − z_x)·q_w, b[o]) (the float bias, not rounded).
  void run(const std::uint8_t* x, std::int64_t m, float* y) const {
    FQ_CHECK(p_.float_out, ErrorCode::kInvalidArgument,
             "Int8Linear::run: this layer has a uint8 output; pass a std::uint8_t*");
    acc_.resize(static_cast<std::size_t>(m * out_features()));
    gemm_u8s8s32(x, m, in_features(), packed_, acc_.data(), out_features(), p_.in.zero_point);
    for (std::int64_t i = 0; i < m; ++i)
      for (std::int64_t o = 0; o < out_features(); ++o) {
        const auto oi = static_cast<std::size_t>(o);
        y[i * out_features() + o] =
            p_.float_output(acc_[static_cast<std::size_t>(i * out_features() + o)], oi);
      }
  }

 private:
  detail::Int8LayerParams p_;
  PackedWeights packed_;
  mutable std::vector<std::int32_t> acc_;
};

/// An int8 convolution: uint8 NCHW [n, C, H, W] -> uint8 NCHW [n, O, OH, OW].
class Int8Conv2d {
 public:
  /// Validates the shape, sizes and parameters first (file comment).
  Int8Conv2d(detail::Int8LayerParams p, const Conv2dShape& one_image)
      : p_(std::move(p)), packed_(p_.weight.data(), detail::checked_int8_conv2d(p_, one_image)) {}

  const Conv2dShape& shape() const noexcept { return packed_.shape(); }
  const ActQParams& input_qparams() const noexcept { return p_.in; }
  const ActQParams& output_qparams() const noexcept { return p_.out; }
  std::int64_t in_numel() const noexcept {
    return shape().in_channels * shape().in_h * shape().in_w;
  }
  std::int64_t out_numel() const noexcept {
    return shape().out_channels * shape().out_h() * shape().out_w();
  }
  const detail::Int8LayerParams& params() const noexcept { return p_; }

  void run(const std::uint8_t* x, std::int64_t n, std::uint8_t* y) const {
    conv2d_u8(x, p_.in.zero_point, packed_, p_.requant(), y, n);  // the packed shape: one image
  }

 private:
  detail::Int8LayerParams p_;
  PackedConv2dWeights packed_;
};

/// QLinear -> Int8Linear; `in` are the qparams of the layer's input activations.
template <class WQ, class AQ>
Int8Linear convert(const QLinear<WQ, AQ>& l, ActQParams in) {
  return Int8Linear(l.int8_params(in), l.weight().shape()[1]);
}

/// QConv2d -> Int8Conv2d; `in_h`, `in_w` are the input's spatial extents.
template <class WQ, class AQ>
Int8Conv2d convert(const QConv2d<WQ, AQ>& l, ActQParams in, std::int64_t in_h, std::int64_t in_w) {
  static_assert(
      !std::is_same<AQ, NoFakeQuant>::value,
      "convert: the integer convolution needs an output quantizer (not fq::NoFakeQuant).");
  return Int8Conv2d(l.int8_params(in), l.conv_shape(in_h, in_w));
}

/// QConvBn2d -> Int8Conv2d with batch norm folded by its running statistics.
template <class WQ, class AQ>
Int8Conv2d convert(const QConvBn2d<WQ, AQ>& l, ActQParams in, std::int64_t in_h,
                   std::int64_t in_w) {
  static_assert(
      !std::is_same<AQ, NoFakeQuant>::value,
      "convert: the integer convolution needs an output quantizer (not fq::NoFakeQuant).");
  return Int8Conv2d(l.int8_params(in), l.conv_shape(in_h, in_w));
}

namespace detail {
/// max_pool2d_u8 with the window K and stride S fixed at compile time when they are > 0 (the
/// compiler then unrolls the window and vectorizes the row; about 2x faster than the run-time
/// loop on the demo's 2x2 pooling), or taken from k and s when they are 0.
template <std::int64_t K, std::int64_t S>
void max_pool2d_u8_rows(const std::uint8_t* x, std::int64_t nc, std::int64_t h, std::int64_t w,
                        std::int64_t k_rt, std::int64_t s_rt, std::uint8_t* y) {
  const std::int64_t k = K > 0 ? K : k_rt, s = S > 0 ? S : s_rt;
  const std::int64_t oh = (h - k) / s + 1, ow = (w - k) / s + 1;
  for (std::int64_t c = 0; c < nc; ++c)
    for (std::int64_t i = 0; i < oh; ++i) {
      const std::uint8_t* in = x + (c * h + i * s) * w;
      std::uint8_t* out = y + (c * oh + i) * ow;
      for (std::int64_t j = 0; j < ow; ++j) {
        std::uint8_t m = 0;
        for (std::int64_t p = 0; p < k; ++p)
          for (std::int64_t q = 0; q < k; ++q) {
            const std::uint8_t v = in[p * w + j * s + q];
            m = v > m ? v : m;
          }
        out[j] = m;
      }
    }
}
}  // namespace detail

/// Max pooling on uint8 NCHW levels (no padding). Exact with respect to the simulation: a
/// per-tensor quantizer is monotone, so the max of levels is the level of the max.
inline void max_pool2d_u8(const std::uint8_t* x, std::int64_t nc, std::int64_t h, std::int64_t w,
                          std::int64_t k, std::int64_t s, std::uint8_t* y) {
  FQ_CHECK(k > 0 && s > 0 && nc >= 0, ErrorCode::kInvalidArgument,
           detail::msg("max_pool2d_u8: window ", k, ", stride ", s, " and ", nc,
                       " planes: window and stride must be > 0, planes >= 0"));
  FQ_CHECK(k <= h && k <= w, ErrorCode::kShapeMismatch,
           detail::msg("max_pool2d_u8: window ", k, " does not fit the ", h, "x", w, " input"));
  if (nc == 0) return;
  FQ_CHECK(x != nullptr && y != nullptr, ErrorCode::kInvalidArgument,
           "max_pool2d_u8: null input or output");
  if (k == 2 && s == 2)
    detail::max_pool2d_u8_rows<2, 2>(x, nc, h, w, k, s, y);
  else if (k == 3 && s == 2)
    detail::max_pool2d_u8_rows<3, 2>(x, nc, h, w, k, s, y);
  else if (k == 3 && s == 1)
    detail::max_pool2d_u8_rows<3, 1>(x, nc, h, w, k, s, y);
  else
    detail::max_pool2d_u8_rows<0, 0>(x, nc, h, w, k, s, y);
}

}  // namespace fq

#endif  // FQ_CONVERT_CONVERT_HPP_
