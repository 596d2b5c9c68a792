// SPDX-License-Identifier: MIT
// tests/layers/vit_test_util.hpp: the small vision transformer the layer and checkpoint tests
// share, and its mixed-precision recipe set.
#ifndef FQ_TESTS_LAYERS_VIT_TEST_UTIL_HPP_
#define FQ_TESTS_LAYERS_VIT_TEST_UTIL_HPP_

#include <fakequant/layers/recipe.hpp>
#include <fakequant/layers/vit.hpp>

namespace fq_test {

/// 8x8 images of 2 channels in 4x4 patches (4 tokens of 32 features), 2 blocks, 4 classes,
/// no dropout. Every linear layer's K is divisible by 32, the group size of W4A8G32Recipe.
inline fq::VitOptions small_vit() {
  fq::VitOptions vo;
  vo.image = 8;
  vo.channels = 2;
  vo.patch = 4;
  vo.classes = 4;
  vo.depth = 2;
  vo.block.dim = 32;
  vo.block.heads = 2;
  vo.block.mlp_hidden = 64;
  return vo;
}

/// Embedding and head at W8A8, the encoder blocks at W4A8 with groups of 32.
using MixedVit = fq::QVisionTransformer<fq::W8A8Recipe, fq::W4A8G32Recipe, fq::W8A8Recipe>;

}  // namespace fq_test

#endif  // FQ_TESTS_LAYERS_VIT_TEST_UTIL_HPP_
