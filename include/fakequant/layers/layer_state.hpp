// SPDX-License-Identifier: MIT
// fakequant/layers/layer_state.hpp: what the QAT layers report to a checkpoint (the state
// protocol, base/state.hpp) — a quantizer slot (nothing for fq::NoFakeQuant; a quantizer
// without visit_state does not compile), and the part every QLinear, QConv2d and QConvBn2d
// shares: the fused activation (must match), the weight and its two quantizer slots.
#ifndef FQ_LAYERS_LAYER_STATE_HPP_
#define FQ_LAYERS_LAYER_STATE_HPP_

#include <cstdint>      // int32_t, int64_t
#include <type_traits>  // is_same

#include <fakequant/layers/quantizer_slots.hpp>
#include <fakequant/ops/conv2d.hpp>

namespace fq {
namespace detail {

/// Reports a quantizer slot's state under `name` (an empty slot reports nothing, so a load
/// into a layer whose slots differ meets entries of other names and is refused).
template <class V, class Q>
void visit_slot_state(V& v, const char* name, Q& q) {
  if constexpr (!std::is_same<Q, NoFakeQuant>::value) v.child(name, q);
}

/// The state every QAT layer has (file comment); L is a layer of layers/qlayer_base.hpp.
template <class V, class L>
void visit_qlayer_state(V& v, L& layer) {
  v.config("activation", static_cast<std::int32_t>(layer.activation()));
  v.child("weight", layer.weight());
  visit_slot_state(v, "weight_quantizer", layer.weight_quantizer());
  visit_slot_state(v, "output_quantizer", layer.output_quantizer());
}

/// A convolution's options, which must match.
template <class V>
void visit_conv_options(V& v, const ops::Conv2dOptions& o) {
  const std::int64_t opts[] = {o.stride_h, o.stride_w, o.pad_h, o.pad_w, o.groups};
  v.config_array("conv_options", opts, 5);
}

}  // namespace detail
}  // namespace fq

#endif  // FQ_LAYERS_LAYER_STATE_HPP_
