// SPDX-License-Identifier: MIT
// tests/std_check/std_check.cpp: every public header in one translation unit, plus the main
// templates instantiated with representative arguments. tests/std_check/CMakeLists.txt
// compiles it as C++17, C++20 and C++23 and with -fno-exceptions (with and without xsimd);
// scripts/test.sh runs clang-tidy on it. Nothing here runs: `instantiate` is never called,
// but everything it names is instantiated, so each standard checks the template bodies.
#include <cstdint>
#include <random>
#include <vector>

#include "fq_all_headers.hpp"  // generated: #include of every header under include/fakequant/

namespace fq_std_check {

template <class Scheme>
void fake_quantizer(std::int64_t channels) {
  std::vector<float> x(16, 0.5f), y(16), dx(16);
  const fq::TensorView<const float> xv(x.data(), {channels, 16 / channels});
  const fq::TensorView<float> yv(y.data(), {channels, 16 / channels});
  const fq::TensorView<float> dxv(dx.data(), {channels, 16 / channels});
  fq::FakeQuantizer<Scheme> q(channels, fq::FakeQuantizer<Scheme>::default_range());
  fq::Mask mask;
  q.forward(xv, yv, &mask);
  q.backward(fq::TensorView<const float>(y.data(), {channels, 16 / channels}), mask, dxv);

  fq::FakeQuantize<Scheme> module;
  module.forward(xv, yv, &mask);
}

template <class Observer>
void observer() {
  std::vector<float> x(16, 0.5f);
  Observer obs;
  obs.observe(fq::TensorView<const float>(x.data(), {4, 4}));
  std::vector<float> scale;
  std::vector<std::int32_t> zero_point;
  obs.template calculate_qparams<fq::Uint8ActPerTensorAffine>(fq::UInt8::value(), scale,
                                                              zero_point);
}

template <class LsqScheme>
void lsq() {
  std::vector<float> x(16, 0.5f), dy(16, 1.0f), y(16), dx(16);
  fq::LsqQuantizer<LsqScheme> q(fq::UInt8::value());
  q.forward_backward(fq::TensorView<const float>(x.data(), {16}),
                     fq::TensorView<const float>(dy.data(), {16}),
                     fq::TensorView<float>(y.data(), {16}), fq::TensorView<float>(dx.data(), {16}));
  q.forward(fq::TensorView<const float>(x.data(), {16}), fq::TensorView<float>(y.data(), {16}));
}

template <int Bits>
float pact() {
  std::vector<float> x(16, 0.5f), dy(16, 1.0f), y(16), dx(16);
  fq::Pact<Bits>::forward(fq::TensorView<const float>(x.data(), {16}),
                          fq::TensorView<float>(y.data(), {16}), 1.0f);
  return fq::Pact<Bits>::forward_backward(
      fq::TensorView<const float>(x.data(), {16}), fq::TensorView<const float>(dy.data(), {16}),
      fq::TensorView<float>(y.data(), {16}), fq::TensorView<float>(dx.data(), {16}), 1.0f);
}

// Training on the tape: quantized layers, ops, an optimizer, then the integer conversion.
template <class WeightQ, class ActQ>
void train_and_convert() {
  std::mt19937 rng(1);
  fq::ActQuant<ActQ> in;
  fq::QConvBn2d<WeightQ, ActQ> conv(1, 2, 3, rng, fq::ops::Conv2dOptions::make(1, 1),
                                    fq::Activation::kReLU);
  fq::QLinear<WeightQ, ActQ> fc(2 * 2 * 2, 3, rng, fq::Activation::kReLU);
  std::vector<float> x(32, 0.5f);  // [2, 1, 4, 4]
  std::vector<std::int32_t> labels{0, 1};
  fq::Tape tape;
  fq::Var h = conv.forward(tape, in.forward(tape, tape.constant(x.data(), {2, 1, 4, 4})));
  h = fq::ops::max_pool2d(tape, h, 2).reshape({2, 8});
  fq::Var loss = fq::ops::softmax_cross_entropy(tape, fc.forward(tape, h), labels.data());
  tape.backward(loss);
  fq::optim::Adam opt(fq::parameters_of(conv, fc), fq::optim::AdamOptions{});
  opt.step();
  opt.zero_grad();
  fq::optim::CosineAnnealingLR lr(0.1, 10);
  static_cast<void>(lr);

  const fq::ActQParams in_q = fq::act_qparams(in.quantizer());
  const fq::Int8Conv2d conv8 = fq::convert(conv, in_q, 4, 4);
  const fq::Int8Linear fc8 = fq::convert(fc, conv8.output_qparams());
  static_cast<void>(fc8);
  const fq::Int8Model model =
      fq::convert_sequential(in, {1, 4, 4}, conv, fq::MaxPool2d{2}, fq::Flatten{}, fc);
  std::vector<std::uint8_t> out(6);  // 2 images, 3 outputs
  model.run(x.data(), 2, out.data());
}

template <class Q>
bool testing_kit(Q& q) {
  return fq::testing::check_quantizer(q).passed() && fq::testing::check_gradients(q).passed();
}

void instantiate() {
  fake_quantizer<fq::Int8WeightPerChannelSymmetric>(4);
  fake_quantizer<fq::Int8WeightPerTensorSymmetric>(1);
  fake_quantizer<fq::Int8WeightPerChannelSymmetricNarrow>(4);
  fake_quantizer<fq::Int4WeightPerChannelSymmetric>(4);
  fake_quantizer<fq::Uint8ActPerTensorAffine>(1);
  fake_quantizer<fq::Int8ActPerTensorAffine>(1);
  fake_quantizer<fq::Uint4ActPerTensorAffine>(1);
  fake_quantizer<fq::Uint8ActPerTensorAffineOnnx>(1);
  fake_quantizer<fq::Uint8ActPerTensorAffine::with_zero_point<fq::FloatZeroPoint>>(1);
  fake_quantizer<fq::Uint8ActPerTensorAffine::with_rounding<fq::RoundHalfAway>>(1);
  fake_quantizer<fq::Uint8ActPerTensorAffine::with_clamp_grad<fq::PassThroughSte>>(1);

  observer<fq::MinMaxObserver>();
  observer<fq::MseHistogramObserver>();
  observer<fq::PercentileHistogramObserver>();
  observer<fq::EntropyHistogramObserver>();

  lsq<fq::TorchLsq>();
  lsq<fq::PaperLsq>();
  static_cast<void>(pact<4>());
  static_cast<void>(pact<8>());

  train_and_convert<fq::DefaultWeightFakeQuant, fq::DefaultActFakeQuant>();

  fq::FakeQuantizer<fq::Uint8ActPerTensorAffine> q;
  static_cast<void>(testing_kit(q));
}

}  // namespace fq_std_check

int main() { return 0; }
