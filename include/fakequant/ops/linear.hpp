// SPDX-License-Identifier: MIT
// fakequant/ops/linear.hpp: linear — y = x·wᵀ + b on a Tape.
//
// Forward: x [..., in] (rank >= 2), w [out, in], b [out] (optional) -> y [..., out],
//   y = x wᵀ + b, the leading dims of x flattened into N rows (no copy; one GEMM, then + b).
// Gradient: dx += dy w; dw += dyᵀ x; db += Σ_n dy[n, :] (sums over every leading dim). dx and
//   dw are stored, not added, when this op is their first writer (tape/grad_state.hpp).
// Arithmetic: ops/gemm.hpp. Where Arch has FMA, each element of x wᵀ, dx and dw is one fused
//   chain in ascending order of its sum's index (in, out, and the rows): a row of y and of dx
//   has the same bits in a batch of any size and for any thread count.
// As PyTorch's F.linear, except that a rank-1 x is refused (reshape it to [1, in]).
#ifndef FQ_OPS_LINEAR_HPP_
#define FQ_OPS_LINEAR_HPP_

#include <cstdint>  // int64_t

#include <Eigen/Core>

#include <fakequant/base/checked.hpp>
#include <fakequant/ops/gemm.hpp>
#include <fakequant/tape/tape.hpp>

namespace fq {
namespace ops {

/// y = x wᵀ + b; pass a default-constructed Var for no bias. Arch: the instruction set of the
/// products (ops/gemm.hpp).
template <class Arch = DefaultArch>
Var linear(Tape& tape, const Var& x, const Var& w, const Var& b = Var()) {
  const bool has_bias = b.value() != nullptr;
  fq::detail::check_tape(tape, {&x, &w}, "linear");
  if (has_bias) fq::detail::check_tape(tape, {&b}, "linear");
  const Shape& xs = x.shape();
  const int r = xs.rank;
  FQ_CHECK(r >= 2 && w.shape().rank == 2 && xs[r - 1] == w.size(1), ErrorCode::kShapeMismatch,
           fq::detail::msg("linear: x ", xs.str(), " and w ", w.shape().str(),
                           " must be [..., in] (rank >= 2) and [out, in]"));
  FQ_CHECK(
      !has_bias || b.numel() == w.size(0), ErrorCode::kShapeMismatch,
      fq::detail::msg("linear: bias ", b.shape().str(), " must have ", w.size(0), " elements"));
  const bool need = has_bias ? fq::detail::needs_grad(tape, {&x, &w, &b})
                             : fq::detail::needs_grad(tape, {&x, &w});
  const std::int64_t in = xs[r - 1], out = w.size(0);
  std::int64_t rows = 1;  // the leading dims of x, flattened
  for (int d = 0; d < r - 1; ++d) rows *= xs[d];
  Shape ys = xs;
  ys.dims[static_cast<std::size_t>(r - 1)] = out;
  fq::detail::checked_numel(ys.dims.data(), ys.rank, "linear");
  Var y = tape.variable(ys, need);
  using impl::gemm_operand;
  // y = x · wᵀ: A = x [rows, in], B = wᵀ [in, out].
  impl::tape_gemm<Arch>(tape, rows, out, in, gemm_operand(x.value(), in, false),
                        gemm_operand(w.value(), in, true), y.value(), out, false);
  if (has_bias)
    Eigen::Map<RowMatrixXf>(y.value(), rows, out).rowwise() += b.array().matrix().transpose();
  if (need)
    tape.push_backward([x, w, b, y, has_bias, rows, in, out] {
      Tape& t = *y.tape();
      const float* dy = y.grad();
      // dX and dW are written whole: stored by their first writer (tape/grad_state.hpp). Each
      // is claimed just before it is written, so x and w may be the same Var.
      if (const GradWrite dx = x.claim_grad(); dx.data != nullptr)  // dx = dy · w
        impl::tape_gemm<Arch>(t, rows, in, out, gemm_operand(dy, out, false),
                              gemm_operand(w.value(), in, false), dx.data, in, !dx.overwrite);
      if (const GradWrite dw = w.claim_grad(); dw.data != nullptr)  // dw = dyᵀ · x
        impl::tape_gemm<Arch>(t, out, in, rows, gemm_operand(dy, out, true),
                              gemm_operand(x.value(), in, false), dw.data, in, !dw.overwrite);
      if (has_bias && b.requires_grad())
        b.grad_array() +=
            Eigen::Map<const RowMatrixXf>(dy, rows, out).colwise().sum().transpose().array();
    });
  return y;
}

}  // namespace ops
}  // namespace fq

#endif  // FQ_OPS_LINEAR_HPP_
