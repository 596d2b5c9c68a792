// SPDX-License-Identifier: MIT
// fakequant/ops/matmul.hpp: matmul — a batched matrix product of two tape variables.
//
// Forward: a [..., M, K] (transpose_a: [..., K, M]), b [..., K, N] (transpose_b: [..., N, K])
//   -> c [..., M, N], c[i] = alpha · op(a[i]) · op(b[i]) for every batch index i, op(t) = t or
//   tᵀ; alpha (default 1, finite) is the GEMM's own scalar — attention's 1/√Dh costs no pass.
//   The batch (leading) dims of a and b are equal, or b has rank 2: one matrix shared by every
//   batch of a (a weight). Both ranks >= 2; rank 2 x rank 2 is a plain matrix product.
// Gradient: d op(a) += alpha · dc · op(b)ᵀ, d op(b) += alpha · op(a)ᵀ · dc, in the stored layout
//   (e.g. transpose_b: db += dcᵀ · op(a)); for a shared b, db sums over the batches.
// Arithmetic: Eigen's float GEMM on Maps of the row-major storage; a transpose is a
//   .transpose() of the Map (no copy). A shared b with an untransposed a is one GEMM of the
//   whole [batch·M, K] block (and one for each gradient), not one per batch. The summation
//   order (hence the last bits) is Eigen's, as PyTorch's is its BLAS's.
// Differs from torch.matmul: no broadcasting of batch dims other than the shared rank-2 b,
//   no rank-1 operands (reshape a vector to [1, K] or [K, 1]).
#ifndef FQ_OPS_MATMUL_HPP_
#define FQ_OPS_MATMUL_HPP_

#include <cmath>    // isfinite
#include <cstdint>  // int64_t
#include <utility>  // forward

#include <Eigen/Core>

#include <fakequant/base/checked.hpp>
#include <fakequant/tape/tape.hpp>

namespace fq {
namespace ops {

namespace impl {
using MatMap = Eigen::Map<RowMatrixXf>;

/// Calls f(m) or f(mᵀ) (an expression, no copy).
template <class F>
void with_op(const MatMap& m, bool transposed, F&& f) {
  if (transposed)
    f(m.transpose());
  else
    f(m);
}

/// One operand of a batched product: `rows` x `cols` row-major matrices `stride` floats apart
/// (stride 0: one matrix shared by every batch).
struct MatOperand {
  float* data;
  std::int64_t rows, cols, stride;
  MatMap at(std::int64_t i) const { return {data + i * stride, rows, cols}; }
};

/// For every batch i: out[i] += alpha · op(x[i]) · op(y[i]) (or = when `assign`).
inline void batched_gemm(const MatOperand& out, const MatOperand& x, bool tx, const MatOperand& y,
                         bool ty, std::int64_t batches, bool assign, float alpha) {
  for (std::int64_t i = 0; i < batches; ++i) {
    MatMap o = out.at(i);
    with_op(x.at(i), tx, [&](const auto& ox) {
      with_op(y.at(i), ty, [&](const auto& oy) {
        // alpha · (x · y) is one GEMM call with alpha as its scalar (Eigen's blas_traits).
        if (assign)
          o.noalias() = alpha * (ox * oy);
        else
          o.noalias() += alpha * (ox * oy);
      });
    });
  }
}
}  // namespace impl

/// c = alpha · op(a) · op(b), batched over the leading dims (file comment).
inline Var matmul(Tape& tape, const Var& a, const Var& b, bool transpose_a = false,
                  bool transpose_b = false, float alpha = 1.0f) {
  fq::detail::check_tape(tape, {&a, &b}, "matmul");
  FQ_CHECK(std::isfinite(alpha), ErrorCode::kInvalidArgument,
           fq::detail::msg("matmul: alpha = ", alpha, " is not finite"));
  const Shape& sa = a.shape();
  const Shape& sb = b.shape();
  const int ra = sa.rank, rb = sb.rank;
  FQ_CHECK(ra >= 2 && rb >= 2, ErrorCode::kShapeMismatch,
           fq::detail::msg("matmul: a ", sa.str(), " and b ", sb.str(),
                           " must both have rank >= 2 ([..., M, K] and [..., K, N])"));
  const bool shared_b = rb == 2 && ra > 2;
  bool same_batch = ra == rb;
  for (int d = 0; same_batch && d < ra - 2; ++d) same_batch = sa[d] == sb[d];
  FQ_CHECK(shared_b || same_batch, ErrorCode::kShapeMismatch,
           fq::detail::msg("matmul: the batch dims of a ", sa.str(), " and b ", sb.str(),
                           " differ (they must be equal, or b must be a rank-2 matrix)"));
  const std::int64_t a_rows = sa[ra - 2], a_cols = sa[ra - 1];
  const std::int64_t b_rows = sb[rb - 2], b_cols = sb[rb - 1];
  const std::int64_t m = transpose_a ? a_cols : a_rows, k = transpose_a ? a_rows : a_cols;
  const std::int64_t kb = transpose_b ? b_cols : b_rows, n = transpose_b ? b_rows : b_cols;
  FQ_CHECK(k == kb, ErrorCode::kShapeMismatch,
           fq::detail::msg("matmul: the inner dims differ: a ", sa.str(),
                           transpose_a ? " (transposed)" : "", " has K = ", k, ", b ", sb.str(),
                           transpose_b ? " (transposed)" : "", " has K = ", kb));
  std::int64_t batches = 1;
  Shape out;
  out.rank = ra;
  for (int d = 0; d < ra - 2; ++d) {
    batches *= sa[d];
    out.dims[static_cast<std::size_t>(d)] = sa[d];
  }
  out.dims[static_cast<std::size_t>(ra - 2)] = m;
  out.dims[static_cast<std::size_t>(ra - 1)] = n;
  fq::detail::checked_numel(out.dims.data(), out.rank, "matmul");

  const bool need = fq::detail::needs_grad(tape, {&a, &b});
  Var c = tape.variable(out, need);
  if (c.numel() == 0) return c;  // nothing to compute (a zero M, N or batch)
  const std::int64_t b_stride = shared_b ? 0 : b_rows * b_cols;
  // A shared b with an untransposed a: a is one [batches·M, K] matrix, c one [batches·M, N].
  const bool flat = shared_b && !transpose_a;
  const std::int64_t nb = flat ? 1 : batches, fm = flat ? batches * m : m;
  const impl::MatOperand A{a.value(), flat ? fm : a_rows, a_cols, a_rows * a_cols};
  const impl::MatOperand B{b.value(), b_rows, b_cols, b_stride};
  impl::batched_gemm({c.value(), fm, n, m * n}, A, transpose_a, B, transpose_b, nb, true, alpha);
  if (need)
    tape.push_backward([a, b, c, A, B, transpose_a, transpose_b, nb, fm, m, n, alpha] {
      const impl::MatOperand dC{c.grad(), fm, n, m * n};
      if (a.requires_grad()) {
        const impl::MatOperand dA{a.grad(), A.rows, A.cols, A.stride};
        if (transpose_a)  // d aᵀ = dc · op(b)ᵀ  ->  da = op(b) · dcᵀ
          impl::batched_gemm(dA, B, transpose_b, dC, true, nb, false, alpha);
        else  // da = dc · op(b)ᵀ
          impl::batched_gemm(dA, dC, false, B, !transpose_b, nb, false, alpha);
      }
      if (b.requires_grad()) {
        const impl::MatOperand dB{b.grad(), B.rows, B.cols, B.stride};
        if (transpose_b)  // d bᵀ = op(a)ᵀ · dc  ->  db = dcᵀ · op(a)
          impl::batched_gemm(dB, dC, true, A, transpose_a, nb, false, alpha);
        else  // db = op(a)ᵀ · dc
          impl::batched_gemm(dB, A, !transpose_a, dC, false, nb, false, alpha);
      }
    });
  return c;
}

}  // namespace ops
}  // namespace fq

#endif  // FQ_OPS_MATMUL_HPP_
