// SPDX-License-Identifier: MIT
// The int8 GEMM: every path this CPU runs (scalar, AVX2, AVX-512 VNNI, AMX-INT8) equals a
// naive int64 reference bit for bit, for u8 and s8 activations with zero points, odd M/N/K, K
// not a multiple of 4 or 64, extreme values, and the int32 accumulator bound on K. The AMX
// kernel also runs on emulated tiles on every machine (gemm_amx.test.cpp).
#include <cstdint>
#include <random>
#include <type_traits>
#include <vector>

#include <fakequant/kernels/gemm.hpp>

#include "catch.hpp"
#include "kernels/gemm_test_util.hpp"

namespace {

using fq_kernels_test::naive_gemm;
using fq_kernels_test::random_bytes;

template <class A>
void run_gemm(const A* a, std::int64_t m, std::int64_t lda, const fq::PackedWeights& w,
              std::int32_t* c, std::int64_t ldc, std::int32_t za, fq::Isa isa) {
  if constexpr (std::is_same<A, std::uint8_t>::value)
    fq::gemm_u8s8s32(a, m, lda, w, c, ldc, za, isa);
  else
    fq::gemm_s8s8s32(a, m, lda, w, c, ldc, za, isa);
}

template <class A>
void check_shape(std::int64_t m, std::int64_t n, std::int64_t k, std::uint32_t seed, bool extreme) {
  std::mt19937 rng(seed);
  const std::int64_t lda = k + static_cast<std::int64_t>(seed % 3);
  const auto a = random_bytes<A>(static_cast<std::size_t>(m * lda), rng, extreme);
  const auto w = random_bytes<std::int8_t>(static_cast<std::size_t>(n * k), rng, extreme);
  std::uniform_int_distribution<int> zd(std::numeric_limits<A>::min(),
                                        std::numeric_limits<A>::max());
  const std::int32_t za = extreme ? 0 : zd(rng);
  const fq::PackedWeights pw(w.data(), n, k, k);
  const auto ref = naive_gemm(a, m, lda, w, n, k, za);
  for (fq::Isa isa : fq::supported_isas()) {
    const std::int64_t ldc = n + 1;
    std::vector<std::int32_t> c(static_cast<std::size_t>(m * ldc + 1), 0x5A5A5A5A);
    run_gemm(a.data(), m, lda, pw, c.data(), ldc, za, isa);
    std::int64_t bad = -1;
    for (std::int64_t i = 0; i < m && bad < 0; ++i)
      for (std::int64_t j = 0; j < n; ++j)
        if (c[static_cast<std::size_t>(i * ldc + j)] != ref[static_cast<std::size_t>(i * n + j)]) {
          bad = i * n + j;
          break;
        }
    INFO("isa " << fq::to_string(isa) << " M " << m << " N " << n << " K " << k << " za " << za
                << " first mismatch " << bad);
    REQUIRE(bad == -1);
    // The padding column of each row is untouched.
    for (std::int64_t i = 0; i < m; ++i)
      REQUIRE(c[static_cast<std::size_t>(i * ldc + n)] == 0x5A5A5A5A);
  }
}

}  // namespace

TEST_CASE("gemm: every ISA equals the naive reference on random shapes", "[kernels][bit_exact]") {
  std::mt19937 rng(7);
  std::uniform_int_distribution<std::int64_t> dm(1, 23), dn(1, 150), dk(1, 300);
  for (std::uint32_t t = 0; t < 40; ++t) {
    const std::int64_t m = dm(rng), n = dn(rng), k = dk(rng);
    check_shape<std::uint8_t>(m, n, k, t, t % 5 == 0);
    check_shape<std::int8_t>(m, n, k, t + 1000, t % 5 == 1);
  }
}

TEST_CASE("gemm: edge shapes and K blocks", "[kernels][bit_exact]") {
  for (std::int64_t k : {1, 2, 3, 4, 5, 63, 64, 65, 2047, 2049})
    check_shape<std::uint8_t>(7, 17, k, 3, false);
  check_shape<std::uint8_t>(13, 70, 2300, 5, true);  // crosses a K block (512 groups)
  check_shape<std::int8_t>(13, 70, 2300, 6, false);
  check_shape<std::uint8_t>(100, 129, 40, 8, false);  // crosses the M block of 96 rows
  check_shape<std::uint8_t>(3, 5, 0, 9, false);       // K = 0 gives zeros
}

TEST_CASE("gemm: the int32 accumulator bound on K", "[kernels][bit_exact]") {
  STATIC_REQUIRE(fq::kMaxGemmK * 255 * 128 < (std::int64_t{1} << 31));
  STATIC_REQUIRE((fq::kMaxGemmK + 1) * 255 * 128 >= (std::int64_t{1} << 31));
  const std::int64_t k = fq::kMaxGemmK;
  for (fq::Isa isa : fq::supported_isas()) {
    INFO(fq::to_string(isa));
    fq_kernels_test::check_accumulator_bound(
        [isa, k](const auto* a, const fq::PackedWeights& pw, std::int32_t* c, std::int32_t za) {
          if constexpr (std::is_same<decltype(a), const std::uint8_t*>::value)
            fq::gemm_u8s8s32(a, 1, k, pw, c, 2, za, isa);
          else
            fq::gemm_s8s8s32(a, 1, k, pw, c, 2, za, isa);
        });
  }
  // K above the bound is refused when packing (before the column sums could overflow).
  std::vector<std::int8_t> w2(static_cast<std::size_t>(k + 1), 1);
  REQUIRE_THROWS_WITH(fq::PackedWeights(w2.data(), 1, k + 1, k + 1),
                      Catch::Contains("exceeds 65793"));
}

TEST_CASE("gemm: bad arguments are reported", "[kernels]") {
  std::vector<std::int8_t> w(12, 1);
  const fq::PackedWeights pw(w.data(), 3, 4, 4);
  std::vector<std::uint8_t> a(8, 1);
  std::vector<std::int32_t> c(6);
  REQUIRE_THROWS_AS(fq::gemm_u8s8s32(a.data(), 2, 3, pw, c.data(), 3), fq::Error);  // lda < K
  REQUIRE_THROWS_AS(fq::gemm_u8s8s32(a.data(), 2, 4, pw, c.data(), 2), fq::Error);  // ldc < N
  REQUIRE_THROWS_AS(fq::gemm_u8s8s32(a.data(), 2, 4, pw, c.data(), 3, 256), fq::Error);
  REQUIRE_THROWS_AS(
      fq::gemm_s8s8s32(reinterpret_cast<const std::int8_t*>(a.data()), 2, 4, pw, c.data(), 3, -129),
      fq::Error);
  REQUIRE_THROWS_AS(fq::PackedWeights(w.data(), 3, 4, 3), fq::Error);
  fq::gemm_u8s8s32(a.data(), 0, 4, pw, c.data(), 3);  // M = 0: no-op
  // The packed layout reads back the weights.
  for (std::int64_t n = 0; n < 3; ++n)
    for (std::int64_t k = 0; k < 4; ++k) REQUIRE(pw.at(n, k) == 1);
  REQUIRE(pw.col_sums()[2] == 4);
}

TEST_CASE("gemm: dispatch picks a supported ISA", "[kernels]") {
  const fq::Isa best = fq::detect_isa();
  REQUIRE(fq::isa_supported(best));
  REQUIRE(fq::supported_isas().back() == best);
  INFO("detected " << fq::to_string(best));
  if (!fq::isa_supported(fq::Isa::kAvx512Vnni)) {
    std::vector<std::int8_t> w(4, 1);
    const fq::PackedWeights pw(w.data(), 1, 4, 4);
    std::uint8_t a[4] = {1, 2, 3, 4};
    std::int32_t c = 0;
    REQUIRE_THROWS_AS(fq::gemm_u8s8s32(a, 1, 4, pw, &c, 1, 0, fq::Isa::kAvx512Vnni), fq::Error);
  }
}
