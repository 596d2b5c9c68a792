// SPDX-License-Identifier: MIT
// fakequant/layers/act_quant.hpp: ActQuant, a fake quantizer as a layer of its own — the
// network input's quantizer (as PyTorch's QuantStub), whose qparams the integer model
// quantizes its float input with (fq::convert_sequential takes it as its first argument).
#ifndef FQ_LAYERS_ACT_QUANT_HPP_
#define FQ_LAYERS_ACT_QUANT_HPP_

#include <vector>  // vector

#include <fakequant/layers/layer_state.hpp>
#include <fakequant/layers/quantizer_slots.hpp>
#include <fakequant/optim/param.hpp>
#include <fakequant/simd/arch.hpp>
#include <fakequant/tape/tape.hpp>

namespace fq {

/// Fake-quantizes a tensor (e.g. the network input, as PyTorch's QuantStub).
template <class Q = DefaultActFakeQuant>
class ActQuant {
  static_assert(detail::check_quantizer_slot<Q>(),
                "ActQuant: Q is fq::NoFakeQuant or a quantizer of the protocol "
                "(quantizer/concept.hpp).");

 public:
  /// Arch: the kernels' instruction set (fq::DefaultArch; simd/arch.hpp).
  template <class Arch = DefaultArch>
  Var forward(Tape& tape, const Var& x) {
    return detail::maybe_fake_quant<Arch>(tape, x, q_);
  }
  std::vector<optim::ParamRef> parameters() {
    std::vector<optim::ParamRef> p;
    detail::append_quantizer_parameters(q_, p);
    return p;
  }
  template <class F>
  void for_each_quantizer(F&& f) {
    f(q_);
  }
  /// The checkpoint state (base/state.hpp): the quantizer's.
  template <class V>
  void visit_state(V& v) {
    v.kind("act_quant");
    detail::visit_slot_state(v, "quantizer", q_);
  }
  Q& quantizer() noexcept { return q_; }

 private:
  Q q_;
};

}  // namespace fq

#endif  // FQ_LAYERS_ACT_QUANT_HPP_
