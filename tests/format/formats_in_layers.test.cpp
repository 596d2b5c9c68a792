// SPDX-License-Identifier: MIT
// tests/format/formats_in_layers.test.cpp: the format presets as the quantizers of QAT layers
// and on the tape — what a user writing `fq::QLinear<fq::MxFp4, ...>` relies on.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include <catch2/catch.hpp>

#include <fakequant/fakequant.hpp>
#include <fakequant/layers/qlayers.hpp>
#include <fakequant/ops/elementwise.hpp>
#include <fakequant/ops/loss.hpp>
#include <fakequant/optim/adam.hpp>

using fq::Tape;
using fq::Var;

namespace {

/// Trains QLinear<WQ, AQ>(in 64, out 8) to classify by a linear teacher's argmax for `steps`
/// Adam steps; returns the first loss and the mean of the last ten.
template <class WQ, class AQ>
std::pair<double, double> train_linear(int steps) {
  std::mt19937 rng(5);
  fq::QLinear<WQ, AQ> layer(64, 8, rng);
  fq::optim::AdamOptions o;
  o.lr = 0.02;
  fq::optim::Adam opt(layer.parameters(), o);
  std::normal_distribution<float> g;
  std::vector<float> teacher(64 * 8);
  for (float& t : teacher) t = g(rng);
  std::vector<float> x(32 * 64);
  std::vector<std::int32_t> label(32);
  Tape tape;
  double first = 0, last = 0;
  for (int step = 0; step < steps; ++step) {
    for (float& v : x) v = g(rng);
    for (std::size_t b = 0; b < 32; ++b) {
      float best = -1e30f;
      for (std::size_t j = 0; j < 8; ++j) {
        float acc = 0;
        for (std::size_t k = 0; k < 64; ++k) acc += x[b * 64 + k] * teacher[j * 64 + k];
        if (acc > best) best = acc, label[b] = static_cast<std::int32_t>(j);
      }
    }
    Var y = layer.forward(tape, tape.constant(x.data(), {32, 64}));
    Var loss = fq::ops::softmax_cross_entropy(tape, y, label.data());
    if (step == 0) first = loss.value()[0];
    if (step >= steps - 10) last += loss.value()[0] / 10;
    tape.backward(loss);
    opt.step();
    opt.zero_grad();
    tape.clear();
  }
  return {first, last};
}

/// The layer's fake-quantized weight equals the quantizer applied to the weight directly.
template <class WQ>
void check_layer_weight_matches_quantizer() {
  std::mt19937 rng(9);
  fq::QLinear<WQ, fq::NoFakeQuant> layer(64, 32, rng);
  std::vector<float> x(4 * 64, 0.0f);
  for (int b = 0; b < 4; ++b) x[static_cast<std::size_t>(b * 64 + b)] = 1.0f;  // y[b] = W[:, b]
  Tape tape;
  Var y = layer.forward(tape, tape.constant(x.data(), {4, 64}));
  WQ q;
  std::vector<float> wq(64 * 32);
  q.forward(fq::TensorView<const float>(layer.weight().value().data(), {32, 64}),
            fq::TensorView<float>(wq.data(), {32, 64}));
  for (int b = 0; b < 4; ++b)
    for (int j = 0; j < 32; ++j) {
      const float expect =
          wq[static_cast<std::size_t>(j * 64 + b)] +
          (layer.has_bias() ? layer.bias().value()[static_cast<std::size_t>(j)] : 0.0f);
      CHECK(y.value()[b * 32 + j] == Approx(expect).margin(1e-6));
    }
}

}  // namespace

TEMPLATE_TEST_CASE("Format presets are QLinear weight quantizers: forward equals the quantizer",
                   "[formats][layers]", fq::Int4WeightGroup32Symmetric,
                   fq::Int4WeightGroup64Symmetric, fq::Fp8E4M3PerTensor, fq::Fp8E4M3PerChannel,
                   fq::Fp4E2M1PerTensor, fq::MxFp4, fq::MxFp8E4M3, fq::MxInt8, fq::NvFp4,
                   fq::Nf4Block64) {
  check_layer_weight_matches_quantizer<TestType>();
}

TEMPLATE_TEST_CASE("Format presets train: QLinear with format weights and per-token activations",
                   "[formats][layers][optim]", fq::Int4WeightGroup32Symmetric, fq::Fp8E4M3PerTensor,
                   fq::MxFp4, fq::NvFp4, fq::Nf4Block64) {
  const auto fl = train_linear<TestType, fq::Int8ActPerTokenDynamic>(120);
  INFO("first loss " << fl.first << ", last " << fl.second);
  CHECK(fl.second < 0.5 * fl.first);
}

TEST_CASE("Group-wise weights of a convolution: groups of 8 input channels", "[formats][layers]") {
  using W = fq::GroupFakeQuantizer<fq::QScheme<fq::Int4, fq::Symmetric, fq::PerGroup<8, 1>>>;
  std::mt19937 rng(2);
  fq::QConv2d<W, fq::Int8ActPerTokenDynamic> conv(16, 4, 3, rng);
  std::vector<float> x(2 * 16 * 5 * 5);
  std::normal_distribution<float> g;
  for (float& v : x) v = g(rng);
  Tape tape;
  Var y = conv.forward(tape, tape.constant(x.data(), {2, 16, 5, 5}));
  // One scale per (output channel, group of 8 input channels, kernel position).
  CHECK(conv.weight_quantizer().scale().size() == 4u * 2u * 9u);
  tape.backward(fq::ops::mean(tape, y));
  double gw = 0;
  for (float v : conv.weight().grad()) gw += std::abs(v);
  CHECK(gw > 0);
}

TEST_CASE("Format quantizers on the tape: ops::fake_quant gives the forward and the STE",
          "[formats][ops]") {
  std::vector<float> x(4 * 64), gx(x.size(), 0.0f);
  std::mt19937 rng(4);
  std::normal_distribution<float> g;
  for (float& v : x) v = g(rng);
  x[7] = 1e30f;  // far outside every scale but the dynamic ones: becomes the block's amax
  fq::MxFp4 q;
  Tape tape;
  Var xv = tape.leaf(x.data(), gx.data(), {4, 64});
  Var y = fq::ops::fake_quant(tape, xv, q);
  fq::MxFp4 direct;
  std::vector<float> yd(x.size());
  fq::Mask mask;
  direct.forward(fq::TensorView<const float>(x.data(), {4, 64}),
                 fq::TensorView<float>(yd.data(), {4, 64}), &mask);
  CHECK(std::memcmp(y.value(), yd.data(), yd.size() * sizeof(float)) == 0);
  tape.backward(fq::ops::mean(tape, y));
  const float d = 1.0f / static_cast<float>(x.size());
  for (std::size_t i = 0; i < x.size(); ++i)
    CHECK(gx[i] == (mask.test_linear(static_cast<std::int64_t>(i)) ? d : 0.0f));
}
