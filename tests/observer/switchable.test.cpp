// SPDX-License-Identifier: MIT
// tests/observer/switchable.test.cpp: Switchable<Q> — the QAT schedule's switches on the format
// quantizers.
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include <catch2/catch.hpp>

#include <fakequant/observer/switchable.hpp>
#include <fakequant/ops/fake_quant.hpp>
#include <fakequant/quantizer/formats.hpp>
#include <fakequant/schedule/qat_schedule.hpp>

namespace {

std::vector<float> batch(std::uint32_t seed, float gain) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> g(0.0f, gain);
  std::vector<float> x(8 * 64);
  for (float& v : x) v = g(rng);
  return x;
}

template <class Q>
std::vector<float> run(Q& q, const std::vector<float>& x, fq::Mask* mask = nullptr) {
  std::vector<float> y(x.size());
  q.forward(fq::TensorView<const float>(x.data(), {8, 64}),
            fq::TensorView<float>(y.data(), {8, 64}), mask);
  return y;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

}  // namespace

TEMPLATE_TEST_CASE("Switchable: fake quantization off is the identity with an all-ones mask",
                   "[formats][switchable]", fq::Int4WeightGroup32Symmetric, fq::MxFp4,
                   fq::Fp8E4M3PerTensor, fq::NvFp4, fq::Nf4Block64, fq::Int8ActPerTokenDynamic) {
  const std::vector<float> x = batch(1, 2.0f);
  fq::Switchable<TestType> s;
  TestType plain;
  fq::Mask m;
  CHECK(same_bits(run(s, x, &m), run(plain, x)));
  s.enable_fake_quant(false);
  fq::Mask off;
  CHECK(same_bits(run(s, x, &off), x));
  CHECK(off.count() == off.numel());
  s.enable_fake_quant(true);
  CHECK(same_bits(run(s, x), run(plain, x)));
}

TEMPLATE_TEST_CASE("Switchable: the observer switch freezes a dynamic quantizer's scales",
                   "[formats][switchable]", fq::Int4WeightGroup32Symmetric, fq::MxFp4,
                   fq::Fp8E4M3PerTensor, fq::Nf4Block64, fq::Int8ActPerTokenDynamic) {
  const std::vector<float> a = batch(2, 1.0f), b = batch(3, 5.0f);
  fq::Switchable<TestType> s;
  run(s, a);
  CHECK(s.dynamic());
  s.enable_observer(false);
  CHECK(s.dynamic());  // applied at the next forward, which computes b's scales and keeps them
  const std::vector<float> yb = run(s, b);
  CHECK_FALSE(s.dynamic());
  TestType plain;
  CHECK(same_bits(yb, run(plain, b)));
  // Frozen: a's output now uses b's scales, unlike a dynamic quantizer's.
  const std::vector<float> ya = run(s, a);
  CHECK_FALSE(same_bits(ya, run(plain, a)));
  plain.freeze();  // plain's last forward was a: freezing it keeps a's scales
  s.enable_observer(true);
  CHECK(same_bits(run(s, a), run(plain, a)));
  CHECK(s.dynamic());
}

TEST_CASE("Switchable: scales the user froze stay frozen until the switch changes",
          "[formats][switchable]") {
  const std::vector<float> a = batch(4, 1.0f), b = batch(5, 3.0f);
  fq::Switchable<fq::Fp8E4M3PerTensor> s;
  s.set_scale(0.01f);
  run(s, a);
  run(s, b);
  CHECK_FALSE(s.dynamic());
  CHECK(s.scale()[0] == 0.01f);
  s.enable_observer(false);  // already frozen: nothing to compute
  run(s, b);
  CHECK(s.scale()[0] == 0.01f);
}

TEST_CASE("Switchable: QatSchedule drives format quantizers through the phases",
          "[formats][switchable][schedule]") {
  fq::QatScheduleConfig cfg;
  cfg.warmup = 0;
  cfg.fake_quant_start = 2;
  cfg.observer_freeze = 4;
  fq::QatSchedule schedule(cfg);
  fq::Switchable<fq::Int4WeightGroup32Symmetric> w;
  fq::Switchable<fq::Int8ActPerTokenDynamic> act;
  schedule.add(w);
  schedule.add(act);
  std::vector<float> frozen_scale;
  for (std::int64_t t = 0; t < 6; ++t) {
    schedule.set_step(t);
    const std::vector<float> x = batch(static_cast<std::uint32_t>(10 + t), 1.0f + float(t));
    const std::vector<float> y = run(w, x);
    run(act, x);
    if (t < 2) {
      CHECK(same_bits(y, x));
    } else {
      CHECK_FALSE(same_bits(y, x));
    }
    if (t == 4) frozen_scale = w.scale();
    if (t == 5) {
      CHECK(w.scale() == frozen_scale);
      CHECK_FALSE(w.dynamic());
      CHECK_FALSE(act.dynamic());
    }
  }
}

TEST_CASE("Switchable on the tape: ops::fake_quant sees the switch", "[formats][switchable]") {
  std::vector<float> x = batch(6, 2.0f), gx(x.size(), 0.0f);
  fq::Switchable<fq::MxFp4> q;
  q.enable_fake_quant(false);
  fq::Tape tape;
  fq::Var y = fq::ops::fake_quant(tape, tape.leaf(x.data(), gx.data(), {8, 64}), q);
  CHECK(std::memcmp(y.value(), x.data(), x.size() * sizeof(float)) == 0);
}

TEST_CASE("Switchable off: ops::fake_quant returns x itself", "[observer][ops]") {
  fq::Switchable<fq::Int4WeightGroup32Symmetric> s;
  std::vector<float> x(64, 0.3f);
  fq::Tape t;
  const fq::Var xv = t.constant(x.data(), {2, 32});
  s.enable_fake_quant(false);
  CHECK(s.is_identity());
  CHECK(fq::ops::fake_quant(t, xv, s).value() == x.data());
  s.enable_fake_quant(true);
  CHECK_FALSE(s.is_identity());
  CHECK(fq::ops::fake_quant(t, xv, s).value() != x.data());
}
