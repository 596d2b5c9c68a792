// SPDX-License-Identifier: MIT
// fakequant/ops/distill.hpp: knowledge-distillation losses (Hinton et al. 2015) on a Tape.
//
// Student logits s [N, K], teacher logits t [N, K], temperature T > 0; per row
//   log q = log_softmax(s/T), log p = log_softmax(t/T), p = exp(log p):
//   kd_kl_div = T²/N · Σ_n Σ_k p·(log p − log q)
//     = T² · F.kl_div(F.log_softmax(s/T), F.softmax(t/T), reduction='batchmean') in PyTorch;
//     terms with p = 0 count 0 (PyTorch's xlogy), so a teacher logit of −inf is fine.
//     Gradient: ds += dL · T/N · (q − p). The teacher gets none (it is run without gradients).
//   distillation_loss = α·kd_kl_div + (1 − α)·CE, CE = −(1/N) Σ_n log softmax(s_n)[label_n]
//     (ops/loss.hpp's softmax_cross_entropy); ds += dL·(α·T/N·(q − p) + (1−α)/N·(softmax(s) −
//     onehot)).
// The per-element gradient factor is computed in the forward into N·K floats of tape scratch,
// so the backward is one scaled add. Per-row sums in float, the sum over rows in double. Every
// exp is simd::exp_flushed (0 below FLT_MIN) and every row sum simd::ordered_sum, so a row's
// loss and gradient do not depend on where it lies (simd/ordered_reduce.hpp); Arch: their
// instruction set, leave the default.
// PyTorch computes p·log p from the rounded p; here log p comes from log_softmax directly
// (the same value up to rounding; ~1e-7 relative on the loss).
#ifndef FQ_OPS_DISTILL_HPP_
#define FQ_OPS_DISTILL_HPP_

#include <cmath>    // isfinite, log
#include <cstdint>  // int32_t, int64_t

#include <fakequant/core/ordered_sum.hpp>
#include <fakequant/simd/arch.hpp>
#include <fakequant/simd/ordered_reduce.hpp>
#include <fakequant/tape/tape.hpp>

namespace fq {
namespace ops {

namespace impl {
/// log Σ_j exp(z_j), with e_j = exp(z_j) (flushed) left in e.
template <class Arch>
float log_sum_exp(const float* z, float* e, std::int64_t k) noexcept {
  simd::exp_flushed<Arch>(z, e, k);
  return std::log(simd::ordered_sum<Arch>(e, k));
}

/// α·KD + (1 − α)·CE (labels may be null only when `with_ce` is false).
template <class Arch>
Var distill_op(Tape& tape, const Var& s, const Var& t, const std::int32_t* labels,
               float temperature, float alpha, bool with_ce, const char* op) {
  fq::detail::check_tape(tape, {&s, &t}, op);
  FQ_CHECK(
      s.shape().rank == 2 && s.size(0) > 0 && s.size(1) > 0, ErrorCode::kShapeMismatch,
      fq::detail::msg(op, ": student logits ", s.shape().str(), " must be a non-empty [N, K]"));
  FQ_CHECK(t.shape() == s.shape(), ErrorCode::kShapeMismatch,
           fq::detail::msg(op, ": teacher logits ", t.shape().str(), " and student logits ",
                           s.shape().str(), " differ"));
  FQ_CHECK(std::isfinite(temperature) && temperature > 0.0f, ErrorCode::kInvalidArgument,
           fq::detail::msg(op, ": temperature must be finite and > 0, got ", temperature));
  FQ_CHECK(alpha >= 0.0f && alpha <= 1.0f, ErrorCode::kInvalidArgument,
           fq::detail::msg(op, ": alpha must be in [0, 1], got ", alpha));
  const std::int64_t n = s.size(0), k = s.size(1);
  if (with_ce) {
    FQ_CHECK(labels != nullptr, ErrorCode::kInvalidArgument,
             fq::detail::msg(op, ": labels are null"));
    for (std::int64_t i = 0; i < n; ++i)
      FQ_CHECK(
          labels[i] >= 0 && labels[i] < k, ErrorCode::kInvalidArgument,
          fq::detail::msg(op, ": label ", labels[i], " of sample ", i, " outside [0, ", k, ")"));
  }
  const bool need = fq::detail::needs_grad(tape, {&s});
  Var loss = tape.variable({}, need);
  float* coef = need ? tape.scratch<float>(static_cast<std::size_t>(n * k)) : nullptr;
  const float temp = temperature;
  const float c_kd = alpha * temp / static_cast<float>(n);    // × (q − p)
  const float c_ce = (1.0f - alpha) / static_cast<float>(n);  // × (softmax(s) − onehot)
  // Per row: z_s = s/T − max, z_t = t/T − max, then log q, log p, p, and the scratch of the exps.
  const auto ku = static_cast<std::size_t>(k);
  float* buf = tape.scratch<float>(5 * ku);
  float *log_q = buf, *log_p = buf + ku, *p = buf + 2 * ku, *e = buf + 3 * ku, *z1 = buf + 4 * ku;
  const auto row_max = [k](const float* v) {
    float m = v[0];
    for (std::int64_t j = 1; j < k; ++j) m = v[j] > m ? v[j] : m;
    return m;
  };
  double kd = 0.0, ce = 0.0;
  for (std::int64_t i = 0; i < n; ++i) {
    const float* sr = s.value() + i * k;
    const float* tr = t.value() + i * k;
    for (std::int64_t j = 0; j < k; ++j) {
      log_q[j] = sr[j] / temp;
      log_p[j] = tr[j] / temp;
    }
    const float ms = row_max(log_q), mt = row_max(log_p);
    for (std::int64_t j = 0; j < k; ++j) {
      log_q[j] -= ms;
      log_p[j] -= mt;
    }
    const float ls = log_sum_exp<Arch>(log_q, e, k), lt = log_sum_exp<Arch>(log_p, e, k);
    for (std::int64_t j = 0; j < k; ++j) {
      log_q[j] -= ls;
      log_p[j] -= lt;
    }
    simd::exp_flushed<Arch>(log_p, p, k);
    kd += static_cast<double>(fq::detail::ordered_sum(k, [&](std::int64_t j) {
      return p[j] > 0.0f ? p[j] * (log_p[j] - log_q[j]) : 0.0f;  // xlogy: 0 where p = 0
    }));
    float m1 = 0.0f, l1 = 0.0f;
    if (with_ce) {
      m1 = row_max(sr);
      for (std::int64_t j = 0; j < k; ++j) z1[j] = sr[j] - m1;
      l1 = log_sum_exp<Arch>(z1, e, k);
      ce += static_cast<double>(l1) - static_cast<double>(sr[labels[i]] - m1);
    }
    if (!coef) continue;
    float* c = coef + i * k;
    simd::exp_flushed<Arch>(log_q, e, k);  // q
    for (std::int64_t j = 0; j < k; ++j) c[j] = c_kd * (e[j] - p[j]);
    if (with_ce) {
      for (std::int64_t j = 0; j < k; ++j) z1[j] -= l1;
      simd::exp_flushed<Arch>(z1, e, k);  // softmax(s)
      for (std::int64_t j = 0; j < k; ++j) c[j] += c_ce * e[j];
      c[labels[i]] -= c_ce;
    }
  }
  const double nd = static_cast<double>(n), t2 = static_cast<double>(temp) * temp;
  loss.value()[0] =
      static_cast<float>(static_cast<double>(alpha) * t2 * kd / nd +
                         (with_ce ? (1.0 - static_cast<double>(alpha)) * ce / nd : 0.0));
  if (need)
    tape.push_backward([s, loss, coef, n, k] {
      s.grad_array() += loss.grad()[0] * Eigen::Map<const Eigen::ArrayXf>(coef, n * k);
    });
  return loss;
}
}  // namespace impl

/// T² · KL(softmax(teacher/T) ‖ softmax(student/T)) averaged over the batch (file comment).
template <class Arch = DefaultArch>
Var kd_kl_div(Tape& tape, const Var& student_logits, const Var& teacher_logits, float temperature) {
  return impl::distill_op<Arch>(tape, student_logits, teacher_logits, nullptr, temperature, 1.0f,
                                false, "kd_kl_div");
}

/// alpha · kd_kl_div + (1 − alpha) · softmax_cross_entropy(student, labels).
template <class Arch = DefaultArch>
Var distillation_loss(Tape& tape, const Var& student_logits, const Var& teacher_logits,
                      const std::int32_t* labels, float temperature, float alpha) {
  return impl::distill_op<Arch>(tape, student_logits, teacher_logits, labels, temperature, alpha,
                                true, "distillation_loss");
}

}  // namespace ops
}  // namespace fq

#endif  // FQ_OPS_DISTILL_HPP_
