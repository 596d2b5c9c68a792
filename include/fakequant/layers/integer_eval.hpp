// SPDX-License-Identifier: MIT
// fakequant/layers/integer_eval.hpp: evaluates a QAT layer with the integer model's
// arithmetic, on the tape's float tensors — the fake-quant simulation made exact.
//
// The float simulation computes a layer's pre-activation with a float32 GEMM of fake-quantized
// values; the integer model sums exactly in int32 and rounds the bias to the accumulator's
// unit, so their output levels can differ by 1 LSB near rounding midpoints (docs/convert.md).
// In integer arithmetic the layer instead
//   1. reads the input levels x_q = rne(x / s_x) + z_x, checking that x lies exactly on the
//      input grid (x == f32((x_q − z_x) · s_x), what a fake quantizer or a previous layer in
//      integer arithmetic produced);
//   2. accumulates Σ (x_q − z_x)·q_w exactly (the int8 GEMM, im2col for a convolution);
//   3. applies the integer model's epilogue (int8_params.hpp) with the scalar output stages:
//      y_q = clamp(requant(acc + q_b, M) + z_y, lo, hi), single rounding, ties to even;
//   4. returns the output quantizer's float value of y_q, f32((y_q − z_y) · s_y), or for a
//      float-output layer fma(f32(s_x·s_w), f32(acc), b).
// Its outputs are the deployed integer layer's outputs bit for bit (tests/convert), so a
// network evaluated this way has the deployed model's accuracy, inside the user's own float
// graph (pooling, flatten and other float glue between the layers stay as they are).
// Evaluation only: no gradient is recorded (use a NoGradGuard); batch norm must use its
// running statistics.
#ifndef FQ_LAYERS_INTEGER_EVAL_HPP_
#define FQ_LAYERS_INTEGER_EVAL_HPP_

#include <cmath>    // nearbyint
#include <cstdint>  // int32_t, int64_t, uint8_t
#include <vector>   // vector

#include <fakequant/int8/params.hpp>
#include <fakequant/base/checked.hpp>
#include <fakequant/kernels/gemm.hpp>
#include <fakequant/kernels/im2col.hpp>
#include <fakequant/kernels/output_stages.hpp>
#include <fakequant/kernels/packed_weights.hpp>
#include <fakequant/tape/tape.hpp>

namespace fq {
namespace detail {

/// The uint8 levels of x on the grid of `in`; an error names the first element off the grid.
inline std::vector<std::uint8_t> input_levels(const Var& x, ActQParams in, const char* where) {
  FQ_CHECK(!x.tape()->recording(), ErrorCode::kInvalidArgument,
           msg(where, ": integer arithmetic is for evaluation; record no gradient (NoGradGuard)"));
  std::vector<std::uint8_t> q(static_cast<std::size_t>(x.numel()));
  const float z = static_cast<float>(in.zero_point);
  for (std::size_t i = 0; i < q.size(); ++i) {
    const float v = x.value()[i];
    const double level = std::nearbyint(static_cast<double>(v) / in.scale) + in.zero_point;
    const bool on_grid =
        level >= 0.0 && level <= 255.0 && (static_cast<float>(level) - z) * in.scale == v;
    FQ_CHECK(on_grid, ErrorCode::kInvalidArgument,
             msg(where, ": input element ", i, " = ", v, " is not on the grid of scale ", in.scale,
                 " and zero point ", in.zero_point,
                 " (give the qparams of the quantizer that produced the input)"));
    q[i] = static_cast<std::uint8_t>(level);
  }
  return q;
}

/// The parameters must describe `out` > 0 channels of k weights each, with a valid multiplier
/// (fixed_point.hpp) and bias per channel: checked once per call, O(out).
inline void check_layer_params(const Int8LayerParams& p, std::int64_t k, const char* where) {
  const auto out = static_cast<std::int64_t>(p.weight_scale.size());
  FQ_CHECK(out > 0 && k > 0 && static_cast<std::int64_t>(p.weight.size()) == out * k,
           ErrorCode::kShapeMismatch,
           msg(where, ": ", p.weight.size(), " weight levels for ", out, " channels of K = ", k));
  if (p.float_out) {
    FQ_CHECK(static_cast<std::int64_t>(p.real_bias.size()) == out, ErrorCode::kParamCountMismatch,
             msg(where, ": ", p.real_bias.size(), " biases for ", out, " channels"));
    return;
  }
  FQ_CHECK(static_cast<std::int64_t>(p.bias.size()) == out &&
               static_cast<std::int64_t>(p.multiplier.size()) == out,
           ErrorCode::kParamCountMismatch,
           msg(where, ": ", p.bias.size(), " biases and ", p.multiplier.size(), " multipliers for ",
               out, " channels"));
  check_quantized_multipliers(p.multiplier.data(), out, where);
}

/// Step 3-4 of the file comment for one accumulator of output channel o.
inline float integer_output(const Int8LayerParams& p, std::int32_t acc, std::size_t o) {
  if (p.float_out) return p.float_output(acc, o);
  const auto stages = make_output_pipeline(
      BiasAdd{p.bias.data()}, Requantize<SingleRounding<RoundHalfEven>>{p.multiplier.data(), true},
      AddZeroPoint{p.out.zero_point},
      Clamp{p.relu ? std::max(p.out_min, p.out.zero_point) : p.out_min, p.out_max});
  const std::uint8_t y = stages.apply_to<std::uint8_t>(acc, static_cast<std::int64_t>(o));
  return (static_cast<float>(y) - static_cast<float>(p.out.zero_point)) * p.out.scale;
}

/// x [m, k] -> [m, out] in integer arithmetic; p.weight is [out, k].
inline Var integer_linear(Tape& tape, const Var& x, const Int8LayerParams& p) {
  constexpr const char* kWhere = "integer arithmetic (linear)";
  const std::int64_t out = static_cast<std::int64_t>(p.weight_scale.size());
  const std::int64_t k = out == 0 ? 0 : static_cast<std::int64_t>(p.weight.size()) / out;
  check_layer_params(p, k, kWhere);
  FQ_CHECK(x.shape().rank == 2 && x.size(1) == k, ErrorCode::kShapeMismatch,
           msg(kWhere, ": input shape ", x.shape().str(), " does not match ", k, " in-features"));
  const std::int64_t m = x.size(0);
  const std::vector<std::uint8_t> xq = input_levels(x, p.in, kWhere);
  const PackedWeights w(p.weight.data(), out, k, k);
  std::vector<std::int32_t> acc(
      static_cast<std::size_t>(checked_mul(m, out, kWhere, "the output size")));
  gemm_u8s8s32(xq.data(), m, k, w, acc.data(), out, p.in.zero_point);
  Var y = tape.variable({m, out}, false);
  for (std::int64_t i = 0; i < m; ++i)
    for (std::int64_t o = 0; o < out; ++o) {
      const auto e = static_cast<std::size_t>(i * out + o);
      y.value()[e] = integer_output(p, acc[e], static_cast<std::size_t>(o));
    }
  return y;
}

/// x [n, C, H, W] -> [n, O, OH, OW] in integer arithmetic; `s` describes one image.
inline Var integer_conv2d(Tape& tape, const Var& x, const Int8LayerParams& p,
                          const Conv2dShape& s) {
  constexpr const char* kWhere = "integer arithmetic (conv2d)";
  FQ_CHECK(!p.float_out, ErrorCode::kInvalidArgument,
           msg(kWhere, ": a convolution needs an output quantizer"));
  check_conv2d_shape(s, kWhere);  // every derived size fits int64
  FQ_CHECK(static_cast<std::int64_t>(p.weight_scale.size()) == s.out_channels,
           ErrorCode::kParamCountMismatch,
           msg(kWhere, ": ", p.weight_scale.size(), " weight scales for ", s.out_channels,
               " output channels"));
  check_layer_params(p, s.group_k(), kWhere);
  FQ_CHECK(x.shape().rank == 4 && x.size(1) == s.in_channels && x.size(2) == s.in_h &&
               x.size(3) == s.in_w,
           ErrorCode::kShapeMismatch,
           msg(kWhere, ": input shape ", x.shape().str(), " does not match"));
  const std::int64_t n = x.size(0), cig = s.in_channels / s.groups, cog = s.out_channels / s.groups,
                     kg = s.group_k(), hw = s.in_h * s.in_w;
  const std::int64_t oh = s.out_h(), ow = s.out_w(), plane = oh * ow;
  const std::vector<std::uint8_t> xq = input_levels(x, p.in, kWhere);
  std::vector<std::uint8_t> col(static_cast<std::size_t>(plane * kg));
  std::vector<std::int32_t> acc(static_cast<std::size_t>(plane * cog));
  Var y = tape.variable({n, s.out_channels, oh, ow}, false);
  for (std::int64_t g = 0; g < s.groups; ++g) {
    const PackedWeights w(p.weight.data() + g * cog * kg, cog, kg, kg);
    for (std::int64_t b = 0; b < n; ++b) {
      im2col_u8(xq.data() + (b * s.in_channels + g * cig) * hw, cig, s,
                static_cast<std::uint8_t>(p.in.zero_point), col.data(), kg);
      gemm_u8s8s32(col.data(), plane, kg, w, acc.data(), cog, p.in.zero_point);
      for (std::int64_t o = 0; o < cog; ++o) {
        const std::int64_t channel = g * cog + o;
        float* yo = y.value() + (b * s.out_channels + channel) * plane;
        for (std::int64_t q = 0; q < plane; ++q)
          yo[q] = integer_output(p, acc[static_cast<std::size_t>(q * cog + o)],
                                 static_cast<std::size_t>(channel));
      }
    }
  }
  return y;
}

}  // namespace detail
}  // namespace fq

#endif  // FQ_LAYERS_INTEGER_EVAL_HPP_
