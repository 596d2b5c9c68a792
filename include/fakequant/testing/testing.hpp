// SPDX-License-Identifier: MIT
// fakequant/testing/testing.hpp: the testing kit for users' own quantizers, without Catch2.
//
//   fq::testing::check_quantizer(q, options)   forward properties (testing/check_quantizer.hpp)
//   fq::testing::check_gradients(q, options)   STE-aware dx and parameter gradients
//   fq::testing::check_op_gradients(in, op)    a tape op's (custom_op's) gradients by central
//                                              differences (testing/check_op_gradients.hpp)
//   result.passed(), result.report()           (testing/result.hpp)
// The concept a quantizer must meet: quantizer/concept.hpp. Catch2 matchers and
// macros: testing/catch2.hpp. A walk-through: docs/testing_kit.md.
#ifndef FQ_TESTING_TESTING_HPP_
#define FQ_TESTING_TESTING_HPP_

#include <fakequant/quantizer/concept.hpp>
#include <fakequant/testing/check_gradients.hpp>
#include <fakequant/testing/check_op_gradients.hpp>
#include <fakequant/testing/check_quantizer.hpp>
#include <fakequant/testing/elementwise.hpp>
#include <fakequant/testing/formulas.hpp>
#include <fakequant/testing/grid.hpp>
#include <fakequant/testing/quantizer_check_options.hpp>
#include <fakequant/testing/result.hpp>

#endif  // FQ_TESTING_TESTING_HPP_
