// SPDX-License-Identifier: MIT
// tests/ops/ops_test_util.hpp: what the ops tests share — an op's gradients against central
// differences (the testing kit's op gradient check), with Catch2 checks.
#ifndef FQ_TESTS_OPS_OPS_TEST_UTIL_HPP_
#define FQ_TESTS_OPS_OPS_TEST_UTIL_HPP_

#include <functional>
#include <vector>

#include <catch2/catch.hpp>

#include <fakequant/tape/tape.hpp>
#include <fakequant/testing/check_op_gradients.hpp>

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

}  // namespace fq_test

#endif  // FQ_TESTS_OPS_OPS_TEST_UTIL_HPP_
