// SPDX-License-Identifier: MIT
// Converting a network whose quantizers never saw data is refused (kInvalidState) with the
// step, the layer type and the quantizer named, on every path (convert_sequential, fq::convert,
// act_qparams, use_integer_arithmetic); explicitly set qparams count as calibration. Shape
// errors of convert_sequential and Int8Model are kShapeMismatch.
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include <fakequant/convert/int8_model.hpp>

#include "test_util.hpp"

using fq::Tape;
using fq::Var;
using fq_test::error_code_of;

namespace {
using LogitsLinear = fq::QLinear<fq::DefaultWeightFakeQuant, fq::NoFakeQuant>;

// input -> ConvBn 1->2 ReLU -> pool 2 -> flatten -> Linear 2*3*3->4 ReLU -> Linear 4->3 (float)
struct Small {
  explicit Small(std::mt19937& rng)
      : conv(1, 2, 3, rng, fq::ops::Conv2dOptions::make(1, 1), fq::Activation::kReLU),
        fc1(2 * 3 * 3, 4, rng, fq::Activation::kReLU),
        fc2(4, 3, rng) {}
  Var forward(Tape& t, const Var& x) {
    Var h = pool.forward(t, conv.forward(t, in.forward(t, x)));
    return fc2.forward(t, fc1.forward(t, flatten.forward(t, h)));
  }
  void calibrate(std::mt19937& rng) {
    std::normal_distribution<float> nd;
    std::vector<float> x(4 * 6 * 6);
    for (float& v : x) v = nd(rng);
    Tape tape;
    fq::NoGradGuard ng(tape);
    forward(tape, tape.constant(x.data(), {4, 1, 6, 6}));
    conv.train(false);
  }
  fq::Int8Model convert() {
    return fq::convert_sequential(in, {1, 6, 6}, conv, pool, flatten, fc1, fc2);
  }
  fq::ActQuant<> in;
  fq::QConvBn2d<> conv;
  fq::QLinear<> fc1;
  LogitsLinear fc2;
  fq::MaxPool2d pool{2, 2};
  fq::Flatten flatten;
};

}  // namespace

TEST_CASE("FakeQuantize and the observers say whether they have been calibrated",
          "[convert][calibration]") {
  fq::FakeQuantize<fq::Uint8ActPerTensorAffine> a;
  CHECK_FALSE(a.calibrated());
  CHECK_FALSE(a.observer().has_data());
  std::vector<float> x{-1.0f, 0.5f, 2.0f}, y(3);
  a.forward(fq::TensorView<const float>(x.data(), {0}), fq::TensorView<float>(y.data(), {0}));
  CHECK_FALSE(a.calibrated());  // an empty batch observes nothing
  a.forward(fq::TensorView<const float>(x.data(), {3}), fq::TensorView<float>(y.data(), {3}));
  CHECK(a.calibrated());
  CHECK(a.observer().has_data());
  a.observer().reset();
  CHECK_FALSE(a.observer().has_data());

  fq::FakeQuantize<fq::Uint8ActPerTensorAffine> b;
  b.disable_observer();
  b.forward(fq::TensorView<const float>(x.data(), {3}), fq::TensorView<float>(y.data(), {3}));
  CHECK_FALSE(b.calibrated());  // fake-quantized with the placeholder qparams, observed nothing
  b.quantizer().set_qparams(0.1f, 3);
  CHECK(b.calibrated());

  fq::FakeQuantizer<fq::Uint8ActPerTensorAffine> q;
  CHECK_FALSE(q.has_qparams());
  q.set_qparams(1.0f, 0);  // the same values as the placeholder, but stated
  CHECK(q.has_qparams());
}

TEST_CASE("convert_sequential refuses uncalibrated quantizers, naming step and quantizer",
          "[convert][calibration][errors]") {
  std::mt19937 rng(5);
  SECTION("nothing calibrated: the input quantizer is named") {
    Small net(rng);
    CHECK(error_code_of([&] { net.convert(); }) == fq::ErrorCode::kInvalidState);
    const std::string m = fq_test::error_message_of([&] { net.convert(); });
    CHECK(m.find("convert_sequential: the input quantizer is not calibrated") != std::string::npos);
  }
  SECTION("only the input calibrated: step 0's weight quantizer is named") {
    Small net(rng);
    net.in.quantizer().quantizer().set_qparams(0.02f, 128);
    CHECK(error_code_of([&] { net.convert(); }) == fq::ErrorCode::kInvalidState);
    const std::string m = fq_test::error_message_of([&] { net.convert(); });
    CHECK(m.find("step 0 (QConvBn2d): the weight quantizer is not calibrated") !=
          std::string::npos);
  }
  SECTION("an activation quantizer whose observer was off: step 3's output quantizer") {
    Small net(rng);
    net.fc1.output_quantizer().disable_observer();  // e.g. frozen before any data
    net.calibrate(rng);
    CHECK(error_code_of([&] { net.convert(); }) == fq::ErrorCode::kInvalidState);
    const std::string m = fq_test::error_message_of([&] { net.convert(); });
    CHECK(m.find("step 3 (QLinear): the output (activation) quantizer is not calibrated") !=
          std::string::npos);
    // Setting its qparams explicitly counts as calibration.
    net.fc1.output_quantizer().quantizer().set_qparams(0.05f, 0);
    CHECK_NOTHROW(net.convert());
  }
  SECTION("a calibrated network converts and runs") {
    Small net(rng);
    net.calibrate(rng);
    const fq::Int8Model m = net.convert();
    std::vector<float> x(36, 0.25f), logits(3);
    m.run(x.data(), 1, logits.data());
    // A bare FakeQuantizer input with explicit qparams is calibrated; a fresh one is not.
    fq::FakeQuantizer<fq::Uint8ActPerTensorAffine> input;
    CHECK(error_code_of([&] {
            fq::convert_sequential(input, {1, 6, 6}, net.conv, net.pool, net.flatten, net.fc1,
                                   net.fc2);
          }) == fq::ErrorCode::kInvalidState);
    input.set_qparams(net.in.quantizer().quantizer().scale()[0],
                      net.in.quantizer().quantizer().zero_point()[0]);
    CHECK_NOTHROW(fq::convert_sequential(input, {1, 6, 6}, net.conv, net.pool, net.flatten, net.fc1,
                                         net.fc2));
  }
}

TEST_CASE("fq::convert, act_qparams and integer arithmetic refuse uncalibrated quantizers",
          "[convert][calibration][errors]") {
  std::mt19937 rng(6);
  fq::QLinear<> fc(4, 3, rng);
  // One output channel would pass the weight-scale count check: calibration must still be set.
  fq::QLinear<> one(4, 1, rng);
  CHECK(error_code_of([&] { fq::convert(one, {0.1f, 0}); }) == fq::ErrorCode::kInvalidState);
  one.weight_quantizer().quantizer().set_qparams(std::vector<float>{0.01f},
                                                 std::vector<std::int32_t>{0});
  const std::string m = fq_test::error_message_of([&] { fq::convert(one, {0.1f, 0}); });
  CHECK(m.find("convert(QLinear): the output quantizer is not calibrated") != std::string::npos);
  CHECK(error_code_of([&] { fq::act_qparams(fc.output_quantizer()); }) ==
        fq::ErrorCode::kInvalidState);
  CHECK(fq_test::error_message_of([&] {
          fq::act_qparams(fc.output_quantizer());
        }).find("act_qparams: the activation quantizer is not calibrated") != std::string::npos);

  // Integer arithmetic on a layer that never ran: refused at its first forward.
  fc.use_integer_arithmetic({0.1f, 0});
  std::vector<float> x(4, 0.2f);
  Tape tape;
  fq::NoGradGuard ng(tape);
  CHECK(error_code_of([&] {
          fc.forward(tape, tape.constant(x.data(), {1, 4}));
        }) == fq::ErrorCode::kInvalidState);
}

TEST_CASE("convert_sequential and Int8Model report wrong shapes as kShapeMismatch",
          "[convert][errors]") {
  std::mt19937 rng(7);
  Small net(rng);
  net.calibrate(rng);
  // Wrong channel count, wrong spatial size (the linear layer then gets the wrong count),
  // wrong rank, a pooling window that does not fit, a linear layer on images.
  CHECK(error_code_of([&] {
          fq::convert_sequential(net.in, {3, 6, 6}, net.conv, net.pool, net.flatten, net.fc1,
                                 net.fc2);
        }) == fq::ErrorCode::kShapeMismatch);
  CHECK(error_code_of([&] {
          fq::convert_sequential(net.in, {1, 8, 8}, net.conv, net.pool, net.flatten, net.fc1,
                                 net.fc2);
        }) == fq::ErrorCode::kShapeMismatch);
  CHECK(error_code_of([&] { fq::convert_sequential(net.in, {36}, net.conv); }) ==
        fq::ErrorCode::kShapeMismatch);
  CHECK(error_code_of([&] {
          fq::convert_sequential(net.in, {1, 6, 6}, fq::MaxPool2d{7, 1});
        }) == fq::ErrorCode::kShapeMismatch);
  CHECK(error_code_of([&] {
          fq::convert_sequential(net.in, {1, 6, 6}, net.conv, net.pool, net.fc1, net.fc2);
        }) == fq::ErrorCode::kShapeMismatch);
  // The pooling kernels and steps themselves.
  std::vector<std::uint8_t> x(8 * 3), y(8);
  CHECK(error_code_of([&] { fq::max_pool2d_u8(x.data(), 1, 2, 2, 3, 1, y.data()); }) ==
        fq::ErrorCode::kShapeMismatch);
  CHECK(error_code_of([&] { fq::max_pool2d_u8(x.data(), 1, 2, 2, 0, 1, y.data()); }) ==
        fq::ErrorCode::kInvalidArgument);
  CHECK(error_code_of([] { fq::Int8MaxPool2d(1, 2, 2, 3, 1); }) == fq::ErrorCode::kShapeMismatch);
  // Steps assembled by hand with a wrong input shape.
  const fq::Int8Model m = net.convert();
  CHECK(error_code_of([&] {
          fq::Int8Model(m.input_qparams(), {1, 5, 6}, m.steps());
        }) == fq::ErrorCode::kShapeMismatch);
  CHECK(error_code_of([&] {
          fq::Int8Model(m.input_qparams(), {1, 6, 6}, m.steps());
        }) == fq::ErrorCode{});
}
