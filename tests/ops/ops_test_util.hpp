// SPDX-License-Identifier: MIT
// tests/ops/ops_test_util.hpp: what the ops tests share — an op's gradients against central
// differences (the testing kit's op gradient check), with Catch2 checks; and the check that
// identical slices of a batch get identical results wherever they lie.
#ifndef FQ_TESTS_OPS_OPS_TEST_UTIL_HPP_
#define FQ_TESTS_OPS_OPS_TEST_UTIL_HPP_

#include <cmath>
#include <cstdint>
#include <functional>
#include <random>
#include <vector>

#include <catch2/catch.hpp>

#include <fakequant/tape/custom_op.hpp>
#include <fakequant/tape/tape.hpp>
#include <fakequant/testing/check_op_gradients.hpp>

#include "test_util.hpp"

namespace fq_test {

using GradInput = fq::testing::OpInput;

/// The op's gradients against central differences with step h; every element within tol.
inline void check_grad(std::vector<GradInput> in,
                       const std::function<fq::Var(fq::Tape&, std::vector<fq::Var>&)>& f,
                       float h = 1e-2f, double tol = 2e-3) {
  fq::testing::OpGradientOptions opt;
  opt.step = h;
  opt.tolerance = tol;
  const fq::testing::CheckResult r = fq::testing::check_op_gradients(in, f, opt);
  INFO(r.report());
  CHECK(r.passed());
  CHECK(r.checked("op_gradient") > 0);
}

/// Runs the tape's backward with y's gradient dy (the loss Σ dy · y).
inline void backward_with(fq::Tape& tape, const fq::Var& y, const std::vector<float>& dy) {
  const fq::Var l = fq::custom_op(
      tape, {y}, {}, [](float* out) { *out = 0.0f; },
      [&dy, y](const float*, const float* g) {
        for (std::size_t e = 0; e < dy.size(); ++e) y.grad()[e] += g[0] * dy[e];
      });
  tape.backward(l);
}

/// x: shape[0] copies of one random slice (values N(0, 3²), seed `seed`), a leaf; the loss
/// Σ dy·op(x) with dy the same for every copy. Checks that every copy of op(x) and of dx has
/// the bits of the first one: a slice's result may not depend on where it lies in memory or in
/// the batch (the copies start at every alignment when a slice is not a multiple of 16 floats).
inline void check_copies_bitwise(const fq::Shape& shape,
                                 const std::function<fq::Var(fq::Tape&, const fq::Var&)>& op,
                                 std::uint32_t seed = 7) {
  const auto copies = static_cast<std::size_t>(shape[0]);
  const auto numel = static_cast<std::size_t>(shape.numel());
  const std::size_t one = numel / copies;
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 3.0f);
  std::vector<float> slice(one), slice_dy(one);
  for (float& v : slice) v = nd(rng);
  for (float& v : slice_dy) v = nd(rng);
  std::vector<float> x(numel), dx(numel, 0.0f), dy(numel);
  for (std::size_t e = 0; e < numel; ++e) {
    x[e] = slice[e % one];
    dy[e] = slice_dy[e % one];
  }
  fq::Tape tape;
  const fq::Var xv = tape.leaf(x.data(), dx.data(), shape);
  const fq::Var y = op(tape, xv);
  REQUIRE(static_cast<std::size_t>(y.numel()) == numel);
  backward_with(tape, y, dy);
  std::size_t bad_y = 0, bad_dx = 0;
  for (std::size_t e = one; e < numel; ++e) {
    bad_y += bits_of(y.value()[e]) != bits_of(y.value()[e % one]);
    bad_dx += bits_of(dx[e]) != bits_of(dx[e % one]);
  }
  INFO("shape " << shape.str() << ": elements of the later copies that differ from the first");
  CHECK(bad_y == 0);
  CHECK(bad_dx == 0);
}

}  // namespace fq_test

#endif  // FQ_TESTS_OPS_OPS_TEST_UTIL_HPP_
