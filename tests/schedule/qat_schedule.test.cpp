// SPDX-License-Identifier: MIT
// QatSchedule: the switch table step by step, every kind of registrant, resume by set_step,
// BN hooks on transitions only, and bad configs.
#include <cstdint>
#include <string>
#include <vector>

#include <fakequant/observer/fake_quantize_module.hpp>
#include <fakequant/schedule/qat_schedule.hpp>

#include "catch.hpp"

namespace {

// A quantizer with all three hooks that records the last value of each.
struct Recorder {
  int observer = -1, fake_quant = -1, learning = -1;
  int calls = 0;
  void enable_observer(bool on) {
    observer = on;
    ++calls;
  }
  void enable_fake_quant(bool on) {
    fake_quant = on;
    ++calls;
  }
  void set_learning(bool on) {
    learning = on;
    ++calls;
  }
};

// A learnable-style quantizer with only the learning hook.
struct LearnOnly {
  bool learning = true;
  void set_learning(bool on) { learning = on; }
};

struct BnLayer {
  std::vector<bool> calls;
  void freeze_bn_stats(bool on) { calls.push_back(on); }
};

fq::QatScheduleConfig example_config() {
  fq::QatScheduleConfig c;
  c.warmup = 2;
  c.fake_quant_start = 4;
  c.learning_start = 5;
  c.observer_freeze = 6;
  c.bn_freeze = 7;
  return c;
}

void expect_code(const fq::QatScheduleConfig& c, const std::string& needle) {
  try {
    fq::QatSchedule s(c);
    FAIL("no error for a bad config: " << needle);
  } catch (const fq::Error& e) {
    CHECK(e.code() == fq::ErrorCode::kInvalidArgument);
    CHECK(std::string(e.what()).find(needle) != std::string::npos);
  }
}

}  // namespace

static_assert(fq::is_qat_switchable_v<Recorder>, "three hooks");
static_assert(fq::is_qat_switchable_v<LearnOnly>, "set_learning alone is enough");
static_assert(fq::is_qat_switchable_v<fq::FakeQuantize<fq::QScheme<fq::Int8>>>,
              "fq::FakeQuantize has enable_observer and enable_fake_quant");
static_assert(!fq::is_qat_switchable_v<int>, "no hooks");
static_assert(!fq::is_qat_switchable_v<BnLayer>, "a BN layer is registered with add_bn");

TEST_CASE("qat schedule: switch table, step by step", "[schedule]") {
  fq::QatSchedule s(example_config());
  Recorder r;
  LearnOnly l;
  fq::FakeQuantize<fq::QScheme<fq::Int8>> fqm;
  BnLayer bn;
  int hook_obs = -1, hook_fq = -1;
  s.add(r);
  s.add(l);
  s.add(fqm);
  s.add(fq::QatHooks{[&](bool on) { hook_obs = on; }, [&](bool on) { hook_fq = on; }, nullptr});
  s.add_bn(bn);
  CHECK(s.current_step() == -1);
  // step:                    0  1  2  3  4  5  6  7  8  9
  const int observer[] = {0, 0, 1, 1, 1, 1, 0, 0, 0, 0};
  const int fake_quant[] = {0, 0, 0, 0, 1, 1, 1, 1, 1, 1};
  const int learning[] = {0, 0, 0, 0, 0, 1, 1, 1, 1, 1};
  const int bn_frozen[] = {0, 0, 0, 0, 0, 0, 0, 1, 1, 1};
  for (int t = 0; t < 10; ++t) {
    INFO("step " << t);
    s.advance();
    CHECK(s.current_step() == t);
    const fq::QatState st = s.state_at(t);
    CHECK(st.observer == (observer[t] == 1));
    CHECK(st.fake_quant == (fake_quant[t] == 1));
    CHECK(st.learning == (learning[t] == 1));
    CHECK(st.bn_frozen == (bn_frozen[t] == 1));
    CHECK(r.observer == observer[t]);
    CHECK(r.fake_quant == fake_quant[t]);
    CHECK(r.learning == learning[t]);
    CHECK(l.learning == (learning[t] == 1));
    CHECK(fqm.observer_enabled() == (observer[t] == 1));
    CHECK(fqm.fake_quant_enabled() == (fake_quant[t] == 1));
    CHECK(hook_obs == observer[t]);
    CHECK(hook_fq == fake_quant[t]);
    REQUIRE(!bn.calls.empty());
    CHECK(bn.calls.back() == (bn_frozen[t] == 1));
  }
  CHECK(r.calls == 30);
  // BN hooks: once on the first step (not frozen), once at the freeze.
  CHECK(bn.calls == std::vector<bool>{false, true});
}

TEST_CASE("qat schedule: set_step resumes deterministically", "[schedule]") {
  fq::QatSchedule a(example_config()), b(example_config());
  Recorder ra, rb;
  BnLayer ba, bb;
  a.add(ra);
  b.add(rb);
  a.add_bn(ba);
  b.add_bn(bb);
  for (int t = 0; t <= 8; ++t) a.advance();
  b.set_step(8);  // a resumed run
  CHECK(ra.observer == rb.observer);
  CHECK(ra.fake_quant == rb.fake_quant);
  CHECK(ra.learning == rb.learning);
  CHECK(ba.calls.back() == bb.calls.back());
  CHECK(bb.calls == std::vector<bool>{true});
  // Going back (e.g. re-running an evaluation at step 3) unfreezes BN and re-enables observers.
  b.set_step(3);
  CHECK(bb.calls == std::vector<bool>{true, false});
  CHECK(rb.observer == 1);
  CHECK(rb.fake_quant == 0);
  b.advance();
  CHECK(b.current_step() == 4);
  CHECK(rb.fake_quant == 1);
}

TEST_CASE("qat schedule: observers frozen by the schedule keep their range",
          "[schedule][observer]") {
  fq::QatScheduleConfig c;
  c.fake_quant_start = 0;
  c.observer_freeze = 1;
  fq::QatSchedule s(c);
  fq::FakeQuantize<fq::QScheme<fq::Int8>, fq::MinMaxObserver> fqm;
  s.add(fqm);
  std::vector<float> x{-1.0f, 0.5f, 1.0f}, y(3);
  s.advance();  // step 0: observe
  fqm.forward(fq::TensorView<const float>(x.data(), {3}), fq::TensorView<float>(y.data(), {3}));
  const float scale = fqm.quantizer().scale()[0];
  s.advance();  // step 1: frozen
  std::vector<float> big{-10.0f, 10.0f};
  std::vector<float> yb(2);
  fqm.forward(fq::TensorView<const float>(big.data(), {2}), fq::TensorView<float>(yb.data(), {2}));
  CHECK(fqm.observer().max_val()[0] == 1.0f);
  CHECK(fqm.quantizer().scale()[0] == scale);
  const auto z = static_cast<float>(fqm.quantizer().zero_point()[0]);
  CHECK(yb[1] == (127.0f - z) * scale);  // clipped at the frozen range
}

TEST_CASE("qat schedule: bad configs are clear errors", "[schedule]") {
  fq::QatScheduleConfig c;
  c.warmup = -1;
  expect_code(c, "warmup must be >= 0");
  c = example_config();
  c.fake_quant_start = 1;  // before the warm-up ends (2)
  expect_code(c, "fake_quant_start (1) is before the end of the FP32 warm-up (2)");
  c = example_config();
  c.observer_freeze = 2;  // frozen when they would start
  expect_code(c, "observer_freeze (2) must come after the observers start");
  c = example_config();
  c.bn_freeze = 3;
  expect_code(c, "bn_freeze (3) is before fake quantization starts (4)");
  c = example_config();
  c.learning_start = 0;
  expect_code(c, "learning_start (0) is before fake quantization starts (4)");
  fq::QatSchedule s(example_config());
  CHECK_THROWS_AS(s.state_at(-1), fq::Error);
  CHECK_THROWS_AS(s.on_bn_freeze(nullptr), fq::Error);
  // The defaults: fake quant and observers from step 0, nothing frozen, no learning.
  fq::QatSchedule d(fq::QatScheduleConfig{});
  CHECK(d.state_at(0) == fq::QatState{true, true, false, false});
  CHECK(d.state_at(1000000) == fq::QatState{true, true, false, false});
}
