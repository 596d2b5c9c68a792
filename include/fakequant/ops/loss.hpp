// SPDX-License-Identifier: MIT
// fakequant/ops/loss.hpp: softmax cross-entropy on a Tape.
//
// Forward: logits z [N, K], labels t[n] ∈ [0, K) ->
//   loss = −(1/N) Σ_n log softmax(z_n)[t_n], with log-sum-exp shifted by max(z_n).
// Gradient: dz[n, k] += dloss · (softmax(z_n)[k] − [k = t_n]) / N.
#ifndef FQ_OPS_LOSS_HPP_
#define FQ_OPS_LOSS_HPP_

#include <cmath>    // exp, log
#include <cstdint>  // int32_t, int64_t

#include <fakequant/tape/tape.hpp>

namespace fq {
namespace ops {

/// Mean softmax cross-entropy of `logits` [N, K] against `labels` (N class indices).
inline Var softmax_cross_entropy(Tape& tape, const Var& logits, const std::int32_t* labels) {
  fq::detail::check_tape(tape, {&logits}, "softmax_cross_entropy");
  FQ_CHECK(logits.shape().rank == 2 && logits.size(0) > 0 && logits.size(1) > 0,
           ErrorCode::kShapeMismatch,
           fq::detail::msg("softmax_cross_entropy: logits ", logits.shape().str(),
                           " must be a non-empty [N, K]"));
  const std::int64_t n = logits.size(0), k = logits.size(1);
  const bool need = fq::detail::needs_grad(tape, {&logits});
  Var loss = tape.variable({}, need);
  float* prob = need ? tape.scratch<float>(static_cast<std::size_t>(n * k)) : nullptr;
  // The backward reads the labels after this call returns: keep a copy on the tape.
  std::int32_t* labs = need ? tape.scratch<std::int32_t>(static_cast<std::size_t>(n)) : nullptr;
  double total = 0.0;
  for (std::int64_t i = 0; i < n; ++i) {
    const std::int32_t t = labels[i];
    FQ_CHECK(t >= 0 && t < k, ErrorCode::kInvalidArgument,
             fq::detail::msg("softmax_cross_entropy: label ", t, " of sample ", i, " outside [0, ",
                             k, ")"));
    if (labs) labs[i] = t;
    const auto z = logits.mat().row(i).array();
    const float zmax = z.maxCoeff();
    const double sum = (z - zmax).exp().cast<double>().sum();
    total += std::log(sum) - static_cast<double>(z(t) - zmax);
    if (prob)
      Eigen::Map<Eigen::ArrayXf>(prob + i * k, k) =
          ((z - zmax).exp() / static_cast<float>(sum)).transpose();
  }
  loss.value()[0] = static_cast<float>(total / static_cast<double>(n));
  if (need)
    tape.push_backward([logits, loss, prob, labs, n, k] {
      const float s = loss.grad()[0] / static_cast<float>(n);
      for (std::int64_t i = 0; i < n; ++i) {
        float* dz = logits.grad() + i * k;
        for (std::int64_t j = 0; j < k; ++j) dz[j] += s * prob[i * k + j];
        dz[labs[i]] -= s;
      }
    });
  return loss;
}

}  // namespace ops
}  // namespace fq

#endif  // FQ_OPS_LOSS_HPP_
