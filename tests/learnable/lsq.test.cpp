// SPDX-License-Identifier: MIT
// LSQ / LSQ+ (learnable/lsq.hpp): PyTorch 1.13 golden vectors, the pins P7-P9, the paper
// mode's clipping rule, gradients against independent analytic formulas and finite
// differences, SIMD against scalar, the LsqQuantizer's chain rule, and bad input.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <type_traits>
#include <vector>

#include <fakequant/kernels/fake_quantize.hpp>
#include <fakequant/learnable/learnable.hpp>

#include "catch.hpp"
#include "learnable/lsq_golden_data.hpp"
#include "test_util.hpp"

namespace {

using fq::TensorView;
using fq_test::bits_of;
using fq_test::float_from_bits;

using fq_test::kInf;
using fq_test::kNaN;

std::vector<float> decode(const std::uint32_t* b, std::int64_t n) {
  std::vector<float> v(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) v[static_cast<std::size_t>(i)] = float_from_bits(b[i]);
  return v;
}

using fq_test::error_code_of;

/// Results of one fused call.
struct Out {
  std::vector<float> y, dx, ds, dz;
};

/// Runs the case's call with numerics M on views of the case's shape (row-major).
template <class M>
Out run_case(const fq_golden_lsq::LsqCase& c, fq::Isa path) {
  const auto x = decode(c.x, c.n), dy = decode(c.dy, c.n);
  const auto s = decode(c.scale, c.channels), z = decode(c.zero_point, c.channels);
  Out o{std::vector<float>(x.size()), std::vector<float>(x.size()), std::vector<float>(s.size()),
        std::vector<float>(s.size())};
  std::int64_t strides[4] = {1, 1, 1, 1};
  for (int d = c.rank - 2; d >= 0; --d) strides[d] = strides[d + 1] * c.shape[d + 1];
  const TensorView<const float> xv(x.data(), c.rank, c.shape, strides);
  const TensorView<const float> gv(dy.data(), c.rank, c.shape, strides);
  const TensorView<float> yv(o.y.data(), c.rank, c.shape, strides);
  const TensorView<float> dxv(o.dx.data(), c.rank, c.shape, strides);
  const float g = float_from_bits(c.grad_factor);
  const fq::QuantRange r{c.quant_min, c.quant_max};
  if (c.axis < 0) {
    const fq::LsqGrad gr = fq::lsq_per_tensor<M>(xv, gv, yv, dxv, s[0], z[0], r, g, path);
    o.ds[0] = gr.scale;
    o.dz[0] = gr.zero_point;
  } else {
    fq::lsq_per_channel<M>(xv, gv, yv, dxv, s.data(), z.data(), c.channels, c.axis, r, g,
                           o.ds.data(), o.dz.data(), path);
  }
  return o;
}

/// A bound on float summation error: 1e-5 * g * sum |dy * ds-term| per channel (+ 1e-6).
double sum_tolerance(const std::vector<float>& x, const std::vector<float>& dy, float s, float z,
                     const fq::QuantRange& r, float g, bool per_channel,
                     const std::vector<std::int64_t>& members) {
  const auto p = fq::detail::make_lsq_params<fq::LsqTorch>(s, z, r, per_channel);
  double a = 0;
  for (std::int64_t i : members) {
    float yv, dxv, ts, tz;
    const auto iu = static_cast<std::size_t>(i);
    fq::detail::lsq_element<fq::LsqTorch>(x[iu], dy[iu], p, yv, dxv, ts, tz);
    a += std::fabs(double(ts)) + std::fabs(double(tz));  // tz is dy * s (clipped) or 0
  }
  return 1e-5 * double(g) * a + 1e-6;
}

/// Element indices of each channel of a row-major case.
std::vector<std::vector<std::int64_t>> channel_members(const fq_golden_lsq::LsqCase& c) {
  std::vector<std::vector<std::int64_t>> m(static_cast<std::size_t>(c.channels));
  std::int64_t inner = 1;
  for (int d = c.axis + 1; d < c.rank; ++d) inner *= c.shape[d];
  for (std::int64_t i = 0; i < c.n; ++i) {
    const std::int64_t ch = c.axis < 0 ? 0 : (i / inner) % c.shape[c.axis];
    m[static_cast<std::size_t>(ch)].push_back(i);
  }
  return m;
}

template <class M>
void check_golden(const fq_golden_lsq::LsqCase& c, bool default_cpu, fq::Isa path) {
  const Out o = run_case<M>(c, path);
  const auto want_y = decode(default_cpu ? c.y0 : c.y, c.n);
  const auto want_dx = decode(default_cpu ? c.dx0 : c.dx, c.n);
  const auto want_ds = decode(default_cpu ? c.dscale0 : c.dscale, c.channels);
  const auto want_dz = decode(default_cpu ? c.dzero_point0 : c.dzero_point, c.channels);
  const auto x = decode(c.x, c.n), dy = decode(c.dy, c.n);
  const auto s = decode(c.scale, c.channels), z = decode(c.zero_point, c.channels);
  for (std::size_t i = 0; i < want_y.size(); ++i) {
    INFO(c.name << (default_cpu ? " (default cpu)" : "") << " element " << i << " x " << x[i]
                << " y " << o.y[i] << " want " << want_y[i] << " dx " << o.dx[i] << " want "
                << want_dx[i]);
    REQUIRE(bits_of(o.y[i]) == bits_of(want_y[i]));
    REQUIRE(bits_of(o.dx[i]) == bits_of(want_dx[i]));
  }
  const auto members = channel_members(c);
  for (std::size_t ch = 0; ch < want_ds.size(); ++ch) {
    const double tol = sum_tolerance(x, dy, s[ch], z[ch], {c.quant_min, c.quant_max},
                                     float_from_bits(c.grad_factor), c.axis >= 0, members[ch]);
    INFO(c.name << (default_cpu ? " (default cpu)" : "") << " channel " << ch << " ds " << o.ds[ch]
                << " want " << want_ds[ch] << " dz " << o.dz[ch] << " want " << want_dz[ch]
                << " tol " << tol);
    if (members[ch].size() == 1) {
      // One summand: ATen's per-element formula, bit for bit (signs of zero included).
      REQUIRE(bits_of(o.ds[ch]) == bits_of(want_ds[ch]));
      REQUIRE(bits_of(o.dz[ch]) == bits_of(want_dz[ch]));
      continue;
    }
    REQUIRE(std::fabs(double(o.ds[ch]) - double(want_ds[ch])) <= tol);
    REQUIRE(std::fabs(double(o.dz[ch]) - double(want_dz[ch])) <= tol);
    // A zero gradient has ATen's sign (+0: a sum of nothing or of zeros).
    if (want_ds[ch] == 0.0f) REQUIRE(bits_of(o.ds[ch]) == bits_of(want_ds[ch]));
    if (want_dz[ch] == 0.0f) REQUIRE(bits_of(o.dz[ch]) == bits_of(want_dz[ch]));
  }
}

/// An independent double-precision transcription of the LSQ paper's gradients for one
/// channel: returns {d scale, d zero point} and fills dx (masks only: 1 or 0).
std::pair<double, double> paper_reference(const std::vector<float>& x, const std::vector<float>& dy,
                                          float s, float z, std::int64_t qmin, std::int64_t qmax,
                                          double g, std::vector<float>& dx_mask) {
  const double zr = std::fmin(std::fmax(std::nearbyint(double(z)), double(qmin)), double(qmax));
  const double lo = double(qmin) - zr, hi = double(qmax) - zr;
  const float inv = 1.0f / s;
  double ds = 0, dz = 0;
  dx_mask.assign(x.size(), 0.0f);
  for (std::size_t i = 0; i < x.size(); ++i) {
    const double v = double(x[i] * inv);  // the float32 v the paper applies the rule to
    double term;
    if (v < lo || std::isnan(v)) {
      term = lo;
      dz += -double(s) * dy[i];
    } else if (v > hi) {
      term = hi;
      dz += -double(s) * dy[i];
    } else {
      term = std::nearbyint(v) - v;
      dx_mask[i] = 1.0f;
    }
    ds += term * dy[i];
  }
  return {g * ds, g * dz};
}

std::vector<float> randn(std::size_t n, float sigma, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, sigma);
  std::vector<float> v(n);
  for (auto& e : v) e = nd(rng);
  return v;
}

}  // namespace

TEST_CASE("lsq: golden vectors from PyTorch 1.13 (y, dx bitwise; ds, dz in tolerance)",
          "[lsq][golden]") {
  int per_tensor = 0, per_channel = 0;
  for (const auto& c : fq_golden_lsq::kLsqCases) {
    for (auto path : {fq::Isa::kAuto, fq::Isa::kScalar}) {
      check_golden<fq::LsqTorch>(c, false, path);
      check_golden<fq::LsqTorchNoFma>(c, true, path);
    }
    (c.axis < 0 ? per_tensor : per_channel) += 1;
  }
  CHECK(per_tensor >= 60);
  CHECK(per_channel >= 20);
}

TEST_CASE("lsq: 16-bit ranges over many channels hold the documented tolerance in every channel",
          "[lsq][golden]") {
  // |x / s| up to 2^15: a summand computed any other way than ATen's per-element formula
  // (f32((xq - z) s) - x) * inv is off by about an ulp of |x / s|, which exceeds the tolerance
  // in many channels; ATen's formula leaves only the summation order.
  int cases = 0, channels = 0, single = 0;
  for (const auto& c : fq_golden_lsq::kLsqCases) {
    if (c.quant_max - c.quant_min < 65535) continue;
    for (auto path : {fq::Isa::kAuto, fq::Isa::kScalar}) {
      check_golden<fq::LsqTorch>(c, false, path);
      check_golden<fq::LsqTorchNoFma>(c, true, path);
    }
    ++cases;
    channels += static_cast<int>(c.channels);
    single += c.n == c.channels ? 1 : 0;
  }
  CHECK(cases >= 10);
  CHECK(channels >= 600);
  CHECK(single >= 4);  // one element per channel or per tensor: ds, dz compared bitwise
}

TEST_CASE("lsq: the golden data tells the fused and the twice-rounded PyTorch kernels apart",
          "[lsq][golden]") {
  // PyTorch's AVX2 (fused x*inv+zb) and default (rounded twice) kernels differ on the
  // boundary cases, in dx and in ds: LsqTorch and LsqTorchNoFma each fail the other's data.
  int dx_differ = 0, ds_differ = 0;
  for (const auto& c : fq_golden_lsq::kLsqCases) {
    for (std::int64_t i = 0; i < c.n; ++i) dx_differ += (c.dx[i] != c.dx0[i]) ? 1 : 0;
    for (std::int64_t ch = 0; ch < c.channels; ++ch) {
      const double a = double(float_from_bits(c.dscale[ch]));
      const double b = double(float_from_bits(c.dscale0[ch]));
      ds_differ += std::fabs(a - b) > 1e-3 * std::fmax(1.0, std::fabs(a)) ? 1 : 0;
    }
  }
  CHECK(dx_differ > 0);
  CHECK(ds_differ > 0);
}

TEST_CASE("lsq: PyTorch pins P7-P9", "[lsq]") {
  std::vector<float> y(10), dx(10), ones(10, 1.0f);
  SECTION("P7: forward zero point 2 (rne), backward 3 (half-up)") {
    const float x = 0.46f;
    const auto g = fq::lsq_per_tensor(
        TensorView<const float>(&x, {1}), TensorView<const float>(ones.data(), {1}),
        TensorView<float>(y.data(), {1}), TensorView<float>(dx.data(), {1}), 0.1f, 2.5f, {-8, 7});
    CHECK(y[0] == 0.5f);
    CHECK(dx[0] == 0.0f);
    CHECK(g.scale == Approx(4.0f));
    CHECK(g.zero_point == Approx(-0.1f));
  }
  SECTION("P8: clipped forward, unclipped backward") {
    const float x = 0x1.a80002p+4f;
    const auto g = fq::lsq_per_tensor(TensorView<const float>(&x, {1}),
                                      TensorView<const float>(ones.data(), {1}),
                                      TensorView<float>(y.data(), {1}),
                                      TensorView<float>(dx.data(), {1}), 1.0f, 100.0f, {0, 126});
    CHECK(y[0] == 26.0f);
    CHECK(dx[0] == 1.0f);
    CHECK(g.scale == Approx(-0.500002f).epsilon(1e-6));
  }
  SECTION("P9") {
    const std::vector<float> x = {-3, -.26f, -.2f, 0, .13f, .5f, 1, 1.26f, 1.3f, 5};
    const auto g = fq::lsq_per_tensor(
        TensorView<const float>(x.data(), {10}), TensorView<const float>(ones.data(), {10}),
        TensorView<float>(y.data(), {10}), TensorView<float>(dx.data(), {10}), 0.1f, 2.0f, {-8, 7});
    const std::vector<float> want_y = {-1, -.3f, -.2f, 0, .1f, .5f, .5f, .5f, .5f, .5f};
    const std::vector<float> want_dx = {0, 1, 1, 1, 1, 1, 0, 0, 0, 0};
    for (std::size_t i = 0; i < 10; ++i) {
      CHECK(y[i] == Approx(want_y[i]));
      CHECK(dx[i] == want_dx[i]);
    }
    CHECK(g.scale == Approx(9.3f));
    CHECK(g.zero_point == Approx(-0.5f));
  }
}

TEST_CASE("lsq: paper mode clips before rounding, with one zero point", "[lsq]") {
  // s = 1, [-8, 7]: the cases of peer-numerics.md section 2.
  const std::vector<float> x = {7.3f, 7.5f, -8.5f, 6.5f, -8.0f, 7.0f};
  const std::vector<float> dy(x.size(), 1.0f);
  std::vector<float> y(x.size()), dx(x.size()), yt(x.size()), dxt(x.size());
  const auto n = static_cast<std::int64_t>(x.size());
  const TensorView<const float> xv(x.data(), {n}), gv(dy.data(), {n});
  const auto gp =
      fq::lsq_per_tensor<fq::LsqPaper>(xv, gv, TensorView<float>(y.data(), {n}),
                                       TensorView<float>(dx.data(), {n}), 1.0f, 0.0f, {-8, 7});
  fq::lsq_per_tensor<fq::LsqTorch>(xv, gv, TensorView<float>(yt.data(), {n}),
                                   TensorView<float>(dxt.data(), {n}), 1.0f, 0.0f, {-8, 7});
  const std::vector<float> want_dx = {0, 0, 0, 1, 1, 1};
  const std::vector<float> want_dxt = {1, 0, 1, 1, 1, 1};
  for (std::size_t i = 0; i < x.size(); ++i) {
    CHECK(bits_of(y[i]) == bits_of(yt[i]));  // same forward
    CHECK(dx[i] == want_dx[i]);
    CHECK(dxt[i] == want_dxt[i]);
  }
  // ds: 7 + 7 - 8 + (6 - 6.5) + 0 + 0; dz: -(1 + 1 + 1)
  CHECK(gp.scale == Approx(5.5f));
  CHECK(gp.zero_point == Approx(-3.0f));
  // One zero point: z = 2.5 is 2 in forward and backward (PyTorch's backward uses 3).
  const float x1 = 0.46f, one = 1.0f;
  float y1, dx1;
  const auto g1 = fq::lsq_per_tensor<fq::LsqPaper>(
      TensorView<const float>(&x1, {1}), TensorView<const float>(&one, {1}),
      TensorView<float>(&y1, {1}), TensorView<float>(&dx1, {1}), 0.1f, 2.5f, {-8, 7});
  CHECK(y1 == 0.5f);
  CHECK(dx1 == 1.0f);
  CHECK(g1.scale == Approx(5.0f - 0.46f / 0.1f).margin(1e-5));
  CHECK(g1.zero_point == 0.0f);
}

TEST_CASE("lsq: paper gradients equal an independent analytic transcription", "[lsq]") {
  for (std::uint32_t seed : {1u, 2u, 3u}) {
    const std::size_t n = 1000 + seed;
    const auto x = randn(n, 3.0f, seed), dy = randn(n, 1.0f, seed + 100);
    const float s = 0.07f * float(seed), z = 3.4f - float(seed);
    const fq::QuantRange r{-16, 15};
    const float g = 0.3f;
    std::vector<float> y(n), dx(n), mask;
    const auto ni = static_cast<std::int64_t>(n);
    const auto got = fq::lsq_per_tensor<fq::LsqPaper>(
        TensorView<const float>(x.data(), {ni}), TensorView<const float>(dy.data(), {ni}),
        TensorView<float>(y.data(), {ni}), TensorView<float>(dx.data(), {ni}), s, z, r, g);
    const auto want = paper_reference(x, dy, s, z, r.quant_min, r.quant_max, g, mask);
    CHECK(got.scale == Approx(want.first).epsilon(1e-5));
    CHECK(got.zero_point == Approx(want.second).epsilon(1e-5));
    for (std::size_t i = 0; i < n; ++i) REQUIRE(bits_of(dx[i]) == bits_of(dy[i] * mask[i]));
  }
}

TEST_CASE("lsq: dx matches finite differences of the clipped surrogate away from boundaries",
          "[lsq]") {
  // The STE treats rounding as identity: dx/dy must equal the derivative of
  // (clamp(x / s + z, qmin, qmax) - z) * s, sampled where that is smooth (|v - edge| > 1, so
  // both clipping rules agree) and away from the .5 rounding boundaries.
  const float s = 0.05f, z = 4.0f;
  const fq::QuantRange r{-32, 31};
  const auto x0 = randn(4000, 1.5f, 7);
  std::vector<float> x;
  for (float v : x0) {
    const double u = double(v) / s + z, frac = u - std::floor(u);
    const bool near_edge =
        std::fabs(u - double(r.quant_min)) < 1 || std::fabs(u - double(r.quant_max)) < 1;
    if (!near_edge && std::fabs(frac - 0.5) > 0.05) x.push_back(v);
  }
  REQUIRE(x.size() > 3000);
  const auto n = static_cast<std::int64_t>(x.size());
  const std::vector<float> dy(x.size(), 1.0f);
  std::vector<float> y(x.size()), dx(x.size());
  auto surrogate = [&](double v) {
    return (std::fmin(std::fmax(v / s + z, double(r.quant_min)), double(r.quant_max)) - z) * s;
  };
  int clipped = 0;
  for (auto run : {0, 1}) {
    if (run == 0)
      fq::lsq_per_tensor<fq::LsqTorch>(
          TensorView<const float>(x.data(), {n}), TensorView<const float>(dy.data(), {n}),
          TensorView<float>(y.data(), {n}), TensorView<float>(dx.data(), {n}), s, z, r);
    else
      fq::lsq_per_tensor<fq::LsqPaper>(
          TensorView<const float>(x.data(), {n}), TensorView<const float>(dy.data(), {n}),
          TensorView<float>(y.data(), {n}), TensorView<float>(dx.data(), {n}), s, z, r);
    for (std::size_t i = 0; i < x.size(); ++i) {
      const double h = 1e-3 * s;
      const double fd = (surrogate(double(x[i]) + h) - surrogate(double(x[i]) - h)) / (2 * h);
      INFO("x " << x[i] << " fd " << fd << " dx " << dx[i]);
      REQUIRE(std::fabs(fd - double(dx[i])) < 1e-6);
      clipped += dx[i] == 0.0f ? 1 : 0;
    }
  }
  CHECK(clipped > 100);  // the sample covers both branches
}

#if FQ_HAS_XSIMD  // a scalar-only build has no second path to compare (reported skipped)
TEST_CASE("lsq: SIMD kernels equal the scalar reference", "[lsq][simd]") {
  const std::int64_t rows = 37, cols = 203;  // odd sizes: tails and block edges
  const auto n = static_cast<std::size_t>(rows * cols);
  auto x = fq_test::make_fq_input<float>(n, 0.05f, -128, 127, 3, 11);
  const auto dy = randn(n, 1.0f, 12);
  std::vector<float> s(static_cast<std::size_t>(rows)), z(s.size());
  for (std::size_t c = 0; c < s.size(); ++c) {
    s[c] = 0.01f + 0.003f * float(c);
    z[c] = float(c % 9) - 4.5f;
  }
  auto check_pair = [&](auto tag, int axis, bool per_channel) {
    using M = decltype(tag);
    std::vector<float> y1(n), dx1(n), y2(n), dx2(n), ds1(s.size()), dz1(s.size()), ds2(s.size()),
        dz2(s.size());
    const TensorView<const float> xv(x.data(), {rows, cols}), gv(dy.data(), {rows, cols});
    if (per_channel) {
      const std::int64_t count = axis == 0 ? rows : cols;
      std::vector<float> sc(static_cast<std::size_t>(count)), zc(sc.size());
      for (std::size_t c = 0; c < sc.size(); ++c) {
        sc[c] = s[c % s.size()];
        zc[c] = z[c % z.size()];
      }
      ds1.resize(sc.size());
      dz1.resize(sc.size());
      ds2.resize(sc.size());
      dz2.resize(sc.size());
      fq::lsq_per_channel<M>(xv, gv, TensorView<float>(y1.data(), {rows, cols}),
                             TensorView<float>(dx1.data(), {rows, cols}), sc.data(), zc.data(),
                             count, axis, {-128, 127}, 0.5f, ds1.data(), dz1.data(),
                             fq::Isa::kAuto);
      fq::lsq_per_channel<M>(xv, gv, TensorView<float>(y2.data(), {rows, cols}),
                             TensorView<float>(dx2.data(), {rows, cols}), sc.data(), zc.data(),
                             count, axis, {-128, 127}, 0.5f, ds2.data(), dz2.data(),
                             fq::Isa::kScalar);
    } else {
      ds1.resize(1);
      dz1.resize(1);
      ds2.resize(1);
      dz2.resize(1);
      auto g1 = fq::lsq_per_tensor<M>(xv, gv, TensorView<float>(y1.data(), {rows, cols}),
                                      TensorView<float>(dx1.data(), {rows, cols}), 0.05f, 3.0f,
                                      {-128, 127}, 0.5f, fq::Isa::kAuto);
      auto g2 = fq::lsq_per_tensor<M>(xv, gv, TensorView<float>(y2.data(), {rows, cols}),
                                      TensorView<float>(dx2.data(), {rows, cols}), 0.05f, 3.0f,
                                      {-128, 127}, 0.5f, fq::Isa::kScalar);
      ds1[0] = g1.scale;
      dz1[0] = g1.zero_point;
      ds2[0] = g2.scale;
      dz2[0] = g2.zero_point;
    }
    REQUIRE(fq_test::first_bit_mismatch(y1, y2) == -1);
    REQUIRE(fq_test::first_bit_mismatch(dx1, dx2) == -1);
    for (std::size_t c = 0; c < ds1.size(); ++c) {
      if (std::isnan(ds2[c])) {
        CHECK(std::isnan(ds1[c]));
        continue;
      }
      CHECK(ds1[c] == Approx(ds2[c]).epsilon(1e-5).margin(1e-4));
      CHECK(dz1[c] == Approx(dz2[c]).epsilon(1e-5).margin(1e-4));
    }
  };
  for (int axis : {0, 1}) {
    check_pair(fq::LsqTorch{}, axis, true);
    check_pair(fq::LsqTorchNoFma{}, axis, true);
    check_pair(fq::LsqPaper{}, axis, true);
  }
  check_pair(fq::LsqTorch{}, 0, false);
  check_pair(fq::LsqTorchNoFma{}, 0, false);
  check_pair(fq::LsqPaper{}, 0, false);
  // The data holds NaN/Inf: their summands are finite (clipped), so the sums stay finite.
  std::vector<float> y(n), dx(n);
  const auto gr = fq::lsq_per_tensor(
      TensorView<const float>(x.data(), {rows, cols}),
      TensorView<const float>(dy.data(), {rows, cols}), TensorView<float>(y.data(), {rows, cols}),
      TensorView<float>(dx.data(), {rows, cols}), 0.05f, 3.0f, {-128, 127});
  CHECK(std::isfinite(gr.scale));
}

#endif  // FQ_HAS_XSIMD

TEST_CASE("lsq: per channel equals per tensor on each channel, on any axis and layout", "[lsq]") {
  // [3, 4, 5] viewed with axis 1 and a transposed (non-contiguous) layout.
  const std::int64_t A = 3, B = 4, C = 5;
  const auto x = randn(60, 0.4f, 21), dy = randn(60, 1.0f, 22);
  const std::vector<float> s = {0.01f, 0.02f, 0.05f, 0.1f};
  auto check = [&](auto tag, const std::vector<float>& z) {
    using M = decltype(tag);
    std::vector<float> y(60), dx(60), ds(4), dz(4);
    // element (a, b, c) at a + A * (c + C * b): axis 1 outermost in memory
    const std::int64_t shape[3] = {A, B, C}, strides[3] = {1, A * C, A};
    fq::lsq_per_channel<M>(TensorView<const float>(x.data(), 3, shape, strides),
                           TensorView<const float>(dy.data(), 3, shape, strides),
                           TensorView<float>(y.data(), 3, shape, strides),
                           TensorView<float>(dx.data(), 3, shape, strides), s.data(), z.data(), 4,
                           -2, {-8, 7}, 1.0f, ds.data(), dz.data());
    for (std::int64_t b = 0; b < B; ++b) {
      std::vector<float> xs, gs;
      std::vector<std::int64_t> at;
      for (std::int64_t a = 0; a < A; ++a)
        for (std::int64_t c = 0; c < C; ++c) {
          at.push_back(a + A * (c + C * b));
          xs.push_back(x[static_cast<std::size_t>(at.back())]);
          gs.push_back(dy[static_cast<std::size_t>(at.back())]);
        }
      std::vector<float> ys(xs.size()), dxs(xs.size());
      const auto k = static_cast<std::int64_t>(xs.size());
      const auto bu = static_cast<std::size_t>(b);
      const auto g = fq::lsq_per_tensor<M>(
          TensorView<const float>(xs.data(), {k}), TensorView<const float>(gs.data(), {k}),
          TensorView<float>(ys.data(), {k}), TensorView<float>(dxs.data(), {k}), s[bu], z[bu],
          {-8, 7});
      for (std::size_t i = 0; i < xs.size(); ++i) {
        REQUIRE(bits_of(y[static_cast<std::size_t>(at[i])]) == bits_of(ys[i]));
        REQUIRE(bits_of(dx[static_cast<std::size_t>(at[i])]) == bits_of(dxs[i]));
      }
      CHECK(ds[bu] == Approx(g.scale).epsilon(1e-6));
      CHECK(dz[bu] == Approx(g.zero_point).epsilon(1e-6).margin(1e-7));
    }
  };
  // The paper mode has one zero point everywhere. PyTorch's per-tensor backward rounds z
  // half-up and truncates (z = -3 gives -2), its per-channel one does not: the two agree
  // only for integer z >= 0.
  check(fq::LsqPaper{}, {0.0f, 2.5f, -3.2f, 7.0f});
  check(fq::LsqTorch{}, {0.0f, 2.0f, 3.0f, 7.0f});
}

TEST_CASE("lsq: gradient scale policies", "[lsq]") {
  const fq::QuantRange r{0, 255};
  CHECK(fq::TorchGradScale::factor(1000, 10, r) == Approx(1.0 / std::sqrt(1000.0 * 255)));
  CHECK(fq::LsqPaperGradScale::factor(1000, 10, r) == Approx(1.0 / std::sqrt(10.0 * 255)));
  CHECK(fq::NoGradScale::factor(1000, 10, r) == 1.0f);
  CHECK(error_code_of([] {
          fq::TorchGradScale::factor(10, 10, {-8, 0});
        }) == fq::ErrorCode::kInvalidRange);
}

TEST_CASE("lsq: LsqQuantizer applies the chain rule of its parametrization", "[lsq]") {
  const std::int64_t n = 500;
  const auto x = randn(500, 1.0f, 31), dy = randn(500, 1.0f, 32);
  const TensorView<const float> xv(x.data(), {n}), gv(dy.data(), {n});
  std::vector<float> y(500), dx(500), y_ref(500), dx_ref(500), y_fwd(500);
  const fq::QuantRange r{-128, 127};
  const float g = 1.0f / std::sqrt(500.0f * 127.0f);
  SECTION("PyTorch defaults: linear scale, TorchGradScale") {
    fq::LsqQuantizer<fq::TorchLsq> q(r);
    q.set_scale(0.02f);
    q.set_zero_point(1.5f);
    q.forward_backward(xv, gv, TensorView<float>(y.data(), {n}), TensorView<float>(dx.data(), {n}));
    const auto want = fq::lsq_per_tensor(xv, gv, TensorView<float>(y_ref.data(), {n}),
                                         TensorView<float>(dx_ref.data(), {n}), 0.02f, 1.5f, r, g);
    CHECK(q.scale_grad()[0] == Approx(want.scale).epsilon(1e-6));
    CHECK(q.zero_point_grad()[0] == Approx(want.zero_point).epsilon(1e-6));
    CHECK(fq_test::first_bit_mismatch(y, y_ref) == -1);
    q.forward(xv, TensorView<float>(y_fwd.data(), {n}));
    CHECK(fq_test::first_bit_mismatch(y_fwd, y_ref) == -1);
    // The floor: a parameter pushed below it still gives a positive scale.
    q.scale_param()[0] = -3.0f;
    CHECK(q.scale() == std::numeric_limits<float>::epsilon());
  }
  SECTION("log2-domain scale: d p = d s * s * ln 2") {
    using S = fq::LsqScheme<fq::LsqTorch, fq::NoGradScale, fq::Log2Scale>;
    fq::LsqQuantizer<S> q(r);
    q.set_scale(0.03f);
    q.forward_backward(xv, gv, TensorView<float>(y.data(), {n}), TensorView<float>(dx.data(), {n}));
    const float s = q.scale();
    CHECK(s == Approx(0.03f).epsilon(1e-6));
    const auto want = fq::lsq_per_tensor(xv, gv, TensorView<float>(y_ref.data(), {n}),
                                         TensorView<float>(dx_ref.data(), {n}), s, 0.0f, r, 1.0f);
    CHECK(q.scale_grad()[0] == Approx(want.scale * s * std::log(2.0)).epsilon(1e-5));
    // ds/dp by finite differences of the parametrization itself.
    const float p = q.scale_param()[0], h = 1e-3f;
    const double fd =
        (double(fq::Log2Scale::to_scale(p + h, "")) - double(fq::Log2Scale::to_scale(p - h, ""))) /
        (2.0 * double(h));
    CHECK(fd == Approx(double(fq::Log2Scale::grad(p, s))).epsilon(1e-3));
  }
  SECTION("power-of-two scale (round in log2): STE through the exponent") {
    using S = fq::LsqScheme<fq::LsqPaper, fq::NoGradScale, fq::LinearScale<>, fq::PowerOfTwoRound>;
    const fq::QuantRange r4{-8, 7};
    fq::LsqQuantizer<S> q(r4, 1, /*learn_zero_point=*/false);
    q.set_scale(0.05f);  // log2 = -4.32 -> 2^-4
    q.set_zero_point(2.0f);
    q.forward_backward(xv, gv, TensorView<float>(y.data(), {n}), TensorView<float>(dx.data(), {n}));
    CHECK(q.scale() == 0.0625f);
    const auto want = fq::lsq_per_tensor<fq::LsqPaper>(xv, gv, TensorView<float>(y_ref.data(), {n}),
                                                       TensorView<float>(dx_ref.data(), {n}),
                                                       0.0625f, 2.0f, r4, 1.0f);
    CHECK(q.scale_grad()[0] == Approx(want.scale * 0.0625f / 0.05f).epsilon(1e-5));
    CHECK(q.zero_point_grad()[0] == 0.0f);  // not learned
    CHECK(want.zero_point != 0.0f);
    for (float v : y) REQUIRE(std::fmod(double(v), 0.0625) == 0.0);  // on the 2^-4 grid
  }
  SECTION("per channel on the last axis, paper grad scale with N per channel") {
    using S = fq::LsqScheme<fq::LsqPaper, fq::LsqPaperGradScale, fq::LinearScale<>,
                            fq::NoScaleRestriction, fq::PerChannel<-1>>;
    fq::LsqQuantizer<S> q(r, 5);
    for (std::size_t c = 0; c < 5; ++c) q.scale_param()[c] = 0.01f * float(c + 1);
    const TensorView<const float> x2(x.data(), {100, 5}), g2(dy.data(), {100, 5});
    q.forward_backward(x2, g2, TensorView<float>(y.data(), {100, 5}),
                       TensorView<float>(dx.data(), {100, 5}));
    std::vector<float> s(5), z(5, 0.0f), ds(5), dz(5);
    for (std::size_t c = 0; c < 5; ++c) s[c] = 0.01f * float(c + 1);
    fq::lsq_per_channel<fq::LsqPaper>(x2, g2, TensorView<float>(y_ref.data(), {100, 5}),
                                      TensorView<float>(dx_ref.data(), {100, 5}), s.data(),
                                      z.data(), 5, 1, r, 1.0f, ds.data(), dz.data());
    const double gp = 1.0 / std::sqrt(100.0 * 127.0);
    for (std::size_t c = 0; c < 5; ++c)
      CHECK(q.scale_grad()[c] == Approx(ds[c] * gp).epsilon(1e-5));
    CHECK(fq_test::first_bit_mismatch(y, y_ref) == -1);
  }
}

TEST_CASE("lsq: bad input gets the clear errors", "[lsq][errors]") {
  using E = fq::ErrorCode;
  std::vector<float> x(8, 1.0f), dy(8, 1.0f), y(8), dx(8), s(4, 0.1f), z(4, 0.0f), ds(4), dz(4);
  const TensorView<const float> xv(x.data(), {2, 4}), gv(dy.data(), {2, 4});
  const TensorView<float> yv(y.data(), {2, 4}), dxv(dx.data(), {2, 4});
  for (float bad : {0.0f, -1.0f, kNaN, kInf, 1e-39f})
    CHECK(error_code_of([&] {
            fq::lsq_per_tensor(xv, gv, yv, dxv, bad, 0.0f, {-8, 7});
          }) == E::kInvalidScale);
  CHECK(error_code_of([&] {
          fq::lsq_per_tensor(xv, gv, yv, dxv, 0.1f, kNaN, {-8, 7});
        }) == E::kInvalidZeroPoint);
  CHECK(error_code_of([&] {
          fq::lsq_per_tensor(xv, gv, yv, dxv, 0.1f, 0.0f, {8, 7});
        }) == E::kInvalidRange);
  CHECK(error_code_of([&] {
          fq::lsq_per_tensor(xv, gv, yv, dxv, 0.1f, 0.0f, {-8, 7}, kNaN);
        }) == E::kInvalidArgument);
  CHECK(error_code_of([&] {
          fq::lsq_per_tensor(xv, TensorView<const float>(dy.data(), {4, 2}), yv, dxv, 0.1f, 0.0f,
                             {-8, 7});
        }) == E::kShapeMismatch);
  CHECK(error_code_of([&] {
          fq::lsq_per_tensor(xv, gv, yv, yv, 0.1f, 0.0f, {-8, 7});
        }) == E::kInvalidLayout);
  CHECK(error_code_of([&] {
          fq::lsq_per_channel(xv, gv, yv, dxv, s.data(), z.data(), 3, 1, {-8, 7}, 1.0f, ds.data(),
                              dz.data());
        }) == E::kParamCountMismatch);
  CHECK(error_code_of([&] {
          fq::lsq_per_channel(xv, gv, yv, dxv, s.data(), z.data(), 4, 2, {-8, 7}, 1.0f, ds.data(),
                              dz.data());
        }) == E::kInvalidAxis);
  s[2] = kNaN;
  CHECK(error_code_of([&] {
          fq::lsq_per_channel(xv, gv, yv, dxv, s.data(), z.data(), 4, 1, {-8, 7}, 1.0f, ds.data(),
                              dz.data());
        }) == E::kInvalidScale);
  fq::LsqQuantizer<fq::TorchLsq> q({-8, 7});
  q.scale_param()[0] = kNaN;
  CHECK(error_code_of([&] { q.forward_backward(xv, gv, yv, dxv); }) == E::kInvalidScale);
  CHECK(error_code_of([&] { q.set_scale(-2.0f); }) == E::kInvalidScale);
  CHECK(error_code_of([&] {
          fq::LsqQuantizer<fq::TorchLsq> bad({-8, 7}, 3);
        }) == E::kInvalidArgument);
  // A learned zero point that became NaN is named as such, before any integer conversion.
  fq::LsqQuantizer<fq::TorchLsq> qz({-8, 7});
  qz.zero_point()[0] = kNaN;
  for (int call = 0; call < 2; ++call) {
    try {
      if (call == 0)
        qz.forward(xv, yv);
      else
        qz.forward_backward(xv, gv, yv, dxv);
      FAIL("no error");
    } catch (const fq::Error& e) {
      CHECK(e.code() == E::kInvalidZeroPoint);
      CHECK_THAT(e.what(), Catch::Contains("zero point is NaN"));
    }
  }
  CHECK(error_code_of([&] {
          fq::lsq_per_channel(xv, gv, yv, dxv, std::vector<float>(4, 0.1f).data(),
                              std::vector<float>{0.0f, kNaN, 0.0f, 0.0f}.data(), 4, 1, {-8, 7},
                              1.0f, ds.data(), dz.data());
        }) == E::kInvalidZeroPoint);
  // LSQ computes in float32: ranges with more than 2^24 levels are refused, never wrong.
  CHECK(error_code_of([&] {
          fq::lsq_per_tensor(xv, gv, yv, dxv, 0.1f, 0.0f, {-(1 << 24), 1 << 24});
        }) == E::kInvalidRange);
  CHECK(error_code_of([&] {
          fq::LsqQuantizer<fq::TorchLsq> wide({-(1 << 24), 1 << 24});
        }) == E::kInvalidRange);
  // The parameters are a fixed-size view: no resize through the accessor.
  fq::LsqQuantizer<fq::TorchLsq> q4({-8, 7});
  const float* before = q4.scale_param().data();
  STATIC_REQUIRE(std::is_same<decltype(q4.scale_param()), fq::ParamSpan>::value);
  q4.scale_param()[0] = 0.5f;
  CHECK(q4.scale_param().data() == before);
  CHECK(q4.scale() == 0.5f);
  // Empty input: nothing written, zero gradients.
  const auto g = fq::lsq_per_tensor(
      TensorView<const float>(nullptr, {0}), TensorView<const float>(nullptr, {0}),
      TensorView<float>(nullptr, {0}), TensorView<float>(nullptr, {0}), 0.1f, 0.0f, {-8, 7});
  CHECK(g.scale == 0.0f);
  CHECK(g.zero_point == 0.0f);
  ds.assign(4, 9.0f);
  fq::lsq_per_channel(TensorView<const float>(nullptr, {0, 4}),
                      TensorView<const float>(nullptr, {0, 4}), TensorView<float>(nullptr, {0, 4}),
                      TensorView<float>(nullptr, {0, 4}), std::vector<float>(4, 0.1f).data(),
                      z.data(), 4, 1, {-8, 7}, 1.0f, ds.data(), dz.data());
  CHECK(ds[0] == 0.0f);
  // An empty tensor is a no-op whatever the parameter count (a quantizer sized for 4
  // channels meets an empty batch); the gradients are +0.
  ds.assign(4, 9.0f);
  dz.assign(4, 9.0f);
  fq::lsq_per_channel(TensorView<const float>(nullptr, {0, 3}),
                      TensorView<const float>(nullptr, {0, 3}), TensorView<float>(nullptr, {0, 3}),
                      TensorView<float>(nullptr, {0, 3}), std::vector<float>(4, 0.1f).data(),
                      z.data(), 4, 1, {-8, 7}, 1.0f, ds.data(), dz.data());
  for (std::size_t c = 0; c < 4; ++c) {
    CHECK(bits_of(ds[c]) == bits_of(0.0f));
    CHECK(bits_of(dz[c]) == bits_of(0.0f));
  }
}

#if FQ_HAS_XSIMD  // compares the SIMD and scalar paths
TEST_CASE("lsq: per channel on the innermost axis, many rows (block sums flushed)", "[lsq][simd]") {
  const std::int64_t rows = 2500, cols = 37;
  const auto n = static_cast<std::size_t>(rows * cols);
  const auto x = randn(n, 0.5f, 41), dy = randn(n, 1.0f, 42);
  std::vector<float> s(static_cast<std::size_t>(cols)), z(s.size());
  for (std::size_t c = 0; c < s.size(); ++c) {
    s[c] = 0.004f + 0.0005f * float(c);
    z[c] = float(c % 7) - 3.0f;
  }
  auto run = [&](auto tag, fq::Isa path, std::vector<float>& y, std::vector<float>& dx,
                 std::vector<float>& ds, std::vector<float>& dz) {
    using M = decltype(tag);
    y.resize(n);
    dx.resize(n);
    ds.resize(s.size());
    dz.resize(s.size());
    fq::lsq_per_channel<M>(TensorView<const float>(x.data(), {rows, cols}),
                           TensorView<const float>(dy.data(), {rows, cols}),
                           TensorView<float>(y.data(), {rows, cols}),
                           TensorView<float>(dx.data(), {rows, cols}), s.data(), z.data(), cols, -1,
                           {-128, 127}, 1.0f, ds.data(), dz.data(), path);
  };
  auto check = [&](auto tag) {
    std::vector<float> y1, dx1, ds1, dz1, y2, dx2, ds2, dz2;
    run(tag, fq::Isa::kAuto, y1, dx1, ds1, dz1);
    run(tag, fq::Isa::kScalar, y2, dx2, ds2, dz2);
    REQUIRE(fq_test::first_bit_mismatch(y1, y2) == -1);
    REQUIRE(fq_test::first_bit_mismatch(dx1, dx2) == -1);
    for (std::size_t c = 0; c < ds1.size(); ++c) {
      CHECK(ds1[c] == Approx(ds2[c]).epsilon(1e-5).margin(1e-3));
      CHECK(dz1[c] == Approx(dz2[c]).epsilon(1e-5).margin(1e-5));
    }
  };
  check(fq::LsqTorch{});
  check(fq::LsqPaper{});
}
#endif  // FQ_HAS_XSIMD
