// SPDX-License-Identifier: MIT
// fakequant/ops/gemm.hpp: the float matrix product of the tape's linear and matmul.
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
// the sizes and the thread count).
#ifndef FQ_OPS_GEMM_HPP_
#define FQ_OPS_GEMM_HPP_

#include <cstddef>  // size_t
#include <cstdint>  // int64_t

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

/// C [m, n] = (accumulate ? C : 0) + A · B (file comment). A row-major operand has col_stride
/// 1, a transposed one row_stride 1.
template <class Arch = DefaultArch>
void tape_gemm(Tape& tape, std::int64_t m, std::int64_t n, std::int64_t k, SgemmOperand a,
               SgemmOperand b, float* c, std::int64_t ldc, bool accumulate) {
  if (m <= 0 || n <= 0) return;
  if constexpr (kSgemmSimd<Arch>) {
    const std::int64_t parts = sgemm_parts(m, n, k);
    float* scratch =
        tape.workspace(static_cast<std::size_t>(sgemm_parallel_scratch_size<Arch>(m, n, k, parts)));
    sgemm_parallel<Arch>(m, n, k, a, b, c, ldc, accumulate, scratch, parts);
  } else {
    (void)tape;
    Eigen::Map<RowMatrixXf, 0, Eigen::OuterStride<>> cm(c, m, n, Eigen::OuterStride<>(ldc));
    with_eigen_map(a, m, k, [&](const auto& am) {
      with_eigen_map(b, k, n, [&](const auto& bm) {
        if (accumulate)
          cm.noalias() += am * bm;
        else
          cm.noalias() = am * bm;
      });
    });
  }
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
