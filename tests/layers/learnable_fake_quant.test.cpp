// SPDX-License-Identifier: MIT
#include <algorithm>
#include <limits>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>

#include <fakequant/layers/learnable_fake_quant.hpp>
#include <fakequant/layers/qlayers.hpp>
#include <fakequant/ops/elementwise.hpp>
#include <fakequant/ops/loss.hpp>
#include <fakequant/optim/adam.hpp>
#include <fakequant/optim/sgd.hpp>
#include <fakequant/schedule/qat_schedule.hpp>

#include "layers/layers_test_util.hpp"

using fq::Tape;
using fq::Var;
using PerTensorLsq = fq::LearnableFakeQuant<fq::TorchLsq>;
using PerChannelLsq =
    fq::LearnableFakeQuant<fq::LsqScheme<fq::LsqTorch, fq::TorchGradScale, fq::LinearScale<>,
                                         fq::NoScaleRestriction, fq::PerChannel<0>>,
                           fq::Int8>;

TEST_CASE("LearnableFakeQuant: y, dx, d scale and d zero point are the fused LSQ pass's",
          "[layers][lsq]") {
  fq_test::GradInput x({4, 50}, 3, -1.0f, 2.0f);
  PerTensorLsq node(fq::QuantRange{0, 255});
  node.enable_observer(false);
  node.quantizer().set_scale(0.01f);
  node.quantizer().set_zero_point(60.0f);
  // The reference: one fused call on the same data with dy = the weighted sum's weights.
  Tape tape;
  Var xv = tape.leaf(x.value.data(), x.grad.data(), x.shape);
  Var y = node.forward(tape, xv);
  Var loss = fq_test::weighted_sum(tape, y, 5);
  std::vector<float> dy(200);
  {
    // Recover the weights r: d loss / d y.
    tape.backward(loss);
  }
  fq::LsqQuantizer<fq::TorchLsq> ref(fq::QuantRange{0, 255});
  ref.set_scale(0.01f);
  ref.set_zero_point(60.0f);
  std::vector<float> y_ref(200), dx_ref(200);
  std::mt19937 rng(5);  // weighted_sum's r for seed 5
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (float& v : dy) v = u(rng);
  ref.forward_backward(fq::TensorView<const float>(x.value.data(), {4, 50}),
                       fq::TensorView<const float>(dy.data(), {4, 50}),
                       fq::TensorView<float>(y_ref.data(), {4, 50}),
                       fq::TensorView<float>(dx_ref.data(), {4, 50}));
  for (std::size_t i = 0; i < 200; ++i) {
    REQUIRE(y.value()[i] == y_ref[i]);
    REQUIRE(x.grad[i] == dx_ref[i]);
  }
  auto params = fq::optim::parameters_of(node);
  REQUIRE(params.size() == 2);
  CHECK(params[0].grad[0] == ref.scale_grad()[0]);
  CHECK(params[1].grad[0] == ref.zero_point_grad()[0]);
  // A second step accumulates; with learning off nothing is added.
  tape.clear();
  tape.backward(fq_test::weighted_sum(tape, node.forward(tape, xv), 5));
  CHECK(params[0].grad[0] == Approx(2 * ref.scale_grad()[0]));
  node.set_learning(false);
  tape.clear();
  tape.backward(fq_test::weighted_sum(tape, node.forward(tape, xv), 5));
  CHECK(params[0].grad[0] == Approx(2 * ref.scale_grad()[0]));
}

TEST_CASE("LearnableFakeQuant: the observer initialises s, z; fake-quant off passes through",
          "[layers][lsq]") {
  std::vector<float> x = {-1.0f, 0.0f, 0.5f, 3.0f}, dx(4, 0.0f);
  PerTensorLsq node(fq::QuantRange{0, 255});
  Tape tape;
  node.forward(tape, tape.leaf(x.data(), dx.data(), {4}));
  CHECK(node.quantizer().scale() == Approx(4.0f / 255.0f));
  CHECK(node.quantizer().zero_point()[0] == std::nearbyint(1.0f / (4.0f / 255.0f)));
  node.enable_fake_quant(false);
  tape.clear();
  Var y = node.forward(tape, tape.leaf(x.data(), dx.data(), {4}));
  for (std::size_t i = 0; i < 4; ++i) CHECK(y.value()[i] == x[i]);
  tape.backward(fq::ops::mean(tape, y));
  for (float g : dx) CHECK(g == Approx(0.25f));
}

TEST_CASE("QLinear with LSQ quantizers: scales are parameters and learn under a schedule",
          "[layers][lsq][schedule]") {
  std::mt19937 rng(21);
  fq::QLinear<PerChannelLsq, PerTensorLsq> layer(8, 3, rng, fq::Activation::kReLU);
  layer.weight_quantizer() =
      PerChannelLsq(fq::QuantRange{-128, 127}, 3, /*learn_zero_point=*/false);
  // weight, bias, the weight scales (no zero point) and the output's scale and zero point.
  REQUIRE(layer.parameters().size() == 5);
  fq::QatScheduleConfig cfg;
  cfg.observer_freeze = 1;  // one calibrating step, then the scales learn
  cfg.learning_start = 1;
  fq::QatSchedule sched(cfg);
  layer.for_each_quantizer([&](auto& q) { sched.add(q); });
  fq::optim::AdamOptions o;
  o.lr = 1e-2;
  fq::optim::Adam opt(layer.parameters(), o);
  std::normal_distribution<float> g;
  std::vector<float> x(32 * 8);
  std::vector<std::int32_t> t(32);
  Tape tape;
  float s0 = 0;
  for (int step = 0; step < 40; ++step) {
    sched.advance();
    for (std::size_t i = 0; i < 32; ++i) {
      for (std::size_t k = 0; k < 8; ++k) x[i * 8 + k] = g(rng);
      t[i] = x[i * 8] > 0 ? 1 : 0;
    }
    tape.backward(fq::ops::softmax_cross_entropy(
        tape, layer.forward(tape, tape.constant(x.data(), {32, 8})), t.data()));
    if (step == 0) {
      for (const auto& p : layer.parameters()) {
        if (std::string(p.name).rfind("lsq", 0) == 0) CHECK(p.grad[0] == 0.0f);  // not learning yet
      }
      s0 = layer.output_quantizer().quantizer().scale();
    }
    opt.step();
    opt.zero_grad();
    tape.clear();
  }
  CHECK_FALSE(layer.output_quantizer().observer_enabled());
  CHECK(layer.output_quantizer().quantizer().scale() != s0);  // learned
  CHECK(layer.output_quantizer().quantizer().scale() > 0.0f);
}

namespace {

/// The ErrorCode and message a callable fails with (kInvalidArgument and "" if it does not).
template <class F>
std::pair<fq::ErrorCode, std::string> failure_of(F&& f) {
  try {
    f();
  } catch (const fq::Error& e) {
    return {e.code(), e.what()};
  }
  return {fq::ErrorCode::kInvalidArgument, ""};
}

}  // namespace

TEST_CASE("LearnableFakeQuant: an optimizer built before the first forward trains safely",
          "[layers][lsq][optim]") {
  // The order of docs/getting_started.md: build the optimizer, then train. The parameters the
  // optimizer holds must never move (this test runs under ASan in the sanitize build).
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  PerChannelLsq node(fq::QuantRange{-128, 127}, 4, /*learn_zero_point=*/false);
  std::vector<fq::optim::ParamRef> params = fq::optim::parameters_of(node);
  REQUIRE(params.size() == 1);
  REQUIRE(params[0].size == 4);
  const float* storage = params[0].value;
  fq::optim::SgdOptions o;
  o.lr = 1e-3;
  o.momentum = 0.9;
  fq::optim::Sgd opt(params, o);
  std::vector<float> w(4 * 16), dw(w.size());
  Tape tape;
  for (int step = 0; step < 5; ++step) {
    for (float& v : w) v = nd(rng);
    std::fill(dw.begin(), dw.end(), 0.0f);
    node.enable_observer(step == 0);
    Var y = node.forward(tape, tape.leaf(w.data(), dw.data(), {4, 16}));
    tape.backward(fq_test::weighted_sum(tape, y, 7));
    REQUIRE(fq::optim::parameters_of(node)[0].value == storage);  // never reallocated
    opt.step();
    opt.zero_grad();
    tape.clear();
  }
  for (std::size_t c = 0; c < 4; ++c) CHECK(node.quantizer().scale(std::int64_t(c)) > 0.0f);
  // A tensor with another channel count is refused, not a reallocation.
  std::vector<float> w5(5 * 16, 0.5f), dw5(w5.size());
  node.enable_observer(true);
  const auto f = failure_of([&] { node.forward(tape, tape.leaf(w5.data(), dw5.data(), {5, 16})); });
  CHECK(f.first == fq::ErrorCode::kParamCountMismatch);
  CHECK(fq::optim::parameters_of(node)[0].value == storage);
}

TEST_CASE(
    "LearnableFakeQuant: a default-constructed per-channel node hands out no parameters "
    "before its channel count is known",
    "[layers][lsq][optim]") {
  std::vector<float> w(3 * 8, 0.25f), dw(w.size());
  {
    PerChannelLsq node;
    const auto f = failure_of([&] { (void)fq::optim::parameters_of(node); });
    CHECK(f.first == fq::ErrorCode::kInvalidArgument);
    CHECK(f.second.find("channel count") != std::string::npos);
    Tape tape;  // the first forward (observer on) sizes it; then the parameters are fixed
    node.forward(tape, tape.leaf(w.data(), dw.data(), {3, 8}));
    const auto p = fq::optim::parameters_of(node);
    REQUIRE(p[0].size == 3);
    tape.clear();
    node.forward(tape, tape.leaf(w.data(), dw.data(), {3, 8}));
    CHECK(fq::optim::parameters_of(node)[0].value == p[0].value);
  }
  {
    PerChannelLsq node;
    node.set_channel_count(3);  // what a layer knowing its output channels does
    const auto p = fq::optim::parameters_of(node);
    REQUIRE(p[0].size == 3);
    node.set_channel_count(3);  // same count: a no-op
    CHECK(failure_of([&] { node.set_channel_count(4); }).first ==
          fq::ErrorCode::kParamCountMismatch);
    Tape tape;
    node.forward(tape, tape.leaf(w.data(), dw.data(), {3, 8}));
    CHECK(fq::optim::parameters_of(node)[0].value == p[0].value);
  }
  {
    PerTensorLsq node;  // per tensor: sized from the start; a channel count changes nothing
    node.set_channel_count(16);
    CHECK(fq::optim::parameters_of(node)[0].size == 1);
  }
}

TEST_CASE("LearnableFakeQuant: a NaN zero point is reported as such", "[layers][lsq][errors]") {
  std::vector<float> x = {-1.0f, 0.0f, 0.5f, 3.0f}, dx(4, 0.0f);
  PerTensorLsq node(fq::QuantRange{0, 255});
  node.enable_observer(false);
  node.quantizer().set_scale(0.02f);
  node.quantizer().zero_point()[0] = std::numeric_limits<float>::quiet_NaN();
  Tape tape;
  const auto f = failure_of([&] { node.forward(tape, tape.leaf(x.data(), dx.data(), {4})); });
  CHECK(f.first == fq::ErrorCode::kInvalidZeroPoint);
  CHECK(f.second.find("zero point is NaN") != std::string::npos);
}

TEST_CASE("QLinear with a per-channel LSQ weight: the optimizer may be built before any forward",
          "[layers][lsq][optim]") {
  // The layer knows its output channels, so its default-built weight quantizer is sized at
  // construction and parameters() is valid (and stays put) from the start.
  std::mt19937 rng(5);
  fq::QLinear<PerChannelLsq, PerTensorLsq> layer(6, 4, rng, fq::Activation::kNone);
  std::vector<fq::optim::ParamRef> params = layer.parameters();
  REQUIRE(params.size() == 5);  // weight, bias, the 4 weight scales, the output scale and z
  std::vector<const float*> storage;
  for (const auto& p : params) storage.push_back(p.value);
  fq::optim::Sgd opt(params, fq::optim::SgdOptions{});
  std::normal_distribution<float> g;
  std::vector<float> x(8 * 6);
  std::vector<std::int32_t> t(8);
  Tape tape;
  for (int step = 0; step < 4; ++step) {
    for (std::size_t i = 0; i < x.size(); ++i) x[i] = g(rng);
    for (std::size_t i = 0; i < t.size(); ++i) t[i] = static_cast<std::int32_t>(i % 4);
    tape.backward(fq::ops::softmax_cross_entropy(
        tape, layer.forward(tape, tape.constant(x.data(), {8, 6})), t.data()));
    opt.step();
    opt.zero_grad();
    tape.clear();
  }
  const auto after = layer.parameters();
  REQUIRE(after.size() == storage.size());
  for (std::size_t i = 0; i < after.size(); ++i) CHECK(after[i].value == storage[i]);
  CHECK(fq::optim::parameters_of(layer.weight_quantizer())[0].size == 4);
}
