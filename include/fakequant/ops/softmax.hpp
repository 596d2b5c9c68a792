// SPDX-License-Identifier: MIT
// fakequant/ops/softmax.hpp: softmax and log_softmax along any axis on a Tape.
//
// For each slice x along `axis` (negative axes count from the end), with m = max(x):
//   softmax:     e = exp(x − m), s = Σe, y = e·(1/s)         dx += y ⊙ (dy − Σ dy ⊙ y)
//   log_softmax: z = x − m,      s = Σexp(z), y = z − log(s)  dx += dy − exp(y)·Σ dy
// Subtracting the max keeps exp from overflowing (rows of ±80 or 1e4 are fine). log_softmax
// subtracts m and log(s) one after the other: PyTorch's x − (m + log s) rounds m + log s to the
// ulp of m first (≈ 1e-3 at 1e4), so on large offsets ours is the more accurate of the two
// (docs/numerics.md). A row holding +inf or only −inf gives NaN, as PyTorch; a −inf among
// finite values gets probability 0.
//
// dx is stored, not added, when the op is its first writer (tape/grad_state.hpp).
// Sums are in float, in an order fixed by the row length (simd/ordered_reduce.hpp), except on
// last-axis rows of at most kShortRow = 32 (attention's keys): there the max and softmax's sums
// are plain sequential loops, as a reduction's setup costs more than such a row. Every exp is
// the same batch function (simd::exp_flushed), so a row's result does not depend on where it
// lies in memory or in the batch (Eigen's exp and sums over unaligned rows did, by an ulp).
// Every exp result below FLT_MIN (x − m < −87.34) is flushed to 0, so masked entries get an
// exact 0 (and a 0 gradient) on every instruction set. Arch: the instruction set of the exp and
// the sums (simd/arch.hpp); leave the default.
//
// Last axis: one contiguous row per slice, rows in parallel (FQ_PARALLEL_FOR). Other axes: the
// slices of one outer block are walked row by row with vector operations across the `inner`
// trailing elements, with 3·inner floats of tape scratch for the running max, sum and exp. A
// scalar (rank 0) has no axis: every axis is refused (ErrorCode::kInvalidAxis).
#ifndef FQ_OPS_SOFTMAX_HPP_
#define FQ_OPS_SOFTMAX_HPP_

#include <algorithm>  // max, min
#include <cmath>      // log
#include <cstdint>    // int64_t

#include <fakequant/base/config.hpp>
#include <fakequant/simd/arch.hpp>
#include <fakequant/simd/ordered_reduce.hpp>
#include <fakequant/tape/tape.hpp>

namespace fq {
namespace ops {

namespace impl {
constexpr std::int64_t kSoftmaxBlock = 2048;  // elements per block of rows (8 KiB, in L1)
constexpr std::int64_t kShortRow = 32;        // rows up to this length (attention's T): plain loops

/// The extents around `axis`: outer (before), n (the axis) and inner (after).
struct AxisSplit {
  std::int64_t outer = 1, n = 1, inner = 1;
};

/// Resolves a possibly negative axis of x (ErrorCode::kInvalidAxis outside [-rank, rank)).
inline AxisSplit split_axis(const Var& x, int axis, const char* op) {
  const int rank = x.shape().rank;
  FQ_CHECK(axis >= -rank && axis < rank, ErrorCode::kInvalidAxis,
           fq::detail::msg(op, ": axis ", axis, " out of range for x ", x.shape().str(),
                           " (valid: [", -rank, ", ", rank, "))"));
  const int a = axis < 0 ? axis + rank : axis;
  AxisSplit s;
  for (int d = 0; d < a; ++d) s.outer *= x.size(d);
  s.n = x.size(a);
  for (int d = a + 1; d < rank; ++d) s.inner *= x.size(d);
  return s;
}

/// The forward of softmax (log = false) or log_softmax (log = true); buf: 3·inner floats.
template <class Arch>
void softmax_forward(const float* x, float* y, const AxisSplit& s, bool log, float* buf) {
  using Row = Eigen::Map<Eigen::ArrayXf>;
  using CRow = Eigen::Map<const Eigen::ArrayXf>;
  const std::int64_t n = s.n, in = s.inner;
  if (in == 1) {
    // Rows in blocks of about kSoftmaxBlock elements: the exp runs once over the whole block,
    // so its padded last batch is paid per block, not per short row.
    const std::int64_t rows_per_block = std::max<std::int64_t>(1, kSoftmaxBlock / n);
    const std::int64_t blocks = (s.outer + rows_per_block - 1) / rows_per_block;
    FQ_PARALLEL_FOR
    for (std::int64_t b = 0; b < blocks; ++b) {
      const std::int64_t r0 = b * rows_per_block, rows = std::min(rows_per_block, s.outer - r0),
                         len = rows * n;
      if (n <= kShortRow)  // plain loops: Eigen's per-call setup dominates on short rows
        for (std::int64_t r = r0; r < r0 + rows; ++r) {
          const float* xr = x + r * n;
          float* yr = y + r * n;
          float m = xr[0];
          for (std::int64_t j = 1; j < n; ++j) m = xr[j] > m ? xr[j] : m;
          for (std::int64_t j = 0; j < n; ++j) yr[j] = xr[j] - m;  // z = x − m
        }
      else
        for (std::int64_t r = r0; r < r0 + rows; ++r)
          Row(y + r * n, n) = CRow(x + r * n, n) - CRow(x + r * n, n).maxCoeff();  // z = x − m
      if (log && n <= kSoftmaxBlock) {
        alignas(64) float e[kSoftmaxBlock];
        simd::exp_flushed<Arch>(y + r0 * n, e, len);
        for (std::int64_t r = 0; r < rows; ++r)
          Row(y + (r0 + r) * n, n) -= std::log(simd::ordered_sum<Arch>(e + r * n, n));
      } else if (log) {  // one row longer than a block: its exp summed piecewise
        alignas(64) float e[kSoftmaxBlock];
        float sum = 0.0f;
        for (std::int64_t c = 0; c < n; c += kSoftmaxBlock) {
          const std::int64_t m = std::min(kSoftmaxBlock, n - c);
          simd::exp_flushed<Arch>(y + r0 * n + c, e, m);
          sum += simd::ordered_sum<Arch>(e, m);
        }
        Row(y + r0 * n, n) -= std::log(sum);
      } else {
        simd::exp_flushed<Arch>(y + r0 * n, y + r0 * n, len);
        for (std::int64_t r = r0; r < r0 + rows; ++r) {
          float* yr = y + r * n;
          if (n <= kShortRow) {
            float sum = 0.0f;  // a sequential sum: a reduction's setup costs more here
            for (std::int64_t j = 0; j < n; ++j) sum += yr[j];
            const float inv = 1.0f / sum;
            for (std::int64_t j = 0; j < n; ++j) yr[j] *= inv;
          } else {
            Row(yr, n) *= 1.0f / simd::ordered_sum<Arch>(yr, n);
          }
        }
      }
    }
    return;
  }
  Row mx(buf, in), sum(buf + in, in), e(buf + 2 * in, in);
  for (std::int64_t o = 0; o < s.outer; ++o) {
    const float* xb = x + o * n * in;
    float* yb = y + o * n * in;
    mx = CRow(xb, in);
    for (std::int64_t r = 1; r < n; ++r) mx = mx.max(CRow(xb + r * in, in));
    sum.setZero();
    for (std::int64_t r = 0; r < n; ++r) {
      Row yr(yb + r * in, in);
      yr = CRow(xb + r * in, in) - mx;
      if (log) {
        simd::exp_flushed<Arch>(yb + r * in, e.data(), in);  // s >= 1: the flush changes no s
        sum += e;
      } else {
        simd::exp_flushed<Arch>(yb + r * in, yb + r * in, in);
        sum += yr;
      }
    }
    if (log) {
      for (std::int64_t j = 0; j < in; ++j) sum[j] = std::log(sum[j]);  // one function per lane
      for (std::int64_t r = 0; r < n; ++r) Row(yb + r * in, in) -= sum;
    } else {
      sum = 1.0f / sum;
      for (std::int64_t r = 0; r < n; ++r) Row(yb + r * in, in) *= sum;
    }
  }
}

/// dx += the gradient of softmax / log_softmax given y and dy; buf: 3·inner floats.
template <class Arch>
void softmax_backward(const float* y, const float* dy, float* dx, const AxisSplit& s, bool log,
                      float* buf, bool store) {
  using Row = Eigen::Map<Eigen::ArrayXf>;
  using CRow = Eigen::Map<const Eigen::ArrayXf>;
  // dx (+)= e: stored when the op is dx's first writer (tape/grad_state.hpp).
  const auto put = [dx, store](std::int64_t off, std::int64_t len, const auto& e) {
    write_grad({dx, store}, off, len, e);
  };
  const std::int64_t n = s.n, in = s.inner;
  if (in == 1 && !log) {
    FQ_PARALLEL_FOR
    for (std::int64_t o = 0; o < s.outer; ++o) {
      if (n <= kShortRow) {  // plain loops, as in the forward
        const float* yr = y + o * n;
        const float* g = dy + o * n;
        float* d = dx + o * n;
        float dot = 0.0f;
        for (std::int64_t j = 0; j < n; ++j) dot += g[j] * yr[j];
        for (std::int64_t j = 0; j < n; ++j) d[j] = (store ? 0.0f : d[j]) + yr[j] * (g[j] - dot);
        continue;
      }
      const CRow yr(y + o * n, n), g(dy + o * n, n);
      put(o * n, n, yr * (g - simd::ordered_dot<Arch>(dy + o * n, y + o * n, n)));
    }
    return;
  }
  if (in == 1) {  // log_softmax: exp(y) in blocks of rows, as in the forward
    const std::int64_t rows_per_block = std::max<std::int64_t>(1, kSoftmaxBlock / n);
    const std::int64_t blocks = (s.outer + rows_per_block - 1) / rows_per_block;
    FQ_PARALLEL_FOR
    for (std::int64_t b = 0; b < blocks; ++b) {
      const std::int64_t r0 = b * rows_per_block, rows = std::min(rows_per_block, s.outer - r0);
      alignas(64) float e[kSoftmaxBlock];
      for (std::int64_t c = 0; c < rows * n; c += kSoftmaxBlock) {     // rows·n <= block unless
        const std::int64_t m = std::min(kSoftmaxBlock, rows * n - c);  // one long row
        simd::exp_flushed<Arch>(y + r0 * n + c, e, m);
        if (n > kSoftmaxBlock) {
          const float gs = simd::ordered_sum<Arch>(dy + r0 * n, n);
          put(r0 * n + c, m, CRow(dy + r0 * n + c, m) - CRow(e, m) * gs);
          continue;
        }
        for (std::int64_t r = 0; r < rows; ++r) {
          const std::int64_t off = (r0 + r) * n;
          const CRow g(dy + off, n);
          put(off, n, g - CRow(e + r * n, n) * simd::ordered_sum<Arch>(dy + off, n));
        }
      }
    }
    return;
  }
  Row acc(buf, in), e(buf + in, in);
  for (std::int64_t o = 0; o < s.outer; ++o) {
    const std::int64_t base = o * n * in;
    acc.setZero();
    for (std::int64_t r = 0; r < n; ++r) {
      const CRow g(dy + base + r * in, in);
      if (log)
        acc += g;
      else
        acc += g * CRow(y + base + r * in, in);
    }
    for (std::int64_t r = 0; r < n; ++r) {
      const std::int64_t off = base + r * in;
      const CRow yr(y + off, in), g(dy + off, in);
      if (log) {
        simd::exp_flushed<Arch>(y + off, e.data(), in);
        put(off, in, g - e * acc);
      } else {
        put(off, in, yr * (g - acc));
      }
    }
  }
}

template <class Arch>
Var softmax_op(Tape& tape, const Var& x, int axis, bool log, const char* op) {
  fq::detail::check_tape(tape, {&x}, op);
  const AxisSplit s = split_axis(x, axis, op);
  const bool need = fq::detail::needs_grad(tape, {&x});
  Var y = tape.variable(x.shape(), need);
  if (x.numel() == 0) return y;
  float* buf = s.inner > 1 ? tape.scratch<float>(static_cast<std::size_t>(3 * s.inner)) : nullptr;
  softmax_forward<Arch>(x.value(), y.value(), s, log, buf);
  if (need)
    tape.push_backward([x, y, s, log, buf] {
      const GradWrite dx = x.claim_grad();
      softmax_backward<Arch>(y.value(), y.grad(), dx.data, s, log, buf, dx.overwrite);
    });
  return y;
}
}  // namespace impl

/// Softmax along `axis` (default: the last), numerically stable.
template <class Arch = DefaultArch>
Var softmax(Tape& tape, const Var& x, int axis = -1) {
  return impl::softmax_op<Arch>(tape, x, axis, false, "softmax");
}

/// log(softmax(x)) along `axis` (default: the last), computed as (x − max) − log Σ exp(x − max).
template <class Arch = DefaultArch>
Var log_softmax(Tape& tape, const Var& x, int axis = -1) {
  return impl::softmax_op<Arch>(tape, x, axis, true, "log_softmax");
}

}  // namespace ops
}  // namespace fq

#endif  // FQ_OPS_SOFTMAX_HPP_
