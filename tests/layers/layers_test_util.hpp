// SPDX-License-Identifier: MIT
// tests/layers/layers_test_util.hpp: helpers the layers tests share — a scalar reduction of a
// layer's output for gradient checks, and the inputs of those checks (the testing kit's).
#ifndef FQ_TESTS_LAYERS_LAYERS_TEST_UTIL_HPP_
#define FQ_TESTS_LAYERS_LAYERS_TEST_UTIL_HPP_

#include <cstdint>
#include <random>

#include <fakequant/tape/tape.hpp>
#include <fakequant/testing/check_op_gradients.hpp>

namespace fq_test {

/// Values (uniform in [lo, hi) from a seed) and gradient storage of one checked input.
using GradInput = fq::testing::OpInput;

/// Scalar L = Σ y ⊙ r for r uniform in [-1, 1) drawn from mt19937(seed), so every output
/// element matters (tests that need r draw it the same way).
inline fq::Var weighted_sum(fq::Tape& tape, const fq::Var& y, std::uint32_t seed) {
  auto* r = tape.scratch<float>(static_cast<std::size_t>(y.numel()));
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (std::int64_t i = 0; i < y.numel(); ++i) r[i] = u(rng);
  return fq::testing::detail::weighted_sum(tape, y, r);
}

}  // namespace fq_test

#endif  // FQ_TESTS_LAYERS_LAYERS_TEST_UTIL_HPP_
