// SPDX-License-Identifier: MIT
// Tests of the error mechanism (fakequant/base/error.hpp).
#include <stdexcept>
#include <string>
#include <vector>

#include <fakequant/base/error.hpp>
#include <fakequant/kernels/fake_quantize.hpp>

#include "catch.hpp"

namespace {
struct MyError {
  fq::ErrorCode code;
  std::string text;
};
[[noreturn]] void throwing_handler(const fq::ErrorInfo& info) {
  throw MyError{info.code, info.message};
}
}  // namespace

TEST_CASE("the default handler throws fq::Error, a std::invalid_argument", "[errors]") {
  std::vector<float> x(2), y(2);
  try {
    fq::fake_quantize_per_tensor(fq::TensorView<const float>(x.data(), {2}),
                                 fq::TensorView<float>(y.data(), {2}), nullptr, 0.1f, 0, {9, 1});
    FAIL("no error");
  } catch (const std::invalid_argument& e) {
    CHECK(std::string(e.what()).find("quant_min (9) must be <= quant_max (1)") !=
          std::string::npos);
    CHECK(dynamic_cast<const fq::Error&>(e).code() == fq::ErrorCode::kInvalidRange);
  }
}

TEST_CASE("a user handler receives the code and message", "[errors]") {
  const auto old = fq::set_error_handler(&throwing_handler);
  std::vector<float> x(2), y(3);
  try {
    fq::fake_quantize_per_tensor(fq::TensorView<const float>(x.data(), {2}),
                                 fq::TensorView<float>(y.data(), {3}), nullptr, 0.1f, 0, {0, 1});
    FAIL("no error");
  } catch (const MyError& e) {
    CHECK(e.code == fq::ErrorCode::kShapeMismatch);
    CHECK(e.text.rfind("fakequant: fake_quantize_per_tensor", 0) == 0);
  }
  CHECK(fq::set_error_handler(old) == &throwing_handler);
  CHECK(std::string(fq::to_string(fq::ErrorCode::kInvalidScale)) == "invalid_scale");
}
