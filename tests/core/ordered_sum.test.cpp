// SPDX-License-Identifier: MIT
// fq::detail::ordered_sum (core/ordered_sum.hpp): the order of its file comment, for every n
// around the 16-lane blocks, and the same bits wherever the data lies (Eigen's unaligned sum
// does not give that).
#include <cstdint>
#include <random>
#include <vector>

#include <fakequant/base/aligned.hpp>
#include <fakequant/core/ordered_sum.hpp>

#include "catch.hpp"
#include "test_util.hpp"

TEST_CASE("ordered_sum: lanes of 16, pairwise, then the tail in order", "[core]") {
  std::mt19937 rng(5);
  std::normal_distribution<float> nd(0.0f, 100.0f);
  for (std::int64_t n : {0, 1, 7, 15, 16, 17, 25, 31, 32, 33, 49, 196, 784}) {
    std::vector<float> v(static_cast<std::size_t>(n));
    for (float& e : v) e = nd(rng);
    // The definition, spelled out independently.
    float lane[16] = {};
    const std::int64_t whole = n / 16 * 16;
    for (std::int64_t i = 0; i < whole; ++i) lane[i % 16] += v[static_cast<std::size_t>(i)];
    float l8[8], l4[4], l2[2];
    for (int j = 0; j < 8; ++j) l8[j] = lane[j] + lane[j + 8];
    for (int j = 0; j < 4; ++j) l4[j] = l8[j] + l8[j + 4];
    for (int j = 0; j < 2; ++j) l2[j] = l4[j] + l4[j + 2];
    float want = l2[0] + l2[1];
    for (std::int64_t i = whole; i < n; ++i) want += v[static_cast<std::size_t>(i)];
    const float got =
        fq::detail::ordered_sum(n, [&](std::int64_t i) { return v[static_cast<std::size_t>(i)]; });
    INFO("n " << n);
    CHECK(fq_test::bits_of(got) == fq_test::bits_of(want));
  }
}

TEST_CASE("ordered_sum: the same bits at every address", "[core]") {
  std::mt19937 rng(9);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> v(25);
  for (float& e : v) e = nd(rng);
  std::vector<float, fq::detail::Align64Allocator<float>> buf(v.size() + 16);
  std::uint64_t first = 0;
  for (std::size_t off = 0; off < 16; ++off) {
    std::copy(v.begin(), v.end(), buf.begin() + static_cast<std::ptrdiff_t>(off));
    const float* p = buf.data() + off;
    const float s = fq::detail::ordered_sum(25, [p](std::int64_t i) { return p[i]; });
    if (off == 0) first = fq_test::bits_of(s);
    INFO("offset " << off);
    CHECK(fq_test::bits_of(s) == first);
  }
}
