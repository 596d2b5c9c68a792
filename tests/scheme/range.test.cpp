// SPDX-License-Identifier: MIT
// Tests of fakequant/scheme/range.hpp.
#include <fakequant/scheme/range.hpp>

#include "catch.hpp"

TEST_CASE("IntRange bounds", "[policy]") {
  STATIC_REQUIRE(fq::Int8::kMin == -128);
  STATIC_REQUIRE(fq::Int8::kMax == 127);
  STATIC_REQUIRE(fq::UInt8::kMin == 0);
  STATIC_REQUIRE(fq::UInt8::kMax == 255);
  STATIC_REQUIRE(fq::Int8Narrow::kMin == -127);
  STATIC_REQUIRE(fq::IntRange<8, false, true>::kMin == 1);
  STATIC_REQUIRE(fq::IntRange<8, false, true>::kMax == 255);
  STATIC_REQUIRE(fq::Int2::kMin == -2);
  STATIC_REQUIRE(fq::Int2::kMax == 1);
  STATIC_REQUIRE(fq::Int4::kMin == -8);
  STATIC_REQUIRE(fq::UInt4::kMax == 15);
  STATIC_REQUIRE(fq::Int16::kMin == -32768);
  STATIC_REQUIRE(fq::UInt16::kMax == 65535);
}

TEST_CASE("PyTorch ranges with reduce_range", "[policy]") {
  using fq::QuantRange;
  using fq::TorchDtype;
  CHECK(fq::torch_quant_range(TorchDtype::kQUInt8, false) == QuantRange{0, 255});
  CHECK(fq::torch_quant_range(TorchDtype::kQUInt8, true) == QuantRange{0, 127});
  CHECK(fq::torch_quant_range(TorchDtype::kQInt8, false) == QuantRange{-128, 127});
  CHECK(fq::torch_quant_range(TorchDtype::kQInt8, true) == QuantRange{-64, 63});
  // reduce_range halves a custom range too (floor division), as torch.ao does.
  CHECK(fq::torch_custom_quant_range(0, 255, true) == QuantRange{0, 127});
  CHECK(fq::torch_custom_quant_range(-8, 7, true) == QuantRange{-4, 3});
  CHECK(fq::torch_custom_quant_range(-7, 7, true) == QuantRange{-4, 3});
  CHECK(fq::torch_custom_quant_range(-8, 7, false) == QuantRange{-8, 7});
}

TEST_CASE("check_range rejects inverted and oversized ranges", "[policy][errors]") {
  CHECK_THROWS_AS(fq::check_range({3, 2}, "t"), fq::Error);
  CHECK_THROWS_AS(fq::check_range({-(1 << 25), 0}, "t"), fq::Error);
  CHECK_NOTHROW(fq::check_range({5, 5}, "t"));
  CHECK_NOTHROW(fq::check_range({-32768, 65535}, "t"));
}
