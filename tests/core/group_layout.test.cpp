// SPDX-License-Identifier: MIT
// tests/core/group_layout.test.cpp: where the groups of a group-wise format lie.
#include <cstdint>
#include <vector>

#include <catch2/catch.hpp>

#include <fakequant/core/group_layout.hpp>

#include "test_util.hpp"

namespace {

fq::GroupLayout layout(std::vector<std::int64_t> shape, int axis, std::int64_t g,
                       fq::GroupTail tail = fq::GroupTail::kMustDivide) {
  return fq::detail::make_group_layout(shape.data(), static_cast<int>(shape.size()), axis, g, tail,
                                       "test");
}

}  // namespace

TEST_CASE("GroupLayout: a [N, K] weight grouped along K gives TorchAO's [N, K/G] scales",
          "[formats][group_layout]") {
  const fq::GroupLayout L = layout({3, 96}, -1, 32);
  CHECK(L.outer == 3);
  CHECK(L.axis_len == 96);
  CHECK(L.inner == 1);
  CHECK(L.groups_per_axis == 3);
  CHECK(L.groups() == 9);
  // Row-major [3, 3] scale array: element (n, k) belongs to scale n * 3 + k / 32.
  for (std::int64_t n = 0; n < 3; ++n)
    for (std::int64_t k = 0; k < 96; ++k) CHECK(L.group_of_flat(n * 96 + k) == n * 3 + k / 32);
}

TEST_CASE("GroupLayout: a middle axis groups strided elements", "[formats][group_layout]") {
  // [O, I, kh, kw] = [2, 8, 3, 3] grouped along I in groups of 4: inner = 9.
  const fq::GroupLayout L = layout({2, 8, 3, 3}, 1, 4);
  CHECK(L.outer == 2);
  CHECK(L.inner == 9);
  CHECK(L.groups_per_axis == 2);
  CHECK(L.groups() == 36);
  // Count the members of every group by brute force over the multi-index.
  std::vector<int> count(static_cast<std::size_t>(L.groups()), 0);
  for (std::int64_t o = 0; o < 2; ++o)
    for (std::int64_t c = 0; c < 8; ++c)
      for (std::int64_t s = 0; s < 9; ++s) {
        const std::int64_t flat = (o * 8 + c) * 9 + s;
        const std::int64_t g = L.group_of_flat(flat);
        CHECK(g == L.group_of(o, c, s));
        CHECK(g == (o * 2 + c / 4) * 9 + s);
        ++count[static_cast<std::size_t>(g)];
      }
  for (int n : count) CHECK(n == 4);
}

TEST_CASE("GroupLayout: tails, whole-axis groups and empty tensors", "[formats][group_layout]") {
  SECTION("kShortLast keeps the rest in a last, shorter group") {
    const fq::GroupLayout L = layout({2, 70}, -1, 32, fq::GroupTail::kShortLast);
    CHECK(L.groups_per_axis == 3);
    CHECK(L.group_len(0) == 32);
    CHECK(L.group_len(2) == 6);
    CHECK(L.group_of_flat(69) == 2);
    CHECK(L.group_of_flat(70) == 3);
  }
  SECTION("per token: one group per row") {
    const fq::GroupLayout L = layout({4, 5, 7}, -1, fq::kWholeAxisGroup);
    CHECK(L.group_size == 7);
    CHECK(L.groups() == 20);
    CHECK(L.group_of_flat(7 * 20 - 1) == 19);
  }
  SECTION("an empty tensor has no groups") {
    CHECK(layout({0, 64}, -1, 32).groups() == 0);
    CHECK(layout({3, 0}, -1, fq::kWholeAxisGroup).groups() == 0);
  }
}

TEST_CASE("GroupLayout: bad group sizes and axes are errors", "[formats][group_layout]") {
  using fq_test::error_code_of;
  CHECK(error_code_of([] { layout({4, 100}, -1, 32); }) == fq::ErrorCode::kShapeMismatch);
  CHECK_THROWS_WITH(layout({4, 100}, -1, 32),
                    Catch::Contains("the group size 32 does not divide the extent 100 of axis 1"));
  CHECK(error_code_of([] { layout({4, 64}, -1, 0); }) == fq::ErrorCode::kInvalidArgument);
  CHECK(error_code_of([] { layout({4, 64}, -1, -3); }) == fq::ErrorCode::kInvalidArgument);
  CHECK(error_code_of([] { layout({4, 64}, 2, 32); }) == fq::ErrorCode::kInvalidAxis);
  CHECK(error_code_of([] { layout({4, 64}, -3, 32); }) == fq::ErrorCode::kInvalidAxis);
}

TEST_CASE("PerGroup and PerToken are granularities a QScheme takes", "[formats][group_layout]") {
  using G = fq::PerGroup<32>;
  STATIC_REQUIRE(fq::is_granularity<G>::value);
  STATIC_REQUIRE(G::kPerGroup && !G::kPerChannel && G::kGroupSize == 32 && G::kAxis == -1);
  STATIC_REQUIRE(G::kTail == fq::GroupTail::kMustDivide);
  STATIC_REQUIRE(fq::PerToken::kGroupSize == fq::kWholeAxisGroup);
  STATIC_REQUIRE(!fq::PerTensor::kPerGroup && !fq::PerChannel<0>::kPerGroup);
  STATIC_REQUIRE(fq::PerGroup<fq::kRuntimeGroupSize, 1, fq::GroupTail::kShortLast>::kTail ==
                 fq::GroupTail::kShortLast);
}
