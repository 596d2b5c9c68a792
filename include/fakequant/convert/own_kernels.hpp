// SPDX-License-Identifier: MIT
// fakequant/convert/own_kernels.hpp: convert for networks built from the user's own kernels —
// from raw float weights and bias in a stated layout, plus the quantizer objects that guarded
// them during QAT, build the integer layer:
//   fq::convert_linear(LinearWeights, bias, input, weight_q, output_q, act)  -> fq::Int8Linear
//   fq::convert_conv2d(Conv2dWeights, bias, input, weight_q, output_q, act)  -> fq::Int8Conv2d
// with the integer parameters of int8/params.hpp, exactly as fq::convert builds them for a
// QLinear / QConv2d holding the same weights and quantizers (the same weight levels, int32 bias,
// multipliers and output range: the same integer layer).
//
// Layouts (row-major; `out` is the output-channel axis, which a per-channel weight quantizer
// must have been trained on):
//   LinearWeightLayout::kOutIn  w[o][k]  (PyTorch, fq::QLinear)   out axis 0
//   LinearWeightLayout::kInOut  w[k][o]  (x · W GEMMs)            out axis 1
//   ConvWeightLayout::kOIHW     w[o][c][kh][kw]  (PyTorch)        out axis 0
//   ConvWeightLayout::kOHWI     w[o][kh][kw][c]                   out axis 0
//   ConvWeightLayout::kHWIO     w[kh][kw][c][o]  (TensorFlow)     out axis 3
// (c: the input channels of one group, in_channels / groups.) The weights are read once and
// reordered to [out, ...] (OIHW); the user's memory is never kept.
// input: the input activations' fq::ActQParams, or the input quantizer itself (fixed or learned:
// act_qparams). weight_q: the weight quantizer (fixed, LSQ or PACT, symmetric; per tensor or per
// output channel). output_q: the output quantizer, or fq::NoFakeQuant{} for a float output.
// act: the activation fused before output_q (ReLU, ReLU6), as the simulation applied it. bias:
// `out` floats, or nullptr for none (the bias the simulation added, batch norm folded in).
//
// Errors (FQ_CHECK; the message starts with "convert_linear" or "convert_conv2d"): a null
// weight pointer, extents <= 0 or a shape Int8Conv2d refuses (kInvalidArgument), a per-channel
// weight quantizer whose axis is not the layout's output axis (kInvalidArgument) or whose
// channel count is not `out` (kParamCountMismatch), an uncalibrated quantizer (kInvalidState,
// naming it), a weight zero point other than 0 (kInvalidZeroPoint), and what int8/params.hpp
// and the integer layers refuse.
#ifndef FQ_CONVERT_OWN_KERNELS_HPP_
#define FQ_CONVERT_OWN_KERNELS_HPP_

#include <cstddef>      // size_t
#include <cstdint>      // int64_t
#include <string>       // string
#include <type_traits>  // decay_t, is_same
#include <vector>       // vector

#include <fakequant/base/checked.hpp>
#include <fakequant/base/error.hpp>
#include <fakequant/int8/conv2d.hpp>
#include <fakequant/int8/linear.hpp>
#include <fakequant/int8/params.hpp>
#include <fakequant/kernels/im2col.hpp>
#include <fakequant/layers/quantizer_slots.hpp>
#include <fakequant/quantizer/fake_quantizer.hpp>
#include <fakequant/simd/arch.hpp>

namespace fq {

/// The memory order of a linear layer's weights (file comment).
enum class LinearWeightLayout { kOutIn, kInOut };
/// The memory order of a convolution's weights (file comment).
enum class ConvWeightLayout { kOIHW, kOHWI, kHWIO };

/// A linear layer's float weights: in_features · out_features values in `layout`.
struct LinearWeights {
  const float* data = nullptr;
  std::int64_t in_features = 0;
  std::int64_t out_features = 0;
  LinearWeightLayout layout = LinearWeightLayout::kOutIn;
};
/// A convolution's float weights in `layout`, and the geometry of one input image (`batch` is
/// not used).
struct Conv2dWeights {
  const float* data = nullptr;
  Conv2dShape shape;
  ConvWeightLayout layout = ConvWeightLayout::kOIHW;
};

namespace detail {

/// The input qparams: given, or those of the input quantizer.
template <class In>
ActQParams input_qparams_of(const In& input) {
  if constexpr (std::is_same<In, ActQParams>::value)
    return input;
  else
    return act_qparams(input);
}

/// The integer parameters of weights already reordered to [out, k] (file comment).
template <class Arch, class WQ, class AQ>
Int8LayerParams own_kernel_params(const std::vector<float>& w_oik, std::int64_t out, std::int64_t k,
                                  int out_axis, int rank, const float* bias, ActQParams in,
                                  const WQ& weight_q, const AQ& output_q, Activation act,
                                  const char* where) {
  static_assert(assert_quantizer<WQ>(), "convert: the weight quantizer must meet the protocol.");
  static_assert(is_deployable_quantizer_v<WQ>,
                "convert_linear / convert_conv2d: the weight quantizer must be fixed "
                "(fq::FakeQuantize, fq::FakeQuantizer) or learned (LSQ, PACT).");
  static_assert(symmetric_or_learned_weights<WQ>(),
                "convert: the integer kernels take symmetric weights (zero point 0); use e.g. "
                "fq::Int8WeightPerChannelSymmetric.");
  constexpr bool kFloatOut = std::is_same<AQ, NoFakeQuant>::value;
  static_assert(kFloatOut || is_deployable_quantizer_v<AQ>,
                "convert_linear / convert_conv2d: the output quantizer must be fixed or learned "
                "(or fq::NoFakeQuant{} for a float output).");
  check_calibrated(weight_q, where, "weight");
  if constexpr (!kFloatOut) check_calibrated(output_q, where, "output");
  const std::vector<float> b =
      bias != nullptr ? std::vector<float>(bias, bias + out) : std::vector<float>(std::size_t(out));
  const auto& wq = deployed_quantizer(weight_q);
  using S = typename std::decay_t<decltype(wq)>::scheme;
  auto run = [&](const auto& w0) {
    if constexpr (kFloatOut)
      return int8_params_deployed<Arch>(w_oik.data(), out, k, b, w0, in, nullptr, act, where);
    else
      return int8_params_deployed<Arch>(w_oik.data(), out, k, b, w0, in, &output_q, act, where);
  };
  if constexpr (S::granularity::kPerChannel) {
    constexpr int kAxis = S::granularity::kAxis;  // -1: the last axis
    FQ_CHECK((kAxis < 0 ? kAxis + rank : kAxis) == out_axis, ErrorCode::kInvalidArgument,
             msg(where, ": the weight quantizer is per channel on axis ", kAxis,
                 " but the layout's output channels are axis ", out_axis, " of ", rank));
    // The same qparams on axis 0 of the reordered weights: the same levels (their count is
    // checked against `out` by int8_params_deployed).
    FakeQuantizer<typename S::template with_granularity<PerChannel<0>>> w0(wq.channels(),
                                                                           wq.range());
    w0.set_qparams(wq.scale(), wq.zero_point());
    return run(w0);
  } else {
    return run(wq);
  }
}

}  // namespace detail

/// Builds the Int8Linear of the user's linear kernel (file comment). Arch: the quantize
/// kernels' instruction set (fq::DefaultArch; simd/arch.hpp).
template <class Arch = DefaultArch, class In, class WQ, class AQ>
Int8Linear convert_linear(const LinearWeights& w, const float* bias, const In& input,
                          const WQ& weight_q, const AQ& output_q,
                          Activation act = Activation::kNone) {
  constexpr const char* kWhere = "convert_linear";
  FQ_CHECK(w.data != nullptr, ErrorCode::kInvalidArgument, "convert_linear: null weights");
  FQ_CHECK(w.in_features > 0 && w.out_features > 0, ErrorCode::kInvalidArgument,
           detail::msg(kWhere, ": in_features and out_features must be > 0, got ", w.in_features,
                       " and ", w.out_features));
  const std::int64_t in = w.in_features, out = w.out_features;
  const std::int64_t n = detail::checked_mul(in, out, kWhere, "the weights");
  std::vector<float> w_oik(static_cast<std::size_t>(n));
  for (std::int64_t o = 0; o < out; ++o)
    for (std::int64_t k = 0; k < in; ++k)
      w_oik[static_cast<std::size_t>(o * in + k)] =
          w.data[w.layout == LinearWeightLayout::kOutIn ? o * in + k : k * out + o];
  const int out_axis = w.layout == LinearWeightLayout::kOutIn ? 0 : 1;
  return Int8Linear(detail::own_kernel_params<Arch>(w_oik, out, in, out_axis, 2, bias,
                                                    detail::input_qparams_of(input), weight_q,
                                                    output_q, act, kWhere),
                    in);
}

/// Builds the Int8Conv2d of the user's convolution kernel (file comment). Arch as
/// convert_linear.
template <class Arch = DefaultArch, class In, class WQ, class AQ>
Int8Conv2d convert_conv2d(const Conv2dWeights& w, const float* bias, const In& input,
                          const WQ& weight_q, const AQ& output_q,
                          Activation act = Activation::kNone) {
  constexpr const char* kWhere = "convert_conv2d";
  static_assert(!std::is_same<AQ, NoFakeQuant>::value,
                "convert_conv2d: the integer convolution needs an output quantizer (not "
                "fq::NoFakeQuant).");
  const Conv2dShape& s = w.shape;
  FQ_CHECK(w.data != nullptr, ErrorCode::kInvalidArgument, "convert_conv2d: null weights");
  FQ_CHECK(s.in_channels > 0 && s.out_channels > 0 && s.kernel_h > 0 && s.kernel_w > 0 &&
               s.groups > 0 && s.in_channels % s.groups == 0,
           ErrorCode::kInvalidArgument,
           detail::msg(kWhere, ": channels and kernel extents must be > 0 and groups (", s.groups,
                       ") must divide in_channels (", s.in_channels, ")"));
  const std::int64_t out = s.out_channels, c = s.in_channels / s.groups;
  const std::int64_t kh = s.kernel_h, kw = s.kernel_w;
  const std::int64_t k = detail::checked_mul(detail::checked_mul(c, kh, kWhere, "the weights"), kw,
                                             kWhere, "the weights");
  std::vector<float> w_oik(
      static_cast<std::size_t>(detail::checked_mul(out, k, kWhere, "the weights")));
  for (std::int64_t o = 0; o < out; ++o)
    for (std::int64_t ci = 0; ci < c; ++ci)
      for (std::int64_t y = 0; y < kh; ++y)
        for (std::int64_t x = 0; x < kw; ++x) {
          std::int64_t at = 0;
          switch (w.layout) {
            case ConvWeightLayout::kOIHW:
              at = ((o * c + ci) * kh + y) * kw + x;
              break;
            case ConvWeightLayout::kOHWI:
              at = ((o * kh + y) * kw + x) * c + ci;
              break;
            case ConvWeightLayout::kHWIO:
              at = ((y * kw + x) * c + ci) * out + o;
              break;
          }
          w_oik[static_cast<std::size_t>(((o * c + ci) * kh + y) * kw + x)] = w.data[at];
        }
  const int out_axis = w.layout == ConvWeightLayout::kHWIO ? 3 : 0;
  Conv2dShape one = s;
  one.batch = 1;
  return Int8Conv2d(detail::own_kernel_params<Arch>(w_oik, out, k, out_axis, 4, bias,
                                                    detail::input_qparams_of(input), weight_q,
                                                    output_q, act, kWhere),
                    one);
}

}  // namespace fq

#endif  // FQ_CONVERT_OWN_KERNELS_HPP_
