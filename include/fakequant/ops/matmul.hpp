// SPDX-License-Identifier: MIT
// fakequant/ops/matmul.hpp: matmul — a batched matrix product of two tape variables.
//
// Forward: a [..., M, K] (transpose_a: [..., K, M]), b [..., K, N] (transpose_b: [..., N, K])
//   -> c [..., M, N], c[i] = alpha · op(a[i]) · op(b[i]) for every batch index i, op(t) = t or
//   tᵀ; alpha (default 1, finite) scales the product (attention's 1/√Dh).
//   The batch (leading) dims of a and b are equal, or b has rank 2: one matrix shared by every
//   batch of a (a weight). Both ranks >= 2; rank 2 x rank 2 is a plain matrix product.
// Gradient: d op(a) += alpha · dc · op(b)ᵀ, d op(b) += alpha · op(a)ᵀ · dc, in the stored layout
//   (e.g. transpose_b: db += dcᵀ · op(a)); for a shared b, db sums over the batches.
// Arithmetic: ops/gemm.hpp on the row-major storage; a transpose is a strided view (no copy).
//   Where Arch has FMA, every element of op(a) · op(b) is one fused chain in ascending K: its
//   bits do not depend on the batch, the other rows or the thread count. alpha ≠ 1 scales the
//   finished chain s: alpha · s, and fma(alpha, s, g) where a gradient g is added to. Elsewhere
//   Eigen's GEMM with alpha as its scalar. A shared b with an untransposed a is one GEMM of the
//   whole [batch·M, K] block (and one for each gradient), not one per batch. Many batches run
//   whole batches per thread, few batches each over all the threads.
// Gradients da and (unless b is shared) db are stored by their first writer (grad_state.hpp).
// Differs from torch.matmul: no broadcasting of batch dims other than the shared rank-2 b,
//   no rank-1 operands (reshape a vector to [1, K] or [K, 1]).
#ifndef FQ_OPS_MATMUL_HPP_
#define FQ_OPS_MATMUL_HPP_

#include <cmath>    // isfinite
#include <cstdint>  // int64_t

#include <fakequant/base/checked.hpp>
#include <fakequant/ops/gemm.hpp>
#include <fakequant/tape/tape.hpp>

namespace fq {
namespace ops {

namespace impl {
/// One operand of a batched product: `rows` x `cols` row-major matrices `stride` floats apart
/// (stride 0: one matrix shared by every batch).
struct MatOperand {
  float* data;
  std::int64_t rows, cols, stride;
  /// Batch i as a GEMM operand, op(t) = t or tᵀ.
  SgemmOperand op(std::int64_t i, bool transposed) const {
    return gemm_operand(data + i * stride, cols, transposed);
  }
};

/// For every batch i: out[i] = (accumulate ? out[i] : 0) + alpha · op(x[i]) · op(y[i]) (file
/// comment: the arithmetic).
template <class Arch>
void batched_gemm(Tape& tape, const MatOperand& out, const MatOperand& x, bool tx,
                  const MatOperand& y, bool ty, std::int64_t batches, bool accumulate,
                  float alpha) {
  tape_gemm_batch<Arch>(
      tape, batches, out.rows, out.cols, tx ? x.rows : x.cols, accumulate, alpha,
      [&](std::int64_t i) {
        return GemmTask{x.op(i, tx), y.op(i, ty), out.data + i * out.stride, out.cols};
      },
      out.stride == 0 && batches > 1);
}
}  // namespace impl

/// c = alpha · op(a) · op(b), batched over the leading dims (file comment). Arch: the
/// instruction set of the products (ops/gemm.hpp).
template <class Arch = DefaultArch>
Var matmul(Tape& tape, const Var& a, const Var& b, bool transpose_a = false,
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
  impl::batched_gemm<Arch>(tape, {c.value(), fm, n, m * n}, A, transpose_a, B, transpose_b, nb,
                           false, alpha);
  if (need)
    tape.push_backward([a, b, c, A, B, transpose_a, transpose_b, nb, fm, m, n, alpha] {
      Tape& t = *c.tape();
      const impl::MatOperand dC{c.grad(), fm, n, m * n};
      // da and db are written whole when b is not shared (a shared b's gradient sums over the
      // batches, into one matrix): stored by their first writer (tape/grad_state.hpp).
      if (const GradWrite ga = a.claim_grad(); ga.data != nullptr) {
        const impl::MatOperand dA{ga.data, A.rows, A.cols, A.stride};
        if (transpose_a)  // d aᵀ = dc · op(b)ᵀ  ->  da = op(b) · dcᵀ
          impl::batched_gemm<Arch>(t, dA, B, transpose_b, dC, true, nb, !ga.overwrite, alpha);
        else  // da = dc · op(b)ᵀ
          impl::batched_gemm<Arch>(t, dA, dC, false, B, !transpose_b, nb, !ga.overwrite, alpha);
      }
      if (b.requires_grad()) {
        const bool whole = B.stride != 0 || nb == 1;
        const GradWrite gb = whole ? b.claim_grad() : GradWrite{b.grad(), false};
        const impl::MatOperand dB{gb.data, B.rows, B.cols, B.stride};
        if (transpose_b)  // d bᵀ = op(a)ᵀ · dc  ->  db = dcᵀ · op(a)
          impl::batched_gemm<Arch>(t, dB, dC, true, A, transpose_a, nb, !gb.overwrite, alpha);
        else  // db = op(a)ᵀ · dc
          impl::batched_gemm<Arch>(t, dB, A, !transpose_a, dC, false, nb, !gb.overwrite, alpha);
      }
    });
  return c;
}

}  // namespace ops
}  // namespace fq

#endif  // FQ_OPS_MATMUL_HPP_
