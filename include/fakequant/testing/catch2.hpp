// SPDX-License-Identifier: MIT
// fakequant/testing/catch2.hpp: Catch2 matchers and macros for the testing kit — the only kit
// header that includes Catch2 (2.13 single header, or 3.x).
//
//   FQ_REQUIRE_QUANTIZER(q, options);   // check_quantizer(q, options) must pass
//   FQ_REQUIRE_GRADIENTS(q, options);   // check_gradients(q, options) must pass
//   FQ_CHECK_QUANTIZER / FQ_CHECK_GRADIENTS: the same, continuing after a failure
//   REQUIRE_THAT(result, fq::testing::Passes());
//   REQUIRE_THAT(result, fq::testing::HasFailure("gradient_dx"));
//   REQUIRE_THAT(result, fq::testing::HasFailureAt("on_grid", 17));
// On failure Catch2 prints the result's report (every failure names the property, element,
// input, expected and actual value). Pass `{}` for default options.
#ifndef FQ_TESTING_CATCH2_HPP_
#define FQ_TESTING_CATCH2_HPP_

#include <cstdint>  // int64_t
#include <string>   // string
#include <utility>  // move

#if __has_include(<catch2/catch_all.hpp>)
#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers.hpp>
#define FQ_TESTING_CATCH2_MATCHER_BASE ::Catch::Matchers::MatcherBase
#elif __has_include(<catch2/catch.hpp>)
#include <catch2/catch.hpp>
#define FQ_TESTING_CATCH2_MATCHER_BASE ::Catch::MatcherBase
#else
#error \
    "fakequant/testing/catch2.hpp needs Catch2 (2.13: <catch2/catch.hpp>, or 3.x) on the include path; without Catch2 use <fakequant/testing/testing.hpp> and CheckResult::passed()/report()."
#endif

#include <fakequant/testing/testing.hpp>

namespace Catch {
/// Catch2 prints a CheckResult as its report.
template <>
struct StringMaker<::fq::testing::CheckResult> {
  static std::string convert(const ::fq::testing::CheckResult& r) { return "\n" + r.report(); }
};
}  // namespace Catch

namespace fq {
namespace testing {

/// Matches a CheckResult without failures.
class PassesMatcher : public FQ_TESTING_CATCH2_MATCHER_BASE<CheckResult> {
 public:
  bool match(const CheckResult& r) const override { return r.passed(); }
  std::string describe() const override { return "passes every fakequant testing-kit check"; }
};

/// Matches a CheckResult with a failure of `property` (at element `index` if index >= 0).
class HasFailureMatcher : public FQ_TESTING_CATCH2_MATCHER_BASE<CheckResult> {
 public:
  HasFailureMatcher(std::string property, std::int64_t index)
      : property_(std::move(property)), index_(index) {}
  bool match(const CheckResult& r) const override {
    if (index_ < 0) return r.has_failure(property_);
    for (const Failure& f : r.failures())
      if (f.property == property_ && f.index == index_) return true;
    return false;
  }
  std::string describe() const override {
    return "reports a '" + property_ + "' failure" +
           (index_ >= 0 ? " at element " + std::to_string(index_) : std::string());
  }

 private:
  std::string property_;
  std::int64_t index_;
};

inline PassesMatcher Passes() { return PassesMatcher(); }
inline HasFailureMatcher HasFailure(std::string property) {
  return HasFailureMatcher(std::move(property), -1);
}
inline HasFailureMatcher HasFailureAt(std::string property, std::int64_t index) {
  return HasFailureMatcher(std::move(property), index);
}

}  // namespace testing
}  // namespace fq

#define FQ_REQUIRE_QUANTIZER(q, options) \
  REQUIRE_THAT(::fq::testing::check_quantizer((q), options), ::fq::testing::Passes())
#define FQ_CHECK_QUANTIZER(q, options) \
  CHECK_THAT(::fq::testing::check_quantizer((q), options), ::fq::testing::Passes())
#define FQ_REQUIRE_GRADIENTS(q, options) \
  REQUIRE_THAT(::fq::testing::check_gradients((q), options), ::fq::testing::Passes())
#define FQ_CHECK_GRADIENTS(q, options) \
  CHECK_THAT(::fq::testing::check_gradients((q), options), ::fq::testing::Passes())

#endif  // FQ_TESTING_CATCH2_HPP_
