// SPDX-License-Identifier: MIT
// fakequant/layers/qlayers.hpp: the QAT layers in one include — QLinear (layers/qlinear.hpp),
// QConv2d (layers/qconv2d.hpp), QConvBn2d (layers/qconv_bn2d.hpp), ActQuant for a network's
// input (layers/act_quant.hpp), the shape layers MaxPool2d and Flatten (layers/pool.hpp) —
// and the helpers over several layers: parameters_of (for an optimizer) and
// for_each_quantizer_of (observer and fake-quant switches, QAT schedules).
//
// Each layer computes   y = Aq( act( op(x, Wq(w)) + b ) )   (layers/qlayer_base.hpp), and after
// use_integer_arithmetic(in) evaluates with the deployed integer layer itself, bit for bit
// (layers/integer_eval.hpp).
#ifndef FQ_LAYERS_QLAYERS_HPP_
#define FQ_LAYERS_QLAYERS_HPP_

#include <vector>  // vector

#include <fakequant/layers/act_quant.hpp>
#include <fakequant/layers/parameter.hpp>
#include <fakequant/layers/pool.hpp>
#include <fakequant/layers/qconv2d.hpp>
#include <fakequant/layers/qconv_bn2d.hpp>
#include <fakequant/layers/qlinear.hpp>
#include <fakequant/layers/quantizer_slots.hpp>
#include <fakequant/optim/param.hpp>

namespace fq {

/// The parameters of several layers (or quantizers), in order, for an optimizer: the one
/// implementation, optim/param.hpp.
using optim::parameters_of;

/// Calls f(q) for every quantizer of several layers, in order (switches, schedules).
template <class F, class... Layers>
void for_each_quantizer_of(F&& f, Layers&... layers) {
  (layers.for_each_quantizer(f), ...);
}

}  // namespace fq

#endif  // FQ_LAYERS_QLAYERS_HPP_
