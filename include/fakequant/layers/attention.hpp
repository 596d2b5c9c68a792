// SPDX-License-Identifier: MIT
// fakequant/layers/attention.hpp: QMultiHeadAttention, multi-head self-attention with a fake
// quantizer at every matmul input (layers/recipe.hpp):
//
//   [q | k | v] = Iq(x) · Wq(W_qkv)ᵀ + b_qkv        x [B, T, D] -> [B, T, 3D] (one QLinear)
//   q, k, v     -> [B, H, T, Dh] each, Dh = D / H   (one permute; three views of it — or, when
//                                                    Q/K/V stay float, read in place from qkv)
//   S = Mq(q) · Mq(k)ᵀ / √Dh                        [B, H, T, T] (k read transposed: no copy;
//                                                    1/√Dh is the GEMM's alpha: no extra pass)
//   P = softmax(S) along the keys
//   O = Pq(P) · Mq(v)                                [B, H, T, Dh]
//   y = Iq(merge_heads(O)) · Wq(W_o)ᵀ + b_o          [B, T, D] (float V: O written merged)
//
// As PyTorch's nn.MultiheadAttention (batch_first, no mask) and timm's ViT Attention: one
// fused QKV projection — with per-output-channel or group-wise (along K) weight quantizers,
// identical to three separate projections, and one input quantizer observes x once. Each of
// the four activation quantizers (Q, K, V, P) is its own object with its own observer.
// Gradients: those of the ops (ops::matmul, ops::softmax, the fake-quant STE).
#ifndef FQ_LAYERS_ATTENTION_HPP_
#define FQ_LAYERS_ATTENTION_HPP_

#include <cmath>        // sqrt
#include <cstdint>      // int64_t
#include <cstring>      // memcpy
#include <random>       // mt19937
#include <type_traits>  // is_same
#include <vector>       // vector

#include <Eigen/Core>

#include <fakequant/base/error.hpp>
#include <fakequant/layers/layer_state.hpp>
#include <fakequant/layers/qlinear.hpp>
#include <fakequant/layers/quantizer_slots.hpp>
#include <fakequant/layers/recipe.hpp>
#include <fakequant/ops/matmul.hpp>
#include <fakequant/ops/shape.hpp>
#include <fakequant/ops/softmax.hpp>
#include <fakequant/optim/param.hpp>
#include <fakequant/simd/arch.hpp>
#include <fakequant/tape/tape.hpp>

namespace fq {

namespace detail {
/// [B, T, 3, H, Dh] -> [3, B, H, T, Dh]: the fused projection's output as Q, K and V heads, one
/// copy (the backward scatters the three gradients back).
inline Var qkv_heads(Tape& tape, const Var& qkv, std::int64_t heads) {
  const std::int64_t b = qkv.size(0), t = qkv.size(1), d = qkv.size(2) / 3, dh = d / heads;
  const bool need = detail::needs_grad(tape, {&qkv});
  Var y = tape.variable({3, b, heads, t, dh}, need);
  // Row (bi, ti, part, h) of the input is row (part, bi, h, ti) of the output; rows are Dh long.
  auto for_rows = [=](auto&& f) {
    for (std::int64_t bi = 0; bi < b; ++bi)
      for (std::int64_t ti = 0; ti < t; ++ti)
        for (std::int64_t part = 0; part < 3; ++part)
          for (std::int64_t h = 0; h < heads; ++h)
            f((((bi * t + ti) * 3 + part) * heads + h) * dh,
              (((part * b + bi) * heads + h) * t + ti) * dh);
  };
  const auto bytes = static_cast<std::size_t>(dh) * sizeof(float);
  const float* src = qkv.value();
  float* dst = y.value();
  for_rows([&](std::int64_t in, std::int64_t out) { std::memcpy(dst + out, src + in, bytes); });
  if (need)
    tape.push_backward([qkv, y, for_rows, dh] {
      float* dx = qkv.grad();
      const float* dy = y.grad();
      for_rows([&](std::int64_t in, std::int64_t out) {
        for (std::int64_t j = 0; j < dh; ++j) dx[in + j] += dy[out + j];
      });
    });
  return y;
}
/// Head h of image bi of part `part` (0: Q, 1: K, 2: V) of the fused projection's output
/// qkv [B, T, 3D], in place: a T x Dh matrix with row stride 3D (no copy).
struct QkvLayout {
  std::int64_t t, d, dh;
  using Map = Eigen::Map<RowMatrixXf, 0, Eigen::OuterStride<>>;
  Map at(float* qkv, std::int64_t bi, std::int64_t h, int part) const {
    return {qkv + (bi * t * 3 + part) * d + h * dh, t, dh, Eigen::OuterStride<>(3 * d)};
  }
};
/// S[bi, h] = alpha · Q_bh · K_bhᵀ, Q and K read in place from qkv [B, T, 3D] -> [B, H, T, T]
/// (the float Q/K path: ops::matmul's arithmetic on qkv_heads' copies, without the copies).
inline Var head_scores(Tape& tape, const Var& qkv, std::int64_t heads, float alpha) {
  const std::int64_t b = qkv.size(0), t = qkv.size(1), d = qkv.size(2) / 3;
  const QkvLayout L{t, d, d / heads};
  const bool need = detail::needs_grad(tape, {&qkv});
  Var s = tape.variable({b, heads, t, t}, need);
  using Map = Eigen::Map<RowMatrixXf>;
  for (std::int64_t bi = 0; bi < b; ++bi)
    for (std::int64_t h = 0; h < heads; ++h)
      Map(s.value() + (bi * heads + h) * t * t, t, t).noalias() =
          alpha * (L.at(qkv.value(), bi, h, 0) * L.at(qkv.value(), bi, h, 1).transpose());
  if (need)
    tape.push_backward([qkv, s, L, b, heads, alpha] {
      for (std::int64_t bi = 0; bi < b; ++bi)
        for (std::int64_t h = 0; h < heads; ++h) {
          const Map ds(s.grad() + (bi * heads + h) * L.t * L.t, L.t, L.t);
          L.at(qkv.grad(), bi, h, 0).noalias() += alpha * (ds * L.at(qkv.value(), bi, h, 1));
          L.at(qkv.grad(), bi, h, 1).noalias() +=
              alpha * (ds.transpose() * L.at(qkv.value(), bi, h, 0));
        }
    });
  return s;
}
/// O[bi, :, h·Dh : (h+1)·Dh] = P_bh · V_bh for p [B, H, T, T], V read in place from qkv: the
/// heads merged on the fly -> [B, T, D] (the float V path: no qkv_heads or merge_heads copy).
inline Var head_mix(Tape& tape, const Var& p, const Var& qkv, std::int64_t heads) {
  const std::int64_t b = qkv.size(0), t = qkv.size(1), d = qkv.size(2) / 3;
  const QkvLayout L{t, d, d / heads};
  const bool need = detail::needs_grad(tape, {&p, &qkv});
  Var o = tape.variable({b, t, d}, need);
  using Map = Eigen::Map<RowMatrixXf>;
  auto out = [L](float* base, std::int64_t bi, std::int64_t h) {
    return QkvLayout::Map(base + bi * L.t * L.d + h * L.dh, L.t, L.dh, Eigen::OuterStride<>(L.d));
  };
  for (std::int64_t bi = 0; bi < b; ++bi)
    for (std::int64_t h = 0; h < heads; ++h)
      out(o.value(), bi, h).noalias() =
          Map(p.value() + (bi * heads + h) * t * t, t, t) * L.at(qkv.value(), bi, h, 2);
  if (need)
    tape.push_backward([p, qkv, o, L, out, b, heads] {
      for (std::int64_t bi = 0; bi < b; ++bi)
        for (std::int64_t h = 0; h < heads; ++h) {
          const auto dout = out(o.grad(), bi, h);
          const std::int64_t off = (bi * heads + h) * L.t * L.t;
          if (p.requires_grad())
            Map(p.grad() + off, L.t, L.t).noalias() +=
                dout * L.at(qkv.value(), bi, h, 2).transpose();
          if (qkv.requires_grad())
            L.at(qkv.grad(), bi, h, 2).noalias() +=
                Map(p.value() + off, L.t, L.t).transpose() * dout;
        }
    });
  return o;
}
/// Part `i` (0: Q, 1: K, 2: V) of qkv_heads' output: a view, no copy.
inline Var qkv_part(const Var& heads, int i) {
  const Shape& s = heads.shape();
  const std::int64_t n = heads.numel() / 3;
  return Var(heads.tape(), heads.value() + i * n, heads.grad() ? heads.grad() + i * n : nullptr,
             {s[1], s[2], s[3], s[4]});
}
}  // namespace detail

/// Multi-head self-attention over [B, T, D] with recipe R's quantizers (file comment).
template <class R = FloatRecipe>
class QMultiHeadAttention {
 public:
  using Linear = QLinear<typename R::weight, NoFakeQuant, typename R::input>;

  QMultiHeadAttention(std::int64_t dim, std::int64_t heads, std::mt19937& rng)
      : dim_(checked_dim(dim, heads)),
        heads_(heads),
        qkv_(dim, 3 * dim, rng),
        proj_(dim, dim, rng) {}

  template <class Arch = DefaultArch>
  Var forward(Tape& tape, const Var& x) {
    FQ_CHECK(
        x.shape().rank == 3 && x.size(2) == dim_, ErrorCode::kShapeMismatch,
        detail::msg("QMultiHeadAttention: x ", x.shape().str(), " must be [B, T, ", dim_, "]"));
    const Var qkv = qkv_.template forward<Arch>(tape, x);
    const std::int64_t head_dim = dim_ / heads_;  // exact: heads divides dim (constructor)
    const float inv_sqrt_dh = 1.0f / std::sqrt(static_cast<float>(head_dim));
    if constexpr (std::is_same<typename R::matmul, NoFakeQuant>::value) {
      // Float Q, K, V: read in place from qkv, O written merged (no layout copies).
      const Var s = detail::head_scores(tape, qkv, heads_, inv_sqrt_dh);
      const Var p = detail::maybe_fake_quant<Arch>(tape, ops::softmax<Arch>(tape, s, -1), p_q_);
      return proj_.template forward<Arch>(tape, detail::head_mix(tape, p, qkv, heads_));
    } else {
      const Var heads = detail::qkv_heads(tape, qkv, heads_);
      const Var q = detail::maybe_fake_quant<Arch>(tape, detail::qkv_part(heads, 0), q_q_);
      const Var k = detail::maybe_fake_quant<Arch>(tape, detail::qkv_part(heads, 1), k_q_);
      const Var v = detail::maybe_fake_quant<Arch>(tape, detail::qkv_part(heads, 2), v_q_);
      const Var s = ops::matmul<Arch>(tape, q, k, false, true, inv_sqrt_dh);
      const Var p = detail::maybe_fake_quant<Arch>(tape, ops::softmax<Arch>(tape, s, -1), p_q_);
      const Var o = ops::matmul<Arch>(tape, p, v);
      return proj_.template forward<Arch>(tape, ops::merge_heads(tape, o));
    }
  }

  /// The checkpoint state (base/state.hpp): dim and heads (must match), the two projections,
  /// then the Q, K, V and probability quantizers (empty slots report nothing).
  template <class V>
  void visit_state(V& v) {
    v.kind("qmulti_head_attention");
    v.config("dim", dim_);
    v.config("heads", heads_);
    v.child("qkv", qkv_);
    v.child("proj", proj_);
    detail::visit_slot_state(v, "q_quantizer", q_q_);
    detail::visit_slot_state(v, "k_quantizer", k_q_);
    detail::visit_slot_state(v, "v_quantizer", v_q_);
    detail::visit_slot_state(v, "prob_quantizer", p_q_);
  }

  /// The projections' parameters, then the learnable activation quantizers'.
  std::vector<optim::ParamRef> parameters() {
    return optim::parameters_of(qkv_, proj_, q_q_, k_q_, v_q_, p_q_);
  }
  /// Every quantizer in forward order: the QKV projection's (input, weight), Q, K, V, P, the
  /// output projection's.
  template <class F>
  void for_each_quantizer(F&& f) {
    qkv_.for_each_quantizer(f);
    detail::visit_quantizer(q_q_, f);
    detail::visit_quantizer(k_q_, f);
    detail::visit_quantizer(v_q_, f);
    detail::visit_quantizer(p_q_, f);
    proj_.for_each_quantizer(f);
  }
  /// f(layer) for the two linear layers (QKV, output projection).
  template <class F>
  void for_each_linear(F&& f) {
    f(qkv_);
    f(proj_);
  }
  Linear& qkv() noexcept { return qkv_; }
  Linear& proj() noexcept { return proj_; }
  typename R::matmul& q_quantizer() noexcept { return q_q_; }
  typename R::matmul& k_quantizer() noexcept { return k_q_; }
  typename R::matmul& v_quantizer() noexcept { return v_q_; }
  typename R::prob& prob_quantizer() noexcept { return p_q_; }
  std::int64_t dim() const noexcept { return dim_; }
  std::int64_t heads() const noexcept { return heads_; }

 private:
  static std::int64_t checked_dim(std::int64_t dim, std::int64_t heads) {
    FQ_CHECK(dim > 0 && heads > 0 && dim % heads == 0, ErrorCode::kInvalidArgument,
             detail::msg("QMultiHeadAttention: dim = ", dim, " must be a positive multiple of ",
                         "heads = ", heads));
    return dim;
  }

  std::int64_t dim_, heads_;
  Linear qkv_, proj_;
  typename R::matmul q_q_{}, k_q_{}, v_q_{};
  typename R::prob p_q_{};
};

}  // namespace fq

#endif  // FQ_LAYERS_ATTENTION_HPP_
