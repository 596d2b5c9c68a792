// SPDX-License-Identifier: MIT
// fakequant/ops/shape.hpp: layout ops on a Tape — reshape, transpose, split_heads,
// merge_heads, concat, slice, expand, and mean over one axis.
//
//   reshape:     the same memory with another shape of equal numel (a view: no copy, no tape
//                node; the gradient is shared, as Var::reshape).
//   transpose:   y = x with axes dim0 and dim1 swapped (a copy); dx += dyᵀ (the same swap).
//                dim0 == dim1 returns x itself.
//   split_heads: [B, T, H·Dh] -> [B, H, T, Dh], y[b, h, t, :] = x[b, t, h·Dh : (h+1)·Dh]
//                (PyTorch: x.view(B, T, H, Dh).transpose(1, 2).contiguous()).
//   merge_heads: [B, H, T, Dh] -> [B, T, H·Dh], the inverse. Gradients: the inverse copies.
//   concat:      along `axis`; the shapes agree except there. dx_k += its slice of dy.
//   slice:       y = x[..., start : start + length, ...] along `axis`; dx += dy in that slice.
//   expand:      x [S...] -> [L..., S...] (x repeated over new leading dims, e.g. a class
//                token [1, D] -> [B, 1, D]); dx += Σ over the leading dims of dy.
//   mean:        y = Σ_axis x / n over one axis (removed from the shape); dx += dy / n.
//                Float accumulation (as Eigen/PyTorch on CPU): sequential over the axis, the
//                inner rows added element-wise; over the last axis, Eigen's vectorised sum.
//                An empty axis is refused (PyTorch returns NaN).
// Axes may be negative (from the end); outside [-rank, rank) is ErrorCode::kInvalidAxis.
// Every copy runs over contiguous inner rows (memcpy, or an Eigen += for the gradients).
#ifndef FQ_OPS_SHAPE_HPP_
#define FQ_OPS_SHAPE_HPP_

#include <cstdint>  // int64_t
#include <cstring>  // memcpy
#include <memory>   // uninitialized_copy
#include <utility>  // swap
#include <vector>   // vector

#include <Eigen/Core>

#include <fakequant/base/checked.hpp>
#include <fakequant/core/ordered_sum.hpp>
#include <fakequant/tape/tape.hpp>

namespace fq {
namespace ops {

namespace impl {
/// `axis` in [0, rank) (negative counts from the end), or ErrorCode::kInvalidAxis.
inline int layout_axis(int axis, int rank, const char* op) {
  FQ_CHECK(axis >= -rank && axis < rank, ErrorCode::kInvalidAxis,
           fq::detail::msg(op, ": axis ", axis, " is outside [", -rank, ", ", rank,
                           ") for a tensor of rank ", rank));
  return axis < 0 ? axis + rank : axis;
}

/// The product of the extents of s in [from, to).
inline std::int64_t extent_product(const Shape& s, int from, int to) {
  std::int64_t p = 1;
  for (int d = from; d < to; ++d) p *= s[d];
  return p;
}

/// d[0, n) = s[0, n), or += with kAccumulate (s and d do not overlap).
template <bool kAccumulate>
inline void move_row(const float* s, float* d, std::int64_t n) {
  if (kAccumulate) {
    if (n == 1)
      *d += *s;
    else
      Eigen::Map<Eigen::ArrayXf>(d, n) += Eigen::Map<const Eigen::ArrayXf>(s, n);
  } else {
    std::memcpy(d, s, static_cast<std::size_t>(n) * sizeof(float));
  }
}

/// dst[j, i] = src[i, j] (or +=) for an n0 x n1 src of row stride ss and an n1 x n0 dst of row
/// stride ds, in 8 x 8 tiles so that both sides stay in cache lines.
template <bool kAccumulate>
inline void transpose_tiles(const float* src, std::int64_t ss, float* dst, std::int64_t ds,
                            std::int64_t n0, std::int64_t n1) {
  constexpr std::int64_t kTile = 8;
  for (std::int64_t j0 = 0; j0 < n1; j0 += kTile)
    for (std::int64_t i0 = 0; i0 < n0; i0 += kTile) {
      const std::int64_t j1 = j0 + kTile < n1 ? j0 + kTile : n1;
      const std::int64_t i1 = i0 + kTile < n0 ? i0 + kTile : n0;
      for (std::int64_t j = j0; j < j1; ++j)
        for (std::int64_t i = i0; i < i1; ++i) {
          if (kAccumulate)
            dst[j * ds + i] += src[i * ss + j];
          else
            dst[j * ds + i] = src[i * ss + j];
        }
    }
}

/// dst[o, j, m, i, :] = src[o, i, m, j, :] (or +=), src laid out [outer, n0, mid, n1, inner]
/// and dst [outer, n1, mid, n0, inner]: rows of `inner` floats, dst written in order; single
/// elements (inner == 1) as tiled 2-D transposes.
template <bool kAccumulate>
inline void swap_axes(const float* src, float* dst, std::int64_t outer, std::int64_t n0,
                      std::int64_t mid, std::int64_t n1, std::int64_t inner) {
  if (inner == 1) {
    for (std::int64_t o = 0; o < outer; ++o)
      for (std::int64_t m = 0; m < mid; ++m)
        transpose_tiles<kAccumulate>(src + (o * n0 * mid + m) * n1, mid * n1,
                                     dst + (o * n1 * mid + m) * n0, mid * n0, n0, n1);
    return;
  }
  float* d = dst;
  const std::int64_t step = mid * n1 * inner;
  for (std::int64_t o = 0; o < outer; ++o)
    for (std::int64_t j = 0; j < n1; ++j)
      for (std::int64_t m = 0; m < mid; ++m) {
        const float* s = src + ((o * n0 * mid + m) * n1 + j) * inner;
        for (std::int64_t i = 0; i < n0; ++i, d += inner, s += step)
          move_row<kAccumulate>(s, d, inner);
      }
}

/// y = x with the axes of extents n0 and n1 swapped (x: [outer, n0, mid, n1, inner]).
inline Var swapped(Tape& tape, const Var& x, Shape out, std::int64_t outer, std::int64_t n0,
                   std::int64_t mid, std::int64_t n1, std::int64_t inner) {
  const bool need = fq::detail::needs_grad(tape, {&x});
  Var y = tape.variable(out, need);
  if (y.numel() == 0) return y;
  swap_axes<false>(x.value(), y.value(), outer, n0, mid, n1, inner);
  if (need)
    tape.push_backward([x, y, outer, n0, mid, n1, inner] {
      swap_axes<true>(y.grad(), x.grad(), outer, n1, mid, n0, inner);
    });
  return y;
}
}  // namespace impl

/// The same memory seen with shape `s` (no copy; see the file comment).
inline Var reshape(Tape& tape, const Var& x, Shape s) {
  fq::detail::check_tape(tape, {&x}, "reshape");
  FQ_CHECK(s.numel() == x.numel(), ErrorCode::kShapeMismatch,
           fq::detail::msg("reshape: x ", x.shape().str(), " has ", x.numel(),
                           " elements, the new shape ", s.str(), " has ", s.numel()));
  return x.reshape(s);
}

/// Swaps axes dim0 and dim1 (a copy).
inline Var transpose(Tape& tape, const Var& x, int dim0, int dim1) {
  fq::detail::check_tape(tape, {&x}, "transpose");
  const Shape& s = x.shape();
  int d0 = impl::layout_axis(dim0, s.rank, "transpose");
  int d1 = impl::layout_axis(dim1, s.rank, "transpose");
  if (d0 == d1) return x;
  if (d0 > d1) std::swap(d0, d1);
  Shape out = s;
  out.dims[static_cast<std::size_t>(d0)] = s[d1];
  out.dims[static_cast<std::size_t>(d1)] = s[d0];
  return impl::swapped(tape, x, out, impl::extent_product(s, 0, d0), s[d0],
                       impl::extent_product(s, d0 + 1, d1), s[d1],
                       impl::extent_product(s, d1 + 1, s.rank));
}

/// [B, T, H·Dh] -> [B, H, T, Dh] with H = `heads`.
inline Var split_heads(Tape& tape, const Var& x, std::int64_t heads) {
  fq::detail::check_tape(tape, {&x}, "split_heads");
  const Shape& s = x.shape();
  FQ_CHECK(s.rank == 3, ErrorCode::kShapeMismatch,
           fq::detail::msg("split_heads: x ", s.str(), " must be [B, T, D]"));
  FQ_CHECK(heads > 0 && s[2] % heads == 0, ErrorCode::kInvalidArgument,
           fq::detail::msg("split_heads: ", heads, " heads do not divide D = ", s[2], " of x ",
                           s.str()));
  const std::int64_t dh = s[2] / heads;
  return impl::swapped(tape, x, {s[0], heads, s[1], dh}, s[0], s[1], 1, heads, dh);
}

/// [B, H, T, Dh] -> [B, T, H·Dh].
inline Var merge_heads(Tape& tape, const Var& x) {
  fq::detail::check_tape(tape, {&x}, "merge_heads");
  const Shape& s = x.shape();
  FQ_CHECK(s.rank == 4, ErrorCode::kShapeMismatch,
           fq::detail::msg("merge_heads: x ", s.str(), " must be [B, H, T, Dh]"));
  return impl::swapped(tape, x, {s[0], s[2], s[1] * s[3]}, s[0], s[1], 1, s[2], s[3]);
}

/// Concatenates `xs` along `axis`; their shapes must agree everywhere else.
inline Var concat(Tape& tape, const std::vector<Var>& xs, int axis) {
  FQ_CHECK(!xs.empty(), ErrorCode::kInvalidArgument, "concat: no variables to concatenate");
  bool any_grad = false;
  for (const Var& v : xs) {
    fq::detail::check_var(tape, v, "concat");
    any_grad = any_grad || v.requires_grad();
  }
  const Shape& s0 = xs[0].shape();
  const int ax = impl::layout_axis(axis, s0.rank, "concat");
  std::int64_t total = 0;
  for (std::size_t k = 0; k < xs.size(); ++k) {
    const Shape& s = xs[k].shape();
    bool ok = s.rank == s0.rank;
    for (int d = 0; ok && d < s0.rank; ++d) ok = d == ax || s[d] == s0[d];
    FQ_CHECK(ok, ErrorCode::kShapeMismatch,
             fq::detail::msg("concat: input ", k, " ", s.str(), " differs from input 0 ", s0.str(),
                             " outside axis ", ax));
    total = fq::detail::checked_add(total, s[ax], "concat", "the concatenated extent");
  }
  Shape out = s0;
  out.dims[static_cast<std::size_t>(ax)] = total;
  fq::detail::checked_numel(out.dims.data(), out.rank, "concat");
  const bool need = any_grad && tape.recording();
  Var y = tape.variable(out, need);
  if (y.numel() == 0) return y;
  const std::int64_t outer = impl::extent_product(s0, 0, ax);
  const std::int64_t inner = impl::extent_product(s0, ax + 1, s0.rank);
  const std::size_t count = xs.size();
  for (std::int64_t o = 0; o < outer; ++o) {
    float* d = y.value() + o * total * inner;
    for (const Var& v : xs) {
      const std::int64_t len = v.size(ax) * inner;
      if (len > 0) impl::move_row<false>(v.value() + o * len, d, len);
      d += len;
    }
  }
  if (need) {
    // The closure lives in the arena: keep the inputs there too (no heap allocation).
    Var* in = tape.scratch<Var>(count);
    std::uninitialized_copy(xs.begin(), xs.end(), in);
    tape.push_backward([in, count, y, outer, inner, total, ax] {
      for (std::int64_t o = 0; o < outer; ++o) {
        const float* d = y.grad() + o * total * inner;
        for (std::size_t k = 0; k < count; ++k) {
          const std::int64_t len = in[k].size(ax) * inner;
          if (in[k].requires_grad() && len > 0)
            impl::move_row<true>(d, in[k].grad() + o * len, len);
          d += len;
        }
      }
    });
  }
  return y;
}

/// x[..., start : start + length, ...] along `axis` (a copy).
inline Var slice(Tape& tape, const Var& x, int axis, std::int64_t start, std::int64_t length) {
  fq::detail::check_tape(tape, {&x}, "slice");
  const Shape& s = x.shape();
  const int ax = impl::layout_axis(axis, s.rank, "slice");
  const std::int64_t n = s[ax];
  FQ_CHECK(start >= 0 && length >= 0 && start <= n && length <= n - start,
           ErrorCode::kInvalidArgument,
           fq::detail::msg("slice: [", start, ", ", start, " + ", length, ") is not inside [0, ", n,
                           ") of axis ", ax, " of x ", s.str()));
  Shape out = s;
  out.dims[static_cast<std::size_t>(ax)] = length;
  const bool need = fq::detail::needs_grad(tape, {&x});
  Var y = tape.variable(out, need);
  if (y.numel() == 0) return y;
  const std::int64_t outer = impl::extent_product(s, 0, ax);
  const std::int64_t inner = impl::extent_product(s, ax + 1, s.rank);
  const std::int64_t len = length * inner, off = start * inner, row = n * inner;
  for (std::int64_t o = 0; o < outer; ++o)
    impl::move_row<false>(x.value() + o * row + off, y.value() + o * len, len);
  if (need)
    tape.push_backward([x, y, outer, len, off, row] {
      for (std::int64_t o = 0; o < outer; ++o)
        impl::move_row<true>(y.grad() + o * len, x.grad() + o * row + off, len);
    });
  return y;
}

/// x repeated over the leading dims of `shape`, whose trailing dims must equal x's shape.
inline Var expand(Tape& tape, const Var& x, Shape shape) {
  fq::detail::check_tape(tape, {&x}, "expand");
  const Shape& s = x.shape();
  const int lead = shape.rank - s.rank;
  bool ok = lead >= 0;
  for (int d = 0; ok && d < s.rank; ++d) ok = shape[lead + d] == s[d];
  FQ_CHECK(
      ok, ErrorCode::kShapeMismatch,
      fq::detail::msg("expand: x ", s.str(), " must equal the trailing dims of ", shape.str()));
  const bool need = fq::detail::needs_grad(tape, {&x});
  Var y = tape.variable(shape, need);
  if (y.numel() == 0) return y;
  const std::int64_t outer = impl::extent_product(shape, 0, lead), len = x.numel();
  for (std::int64_t o = 0; o < outer; ++o)
    impl::move_row<false>(x.value(), y.value() + o * len, len);
  if (need)
    tape.push_backward([x, y, outer, len] {
      for (std::int64_t o = 0; o < outer; ++o)
        impl::move_row<true>(y.grad() + o * len, x.grad(), len);
    });
  return y;
}

/// The mean over `axis`, which is removed from the shape.
inline Var mean(Tape& tape, const Var& x, int axis) {
  fq::detail::check_tape(tape, {&x}, "mean");
  const Shape& s = x.shape();
  const int ax = impl::layout_axis(axis, s.rank, "mean");
  const std::int64_t n = s[ax];
  FQ_CHECK(n > 0, ErrorCode::kShapeMismatch,
           fq::detail::msg("mean: axis ", ax, " of x ", s.str(), " is empty"));
  Shape out;
  for (int d = 0; d < s.rank; ++d)
    if (d != ax) out.dims[static_cast<std::size_t>(out.rank++)] = s[d];
  const bool need = fq::detail::needs_grad(tape, {&x});
  Var y = tape.variable(out, need);
  if (y.numel() == 0) return y;
  const std::int64_t outer = impl::extent_product(s, 0, ax);
  const std::int64_t inner = impl::extent_product(s, ax + 1, s.rank);
  const float nf = static_cast<float>(n);
  using Row = Eigen::Map<Eigen::ArrayXf>;
  using ConstRow = Eigen::Map<const Eigen::ArrayXf>;
  for (std::int64_t o = 0; o < outer; ++o) {
    const float* src = x.value() + o * n * inner;
    if (inner == 1) {
      // An order fixed by n (core/ordered_sum.hpp): Eigen's sum() over an unaligned row
      // would round by the row's address.
      y.value()[o] = fq::detail::ordered_sum(n, [src](std::int64_t k) { return src[k]; }) / nf;
    } else {
      Row acc(y.value() + o * inner, inner);
      acc = ConstRow(src, inner);
      for (std::int64_t a = 1; a < n; ++a) acc += ConstRow(src + a * inner, inner);
      acc /= nf;
    }
  }
  if (need)
    tape.push_backward([x, y, outer, n, inner, nf] {
      for (std::int64_t o = 0; o < outer; ++o) {
        const auto dy = ConstRow(y.grad() + o * inner, inner) / nf;
        for (std::int64_t a = 0; a < n; ++a) Row(x.grad() + (o * n + a) * inner, inner) += dy;
      }
    });
  return y;
}

}  // namespace ops
}  // namespace fq

#endif  // FQ_OPS_SHAPE_HPP_
