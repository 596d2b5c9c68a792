// SPDX-License-Identifier: MIT
// tests/kernels/gemm_test_util.hpp: what the int8 GEMM tests share — random (or extreme)
// operands and the naive int64 reference every path must equal bit for bit.
#ifndef FQ_TESTS_KERNELS_GEMM_TEST_UTIL_HPP_
#define FQ_TESTS_KERNELS_GEMM_TEST_UTIL_HPP_

#include <cstddef>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include <fakequant/kernels/packed_weights.hpp>

#include "catch.hpp"

namespace fq_kernels_test {

/// n values of A, uniform over A's range or (extreme) each its minimum or maximum.
template <class A>
std::vector<A> random_bytes(std::size_t n, std::mt19937& rng, bool extreme) {
  std::uniform_int_distribution<int> d(std::numeric_limits<A>::min(),
                                       std::numeric_limits<A>::max());
  std::vector<A> v(n);
  for (auto& x : v)
    x = static_cast<A>(
        extreme ? (d(rng) & 1 ? std::numeric_limits<A>::max() : std::numeric_limits<A>::min())
                : d(rng));
  return v;
}

/// C [m, n] = sum_k (A[i][k] - za) * W[j][k] in int64 (A row stride lda, W [n, k]); each sum
/// must fit int32, as the kernels' K bound promises.
template <class A>
std::vector<std::int32_t> naive_gemm(const std::vector<A>& a, std::int64_t m, std::int64_t lda,
                                     const std::vector<std::int8_t>& w, std::int64_t n,
                                     std::int64_t k, std::int32_t za) {
  std::vector<std::int32_t> c(static_cast<std::size_t>(m * n));
  for (std::int64_t i = 0; i < m; ++i)
    for (std::int64_t j = 0; j < n; ++j) {
      std::int64_t s = 0;
      for (std::int64_t kk = 0; kk < k; ++kk)
        s += (std::int64_t(a[static_cast<std::size_t>(i * lda + kk)]) - za) *
             w[static_cast<std::size_t>(j * k + kk)];
      REQUIRE(s >= std::numeric_limits<std::int32_t>::min());
      REQUIRE(s <= std::numeric_limits<std::int32_t>::max());
      c[static_cast<std::size_t>(i * n + j)] = static_cast<std::int32_t>(s);
    }
  return c;
}

/// The extreme sums at K = fq::kMaxGemmK, through run(a, pw, c, za) computing C [1, 2] = (A [1, K]
/// − za) · Wᵀ for a const std::uint8_t* or const std::int8_t* A: u8 A of 255 with za = 0 and s8
/// A of −128 with za = 127 (a − za = −255), against W rows of −128 and of 127.
template <class Run>
void check_accumulator_bound(Run&& run) {
  const std::int64_t k = fq::kMaxGemmK;
  std::vector<std::uint8_t> a(static_cast<std::size_t>(k), 255);
  std::vector<std::int8_t> as(static_cast<std::size_t>(k), -128);
  std::vector<std::int8_t> w(static_cast<std::size_t>(2 * k), -128);
  for (std::int64_t i = 0; i < k; ++i) w[static_cast<std::size_t>(k + i)] = 127;
  const fq::PackedWeights pw(w.data(), 2, k, k);
  std::int32_t c[2];
  run(static_cast<const std::uint8_t*>(a.data()), pw, c, 0);
  CHECK(c[0] == -k * 255 * 128);
  CHECK(c[1] == k * 255 * 127);
  run(static_cast<const std::int8_t*>(as.data()), pw, c, 127);
  CHECK(c[0] == k * 255 * 128);
  CHECK(c[1] == -k * 255 * 127);
}

}  // namespace fq_kernels_test

#endif  // FQ_TESTS_KERNELS_GEMM_TEST_UTIL_HPP_
