// SPDX-License-Identifier: MIT
// Tests of ops::embedding (lookup, scatter-add backward with repeated ids, id checks) and
// ops::dropout (the splitmix64 mask, determinism, keep-fraction and expectation statistics,
// pass-through cases, gradients, bad p).
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <vector>

#include <catch2/catch.hpp>

#include <fakequant/ops/dropout.hpp>
#include <fakequant/ops/embedding.hpp>
#include <fakequant/testing/check_op_gradients.hpp>

#include "ops/ops_test_util.hpp"
#include "test_util.hpp"

using fq::ErrorCode;
using fq::Shape;
using fq::Tape;
using fq::Var;
using fq_test::check_grad;
using fq_test::error_code_of;
using fq_test::GradInput;

namespace {
/// A backward seed: L = Σ y ⊙ w, so dy = w (w's length is y's numel).
Var weighted(Tape& tape, const Var& y, const float* w) {
  Var loss = tape.variable({});
  loss.value()[0] = 0;
  tape.push_backward([y, loss, w] {
    for (std::int64_t i = 0; i < y.numel(); ++i) y.grad()[i] += loss.grad()[0] * w[i];
  });
  return loss;
}

/// The splitmix64 generator as its authors state it: a state advanced by the golden gamma.
struct SplitMix64 {
  std::uint64_t state;
  std::uint64_t next() {
    std::uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
};
}  // namespace

TEST_CASE("embedding: forward copies the rows of the ids", "[ops][embedding]") {
  GradInput table({5, 3}, 1);
  const std::int32_t ids[] = {4, 0, 2, 2, 1, 4};
  Tape tape;
  const Var y =
      fq::ops::embedding(tape, tape.constant(table.value.data(), table.shape), ids, {2, 3});
  REQUIRE(y.shape() == Shape({2, 3, 3}));
  for (std::int64_t p = 0; p < 6; ++p)
    for (std::int64_t e = 0; e < 3; ++e) REQUIRE(y.value()[p * 3 + e] == table.at(ids[p] * 3 + e));
  CHECK_FALSE(y.requires_grad());
  CHECK(tape.node_count() == 0);
}

TEST_CASE("embedding: repeated ids accumulate in the table's gradient", "[ops][embedding]") {
  GradInput table({4, 2}, 2);
  std::vector<std::int32_t> ids = {1, 3, 1, 1, 0};
  std::vector<float> dtable(8, 0.5f);  // the gradient already holds something: += keeps it
  const std::vector<float> dy = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  Tape tape;
  const Var y = fq::ops::embedding(tape, tape.leaf(table.value.data(), dtable.data(), table.shape),
                                   ids.data(), {5});
  ids.assign(5, 2);  // the op keeps its own copy of the ids
  tape.backward(weighted(tape, y, dy.data()));
  // Row 0 <- position 4; row 1 <- positions 0, 2, 3; row 2 <- none; row 3 <- position 1.
  const std::vector<float> expect = {0.5f + 9, 0.5f + 10, 0.5f + 1 + 5 + 7, 0.5f + 2 + 6 + 8,
                                     0.5f,     0.5f,      0.5f + 3,         0.5f + 4};
  CHECK(dtable == expect);
  std::vector<std::int32_t> rep = {2, 2, 0, 2, 1, 2, 0};
  check_grad({table}, [&rep](Tape& t, std::vector<Var>& v) {
    return fq::ops::embedding(t, v[0], rep.data(), {7});
  });
  check_grad({table}, [&rep](Tape& t, std::vector<Var>& v) {
    return fq::ops::embedding(t, v[0], rep.data(), {1, 2, 3});
  });
}

TEST_CASE("embedding: bad input is refused at op creation", "[ops][embedding]") {
  std::vector<float> buf(64, 1.0f);
  Tape tape, other;
  const Var table = tape.constant(buf.data(), {5, 3});
  const std::int32_t bad[] = {0, 1, 2, 3, 4, 7};
  CHECK(error_code_of([&] { fq::ops::embedding(tape, table, bad, {6}); }) ==
        ErrorCode::kInvalidArgument);
  const std::string m = fq_test::error_message_of([&] {
    fq::ops::embedding(tape, table, bad, {2, 3});
  });
  CHECK_THAT(m, Catch::Contains("embedding") && Catch::Contains("id 7") &&
                    Catch::Contains("position 5 [1, 2]") && Catch::Contains("[0, 5)"));
  const std::int32_t neg[] = {-1};
  CHECK_THAT(fq_test::error_message_of([&] { fq::ops::embedding(tape, table, neg, {1}); }),
             Catch::Contains("id -1 at position 0"));
  CHECK(error_code_of([&] { fq::ops::embedding(tape, table, bad, {5}); }) == ErrorCode{});
  CHECK(error_code_of([&] {
          fq::ops::embedding(tape, tape.constant(buf.data(), {15}), bad, {1});
        }) == ErrorCode::kShapeMismatch);
  CHECK(error_code_of([&] { fq::ops::embedding(tape, table, nullptr, {2}); }) ==
        ErrorCode::kInvalidArgument);
  CHECK(error_code_of([&] {
          fq::ops::embedding(tape, table, bad, {1, 1, 1, 1, 1, 1, 1, 1});
        }) == ErrorCode::kInvalidLayout);
  CHECK(error_code_of([&] { fq::ops::embedding(other, table, bad, {1}); }) ==
        ErrorCode::kInvalidArgument);
  // Empty: no ids, or an empty table with no ids.
  CHECK(fq::ops::embedding(tape, table, nullptr, {0, 4}).shape() == Shape({0, 4, 3}));
  CHECK(fq::ops::embedding(tape, tape.constant(nullptr, {0, 3}), nullptr, {0}).numel() == 0);
  CHECK(error_code_of([&] {
          fq::ops::embedding(tape, tape.constant(nullptr, {0, 3}), bad, {1});
        }) == ErrorCode::kInvalidArgument);
}

TEST_CASE("dropout: the mask is splitmix64's stream compared with p·2^64", "[ops][dropout]") {
  // The generator's published first output for seed 0.
  CHECK(fq::ops::impl::dropout_hash(0, 0) == 0xE220A8397B1DCDAFull);
  const std::int64_t n = 1000;
  std::vector<float> x(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) x[static_cast<std::size_t>(i)] = 0.5f + float(i % 7);
  for (float p : {0.1f, 0.5f, 0.9f})
    for (std::uint64_t seed : {0ull, 42ull, 0xFFFFFFFFFFFFFFFFull}) {
      CAPTURE(p, seed);
      Tape tape;
      const Var y = fq::ops::dropout(tape, tape.constant(x.data(), {10, 100}), p, seed);
      REQUIRE(y.shape() == Shape({10, 100}));
      // The state starts at mix(seed), the first output of a generator one step earlier.
      SplitMix64 g{SplitMix64{seed - 0x9E3779B97F4A7C15ull}.next()};
      const long double cut = static_cast<long double>(p) * 18446744073709551616.0L;
      const float s = 1.0f / (1.0f - p);
      for (std::int64_t i = 0; i < n; ++i) {
        const bool keep = static_cast<long double>(g.next()) >= cut;
        REQUIRE(y.value()[i] == (keep ? x[static_cast<std::size_t>(i)] * s : 0.0f));
      }
    }
}

TEST_CASE("dropout: deterministic for a seed; another seed another mask", "[ops][dropout]") {
  std::vector<float> x(4096, 1.0f);
  Tape tape;
  const Var xv = tape.constant(x.data(), {4096});
  const Var a = fq::ops::dropout(tape, xv, 0.5f, 7), b = fq::ops::dropout(tape, xv, 0.5f, 7),
            c = fq::ops::dropout(tape, xv, 0.5f, 8);
  std::int64_t same_ab = 0, same_ac = 0;
  for (std::int64_t i = 0; i < 4096; ++i) {
    same_ab += a.value()[i] == b.value()[i];
    same_ac += a.value()[i] == c.value()[i];
  }
  CHECK(same_ab == 4096);
  CHECK(same_ac > 1700);  // ~half agree by chance (2048 ± 32)
  CHECK(same_ac < 2400);
  // Seeds a multiple of splitmix64's gamma apart (a per-call seed s + k·γ) do not give a
  // shifted copy of one stream (without the seed mix, d[i] would be a[i + 1]).
  const Var d = fq::ops::dropout(tape, xv, 0.5f, 7 + 0x9E3779B97F4A7C15ull);
  std::int64_t shifted = 0;
  for (std::int64_t i = 0; i + 1 < 4096; ++i) shifted += a.value()[i + 1] == d.value()[i];
  CHECK(shifted > 1700);
  CHECK(shifted < 2400);
}

TEST_CASE("dropout: keep fraction and expectation on 10^5 elements", "[ops][dropout]") {
  const std::int64_t n = 100000;
  std::vector<float> x(static_cast<std::size_t>(n), 1.0f);
  for (float p : {0.1f, 0.3f, 0.5f, 0.8f}) {
    CAPTURE(p);
    Tape tape;
    const Var y = fq::ops::dropout(tape, tape.constant(x.data(), {n}), p, 1234);
    std::int64_t kept = 0;
    double sum = 0;
    for (std::int64_t i = 0; i < n; ++i) {
      kept += y.value()[i] != 0.0f;
      sum += y.value()[i];
    }
    // Binomial(n, 1 − p): within 5 standard deviations.
    const double q = 1.0 - double(p), sd = std::sqrt(double(n) * q * double(p));
    CHECK(std::abs(double(kept) - double(n) * q) < 5 * sd);
    // E[y] = x = 1; the mean of n values of variance p/(1−p) within 5 standard errors.
    CHECK(std::abs(sum / double(n) - 1.0) < 5 * std::sqrt(double(p) / q / double(n)));
  }
}

TEST_CASE("dropout: pass-through, p = 1, gradients", "[ops][dropout]") {
  GradInput x({4, 6}, 3);
  std::vector<float> dx(24, 0.0f);
  Tape tape;
  const Var xv = tape.leaf(x.value.data(), dx.data(), x.shape);
  const Var eval = fq::ops::dropout(tape, xv, 0.5f, 1, /*training=*/false);
  CHECK(eval.value() == xv.value());
  CHECK(eval.grad() == xv.grad());
  CHECK(fq::ops::dropout(tape, xv, 0.0f, 1).value() == xv.value());
  CHECK(tape.node_count() == 0);
  const Var zero = fq::ops::dropout(tape, xv, 1.0f, 1);
  REQUIRE(zero.requires_grad());
  for (std::int64_t i = 0; i < 24; ++i) REQUIRE(zero.value()[i] == 0.0f);
  for (float p : {0.25f, 0.5f, 1.0f})
    check_grad({x}, [p](Tape& t, std::vector<Var>& v) { return fq::ops::dropout(t, v[0], p, 99); });
  // Hand-checked: dx = dy · s on the kept elements, 0 on the dropped ones (from the forward).
  const std::vector<float> dy(24, 2.0f);
  const Var y = fq::ops::dropout(tape, xv, 0.5f, 5);
  tape.backward(weighted(tape, y, dy.data()));
  for (std::size_t i = 0; i < 24; ++i) REQUIRE(dx[i] == (y.value()[i] != 0.0f ? 4.0f : 0.0f));
}

TEST_CASE("dropout: p outside [0, 1] is refused", "[ops][dropout]") {
  std::vector<float> x(4, 1.0f);
  Tape tape, other;
  const Var xv = tape.constant(x.data(), {4});
  for (float p : {-0.1f, 1.5f, std::numeric_limits<float>::quiet_NaN(),
                  std::numeric_limits<float>::infinity()})
    CHECK(error_code_of([&] { fq::ops::dropout(tape, xv, p, 0); }) == ErrorCode::kInvalidArgument);
  // Refused even when the op would be a pass-through.
  CHECK(error_code_of([&] { fq::ops::dropout(tape, xv, 2.0f, 0, false); }) ==
        ErrorCode::kInvalidArgument);
  CHECK_THROWS_WITH(fq::ops::dropout(tape, xv, 1.5f, 0), Catch::Contains("dropout: p = 1.5"));
  CHECK(error_code_of([&] { fq::ops::dropout(other, xv, 0.5f, 0); }) ==
        ErrorCode::kInvalidArgument);
  CHECK(fq::ops::dropout(tape, tape.constant(nullptr, {0, 3}), 0.5f, 0).numel() == 0);
}
