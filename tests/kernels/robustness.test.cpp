// SPDX-License-Identifier: MIT
// Bad input to the int8 kernels gets a clear fq::Error (never undefined behaviour or a silently
// wrong result), and zero sizes are well defined on every ISA:
//   - size arithmetic that would overflow (extents, strides, padding, batch counts): kOutOfMemory;
//   - outputs that overlap themselves or their input: kInvalidLayout;
//   - requantization multipliers outside multiplier >= 0, shift in [-31, 31], null arrays:
//     kInvalidArgument, at the public entry points;
//   - M, N or K = 0: nothing written, or C = 0 / the pipeline applied to 0 (A not read).
#include <cstdint>
#include <limits>
#include <vector>

#include <fakequant/kernels/conv2d.hpp>
#include <fakequant/kernels/dequantize.hpp>
#include <fakequant/kernels/gemm.hpp>
#include <fakequant/kernels/gemm_requant.hpp>
#include <fakequant/kernels/linear.hpp>
#include <fakequant/kernels/quantize.hpp>

#include "catch.hpp"
#include "test_util.hpp"

using fq::ErrorCode;
using fq_test::error_code_of;

namespace {
constexpr std::int64_t kHuge = std::int64_t{1} << 62;

/// The standard requantizing pipeline with per-channel multipliers `m` and biases `b`.
auto pipeline(const std::vector<fq::QuantizedMultiplier>& m, const std::vector<std::int32_t>& b) {
  return fq::make_output_pipeline(fq::BiasAdd{b.data()},
                                  fq::Requantize<fq::SingleRounding<>>{m.data(), true},
                                  fq::AddZeroPoint{3}, fq::Clamp{0, 255});
}
}  // namespace

TEST_CASE("gemm: zero sizes are well defined on every path", "[kernels][bit_exact]") {
  std::vector<std::int8_t> w(15, 1);
  const fq::PackedWeights k0(nullptr, 5, 0, 7);   // K = 0, N = 5
  const fq::PackedWeights n0(w.data(), 0, 3, 3);  // N = 0
  const fq::PackedWeights pw(w.data(), 5, 3, 3);
  for (fq::Isa isa : fq::supported_isas()) {
    INFO("isa " << fq::to_string(isa));
    // K = 0: C = 0, and A (null, with a row stride) is never offset or read.
    std::vector<std::int32_t> c(4 * 6, 77);
    fq::gemm_u8s8s32(nullptr, 4, 7, k0, c.data(), 6, 5, isa);
    for (std::int64_t i = 0; i < 4; ++i)
      for (std::int64_t j = 0; j < 6; ++j)
        CHECK(c[static_cast<std::size_t>(i * 6 + j)] == (j < 5 ? 0 : 77));
    std::fill(c.begin(), c.end(), 77);
    fq::gemm_s8s8s32(nullptr, 4, 7, k0, c.data(), 6, -3, isa);
    CHECK(c[0] == 0);
    CHECK(c[23] == 77);
    // M = 0 and N = 0 write nothing (null pointers are fine then).
    fq::gemm_u8s8s32(nullptr, 0, 3, pw, nullptr, 5, 0, isa);
    std::vector<std::uint8_t> a(12, 9);
    std::fill(c.begin(), c.end(), 77);
    fq::gemm_u8s8s32(a.data(), 4, 3, n0, c.data(), 6, 0, isa);
    for (std::int32_t v : c) CHECK(v == 77);
  }
}

TEST_CASE("gemm_requant: K = 0 gives the pipeline of 0 on every path; M or N = 0 write nothing",
          "[kernels][bit_exact]") {
  const fq::PackedWeights k0(nullptr, 5, 0, 0);
  const std::vector<std::int32_t> bias = {-1000, 0, 7, 100000, 250};
  const std::vector<fq::QuantizedMultiplier> mult(5, fq::quantize_multiplier(0.25));
  const auto pipe = pipeline(mult, bias);
  for (fq::Isa isa : fq::supported_isas()) {
    INFO("isa " << fq::to_string(isa));
    std::vector<std::uint8_t> y(3 * 5, 42);
    fq::gemm_requant(static_cast<const std::uint8_t*>(nullptr), 3, 9, k0, 4, pipe,
                     fq::GemmOutput<std::uint8_t>{y.data(), 5, 1, 0}, isa);
    for (std::int64_t i = 0; i < 3; ++i)
      for (std::int64_t j = 0; j < 5; ++j)
        CHECK(int(y[static_cast<std::size_t>(i * 5 + j)]) ==
              int(pipe.apply_to<std::uint8_t>(0, j)));
    // Transposed (a convolution's layout) and int8 activations.
    std::vector<std::int8_t> t(5 * 3, 42);
    fq::gemm_requant(static_cast<const std::int8_t*>(nullptr), 3, 9, k0, -4, pipe,
                     fq::GemmOutput<std::int8_t>{t.data(), 1, 3, 0}, isa);
    CHECK(int(t[3 * 3]) == int(pipe.apply_to<std::int8_t>(0, 3)));
    // M = 0 with a null output, N = 0 writing nothing.
    fq::gemm_requant(static_cast<const std::uint8_t*>(nullptr), 0, 9, k0, 4, pipe,
                     fq::GemmOutput<std::uint8_t>{nullptr, 5, 1, 0}, isa);
    std::vector<std::int8_t> w(6, 1);
    const fq::PackedWeights n0(w.data(), 0, 6, 6);
    std::vector<std::uint8_t> a(12, 1), z(4, 42);
    fq::gemm_requant(a.data(), 2, 6, n0, 4, pipe, fq::GemmOutput<std::uint8_t>{z.data(), 2, 1, 0},
                     isa);
    for (std::uint8_t v : z) CHECK(v == 42);
  }
}

TEST_CASE("gemm and PackedWeights: extents that overflow are refused", "[kernels]") {
  std::vector<std::int8_t> w(12, 1);
  const fq::PackedWeights pw(w.data(), 3, 4, 4);
  std::vector<std::uint8_t> a(64, 1);
  std::vector<std::int32_t> c(64);
  // (M - 1) * lda and (M - 1) * ldc overflow int64.
  CHECK(error_code_of([&] { fq::gemm_u8s8s32(a.data(), 4, kHuge, pw, c.data(), 3); }) ==
        ErrorCode::kOutOfMemory);
  CHECK(error_code_of([&] { fq::gemm_u8s8s32(a.data(), 4, 4, pw, c.data(), kHuge); }) ==
        ErrorCode::kOutOfMemory);
  CHECK_THROWS_WITH(fq::gemm_u8s8s32(a.data(), 4, kHuge, pw, c.data(), 3),
                    Catch::Contains("gemm_u8s8s32") && Catch::Contains("4611686018427387904"));
  // Packing: K above the bound is refused before any column sum is formed (an int32 sum of
  // 2^25 weights of -128 would overflow), without reading the (too short) weights.
  CHECK(error_code_of([&] { fq::PackedWeights(w.data(), 1, std::int64_t{1} << 25, 1 << 25); }) ==
        ErrorCode::kInvalidArgument);
  CHECK(error_code_of([&] { fq::PackedWeights(w.data(), 3, 4, kHuge); }) ==
        ErrorCode::kOutOfMemory);
  // n read through a volatile: as a constant inlined into the constructor, GCC 12 warns
  // (-Waggressive-loop-optimizations) that the packing loop, which the checks never let run,
  // would overflow c * ldw.
  volatile std::int64_t huge_n = kHuge;
  CHECK(error_code_of([&] { fq::PackedWeights(w.data(), huge_n, 4, 4); }) ==
        ErrorCode::kOutOfMemory);
  CHECK(error_code_of([&] { fq::PackedWeights(nullptr, 3, 4, 4); }) == ErrorCode::kInvalidArgument);
  // Negative sizes.
  CHECK(error_code_of([&] { fq::gemm_u8s8s32(a.data(), -1, 4, pw, c.data(), 3); }) ==
        ErrorCode::kShapeMismatch);
  CHECK(error_code_of([&] { fq::PackedWeights(w.data(), -3, 4, 4); }) == ErrorCode::kShapeMismatch);
}

TEST_CASE("gemm and gemm_requant: outputs that overlap themselves or the activations are refused",
          "[kernels]") {
  std::vector<std::int8_t> w(12, 1);
  const fq::PackedWeights pw(w.data(), 3, 4, 4);
  const std::vector<std::int32_t> bias(3, 0);
  const std::vector<fq::QuantizedMultiplier> mult(3, fq::quantize_multiplier(0.5));
  const auto pipe = pipeline(mult, bias);
  // The int32 output written over the activations.
  std::vector<std::int32_t> buf(64, 0x01010101);
  const auto* a32 = reinterpret_cast<const std::uint8_t*>(buf.data());
  CHECK(error_code_of([&] { fq::gemm_u8s8s32(a32, 2, 4, pw, buf.data() + 1, 3); }) ==
        ErrorCode::kInvalidLayout);
  std::vector<std::uint8_t> a(64, 1), y(64, 0);
  for (fq::Isa isa : fq::supported_isas()) {
    INFO("isa " << fq::to_string(isa));
    auto run = [&](std::uint8_t* out, std::int64_t rs, std::int64_t cs, const std::uint8_t* act) {
      return error_code_of([&] {
        fq::gemm_requant(act, 4, 4, pw, 0, pipe, fq::GemmOutput<std::uint8_t>{out, rs, cs, 0}, isa);
      });
    };
    CHECK(run(y.data(), 3, 0, a.data()) == ErrorCode::kInvalidLayout);      // column stride 0
    CHECK(run(y.data(), 0, 1, a.data()) == ErrorCode::kInvalidLayout);      // row stride 0
    CHECK(run(y.data(), 1, 1, a.data()) == ErrorCode::kInvalidLayout);      // rows interleave
    CHECK(run(y.data(), 2, 1, a.data()) == ErrorCode::kInvalidLayout);      // rows overlap
    CHECK(run(a.data() + 4, 3, 1, a.data()) == ErrorCode::kInvalidLayout);  // over A
    CHECK(run(y.data(), kHuge, 1, a.data()) == ErrorCode::kOutOfMemory);
    CHECK(run(nullptr, 3, 1, a.data()) == ErrorCode::kInvalidArgument);
    CHECK(error_code_of([&] {
            fq::gemm_requant(a.data(), 4, 4, pw, 0, pipe,
                             fq::GemmOutput<std::uint8_t>{y.data(), 3, 1, -1}, isa);
          }) == ErrorCode::kInvalidArgument);  // negative channel offset
    // What is fine: contiguous, transposed, reversed columns.
    CHECK(run(y.data(), 3, 1, a.data()) == ErrorCode{});
    CHECK(run(y.data(), 1, 4, a.data()) == ErrorCode{});
    CHECK(run(y.data() + 2, 3, -1, a.data()) == ErrorCode{});
  }
}

TEST_CASE("requantization: multipliers outside their range are refused at the entry points",
          "[kernels]") {
  std::vector<std::int8_t> w(12, 1);
  const fq::PackedWeights pw(w.data(), 3, 4, 4);
  const std::vector<std::int32_t> bias(3, 0);
  std::vector<std::uint8_t> a(16, 200), y(12);
  const fq::QuantizedMultiplier good = fq::quantize_multiplier(0.5);
  const std::vector<fq::QuantizedMultiplier> bad_ones = {
      {good.multiplier, 32},
      {good.multiplier, -32},
      {good.multiplier, 1000},
      {good.multiplier, std::numeric_limits<int>::min()},
      {-good.multiplier, 0}};
  for (const fq::QuantizedMultiplier bad : bad_ones) {
    INFO("multiplier " << bad.multiplier << " shift " << bad.shift);
    std::vector<fq::QuantizedMultiplier> mult = {good, bad, good};
    for (fq::Isa isa : fq::supported_isas()) {
      INFO("isa " << fq::to_string(isa));
      const fq::GemmOutput<std::uint8_t> out{y.data(), 3, 1, 0};
      CHECK(error_code_of([&] {
              fq::gemm_requant(a.data(), 4, 4, pw, 0, pipeline(mult, bias), out, isa);
            }) == ErrorCode::kInvalidArgument);
      CHECK(error_code_of([&] {
              fq::gemm_requant(a.data(), 4, 4, pw, 0,
                               fq::make_output_pipeline(
                                   fq::Requantize<fq::DoubleRounding>{mult.data() + 1, false},
                                   fq::AddZeroPoint{0}, fq::Clamp{0, 255}),
                               out, isa);
            }) == ErrorCode::kInvalidArgument);
      fq::RequantParams rp;
      rp.multipliers = mult.data();
      rp.multiplier_count = 3;
      CHECK(error_code_of([&] { fq::linear_u8(a.data(), 4, 4, 0, pw, rp, y.data(), 3, isa); }) ==
            ErrorCode::kInvalidArgument);
      CHECK(error_code_of([&] {
              fq::linear_u8<fq::DoubleRounding>(a.data(), 4, 4, 0, pw, rp, y.data(), 3, isa);
            }) == ErrorCode::kInvalidArgument);
      fq::Conv2dShape s;
      s.in_channels = 4;
      s.out_channels = 3;
      const fq::PackedConv2dWeights cw(w.data(), s);
      CHECK(error_code_of([&] { fq::conv2d_u8(a.data(), 0, cw, rp, y.data(), 1, isa); }) ==
            ErrorCode::kInvalidArgument);
    }
  }
  // Null arrays inside a pipeline.
  const std::vector<fq::QuantizedMultiplier> ok(3, good);
  CHECK(error_code_of([&] {
          fq::gemm_requant(
              a.data(), 4, 4, pw, 0,
              fq::make_output_pipeline(fq::BiasAdd{nullptr}, fq::Requantize<>{ok.data(), true},
                                       fq::AddZeroPoint{0}, fq::Clamp{0, 255}),
              fq::GemmOutput<std::uint8_t>{y.data(), 3, 1, 0});
        }) == ErrorCode::kInvalidArgument);
  CHECK(error_code_of([&] {
          fq::gemm_requant(a.data(), 4, 4, pw, 0,
                           fq::make_output_pipeline(fq::Requantize<>{nullptr, false},
                                                    fq::AddZeroPoint{0}, fq::Clamp{0, 255}),
                           fq::GemmOutput<std::uint8_t>{y.data(), 3, 1, 0});
        }) == ErrorCode::kInvalidArgument);
  // The extremes of the range run, and agree on every ISA.
  const std::vector<fq::QuantizedMultiplier> edge = {
      {good.multiplier, 31}, {good.multiplier, -31}, {0, 0}};
  std::vector<std::uint8_t> ref(12);
  fq::gemm_requant(a.data(), 4, 4, pw, 0, pipeline(edge, bias),
                   fq::GemmOutput<std::uint8_t>{ref.data(), 3, 1, 0}, fq::Isa::kScalar);
  CHECK(int(ref[0]) == 255);
  CHECK(int(ref[1]) == 3);  // 800 * 2^-32 rounds to 0, then the zero point
  for (fq::Isa isa : fq::supported_isas()) {
    fq::gemm_requant(a.data(), 4, 4, pw, 0, pipeline(edge, bias),
                     fq::GemmOutput<std::uint8_t>{y.data(), 3, 1, 0}, isa);
    CHECK(y == ref);
  }
}

TEST_CASE("conv2d_u8: geometry that overflows and outputs over the input are refused",
          "[kernels]") {
  std::vector<std::int8_t> w(64, 1);
  fq::Conv2dShape s;
  s.in_channels = 2;
  s.out_channels = 2;
  s.in_h = s.in_w = 4;
  auto code = [&](const fq::Conv2dShape& g) {
    return error_code_of([&] { fq::PackedConv2dWeights(w.data(), g); });
  };
  fq::Conv2dShape g = s;
  g.pad_h = kHuge;  // in_h + 2 * pad_h overflows
  CHECK(code(g) == ErrorCode::kOutOfMemory);
  g = s;
  g.pad_h = g.pad_w = std::int64_t{1} << 32;  // out_h * out_w overflows
  CHECK(code(g) == ErrorCode::kOutOfMemory);
  g = s;
  g.in_channels = g.out_channels = g.groups = std::int64_t{1} << 40;
  g.in_h = g.in_w = std::int64_t{1} << 20;  // the padded image overflows
  CHECK(code(g) == ErrorCode::kOutOfMemory);
  g = s;
  g.kernel_h = g.kernel_w = std::int64_t{1} << 32;
  g.pad_h = g.pad_w = std::int64_t{1} << 31;  // K overflows
  CHECK(code(g) == ErrorCode::kOutOfMemory);
  g = s;
  g.groups = 0;
  CHECK_THROWS_WITH(fq::PackedConv2dWeights(w.data(), g), Catch::Contains("groups 0"));
  // The batch count: images * one image overflows; the output over the input.
  const fq::PackedConv2dWeights pw(w.data(), s);
  const fq::QuantizedMultiplier m = fq::quantize_multiplier(0.01);
  fq::RequantParams rp;
  rp.multipliers = &m;
  std::vector<std::uint8_t> x(2 * 32, 1), y(2 * 32, 0);
  for (fq::Isa isa : fq::supported_isas()) {
    INFO("isa " << fq::to_string(isa));
    CHECK(error_code_of([&] { fq::conv2d_u8(x.data(), 0, pw, rp, y.data(), kHuge, isa); }) ==
          ErrorCode::kOutOfMemory);
    CHECK(error_code_of([&] { fq::conv2d_u8(x.data(), 0, pw, rp, x.data() + 8, 2, isa); }) ==
          ErrorCode::kInvalidLayout);
    fq::conv2d_u8(x.data(), 0, pw, rp, y.data(), 2, isa);  // separate memory: fine
  }
}

TEST_CASE("quantize and dequantize: outputs over the input or over themselves are refused",
          "[kernels]") {
  using fq::TensorView;
  std::vector<float> x(8, 0.25f);
  std::vector<std::int8_t> q(16, 0);
  const fq::QuantRange r{-128, 127};
  // In place: the int8 levels written over the float input they are read from.
  auto* xq = reinterpret_cast<std::int8_t*>(x.data());
  CHECK(error_code_of([&] {
          fq::quantize_per_tensor(TensorView<const float>(x.data(), {8}),
                                  TensorView<std::int8_t>(xq, {8}), 0.1f, 0, r);
        }) == ErrorCode::kInvalidLayout);
  CHECK(error_code_of([&] {
          fq::quantize_per_tensor(TensorView<const float>(x.data(), {8}),
                                  TensorView<std::int8_t>(xq + 28, {8}), 0.1f, 0, r);
        }) == ErrorCode::kInvalidLayout);  // the last float only
  const float s[2] = {0.1f, 0.2f};
  const std::int32_t z[2] = {0, 1};
  CHECK(error_code_of([&] {
          fq::quantize_per_channel(TensorView<const float>(x.data(), {2, 4}),
                                   TensorView<std::int8_t>(xq, {2, 4}), s, z, 2, 0, r);
        }) == ErrorCode::kInvalidLayout);
  // dequantize writing its floats over its own levels.
  std::vector<float> buf(8, 0.0f);
  auto* lv = reinterpret_cast<std::int8_t*>(buf.data());
  CHECK(error_code_of([&] {
          fq::dequantize_per_tensor(TensorView<const std::int8_t>(lv, {8}),
                                    TensorView<float>(buf.data(), {8}), 0.1f, 0);
        }) == ErrorCode::kInvalidLayout);
  // An output that overlaps itself.
  CHECK(error_code_of([&] {
          fq::quantize_per_tensor(TensorView<const float>(x.data(), {2, 4}),
                                  TensorView<std::int8_t>(q.data(), {2, 4}, {1, 1}), 0.1f, 0, r);
        }) == ErrorCode::kInvalidLayout);
  CHECK(error_code_of([&] {
          fq::dequantize_per_tensor(TensorView<const std::int8_t>(q.data(), {2, 4}),
                                    TensorView<float>(buf.data(), {2, 4}, {0, 1}), 0.1f, 0);
        }) == ErrorCode::kInvalidLayout);
  // Separate memory, any non-overlapping layout: fine.
  fq::quantize_per_tensor(TensorView<const float>(x.data(), {2, 4}),
                          TensorView<std::int8_t>(q.data(), {2, 4}, {1, 2}), 0.1f, 0, r);
  CHECK(q[7] == 2);
}
