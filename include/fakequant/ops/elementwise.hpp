// SPDX-License-Identifier: MIT
// fakequant/ops/elementwise.hpp: element-wise ops and reductions on a Tape.
//
//   relu:  y = max(x, 0);          dx += dy · [x > 0]
//   relu6: y = min(max(x, 0), 6);  dx += dy · [0 < x < 6]   (PyTorch's hardtanh gradient)
//   add:   y = a + b; b has a's shape, or a's trailing dims (optionally after leading 1s, e.g.
//          [T, D] or [1, T, D] added to [B, T, D]): b is repeated over a's leading dims.
//          da += dy; db += dy summed over the repeats (float, in order of the leading index)
//   scale: y = alpha · x (alpha finite); dx += alpha · dy
//   mul:   y = a ⊙ b (same shape); da += dy ⊙ b, db += dy ⊙ a
//   mean:  y = Σ x / numel (a scalar); dx += dy / numel
//   scale_channels: y[.., c, ..] = x[.., c, ..] · s[c] (or / s[c]) along `axis`;
//          dx += dy · s[c] (or dy / s[c]); ds[c] += Σ dy·x (or −Σ dy·x / s[c]²)
// An input gradient written whole (relu's, relu6's, scale's, mul's, scale_channels' dx, add's
// da and same-shape db) is stored, not added, when the op is its first writer
// (tape/grad_state.hpp); each is claimed just before it is written, so a and b may be one Var.
#ifndef FQ_OPS_ELEMENTWISE_HPP_
#define FQ_OPS_ELEMENTWISE_HPP_

#include <cmath>    // isfinite
#include <cstdint>  // int64_t, uint32_t
#include <cstring>  // memcpy
#include <limits>   // numeric_limits

#include <Eigen/Core>

#include <fakequant/simd/arch.hpp>
#include <fakequant/tape/tape.hpp>

namespace fq {
namespace ops {

namespace impl {
/// dx[i] += [0 < x[i] < hi] ? dy[i] : 0, adding +0 where the gradient is cut (as the Eigen
/// select it replaces); kAccumulate false: dx[i] = 0 + that (the bits of adding it to a zeroed
/// dx, without reading dx). Branch-free: the signs of activations are close to random, and a
/// branch per element, mispredicted half the time, made the backward ~15x slower than a
/// memcpy of its bytes (bm_train_ops). The SIMD loop selects dy or +0 as the scalar one
/// does, so both give the same bits.
template <class Arch, bool kAccumulate = true>
void clamped_relu_backward(const float* x, const float* dy, float* dx, std::int64_t n,
                           float hi) noexcept {
  std::int64_t i = 0;
#if FQ_HAS_XSIMD
  if constexpr (kSimdArch<Arch>) {
    using B = xsimd::batch<float, Arch>;
    constexpr auto kW = static_cast<std::int64_t>(B::size);
    const B zero(0.0f), top(hi);
    for (; i + kW <= n; i += kW) {
      const B v = B::load_unaligned(x + i);
      const B d = xsimd::select((v > zero) & (v < top), B::load_unaligned(dy + i), zero);
      ((kAccumulate ? B::load_unaligned(dx + i) : zero) + d).store_unaligned(dx + i);
    }
  }
#endif
  for (; i < n; ++i) {
    const float v = x[i];
    // dy's bits, or 0 (+0.0f), by a mask: no branch.
    const std::uint32_t keep =
        static_cast<std::uint32_t>(v > 0.0f) & static_cast<std::uint32_t>(v < hi);
    std::uint32_t bits = 0;
    std::memcpy(&bits, dy + i, sizeof bits);
    bits &= 0u - keep;
    float d = 0.0f;
    std::memcpy(&d, &bits, sizeof d);
    dx[i] = (kAccumulate ? dx[i] : 0.0f) + d;
  }
}

/// y = clamp(x, 0, hi) with gradient dy · [0 < x < hi] (hi = +inf for relu).
template <class Arch>
Var clamped_relu(Tape& tape, const Var& x, float hi, const char* op) {
  fq::detail::check_tape(tape, {&x}, op);
  const bool need = fq::detail::needs_grad(tape, {&x});
  Var y = tape.variable(x.shape(), need);
  y.array() = x.array().max(0.0f).min(hi);
  if (need)
    tape.push_backward([x, y, hi] {
      const GradWrite dx = x.claim_grad();
      if (dx.overwrite)
        clamped_relu_backward<Arch, false>(x.value(), y.grad(), dx.data, x.numel(), hi);
      else
        clamped_relu_backward<Arch>(x.value(), y.grad(), dx.data, x.numel(), hi);
    });
  return y;
}

}  // namespace impl

/// y = max(x, 0). Arch: the instruction set of the backward's kernel (simd/arch.hpp).
template <class Arch = DefaultArch>
Var relu(Tape& tape, const Var& x) {
  return impl::clamped_relu<Arch>(tape, x, std::numeric_limits<float>::infinity(), "relu");
}
/// y = min(max(x, 0), 6).
template <class Arch = DefaultArch>
Var relu6(Tape& tape, const Var& x) {
  return impl::clamped_relu<Arch>(tape, x, 6.0f, "relu6");
}

/// y = a + b, b of a's shape or broadcast over a's leading dims (file comment).
inline Var add(Tape& tape, const Var& a, const Var& b) {
  fq::detail::check_tape(tape, {&a, &b}, "add");
  const Shape& sa = a.shape();
  const Shape& sb = b.shape();
  int ones = 0;  // b's leading 1s, which broadcast like absent dims
  while (ones < sb.rank && sb[ones] == 1) ++ones;
  const int core = sb.rank - ones;  // b's remaining dims: a's trailing `core` dims
  bool ok = sb.rank <= sa.rank;
  for (int d = 0; ok && d < core; ++d) ok = sb[ones + d] == sa[sa.rank - core + d];
  FQ_CHECK(ok, ErrorCode::kShapeMismatch,
           fq::detail::msg("add: b ", sb.str(), " must have the shape of a ", sa.str(),
                           " or of its trailing dims"));
  const bool need = fq::detail::needs_grad(tape, {&a, &b});
  Var y = tape.variable(sa, need);
  const std::int64_t len = b.numel();
  if (len == a.numel()) {  // same numel: the same shape up to leading 1s
    y.array() = a.array() + b.array();
    if (need)
      tape.push_backward([a, b, y] {
        const auto dy = y.grad_array();
        if (a.requires_grad()) write_grad(a.claim_grad(), 0, a.numel(), dy);
        if (b.requires_grad()) write_grad(b.claim_grad(), 0, b.numel(), dy);
      });
    return y;
  }
  if (y.numel() == 0) return y;
  const std::int64_t outer = a.numel() / len;
  using Row = Eigen::Map<Eigen::ArrayXf>;
  for (std::int64_t o = 0; o < outer; ++o)
    Row(y.value() + o * len, len) = Row(a.value() + o * len, len) + b.array();
  if (need)
    tape.push_backward([a, b, y, outer, len] {
      if (a.requires_grad()) write_grad(a.claim_grad(), 0, a.numel(), y.grad_array());
      if (b.requires_grad()) {
        auto db = b.grad_array();
        for (std::int64_t o = 0; o < outer; ++o) db += Row(y.grad() + o * len, len);
      }
    });
  return y;
}

/// y = alpha · x.
inline Var scale(Tape& tape, const Var& x, float alpha) {
  fq::detail::check_tape(tape, {&x}, "scale");
  FQ_CHECK(std::isfinite(alpha), ErrorCode::kInvalidArgument,
           fq::detail::msg("scale: alpha = ", alpha, " is not finite"));
  const bool need = fq::detail::needs_grad(tape, {&x});
  Var y = tape.variable(x.shape(), need);
  y.array() = x.array() * alpha;
  if (need)
    tape.push_backward(
        [x, y, alpha] { write_grad(x.claim_grad(), 0, x.numel(), y.grad_array() * alpha); });
  return y;
}

/// y = a ⊙ b (element-wise; the same shape).
inline Var mul(Tape& tape, const Var& a, const Var& b) {
  fq::detail::check_tape(tape, {&a, &b}, "mul");
  FQ_CHECK(a.shape() == b.shape(), ErrorCode::kShapeMismatch,
           fq::detail::msg("mul: shapes ", a.shape().str(), " and ", b.shape().str(), " differ"));
  const bool need = fq::detail::needs_grad(tape, {&a, &b});
  Var y = tape.variable(a.shape(), need);
  y.array() = a.array() * b.array();
  if (need)
    tape.push_backward([a, b, y] {
      if (a.requires_grad()) write_grad(a.claim_grad(), 0, a.numel(), y.grad_array() * b.array());
      if (b.requires_grad()) write_grad(b.claim_grad(), 0, b.numel(), y.grad_array() * a.array());
    });
  return y;
}

inline Var mean(Tape& tape, const Var& x) {
  fq::detail::check_tape(tape, {&x}, "mean");
  FQ_CHECK(x.numel() > 0, ErrorCode::kShapeMismatch, "mean: empty tensor");
  const bool need = fq::detail::needs_grad(tape, {&x});
  Var y = tape.variable({}, need);
  y.value()[0] = static_cast<float>(x.array().cast<double>().mean());
  if (need)
    tape.push_backward([x, y] { x.grad_array() += y.grad()[0] / static_cast<float>(x.numel()); });
  return y;
}

/// Multiplies (or, with `divide`, divides) each slice along `axis` by s[c]; s has
/// x.size(axis) elements. Used by QAT batch-norm folding.
inline Var scale_channels(Tape& tape, const Var& x, const Var& s, int axis, bool divide = false) {
  fq::detail::check_tape(tape, {&x, &s}, "scale_channels");
  FQ_CHECK(axis >= 0 && axis < x.shape().rank, ErrorCode::kInvalidAxis,
           fq::detail::msg("scale_channels: axis ", axis, " out of range for ", x.shape().str()));
  const std::int64_t c = x.size(axis);
  FQ_CHECK(s.numel() == c, ErrorCode::kParamCountMismatch,
           fq::detail::msg("scale_channels: ", s.numel(), " factors for ", c, " channels"));
  std::int64_t outer = 1, inner = 1;
  for (int d = 0; d < axis; ++d) outer *= x.size(d);
  for (int d = axis + 1; d < x.shape().rank; ++d) inner *= x.size(d);
  const bool need = fq::detail::needs_grad(tape, {&x, &s});
  Var y = tape.variable(x.shape(), need);
  using Block = Eigen::Map<Eigen::ArrayXf>;
  for (std::int64_t o = 0; o < outer; ++o)
    for (std::int64_t ch = 0; ch < c; ++ch) {
      const std::int64_t off = (o * c + ch) * inner;
      const float f = divide ? 1.0f / s.value()[ch] : s.value()[ch];
      Block(y.value() + off, inner) = Block(x.value() + off, inner) * f;
    }
  if (need)
    tape.push_backward([x, s, y, c, outer, inner, divide] {
      // s can share x's gradient only as a reshape of an x of C elements: its sum adds after
      // the channel's store.
      const GradWrite dx = x.claim_grad();
      for (std::int64_t o = 0; o < outer; ++o)
        for (std::int64_t ch = 0; ch < c; ++ch) {
          const std::int64_t off = (o * c + ch) * inner;
          const float sv = s.value()[ch];
          const Block dy(y.grad() + off, inner);
          if (dx.data != nullptr) write_grad(dx, off, inner, dy * (divide ? 1.0f / sv : sv));
          if (s.requires_grad()) {
            const float dot = (dy * Block(x.value() + off, inner)).sum();
            s.grad()[ch] += divide ? -dot / (sv * sv) : dot;
          }
        }
    });
  return y;
}

}  // namespace ops
}  // namespace fq

#endif  // FQ_OPS_ELEMENTWISE_HPP_
