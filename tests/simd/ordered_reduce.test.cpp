// SPDX-License-Identifier: MIT
// simd/ordered_reduce.hpp: ordered_sum / ordered_dot give the same bits at every address and
// are exact where the terms are exact; exp_flushed gives every element the same bits wherever
// it sits in the buffer (full batch or padded tail), flushes below FLT_MIN, keeps NaN, and is
// within 2 ulp of the correctly rounded exp.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include <catch2/catch.hpp>

#include <fakequant/simd/ordered_reduce.hpp>

#include "test_util.hpp"

namespace {

using fq_test::bits_of;

/// The ulp distance of two finite floats of the same sign.
std::int64_t ulp_distance(float a, float b) {
  std::int32_t ia, ib;
  std::memcpy(&ia, &a, sizeof ia);
  std::memcpy(&ib, &b, sizeof ib);
  return std::llabs(std::int64_t{ia} - std::int64_t{ib});
}

template <class Arch>
void check_sums() {
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0.0f, 10.0f);
  std::vector<float> a(200), b(200), buf_a(232), buf_b(232);
  for (float& v : a) v = nd(rng);
  for (float& v : b) v = nd(rng);
  for (std::int64_t n : {0, 1, 7, 15, 16, 17, 31, 32, 33, 47, 48, 49, 63, 64, 65, 100, 129, 200}) {
    INFO("n " << n);
    float sum0 = 0, dot0 = 0;
    for (std::size_t off = 0; off < 32; ++off) {  // every float offset mod 16, twice
      std::copy(a.begin(), a.end(), buf_a.begin() + std::ptrdiff_t(off));
      std::copy(b.begin(), b.end(), buf_b.begin() + std::ptrdiff_t(31 - off));
      const float s = fq::simd::ordered_sum<Arch>(buf_a.data() + off, n);
      const float d = fq::simd::ordered_dot<Arch>(buf_a.data() + off, buf_b.data() + 31 - off, n);
      if (off == 0) {
        sum0 = s;
        dot0 = d;
      }
      INFO("offset " << off);
      REQUIRE(bits_of(s) == bits_of(sum0));
      REQUIRE(bits_of(d) == bits_of(dot0));
    }
    // Small integers: every partial sum is exact, so any order gives the exact sum.
    std::vector<float> ints(std::size_t(n) + 1);
    double exact = 0;
    for (std::size_t i = 0; i < std::size_t(n); ++i) exact += ints[i] = float(int(i % 13) - 6);
    CHECK(double(fq::simd::ordered_sum<Arch>(ints.data(), n)) == exact);
    CHECK(double(fq::simd::ordered_dot<Arch>(ints.data(), ints.data(), n)) == [&] {
      double q = 0;
      for (std::size_t i = 0; i < std::size_t(n); ++i) q += double(ints[i]) * ints[i];
      return q;
    }());
  }
}

template <class Arch>
void check_exp() {
  constexpr float kMin = std::numeric_limits<float>::min();
  const float inf = std::numeric_limits<float>::infinity();
  // A sweep of [-90, 0] with the special values; each value's exp computed alone (a padded
  // batch of one) must have the bits it gets inside the long buffer, at every position.
  std::vector<float> z;
  for (float v = -90.0f; v <= 0.0f; v += 0.0137f) z.push_back(v);
  for (float v : {-inf, -87.336f, -87.34f, -88.0f, -103.0f, -0.0f, 0.0f, 1e-8f, -1e-8f})
    z.push_back(v);
  z.push_back(std::numeric_limits<float>::quiet_NaN());
  std::vector<float> e(z.size() + 40), zbuf(z.size() + 40);
  for (std::size_t off : {std::size_t{0}, std::size_t{3}, std::size_t{17}}) {
    std::copy(z.begin(), z.end(), zbuf.begin() + std::ptrdiff_t(off));
    fq::simd::exp_flushed<Arch>(zbuf.data() + off, e.data() + off, std::int64_t(z.size()));
    std::size_t bad = 0, far = 0;
    for (std::size_t i = 0; i < z.size(); ++i) {
      float alone;
      fq::simd::exp_flushed<Arch>(&z[i], &alone, 1);
      const float got = e[off + i];
      if (std::isnan(z[i])) {
        bad += !std::isnan(got) || !std::isnan(alone);
        continue;
      }
      bad += bits_of(got) != bits_of(alone);
      const auto want = static_cast<float>(std::exp(double(z[i])));
      if (want < kMin)
        bad += got != 0.0f || std::signbit(got);
      else
        far += ulp_distance(got, want) > 2;
    }
    INFO("offset " << off);
    CHECK(bad == 0);
    CHECK(far == 0);
  }
  // In place, and with n not a multiple of the batch.
  std::vector<float> inplace(z.begin(), z.begin() + 37);
  fq::simd::exp_flushed<Arch>(inplace.data(), inplace.data(), 37);
  for (std::size_t i = 0; i < 37; ++i) CHECK(bits_of(inplace[i]) == bits_of(e[17 + i]));
}

}  // namespace

TEST_CASE("ordered_sum, ordered_dot: the same bits at every address, exact on exact terms",
          "[simd][reduce]") {
  check_sums<fq::DefaultArch>();
  check_sums<fq::ScalarArch>();
}

TEST_CASE("exp_flushed: the same bits anywhere in a buffer, flushed below FLT_MIN, within 2 ulp",
          "[simd][reduce]") {
  check_exp<fq::DefaultArch>();
  check_exp<fq::ScalarArch>();
}
