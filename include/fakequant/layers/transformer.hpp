// SPDX-License-Identifier: MIT
// fakequant/layers/transformer.hpp: the transformer layers in one include — recipes
// (layers/recipe.hpp), LayerNorm and RmsNorm (layers/norm.hpp), QMultiHeadAttention
// (layers/attention.hpp), QMlp (layers/mlp.hpp), QEncoderBlock (layers/encoder_block.hpp),
// QPatchEmbedding and QVisionTransformer (layers/vit.hpp), run-time bit widths
// (layers/bit_widths.hpp) — and the switch of a whole model's linear layers to the int8
// kernels: use_int8_kernels(model) builds each QLinear's Int8FloatLinear from its current
// weights and quantizers (int8/float_linear.hpp: input quantized per tensor or per token inside
// the layer, LayerNorm, softmax, GELU and the attention matmuls staying in float) and
// use_float_arithmetic(model) returns to the fake-quant simulation.
#ifndef FQ_LAYERS_TRANSFORMER_HPP_
#define FQ_LAYERS_TRANSFORMER_HPP_

#include <fakequant/layers/attention.hpp>
#include <fakequant/layers/bit_widths.hpp>
#include <fakequant/layers/encoder_block.hpp>
#include <fakequant/layers/mlp.hpp>
#include <fakequant/layers/norm.hpp>
#include <fakequant/layers/recipe.hpp>
#include <fakequant/layers/vit.hpp>
#include <fakequant/simd/arch.hpp>

namespace fq {

/// Every linear layer of `model` (anything with for_each_linear) evaluates on the int8 kernels
/// (file comment); each needs an input quantizer.
template <class Arch = DefaultArch, class Model>
void use_int8_kernels(Model& model) {
  model.for_each_linear([](auto& layer) { layer.template use_int8_kernels<Arch>(); });
}
/// Every linear layer of `model` back to the float simulation.
template <class Model>
void use_float_arithmetic(Model& model) {
  model.for_each_linear([](auto& layer) { layer.use_float_arithmetic(); });
}

}  // namespace fq

#endif  // FQ_LAYERS_TRANSFORMER_HPP_
