// SPDX-License-Identifier: MIT
// kd_kl_div and distillation_loss (ops/distill.hpp): gradients against finite differences, the
// forward against a double reference of KL(p ‖ q), the teacher receiving no gradient, the
// α = 0 / α = 1 ends against softmax_cross_entropy / kd_kl_div, and bad input.
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <vector>

#include <catch2/catch.hpp>

#include <fakequant/ops/distill.hpp>
#include <fakequant/ops/loss.hpp>
#include <fakequant/testing/check_op_gradients.hpp>

#include "ops/ops_test_util.hpp"
#include "test_util.hpp"

using fq::Tape;
using fq::Var;
using fq_test::check_grad;
using fq_test::GradInput;

namespace {
/// T²/N Σ_n KL(softmax(t_n/T) ‖ softmax(s_n/T)) in double, from the probabilities.
double kd_ref(const std::vector<float>& s, const std::vector<float>& t, std::int64_t n,
              std::int64_t k, double temp) {
  double total = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    std::vector<double> p(static_cast<std::size_t>(k)), q(p.size());
    double sp = 0, sq = 0;
    for (std::int64_t j = 0; j < k; ++j) {
      sp += p[std::size_t(j)] = std::exp(t[std::size_t(i * k + j)] / temp);
      sq += q[std::size_t(j)] = std::exp(s[std::size_t(i * k + j)] / temp);
    }
    for (std::int64_t j = 0; j < k; ++j) {
      const double pj = p[std::size_t(j)] / sp, qj = q[std::size_t(j)] / sq;
      if (pj > 0) total += pj * std::log(pj / qj);
    }
  }
  return temp * temp * total / double(n);
}
}  // namespace

TEST_CASE("kd_kl_div, distillation_loss: student gradients match finite differences",
          "[ops][distill]") {
  GradInput s({5, 7}, 1, -3, 3), t({5, 7}, 2, -4, 4);
  const std::int32_t labels[] = {0, 6, 3, 3, 1};
  for (float temp : {1.0f, 2.5f, 6.0f}) {
    INFO("T " << temp);
    check_grad({s}, [&](Tape& tp, std::vector<Var>& v) {
      return fq::ops::kd_kl_div(tp, v[0], tp.constant(t.value.data(), t.shape), temp);
    });
    for (float alpha : {0.0f, 0.3f, 1.0f})
      check_grad({s}, [&](Tape& tp, std::vector<Var>& v) {
        return fq::ops::distillation_loss(tp, v[0], tp.constant(t.value.data(), t.shape), labels,
                                          temp, alpha);
      });
  }
}

TEST_CASE("kd_kl_div: forward equals KL from the probabilities; the teacher gets no gradient",
          "[ops][distill]") {
  GradInput s({6, 11}, 11, -5, 5), t({6, 11}, 12, -5, 5);
  t.value[3] = -std::numeric_limits<float>::infinity();       // a class the teacher rules out
  for (std::size_t j = 11; j < 22; ++j) t.value[j] *= 16.0f;  // a confident teacher (±80)
  for (float temp : {0.5f, 1.0f, 4.0f}) {
    Tape tape;
    std::vector<float> ds(s.value.size(), 0.25f), dt(t.value.size(), 0.0f);
    const Var sv = tape.leaf(s.value.data(), ds.data(), s.shape);
    const Var tv = tape.leaf(t.value.data(), dt.data(), t.shape);  // has a gradient buffer
    const Var l = fq::ops::kd_kl_div(tape, sv, tv, temp);
    REQUIRE(l.shape().rank == 0);
    CHECK(l.value()[0] == Approx(kd_ref(s.value, t.value, 6, 11, temp)).epsilon(1e-5));
    CHECK(l.value()[0] > 0.0f);
    tape.backward(l);
    for (float g : dt) REQUIRE(g == 0.0f);
    // ds = T/N·(q − p) + the 0.25 already there: rows of (ds − 0.25) sum to 0.
    for (int i = 0; i < 6; ++i) {
      double row = 0;
      for (int j = 0; j < 11; ++j) row += ds[std::size_t(i * 11 + j)] - 0.25;
      CHECK(row == Approx(0.0).margin(1e-6));
    }
  }
  // The same logits for student and teacher: KL = 0 and no gradient.
  Tape tape;
  std::vector<float> ds(s.value.size(), 0.0f);
  const Var sv = tape.leaf(s.value.data(), ds.data(), s.shape);
  const Var l = fq::ops::kd_kl_div(tape, sv, sv, 3.0f);
  CHECK(l.value()[0] == Approx(0.0).margin(1e-6));
  tape.backward(l);
  for (float g : ds) CHECK(g == Approx(0.0).margin(1e-7));
}

TEST_CASE("distillation_loss: α = 0 is the cross-entropy, α = 1 the KD term, in between a mix",
          "[ops][distill]") {
  GradInput s({4, 6}, 21, -3, 3), t({4, 6}, 22, -3, 3);
  const std::int32_t labels[] = {5, 0, 2, 2};
  auto run = [&](const std::function<Var(Tape&, const Var&, const Var&)>& f,
                 std::vector<float>* ds) {
    Tape tape;
    ds->assign(s.value.size(), 0.0f);
    const Var l = f(tape, tape.leaf(s.value.data(), ds->data(), s.shape),
                    tape.constant(t.value.data(), t.shape));
    tape.backward(l);
    return double(l.value()[0]);
  };
  std::vector<float> d_ce, d_kd, d0, d1, dm;
  const float temp = 3.0f;
  const double ce = run([&](Tape& tp, const Var& a,
                            const Var&) { return fq::ops::softmax_cross_entropy(tp, a, labels); },
                        &d_ce);
  const double kd =
      run([&](Tape& tp, const Var& a, const Var& b) { return fq::ops::kd_kl_div(tp, a, b, temp); },
          &d_kd);
  const double l0 =
      run([&](Tape& tp, const Var& a,
              const Var& b) { return fq::ops::distillation_loss(tp, a, b, labels, temp, 0.0f); },
          &d0);
  const double l1 =
      run([&](Tape& tp, const Var& a,
              const Var& b) { return fq::ops::distillation_loss(tp, a, b, labels, temp, 1.0f); },
          &d1);
  const double lm =
      run([&](Tape& tp, const Var& a,
              const Var& b) { return fq::ops::distillation_loss(tp, a, b, labels, temp, 0.25f); },
          &dm);
  CHECK(l0 == Approx(ce).epsilon(1e-6));
  CHECK(l1 == Approx(kd).epsilon(1e-6));
  CHECK(lm == Approx(0.25 * kd + 0.75 * ce).epsilon(1e-6));
  for (std::size_t i = 0; i < d_ce.size(); ++i) {
    CHECK(d0[i] == Approx(d_ce[i]).margin(1e-7));
    CHECK(d1[i] == Approx(d_kd[i]).margin(1e-7));
    CHECK(dm[i] == Approx(0.25 * d_kd[i] + 0.75 * d_ce[i]).margin(1e-7));
  }
}

TEST_CASE("kd_kl_div, distillation_loss: bad input is refused with its error code",
          "[ops][distill]") {
  using fq::ErrorCode;
  using fq_test::error_code_of;
  GradInput s({3, 4}, 31), t({3, 4}, 32), t5({3, 5}, 33), flat({12}, 34);
  Tape tape, other;
  const Var sv = tape.constant(s.value.data(), s.shape),
            tv = tape.constant(t.value.data(), t.shape);
  const Var t5v = tape.constant(t5.value.data(), t5.shape);
  const Var fv = tape.constant(flat.value.data(), flat.shape);
  const Var ev = tape.leaf(nullptr, nullptr, {0, 4});
  const std::int32_t ok[] = {0, 3, 1}, bad_hi[] = {0, 4, 1}, bad_lo[] = {-1, 0, 0};
  auto kd = [&](const Var& a, const Var& b, float temp) {
    return error_code_of([&] { fq::ops::kd_kl_div(tape, a, b, temp); });
  };
  auto dl = [&](const Var& a, const Var& b, const std::int32_t* lab, float temp, float alpha) {
    return error_code_of([&] { fq::ops::distillation_loss(tape, a, b, lab, temp, alpha); });
  };
  CHECK(kd(sv, tv, 2.0f) == ErrorCode{});
  CHECK(dl(sv, tv, ok, 2.0f, 0.5f) == ErrorCode{});
  CHECK(kd(sv, t5v, 2.0f) == ErrorCode::kShapeMismatch);
  CHECK(dl(sv, t5v, ok, 2.0f, 0.5f) == ErrorCode::kShapeMismatch);
  CHECK(kd(fv, fv, 2.0f) == ErrorCode::kShapeMismatch);  // not [N, K]
  CHECK(kd(ev, ev, 2.0f) == ErrorCode::kShapeMismatch);  // empty batch
  const float nan = std::numeric_limits<float>::quiet_NaN(),
              inf = std::numeric_limits<float>::infinity();
  for (float temp : {0.0f, -1.0f, nan, inf}) {
    INFO("T " << temp);
    CHECK(kd(sv, tv, temp) == ErrorCode::kInvalidArgument);
    CHECK(dl(sv, tv, ok, temp, 0.5f) == ErrorCode::kInvalidArgument);
  }
  for (float alpha : {-0.01f, 1.01f, nan, inf})
    CHECK(dl(sv, tv, ok, 2.0f, alpha) == ErrorCode::kInvalidArgument);
  CHECK(dl(sv, tv, bad_hi, 2.0f, 0.5f) == ErrorCode::kInvalidArgument);
  CHECK(dl(sv, tv, bad_lo, 2.0f, 0.5f) == ErrorCode::kInvalidArgument);
  CHECK(dl(sv, tv, nullptr, 2.0f, 0.5f) == ErrorCode::kInvalidArgument);
  CHECK_THROWS_WITH(fq::ops::distillation_loss(tape, sv, tv, bad_hi, 2.0f, 0.5f),
                    Catch::Contains("label 4 of sample 1"));
  const Var so = other.constant(s.value.data(), s.shape);
  CHECK(kd(so, tv, 2.0f) == ErrorCode::kInvalidArgument);  // another tape
  CHECK(kd(sv, so, 2.0f) == ErrorCode::kInvalidArgument);
  const Var freed = tape.variable({3, 4}, false);
  tape.clear();
  CHECK(kd(freed, tv, 2.0f) == ErrorCode::kInvalidState);
  CHECK(dl(sv, freed, ok, 2.0f, 0.5f) == ErrorCode::kInvalidState);
}

TEST_CASE("kd_kl_div, distillation_loss: identical samples get identical gradient bits",
          "[ops][distill]") {
  // Rows of K = 10, 37 and 100 logits start at many float offsets mod 16; every sample is the
  // same (student row, teacher row, label), so every row of ds must have the first row's bits.
  for (std::int64_t k : {10, 37, 100})
    for (bool with_ce : {false, true}) {
      INFO("K " << k << " with CE " << with_ce);
      const std::int64_t n = 33;
      const auto ku = std::size_t(k);
      std::vector<float> s(std::size_t(n) * ku), t(s.size()), ds(s.size(), 0.0f);
      for (std::size_t e = 0; e < s.size(); ++e) {
        const auto j = float(e % ku);
        s[e] = std::sin(1.3f * j) * 4.0f;
        t[e] = std::cos(0.7f * j) * 5.0f;
      }
      const std::vector<std::int32_t> labels(std::size_t(n), std::int32_t(k / 2));
      Tape tape;
      const Var sv = tape.leaf(s.data(), ds.data(), {n, k}), tv = tape.constant(t.data(), {n, k});
      const Var l = with_ce ? fq::ops::distillation_loss(tape, sv, tv, labels.data(), 2.0f, 0.7f)
                            : fq::ops::kd_kl_div(tape, sv, tv, 2.0f);
      tape.backward(l);
      std::size_t bad = 0;
      for (std::size_t e = ku; e < ds.size(); ++e)
        bad += fq_test::bits_of(ds[e]) != fq_test::bits_of(ds[e % ku]);
      CHECK(bad == 0);
      CHECK(std::isfinite(l.value()[0]));
    }
}
