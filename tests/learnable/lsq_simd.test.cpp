// SPDX-License-Identifier: MIT
// The fused LSQ SIMD kernel against the scalar reference: y and dx bit for bit, d scale and
// d zero point within the summation tolerance, for the three batch forms (general, shifted
// rounding, the symmetric PyTorch mode's shared level), every numerics mode, per tensor and
// per channel on both axes, tails and block boundaries, special inputs, in place.
// Registered only when the SIMD kernels are compiled (FQ_HAS_XSIMD): a scalar-only build has
// no second path to compare, and reports these tests skipped (tests/CMakeLists.txt).
#include <fakequant/base/config.hpp>

#if FQ_HAS_XSIMD
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

#include <fakequant/learnable/lsq.hpp>

#include "catch.hpp"
#include "test_util.hpp"

namespace {

using fq::Isa;
using fq::TensorView;

struct Result {
  std::vector<float> y, dx, ds, dz;
};

/// One call on [rows, cols] (axis -1: per tensor), into fresh outputs or in place.
template <class M>
Result run(const std::vector<float>& x, const std::vector<float>& dy, std::int64_t rows,
           std::int64_t cols, int axis, const std::vector<float>& s, const std::vector<float>& z,
           fq::QuantRange r, Isa path, bool in_place) {
  Result o;
  o.y = x;
  o.dx = dy;
  std::vector<float> xs(x), dys(dy);
  const float* xp = in_place ? o.y.data() : xs.data();
  const float* gp = in_place ? o.dx.data() : dys.data();
  const TensorView<const float> xv(xp, {rows, cols}), gv(gp, {rows, cols});
  const TensorView<float> yv(o.y.data(), {rows, cols}), dxv(o.dx.data(), {rows, cols});
  if (axis < 0) {
    const fq::LsqGrad g = fq::lsq_per_tensor<M>(xv, gv, yv, dxv, s[0], z[0], r, 1.0f, path);
    o.ds = {g.scale};
    o.dz = {g.zero_point};
  } else {
    o.ds.resize(s.size());
    o.dz.resize(s.size());
    fq::lsq_per_channel<M>(xv, gv, yv, dxv, s.data(), z.data(), static_cast<std::int64_t>(s.size()),
                           axis, r, 1.0f, o.ds.data(), o.dz.data(), path);
  }
  return o;
}

/// Per channel: 1e-5 * sum |dy * ds-term| (+ the same for dz) plus 1e-6, the float block
/// sums' rounding bound.
template <class M>
std::vector<double> tolerances(const std::vector<float>& x, const std::vector<float>& dy,
                               std::int64_t rows, std::int64_t cols, int axis,
                               const std::vector<float>& s, const std::vector<float>& z,
                               fq::QuantRange r) {
  std::vector<fq::detail::LsqParams> p;
  for (std::size_t c = 0; c < s.size(); ++c)
    p.push_back(fq::detail::make_lsq_params<M>(s[c], z[c], r, axis >= 0));
  std::vector<double> a(s.size(), 0.0);
  for (std::int64_t i = 0; i < rows * cols; ++i) {
    const auto ch = static_cast<std::size_t>(axis < 0 ? 0 : (axis == 0 ? i / cols : i % cols));
    float yv, dxv, ts, tz;
    const auto iu = static_cast<std::size_t>(i);
    fq::detail::lsq_element<M>(x[iu], dy[iu], p[ch], yv, dxv, ts, tz);
    a[ch] += std::fabs(double(ts)) + std::fabs(double(tz));  // tz is dy * s (clipped) or 0
  }
  for (double& v : a) v = 1e-5 * v + 1e-6;
  return a;
}

template <class M>
void compare(const std::vector<float>& x, const std::vector<float>& dy, std::int64_t rows,
             std::int64_t cols, int axis, const std::vector<float>& s, const std::vector<float>& z,
             fq::QuantRange r) {
  for (bool in_place : {false, true}) {
    const Result a = run<M>(x, dy, rows, cols, axis, s, z, r, Isa::kAuto, in_place);
    const Result b = run<M>(x, dy, rows, cols, axis, s, z, r, Isa::kScalar, false);
    INFO("[" << rows << ", " << cols << "] axis " << axis << " range [" << r.quant_min << ", "
             << r.quant_max << "] z " << z[0] << " in place " << in_place);
    REQUIRE(fq_test::first_bit_mismatch(a.y, b.y) == -1);
    REQUIRE(fq_test::first_bit_mismatch(a.dx, b.dx) == -1);
    const auto tols = tolerances<M>(x, dy, rows, cols, axis, s, z, r);
    for (std::size_t c = 0; c < a.ds.size(); ++c) {
      const double tol = tols[c];
      INFO("channel " << c << " ds " << a.ds[c] << " want " << b.ds[c] << " dz " << a.dz[c]
                      << " want " << b.dz[c] << " tol " << tol);
      REQUIRE(std::fabs(double(a.ds[c]) - double(b.ds[c])) <= tol);
      REQUIRE(std::fabs(double(a.dz[c]) - double(b.dz[c])) <= tol);
    }
  }
}

/// x with ties, grid points and specials (NaN, +-Inf, -0, huge) around the range; dy finite.
std::vector<float> make_x(std::size_t n, float s, fq::QuantRange r, float z, std::uint32_t seed) {
  return fq_test::make_fq_input<float>(n, s, r.quant_min, r.quant_max,
                                       static_cast<std::int32_t>(std::nearbyint(z)), seed);
}

std::vector<float> make_dy(std::size_t n, std::uint32_t seed) {
  return fq_test::make_fq_input<float>(n, 0.01f, -100, 100, 0, seed, false);
}

template <class M>
void per_tensor_cases() {
  // (scale, zero point, range): shifted rounding (z != 0), the shared level (z = 0), zf != zb
  // (z = 2.5: forward 2, backward 3), and ranges beyond +-2^20 (general batches).
  struct Case {
    float s, z;
    fq::QuantRange r;
  };
  constexpr std::int64_t k20 = std::int64_t{1} << 20;
  const Case cases[] = {{0.05f, 3.0f, {0, 255}},
                        {0.02f, 0.0f, {-128, 127}},
                        {0.1f, 2.5f, {0, 255}},
                        {0.3f, -1.0f, {-8, 7}},
                        {1e-5f, 0.0f, {-2 * k20, 2 * k20}},
                        {1e-4f, 100.0f, {-k20 - 1, k20}},
                        {0.5f, 0.0f, {-k20, k20}}};
  std::uint32_t seed = 500;
  for (const Case& c : cases) {
    for (std::int64_t n : {1, 15, 16, 17, 33, 64, 1023, 1024, 1025, 2067, 5000}) {
      const auto nu = static_cast<std::size_t>(n);
      const auto x = make_x(nu, c.s, c.r, c.z, seed++);
      const auto dy = make_dy(nu, seed++);
      compare<M>(x, dy, 1, n, -1, {c.s}, {c.z}, c.r);
    }
  }
}

template <class M>
void per_channel_cases() {
  std::uint32_t seed = 900;
  // 130 rows: channels innermost (axis 1), two whole blocks of kLsqBlock runs and a third
  // of 2, swept kLsqSweep runs at a time.
  for (std::int64_t rows : {3, 64, 130}) {
    for (std::int64_t cols : {16, 37, 1024, 1100}) {
      for (bool symmetric : {true, false}) {
        const auto n = static_cast<std::size_t>(rows * cols);
        const auto x = make_x(n, 0.02f, {-128, 127}, 0.0f, seed++);
        const auto dy = make_dy(n, seed++);
        for (int axis : {0, 1}) {
          const std::int64_t nc = axis == 0 ? rows : cols;
          std::vector<float> s(static_cast<std::size_t>(nc)), z(s.size());
          for (std::size_t c = 0; c < s.size(); ++c) {
            s[c] = 0.01f + 0.0003f * float(c % 50);
            z[c] = symmetric ? 0.0f : float(c % 9) - 4.0f;
          }
          compare<M>(x, dy, rows, cols, axis, s, z, {-128, 127});
        }
      }
    }
  }
}

}  // namespace

TEST_CASE("lsq SIMD per tensor: every form against the scalar kernel", "[lsq][simd]") {
  per_tensor_cases<fq::LsqTorch>();
  per_tensor_cases<fq::LsqTorchNoFma>();
  per_tensor_cases<fq::LsqPaper>();
}

TEST_CASE("lsq SIMD per channel, both axes, symmetric and affine", "[lsq][simd]") {
  per_channel_cases<fq::LsqTorch>();
  per_channel_cases<fq::LsqPaper>();
}

TEST_CASE("lsq SIMD: NaN and infinite gradients propagate as in the scalar kernel", "[lsq][simd]") {
  // dy = NaN or +-Inf in an in-range lane and in a clipped lane: y and dx bit for bit, and
  // the sums non-finite in the same way (NaN stays NaN; an Inf keeps its sign).
  const std::int64_t n = 70;
  auto x = make_x(static_cast<std::size_t>(n), 0.05f, {0, 255}, 3.0f, 77);
  x[5] = 1.0f;    // in range
  x[40] = 50.0f;  // clipped above
  for (float special :
       {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
        -std::numeric_limits<float>::infinity()}) {
    for (std::size_t at : {std::size_t{5}, std::size_t{40}}) {
      auto dy = make_dy(static_cast<std::size_t>(n), 78);
      dy[at] = special;
      for (float z : {3.0f, 0.0f}) {
        const Result a =
            run<fq::LsqTorch>(x, dy, 1, n, -1, {0.05f}, {z}, {0, 255}, Isa::kAuto, false);
        const Result b =
            run<fq::LsqTorch>(x, dy, 1, n, -1, {0.05f}, {z}, {0, 255}, Isa::kScalar, false);
        INFO("special " << special << " at " << at << " z " << z);
        REQUIRE(fq_test::first_bit_mismatch(a.y, b.y) == -1);
        REQUIRE(fq_test::first_bit_mismatch(a.dx, b.dx) == -1);
        CHECK(std::isnan(a.ds[0]) == std::isnan(b.ds[0]));
        CHECK(std::isnan(a.dz[0]) == std::isnan(b.dz[0]));
        if (std::isinf(b.ds[0])) CHECK(a.ds[0] == b.ds[0]);
        if (std::isinf(b.dz[0])) CHECK(a.dz[0] == b.dz[0]);
      }
    }
  }
}

TEST_CASE("lsq SIMD: signaling NaN gradients come out quieted on both paths", "[lsq][simd]") {
  // dx = dy * mask is a real multiplication on both paths: a signaling NaN dy gives the
  // quieted NaN (payload kept) in range and where clipped, never the signaling one.
  const std::int64_t n = 70;
  auto x = make_x(static_cast<std::size_t>(n), 0.05f, {0, 255}, 3.0f, 79);
  const float snan = fq_test::float_from_bits(0x7fa00001u);
  auto dy = make_dy(static_cast<std::size_t>(n), 80);
  for (std::size_t i = 0; i < dy.size(); i += 3) dy[i] = snan;
  for (std::size_t i = 0; i < x.size(); i += 2) x[i] = 50.0f;  // clipped above
  for (auto* mode : {"torch", "paper"}) {
    const bool torch = mode[0] == 't';
    const Result a =
        torch ? run<fq::LsqTorch>(x, dy, 1, n, -1, {0.05f}, {3.0f}, {0, 255}, Isa::kAuto, false)
              : run<fq::LsqPaper>(x, dy, 1, n, -1, {0.05f}, {3.0f}, {0, 255}, Isa::kAuto, false);
    const Result b =
        torch ? run<fq::LsqTorch>(x, dy, 1, n, -1, {0.05f}, {3.0f}, {0, 255}, Isa::kScalar, false)
              : run<fq::LsqPaper>(x, dy, 1, n, -1, {0.05f}, {3.0f}, {0, 255}, Isa::kScalar, false);
    INFO(mode);
    REQUIRE(fq_test::first_bit_mismatch(a.dx, b.dx) == -1);
    for (std::size_t i = 0; i < dy.size(); i += 3)
      REQUIRE(fq_test::bits_of(a.dx[i]) == 0x7fe00001u);
  }
}

#endif  // FQ_HAS_XSIMD
