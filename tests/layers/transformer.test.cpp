// SPDX-License-Identifier: MIT
// The transformer layers (layers/attention.hpp, mlp.hpp, encoder_block.hpp, vit.hpp, norm.hpp,
// recipe.hpp, bit_widths.hpp, and QLinear's input quantizer) against references written
// independently: naive loops in double, with the fake quantizers applied where the recipe says.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <set>
#include <string>
#include <type_traits>
#include <vector>

#include <catch2/catch.hpp>

#include <fakequant/fakequant.hpp>
#include <fakequant/layers/bit_widths.hpp>
#include <fakequant/layers/learnable_fake_quant.hpp>
#include <fakequant/layers/vit.hpp>
#include <fakequant/ops/conv2d.hpp>
#include <fakequant/ops/fake_quant.hpp>
#include <fakequant/ops/loss.hpp>
#include <fakequant/optim/adam.hpp>
#include <fakequant/testing/check_op_gradients.hpp>

#include "layers/layers_test_util.hpp"
#include "layers/vit_test_util.hpp"
#include "test_util.hpp"

using fq::Tape;
using fq::Var;

namespace {

std::vector<float> uniform(std::size_t n, std::uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = u(rng);
  return v;
}

// Fixed per-tensor quantizers: the reference applies the same ones, so the test checks where
// the layer quantizes, not the quantizer (tested on its own).
using FixedW = fq::FakeQuantizer<fq::Int8WeightPerTensorSymmetric>;
using FixedA = fq::FakeQuantizer<fq::Uint8ActPerTensorAffine>;
using FixedRecipe = fq::QuantRecipe<FixedW, FixedA>;

std::vector<float> fq_copy(const std::vector<float>& x, float scale, std::int32_t zp,
                           fq::QuantRange r) {
  std::vector<float> y(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) {
    const double q = std::nearbyint(double(x[i]) / double(scale)) + zp;  // x/s: exact here
    y[i] = float(
        (std::min<double>(std::max<double>(q, double(r.quant_min)), double(r.quant_max)) - zp) *
        double(scale));
  }
  return y;
}

/// Reference multi-head self-attention in double, with optional fake quantization of the
/// projection inputs/weights, Q, K, V and P (fq_* < 0 scale: none).
struct AttnRef {
  long B, T, D, H;
  std::vector<float> wqkv, bqkv, wo, bo;
  float s_in1 = -1, s_in2 = -1, s_w = -1, s_m = -1, s_p = -1;  // qkv input, proj input, ...
  std::int32_t z_in1 = 0, z_in2 = 0, z_m = 0, z_p = 0;

  static std::vector<float> q_act(std::vector<float> v, float s, std::int32_t z) {
    return s > 0 ? fq_copy(v, s, z, {0, 255}) : v;
  }
  std::vector<float> q_w(std::vector<float> v) const {
    return s_w > 0 ? fq_copy(v, s_w, 0, {-128, 127}) : v;
  }
  static std::vector<float> linear(const std::vector<float>& x, long rows, long in,
                                   const std::vector<float>& w, const std::vector<float>& b,
                                   long out) {
    std::vector<float> y(std::size_t(rows * out));
    for (long r = 0; r < rows; ++r)
      for (long o = 0; o < out; ++o) {
        double s = b[std::size_t(o)];
        for (long i = 0; i < in; ++i)
          s += double(x[std::size_t(r * in + i)]) * w[std::size_t(o * in + i)];
        y[std::size_t(r * out + o)] = float(s);
      }
    return y;
  }
  std::vector<float> run(const std::vector<float>& x) const {
    const long dh = D / H;
    const auto qkv = linear(q_act(x, s_in1, z_in1), B * T, D, q_w(wqkv), bqkv, 3 * D);
    // q, k, v as [B, H, T, dh]
    std::vector<float> q(std::size_t(B * T * D)), k(q.size()), v(q.size());
    for (long b = 0; b < B; ++b)
      for (long t = 0; t < T; ++t)
        for (long h = 0; h < H; ++h)
          for (long j = 0; j < dh; ++j) {
            const std::size_t dst = std::size_t(((b * H + h) * T + t) * dh + j);
            const std::size_t src = std::size_t((b * T + t) * 3 * D + h * dh + j);
            q[dst] = qkv[src];
            k[dst] = qkv[src + std::size_t(D)];
            v[dst] = qkv[src + std::size_t(2 * D)];
          }
    if (s_m > 0) {
      q = fq_copy(q, s_m, z_m, {0, 255});
      k = fq_copy(k, s_m, z_m, {0, 255});
      v = fq_copy(v, s_m, z_m, {0, 255});
    }
    std::vector<float> p(std::size_t(B * H * T * T));
    for (long bh = 0; bh < B * H; ++bh)
      for (long i = 0; i < T; ++i) {
        std::vector<double> s(static_cast<std::size_t>(T));
        double mx = -1e300;
        for (long j = 0; j < T; ++j) {
          double acc = 0;
          for (long c = 0; c < dh; ++c)
            acc += double(q[std::size_t((bh * T + i) * dh + c)]) *
                   k[std::size_t((bh * T + j) * dh + c)];
          s[std::size_t(j)] = acc / std::sqrt(double(dh));
          mx = std::max(mx, s[std::size_t(j)]);
        }
        double sum = 0;
        for (double& e : s) sum += (e = std::exp(e - mx));
        for (long j = 0; j < T; ++j)
          p[std::size_t((bh * T + i) * T + j)] = float(s[std::size_t(j)] / sum);
      }
    if (s_p > 0) p = fq_copy(p, s_p, z_p, {0, 255});
    std::vector<float> merged(std::size_t(B * T * D));
    for (long b = 0; b < B; ++b)
      for (long h = 0; h < H; ++h)
        for (long i = 0; i < T; ++i)
          for (long c = 0; c < dh; ++c) {
            double acc = 0;
            for (long j = 0; j < T; ++j)
              acc += double(p[std::size_t(((b * H + h) * T + i) * T + j)]) *
                     v[std::size_t(((b * H + h) * T + j) * dh + c)];
            merged[std::size_t((b * T + i) * D + h * dh + c)] = float(acc);
          }
    return linear(q_act(merged, s_in2, z_in2), B * T, D, q_w(wo), bo, D);
  }
};

template <class A>
AttnRef reference_of(A& attn, long B, long T) {
  AttnRef r{B,
            T,
            attn.dim(),
            attn.heads(),
            attn.qkv().weight().value(),
            attn.qkv().bias().value(),
            attn.proj().weight().value(),
            attn.proj().bias().value()};
  return r;
}

}  // namespace

TEST_CASE("QLinear: [B, T, in] inputs are rows of one product; the input quantizer runs first",
          "[layers][transformer]") {
  std::mt19937 rng(3);
  fq::QLinear<fq::NoFakeQuant, fq::NoFakeQuant, FixedA> lin(5, 3, rng);
  lin.input_quantizer().set_qparams(0.02f, 40);
  const auto x = uniform(2 * 4 * 5, 7);
  Tape tape;
  const Var y = lin.forward(tape, tape.constant(x.data(), {2, 4, 5}));
  REQUIRE(y.shape() == fq::Shape({2, 4, 3}));
  const auto xq = fq_copy(x, 0.02f, 40, {0, 255});
  const auto ref = AttnRef::linear(xq, 8, 5, lin.weight().value(), lin.bias().value(), 3);
  for (std::size_t i = 0; i < ref.size(); ++i) CHECK(y.value()[i] == Approx(ref[i]).margin(1e-6));
  // The input quantizer is visited first, and an uncalibrated layer is not integer-capable.
  int visited = 0;
  lin.for_each_quantizer([&](auto&) { ++visited; });
  CHECK(visited == 1);
  STATIC_REQUIRE_FALSE(decltype(lin)::kIntegerCapable);
}

TEST_CASE("QMultiHeadAttention: float and fixed-quantizer forwards equal a naive reference",
          "[layers][transformer]") {
  const long B = 2, T = 5, D = 8, H = 2;
  const auto x = uniform(std::size_t(B * T * D), 11, -2.0f, 2.0f);
  SECTION("float") {
    std::mt19937 rng(1);
    fq::QMultiHeadAttention<> attn(D, H, rng);
    Tape tape;
    const Var y = attn.forward(tape, tape.constant(x.data(), {B, T, D}));
    const auto ref = reference_of(attn, B, T).run(x);
    REQUIRE(y.shape() == fq::Shape({B, T, D}));
    for (std::size_t i = 0; i < ref.size(); ++i) CHECK(y.value()[i] == Approx(ref[i]).margin(2e-6));
  }
  SECTION("every matmul input fake-quantized") {
    std::mt19937 rng(1);
    fq::QMultiHeadAttention<FixedRecipe> attn(D, H, rng);
    attn.qkv().input_quantizer().set_qparams(0.02f, 128);
    attn.proj().input_quantizer().set_qparams(0.01f, 128);
    attn.qkv().weight_quantizer().set_qparams(0.004f, 0);
    attn.proj().weight_quantizer().set_qparams(0.004f, 0);
    for (auto* q : {&attn.q_quantizer(), &attn.k_quantizer(), &attn.v_quantizer()})
      q->set_qparams(0.01f, 128);
    attn.prob_quantizer().set_qparams(1.0f / 255, 0);
    Tape tape;
    const Var y = attn.forward(tape, tape.constant(x.data(), {B, T, D}));
    AttnRef r = reference_of(attn, B, T);
    r.s_in1 = 0.02f, r.z_in1 = 128;
    r.s_in2 = 0.01f, r.z_in2 = 128;
    r.s_w = 0.004f;
    r.s_m = 0.01f, r.z_m = 128;
    r.s_p = 1.0f / 255;
    const auto ref = r.run(x);
    // A level flip between the float paths would show as a jump of a whole step: compare well
    // below one quantization step of the output's inputs.
    for (std::size_t i = 0; i < ref.size(); ++i) CHECK(y.value()[i] == Approx(ref[i]).margin(1e-5));
    // Without the quantizers the output differs (the test can fail).
    AttnRef plain = reference_of(attn, B, T);
    const auto unq = plain.run(x);
    double diff = 0;
    for (std::size_t i = 0; i < ref.size(); ++i)
      diff = std::max(diff, double(std::abs(unq[i] - ref[i])));
    CHECK(diff > 1e-3);
    CHECK(y.shape() == fq::Shape({B, T, D}));
  }
}

namespace {
/// 4×4 images of 2×2 patches (4 tokens of 4 features), width 8, 2 heads, one block: small
/// enough for finite differences.
fq::VitOptions tiny_vit(std::int64_t mlp_hidden) {
  fq::VitOptions vo;
  vo.image = 4;
  vo.patch = 2;
  vo.classes = 3;
  vo.depth = 1;
  vo.block.dim = 8;
  vo.block.heads = 2;
  vo.block.mlp_hidden = mlp_hidden;
  return vo;
}
}  // namespace

TEST_CASE("transformer layers: gradients with respect to the input match finite differences",
          "[layers][transformer]") {
  fq::testing::OpGradientOptions opt;
  opt.step = 1e-2f;
  opt.tolerance = 3e-3;
  std::mt19937 rng(5);
  fq::QMultiHeadAttention<> attn(8, 2, rng);
  const fq::VitOptions vo = tiny_vit(12);
  fq::QEncoderBlock<> block(vo.block, rng);
  fq::QVisionTransformer<> vit(vo, rng);
  std::vector<fq::testing::OpInput> tokens{{{2, 3, 8}, 21}};
  auto r = fq::testing::check_op_gradients(
      tokens, [&](Tape& t, std::vector<Var>& v) { return attn.forward(t, v[0]); }, opt);
  INFO(r.report());
  CHECK(r.passed());
  r = fq::testing::check_op_gradients(
      tokens, [&](Tape& t, std::vector<Var>& v) { return block.forward(t, v[0]); }, opt);
  INFO(r.report());
  CHECK(r.passed());
  std::vector<fq::testing::OpInput> images{{{2, 1, 4, 4}, 22}};
  r = fq::testing::check_op_gradients(
      images, [&](Tape& t, std::vector<Var>& v) { return vit.forward(t, v[0]); }, opt);
  INFO(r.report());
  CHECK(r.passed());
  CHECK(r.checked("op_gradient") == 32);
}

TEST_CASE("transformer layers: parameter gradients match finite differences",
          "[layers][transformer]") {
  std::mt19937 rng(8);
  fq::QVisionTransformer<> vit(tiny_vit(8), rng);
  // A class token of zeros makes token 0 nearly constant, where LayerNorm's curvature defeats
  // a finite difference: give it a spread.
  vit.embedding().class_token().value() = uniform(8, 10);
  const auto x = uniform(2 * 16, 9);
  const std::int32_t labels[2] = {1, 2};
  auto loss_of = [&](Tape& t) {
    return fq::ops::softmax_cross_entropy(t, vit.forward(t, t.constant(x.data(), {2, 1, 4, 4})),
                                          labels);
  };
  Tape tape;
  tape.backward(loss_of(tape));
  tape.clear();
  auto params = vit.parameters();
  REQUIRE(params.size() == 2 + 2 + 4 + 2 + 4 + 2 + 2 + 2);  // embed, block, norm, head
  std::mt19937 pick(4);
  int checked = 0;
  for (const auto& p : params) {
    for (int k = 0; k < 3; ++k) {
      const std::size_t i = std::uniform_int_distribution<std::size_t>(0, p.size - 1)(pick);
      const float saved = p.value[i];
      const float h = 1e-2f;
      fq::NoGradGuard ng(tape);
      p.value[i] = saved + h;
      const double up = loss_of(tape).value()[0];
      tape.clear();
      p.value[i] = saved - h;
      const double down = loss_of(tape).value()[0];
      tape.clear();
      p.value[i] = saved;
      const double numeric = (up - down) / (2.0 * h);
      INFO(p.name << "[" << i << "]");
      CHECK(p.grad[i] == Approx(numeric).margin(2e-3).epsilon(2e-2));
      ++checked;
    }
  }
  CHECK(checked == int(params.size()) * 3);
}

TEST_CASE("QEncoderBlock: zero projections make the block the identity (pre-norm residuals)",
          "[layers][transformer]") {
  std::mt19937 rng(2);
  fq::EncoderBlockOptions bo;
  bo.dim = 8;
  bo.heads = 4;
  bo.mlp_hidden = 16;
  fq::QEncoderBlock<> block(bo, rng);
  block.attention().proj().weight().fill(0.0f);
  block.attention().proj().bias().fill(0.0f);
  block.mlp().fc2().weight().fill(0.0f);
  block.mlp().fc2().bias().fill(0.0f);
  const auto x = uniform(3 * 5 * 8, 4);
  Tape tape;
  const Var y = block.forward(tape, tape.constant(x.data(), {3, 5, 8}));
  for (std::size_t i = 0; i < x.size(); ++i) CHECK(y.value()[i] == x[i]);
  // A non-zero attention output changes it.
  block.attention().proj().bias().fill(0.5f);
  tape.clear();
  const Var y2 = block.forward(tape, tape.constant(x.data(), {3, 5, 8}));
  CHECK(y2.value()[0] == Approx(x[0] + 0.5f));
}

TEST_CASE("QPatchEmbedding: the patch projection equals a P×P convolution with stride P",
          "[layers][transformer]") {
  std::mt19937 rng(6);
  fq::VitOptions vo;
  vo.image = 6;
  vo.channels = 2;
  vo.patch = 3;
  vo.block.dim = 5;
  fq::QPatchEmbedding<> emb(vo, rng);
  const auto x = uniform(2 * 2 * 6 * 6, 12);
  Tape tape;
  const Var xv = tape.constant(x.data(), {2, 2, 6, 6});
  const Var y = emb.forward(tape, xv);  // [2, 5, 5]: class token + 4 patches
  REQUIRE(y.shape() == fq::Shape({2, 5, 5}));
  const Var w = tape.constant(emb.proj().weight().value().data(), {5, 2, 3, 3});
  const Var b = tape.constant(emb.proj().bias().value().data(), {5});
  const Var conv =
      fq::ops::conv2d(tape, xv, w, b, fq::ops::Conv2dOptions::make(3, 0));  // [2,5,2,2]
  const float* pos = emb.position_embedding().value().data();
  for (long n = 0; n < 2; ++n)
    for (long d = 0; d < 5; ++d) {
      CHECK(y.value()[(n * 5 + 0) * 5 + d] == Approx(pos[d]).margin(1e-7));  // class token 0
      for (long t = 0; t < 4; ++t)
        CHECK(y.value()[(n * 5 + 1 + t) * 5 + d] ==
              Approx(conv.value()[(n * 5 + d) * 4 + t] + pos[(1 + t) * 5 + d]).margin(1e-5));
    }
}

TEST_CASE("QVisionTransformer: recipes per part give mixed precision at compile time",
          "[layers][transformer]") {
  std::mt19937 rng(1);
  fq_test::MixedVit vit(fq_test::small_vit(), rng);
  const auto x = uniform(3 * 2 * 64, 5);
  Tape tape;
  const Var y = vit.forward(tape, tape.constant(x.data(), {3, 2, 8, 8}));
  CHECK(y.shape() == fq::Shape({3, 4}));
  // The first and last layers' weights take int8 levels, the blocks' int4 in groups of 32.
  CHECK(vit.embedding().proj().weight_quantizer().quantizer().range().quant_max == 127);
  CHECK(vit.head().weight_quantizer().quantizer().range().quant_max == 127);
  for (auto& blk : vit.blocks()) {
    auto& wq = blk.attention().qkv().weight_quantizer();
    CHECK(wq.range().quant_max == 7);
    CHECK(wq.scale().size() == 3 * 32);  // [3D, D / 32] groups
    CHECK(blk.mlp().fc2().weight_quantizer().scale().size() == 32 * 2);
    CHECK(blk.attention().prob_quantizer().scale().size() == 3 * 2 * 5);  // per token of P
  }
  int quantizers = 0;
  vit.for_each_quantizer([&](auto&) { ++quantizers; });
  CHECK(quantizers == 2 + 2 * (2 + 4 + 2 + 4) + 2);
}

TEST_CASE("set_layer_bits: run-time bit widths per layer without recompiling",
          "[layers][transformer]") {
  std::mt19937 rng(1);
  fq::VitOptions vo;
  vo.depth = 2;
  vo.block.dim = 16;
  vo.block.heads = 2;
  vo.block.mlp_hidden = 32;
  fq::QVisionTransformer<fq::RuntimeBitsRecipe> vit(vo, rng);
  CHECK(fq::set_layer_bits(vit.embedding(), 8, 8) == 2);
  CHECK(fq::set_layer_bits(vit.blocks()[0], 4, 6) == 12);
  CHECK(fq::set_layer_bits(vit.blocks()[1], 3, 8) == 12);
  CHECK(fq::set_layer_bits(vit.head(), 8, 8) == 2);
  const auto x = uniform(2 * 784, 5);
  Tape tape;
  vit.forward(tape, tape.constant(x.data(), {2, 1, 28, 28}));
  auto& wq = vit.blocks()[0].mlp().fc1().weight_quantizer();
  CHECK(wq.bits() == 4);
  CHECK(wq.quantizer().range().quant_min == -8);
  CHECK(wq.quantizer().range().quant_max == 7);
  CHECK(vit.blocks()[0].attention().prob_quantizer().quantizer().range().quant_max == 63);
  CHECK(vit.blocks()[1].attention().qkv().weight_quantizer().quantizer().range().quant_max == 3);
  // The fake-quantized weights of a 4-bit channel take at most 16 levels.
  const auto& w = vit.blocks()[0].mlp().fc1().weight().value();
  std::vector<float> wf(w.size());
  fq::Tape t2;
  const Var wv = fq::ops::fake_quant(t2, t2.constant(w.data(), {32, 16}), wq);
  std::set<float> levels(wv.value(), wv.value() + 16);  // channel 0
  CHECK(levels.size() <= 16);
  CHECK(levels.size() >= 4);
  CHECK_THROWS_AS(fq::set_layer_bits(vit.head(), 1, 8), fq::Error);
  CHECK_THROWS_AS(fq::set_layer_bits(vit.head(), 8, 17), fq::Error);
}

TEST_CASE("transformer layers: bad sizes and inputs are refused", "[layers][transformer]") {
  std::mt19937 rng(1);
  CHECK(fq_test::error_code_of([&] { fq::QMultiHeadAttention<> a(10, 3, rng); }) ==
        fq::ErrorCode::kInvalidArgument);
  CHECK(fq_test::error_code_of([&] { fq::LayerNorm n(0); }) == fq::ErrorCode::kInvalidArgument);
  CHECK(fq_test::error_code_of([&] { fq::LayerNorm n(4, 0.0f); }) ==
        fq::ErrorCode::kInvalidArgument);
  fq::EncoderBlockOptions bo;
  bo.dropout = 1.0f;
  CHECK(fq_test::error_code_of([&] { fq::QEncoderBlock<> b(bo, rng); }) ==
        fq::ErrorCode::kInvalidArgument);
  fq::VitOptions vo;
  vo.patch = 5;  // does not divide 28
  CHECK(fq_test::error_code_of([&] { fq::QVisionTransformer<> v(vo, rng); }) ==
        fq::ErrorCode::kInvalidArgument);
  vo.patch = 7;
  vo.depth = 0;
  CHECK(fq_test::error_code_of([&] { fq::QVisionTransformer<> v(vo, rng); }) ==
        fq::ErrorCode::kInvalidArgument);
  vo.depth = 1;
  vo.block.dim = 8;
  vo.block.heads = 2;
  fq::QVisionTransformer<> vit(vo, rng);
  std::vector<float> img(2 * 784 * 2);
  Tape tape;
  CHECK(fq_test::error_code_of([&] {
          vit.forward(tape, tape.constant(img.data(), {2, 2, 28, 28}));
        }) == fq::ErrorCode::kShapeMismatch);
  fq::QMultiHeadAttention<> attn(8, 2, rng);
  CHECK(fq_test::error_code_of([&] {
          attn.forward(tape, tape.constant(img.data(), {2, 7, 9}));
        }) == fq::ErrorCode::kShapeMismatch);
}

TEST_CASE("QVisionTransformer: a few AdamW steps fit a small batch (loss falls)",
          "[layers][transformer]") {
  std::mt19937 rng(3);
  fq::VitOptions vo = fq_test::small_vit();
  vo.block.dropout = 0.1f;
  fq_test::MixedVit vit(vo, rng);
  const auto x = uniform(8 * 2 * 64, 13);
  const std::int32_t labels[8] = {0, 1, 2, 3, 0, 1, 2, 3};
  fq::optim::AdamWOptions ao;
  ao.lr = 3e-3;
  fq::optim::AdamW opt(vit.parameters(), ao);
  Tape tape;
  float first = 0, last = 0;
  for (int step = 0; step < 60; ++step) {
    tape.clear();
    const Var loss = fq::ops::softmax_cross_entropy(
        tape, vit.forward(tape, tape.constant(x.data(), {8, 2, 8, 8})), labels);
    tape.backward(loss);
    opt.step();
    opt.zero_grad();
    (step == 0 ? first : last) = loss.value()[0];
  }
  CHECK(last < 0.5f * first);
}

TEST_CASE("QVisionTransformer: learnable (LSQ+) activation quantizers train with the weights",
          "[layers][transformer]") {
  // Every matmul input's uint4 quantizer an LSQ+ node: its scale and zero point join
  // parameters() (no weight decay), every scale gets a gradient, and AdamW moves them.
  using Act = fq::LearnableFakeQuant<fq::TorchLsq, fq::UInt4>;
  using R = fq::QuantRecipe<fq::Int4WeightGroup32Symmetric, Act>;
  std::mt19937 rng(4);
  fq::QVisionTransformer<R> vit(fq_test::small_vit(), rng);
  const auto x = uniform(8 * 2 * 64, 17);
  const std::int32_t labels[8] = {0, 1, 2, 3, 3, 2, 1, 0};
  Tape tape;
  {  // the observers set the initial ranges from one batch, then stay off
    fq::NoGradGuard no_grad(tape);
    vit.forward(tape, tape.constant(x.data(), {8, 2, 8, 8}));
  }
  int acts = 0;
  vit.for_each_quantizer([&](auto& q) {
    if constexpr (std::is_same<std::decay_t<decltype(q)>, Act>::value) {
      q.enable_observer(false);
      ++acts;
    }
  });
  // Per block: the qkv and out projections' inputs, Q, K, V, P, fc1 and fc2's inputs; plus the
  // patch embedding's and the head's inputs.
  CHECK(acts == 2 * 8 + 2);
  std::vector<fq::optim::ParamRef> lsq;
  for (const auto& p : vit.parameters())
    if (std::string(p.name).rfind("lsq.", 0) == 0) {
      CHECK_FALSE(p.weight_decay);
      lsq.push_back(p);
    }
  REQUIRE(lsq.size() == std::size_t(2 * acts));  // a scale and a zero point each
  std::vector<float> before;
  for (const auto& p : lsq) before.push_back(p.value[0]);
  fq::optim::AdamWOptions ao;
  ao.lr = 1e-2;
  fq::optim::AdamW opt(vit.parameters(), ao);
  tape.clear();
  const Var loss = fq::ops::softmax_cross_entropy(
      tape, vit.forward(tape, tape.constant(x.data(), {8, 2, 8, 8})), labels);
  tape.backward(loss);
  int scale_grads = 0;
  for (const auto& p : lsq) {
    REQUIRE(std::isfinite(p.grad[0]));
    scale_grads += std::string(p.name) == "lsq.scale" && p.grad[0] != 0.0f;
  }
  CHECK(scale_grads == acts);
  opt.step();
  int moved = 0;
  for (std::size_t i = 0; i < lsq.size(); ++i) moved += lsq[i].value[0] != before[i];
  CHECK(moved >= acts);  // every scale at least
}
