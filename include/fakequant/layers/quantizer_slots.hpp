// SPDX-License-Identifier: MIT
// fakequant/layers/quantizer_slots.hpp: what a QAT layer's quantizer slots hold, and how a
// layer uses them — NoFakeQuant (an empty slot), the default weight and activation quantizers,
// and whether a layer with these quantizers converts to the integer model (symmetric weights
// per output channel or per tensor, a per-tensor output quantizer or none; fixed or learned). A
// slot holds NoFakeQuant or any quantizer of the protocol (quantizer/concept.hpp), run through
// ops::fake_quant; a learnable one's parameters (visit_parameters: fq::LearnableFakeQuant,
// fq::LsqQuantizer, fq::Pact) join the layer's parameters() through fq::optim::append_parameters.
#ifndef FQ_LAYERS_QUANTIZER_SLOTS_HPP_
#define FQ_LAYERS_QUANTIZER_SLOTS_HPP_

#include <cstdint>      // int64_t
#include <type_traits>  // decay_t, false_type, is_same, is_void, true_type, void_t
#include <utility>      // declval
#include <vector>       // vector

#include <fakequant/int8/params.hpp>
#include <fakequant/observer/fake_quantize_module.hpp>
#include <fakequant/ops/elementwise.hpp>
#include <fakequant/ops/fake_quant.hpp>
#include <fakequant/optim/param.hpp>
#include <fakequant/quantizer/concept.hpp>
#include <fakequant/quantizer/fake_quantizer.hpp>
#include <fakequant/scheme/presets.hpp>
#include <fakequant/tape/tape.hpp>

namespace fq {

/// No fake quantization at this point (an identity quantizer slot).
struct NoFakeQuant {};

/// Default quantizers: int8 per-channel symmetric weights with a min-max observer, and uint8
/// per-tensor affine activations with a moving-average observer. PyTorch's QAT qconfig also
/// gives the weights a moving-average observer; its range then trails a growing weight, whose
/// STE gradient is masked once it leaves the range, so the largest weights can grow only as
/// fast as the average follows. A min-max observer keeps every weight inside its range.
using DefaultWeightFakeQuant =
    FakeQuantize<Int8WeightPerChannelSymmetric, PerChannelMinMaxObserver>;
using DefaultActFakeQuant = FakeQuantize<Uint8ActPerTensorAffine, MovingAverageMinMaxObserver>;

namespace detail {
/// Tape quantizers that can be sized before their first forward (LearnableFakeQuant).
template <class Q, class = void>
struct has_channel_count : std::false_type {};
template <class Q>
struct has_channel_count<
    Q, std::void_t<decltype(std::declval<Q&>().set_channel_count(std::int64_t{1})),
                   decltype(Q::kPerChannel), decltype(Q::kAxis)>> : std::true_type {};

/// True for NoFakeQuant and quantizers of the protocol; else the protocol's sentences (a
/// layer checks its slots with it when its class is instantiated).
template <class Q>
constexpr bool check_quantizer_slot() {
  if constexpr (std::is_same<Q, NoFakeQuant>::value)
    return true;
  else
    return assert_quantizer<Q>();
}
/// A slot's quantizer on the tape (x itself for NoFakeQuant).
template <class Arch, class Q>
Var maybe_fake_quant(Tape& tape, const Var& x, Q& q) {
  if constexpr (std::is_same<Q, NoFakeQuant>::value) {
    return x;
  } else {
    return ops::fake_quant<Arch>(tape, x, q);
  }
}
/// Appends a learnable quantizer's parameters (nothing for the others, NoFakeQuant included).
template <class Q>
void append_quantizer_parameters(Q& q, std::vector<optim::ParamRef>& out) {
  if constexpr (!std::is_same<Q, NoFakeQuant>::value) optim::append_parameters(out, q);
}
inline Var activate(Tape& tape, const Var& x, Activation a) {
  switch (a) {
    case Activation::kReLU:
      return ops::relu(tape, x);
    case Activation::kReLU6:
      return ops::relu6(tape, x);
    default:
      return x;
  }
}
template <class Q, class F>
void visit_quantizer(Q& q, F& f) {
  if constexpr (!std::is_same<Q, NoFakeQuant>::value) f(q);
}

/// Quantizers with fixed qparams (fq::FakeQuantize, fq::FakeQuantizer), as convert needs.
template <class Q>
struct is_fixed_fake_quant : std::false_type {};
template <class S, class O>
struct is_fixed_fake_quant<FakeQuantize<S, O>> : std::true_type {};
template <class S>
struct is_fixed_fake_quant<FakeQuantizer<S>> : std::true_type {};
/// Quantizers that deploy: the fixed ones and the learned ones (LSQ, LSQ+, PACT, directly or in
/// fq::LearnableFakeQuant), which deploy as their snapshot (learnable/freeze.hpp).
template <class Q>
inline constexpr bool is_deployable_quantizer_v =
    is_fixed_fake_quant<Q>::value || is_learned_quantizer_v<Q>;
template <class Q, bool = is_deployable_quantizer_v<Q>>
struct scheme_of {
  using type = void;
};
template <class Q>
struct scheme_of<Q, true> {
  using type = deployed_scheme_t<Q>;
};
/// A layer converts to the integer model (and evaluates in integer arithmetic) when its
/// weights are quantized per output channel or per tensor, symmetric (a learned zero point is
/// checked to be 0 when converting), and its output is per-tensor or not quantized.
template <class Q>
constexpr bool integer_weight_quantizer() {
  using S = typename scheme_of<Q>::type;
  if constexpr (std::is_void<S>::value) {
    return false;
  } else {
    return (!S::granularity::kPerChannel || S::granularity::kAxis == 0) &&
           symmetric_or_learned_weights<Q>();
  }
}
template <class S>
constexpr bool per_tensor_scheme() {
  if constexpr (std::is_void<S>::value) {
    return false;
  } else {
    return !S::granularity::kPerChannel;
  }
}
template <class WeightQ, class ActQ>
constexpr bool integer_capable() {
  return integer_weight_quantizer<WeightQ>() &&
         (std::is_same<ActQ, NoFakeQuant>::value ||
          per_tensor_scheme<typename scheme_of<ActQ>::type>());
}

}  // namespace detail
}  // namespace fq

#endif  // FQ_LAYERS_QUANTIZER_SLOTS_HPP_
