// SPDX-License-Identifier: MIT
// Tests of the packed mask and the bit writer/reader behind it.
#include <cstdint>
#include <initializer_list>
#include <random>
#include <vector>

#include <fakequant/base/error.hpp>
#include <fakequant/core/bit_writer.hpp>
#include <fakequant/core/mask.hpp>

#include "catch.hpp"

TEST_CASE("BitWriter and BitReader round-trip chunks at any bit offset", "[fake_quant][mask]") {
  std::mt19937 rng(5);
  for (int trial = 0; trial < 200; ++trial) {
    std::vector<bool> ref;
    std::vector<std::uint64_t> words(40, 0);
    fq::detail::BitWriter w(words.data(), 0);
    std::vector<std::pair<std::uint64_t, int>> chunks;
    while (ref.size() < 2000) {
      const int count = static_cast<int>(rng() % 64) + 1;
      std::uint64_t bits = (std::uint64_t(rng()) << 32) | rng();
      if (count < 64) bits &= (std::uint64_t{1} << count) - 1;
      for (int i = 0; i < count; ++i) ref.push_back((bits >> i) & 1u);
      chunks.emplace_back(bits, count);
      w.put(bits, count);
    }
    w.flush();
    for (std::size_t i = 0; i < ref.size(); ++i)
      REQUIRE(((words[i / 64] >> (i % 64)) & 1u) == ref[i]);
    fq::detail::BitReader r(words.data(), 0);
    for (const auto& c : chunks) REQUIRE(r.get(c.second) == c.first);
    // Resume writing at an unaligned position keeps the earlier bits.
    const std::int64_t pos = static_cast<std::int64_t>(rng() % 1500);
    fq::detail::BitWriter w2(words.data(), pos);
    w2.put(0, 10);
    w2.flush();
    for (std::int64_t i = 0; i < pos; ++i)
      REQUIRE(((words[static_cast<std::size_t>(i / 64)] >> (i % 64)) & 1u) ==
              ref[static_cast<std::size_t>(i)]);
    for (std::int64_t i = pos; i < pos + 10; ++i)
      REQUIRE(((words[static_cast<std::size_t>(i / 64)] >> (i % 64)) & 1u) == 0u);
  }
}

TEST_CASE("Mask maps logical indices through the visiting order", "[fake_quant][mask]") {
  fq::Mask m;
  fq::Dims shape{};
  shape[0] = 3;
  shape[1] = 4;
  auto order = fq::detail::row_major_order();
  order[0] = 1;  // column-major visiting order
  order[1] = 0;
  std::uint64_t* w = m.prepare(2, shape, order);
  w[0] = 0;
  w[0] |= std::uint64_t{1} << (2 * 3 + 1);  // element (1, 2) is bit j * 3 + i
  CHECK(m.test({1, 2}));
  CHECK_FALSE(m.test({2, 1}));
  CHECK(m.test_linear(1 * 4 + 2));
  CHECK(m.count() == 1);
  m.set_all();
  CHECK(m.count() == 12);
  CHECK_THROWS_AS(m.test({3, 0}), fq::Error);
}

TEST_CASE("Mask refuses reads it cannot answer: never written, index out of range",
          "[fake_quant][mask][errors]") {
  fq::Mask fresh;
  CHECK_FALSE(fresh.written());
  CHECK_THROWS_AS(fresh.test_linear(0), fq::Error);
  CHECK_THROWS_AS(fresh.test(std::initializer_list<std::int64_t>{}), fq::Error);
  fq::Mask m;
  fq::Dims shape{};
  shape[0] = 2;
  shape[1] = 3;
  m.prepare(2, shape, fq::detail::row_major_order())[0] = 0x3fu;
  CHECK(m.written());
  CHECK(m.test_linear(5));
  // test_linear(numel) used to wrap to element 0.
  CHECK_THROWS_AS(m.test_linear(6), fq::Error);
  CHECK_THROWS_AS(m.test_linear(-1), fq::Error);
  try {
    (void)m.test_linear(6);
  } catch (const fq::Error& e) {
    CHECK(e.code() == fq::ErrorCode::kInvalidArgument);
  }
}
