// SPDX-License-Identifier: MIT
// convert_linear / convert_conv2d: the user's raw weights in any stated layout, with the
// quantizers that guarded them, give the very integer layer fq::convert builds from a QLinear /
// QConv2d holding the same weights and quantizers (every parameter equal, the same outputs);
// bad layouts, pointers and quantizers are refused.
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include <fakequant/convert/convert.hpp>
#include <fakequant/convert/own_kernels.hpp>
#include <fakequant/layers/learnable_fake_quant.hpp>

#include "test_util.hpp"

// A named namespace around the whole file: its helpers stay its own in a unity source.
namespace fq_test_own_kernels {

using fq::Tape;
using fq::Var;
using fq_test::error_code_of;
using fq_test::error_message_of;

namespace {

// The weight quantizer of weights stored [in, out]: per channel on axis 1.
using WeightsAxis1 = fq::FakeQuantize<fq::QScheme<fq::Int8, fq::Symmetric, fq::PerChannel<1>>,
                                      fq::PerChannelMinMaxObserver>;
using WeightsAxis3 = fq::FakeQuantize<fq::QScheme<fq::Int8, fq::Symmetric, fq::PerChannel<-1>>,
                                      fq::PerChannelMinMaxObserver>;  // -1: the last axis, O

void check_same_params(const fq::Int8LayerParams& a, const fq::Int8LayerParams& b) {
  CHECK(a.weight == b.weight);
  CHECK(a.weight_scale == b.weight_scale);
  CHECK(a.bias == b.bias);
  CHECK(a.real_bias == b.real_bias);
  REQUIRE(a.multiplier.size() == b.multiplier.size());
  for (std::size_t i = 0; i < a.multiplier.size(); ++i) {
    CHECK(a.multiplier[i].multiplier == b.multiplier[i].multiplier);
    CHECK(a.multiplier[i].shift == b.multiplier[i].shift);
  }
  CHECK(a.in.scale == b.in.scale);
  CHECK(a.in.zero_point == b.in.zero_point);
  CHECK(a.out.scale == b.out.scale);
  CHECK(a.out.zero_point == b.out.zero_point);
  CHECK(a.out_min == b.out_min);
  CHECK(a.out_max == b.out_max);
  CHECK(a.relu == b.relu);
  CHECK(a.float_out == b.float_out);
}

// Runs the layer's quantizers once on random data (calibration), as a training step would.
template <class L>
void calibrate(L& l, fq::Shape x_shape, std::mt19937& rng) {
  std::normal_distribution<float> nd(0.3f, 1.0f);
  std::vector<float> x(std::size_t(x_shape.numel()));
  for (float& v : x) v = nd(rng);
  Tape tape;
  fq::NoGradGuard ng(tape);
  l.forward(tape, tape.constant(x.data(), x_shape));
}

// A copy of w [rows, cols] transposed to [cols, rows].
std::vector<float> transposed(const std::vector<float>& w, std::int64_t rows, std::int64_t cols) {
  std::vector<float> t(w.size());
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t c = 0; c < cols; ++c)
      t[std::size_t(c * rows + r)] = w[std::size_t(r * cols + c)];
  return t;
}

}  // namespace

TEST_CASE("convert_linear equals fq::convert of a QLinear with the same weights and quantizers",
          "[convert][own_kernels]") {
  std::mt19937 rng(8);
  constexpr std::int64_t kIn = 12, kOut = 5;
  fq::QLinear<> ql(kIn, kOut, rng, fq::Activation::kReLU6);
  calibrate(ql, {7, kIn}, rng);
  const fq::ActQParams in{0.031f, 17};
  const fq::Int8Linear ref = fq::convert(ql, in);
  const std::vector<float>& w = ql.weight().value();
  const float* bias = ql.bias().value().data();

  SECTION("[out, in] with the QLinear's own quantizers") {
    const fq::Int8Linear got =
        fq::convert_linear(fq::LinearWeights{w.data(), kIn, kOut}, bias, in, ql.weight_quantizer(),
                           ql.output_quantizer(), fq::Activation::kReLU6);
    check_same_params(got.params(), ref.params());
  }
  SECTION("[in, out] with a quantizer on axis 1 holding the same qparams") {
    const std::vector<float> w_io = transposed(w, kOut, kIn);
    fq::FakeQuantizer<WeightsAxis1::scheme> q1(kOut);
    const auto& q0 = ql.weight_quantizer().quantizer();
    q1.set_qparams(q0.scale(), q0.zero_point());
    const fq::Int8Linear got = fq::convert_linear(
        fq::LinearWeights{w_io.data(), kIn, kOut, fq::LinearWeightLayout::kInOut}, bias, in, q1,
        ql.output_quantizer(), fq::Activation::kReLU6);
    check_same_params(got.params(), ref.params());
    // The input may also be given as the input quantizer.
    fq::FakeQuantizer<fq::Uint8ActPerTensorAffine> in_q;
    in_q.set_qparams(in.scale, in.zero_point);
    const fq::Int8Linear got2 = fq::convert_linear(
        fq::LinearWeights{w_io.data(), kIn, kOut, fq::LinearWeightLayout::kInOut}, bias, in_q, q1,
        ql.output_quantizer(), fq::Activation::kReLU6);
    check_same_params(got2.params(), ref.params());
  }
  SECTION("float output, no bias") {
    fq::QLinear<fq::DefaultWeightFakeQuant, fq::NoFakeQuant> logits(kIn, kOut, rng,
                                                                    fq::Activation::kNone,
                                                                    /*bias=*/false);
    calibrate(logits, {3, kIn}, rng);
    const fq::Int8Linear ref2 = fq::convert(logits, in);
    const fq::Int8Linear got =
        fq::convert_linear(fq::LinearWeights{logits.weight().value().data(), kIn, kOut}, nullptr,
                           in, logits.weight_quantizer(), fq::NoFakeQuant{});
    check_same_params(got.params(), ref2.params());
    std::vector<std::uint8_t> x(std::size_t(2 * kIn));
    for (std::size_t i = 0; i < x.size(); ++i) x[i] = std::uint8_t(i * 37 % 256);
    std::vector<float> a(2 * kOut), b(2 * kOut);
    got.run(x.data(), 2, a.data());
    ref2.run(x.data(), 2, b.data());
    CHECK(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
  }
}

TEST_CASE("convert_linear takes learned quantizers (LSQ weights per tensor, LSQ+ output)",
          "[convert][own_kernels][learnable]") {
  std::mt19937 rng(2);
  using W = fq::LearnableFakeQuant<fq::TorchLsq, fq::Int8>;
  using A = fq::LearnableFakeQuant<fq::TorchLsq, fq::UInt8>;
  fq::QLinear<W, A> ql(6, 4, rng, fq::Activation::kReLU);
  calibrate(ql, {5, 6}, rng);
  const fq::ActQParams in{0.02f, 128};
  const fq::Int8Linear ref = fq::convert(ql, in);
  const std::vector<float> w_io = transposed(ql.weight().value(), 4, 6);
  const fq::Int8Linear got =
      fq::convert_linear(fq::LinearWeights{w_io.data(), 6, 4, fq::LinearWeightLayout::kInOut},
                         ql.bias().value().data(), in, ql.weight_quantizer(), ql.output_quantizer(),
                         fq::Activation::kReLU);
  check_same_params(got.params(), ref.params());
  CHECK(got.params().weight_scale ==
        std::vector<float>(4, ql.weight_quantizer().quantizer().scale()));
}

TEST_CASE("convert_conv2d equals fq::convert of a QConv2d in every weight layout",
          "[convert][own_kernels]") {
  std::mt19937 rng(4);
  // 4 -> 6 channels, 3x2 kernel... QConv2d has square kernels: 3x3, groups 2, stride 2, pad 1.
  const auto opt = fq::ops::Conv2dOptions::make(2, 1, 2);
  fq::QConv2d<> qc(4, 6, 3, rng, opt, fq::Activation::kReLU);
  calibrate(qc, {2, 4, 9, 7}, rng);
  const fq::ActQParams in{0.05f, 3};
  const fq::Int8Conv2d ref = fq::convert(qc, in, 9, 7);
  const std::vector<float>& w = qc.weight().value();  // OIHW [6, 2, 3, 3]
  constexpr std::int64_t kO = 6, kC = 2, kK = 3;
  std::vector<float> ohwi(w.size()), hwio(w.size());
  for (std::int64_t o = 0; o < kO; ++o)
    for (std::int64_t c = 0; c < kC; ++c)
      for (std::int64_t y = 0; y < kK; ++y)
        for (std::int64_t x = 0; x < kK; ++x) {
          const float v = w[std::size_t(((o * kC + c) * kK + y) * kK + x)];
          ohwi[std::size_t(((o * kK + y) * kK + x) * kC + c)] = v;
          hwio[std::size_t(((y * kK + x) * kC + c) * kO + o)] = v;
        }
  const fq::Conv2dShape shape = ref.shape();
  const float* bias = qc.bias().value().data();
  SECTION("OIHW and OHWI with the layer's quantizers") {
    for (const auto& [data, layout] :
         {std::pair<const float*, fq::ConvWeightLayout>{w.data(), fq::ConvWeightLayout::kOIHW},
          {ohwi.data(), fq::ConvWeightLayout::kOHWI}}) {
      const fq::Int8Conv2d got =
          fq::convert_conv2d(fq::Conv2dWeights{data, shape, layout}, bias, in,
                             qc.weight_quantizer(), qc.output_quantizer(), fq::Activation::kReLU);
      check_same_params(got.params(), ref.params());
      CHECK(got.out_numel() == ref.out_numel());
    }
  }
  SECTION("HWIO with a quantizer on axis 3; the outputs agree") {
    fq::FakeQuantizer<WeightsAxis3::scheme> q3(kO);
    const auto& q0 = qc.weight_quantizer().quantizer();
    q3.set_qparams(q0.scale(), q0.zero_point());
    const fq::Int8Conv2d got =
        fq::convert_conv2d(fq::Conv2dWeights{hwio.data(), shape, fq::ConvWeightLayout::kHWIO}, bias,
                           in, q3, qc.output_quantizer(), fq::Activation::kReLU);
    check_same_params(got.params(), ref.params());
    std::vector<std::uint8_t> x(std::size_t(2 * 4 * 9 * 7)), a(std::size_t(2 * ref.out_numel())),
        b(a.size());
    for (std::size_t i = 0; i < x.size(); ++i) x[i] = std::uint8_t(i * 53 % 256);
    got.run(x.data(), 2, a.data());
    ref.run(x.data(), 2, b.data());
    CHECK(a == b);
  }
}

TEST_CASE("convert_linear / convert_conv2d refuse bad weights and quantizers",
          "[convert][own_kernels][errors]") {
  std::mt19937 rng(6);
  fq::QLinear<> ql(4, 3, rng);
  calibrate(ql, {2, 4}, rng);
  const fq::ActQParams in{0.1f, 0};
  const std::vector<float>& w = ql.weight().value();
  auto& wq = ql.weight_quantizer();
  auto& aq = ql.output_quantizer();
  CHECK(error_code_of([&] {
          fq::convert_linear(fq::LinearWeights{nullptr, 4, 3}, nullptr, in, wq, aq);
        }) == fq::ErrorCode::kInvalidArgument);
  CHECK(error_code_of([&] {
          fq::convert_linear(fq::LinearWeights{w.data(), 0, 3}, nullptr, in, wq, aq);
        }) == fq::ErrorCode::kInvalidArgument);
  // A quantizer on axis 0 for weights whose output channels are axis 1.
  const std::string m = error_message_of([&] {
    fq::convert_linear(fq::LinearWeights{w.data(), 4, 3, fq::LinearWeightLayout::kInOut}, nullptr,
                       in, wq, aq);
  });
  CHECK(m.find("convert_linear: the weight quantizer is per channel on axis 0 but the layout's "
               "output channels are axis 1 of 2") != std::string::npos);
  // A quantizer for 4 channels on a 3-output layer.
  fq::FakeQuantizer<fq::Int8WeightPerChannelSymmetric> q4(4);
  q4.set_qparams(std::vector<float>(4, 0.1f), std::vector<std::int32_t>(4, 0));
  CHECK(error_code_of([&] {
          fq::convert_linear(fq::LinearWeights{w.data(), 4, 3}, nullptr, in, q4, aq);
        }) == fq::ErrorCode::kParamCountMismatch);
  // Uncalibrated quantizers are named.
  fq::DefaultActFakeQuant fresh;
  CHECK(error_message_of([&] {
          fq::convert_linear(fq::LinearWeights{w.data(), 4, 3}, nullptr, in, wq, fresh);
        }).find("convert_linear: the output quantizer is not calibrated") != std::string::npos);
  fq::DefaultWeightFakeQuant fresh_w;
  CHECK(error_code_of([&] {
          fq::convert_linear(fq::LinearWeights{w.data(), 4, 3}, nullptr, in, fresh_w, aq);
        }) == fq::ErrorCode::kInvalidState);
  // A learned weight zero point that drifted away from 0.
  fq::LsqQuantizer<fq::TorchLsq> lsq(fq::QuantRange{-128, 127});
  lsq.set_scale(0.02f);
  lsq.set_zero_point(2.0f);
  CHECK(error_code_of([&] {
          fq::convert_linear(fq::LinearWeights{w.data(), 4, 3}, nullptr, in, lsq, aq);
        }) == fq::ErrorCode::kInvalidZeroPoint);
  // Convolution: groups that do not divide the channels; an output larger than the input allows.
  fq::Conv2dShape s;
  s.in_channels = 3;
  s.out_channels = 3;
  s.kernel_h = s.kernel_w = 1;
  s.in_h = s.in_w = 2;
  s.groups = 2;
  CHECK(error_code_of([&] {
          fq::convert_conv2d(fq::Conv2dWeights{w.data(), s}, nullptr, in, wq, aq);
        }) == fq::ErrorCode::kInvalidArgument);
}

}  // namespace fq_test_own_kernels
