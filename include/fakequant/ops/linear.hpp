// SPDX-License-Identifier: MIT
// fakequant/ops/linear.hpp: linear — y = x·wᵀ + b on a Tape.
//
// Forward: x [..., in] (rank >= 2), w [out, in], b [out] (optional) -> y [..., out],
//   y = x wᵀ + b, the leading dims of x flattened into N rows (a Map: no copy; one Eigen GEMM).
// Gradient: dx += dy w; dw += dyᵀ x; db += Σ_n dy[n, :] (sums over every leading dim). dx and
//   dw are stored, not added, when this op is their first writer (tape/grad_state.hpp).
// As PyTorch's F.linear, except that a rank-1 x is refused (reshape it to [1, in]).
#ifndef FQ_OPS_LINEAR_HPP_
#define FQ_OPS_LINEAR_HPP_

#include <cstdint>  // int64_t

#include <Eigen/Core>

#include <fakequant/base/checked.hpp>
#include <fakequant/tape/tape.hpp>

namespace fq {
namespace ops {

/// y = x wᵀ + b; pass a default-constructed Var for no bias.
inline Var linear(Tape& tape, const Var& x, const Var& w, const Var& b = Var()) {
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
  using Mat = Eigen::Map<RowMatrixXf>;
  Mat Y(y.value(), rows, out);
  Y.noalias() = Mat(x.value(), rows, in) * Mat(w.value(), out, in).transpose();
  if (has_bias) Y.rowwise() += b.array().matrix().transpose();
  if (need)
    tape.push_backward([x, w, b, y, has_bias, rows, in, out] {
      const Mat dY(y.grad(), rows, out);
      // dX and dW are written whole: stored by their first writer (tape/grad_state.hpp). Each
      // is claimed just before it is written, so x and w may be the same Var.
      if (const GradWrite dx = x.claim_grad(); dx.data != nullptr) {
        Mat dX(dx.data, rows, in);
        if (dx.overwrite)
          dX.noalias() = dY * Mat(w.value(), out, in);
        else
          dX.noalias() += dY * Mat(w.value(), out, in);
      }
      if (const GradWrite dw = w.claim_grad(); dw.data != nullptr) {
        Mat dW(dw.data, out, in);
        if (dw.overwrite)
          dW.noalias() = dY.transpose() * Mat(x.value(), rows, in);
        else
          dW.noalias() += dY.transpose() * Mat(x.value(), rows, in);
      }
      if (has_bias && b.requires_grad()) b.grad_array() += dY.colwise().sum().transpose().array();
    });
  return y;
}

}  // namespace ops
}  // namespace fq

#endif  // FQ_OPS_LINEAR_HPP_
