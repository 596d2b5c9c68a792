// SPDX-License-Identifier: MIT
// fakequant/layers/recipe.hpp: QuantRecipe, the quantizers of a transformer layer in one type —
// which quantizer guards each matmul input — and the recipes of the field's common schemes.
//
// A transformer's QAT fake-quantizes the INPUTS of every matmul (TorchAO, ModelOpt, Brevitas's
// LLM flow), not layer outputs as the CNN layers do:
//   weight  the weights of every linear layer (Q/K/V and output projections, MLP, patch
//           embedding, classifier head);
//   input   the activations entering each of those linear layers;
//   matmul  Q and K of QKᵀ, and V of attention·V (activation × activation);
//   prob    the attention probabilities, the left input of attention·V (in [0, 1]).
// LayerNorm, softmax, GELU, residual adds and embeddings stay in float, as is standard.
// A slot holds fq::NoFakeQuant (float) or any quantizer of the protocol (quantizer/concept.hpp);
// every layer of a transformer takes its own recipe, so precision mixes per layer at compile
// time (e.g. W8A8 embedding and head, W4A4 blocks: QVisionTransformer's three recipes), and
// RuntimeBitsRecipe (layers/bit_widths.hpp) takes its bit widths at run time.
//
// Quantizer switches: set_quant_switches(layer, observe, fake_quant) calls enable_observer /
// enable_fake_quant on every quantizer that has them (fq::FakeQuantize, fq::Switchable<Q>); a
// dynamic quantizer without switches (a bare fq::GroupFakeQuantizer: its scales come from each
// tensor, there is nothing to calibrate) stays on.
#ifndef FQ_LAYERS_RECIPE_HPP_
#define FQ_LAYERS_RECIPE_HPP_

#include <type_traits>  // false_type, true_type, void_t
#include <utility>      // declval

#include <fakequant/layers/quantizer_slots.hpp>
#include <fakequant/observer/fake_quantize_module.hpp>
#include <fakequant/observer/minmax_observer.hpp>
#include <fakequant/quantizer/group_quantizer.hpp>
#include <fakequant/scheme/presets.hpp>

namespace fq {

/// The quantizers of one transformer layer (file comment). ProbQ defaults to MatmulQ, MatmulQ
/// to InputQ.
template <class WeightQ, class InputQ, class MatmulQ = InputQ, class ProbQ = MatmulQ>
struct QuantRecipe {
  static_assert(detail::check_quantizer_slot<WeightQ>() && detail::check_quantizer_slot<InputQ>() &&
                    detail::check_quantizer_slot<MatmulQ>() &&
                    detail::check_quantizer_slot<ProbQ>(),
                "QuantRecipe: each slot holds fq::NoFakeQuant or a quantizer of the protocol "
                "(quantizer/concept.hpp).");
  using weight = WeightQ;
  using input = InputQ;
  using matmul = MatmulQ;
  using prob = ProbQ;
};

/// No fake quantization anywhere: the FP32 model (and a distillation teacher).
using FloatRecipe = QuantRecipe<NoFakeQuant, NoFakeQuant>;

/// W8A8 as PyTorch's default QAT qconfig: per-output-channel symmetric int8 weights (min-max
/// observer), per-tensor affine uint8 activations (moving-average min-max) at every matmul input.
using W8A8Recipe =
    QuantRecipe<FakeQuantize<Int8WeightPerChannelSymmetric, PerChannelMinMaxObserver>,
                FakeQuantize<Uint8ActPerTensorAffine, MovingAverageMinMaxObserver>>;

/// W4A8 as TorchAO's 8da4w: int4 symmetric weights in groups of 32 along K, dynamic per-token
/// asymmetric int8 activations (attention's Q, K, V and probabilities per token too).
using W4A8G32Recipe = QuantRecipe<Int4WeightGroup32Symmetric, Int8ActPerTokenDynamic>;

/// W4A4: int4 weights in groups of 32, dynamic per-token asymmetric int4 activations.
using W4A4G32Recipe = QuantRecipe<Int4WeightGroup32Symmetric, Int4ActPerTokenDynamic>;

namespace detail {
template <class Q, class = void>
struct has_switches : std::false_type {};
template <class Q>
struct has_switches<Q, std::void_t<decltype(std::declval<Q&>().enable_observer(true)),
                                   decltype(std::declval<Q&>().enable_fake_quant(true))>>
    : std::true_type {};
}  // namespace detail

/// Sets the observer and fake-quant switches of every quantizer of `layer` (anything with
/// for_each_quantizer) that has them (file comment).
template <class Layer>
void set_quant_switches(Layer& layer, bool observe, bool fake_quant) {
  layer.for_each_quantizer([&](auto& q) {
    if constexpr (detail::has_switches<std::decay_t<decltype(q)>>::value) {
      q.enable_observer(observe);
      q.enable_fake_quant(fake_quant);
    }
  });
}

}  // namespace fq

#endif  // FQ_LAYERS_RECIPE_HPP_
