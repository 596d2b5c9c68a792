// SPDX-License-Identifier: MIT
// tests/int8/float_linear.test.cpp: fq::Int8FloatLinear (int8/float_linear.hpp) built from the
// library's own fake quantizers, for static uint8 / int8 and the per-token presets:
//   (a) the output against the float linear layer on the fake-quantized input and weights,
//       fq(x) · fq(w)ᵀ + b, computed independently in double (tight relative tolerance);
//   (b) bit for bit the documented epilogue fma(f32(s_x · s_w), f32(acc), b) of an exact int64
//       accumulator over the levels read back from the fake quantizers' outputs — so the
//       layer's levels are the fake quantizers' levels and its int32 sums are exact;
//   (c) the scalar reference path (ScalarArch, Isa::kScalar) and the AVX2 GEMM bit-identical
//       to the default path; a static layer bit-identical to Int8Linear's float output;
//   (d) each bad input refused with its ErrorCode.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include <fakequant/int8/float_linear.hpp>
#include <fakequant/int8/linear.hpp>
#include <fakequant/int8/params.hpp>
#include <fakequant/kernels/quantize.hpp>
#include <fakequant/observer/fake_quantize_module.hpp>
#include <fakequant/observer/minmax_observer.hpp>
#include <fakequant/quantizer/fake_quantizer.hpp>
#include <fakequant/quantizer/group_quantizer.hpp>
#include <fakequant/scheme/presets.hpp>
#include <fakequant/simd/isa.hpp>

#include "test_util.hpp"

namespace {

using fq::ErrorCode;
using fq_test::error_code_of;
using I64 = std::int64_t;
using V = std::vector<float>;

using StaticU8 = fq::FakeQuantize<fq::Uint8ActPerTensorAffine, fq::MinMaxObserver>;
using StaticI8 = fq::FakeQuantizer<fq::Int8ActPerTensorAffine>;
using WeightQ8 = fq::FakeQuantize<fq::Int8WeightPerChannelSymmetric, fq::PerChannelMinMaxObserver>;
using WeightQ4 = fq::FakeQuantize<fq::Int4WeightPerChannelSymmetric, fq::PerChannelMinMaxObserver>;

std::size_t sz(I64 v) { return static_cast<std::size_t>(v); }

/// Activations with rows of very different magnitudes (what per-token quantization is for),
/// an outlier now and then, and (if `specials`) adversarial rows: all zero, constant, exact
/// half-level ties, -0 / denormals, and one non-finite or float-overflowing row.
V make_x(I64 m, I64 in, std::mt19937& rng, bool specials) {
  std::normal_distribution<float> g(0.0f, 1.0f);
  std::uniform_real_distribution<float> mag(-3.0f, 2.0f);
  V x(sz(m * in));
  for (I64 i = 0; i < m; ++i) {
    const float s = std::pow(10.0f, mag(rng)), shift = g(rng) * s * 0.5f;
    for (I64 k = 0; k < in; ++k) x[sz(i * in + k)] = g(rng) * s + shift;
    if (rng() % 4 == 0) x[sz(i * in) + rng() % sz(in)] = 20.0f * s;  // an outlier
  }
  if (!specials) return x;
  for (I64 i = 0; i < m; ++i) {
    float* r = x.data() + i * in;
    switch ((i + static_cast<I64>(rng() % 2)) % 8) {
      case 0:
        std::fill(r, r + in, 0.0f);
        break;
      case 1:
        std::fill(r, r + in, -0.75f);
        break;
      case 2:  // halves of 1/16: ties of the levels when the scale is 1/16-ish
        for (I64 k = 0; k < in; ++k) r[k] = (static_cast<float>(k % 33) - 16.5f) / 16.0f;
        break;
      case 3:
        r[0] = -0.0f;
        r[in - 1] = std::numeric_limits<float>::denorm_min();
        break;
      case 4: {
        const float bad[] = {std::numeric_limits<float>::quiet_NaN(),
                             std::numeric_limits<float>::infinity(),
                             -std::numeric_limits<float>::infinity()};
        r[rng() % sz(in)] = bad[rng() % 3];
        break;
      }
      case 5:  // max - min overflows float: a non-finite per-token scale
        r[0] = 3e38f;
        if (in > 1) r[in - 1] = -3e38f;
        break;
      default:
        break;
    }
  }
  return x;
}

V make_w(I64 out, I64 in, std::mt19937& rng) {
  std::normal_distribution<float> g(0.0f, 0.2f);
  V w(sz(out * in));
  for (auto& v : w) v = g(rng);
  if (rng() % 3 == 0) std::fill(w.begin(), w.begin() + in, 0.0f);  // an all-zero channel
  return w;
}

/// The layer's output, and the same from the scalar references and the AVX2 GEMM, which must
/// be bit-identical (c).
V run_all_paths(const fq::Int8FloatLinear& l, const V& x, I64 m) {
  V y(sz(m * l.out_features()), -1.0f), ys(y.size(), -2.0f), ya(y.size(), -3.0f);
  l.forward(x.data(), m, y.data());
  l.forward<fq::ScalarArch>(x.data(), m, ys.data(), fq::Isa::kScalar);
  CHECK(std::memcmp(y.data(), ys.data(), y.size() * sizeof(float)) == 0);
  l.forward(x.data(), m, ya.data(), fq::Isa::kScalar);
  CHECK(std::memcmp(y.data(), ya.data(), y.size() * sizeof(float)) == 0);
  if (fq::isa_supported(fq::Isa::kAvx2)) {
    l.forward(x.data(), m, ya.data(), fq::Isa::kAvx2);
    CHECK(std::memcmp(y.data(), ya.data(), y.size() * sizeof(float)) == 0);
  }
  // The TensorView form on a [1, m, in] view.
  const I64 xs[] = {1, m, l.in_features()}, ysh[] = {1, m, l.out_features()};
  const I64 xst[] = {m * l.in_features(), l.in_features(), 1},
            yst[] = {m * l.out_features(), l.out_features(), 1};
  l.forward(fq::TensorView<const float>(x.data(), 3, xs, xst),
            fq::TensorView<float>(ya.data(), 3, ysh, yst));
  CHECK(std::memcmp(y.data(), ya.data(), y.size() * sizeof(float)) == 0);
  return y;
}

/// (a) and (b) for a layer, given the fake-quantized x and w, each row's input scale and the
/// weight scales.
void check_against_fake_quant(const V& y, const V& fqx, const V& fqw, const V& b,
                              const V& row_scale, const V& w_scale, I64 m, I64 in, I64 out) {
  for (I64 i = 0; i < m; ++i) {
    bool finite_row = true;
    for (I64 k = 0; k < in; ++k) finite_row = finite_row && std::isfinite(fqx[sz(i * in + k)]);
    for (I64 o = 0; o < out; ++o) {
      const float got = y[sz(i * out + o)];
      if (!finite_row) {  // the fake-quantized row is NaN: so is the layer's
        INFO("row " << i << " col " << o);
        CHECK(std::isnan(got));
        continue;
      }
      double ref = b[sz(o)], mag = std::fabs(b[sz(o)]);
      std::int64_t acc = 0;
      for (I64 k = 0; k < in; ++k) {
        const double xv = fqx[sz(i * in + k)], wv = fqw[sz(o * in + k)];
        ref += xv * wv;
        mag += std::fabs(xv * wv);
        // The levels (q - z) and q_w read back from the fake quantizers' outputs (exact: the
        // outputs are f32((q - z) * s), |q - z| <= 255).
        acc += static_cast<std::int64_t>(std::nearbyint(xv / double(row_scale[sz(i)]))) *
               static_cast<std::int64_t>(std::nearbyint(wv / double(w_scale[sz(o)])));
      }
      INFO("m " << m << " in " << in << " out " << out << " row " << i << " col " << o << " got "
                << got << " ref " << ref);
      // (a) the float layer on fake-quantized operands, within 1e-5 of the terms' magnitude.
      CHECK(std::fabs(double(got) - ref) <= 1e-5 * mag + 1e-30);
      // (b) the documented epilogue on the exact accumulator, bit for bit.
      REQUIRE(std::llabs(acc) < (std::int64_t(1) << 31));
      const float want =
          std::fma(row_scale[sz(i)] * w_scale[sz(o)], static_cast<float>(acc), b[sz(o)]);
      CHECK(fq_test::bits_of(got) == fq_test::bits_of(want));
    }
  }
}

/// Calibrates the weight quantizer on w and returns fq(w).
template <class WQ>
V fake_quant_weights(WQ& wq, const V& w, I64 out, I64 in) {
  V fqw(w.size());
  wq.forward(fq::TensorView<const float>(w.data(), {out, in}),
             fq::TensorView<float>(fqw.data(), {out, in}));
  return fqw;
}

enum class Kind { kStaticU8, kStaticI8, kTokenAffine, kTokenLegacy, kTokenSymmetric, kTokenInt4 };

/// One layer of the given kind on random data: (a), (b), (c).
template <class WQ>
void check_case(Kind kind, I64 m, I64 in, I64 out, std::mt19937& rng, bool specials) {
  const V x = make_x(m, in, rng, specials), w = make_w(out, in, rng);
  V b(sz(out));
  std::normal_distribution<float> g(0.0f, 0.5f);
  for (auto& v : b) v = g(rng);
  WQ wq;
  const V fqw = fake_quant_weights(wq, w, out, in);
  const V& w_scale = wq.quantizer().scale();
  const fq::TensorView<const float> xv(x.data(), {m, in});
  V fqx(x.size()), row_scale(sz(m));
  auto check = [&](const auto& iq) {
    const auto l = fq::Int8FloatLinear::from_quantizers(iq, w, out, in, wq, b);
    REQUIRE(l.in_features() == in);
    REQUIRE(l.out_features() == out);
    const V y = run_all_paths(l, x, m);
    check_against_fake_quant(y, fqx, fqw, b, row_scale, w_scale, m, in, out);
  };
  switch (kind) {
    case Kind::kStaticU8: {  // calibrated on 0.8 x (finite part): the outer values clip
      StaticU8 iq;
      V cal;
      for (float v : x)
        if (std::isfinite(v) && std::fabs(v) < 1e30f) cal.push_back(0.8f * v);
      cal.push_back(0.5f);  // never an empty calibration set
      iq.forward(fq::TensorView<const float>(cal.data(), {I64(cal.size())}),
                 fq::TensorView<float>(cal.data(), {I64(cal.size())}));
      iq.disable_observer();
      iq.forward(xv, fq::TensorView<float>(fqx.data(), {m, in}));
      std::fill(row_scale.begin(), row_scale.end(), iq.quantizer().scale()[0]);
      check(iq);
      break;
    }
    case Kind::kStaticI8: {  // set by hand: a zero point off the middle
      StaticI8 iq;
      iq.set_qparams(0.013f * float(1 + rng() % 7), static_cast<std::int32_t>(rng() % 61) - 30);
      iq.forward(xv, fq::TensorView<float>(fqx.data(), {m, in}));
      std::fill(row_scale.begin(), row_scale.end(), iq.scale()[0]);
      check(iq);
      break;
    }
    case Kind::kTokenAffine:
    case Kind::kTokenLegacy:
    case Kind::kTokenSymmetric:
    case Kind::kTokenInt4: {
      auto run = [&](auto iq) {
        iq.forward(xv, fq::TensorView<float>(fqx.data(), {m, in}));
        row_scale = iq.scale();
        check(iq);
      };
      if (kind == Kind::kTokenAffine) run(fq::Int8ActPerTokenDynamic{});
      if (kind == Kind::kTokenLegacy) run(fq::Int8ActPerTokenDynamicLegacy{});
      if (kind == Kind::kTokenSymmetric) run(fq::Int8ActPerTokenSymmetricDynamic{});
      if (kind == Kind::kTokenInt4) run(fq::Int4ActPerTokenDynamic{});
      break;
    }
  }
}

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::kStaticU8:
      return "static uint8";
    case Kind::kStaticI8:
      return "static int8";
    case Kind::kTokenAffine:
      return "Int8ActPerTokenDynamic";
    case Kind::kTokenLegacy:
      return "Int8ActPerTokenDynamicLegacy";
    case Kind::kTokenSymmetric:
      return "Int8ActPerTokenSymmetricDynamic";
    default:
      return "Int4ActPerTokenDynamic";
  }
}

constexpr Kind kKinds[] = {Kind::kStaticU8, Kind::kStaticI8, Kind::kTokenAffine, Kind::kTokenLegacy,
                           Kind::kTokenSymmetric};

}  // namespace

TEST_CASE("Int8FloatLinear: the float layer on fake-quantized operands, exact accumulators",
          "[int8][float_linear]") {
  std::mt19937 rng(15);
  for (Kind kind : kKinds)
    for (I64 m : {1, 3, 17, 64})
      for (I64 in : {1, 31, 64, 257})
        for (I64 out : {1, 5, 64}) {
          INFO(kind_name(kind) << " m " << m << " in " << in << " out " << out);
          check_case<WeightQ8>(kind, m, in, out, rng, false);
        }
}

TEST_CASE("Int8FloatLinear: adversarial rows (zero, constant, ties, NaN, Inf, overflow)",
          "[int8][float_linear]") {
  std::mt19937 rng(16);
  for (Kind kind : kKinds)
    for (I64 m : {9, 40})
      for (I64 in : {2, 33, 130}) {
        INFO(kind_name(kind) << " m " << m << " in " << in);
        check_case<WeightQ8>(kind, m, in, 19, rng, true);
        check_case<WeightQ4>(kind, m, in, 3, rng, true);  // int4 levels in the int8 kernels
      }
  for (I64 in : {1, 31, 257}) {  // int4 per-token activations (levels + 128 in uint8)
    INFO("Int4ActPerTokenDynamic in " << in);
    check_case<WeightQ8>(Kind::kTokenInt4, 17, in, 5, rng, true);
  }
}

TEST_CASE("Int8FloatLinear: non-finite rows", "[int8][float_linear]") {
  const I64 in = 4, out = 2;
  const V w = {1, 2, 3, 4, -1, 0.5f, 0, 2}, b = {0.25f, -1};
  WeightQ8 wq;
  fake_quant_weights(wq, w, out, in);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const V x = {1, -2, 0.5f, 3, nan, 1, 1, 1, 0.1f, 0.2f, 0.3f, 0.4f};
  SECTION("per token: the row of a NaN is NaN, the other rows are untouched") {
    const auto l =
        fq::Int8FloatLinear::from_quantizers(fq::Int8ActPerTokenDynamic{}, w, out, in, wq, b);
    V y(6), y2(4);
    l.forward(x.data(), 3, y.data());
    CHECK(!std::isnan(y[0]));
    CHECK(std::isnan(y[2]));
    CHECK(std::isnan(y[3]));
    V x2(x.begin(), x.begin() + 4);
    x2.insert(x2.end(), x.begin() + 8, x.end());
    l.forward(x2.data(), 2, y2.data());
    CHECK(fq_test::bits_of(y[0]) == fq_test::bits_of(y2[0]));
    CHECK(fq_test::bits_of(y[5]) == fq_test::bits_of(y2[3]));
  }
  SECTION("static: NaN gets the fake quantizer's level (quant_min): a finite output") {
    StaticI8 iq;
    iq.set_qparams(0.05f, 3);
    const auto l = fq::Int8FloatLinear::from_quantizers(iq, w, out, in, wq, b);
    V y(6);
    l.forward(x.data(), 3, y.data());
    for (float v : y) CHECK(std::isfinite(v));
    // NaN -> level -128: (-128 - 3) * 0.05 contributes like that value.
    V xr = x;
    xr[4] = (-128.0f - 3.0f) * 0.05f;
    V yr(6);
    l.forward(xr.data(), 3, yr.data());
    CHECK(fq_test::bits_of(y[2]) == fq_test::bits_of(yr[2]));
  }
}

TEST_CASE("Int8FloatLinear: a static layer is Int8Linear's float output, bit for bit",
          "[int8][float_linear]") {
  std::mt19937 rng(17);
  for (I64 in : {5, 64, 200}) {
    const I64 m = 13, out = 21;
    const V x = make_x(m, in, rng, true), w = make_w(out, in, rng);
    V b(sz(out));
    for (auto& v : b) v = 0.01f * static_cast<float>(static_cast<int>(rng() % 201) - 100);
    WeightQ8 wq;
    fake_quant_weights(wq, w, out, in);
    StaticI8 iq;
    iq.set_qparams(0.021f, -7);
    const auto l = fq::Int8FloatLinear::from_quantizers(iq, w, out, in, wq, b);
    V y(sz(m * out)), y8(y.size());
    l.forward(x.data(), m, y.data());
    const fq::Int8Linear ref(
        fq::detail::make_int8_params(w.data(), out, in, b, wq, fq::act_qparams(iq), nullptr,
                                     fq::Activation::kNone, "test"),
        in);
    std::vector<std::uint8_t> xq(x.size());
    fq::quantize_per_tensor(fq::TensorView<const float>(x.data(), {m, in}),
                            fq::TensorView<std::uint8_t>(xq.data(), {m, in}), 0.021f, -7 + 128,
                            fq::QuantRange{0, 255});
    ref.run(xq.data(), m, y8.data());
    CHECK(fq_test::first_bit_mismatch(y, y8) == -1);
    // The weight quantizer as a bare FakeQuantizer: the same layer.
    const auto l2 = fq::Int8FloatLinear::from_quantizers(iq, w, out, in, wq.quantizer(), b);
    V y2(y.size());
    l2.forward(x.data(), m, y2.data());
    CHECK(fq_test::first_bit_mismatch(y, y2) == -1);
    CHECK(l.input_qparams().zero_point == 121);
    CHECK(l.input_level_range().quant_min == 0);
    CHECK(l.input_level_range().quant_max == 255);
  }
}

TEST_CASE("Int8FloatLinear: in place (y = x) and m = 0", "[int8][float_linear]") {
  std::mt19937 rng(18);
  const I64 m = 7, n = 24;
  V x = make_x(m, n, rng, false);
  const V w = make_w(n, n, rng);
  WeightQ8 wq;
  fake_quant_weights(wq, w, n, n);
  const auto l = fq::Int8FloatLinear::from_quantizers(fq::Int8ActPerTokenDynamic{}, w, n, n, wq);
  V y(x.size());
  l.forward(x.data(), m, y.data());
  l.forward(x.data(), m, x.data());
  CHECK(fq_test::first_bit_mismatch(x, y) == -1);
  l.forward(nullptr, 0, nullptr);  // nothing to do
  CHECK(l.bias() == V(sz(n), 0.0f));
  CHECK(l.per_token());
  // Fewer outputs than inputs: in place too (row i of y lies within rows <= i of x).
  const V w2 = make_w(n / 2, n, rng);
  WeightQ8 wq2;
  fake_quant_weights(wq2, w2, n / 2, n);
  const auto l2 = fq::Int8FloatLinear::from_quantizers(fq::Int8ActPerTokenSymmetricDynamic{}, w2,
                                                       n / 2, n, wq2);
  V x2 = make_x(m, n, rng, false), y2(sz(m * n / 2));
  l2.forward(x2.data(), m, y2.data());
  l2.forward(x2.data(), m, x2.data());
  CHECK(fq_test::first_bit_mismatch(V(x2.begin(), x2.begin() + m * n / 2), y2) == -1);
}

TEST_CASE("Int8FloatLinear: many rows run in chunks, each row as on its own",
          "[int8][float_linear]") {
  std::mt19937 rng(20);
  const I64 m = 600, in = 8, out = 4096;  // 256 rows of 4096 accumulators per chunk
  const V x = make_x(m, in, rng, true), w = make_w(out, in, rng);
  WeightQ8 wq;
  fake_quant_weights(wq, w, out, in);
  StaticU8 siq;
  siq.quantizer().set_qparams(0.01f, 100);
  auto check = [&](const fq::Int8FloatLinear& l) {
    V y(sz(m * out)), yr(sz(out)), ys(y.size());
    l.forward(x.data(), m, y.data());
    l.forward(x.data(), m, ys.data(), fq::Isa::kScalar);
    CHECK(std::memcmp(y.data(), ys.data(), y.size() * sizeof(float)) == 0);
    bool same = true;
    for (I64 i = 0; i < m; ++i) {
      l.forward(x.data() + i * in, 1, yr.data());
      same = same && std::memcmp(yr.data(), y.data() + i * out, yr.size() * sizeof(float)) == 0;
    }
    CHECK(same);
  };
  check(fq::Int8FloatLinear::from_quantizers(siq, w, out, in, wq));
  check(fq::Int8FloatLinear::from_quantizers(fq::Int8ActPerTokenDynamicLegacy{}, w, out, in, wq));
}

TEST_CASE("Int8FloatLinear: bad input is refused with its ErrorCode", "[int8][float_linear]") {
  const I64 in = 8, out = 3;
  std::mt19937 rng(19);
  const V w = make_w(out, in, rng), b(sz(out), 0.5f);
  WeightQ8 wq;
  fake_quant_weights(wq, w, out, in);
  StaticI8 iq;
  iq.set_qparams(0.1f, 0);
  const fq::Int8ActPerTokenDynamic tq;
  auto make = [&](const auto& q, const V& ww, I64 o, I64 i, const auto& wqq, const V& bb) {
    return [=] { fq::Int8FloatLinear::from_quantizers(q, ww, o, i, wqq, bb); };
  };
  SECTION("uncalibrated quantizers: kInvalidState, naming which") {
    const StaticU8 raw_in;
    CHECK(error_code_of(make(raw_in, w, out, in, wq, b)) == ErrorCode::kInvalidState);
    CHECK(fq_test::error_message_of(make(raw_in, w, out, in, wq, b)).find("input") !=
          std::string::npos);
    const StaticI8 raw_in2;
    CHECK(error_code_of(make(raw_in2, w, out, in, wq, b)) == ErrorCode::kInvalidState);
    const WeightQ8 raw_w;
    CHECK(error_code_of(make(tq, w, out, in, raw_w, b)) == ErrorCode::kInvalidState);
    CHECK(fq_test::error_message_of(make(tq, w, out, in, raw_w, b)).find("weight") !=
          std::string::npos);
  }
  SECTION("a frozen per-token quantizer: kInvalidState") {
    fq::Int8ActPerTokenDynamic frozen;
    V x(16, 1.0f), y(16);
    frozen.forward(fq::TensorView<const float>(x.data(), {2, 8}),
                   fq::TensorView<float>(y.data(), {2, 8}));
    frozen.freeze();
    CHECK(error_code_of(make(frozen, w, out, in, wq, b)) == ErrorCode::kInvalidState);
  }
  SECTION("K above kMaxGemmK: kInvalidArgument") {
    const I64 k = fq::kMaxGemmK + 1;
    const V wk(sz(k), 0.25f);
    WeightQ8 wqk;
    fake_quant_weights(wqk, wk, 1, k);
    CHECK(error_code_of(make(tq, wk, 1, k, wqk, V{})) == ErrorCode::kInvalidArgument);
    CHECK(error_code_of(make(iq, wk, 1, k, wqk, V{})) == ErrorCode::kInvalidArgument);
  }
  SECTION("shape mismatches: kShapeMismatch") {
    CHECK(error_code_of(make(iq, w, out, in + 1, wq, b)) == ErrorCode::kShapeMismatch);
    CHECK(error_code_of(make(iq, w, out, 0, wq, b)) == ErrorCode::kShapeMismatch);
    CHECK(error_code_of(make(iq, V{}, 0, in, wq, b)) == ErrorCode::kShapeMismatch);
    CHECK(error_code_of(make(iq, w, out, in, wq, V(2, 0.0f))) == ErrorCode::kShapeMismatch);
    const auto l = fq::Int8FloatLinear::from_quantizers(iq, w, out, in, wq, b);
    V x(sz(2 * in)), y(sz(2 * out));
    CHECK(error_code_of([&] { l.forward(x.data(), -1, y.data()); }) == ErrorCode::kShapeMismatch);
    CHECK(error_code_of([&] {
            l.forward(fq::TensorView<const float>(x.data(), {2, in}),
                      fq::TensorView<float>(y.data(), {1, 2 * out}));
          }) == ErrorCode::kShapeMismatch);
    CHECK(error_code_of([&] {
            l.forward(fq::TensorView<const float>(x.data(), {in, 2}),
                      fq::TensorView<float>(y.data(), {in, out}));
          }) == ErrorCode::kShapeMismatch);
    CHECK(error_code_of([&] { l.forward(nullptr, 2, y.data()); }) == ErrorCode::kInvalidArgument);
    // Overlaps: y = x with more outputs than inputs, or a shifted y.
    const V w4 = make_w(in + 1, in, rng);
    WeightQ8 wq4;
    fake_quant_weights(wq4, w4, in + 1, in);
    const auto l4 = fq::Int8FloatLinear::from_quantizers(iq, w4, in + 1, in, wq4);
    V buf(sz(4 * (in + 1)));
    CHECK(error_code_of([&] { l4.forward(buf.data(), 2, buf.data()); }) ==
          ErrorCode::kInvalidLayout);
    const auto l5 = fq::Int8FloatLinear::from_quantizers(iq, w, out, in, wq);
    CHECK(error_code_of([&] { l5.forward(buf.data(), 2, buf.data() + 1); }) ==
          ErrorCode::kInvalidLayout);
    CHECK(error_code_of([&] { l.forward(x.data(), 2, y.data(), fq::Isa::kScalar); }) ==
          ErrorCode{});
  }
  SECTION("a weight quantizer of another channel count: kParamCountMismatch") {
    const V w2 = make_w(out + 1, in, rng);
    WeightQ8 wq2;
    fake_quant_weights(wq2, w2, out + 1, in);
    CHECK(error_code_of(make(iq, w, out, in, wq2, b)) == ErrorCode::kParamCountMismatch);
  }
  SECTION("an input range wider than 8 bits: kInvalidRange") {
    fq::FakeQuantizer<fq::RuntimeActPerTensorAffine> wide(1, fq::QuantRange{0, 1023});
    wide.set_qparams(0.01f, 5);
    CHECK(error_code_of(make(wide, w, out, in, wq, b)) == ErrorCode::kInvalidRange);
  }
}
