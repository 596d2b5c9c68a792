// SPDX-License-Identifier: MIT
// fakequant/layers/encoder_block.hpp: QEncoderBlock, the pre-norm transformer encoder block
// (ViT, GPT-2 and most models since):
//   h = x + drop(Attn(LN1(x)))
//   y = h + drop(MLP(LN2(h)))                         x, y [B, T, D]
// with recipe R's quantizers at every matmul input (layers/recipe.hpp, layers/attention.hpp,
// layers/mlp.hpp); the norms, residual adds and dropout stay in float. Dropout (inverted,
// ops::dropout) is active only in training mode (train(true), the default) with p > 0; its
// masks come from the block's seed and a counter of training forwards, so a run is
// reproducible for a seed.
#ifndef FQ_LAYERS_ENCODER_BLOCK_HPP_
#define FQ_LAYERS_ENCODER_BLOCK_HPP_

#include <cmath>    // isfinite
#include <cstdint>  // int64_t, uint64_t
#include <random>   // mt19937
#include <vector>   // vector

#include <fakequant/base/error.hpp>
#include <fakequant/layers/attention.hpp>
#include <fakequant/layers/mlp.hpp>
#include <fakequant/layers/norm.hpp>
#include <fakequant/layers/recipe.hpp>
#include <fakequant/ops/dropout.hpp>
#include <fakequant/ops/elementwise.hpp>
#include <fakequant/optim/param.hpp>
#include <fakequant/simd/arch.hpp>
#include <fakequant/tape/tape.hpp>

namespace fq {

/// The sizes of an encoder block.
struct EncoderBlockOptions {
  std::int64_t dim = 64;
  std::int64_t heads = 4;
  std::int64_t mlp_hidden = 256;  ///< 4·dim in ViT
  float dropout = 0.0f;           ///< after the attention and the MLP, in training
  float norm_eps = 1e-6f;         ///< timm's ViT LayerNorm eps
  MlpActivation activation = MlpActivation::kGelu;
};

/// Pre-norm transformer encoder block with recipe R's quantizers (file comment).
template <class R = FloatRecipe>
class QEncoderBlock {
 public:
  QEncoderBlock(const EncoderBlockOptions& o, std::mt19937& rng, std::uint64_t seed = 0)
      : ln1_(o.dim, o.norm_eps),
        attn_(o.dim, o.heads, rng),
        ln2_(o.dim, o.norm_eps),
        mlp_(o.dim, o.mlp_hidden, rng, o.activation),
        dropout_(checked_dropout(o.dropout)),
        seed_(seed) {}

  template <class Arch = DefaultArch>
  Var forward(Tape& tape, const Var& x) {
    const Var h = ops::add(
        tape, x,
        drop(tape, attn_.template forward<Arch>(tape, ln1_.template forward<Arch>(tape, x))));
    return ops::add(
        tape, h,
        drop(tape, mlp_.template forward<Arch>(tape, ln2_.template forward<Arch>(tape, h))));
  }
  /// Training mode (dropout on) or evaluation.
  void train(bool on) noexcept { training_ = on; }
  bool training() const noexcept { return training_; }

  /// The checkpoint state (base/state.hpp): dropout and seed (must match), the dropout call
  /// count (which draws the next masks, so a resumed run drops the same units), the norms,
  /// the attention and the MLP. The training flag is the caller's to set.
  template <class V>
  void visit_state(V& v) {
    v.kind("qencoder_block");
    v.config("dropout", dropout_);
    v.config("seed", seed_);
    v.state("dropout_calls", calls_);
    v.child("norm1", ln1_);
    v.child("attention", attn_);
    v.child("norm2", ln2_);
    v.child("mlp", mlp_);
  }
  std::vector<optim::ParamRef> parameters() {
    return optim::parameters_of(ln1_, attn_, ln2_, mlp_);
  }
  template <class F>
  void for_each_quantizer(F&& f) {
    attn_.for_each_quantizer(f);
    mlp_.for_each_quantizer(f);
  }
  /// f(layer) for the linear layers (attention's, then the MLP's).
  template <class F>
  void for_each_linear(F&& f) {
    attn_.for_each_linear(f);
    mlp_.for_each_linear(f);
  }
  LayerNorm& norm1() noexcept { return ln1_; }
  LayerNorm& norm2() noexcept { return ln2_; }
  QMultiHeadAttention<R>& attention() noexcept { return attn_; }
  QMlp<R>& mlp() noexcept { return mlp_; }

 private:
  static float checked_dropout(float p) {
    FQ_CHECK(std::isfinite(p) && p >= 0.0f && p < 1.0f, ErrorCode::kInvalidArgument,
             detail::msg("QEncoderBlock: dropout must be in [0, 1), got ", p));
    return p;
  }
  Var drop(Tape& tape, const Var& x) {
    if (!training_ || dropout_ == 0.0f) return x;
    return ops::dropout(tape, x, dropout_, seed_ + 0x9E3779B97F4A7C15ull * ++calls_, true);
  }

  LayerNorm ln1_;
  QMultiHeadAttention<R> attn_;
  LayerNorm ln2_;
  QMlp<R> mlp_;
  float dropout_;
  std::uint64_t seed_, calls_ = 0;
  bool training_ = true;
};

}  // namespace fq

#endif  // FQ_LAYERS_ENCODER_BLOCK_HPP_
