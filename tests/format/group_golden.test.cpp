// SPDX-License-Identifier: MIT
// Group-wise and per-token fake quantization against TorchAO's reference formulas
// (tests/golden/gen_group_golden.py: choose_qparams_affine, the legacy
// _choose_qparams_per_token_asymmetric and _fake_quantize_affine re-implemented in PyTorch
// 1.13 ops): scales, zero points and outputs bit for bit, masks equal to TorchAO's autograd
// gradient != 0, on the scalar reference and the SIMD path, dynamic and frozen.
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include <fakequant/quantizer/group_quantizer.hpp>

#include "catch.hpp"
#include "golden/group_golden_data.hpp"
#include "test_util.hpp"

namespace {

using fq_group_golden::GroupCase;
using fq_test::bits_of;
using fq_test::float_from_bits;

std::vector<float> decode(const std::uint32_t* b, std::int64_t n) {
  std::vector<float> v(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) v[static_cast<std::size_t>(i)] = float_from_bits(b[i]);
  return v;
}

template <class T>
fq::TensorView<T> view(T* data, int rank, const std::int64_t* shape) {
  std::int64_t strides[3] = {1, 1, 1};
  for (int d = rank - 2; d >= 0; --d) strides[d] = strides[d + 1] * shape[d + 1];
  return fq::TensorView<T>(data, rank, shape, strides);
}

template <class Q>
void check_case(Q& q, const GroupCase& c, fq::Isa path, bool frozen) {
  INFO(c.name << (path == fq::Isa::kScalar ? " [scalar]" : " [simd]")
              << (frozen ? " [frozen]" : " [dynamic]"));
  const std::vector<float> x = decode(c.x_bits, c.n);
  const std::vector<float> want_y = decode(c.y_bits, c.n);
  const std::vector<float> want_s = decode(c.scale_bits, c.groups);
  std::vector<float> y(x.size(), -1.0f);
  const auto xv = view<const float>(x.data(), c.rank, c.shape);
  fq::Mask mask;
  q.unfreeze();
  if (frozen) {
    // The golden qparams of the finite groups; the non-finite cases are dynamic only.
    q.set_qparams(q.layout_of(c.shape, c.rank), want_s,
                  std::vector<std::int32_t>(c.zero_point, c.zero_point + c.groups));
  }
  q.forward(xv, view<float>(y.data(), c.rank, c.shape), &mask, path);
  REQUIRE(q.layout().groups() == c.groups);
  const std::int64_t g_len = c.n / c.groups;  // the golden cases have no short tail
  for (std::int64_t g = 0; g < c.groups; ++g) {
    const auto u = static_cast<std::size_t>(g);
    INFO("group " << g);
    if (std::isfinite(want_s[u])) {
      REQUIRE(bits_of(q.scale()[u]) == bits_of(want_s[u]));
      REQUIRE(q.zero_point()[u] == c.zero_point[g]);
    } else {
      REQUIRE(std::isnan(want_s[u]) == std::isnan(q.scale()[u]));
      REQUIRE(std::isinf(q.scale()[u]) == std::isinf(want_s[u]));
    }
  }
  for (std::int64_t i = 0; i < c.n; ++i) {
    const auto u = static_cast<std::size_t>(i);
    INFO("element " << i << " x = " << x[u]);
    const bool finite_group = std::isfinite(want_s[static_cast<std::size_t>(i / g_len)]);
    if (std::isnan(want_y[u])) {
      REQUIRE(std::isnan(y[u]));
    } else {
      REQUIRE(bits_of(y[u]) == bits_of(want_y[u]));
    }
    // TorchAO's gradient in a non-finite group is NaN; fq's mask there is 0 (documented).
    REQUIRE(mask.test_linear(i) == (finite_group ? c.mask[i] != 0 : false));
  }
}

template <class Q>
void check_all(Q& q, const GroupCase& c) {
  bool finite = true;
  for (std::int64_t g = 0; g < c.groups; ++g)
    finite = finite && std::isfinite(float_from_bits(c.scale_bits[g]));
  for (fq::Isa path : {fq::Isa::kScalar, fq::Isa::kAuto}) {
    check_case(q, c, path, false);
    if (finite) check_case(q, c, path, true);
  }
}

}  // namespace

TEST_CASE("group golden: TorchAO group-wise and per-token fake quant, bit for bit",
          "[formats][group][golden]") {
  using Int4Sym = fq::GroupFakeQuantizer<
      fq::QScheme<fq::Int4, fq::Symmetric, fq::PerGroup<fq::kRuntimeGroupSize>>>;
  using UInt4Affine = fq::GroupFakeQuantizer<
      fq::QScheme<fq::UInt4, fq::Affine, fq::PerGroup<fq::kRuntimeGroupSize>>>;
  int seen = 0;
  for (const GroupCase& c : fq_group_golden::kGroupCases) {
    const std::string kind = c.kind;
    if (kind == "int4_sym") {
      Int4Sym q(c.group);
      check_all(q, c);
    } else if (kind == "uint4_affine") {
      UInt4Affine q(c.group);
      check_all(q, c);
    } else if (kind == "int8_tok") {
      fq::Int8ActPerTokenDynamic q;
      check_all(q, c);
    } else if (kind == "int8_tok_legacy") {
      fq::Int8ActPerTokenDynamicLegacy q;
      check_all(q, c);
    } else if (kind == "int4_tok") {
      fq::Int4ActPerTokenDynamic q;
      check_all(q, c);
    } else if (kind == "int8_tok_sym") {
      fq::Int8ActPerTokenSymmetricDynamic q;
      check_all(q, c);
    } else {
      FAIL("unknown golden case kind " << kind);
    }
    ++seen;
  }
  REQUIRE(seen == 7);
}

TEST_CASE("group golden: the presets use TorchAO's ranges and zero points",
          "[formats][group][golden]") {
  REQUIRE(fq::Int4WeightGroup32Symmetric::range().quant_min == -8);
  REQUIRE(fq::Int4WeightGroup32Symmetric::range().quant_max == 7);
  REQUIRE(fq::Int4WeightGroup32Symmetric::symmetric_zero_point() == 0);
  REQUIRE(fq::Int4WeightGroup128Affine::range().quant_min == 0);
  REQUIRE(fq::Int4WeightGroup128Affine::range().quant_max == 15);
  REQUIRE(fq::Int2WeightGroup32Symmetric::range().quant_min == -2);
  REQUIRE(fq::Int8ActPerTokenDynamic::range().quant_min == -128);
  REQUIRE(fq::Int8ActPerTokenDynamic().rule().eps == fq::GroupScaleEps::kFloat32Epsilon);
  REQUIRE(fq::Int4WeightGroup32Symmetric().rule().eps == fq::GroupScaleEps::kSmallestNormal);
  // uint4 symmetric: TorchAO's int((15 + 0 + 1) / 2) = 8.
  REQUIRE(fq::GroupFakeQuantizer<
              fq::QScheme<fq::UInt4, fq::Symmetric, fq::PerGroup<16>>>::symmetric_zero_point() ==
          8);
}
