// SPDX-License-Identifier: MIT
// The AMX-INT8 GEMM (kernels/gemm_amx.hpp). Its kernel is one template over a tile backend:
//   - on every machine it runs on the emulated tiles (AmxEmulatedTiles, the architectural
//     semantics in plain C++) and must equal a naive int64 reference bit for bit on the shapes
//     of gemm.test.cpp and gemm_requant.test.cpp: odd M/N/K, K % 4 != 0, K % 64 != 0, M < 16,
//     N < 16, lda > K, ldc > N, u8 and s8 activations with zero points, extreme values, the
//     K bound; the activations sit in buffers of exactly their extent, so an over-read past
//     the user's A is caught by ASan;
//   - the emulator itself is checked against hand-computed tile products and faults where the
//     hardware faults;
//   - the hardware backend runs the same shapes only when isa_supported(Isa::kAmx); otherwise
//     the test prints "skipped, missing tool: ..." (ctest reports it skipped) after checking
//     that the CPU really lacks AMX-INT8 or the OS refused the tile state.
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include <fakequant/kernels/gemm_amx.hpp>
#include <fakequant/kernels/gemm_requant.hpp>

#include "catch.hpp"
#include "kernels/gemm_test_util.hpp"

namespace {

using fq_kernels_test::naive_gemm;
using fq_kernels_test::random_bytes;

using fq::detail::AmxEmulatedTiles;
using fq::detail::AmxTileConfig;

struct Shape {
  std::int64_t m, n, k;
  bool extreme;
};

// The shapes of gemm.test.cpp (random and edge) and gemm_requant.test.cpp, kept small enough
// for the emulator; plus block edges of the AMX kernel (16 / 32 rows and columns).
std::vector<Shape> shapes() {
  std::vector<Shape> s;
  std::mt19937 rng(7);
  std::uniform_int_distribution<std::int64_t> dm(1, 23), dn(1, 150), dk(1, 300);
  for (std::uint32_t t = 0; t < 40; ++t) {
    const std::int64_t m = dm(rng), n = dn(rng), k = dk(rng);
    s.push_back({m, n, k, t % 5 == 0});
  }
  for (std::int64_t k : {1, 2, 3, 4, 5, 63, 64, 65, 2047, 2049}) s.push_back({7, 17, k, false});
  s.push_back({13, 70, 2300, true});
  s.push_back({100, 129, 40, false});
  s.push_back({101, 21, 37, false});  // gemm_requant.test.cpp
  for (std::int64_t m : {15, 16, 17, 31, 32, 33})
    for (std::int64_t n : {15, 16, 17, 32, 33}) s.push_back({m, n, 67, false});
  return s;
}

// `run(a, m, lda, pw, c, ldc, za)` computes C on the path under test.
template <class A, class Run>
void check_shape(const Shape& sh, std::uint32_t seed, Run run) {
  std::mt19937 rng(seed);
  const std::int64_t m = sh.m, n = sh.n, k = sh.k;
  const std::int64_t lda = k + static_cast<std::int64_t>(seed % 3), ldc = n + 1 + seed % 2;
  // Exactly the extent (m - 1) * lda + k: no slack after the last row.
  const auto a = random_bytes<A>(static_cast<std::size_t>((m - 1) * lda + k), rng, sh.extreme);
  const auto w = random_bytes<std::int8_t>(static_cast<std::size_t>(n * k), rng, sh.extreme);
  std::uniform_int_distribution<int> zd(std::numeric_limits<A>::min(),
                                        std::numeric_limits<A>::max());
  const std::int32_t za = sh.extreme ? 0 : zd(rng);
  const fq::PackedWeights pw(w.data(), n, k, k);
  const auto ref = naive_gemm(a, m, lda, w, n, k, za);
  std::vector<std::int32_t> c(static_cast<std::size_t>((m - 1) * ldc + n + 1), 0x5A5A5A5A);
  run(a.data(), m, lda, pw, c.data(), ldc, za);
  std::int64_t bad = -1;
  for (std::int64_t i = 0; i < m && bad < 0; ++i)
    for (std::int64_t j = 0; j < ldc && i * ldc + j < std::int64_t(c.size()); ++j) {
      const std::int32_t want = j < n ? ref[static_cast<std::size_t>(i * n + j)] : 0x5A5A5A5A;
      if (c[static_cast<std::size_t>(i * ldc + j)] != want) {
        bad = i * ldc + j;
        break;
      }
    }
  INFO("M " << m << " N " << n << " K " << k << " lda " << lda << " ldc " << ldc << " za " << za
            << (sizeof(A) == 1 && std::is_signed<A>::value ? " s8" : " u8") << " first mismatch at "
            << bad);
  REQUIRE(bad == -1);
}

// The emulated AMX kernel with the compensation of gemm.hpp.
template <class A>
void run_emulated(const A* a, std::int64_t m, std::int64_t lda, const fq::PackedWeights& w,
                  std::int32_t* c, std::int64_t ldc, std::int32_t za) {
  constexpr bool kFlip = std::is_signed<A>::value;
  AmxEmulatedTiles t;
  fq::detail::gemm_raw_amx_with<kFlip>(t, reinterpret_cast<const std::uint8_t*>(a), m, lda, w, c,
                                       ldc);
  fq::detail::gemm_compensate<fq::ScalarArch>(c, m, ldc, w, za + (kFlip ? 128 : 0));
}

// The public entry points forced onto the AMX hardware.
template <class A>
void run_hardware(const A* a, std::int64_t m, std::int64_t lda, const fq::PackedWeights& w,
                  std::int32_t* c, std::int64_t ldc, std::int32_t za) {
  if constexpr (std::is_signed<A>::value)
    fq::gemm_s8s8s32(a, m, lda, w, c, ldc, za, fq::Isa::kAmx);
  else
    fq::gemm_u8s8s32(a, m, lda, w, c, ldc, za, fq::Isa::kAmx);
}

AmxTileConfig config_of(std::initializer_list<std::array<int, 3>> tiles) {  // {tile, rows, colsb}
  AmxTileConfig cfg;
  for (const auto& t : tiles) {
    cfg.rows[t[0]] = static_cast<std::uint8_t>(t[1]);
    cfg.colsb[t[0]] = static_cast<std::uint16_t>(t[2]);
  }
  return cfg;
}

}  // namespace

TEST_CASE("gemm AMX (emulated tiles): tile products and faults", "[kernels][amx]") {
  AmxEmulatedTiles t;
  // C 2 x 3 int32 (colsb 12), A 2 x 8 bytes (K = 8), B 2 x 12 bytes (K/4 = 2 rows).
  t.load_config(config_of({{0, 2, 12}, {4, 2, 8}, {6, 2, 12}}));
  const std::uint8_t a[2][8] = {{255, 255, 255, 255, 1, 2, 3, 4}, {128, 0, 0, 0, 0, 0, 0, 200}};
  std::int8_t b[2][12];
  for (int r = 0; r < 2; ++r)
    for (int x = 0; x < 12; ++x) b[r][x] = static_cast<std::int8_t>(x * 23 - 128 + 50 * r);
  t.load<4>(a, 8);
  t.load<6>(b, 12);
  t.zero<0>();
  t.dpbusd<0, 4, 6>();
  std::int32_t c[2][3];
  t.store<0>(c, 12);
  for (int m = 0; m < 2; ++m)
    for (int n = 0; n < 3; ++n) {
      std::int32_t want = 0;
      for (int kk = 0; kk < 8; ++kk) want += a[m][kk] * b[kk / 4][4 * n + kk % 4];
      CHECK(c[m][n] == want);
    }
  // tdpbssd reads A as int8: 255 is -1, 128 is -128, 200 is -56.
  t.zero<0>();
  t.dpbssd<0, 4, 6>();
  t.store<0>(c, 12);
  for (int m = 0; m < 2; ++m)
    for (int n = 0; n < 3; ++n) {
      std::int32_t want = 0;
      for (int kk = 0; kk < 8; ++kk)
        want += static_cast<std::int8_t>(a[m][kk]) * b[kk / 4][4 * n + kk % 4];
      CHECK(c[m][n] == want);
    }
  // A load reads rows x colsb bytes only; the rest of the tile is zero.
  CHECK(t.row(4, 2)[0] == 0);
  CHECK(t.row(4, 0)[8] == 0);
  // Faults: an unconfigured tile, disagreeing shapes, a bad configuration, after release.
  CHECK_THROWS_WITH(t.zero<1>(), Catch::Contains("not configured"));
  t.load_config(config_of({{0, 2, 12}, {4, 2, 8}, {6, 3, 12}}));  // B rows != A colsb / 4
  CHECK_THROWS_WITH((t.dpbusd<0, 4, 6>()), Catch::Contains("operand shapes disagree"));
  t.load_config(config_of({{0, 2, 12}, {4, 3, 8}, {6, 2, 12}}));  // C rows != A rows
  CHECK_THROWS_WITH((t.dpbusd<0, 4, 6>()), Catch::Contains("operand shapes disagree"));
  t.load_config(config_of({{0, 2, 8}, {4, 2, 8}, {6, 2, 12}}));  // C colsb != B colsb
  CHECK_THROWS_WITH((t.dpbusd<0, 4, 6>()), Catch::Contains("operand shapes disagree"));
  CHECK_THROWS_WITH(t.load_config(config_of({{0, 17, 64}})), Catch::Contains("#GP"));
  CHECK_THROWS_WITH(t.load_config(config_of({{0, 1, 65}})), Catch::Contains("#GP"));
  CHECK_THROWS_WITH(t.load_config(config_of({{0, 1, 0}})), Catch::Contains("#GP"));
  AmxTileConfig p0 = config_of({{0, 1, 4}});
  p0.palette_id = 0;
  CHECK_THROWS_WITH(t.load_config(p0), Catch::Contains("#GP"));
  t.load_config(config_of({{0, 1, 4}}));
  t.release();
  CHECK_THROWS_WITH(t.zero<0>(), Catch::Contains("not configured"));
  // int32 wrap-around, as the hardware: 2^31 - 1 + 255 * 127 * 4 wraps.
  t.load_config(config_of({{0, 1, 4}, {4, 1, 4}, {6, 1, 4}}));
  const std::int32_t big = std::numeric_limits<std::int32_t>::max();
  const std::uint8_t a1[4] = {255, 255, 255, 255};
  const std::int8_t b1[4] = {127, 127, 127, 127};
  t.load<0>(&big, 4);
  t.load<4>(a1, 4);
  t.load<6>(b1, 4);
  t.dpbusd<0, 4, 6>();
  std::int32_t out = 0;
  t.store<0>(&out, 4);
  CHECK(out == static_cast<std::int32_t>(std::uint32_t(big) + 255u * 127u * 4u));
}

TEST_CASE("gemm AMX (emulated tiles): equals the naive reference", "[kernels][amx][bit_exact]") {
  std::uint32_t seed = 0;
  for (const Shape& sh : shapes()) {
    check_shape<std::uint8_t>(sh, seed++, run_emulated<std::uint8_t>);
    check_shape<std::int8_t>(sh, seed++, run_emulated<std::int8_t>);
  }
}

TEST_CASE("gemm AMX (emulated tiles): the int32 accumulator bound on K", "[kernels][amx]") {
  fq_kernels_test::check_accumulator_bound(
      [](const auto* a, const fq::PackedWeights& pw, std::int32_t* c, std::int32_t za) {
        run_emulated(a, 1, fq::kMaxGemmK, pw, c, 2, za);
      });
}

TEST_CASE("gemm AMX (hardware tiles): equals the naive reference", "[kernels][amx][bit_exact]") {
  if (!fq::isa_supported(fq::Isa::kAmx)) {
    // A skip must not hide a detection failure: a CPU with AMX-INT8 and AVX-512 VNNI whose
    // OS grants the tile state has to be detected.
    const bool cpu = fq::detail::cpu_has_amx_int8();
    const bool os = cpu && fq::detail::os_grants_amx_tiles();
    REQUIRE_FALSE((cpu && os && fq::isa_supported(fq::Isa::kAvx512Vnni)));
    std::vector<std::int8_t> w(4, 1);
    const fq::PackedWeights pw(w.data(), 1, 4, 4);
    std::uint8_t a[4] = {1, 2, 3, 4};
    std::int32_t c = 0;
    REQUIRE_THROWS_WITH(fq::gemm_u8s8s32(a, 1, 4, pw, &c, 1, 0, fq::Isa::kAmx),
                        Catch::Contains("does not support amx"));
    WARN("skipped, missing tool: an AMX-INT8 CPU whose OS grants the tile state ("
         << (cpu ? "the OS refused ARCH_REQ_XCOMP_PERM or AVX-512 VNNI is missing"
                 : "CPUID leaf 7 reports no AMX-TILE/AMX-INT8")
         << "); the AMX kernel was tested on the emulated tiles only");
    return;
  }
  REQUIRE(fq::detect_isa() == fq::Isa::kAmx);
  std::uint32_t seed = 0;
  for (const Shape& sh : shapes()) {
    check_shape<std::uint8_t>(sh, seed++, run_hardware<std::uint8_t>);
    check_shape<std::int8_t>(sh, seed++, run_hardware<std::int8_t>);
  }
  // The K bound on the hardware.
  const std::int64_t k = fq::kMaxGemmK;
  std::vector<std::uint8_t> a(static_cast<std::size_t>(k), 255);
  std::vector<std::int8_t> w(static_cast<std::size_t>(2 * k), -128);
  for (std::int64_t i = 0; i < k; ++i) w[static_cast<std::size_t>(k + i)] = 127;
  const fq::PackedWeights pw(w.data(), 2, k, k);
  std::int32_t c[2];
  fq::gemm_u8s8s32(a.data(), 1, k, pw, c, 2, 0, fq::Isa::kAmx);
  CHECK(c[0] == -k * 255 * 128);
  CHECK(c[1] == k * 255 * 127);
}
