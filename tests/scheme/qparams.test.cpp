// SPDX-License-Identifier: MIT
// Tests of fakequant/scheme/qparams.hpp against torch.ao's pins (P10, P11, P13).
#include <limits>

#include <fakequant/scheme/presets.hpp>
#include <fakequant/scheme/qparams.hpp>

#include "catch.hpp"

namespace {
using Quint8Affine = fq::QScheme<fq::UInt8, fq::Affine>;
using Quint8Symmetric = fq::QScheme<fq::UInt8, fq::Symmetric>;
using Qint8Affine = fq::QScheme<fq::Int8, fq::Affine>;
using Qint8Symmetric = fq::QScheme<fq::Int8, fq::Symmetric>;
using RuntimeAffine = fq::QScheme<fq::RuntimeRange, fq::Affine>;
using RuntimeSymmetric = fq::QScheme<fq::RuntimeRange, fq::Symmetric>;
}  // namespace

TEST_CASE("P10: qparams of MinMax on [-.3, .1, .9, 1.7]", "[observer][golden]") {
  const float mn = -0.3f, mx = 1.7f;
  auto a = fq::calculate_qparams<Quint8Affine>(mn, mx, {0, 255});
  CHECK(double(a.scale) == 0.007843137718737125);
  CHECK(a.zero_point == 38);
  auto rr = fq::calculate_qparams<RuntimeAffine>(
      mn, mx, fq::torch_quant_range(fq::TorchDtype::kQUInt8, true));
  CHECK(double(rr.scale) == 0.015748031437397003);
  CHECK(rr.zero_point == 19);
  CHECK(fq::calculate_qparams<Qint8Affine>(mn, mx, {-128, 127}).zero_point == -90);
  auto s = fq::calculate_qparams<Qint8Symmetric>(mn, mx, {-128, 127});
  CHECK(double(s.scale) == 0.013333333656191826);
  CHECK(s.zero_point == 0);
  CHECK(fq::calculate_qparams<Quint8Symmetric>(mn, mx, {0, 255}).zero_point == 128);
}

TEST_CASE("P11, P13 and the uninitialised observer", "[observer][golden]") {
  auto s = fq::calculate_qparams<Qint8Symmetric>(-1.0f, 1.0f, {-128, 127});
  CHECK(double(s.scale) == 0.007843137718737125);
  auto z = fq::calculate_qparams<Quint8Affine>(0.0f, 0.0f, {0, 255});
  CHECK(z.scale == std::numeric_limits<float>::epsilon());
  CHECK(z.zero_point == 0);
  const float inf = std::numeric_limits<float>::infinity();
  auto u = fq::calculate_qparams<Quint8Affine>(inf, -inf, {0, 255});
  CHECK(u.scale == 1.0f);
  CHECK(u.zero_point == 0);
}

TEST_CASE("custom ranges and float zero points", "[observer]") {
  CHECK(fq::calculate_qparams<RuntimeSymmetric>(-1.0f, 2.0f, {0, 15}).zero_point == 7);
  auto f = fq::calculate_qparams<
      fq::QScheme<fq::UInt8, fq::Affine, fq::PerChannel<0>, fq::RoundHalfEven, fq::MulByInverse,
                  fq::MaskedSte, fq::OverflowToQmin, fq::FloatZeroPoint>>(0.5f, 3.0f, {0, 255});
  CHECK(f.scale == (3.0f - 0.5f) / 255.0f);
  CHECK(f.zero_point == -0.5f / f.scale);
  CHECK_THROWS_AS(fq::calculate_qparams<Quint8Affine>(2.0f, 1.0f, {0, 255}), fq::Error);
  CHECK_THROWS_AS(fq::calculate_qparams<Quint8Affine>(0.0f, 1.0f, {5, 1}), fq::Error);
}
