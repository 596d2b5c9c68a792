// SPDX-License-Identifier: MIT
// fakequant/layers/vit.hpp: QPatchEmbedding and QVisionTransformer, a Vision Transformer
// (Dosovitskiy et al. 2021; timm's VisionTransformer with a class token) for QAT:
//
//   patches  x [B, C, H, W] -> [B, T, C·P·P], T = (H/P)·(W/P), features in (c, py, px) order
//            (the order of a [D, C, P, P] conv weight: equal to a P×P conv with stride P)
//   embed    e = Iq(patches) · Wq(W_e)ᵀ + b_e                                  [B, T, D]
//   tokens   z = concat(cls, e) + pos                                            [B, T+1, D]
//   blocks   z = QEncoderBlock(z), depth times                                   [B, T+1, D]
//   head     logits = Iq(LN(z)[:, 0]) · Wq(W_h)ᵀ + b_h                           [B, classes]
//
// Three recipes (layers/recipe.hpp): the patch embedding's, the blocks', the head's — the
// mixed precision of the field (first and last layers at 8 bits, the rest lower) at compile
// time; layers/bit_widths.hpp sets bit widths per layer at run time. The class token starts at
// 0, the positional embedding ~ N(0, 0.02²) (timm), linear layers as PyTorch's nn.Linear.
#ifndef FQ_LAYERS_VIT_HPP_
#define FQ_LAYERS_VIT_HPP_

#include <cstddef>  // size_t
#include <cstdint>  // int64_t, uint64_t
#include <random>   // mt19937, normal_distribution
#include <string>   // string, to_string
#include <vector>   // vector

#include <fakequant/base/error.hpp>
#include <fakequant/layers/encoder_block.hpp>
#include <fakequant/layers/norm.hpp>
#include <fakequant/layers/parameter.hpp>
#include <fakequant/layers/qlinear.hpp>
#include <fakequant/layers/recipe.hpp>
#include <fakequant/ops/elementwise.hpp>
#include <fakequant/ops/shape.hpp>
#include <fakequant/optim/param.hpp>
#include <fakequant/simd/arch.hpp>
#include <fakequant/tape/tape.hpp>

namespace fq {

/// The sizes of a Vision Transformer (defaults: the Fashion-MNIST demo's).
struct VitOptions {
  std::int64_t image = 28;    ///< square images of image × image pixels
  std::int64_t channels = 1;  ///< input channels
  std::int64_t patch = 7;     ///< square patches; must divide image
  std::int64_t classes = 10;
  std::int64_t depth = 4;  ///< encoder blocks
  EncoderBlockOptions block;
  std::uint64_t seed = 0;  ///< dropout masks (EncoderBlockOptions::dropout)

  std::int64_t tokens() const noexcept { return (image / patch) * (image / patch); }
};

namespace detail {
/// [B, C, H, W] -> [B, (H/P)·(W/P), C·P·P] (file comment); the backward scatters back.
inline Var patchify(Tape& tape, const Var& x, std::int64_t p) {
  const std::int64_t b = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  const std::int64_t gh = h / p, gw = w / p;
  const bool need = detail::needs_grad(tape, {&x});
  Var y = tape.variable({b, gh * gw, c * p * p}, need);
  // Each run of P pixels (one patch row of one channel) moves as a block.
  auto for_runs = [=](auto&& f) {
    std::int64_t out = 0;
    for (std::int64_t bi = 0; bi < b; ++bi)
      for (std::int64_t i = 0; i < gh; ++i)
        for (std::int64_t j = 0; j < gw; ++j)
          for (std::int64_t ci = 0; ci < c; ++ci)
            for (std::int64_t py = 0; py < p; ++py, out += p)
              f(((bi * c + ci) * h + i * p + py) * w + j * p, out);
  };
  const float* src = x.value();
  float* dst = y.value();
  for_runs([&](std::int64_t in, std::int64_t out) {
    for (std::int64_t k = 0; k < p; ++k) dst[out + k] = src[in + k];
  });
  if (need)
    tape.push_backward([x, y, for_runs, p] {
      float* dx = x.grad();
      const float* dy = y.grad();
      for_runs([&](std::int64_t in, std::int64_t out) {
        for (std::int64_t k = 0; k < p; ++k) dx[in + k] += dy[out + k];
      });
    });
  return y;
}
}  // namespace detail

/// Patches, their linear embedding, the class token and the positional embedding.
template <class R = FloatRecipe>
class QPatchEmbedding {
 public:
  using Linear = QLinear<typename R::weight, NoFakeQuant, typename R::input>;

  QPatchEmbedding(const VitOptions& o, std::mt19937& rng)
      : o_(checked(o)),
        proj_(o.channels * o.patch * o.patch, o.block.dim, rng),
        cls_({1, o.block.dim}, "vit.cls_token", false),
        pos_({o.tokens() + 1, o.block.dim}, "vit.pos_embed", false) {
    std::normal_distribution<float> n(0.0f, 0.02f);
    for (float& v : pos_.value()) v = n(rng);
  }

  template <class Arch = DefaultArch>
  Var forward(Tape& tape, const Var& x) {
    FQ_CHECK(x.shape().rank == 4 && x.size(1) == o_.channels && x.size(2) == o_.image &&
                 x.size(3) == o_.image,
             ErrorCode::kShapeMismatch,
             detail::msg("QPatchEmbedding: images ", x.shape().str(), " must be [B, ", o_.channels,
                         ", ", o_.image, ", ", o_.image, "]"));
    const std::int64_t b = x.size(0), d = o_.block.dim;
    const Var e = proj_.template forward<Arch>(tape, detail::patchify(tape, x, o_.patch));
    const Var cls = ops::expand(tape, cls_.var(tape), {b, 1, d});
    return ops::add(tape, ops::concat(tape, {cls, e}, 1), pos_.var(tape));
  }
  /// The checkpoint state (base/state.hpp): the patch size (must match), the projection, the
  /// class token and the positional embedding.
  template <class V>
  void visit_state(V& v) {
    v.kind("qpatch_embedding");
    v.config("patch", o_.patch);
    v.child("proj", proj_);
    v.child("class_token", cls_);
    v.child("position_embedding", pos_);
  }
  std::vector<optim::ParamRef> parameters() {
    std::vector<optim::ParamRef> p = optim::parameters_of(proj_);
    p.push_back(cls_.ref());
    p.push_back(pos_.ref());
    return p;
  }
  template <class F>
  void for_each_quantizer(F&& f) {
    proj_.for_each_quantizer(f);
  }
  template <class F>
  void for_each_linear(F&& f) {
    f(proj_);
  }
  Linear& proj() noexcept { return proj_; }
  Parameter& class_token() noexcept { return cls_; }
  Parameter& position_embedding() noexcept { return pos_; }

 private:
  static const VitOptions& checked(const VitOptions& o) {
    FQ_CHECK(o.image > 0 && o.channels > 0 && o.patch > 0 && o.image % o.patch == 0,
             ErrorCode::kInvalidArgument,
             detail::msg("QPatchEmbedding: the patch size ", o.patch,
                         " must be > 0 and divide the image size ", o.image, " (channels ",
                         o.channels, ")"));
    FQ_CHECK(o.block.dim > 0, ErrorCode::kInvalidArgument,
             detail::msg("QPatchEmbedding: dim must be > 0, got ", o.block.dim));
    return o;
  }

  VitOptions o_;
  Linear proj_;
  Parameter cls_, pos_;
};

/// A Vision Transformer for QAT with per-part recipes (file comment).
template <class EmbedR = FloatRecipe, class BlockR = EmbedR, class HeadR = EmbedR>
class QVisionTransformer {
 public:
  using Block = QEncoderBlock<BlockR>;
  using Head = QLinear<typename HeadR::weight, NoFakeQuant, typename HeadR::input>;

  QVisionTransformer(const VitOptions& o, std::mt19937& rng)
      : o_(o),
        embed_(o, rng),
        blocks_(make_blocks(o, rng)),
        norm_(o.block.dim, o.block.norm_eps),
        head_(o.block.dim, checked_classes(o.classes), rng) {}

  /// Logits [B, classes] of images [B, C, H, W].
  template <class Arch = DefaultArch>
  Var forward(Tape& tape, const Var& x) {
    Var z = embed_.template forward<Arch>(tape, x);
    for (Block& blk : blocks_) z = blk.template forward<Arch>(tape, z);
    z = norm_.template forward<Arch>(tape, z);
    const Var cls = ops::reshape(tape, ops::slice(tape, z, 1, 0, 1), {z.size(0), o_.block.dim});
    return head_.template forward<Arch>(tape, cls);
  }
  /// Training mode (dropout) or evaluation.
  void train(bool on) noexcept {
    for (Block& blk : blocks_) blk.train(on);
  }
  /// The checkpoint state (base/state.hpp): depth (must match), embedding, blocks ("block0",
  /// "block1", ...), final norm and head.
  template <class V>
  void visit_state(V& v) {
    v.kind("qvision_transformer");
    v.config("depth", static_cast<std::int64_t>(blocks_.size()));
    v.child("embedding", embed_);
    for (std::size_t i = 0; i < blocks_.size(); ++i) {
      const std::string name = "block" + std::to_string(i);
      v.child(name.c_str(), blocks_[i]);
    }
    v.child("norm", norm_);
    v.child("head", head_);
  }
  /// Every parameter: embedding, blocks, final norm, head (each layer's quantizers' after it).
  std::vector<optim::ParamRef> parameters() {
    std::vector<optim::ParamRef> p = embed_.parameters();
    for (Block& blk : blocks_) optim::append_parameters(p, blk);
    optim::append_parameters(p, norm_);
    optim::append_parameters(p, head_);
    return p;
  }
  /// Every quantizer in forward order.
  template <class F>
  void for_each_quantizer(F&& f) {
    embed_.for_each_quantizer(f);
    for (Block& blk : blocks_) blk.for_each_quantizer(f);
    head_.for_each_quantizer(f);
  }
  /// f(layer) for every linear layer in forward order (patch embedding, blocks, head).
  template <class F>
  void for_each_linear(F&& f) {
    embed_.for_each_linear(f);
    for (Block& blk : blocks_) blk.for_each_linear(f);
    f(head_);
  }
  const VitOptions& options() const noexcept { return o_; }
  QPatchEmbedding<EmbedR>& embedding() noexcept { return embed_; }
  std::vector<Block>& blocks() noexcept { return blocks_; }
  LayerNorm& norm() noexcept { return norm_; }
  Head& head() noexcept { return head_; }

 private:
  static std::vector<Block> make_blocks(const VitOptions& o, std::mt19937& rng) {
    FQ_CHECK(o.depth > 0, ErrorCode::kInvalidArgument,
             detail::msg("QVisionTransformer: depth must be > 0, got ", o.depth));
    std::vector<Block> blocks;
    blocks.reserve(static_cast<std::size_t>(o.depth));
    for (std::int64_t i = 0; i < o.depth; ++i)
      blocks.emplace_back(o.block, rng, o.seed + static_cast<std::uint64_t>(i) * 0x100000001B3ull);
    return blocks;
  }
  static std::int64_t checked_classes(std::int64_t c) {
    FQ_CHECK(c > 0, ErrorCode::kInvalidArgument,
             detail::msg("QVisionTransformer: classes must be > 0, got ", c));
    return c;
  }

  VitOptions o_;
  QPatchEmbedding<EmbedR> embed_;
  std::vector<Block> blocks_;
  LayerNorm norm_;
  Head head_;
};

}  // namespace fq

#endif  // FQ_LAYERS_VIT_HPP_
