// SPDX-License-Identifier: MIT
// Networks trained with learned quantizers (LSQ, LSQ+, paper LSQ with a log2 scale, power-of-two
// restricted LSQ, PACT; weights per channel and per tensor) convert like min-max ones: the
// snapshot (fq::freeze) fake-quantizes exactly as the learned quantizer, the integer model's
// qparams and weight levels are the snapshot's, and the integer model equals the tape network
// in integer arithmetic bit for bit after training moved the learned scales.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <set>
#include <string>
#include <type_traits>
#include <vector>

#include <catch2/catch.hpp>

#include <fakequant/convert/int8_model.hpp>
#include <fakequant/layers/learnable_fake_quant.hpp>
#include <fakequant/learnable/freeze.hpp>
#include <fakequant/ops/loss.hpp>
#include <fakequant/optim/sgd.hpp>
#include <fakequant/schedule/qat_schedule.hpp>

#include "test_util.hpp"

// A named namespace around the whole file: its helpers stay its own in a unity source.
namespace fq_test_learned_convert {

using fq::Tape;
using fq::Var;

namespace {

template <class G, class N = fq::LsqTorch, class SP = fq::LinearScale<>,
          class R = fq::NoScaleRestriction>
using Lsq = fq::LsqScheme<N,
                          std::conditional_t<std::is_same<N, fq::LsqPaper>::value,
                                             fq::LsqPaperGradScale, fq::TorchGradScale>,
                          SP, R, G>;
using PerCh = fq::PerChannel<0>;
using PerT = fq::PerTensor;

// The quantizer families: weight quantizer W, activation (output) quantizer A, input quantizer In.
struct LsqFamily {
  static constexpr const char* kName = "LSQ+ (per-channel weights, affine activations)";
  using W = fq::LearnableFakeQuant<Lsq<PerCh>, fq::Int8>;
  using A = fq::LearnableFakeQuant<fq::TorchLsq, fq::UInt8>;
  using In = A;
};
struct LsqPerTensorFamily {
  static constexpr const char* kName = "LSQ (per-tensor weights)";
  using W = fq::LearnableFakeQuant<Lsq<PerT>, fq::Int8>;
  using A = fq::LearnableFakeQuant<fq::TorchLsq, fq::UInt8>;
  using In = fq::DefaultActFakeQuant;
};
struct PaperLsqFamily {
  static constexpr const char* kName = "paper LSQ (log2 scale, saturating)";
  using W = fq::LearnableFakeQuant<Lsq<PerCh, fq::LsqPaper, fq::Log2Scale>, fq::Int8>;
  using A = fq::LearnableFakeQuant<Lsq<PerT, fq::LsqPaper, fq::Log2Scale>, fq::UInt8>;
  using In = fq::LearnableFakeQuant<fq::TorchLsq, fq::UInt8>;
};
struct PowerOfTwoFamily {
  static constexpr const char* kName = "power-of-two LSQ";
  using W = fq::LearnableFakeQuant<Lsq<PerCh, fq::LsqTorch, fq::LinearScale<>, fq::PowerOfTwoRound>,
                                   fq::Int8>;
  using A = fq::LearnableFakeQuant<Lsq<PerT, fq::LsqTorch, fq::LinearScale<>, fq::PowerOfTwoCeil>,
                                   fq::UInt8>;
  using In = A;
};
struct PactFamily {
  static constexpr const char* kName = "PACT activations";
  using W = fq::DefaultWeightFakeQuant;
  using A = fq::Pact<8>;
  using In = fq::LearnableFakeQuant<fq::TorchLsq, fq::UInt8>;  // PACT saturates: not an input
};

template <class Q>
void observers_off(Q& q) {
  if constexpr (fq::detail::has_enable_observer<Q>::value) q.enable_observer(false);
}

// input -> ConvBn 1->3 ReLU -> pool 2 -> flatten -> Linear 3*4*4->6 ReLU6 -> Linear 6->4 (float)
template <class F>
struct Net {
  using Logits = fq::QLinear<typename F::W, fq::NoFakeQuant>;
  explicit Net(std::mt19937& rng)
      : conv(1, 3, 3, rng, fq::ops::Conv2dOptions::make(1, 1), fq::Activation::kReLU),
        fc1(3 * 4 * 4, 6, rng, fq::Activation::kReLU6),
        fc2(6, 4, rng) {}
  Var forward(Tape& t, const Var& x) {
    const Var h = pool.forward(t, conv.forward(t, in.forward(t, x)));
    return fc2.forward(t, fc1.forward(t, flatten.forward(t, h)));
  }
  std::vector<fq::optim::ParamRef> parameters() {
    std::vector<fq::optim::ParamRef> p = in.parameters();
    for (auto&& r : conv.parameters()) p.push_back(r);
    for (auto&& r : fc1.parameters()) p.push_back(r);
    for (auto&& r : fc2.parameters()) p.push_back(r);
    return p;
  }
  template <class G>
  void for_each_quantizer(G&& g) {
    fq::for_each_quantizer_of(g, in, conv, fc1, fc2);
  }
  fq::Int8Model convert() {
    return fq::convert_sequential(in, {1, 8, 8}, conv, pool, flatten, fc1, fc2);
  }
  void use_integer_arithmetic() {
    conv.use_integer_arithmetic(fq::act_qparams(in.quantizer()));
    fc1.use_integer_arithmetic(fq::act_qparams(conv.output_quantizer()));
    fc2.use_integer_arithmetic(fq::act_qparams(fc1.output_quantizer()));
  }
  fq::ActQuant<typename F::In> in;
  fq::QConvBn2d<typename F::W, typename F::A> conv;
  fq::QLinear<typename F::W, typename F::A> fc1;
  Logits fc2;
  fq::MaxPool2d pool{2, 2};
  fq::Flatten flatten;
};

std::vector<float> images(std::int64_t n, std::mt19937& rng) {
  std::normal_distribution<float> nd(0.5f, 1.0f);
  std::vector<float> x(std::size_t(n * 64));
  for (float& v : x) v = nd(rng);
  return x;
}

// A few SGD steps with every learned quantizer learning; the observers run on the first step
// only (LSQ's initialisation from min/max), then batch norm switches to its running statistics.
template <class F>
Net<F> trained_net(std::uint32_t seed) {
  std::mt19937 rng(seed);
  Net<F> net(rng);
  std::vector<std::int32_t> labels(16);
  for (std::size_t i = 0; i < labels.size(); ++i) labels[i] = std::int32_t(i % 4);
  Tape tape;
  {  // the first batch initialises the observers (LSQ from min/max, min-max observers)
    fq::NoGradGuard ng(tape);
    const std::vector<float> x = images(16, rng);
    net.forward(tape, tape.constant(x.data(), {16, 1, 8, 8}));
  }
  net.for_each_quantizer([](auto& q) { observers_off(q); });
  fq::optim::SgdOptions so;
  so.lr = 0.01;
  fq::optim::Sgd opt(net.parameters(), so);
  for (int step = 0; step < 6; ++step) {
    tape.clear();
    const std::vector<float> x = images(16, rng);
    const Var loss = fq::ops::softmax_cross_entropy(
        tape, net.forward(tape, tape.constant(x.data(), {16, 1, 8, 8})), labels.data());
    tape.backward(loss);
    opt.step();
    opt.zero_grad();
  }
  net.conv.train(false);
  return net;
}

bool bit_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

template <class N>
std::vector<float> tape_logits(N& net, const std::vector<float>& x, std::int64_t n) {
  Tape tape;
  fq::NoGradGuard ng(tape);
  const Var y = net.forward(tape, tape.constant(x.data(), {n, 1, 8, 8}));
  return std::vector<float>(y.value(), y.value() + y.numel());
}

// y = q.forward(x) through the protocol (learned and fixed quantizers alike).
// x is [rows, size / rows] (rows: the channels of a per-channel quantizer).
template <class Q>
std::vector<float> fake_quant(Q& q, const std::vector<float>& x, std::int64_t rows) {
  std::vector<float> y(x.size());
  const std::int64_t cols = std::int64_t(x.size()) / rows;
  q.forward(fq::TensorView<const float>(x.data(), {rows, cols}),
            fq::TensorView<float>(y.data(), {rows, cols}), nullptr);
  return y;
}

// The weight levels times the weight scales are the learned weight quantizer's output.
template <class WQ>
void check_weight_levels(const fq::Int8LayerParams& p, WQ& wq, const std::vector<float>& w) {
  const std::vector<float> y = fake_quant(wq, w, std::int64_t(p.weight_scale.size()));
  const std::size_t per_out = w.size() / p.weight_scale.size();
  std::size_t differ = 0;
  for (std::size_t i = 0; i < w.size(); ++i) {
    const float back = float(p.weight[i]) * p.weight_scale[i / per_out];
    differ += std::memcmp(&back, &y[i], sizeof back) != 0 && !(back == 0.0f && y[i] == 0.0f);
  }
  CHECK(differ == 0);
}

template <class F>
void check_family() {
  INFO(F::kName);
  Net<F> net = trained_net<F>(11);
  const fq::Int8Model model = net.convert();

  // The input qparams are the snapshot's, and quantizing with them reproduces the learned
  // input quantizer's forward on any input (saturation, ties and NaN included).
  const auto in_snapshot = fq::detail::deployed_quantizer(net.in.quantizer());
  CHECK(in_snapshot.has_qparams());
  CHECK(model.input_qparams().scale == in_snapshot.scale()[0]);
  CHECK(model.input_qparams().zero_point == in_snapshot.zero_point()[0]);
  {
    const float s = model.input_qparams().scale;
    const auto z = float(model.input_qparams().zero_point);
    std::vector<float> x{0.0f, -1e30f, 1e30f, std::numeric_limits<float>::infinity(),
                         std::numeric_limits<float>::quiet_NaN()};
    for (int k = -300; k <= 300; ++k) x.push_back((float(k) * 0.5f - z) * s);  // ties
    std::mt19937 rng(3);
    for (float v : images(4, rng)) x.push_back(v);
    const auto n = std::int64_t(x.size());
    const std::vector<float> learned = fake_quant(net.in.quantizer(), x, 1);
    const std::vector<float> frozen = fake_quant(in_snapshot, x, 1);
    std::vector<std::uint8_t> levels(x.size());
    fq::quantize_per_tensor(fq::TensorView<const float>(x.data(), {n}),
                            fq::TensorView<std::uint8_t>(levels.data(), {n}), s,
                            model.input_qparams().zero_point, model.input_range());
    std::size_t differ = 0, differ_levels = 0;
    for (std::size_t i = 0; i < x.size(); ++i) {
      differ += !(learned[i] == frozen[i]);
      differ_levels += !((float(levels[i]) - z) * s == learned[i]);
    }
    CHECK(differ == 0);
    CHECK(differ_levels == 0);
  }

  // Each layer's output qparams are its learned output quantizer's, its weight levels the
  // learned weight quantizer's.
  const auto& conv_p = std::get<fq::Int8Conv2d>(model.steps()[0]).params();
  const auto& fc1_p = std::get<fq::Int8Linear>(model.steps()[3]).params();
  const auto aq = fq::detail::deployed_quantizer(net.fc1.output_quantizer());
  CHECK(fc1_p.out.scale == aq.scale()[0]);
  CHECK(fc1_p.out.zero_point == aq.zero_point()[0]);
  check_weight_levels(fc1_p, net.fc1.weight_quantizer(), net.fc1.weight().value());
  CHECK(conv_p.weight.size() == 27);
  const auto& fc2_p = std::get<fq::Int8Linear>(model.steps()[4]).params();
  check_weight_levels(fc2_p, net.fc2.weight_quantizer(), net.fc2.weight().value());

  // The integer model is the tape network in integer arithmetic, bit for bit; the float
  // simulation agrees up to the 1-LSB rounding differences convert.hpp states.
  std::mt19937 rng(99);
  const std::int64_t n = 12;
  const std::vector<float> x = images(n, rng);
  std::vector<float> logits(std::size_t(n * 4));
  model.run(x.data(), n, logits.data());
  CHECK(std::set<float>(logits.begin(), logits.end()).size() > std::size_t(n));
  const std::vector<float> sim = tape_logits(net, x, n);
  std::size_t top1_same = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    const auto* a = &logits[std::size_t(i * 4)];
    const auto* b = &sim[std::size_t(i * 4)];
    top1_same += std::max_element(a, a + 4) - a == std::max_element(b, b + 4) - b;
  }
  CHECK(top1_same >= std::size_t(n - 2));
  net.use_integer_arithmetic();
  CHECK(bit_equal(logits, tape_logits(net, x, n)));
}

}  // namespace

TEST_CASE("freeze: the snapshot fake-quantizes exactly as the learned quantizer",
          "[convert][learnable]") {
  std::mt19937 rng(5);
  std::normal_distribution<float> nd(0.0f, 2.0f);
  std::vector<float> x(6 * 50);
  for (float& v : x) v = nd(rng);
  x[0] = std::numeric_limits<float>::infinity();
  x[1] = -std::numeric_limits<float>::infinity();
  x[2] = std::numeric_limits<float>::quiet_NaN();
  x[3] = 1e30f;
  auto same = [&](auto& q) {
    const auto f = fq::freeze(q);
    REQUIRE(f.has_qparams());
    const std::vector<float> a = fake_quant(q, x, 6);
    const std::vector<float> b = fake_quant(f, x, 6);
    return bit_equal(a, b);
  };
  SECTION("LSQ+ per tensor, a zero point that is not an integer") {
    fq::LsqQuantizer<fq::TorchLsq> q(fq::QuantRange{0, 255});
    q.set_scale(0.0371f);
    q.set_zero_point(97.4f);
    CHECK(same(q));
    CHECK(fq::freeze(q).zero_point()[0] == 97);
    q.set_zero_point(-20.0f);  // clamped to the range, as the forward does
    CHECK(same(q));
    CHECK(fq::freeze(q).zero_point()[0] == 0);
  }
  SECTION("LSQ per channel, log2 scales, saturating numerics") {
    fq::LsqQuantizer<Lsq<PerCh, fq::LsqPaper, fq::Log2Scale>> q(fq::QuantRange{-8, 7}, 6, false);
    const float s[6] = {0.1f, 0.2f, 0.05f, 1.0f, 3.0f, 0.7f};
    q.set_qparams(s, nullptr, 6);
    CHECK(same(q));
  }
  SECTION("power-of-two restricted scales") {
    fq::LsqQuantizer<Lsq<PerCh, fq::LsqTorch, fq::LinearScale<>, fq::PowerOfTwoCeil>> q(
        fq::QuantRange{-128, 127}, 6, false);
    const float s[6] = {0.013f, 0.2f, 0.05f, 1.0f, 3.0f, 0.7f};
    q.set_qparams(s, nullptr, 6);
    const auto f = fq::freeze(q);
    CHECK(f.scale()[0] == 0.015625f);  // 2^-6 >= 0.013
    CHECK(same(q));
  }
  SECTION("PACT, 8 and 4 bits") {
    fq::Pact<8> p8(2.7f);
    CHECK(same(p8));
    CHECK(fq::freeze(p8).scale()[0] == 2.7f / 255.0f);
    fq::Pact<4> p4(0.9f);
    CHECK(same(p4));
  }
  SECTION("an LSQ quantizer that was never set nor trained has no qparams") {
    fq::LsqQuantizer<fq::TorchLsq> q(fq::QuantRange{0, 255});
    CHECK_FALSE(q.has_qparams());
    CHECK_FALSE(fq::freeze(q).has_qparams());
    fq::LearnableFakeQuant<fq::TorchLsq> m;
    CHECK_FALSE(m.calibrated());
    std::vector<float> y(x.size());
    m.forward(fq::TensorView<const float>(x.data() + 4, {8}), fq::TensorView<float>(y.data(), {8}),
              nullptr);  // the observer initialises it
    CHECK(m.calibrated());
    // A tensor of tiny values: the observer's scale is below the parametrization's floor, which
    // the snapshot then holds (the scale the forward uses), not an error.
    fq::LearnableFakeQuant<fq::TorchLsq> tiny;
    std::vector<float> t(8, 1e-39f);
    tiny.forward(fq::TensorView<const float>(t.data(), {8}), fq::TensorView<float>(y.data(), {8}),
                 nullptr);
    CHECK(tiny.calibrated());
    CHECK(fq::freeze(tiny.quantizer()).scale()[0] == fq::LinearScale<>::floor());
    fq::LearnableFakeQuant<fq::PaperLsq> tiny_log2;  // log2 scale: floored at 2^-126
    tiny_log2.forward(fq::TensorView<const float>(t.data(), {8}),
                      fq::TensorView<float>(y.data(), {8}), nullptr);
    CHECK(fq::freeze(tiny_log2.quantizer()).scale()[0] == std::ldexp(1.0f, -126));
    const float bad[1] = {std::numeric_limits<float>::infinity()};
    CHECK(fq_test::error_code_of([&] { tiny.quantizer().set_qparams(bad, nullptr, 1); }) ==
          fq::ErrorCode::kInvalidScale);
  }
}

TEST_CASE("convert: learned quantizers deploy as their snapshots, bit for bit",
          "[convert][learnable][bit_exact]") {
  check_family<LsqFamily>();
  check_family<LsqPerTensorFamily>();
  check_family<PaperLsqFamily>();
  check_family<PowerOfTwoFamily>();
  check_family<PactFamily>();
}

TEST_CASE("convert: learned quantizers that cannot deploy are refused, naming the step",
          "[convert][learnable][errors]") {
  SECTION("a learned weight zero point that is not 0") {
    Net<LsqFamily> net = trained_net<LsqFamily>(4);
    net.fc1.weight_quantizer().quantizer().zero_point()[2] = 1.0f;
    CHECK(fq_test::error_code_of([&] { net.convert(); }) == fq::ErrorCode::kInvalidZeroPoint);
    const std::string m = fq_test::error_message_of([&] { net.convert(); });
    CHECK(m.find("step 3 (QLinear): the weight quantizer's zero point is 1 in channel 2") !=
          std::string::npos);
  }
  SECTION("an LSQ output quantizer that never saw data nor was set") {
    std::mt19937 rng(1);
    Net<LsqFamily> net(rng);
    net.fc1.output_quantizer().enable_observer(false);  // frozen before any data
    Tape tape;
    fq::NoGradGuard ng(tape);
    const std::vector<float> x = images(4, rng);
    net.forward(tape, tape.constant(x.data(), {4, 1, 8, 8}));
    net.conv.train(false);
    CHECK(fq_test::error_code_of([&] { net.convert(); }) == fq::ErrorCode::kInvalidState);
    const std::string m = fq_test::error_message_of([&] { net.convert(); });
    CHECK(m.find("step 3 (QLinear): the output (activation) quantizer is not calibrated") !=
          std::string::npos);
    net.fc1.output_quantizer().quantizer().set_scale(0.05f);  // set by hand: deploys
    CHECK_NOTHROW(net.convert());
  }
  SECTION("a non-finite learned scale") {
    Net<LsqFamily> net = trained_net<LsqFamily>(4);
    net.conv.output_quantizer().quantizer().scale_param()[0] =
        std::numeric_limits<float>::quiet_NaN();
    CHECK(fq_test::error_code_of([&] { net.convert(); }) == fq::ErrorCode::kInvalidScale);
  }
}

}  // namespace fq_test_learned_convert
