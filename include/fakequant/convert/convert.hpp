// SPDX-License-Identifier: MIT
// fakequant/convert/convert.hpp: fq::convert — a QAT-trained layer becomes the integer layer
// that runs on the int8 kernels, with the qparams its fake quantizers learned:
//   QLinear -> Int8Linear (int8/linear.hpp);  QConv2d, QConvBn2d -> Int8Conv2d (int8/conv2d.hpp).
//
// The integer parameters (weight levels, int32 bias, fixed-point multipliers, output range
// with a fused ReLU or ReLU6) are those of int8/params.hpp, computed by the layer's
// int8_params(in); for QConvBn2d batch norm is folded with its running statistics by the very
// float operations of the layer's evaluation forward, so the weight levels are the simulated
// ones exactly. The integer layers validate their parameters and bound their buffers
// (int8/layer_checks.hpp).
//
// Agreement with the simulation: the integer layer is the one the QAT layer itself runs in
// integer arithmetic (use_integer_arithmetic, layers/integer_eval.hpp), so the two agree bit
// for bit. Against the float simulation, whose float32 sum is not exact while the integer sum
// is (and whose bias is not rounded to the accumulator's unit), an output level differs by at
// most 1 LSB with single rounding, and only where the real pre-activation lies within float
// error of a rounding midpoint (tests/convert measure how often); double rounding (TFLite) adds
// its own <= 1 LSB.
// Arch (every convert): the quantize kernels' instruction set, fq::DefaultArch (simd/arch.hpp).
#ifndef FQ_CONVERT_CONVERT_HPP_
#define FQ_CONVERT_CONVERT_HPP_

#include <cstdint>      // int64_t
#include <type_traits>  // is_same

#include <fakequant/int8/conv2d.hpp>
#include <fakequant/int8/linear.hpp>
#include <fakequant/int8/params.hpp>
#include <fakequant/layers/qlayers.hpp>
#include <fakequant/simd/arch.hpp>

namespace fq {

/// QLinear -> Int8Linear; `in` are the qparams of the layer's input activations.
template <class Arch = DefaultArch, class WQ, class AQ>
Int8Linear convert(const QLinear<WQ, AQ>& l, ActQParams in) {
  return Int8Linear(l.template int8_params<Arch>(in), l.weight().shape()[1]);
}

/// QConv2d -> Int8Conv2d; `in_h`, `in_w` are the input's spatial extents.
template <class Arch = DefaultArch, class WQ, class AQ>
Int8Conv2d convert(const QConv2d<WQ, AQ>& l, ActQParams in, std::int64_t in_h, std::int64_t in_w) {
  static_assert(
      !std::is_same<AQ, NoFakeQuant>::value,
      "convert: the integer convolution needs an output quantizer (not fq::NoFakeQuant).");
  return Int8Conv2d(l.template int8_params<Arch>(in), l.conv_shape(in_h, in_w));
}

/// QConvBn2d -> Int8Conv2d with batch norm folded by its running statistics.
template <class Arch = DefaultArch, class WQ, class AQ>
Int8Conv2d convert(const QConvBn2d<WQ, AQ>& l, ActQParams in, std::int64_t in_h,
                   std::int64_t in_w) {
  static_assert(
      !std::is_same<AQ, NoFakeQuant>::value,
      "convert: the integer convolution needs an output quantizer (not fq::NoFakeQuant).");
  return Int8Conv2d(l.template int8_params<Arch>(in), l.conv_shape(in_h, in_w));
}

}  // namespace fq

#endif  // FQ_CONVERT_CONVERT_HPP_
