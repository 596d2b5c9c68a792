// SPDX-License-Identifier: MIT
// fakequant/ops/linear.hpp: linear — y = x·wᵀ + b on a Tape.
//
// Forward: x [N, in], w [out, in], b [out] (optional) -> y [N, out], y = x wᵀ + b (Eigen GEMM).
// Gradient: dx += dy w; dw += dyᵀ x; db += Σ_n dy[n, :].
#ifndef FQ_OPS_LINEAR_HPP_
#define FQ_OPS_LINEAR_HPP_

#include <fakequant/tape/tape.hpp>

namespace fq {
namespace ops {

/// y = x wᵀ + b; pass a default-constructed Var for no bias.
inline Var linear(Tape& tape, const Var& x, const Var& w, const Var& b = Var()) {
  const bool has_bias = b.value() != nullptr;
  fq::detail::check_tape(tape, {&x, &w}, "linear");
  if (has_bias) fq::detail::check_tape(tape, {&b}, "linear");
  FQ_CHECK(x.shape().rank == 2 && w.shape().rank == 2 && x.size(1) == w.size(1),
           ErrorCode::kShapeMismatch,
           fq::detail::msg("linear: x ", x.shape().str(), " and w ", w.shape().str(),
                           " must be [N, in] and [out, in]"));
  FQ_CHECK(
      !has_bias || b.numel() == w.size(0), ErrorCode::kShapeMismatch,
      fq::detail::msg("linear: bias ", b.shape().str(), " must have ", w.size(0), " elements"));
  const bool need = has_bias ? fq::detail::needs_grad(tape, {&x, &w, &b})
                             : fq::detail::needs_grad(tape, {&x, &w});
  Var y = tape.variable({x.size(0), w.size(0)}, need);
  auto Y = y.mat();
  Y.noalias() = x.mat() * w.mat().transpose();
  if (has_bias) Y.rowwise() += b.array().matrix().transpose();
  if (need)
    tape.push_backward([x, w, b, y, has_bias] {
      const auto dY = y.grad_mat();
      if (x.requires_grad()) x.grad_mat().noalias() += dY * w.mat();
      if (w.requires_grad()) w.grad_mat().noalias() += dY.transpose() * x.mat();
      if (has_bias && b.requires_grad()) b.grad_array() += dY.colwise().sum().transpose().array();
    });
  return y;
}

}  // namespace ops
}  // namespace fq

#endif  // FQ_OPS_LINEAR_HPP_
