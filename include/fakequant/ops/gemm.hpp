// SPDX-License-Identifier: MIT
// fakequant/ops/gemm.hpp: the float matrix products of the tape's linear and matmul.
//
//   C [m, n] (row stride ldc) = (accumulate ? C : 0) + A [m, k] · B [k, n]
//
// A and B are strided views (fq::SgemmOperand): row-major or the transpose of a row-major
// matrix, so no operand is copied to transpose it.
// Where the architecture has fused multiply-add (kSgemmSimd<Arch>): fq::sgemm_parallel on the
// OpenMP threads, its packing buffers in the tape's workspace. Every C element is then one
// chain of fused multiply-adds in ascending k, starting from C (accumulate) or 0: its bits do
// not depend on the thread count, on the other rows of the batch, or on the SIMD width, and
// equal fq::sgemm_reference's. C is only written when not accumulating (no zeroing pass).
// Elsewhere: Eigen's GEMM (its summation order, which depends on the blocking Eigen picks for
// the sizes and the thread count). tape_gemm_batch runs a batch of such products (matmul's
// batches, attention's heads when Q, K, V are fake-quantized) with a scale alpha.
#ifndef FQ_OPS_GEMM_HPP_
#define FQ_OPS_GEMM_HPP_

#include <algorithm>  // min
#include <cmath>      // fma
#include <cstddef>    // size_t
#include <cstdint>    // int64_t

#include <Eigen/Core>

#include <fakequant/kernels/sgemm_parallel.hpp>
#include <fakequant/tape/tape.hpp>

namespace fq {
namespace ops {
namespace impl {

/// Calls f with an Eigen map of the [rows, cols] operand o (inner stride 1: a row-major map, or
/// a column-major one for a transposed operand).
template <class F>
void with_eigen_map(const SgemmOperand& o, std::int64_t rows, std::int64_t cols, F&& f) {
  using Outer = Eigen::OuterStride<>;
  if (o.col_stride == 1)
    f(Eigen::Map<const RowMatrixXf, 0, Outer>(o.data, rows, cols, Outer(o.row_stride)));
  else
    f(Eigen::Map<const Eigen::MatrixXf, 0, Outer>(o.data, rows, cols, Outer(o.col_stride)));
}

/// One product of a batch: C (row stride ldc) and its operands A and B.
struct GemmTask {
  SgemmOperand a, b;
  float* c;
  std::int64_t ldc;
};

/// For every i < count, with task(i) -> GemmTask: C_i [m, n] = (accumulate ? C_i : 0) + alpha ·
/// A_i [m, k] · B_i [k, n]. Where Arch has FMA, alpha ≠ 1 scales each finished chain s: alpha ·
/// s, or fma(alpha, s, C) when accumulating. Many products run whole products per thread, few
/// each over all the threads; shared_out (every C_i the same matrix, summed into) runs them one
/// after another.
template <class Arch = DefaultArch, class Task>
void tape_gemm_batch(Tape& tape, std::int64_t count, std::int64_t m, std::int64_t n, std::int64_t k,
                     bool accumulate, float alpha, const Task& task, bool shared_out = false) {
  if (m <= 0 || n <= 0 || count <= 0) return;
  if constexpr (!kSgemmSimd<Arch>) {
    (void)tape, (void)shared_out;
    for (std::int64_t i = 0; i < count; ++i) {
      const GemmTask g = task(i);
      Eigen::Map<RowMatrixXf, 0, Eigen::OuterStride<>> cm(g.c, m, n, Eigen::OuterStride<>(g.ldc));
      with_eigen_map(g.a, m, k, [&](const auto& am) {
        with_eigen_map(g.b, k, n, [&](const auto& bm) {
          // alpha · (A · B) is one GEMM call with alpha as its scalar (Eigen's blas_traits).
          if (accumulate)
            cm.noalias() += alpha * (am * bm);
          else
            cm.noalias() = alpha * (am * bm);
        });
      });
    }
  } else {
    // With alpha ≠ 1, an accumulated chain s is made apart from C (`tmp` floats of the part's
    // workspace), then fma(alpha, s, C).
    const bool apart = alpha != 1.0f && accumulate;
    const std::int64_t tmp = apart ? fq::detail::sgemm_round_up(m * n, 16) : 0;
    const auto one = [&](std::int64_t i, float* work, std::int64_t parts) {
      const GemmTask g = task(i);
      float* const s = apart ? work : g.c;
      const std::int64_t lds = apart ? n : g.ldc;
      sgemm_parallel<Arch>(m, n, k, g.a, g.b, s, lds, accumulate && !apart, work + tmp, parts);
      if (alpha == 1.0f) return;
      for (std::int64_t r = 0; r < m; ++r) {
        float* const c = g.c + r * g.ldc;
        if (apart)
          for (std::int64_t j = 0; j < n; ++j) c[j] = std::fma(alpha, s[r * n + j], c[j]);
        else
          for (std::int64_t j = 0; j < n; ++j) c[j] *= alpha;
      }
    };
    const std::int64_t threads = sgemm_threads();
    const bool by_product = threads > 1 && count >= threads && !shared_out;
    const std::int64_t parts = by_product ? std::int64_t{1} : sgemm_parts(m, n, k);
    const std::int64_t per = tmp + sgemm_parallel_scratch_size<Arch>(m, n, k, parts);
    if (by_product) {
      const std::int64_t groups = std::min(threads, count);
      float* const ws = tape.workspace(static_cast<std::size_t>(groups * per));
      FQ_PARALLEL_FOR
      for (std::int64_t gi = 0; gi < groups; ++gi)
        for (std::int64_t i = gi * count / groups; i < (gi + 1) * count / groups; ++i)
          one(i, ws + gi * per, 1);
    } else {
      float* const ws = tape.workspace(static_cast<std::size_t>(per));
      for (std::int64_t i = 0; i < count; ++i) one(i, ws, parts);
    }
  }
}

/// C [m, n] = (accumulate ? C : 0) + A · B (file comment). A row-major operand has col_stride
/// 1, a transposed one row_stride 1.
template <class Arch = DefaultArch>
void tape_gemm(Tape& tape, std::int64_t m, std::int64_t n, std::int64_t k, SgemmOperand a,
               SgemmOperand b, float* c, std::int64_t ldc, bool accumulate) {
  tape_gemm_batch<Arch>(tape, 1, m, n, k, accumulate, 1.0f, [&](std::int64_t) {
    return GemmTask{a, b, c, ldc};
  });
}

/// The operand view of the row-major [rows, cols] matrix at p (row stride ld), or of its
/// transpose ([cols, rows]).
inline SgemmOperand gemm_operand(const float* p, std::int64_t ld, bool transposed) noexcept {
  return transposed ? SgemmOperand{p, 1, ld} : SgemmOperand{p, ld, 1};
}

}  // namespace impl
}  // namespace ops
}  // namespace fq

#endif  // FQ_OPS_GEMM_HPP_
