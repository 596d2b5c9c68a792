// SPDX-License-Identifier: MIT
// fakequant/ops/loss.hpp: softmax cross-entropy on a Tape.
//
// Forward: logits z [N, K], labels t[n] ∈ [0, K) ->
//   loss = −(1/N) Σ_n log softmax(z_n)[t_n], with log-sum-exp shifted by max(z_n).
// Gradient: dz[n, k] += dloss · (softmax(z_n)[k] − [k = t_n]) / N.
// exp(z − max) is simd::exp_flushed (one batch function for every element, 0 below FLT_MIN),
// summed in double in index order: a sample's loss and gradient do not depend on its row's
// place in memory or in the batch. Arch: the instruction set of the exp; leave the default.
#ifndef FQ_OPS_LOSS_HPP_
#define FQ_OPS_LOSS_HPP_

#include <cmath>    // exp, log
#include <cstdint>  // int32_t, int64_t

#include <fakequant/simd/arch.hpp>
#include <fakequant/simd/ordered_reduce.hpp>
#include <fakequant/tape/tape.hpp>

namespace fq {
namespace ops {

/// Mean softmax cross-entropy of `logits` [N, K] against `labels` (N class indices).
template <class Arch = DefaultArch>
Var softmax_cross_entropy(Tape& tape, const Var& logits, const std::int32_t* labels) {
  fq::detail::check_tape(tape, {&logits}, "softmax_cross_entropy");
  FQ_CHECK(logits.shape().rank == 2 && logits.size(0) > 0 && logits.size(1) > 0,
           ErrorCode::kShapeMismatch,
           fq::detail::msg("softmax_cross_entropy: logits ", logits.shape().str(),
                           " must be a non-empty [N, K]"));
  const std::int64_t n = logits.size(0), k = logits.size(1);
  const bool need = fq::detail::needs_grad(tape, {&logits});
  Var loss = tape.variable({}, need);
  // exp(z − max) and then the probabilities of every row (of one row without a gradient).
  float* prob = tape.scratch<float>(static_cast<std::size_t>(need ? n * k : k));
  // The backward reads the labels after this call returns: keep a copy on the tape.
  std::int32_t* labs = need ? tape.scratch<std::int32_t>(static_cast<std::size_t>(n)) : nullptr;
  double total = 0.0;
  for (std::int64_t i = 0; i < n; ++i) {
    const std::int32_t t = labels[i];
    FQ_CHECK(t >= 0 && t < k, ErrorCode::kInvalidArgument,
             fq::detail::msg("softmax_cross_entropy: label ", t, " of sample ", i, " outside [0, ",
                             k, ")"));
    if (labs) labs[i] = t;
    const float* z = logits.value() + i * k;
    float* e = prob + (need ? i * k : 0);
    float zmax = z[0];
    for (std::int64_t j = 1; j < k; ++j) zmax = z[j] > zmax ? z[j] : zmax;
    for (std::int64_t j = 0; j < k; ++j) e[j] = z[j] - zmax;
    simd::exp_flushed<Arch>(e, e, k);
    double sum = 0.0;
    for (std::int64_t j = 0; j < k; ++j) sum += static_cast<double>(e[j]);
    total += std::log(sum) - static_cast<double>(z[t] - zmax);
    const auto sumf = static_cast<float>(sum);
    if (need)
      for (std::int64_t j = 0; j < k; ++j) e[j] /= sumf;
  }
  loss.value()[0] = static_cast<float>(total / static_cast<double>(n));
  if (need)
    tape.push_backward([logits, loss, prob, labs, n, k] {
      const float s = loss.grad()[0] / static_cast<float>(n);  // dloss / N
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
