// SPDX-License-Identifier: MIT
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include <fakequant/convert/int8_model.hpp>
#include <fakequant/int8/model_file.hpp>
#include <fakequant/kernels/max_pool.hpp>

#include "convert/convert_test_util.hpp"

using fq::Tape;
using fq::Var;

namespace {
using fq_convert_test::poke;
using fq_convert_test::read_all;
using fq_convert_test::seal;
using fq_convert_test::write_all;
constexpr std::int64_t kC1 = 4, kC2 = 6, kHidden = 12, kClasses = 10, kFlat = kC2 * 7 * 7;
using LogitsLinear = fq::QLinear<fq::DefaultWeightFakeQuant, fq::NoFakeQuant>;

// The demo's architecture with fewer channels: input fake-quant -> ConvBn 1->C1 ReLU -> pool 2
// -> ConvBn C1->C2 ReLU -> pool 2 -> flatten -> Linear C2*7*7->H ReLU6 -> Linear H->10 (float).
// AQ: the activation quantizers (uint8 by default; SignedAct for int8 activations).
template <class AQ = fq::DefaultActFakeQuant>
struct NetT {
  explicit NetT(std::mt19937& rng)
      : c1(1, kC1, 3, rng, fq::ops::Conv2dOptions::make(1, 1), fq::Activation::kReLU),
        c2(kC1, kC2, 3, rng, fq::ops::Conv2dOptions::make(1, 1), fq::Activation::kReLU),
        fc1(kFlat, kHidden, rng, fq::Activation::kReLU6),
        fc2(kHidden, kClasses, rng) {
    for (float& w : fc1.weight().value()) w *= 30.0f;  // pre-activations well beyond 6
  }
  Var forward(Tape& t, const Var& x) {
    Var h = in.forward(t, x);
    h = pool.forward(t, c1.forward(t, h));
    h = pool.forward(t, c2.forward(t, h));
    return fc2.forward(t, fc1.forward(t, flatten.forward(t, h)));
  }
  fq::Int8Model convert() {
    return fq::convert_sequential(in, {1, 28, 28}, c1, pool, c2, pool, flatten, fc1, fc2);
  }
  void use_integer_arithmetic() {
    c1.use_integer_arithmetic(fq::act_qparams(in.quantizer()));
    c2.use_integer_arithmetic(fq::act_qparams(c1.output_quantizer()));
    fc1.use_integer_arithmetic(fq::act_qparams(c2.output_quantizer()));
    fc2.use_integer_arithmetic(fq::act_qparams(fc1.output_quantizer()));
  }

  fq::ActQuant<AQ> in;
  fq::QConvBn2d<fq::DefaultWeightFakeQuant, AQ> c1, c2;
  fq::QLinear<fq::DefaultWeightFakeQuant, AQ> fc1;
  LogitsLinear fc2;
  fq::MaxPool2d pool{2, 2};
  fq::Flatten flatten;
};
using Net = NetT<>;
using SignedAct = fq::FakeQuantize<fq::Int8ActPerTensorAffine, fq::MovingAverageMinMaxObserver>;

std::vector<float> random_images(std::int64_t n, std::mt19937& rng) {
  std::normal_distribution<float> nd(0.0f, 1.5f);
  std::vector<float> x(std::size_t(n * 28 * 28));
  for (float& v : x) v = nd(rng);
  x[3] = 50.0f;  // beyond the input range on both sides: clamped levels
  x[5] = -50.0f;
  return x;
}

// Calibrates the observers on a few random batches (batch norm with batch statistics), then
// freezes them and evaluates batch norm with its running statistics. fc1's output quantizer
// is then widened beyond [0, 6] so that its fused ReLU6 clamps at level 120 (zero point 0).
template <class AQ = fq::DefaultActFakeQuant>
NetT<AQ> calibrated_net(std::uint32_t seed) {
  std::mt19937 rng(seed);
  NetT<AQ> net(rng);
  Tape tape;
  fq::NoGradGuard ng(tape);
  for (int b = 0; b < 3; ++b) {
    tape.clear();
    const std::vector<float> x = random_images(8, rng);
    net.forward(tape, tape.constant(x.data(), {8, 1, 28, 28}));
  }
  net.c1.train(false);
  net.c2.train(false);
  fq::for_each_quantizer_of([](auto& q) { q.enable_observer(false); }, net.in, net.c1, net.c2,
                            net.fc1, net.fc2);
  net.fc1.output_quantizer().quantizer().set_qparams(0.05f, 0);
  return net;
}

// The tape network's logits, with every layer in integer arithmetic unless `integer` is false
// (the float simulation).
template <class N>
std::vector<float> tape_logits(N& net, const std::vector<float>& x, std::int64_t n,
                               bool integer = true) {
  if (integer) net.use_integer_arithmetic();
  Tape tape;
  fq::NoGradGuard ng(tape);
  const Var y = net.forward(tape, tape.constant(x.data(), {n, 1, 28, 28}));
  REQUIRE(y.numel() == n * kClasses);
  return std::vector<float>(y.value(), y.value() + y.numel());
}

// The layers converted one by one and chained by hand (the demo's former Int8Net).
std::vector<float> hand_chain_logits(Net& net, const std::vector<float>& x, std::int64_t n) {
  const fq::ActQParams in = fq::act_qparams(net.in.quantizer());
  const fq::Int8Conv2d c1 = fq::convert(net.c1, in, 28, 28);
  const fq::Int8Conv2d c2 = fq::convert(net.c2, c1.output_qparams(), 14, 14);
  const fq::Int8Linear fc1 = fq::convert(net.fc1, c2.output_qparams());
  const fq::Int8Linear fc2 = fq::convert(net.fc2, fc1.output_qparams());
  std::vector<std::uint8_t> xq(std::size_t(n * 784)), a1(std::size_t(n * kC1 * 784)),
      p1(a1.size() / 4), a2(std::size_t(n * kC2 * 196)), p2(a2.size() / 4),
      h(std::size_t(n * kHidden));
  std::vector<float> logits(std::size_t(n * kClasses));
  fq::quantize_per_tensor(fq::TensorView<const float>(x.data(), {n, 784}),
                          fq::TensorView<std::uint8_t>(xq.data(), {n, 784}), in.scale,
                          in.zero_point, fq::QuantRange{0, 255});
  c1.run(xq.data(), n, a1.data());
  fq::max_pool2d_u8(a1.data(), n * kC1, 28, 28, 2, 2, p1.data());
  c2.run(p1.data(), n, a2.data());
  fq::max_pool2d_u8(a2.data(), n * kC2, 14, 14, 2, 2, p2.data());
  fc1.run(p2.data(), n, h.data());
  fc2.run(h.data(), n, logits.data());
  return logits;
}

bool bit_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

}  // namespace

TEST_CASE("Int8Model: the demo's network equals the tape in integer arithmetic bit for bit",
          "[convert][bit_exact]") {
  Net net = calibrated_net(7);
  const fq::Int8Model model = net.convert();
  REQUIRE(model.steps().size() == 7);
  CHECK(std::holds_alternative<fq::Int8Conv2d>(model.steps()[0]));
  CHECK(std::holds_alternative<fq::Int8MaxPool2d>(model.steps()[1]));
  CHECK(std::holds_alternative<fq::Int8Flatten>(model.steps()[4]));
  CHECK(std::holds_alternative<fq::Int8Linear>(model.steps()[6]));
  CHECK(model.input_shape() == fq::Shape{1, 28, 28});
  CHECK(model.input_numel() == 784);
  CHECK(model.output_shape() == fq::Shape{kClasses});
  CHECK(model.output_numel() == kClasses);
  CHECK(model.float_output());
  CHECK(model.input_qparams().scale == net.in.quantizer().quantizer().scale()[0]);
  CHECK(model.input_range() == net.in.quantizer().quantizer().range());

  std::mt19937 rng(99);
  for (const std::int64_t n : {1, 9, 3}) {  // the buffers grow and are reused
    const std::vector<float> x = random_images(n, rng);
    std::vector<float> logits(std::size_t(n * kClasses));
    model.run(x.data(), n, logits.data());
    // A network whose logits do not depend on the input would pass trivially.
    CHECK(std::set<float>(logits.begin(), logits.end()).size() > std::size_t(n));
    CHECK(bit_equal(logits, hand_chain_logits(net, x, n)));
    CHECK(bit_equal(logits, tape_logits(net, x, n)));
  }
}

TEST_CASE("Int8Model: a uint8 output, the fused ReLU6 at level 120, n == 0",
          "[convert][bit_exact]") {
  Net net = calibrated_net(8);
  // Up to fc1: the output is fc1's uint8 levels (scale 0.05, so 6.0 is level 120).
  const fq::Int8Model model = fq::convert_sequential(net.in, {1, 28, 28}, net.c1, net.pool, net.c2,
                                                     net.pool, net.flatten, net.fc1);
  CHECK_FALSE(model.float_output());
  CHECK(model.output_qparams().scale == 0.05f);
  const fq::Int8Linear& fc1 = std::get<fq::Int8Linear>(model.steps().back());
  CHECK(fc1.params().out_max == 120);
  std::mt19937 rng(5);
  const std::int64_t n = 16;
  const std::vector<float> x = random_images(n, rng);
  std::vector<std::uint8_t> y(std::size_t(n * kHidden));
  model.run(x.data(), n, y.data());
  int at_six = 0, zeros = 0;
  for (std::uint8_t v : y) {
    REQUIRE(v <= 120);
    at_six += v == 120;
    zeros += v == 0;
  }
  CHECK(at_six > 0);
  CHECK(zeros > 0);

  net.use_integer_arithmetic();
  Tape tape;
  fq::NoGradGuard ng(tape);
  Var h = net.in.forward(tape, tape.constant(x.data(), {n, 1, 28, 28}));
  h = net.pool.forward(tape, net.c1.forward(tape, h));
  h = net.pool.forward(tape, net.c2.forward(tape, h));
  const Var sim = net.fc1.forward(tape, net.flatten.forward(tape, h));
  for (std::size_t i = 0; i < y.size(); ++i) REQUIRE(sim.value()[i] == float(y[i]) * 0.05f);

  std::vector<std::uint8_t> untouched(4, 7);
  model.run(x.data(), 0, untouched.data());
  model.run(nullptr, 0, static_cast<std::uint8_t*>(nullptr));
  CHECK(untouched == std::vector<std::uint8_t>(4, 7));
  CHECK_THROWS_WITH(model.run(x.data(), -1, y.data()), Catch::Contains("negative image count"));
  CHECK_THROWS_WITH(model.run(nullptr, 2, y.data()), Catch::Contains("null input or output"));
}

TEST_CASE("Int8Model: save and load give bit-identical logits", "[convert][bit_exact]") {
  Net net = calibrated_net(9);
  const fq::Int8Model model = net.convert();
  const std::string path = "fq_int8_model_test.fqi8";
  fq::save_int8_model(path, model);
  const fq::Int8Model loaded = fq::load_int8_sequential(path);
  REQUIRE(loaded.steps().size() == model.steps().size());
  for (std::size_t i = 0; i < model.steps().size(); ++i)
    CHECK(model.steps()[i].index() == loaded.steps()[i].index());
  CHECK(loaded.input_shape() == model.input_shape());
  CHECK(loaded.input_qparams().scale == model.input_qparams().scale);
  CHECK(loaded.input_qparams().zero_point == model.input_qparams().zero_point);
  CHECK(loaded.input_range() == model.input_range());
  std::mt19937 rng(17);
  const std::int64_t n = 6;
  const std::vector<float> x = random_images(n, rng);
  std::vector<float> a(std::size_t(n * kClasses)), b(a.size());
  model.run(x.data(), n, a.data());
  loaded.run(x.data(), n, b.data());
  CHECK(bit_equal(a, b));
  CHECK(bit_equal(b, tape_logits(net, x, n)));

  // A whole model is not a list of layers (it has max pool and flatten steps), and a list of
  // layers is not a whole model (it has no input record).
  CHECK_THROWS_WITH(fq::load_int8_model(path), Catch::Contains("step 1 is an Int8MaxPool2d") &&
                                                   Catch::Contains("load_int8_sequential"));
  const std::vector<fq::Int8Layer> layers = {fq::convert(net.fc2, {0.05f, 0})};
  fq::save_int8_model(path, layers);
  CHECK_THROWS_WITH(fq::load_int8_sequential(path),
                    Catch::Contains("holds a list of layers") && Catch::Contains("version 3"));
  CHECK(fq::load_int8_model(path).size() == 1);
  std::remove(path.c_str());
}

TEST_CASE("Int8Model: mismatched shapes, qparams and float outputs are reported", "[convert]") {
  Net net = calibrated_net(10);
  // A linear layer right after a convolution block needs a flatten.
  CHECK_THROWS_WITH(fq::convert_sequential(net.in, {1, 28, 28}, net.c1, net.pool, net.c2, net.pool,
                                           net.fc1, net.fc2),
                    Catch::Contains("step 4 (QLinear)") && Catch::Contains("[6, 7, 7]") &&
                        Catch::Contains("fq::Flatten{}"));
  // A pooling is missing: fc1 gets 6*14*14 features instead of 6*7*7.
  CHECK_THROWS_WITH(
      fq::convert_sequential(net.in, {1, 28, 28}, net.c1, net.c2, net.pool, net.flatten, net.fc1,
                             net.fc2),
      Catch::Contains("step 4 (Int8Linear) takes [294]") && Catch::Contains("step 3 gives [1176]"));
  // The input has 3 channels; c1 takes 1.
  CHECK_THROWS_WITH(fq::convert_sequential(net.in, {3, 28, 28}, net.c1),
                    Catch::Contains("step 0 (Int8Conv2d) takes [1, 28, 28]") &&
                        Catch::Contains("the input gives [3, 28, 28]"));
  CHECK_THROWS_WITH(fq::convert_sequential(net.in, {784}, fq::MaxPool2d{2, 2}),
                    Catch::Contains("step 0 (MaxPool2d) takes [C, H, W] images"));
  CHECK_THROWS_WITH(fq::convert_sequential(net.in, {1, 28, 28}, fq::MaxPool2d{30, 2}),
                    Catch::Contains("Int8MaxPool2d: window 30"));
  // A float output before the last layer.
  std::mt19937 rng(1);
  LogitsLinear mid(kFlat, kHidden, rng);
  {
    std::vector<float> h(2 * kFlat, 0.5f);
    Tape tape;
    mid.forward(tape, tape.constant(h.data(), {2, kFlat}));  // the weight observer sees it
  }
  CHECK_THROWS_WITH(
      fq::convert_sequential(net.in, {1, 28, 28}, net.c1, net.pool, net.c2, net.pool, net.flatten,
                             mid, net.fc2),
      Catch::Contains("step 6 (QLinear) follows step 5") && Catch::Contains("only the last layer"));

  // Steps assembled by hand.
  const fq::ActQParams in = fq::act_qparams(net.in.quantizer());
  const fq::Int8Conv2d c1 = fq::convert(net.c1, in, 28, 28);
  const fq::Int8Conv2d c2 = fq::convert(net.c2, c1.output_qparams(), 14, 14);
  const fq::Int8Linear fc1 = fq::convert(net.fc1, c2.output_qparams());
  const fq::Int8Linear fc2 = fq::convert(net.fc2, fc1.output_qparams());
  const fq::Int8MaxPool2d p1(kC1, 28, 28, 2, 2), p2(kC2, 14, 14, 2, 2);
  const fq::Int8Flatten flat(fq::Shape{kC2, 7, 7});
  const fq::Int8Model ok(in, {1, 28, 28}, {c1, p1, c2, p2, flat, fc1, fc2});
  CHECK(ok.output_numel() == kClasses);

  const fq::Int8Conv2d c2_wrong = fq::convert(net.c2, {0.5f, 3}, 14, 14);
  CHECK_THROWS_WITH(fq::Int8Model(in, {1, 28, 28}, {c1, p1, c2_wrong, p2, flat, fc1, fc2}),
                    Catch::Contains("step 2 (Int8Conv2d) was converted for input qparams (scale "
                                    "0.5, zero point 3), but step 1 gives"));
  CHECK_THROWS_WITH(
      fq::Int8Model({in.scale * 2, in.zero_point}, {1, 28, 28}, {c1, p1, c2, p2, flat, fc1, fc2}),
      Catch::Contains("step 0 (Int8Conv2d)") && Catch::Contains("the input gives"));
  CHECK_THROWS_WITH(fq::Int8Model(in, {1, 28, 28}, {c1, p1, c2, p2, fc1, fc2}),
                    Catch::Contains("step 4 (Int8Linear) takes [294] per image, but step 3 "
                                    "gives [6, 7, 7]") &&
                        Catch::Contains("Int8Flatten"));
  const fq::Int8Linear mid8 = fq::convert(mid, c2.output_qparams());
  const fq::Int8Linear after_mid = fq::convert(net.fc2, mid8.output_qparams());
  CHECK_THROWS_WITH(fq::Int8Model(in, {1, 28, 28}, {c1, p1, c2, p2, flat, mid8, after_mid}),
                    Catch::Contains("step 5 (Int8Linear) has a float output"));
  CHECK_THROWS_WITH(fq::Int8Model(in, {1, 28, 28}, {}), Catch::Contains("at least one step"));
  CHECK_THROWS_WITH(fq::Int8Model(in, {}, {c1}), Catch::Contains("the input shape []"));
  CHECK_THROWS_AS(fq::Int8Model(in, {1, 28, 28}, {c1}, fq::QuantRange{0, 300}), fq::Error);
  CHECK_THROWS_WITH(fq::Int8Flatten(fq::Shape{}), Catch::Contains("rank >= 1"));

  // The wrong run overload.
  std::vector<float> x(784, 0.25f), logits(kClasses);
  std::vector<std::uint8_t> levels(kClasses);
  CHECK_THROWS_WITH(ok.run(x.data(), 1, levels.data()), Catch::Contains("pass a float* output"));
  const fq::Int8Model u8(in, {1, 28, 28}, {c1, p1, c2, p2, flat, fc1});
  std::vector<float> hidden(kHidden);
  CHECK_THROWS_WITH(u8.run(x.data(), 1, hidden.data()),
                    Catch::Contains("pass a std::uint8_t* output"));
  CHECK_NOTHROW(ok.run(x.data(), 1, logits.data()));
}

TEST_CASE("Int8Model files: damage and forged fields are reported", "[convert]") {
  // Steps: max pool (record at byte 72), flatten (176), float linear (280; its parameters at
  // 384). Bytes 16-71 are the input record.
  std::mt19937 rng(2);
  LogitsLinear fc(2 * 2 * 2, 3, rng);
  {
    std::vector<float> h(16, 0.5f);
    Tape tape;
    fc.forward(tape, tape.constant(h.data(), {2, 8}));
  }
  const fq::Int8Model model = fq::convert_sequential(fq::ActQParams{0.05f, 10}, {2, 4, 4},
                                                     fq::MaxPool2d{2}, fq::Flatten{}, fc);
  CHECK(std::get<fq::Int8MaxPool2d>(model.steps()[0]).stride() == 2);
  const std::string path = "fq_int8_model_damage.fqi8";
  fq::save_int8_model(path, model);
  const std::vector<char> good = read_all(path);
  REQUIRE(good.size() > 400);
  {
    std::vector<float> x(32);
    for (std::size_t i = 0; i < x.size(); ++i) x[i] = 0.1f * float(i) - 1.0f;
    std::vector<float> a(3), b(3);
    model.run(x.data(), 1, a.data());
    fq::load_int8_sequential(path).run(x.data(), 1, b.data());
    CHECK(bit_equal(a, b));
  }

  auto expect_error = [&](std::vector<char> bytes, const std::string& what) {
    write_all(path, bytes);
    CHECK_THROWS_WITH(fq::load_int8_sequential(path), Catch::Contains(what));
  };
  std::vector<char> bad = good;
  bad.resize(good.size() / 2);
  expect_error(bad, "checksum mismatch");
  bad = good;
  bad[300] = static_cast<char>(bad[300] ^ 0x04);
  expect_error(bad, "checksum mismatch");
  expect_error(std::vector<char>(good.begin(), good.begin() + 10), "truncated file");
  bad = std::vector<char>(good.begin(), good.begin() + 200);  // cut inside step 1, resealed
  bad.resize(204);
  seal(bad);
  expect_error(bad, "truncated file");

  struct Forgery {
    std::size_t at;
    std::int64_t value;
    int bytes;
    const char* what;
  };
  const Forgery forgeries[] = {
      {8, 4, 4, "version 4, this build reads versions 1 to 3"},
      {12, 5, 4, "truncated file"},  // more steps than the file holds
      {16, 2, 4, "unknown model flags 2"},
      {36, 0, 4, "the model input has a bad shape"},
      {40, std::int64_t{1} << 40, 8, "the model input has a bad shape"},
      {72, 9, 4, "step 0 has unknown kind 9"},
      {76, 1, 4, "step 0 has unknown flags 1"},
      {80, std::int64_t{1} << 40, 8, "step 0 has a bad shape"},
      {104, 0, 8, "step 0 has a bad shape"},
      {104, 5, 8, "Int8MaxPool2d: window 5"},
      {184, 5, 8, "step 1 has a bad shape"},
      {192, 3, 8, "step 1 (Int8Flatten) takes [3, 2, 2] per image, but step 0 gives [2, 2, 2]"},
      {280, 2, 4, "step 2 has unknown flags 2"},  // a conv has no float output  // a conv record
                                                  // with a linear's shape
      {288, 9, 8, "weights has 24 elements, expected 27"},
      {388, 11, 4, "step 2 (Int8Linear) was converted for input qparams"},
  };
  for (const Forgery& f : forgeries) {
    bad = good;
    if (f.bytes == 4)
      poke(bad, f.at, static_cast<std::uint32_t>(f.value));
    else
      poke(bad, f.at, f.value);
    seal(bad);
    INFO("forged byte " << f.at);
    expect_error(bad, f.what);
  }
  bad = good;  // a conv record with a linear layer's shape
  poke(bad, 280, std::uint32_t{2});
  poke(bad, 284, std::uint32_t{0});
  seal(bad);
  expect_error(bad, "step 2: extents, kernel, stride and groups must be > 0");
  // A weight count that matches a forged 2^24-feature shape: refused before any allocation.
  bad = good;
  poke(bad, 288, std::int64_t{1} << 24);
  poke(bad, 408, std::uint64_t{3} << 24);
  seal(bad);
  expect_error(bad, "truncated file (weights: 50331648 elements");
  bad = good;
  poke(bad, 20, std::numeric_limits<float>::quiet_NaN());
  seal(bad);
  write_all(path, bad);
  CHECK_THROWS_AS(fq::load_int8_sequential(path), fq::Error);
  std::remove(path.c_str());
  CHECK_THROWS_WITH(fq::load_int8_sequential(path), Catch::Contains("cannot open"));
}

TEST_CASE("Int8Model: int8 activations run as uint8 levels shifted by 128, bit for bit",
          "[convert][bit_exact]") {
  // Two copies of the network with the same weights and data, one with int8 activation
  // quantizers ([-128, 127]) and one with uint8 ([0, 255]).
  NetT<SignedAct> s8 = calibrated_net<SignedAct>(21);
  Net u8 = calibrated_net(21);
  const auto same_grid = [](const auto& a, const auto& b) {
    const auto& qa = a.quantizer();
    const auto& qb = b.quantizer();
    return qa.range().quant_min == -128 && qb.range().quant_min == 0 &&
           qa.scale()[0] == qb.scale()[0] && qa.zero_point()[0] + 128 == qb.zero_point()[0];
  };
  // The observers give the same scale and zero points 128 apart: the same real grid.
  REQUIRE(same_grid(s8.in.quantizer(), u8.in.quantizer()));
  REQUIRE(same_grid(s8.c1.output_quantizer(), u8.c1.output_quantizer()));
  REQUIRE(same_grid(s8.c2.output_quantizer(), u8.c2.output_quantizer()));
  // fc1's output was set to (0.05, 0) in both: the int8 one's ReLU6 level is 120 + 128.
  CHECK(fq::act_qparams(s8.fc1.output_quantizer()).zero_point == 128);
  CHECK(fq::act_qparams(s8.in.quantizer()).zero_point ==
        s8.in.quantizer().quantizer().zero_point()[0] + 128);

  std::mt19937 rng(3);
  const std::int64_t n = 6;
  const std::vector<float> x = random_images(n, rng);
  // The float simulations agree bit for bit (the shift is exact), the integer model of the
  // int8 network equals its tape in integer arithmetic and the uint8 network's model.
  CHECK(bit_equal(tape_logits(s8, x, n, false), tape_logits(u8, x, n, false)));
  const fq::Int8Model m8 = s8.convert();
  CHECK(m8.input_range() == fq::QuantRange{0, 255});
  CHECK(std::get<fq::Int8Linear>(m8.steps()[5]).params().out_max == 248);
  std::vector<float> logits(std::size_t(n * kClasses)), logits_u8(logits.size());
  m8.run(x.data(), n, logits.data());
  u8.convert().run(x.data(), n, logits_u8.data());
  CHECK(std::set<float>(logits.begin(), logits.end()).size() > std::size_t(n));
  CHECK(bit_equal(logits, tape_logits(s8, x, n)));
  CHECK(bit_equal(logits, logits_u8));

  // A quantizer range that is neither uint8 nor int8 does not convert.
  fq::FakeQuantizer<fq::RuntimeActPerTensorAffine> wide(fq::QuantRange{-200, 200});
  wide.set_qparams(0.1f, 0);
  CHECK_THROWS_WITH(fq::act_qparams(wide), Catch::Contains("within neither [0, 255] nor"));
}
