// SPDX-License-Identifier: MIT
// Histogram, range choosers and HistogramObserver: PyTorch 1.13 goldens (binning, the MSE
// search's range, qparams), the edge bug pytorch#83672, the growth rule, bad input, and use in
// fq::FakeQuantize.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include <fakequant/observer/fake_quantize_module.hpp>
#include <fakequant/observer/fused_qparams.hpp>
#include <fakequant/observer/histogram_observer.hpp>

#include "catch.hpp"
#include "observer/histogram_golden_data.hpp"
#include "test_util.hpp"

namespace {

using fq::TensorView;
using fq_test::bits_of;
using fq_test::float_from_bits;

using AffineRt = fq::QScheme<fq::RuntimeRange, fq::Affine>;
using SymmetricRt = fq::QScheme<fq::RuntimeRange, fq::Symmetric>;

std::vector<float> decode(const std::uint32_t* bits, std::int64_t n) {
  std::vector<float> v(static_cast<std::size_t>(n));
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = float_from_bits(bits[i]);
  return v;
}

TensorView<const float> view(const std::vector<float>& v) {
  return TensorView<const float>(v.data(), {static_cast<std::int64_t>(v.size())});
}

fq::MseHistogramObserver observe_case(const fq_golden::HistogramCase& c) {
  fq::MseHistogramObserver ob(c.bins);
  for (int b = 0; b < c.batches; ++b) ob.observe(view(decode(c.x_bits[b], c.n)));
  return ob;
}

std::vector<std::uint64_t> reference_counts(const std::vector<float>& x, const fq::Histogram& h) {
  std::vector<std::uint64_t> c(static_cast<std::size_t>(h.bins()), 0);
  const float lo = static_cast<float>(h.lower()), w = static_cast<float>(h.upper() - h.lower());
  const float n = static_cast<float>(h.bins());
  if (h.degenerate()) {
    c[0] = x.size();
    return c;
  }
  for (float v : x)
    ++c[static_cast<std::size_t>(fq::detail::histogram_bin<float>(v, lo, n, w, n - 1))];
  return c;
}

std::vector<float> randn(std::size_t n, std::uint32_t seed, float sigma = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> g(0.0f, sigma);
  std::vector<float> v(n);
  for (auto& x : v) x = g(rng);
  return v;
}

}  // namespace

TEST_CASE("histogram: golden binning, MSE range and qparams from torch 1.13",
          "[histogram][observer][golden]") {
  int checked = 0;
  for (const auto& c : fq_golden::kHistogramCases) {
    if (!c.exact) continue;
    INFO("case " << c.name);
    const auto ob = observe_case(c);
    const auto& h = ob.histogram();
    REQUIRE(h.total() == static_cast<std::uint64_t>(c.torch_hist_sum));
    for (std::int64_t i = 0; i < c.bins; ++i) {
      INFO("bin " << i);
      REQUIRE(h.counts()[static_cast<std::size_t>(i)] == c.torch_hist[i]);
    }
    const fq::QuantRange r{c.quant_min, c.quant_max};
    const fq::ClipRange cr = ob.clip_range(r);
    CHECK(bits_of(cr.min_val) == c.new_min_bits);
    CHECK(bits_of(cr.max_val) == c.new_max_bits);
    const auto q =
        c.symmetric ? ob.calculate_qparams<SymmetricRt>(r) : ob.calculate_qparams<AffineRt>(r);
    CHECK(bits_of(q.scale) == c.scale_bits);
    CHECK(q.zero_point == c.zero_point);
    ++checked;
  }
  CHECK(checked == 42);
}

TEST_CASE("histogram: values at the edges are counted (pytorch#83672)", "[histogram][observer]") {
  const fq_golden::HistogramCase* bug = nullptr;
  for (const auto& c : fq_golden::kHistogramCases)
    if (!c.exact) bug = &c;
  REQUIRE(bug != nullptr);
  const auto ob = observe_case(*bug);
  const auto& h = ob.histogram();
  // PyTorch bins [-3.7, ..., 5.2] over [int(-3.7), int(5.2)] = [-3, 5]: -3.7 and 5.2 are lost.
  CHECK(bug->torch_hist_sum == 3);
  CHECK(h.total() == 5);
  CHECK(h.counts().front() == 1);  // -3.7, the minimum
  CHECK(h.counts().back() == 1);   // 5.2, the maximum
  CHECK(h.lower() == static_cast<double>(-3.7f));
  CHECK(h.upper() == static_cast<double>(5.2f));
  std::uint64_t sum = 0;
  for (auto v : h.counts()) sum += v;
  CHECK(sum == 5);
  // So the qparams differ from PyTorch's (documented in docs/calibration.md): PyTorch's search
  // never saw -3.7 and 5.2 and picks [-1.475, 1.8625]; ours reaches beyond -3 and 5.
  const auto q = ob.calculate_qparams<AffineRt>({0, 255});
  CHECK(bits_of(q.scale) != bug->scale_bits);
  CHECK(float_from_bits(bug->new_max_bits) < 2.0f);
  const fq::ClipRange cr = ob.clip_range({0, 255});
  CHECK(cr.min_val < -3.0f);
  CHECK(cr.max_val > 5.0f);
  // With no clipping (percentile 100) the range is exactly the data's.
  fq::PercentileHistogramObserver all(2048, fq::PercentileRange{100.0});
  all.observe(view(decode(bug->x_bits[0], bug->n)));
  CHECK(all.clip_range({0, 255}).min_val == -3.7f);
  CHECK(all.clip_range({0, 255}).max_val == 5.2f);
}

TEST_CASE("histogram: blocked binning equals the per-element reference", "[histogram]") {
  for (std::int64_t bins : {1, 7, 300, 2048}) {
    for (std::size_t n : {std::size_t{1}, std::size_t{3}, std::size_t{255}, std::size_t{4099}}) {
      auto x = randn(n, static_cast<std::uint32_t>(n * 31 + static_cast<std::size_t>(bins)), 3.0f);
      fq::Histogram h(bins);
      h.add(view(x));
      INFO("bins " << bins << " n " << n);
      const auto ref = reference_counts(x, h);
      CHECK(h.counts() == ref);
      CHECK(h.total() == n);
      // A second batch inside the range takes the one-pass path: the same bins again.
      if (!h.degenerate()) {
        h.add(view(x));
        for (std::size_t i = 0; i < ref.size(); ++i) REQUIRE(h.counts()[i] == 2 * ref[i]);
        CHECK(h.data_min() == static_cast<double>(*std::min_element(x.begin(), x.end())));
        CHECK(h.data_max() == static_cast<double>(*std::max_element(x.begin(), x.end())));
      }
      // A strided view of the same values (every other element of a padded buffer).
      std::vector<float> padded(2 * n, 1e30f);
      for (std::size_t i = 0; i < n; ++i) padded[2 * i] = x[i];
      fq::Histogram hs(bins);
      hs.add(TensorView<const float>(padded.data(), {static_cast<std::int64_t>(n)}, {2}));
      CHECK(hs.counts() == ref);
    }
  }
}

TEST_CASE("histogram: growth moves whole bins and drops nothing", "[histogram]") {
  fq::Histogram h(4);
  const std::vector<float> a{0, 1, 2, 3, 4};
  h.add(view(a));
  CHECK(h.counts() == std::vector<std::uint64_t>{1, 1, 1, 2});  // 4 is in the last bin
  // New range [-2, 9]: m = 2 old bins below, factor k = ceil((2 + 9) / 4) = 3: width 3 over
  // [-2, 10]; old bins 0 | 1 2 3 -> new bins 0 | 1; then -2 -> bin 0, 9 -> bin 3.
  const std::vector<float> b{-2, 9};
  h.add(view(b));
  CHECK(h.lower() == -2.0);
  CHECK(h.upper() == 10.0);
  CHECK(h.counts() == std::vector<std::uint64_t>{2, 4, 0, 1});
  CHECK(h.total() == 7);
  CHECK(h.data_min() == -2.0);
  CHECK(h.data_max() == 9.0);

  // Random growing batches: the total is always the number of values, every value is inside.
  fq::Histogram g(2048);
  std::uint64_t n = 0;
  for (int k = 0; k < 12; ++k) {
    auto x = randn(1000 + static_cast<std::size_t>(k), static_cast<std::uint32_t>(k + 1),
                   0.5f * static_cast<float>(k + 1));
    x[0] = k % 2 ? 1e3f * static_cast<float>(k) : -0.25f * static_cast<float>(k);
    g.add(view(x));
    n += x.size();
    std::uint64_t sum = 0;
    for (auto v : g.counts()) sum += v;
    REQUIRE(sum == n);
    REQUIRE(g.total() == n);
    REQUIRE(g.lower() <= g.data_min());
    REQUIRE(g.upper() >= g.data_max());
  }
}

TEST_CASE("histogram: constant batches, double data, huge ranges", "[histogram]") {
  fq::Histogram h(16);
  const std::vector<float> c(10, 2.5f);
  h.add(view(c));
  CHECK(h.degenerate());
  CHECK(h.counts()[0] == 10);
  h.add(view(c));
  CHECK(h.counts()[0] == 20);
  const std::vector<float> d{-1.5f, 6.5f};  // the point mass 2.5 is re-binned as a value
  h.add(view(d));
  CHECK_FALSE(h.degenerate());
  CHECK(h.total() == 22);
  CHECK(h.counts()[8] == 20);  // (2.5 + 1.5) * 16 / 8 = 8
  CHECK(h.counts()[0] == 1);
  CHECK(h.counts()[15] == 1);

  std::vector<double> xd{-1.0, 0.25, 3.0};
  fq::Histogram hd(4);
  hd.add(TensorView<const double>(xd.data(), {3}));
  CHECK(hd.counts() == std::vector<std::uint64_t>{1, 1, 0, 1});

  // (hi - lo) * bins overflows float32: binned in double, nothing lost.
  const std::vector<float> huge{-3e38f, 0.0f, 3e38f};
  fq::Histogram hh(2048);
  hh.add(view(huge));
  CHECK(hh.total() == 3);
  CHECK(hh.counts().front() == 1);
  CHECK(hh.counts().back() == 1);
  CHECK(hh.counts()[1024] == 1);
}

TEST_CASE("histogram observer: NaN/Inf is an error that changes nothing; empty is a no-op",
          "[histogram][observer]") {
  fq::MseHistogramObserver ob(64);
  const std::vector<float> x{-1.0f, 0.5f, 2.0f};
  ob.observe(view(x));
  const auto before = ob.histogram().counts();
  for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                    -std::numeric_limits<float>::infinity()}) {
    // Outside the range (two-pass path) and inside it (one-pass path, then re-checked).
    for (const std::vector<float>& y :
         {std::vector<float>{0.0f, bad, 100.0f}, std::vector<float>{0.0f, bad, 1.0f}}) {
      try {
        ob.observe(view(y));
        FAIL("no error for a non-finite value");
      } catch (const fq::Error& e) {
        CHECK(e.code() == fq::ErrorCode::kNonFiniteInput);
      }
      CHECK(ob.histogram().counts() == before);
      CHECK(ob.histogram().total() == 3);
      CHECK(ob.histogram().upper() == 2.0);
    }
  }
  ob.observe(TensorView<const float>(nullptr, {0, 3}));
  CHECK(ob.histogram().total() == 3);
  // Nothing observed: PyTorch's default qparams (1, 0).
  fq::MseHistogramObserver fresh;
  const auto q = fresh.calculate_qparams<AffineRt>({0, 255});
  CHECK(q.scale == 1.0f);
  CHECK(q.zero_point == 0);
  CHECK_THROWS_AS(fq::Histogram(0), fq::Error);
  CHECK_THROWS_AS(fq::PercentileHistogramObserver(16, fq::PercentileRange{40.0})
                      .calculate_qparams<AffineRt>({0, 255}),
                  fq::Error);
}

TEST_CASE("histogram observer: the MSE search lowers the quantization error",
          "[histogram][observer]") {
  // Laplace data (heavy tails): the clipped range must give a smaller squared error than the
  // full min/max range, and lie inside it.
  std::mt19937 rng(5);
  std::exponential_distribution<float> e(1.0f);
  std::bernoulli_distribution sign(0.5);
  std::vector<float> x(50000);
  for (auto& v : x) v = sign(rng) ? e(rng) : -e(rng);
  fq::MseHistogramObserver ob;
  ob.observe(view(x));
  const fq::QuantRange r{0, 255};
  const auto cr = ob.clip_range(r);
  const auto& mn = ob.min_val()[0];
  const auto& mx = ob.max_val()[0];
  CHECK(cr.min_val >= mn);
  CHECK(cr.max_val < mx);
  auto sse = [&](fq::QParams<std::int32_t> q) {
    fq::FakeQuantizer<AffineRt> fqz(r);
    fqz.set_qparams(q.scale, q.zero_point);
    std::vector<float> y(x.size());
    fqz.forward(view(x), TensorView<float>(y.data(), {static_cast<std::int64_t>(y.size())}));
    double s = 0;
    for (std::size_t i = 0; i < x.size(); ++i) s += double(y[i] - x[i]) * double(y[i] - x[i]);
    return s;
  };
  const double clipped = sse(ob.calculate_qparams<AffineRt>(r));
  const double full = sse(fq::calculate_qparams<AffineRt>(mn, mx, r));
  CHECK(clipped < full);
}

TEST_CASE("histogram observer: percentile range", "[histogram][observer]") {
  std::vector<float> u(10001);
  for (std::size_t i = 0; i < u.size(); ++i) u[i] = static_cast<float>(i) / 100.0f;  // 0..100
  fq::PercentileHistogramObserver ob(1000, fq::PercentileRange{99.0});
  ob.observe(view(u));
  const auto r = ob.clip_range({0, 255});
  CHECK(r.min_val == Approx(1.0f).margin(0.15));
  CHECK(r.max_val == Approx(99.0f).margin(0.15));
  ob.chooser().percentile = 100.0;
  const auto all = ob.clip_range({0, 255});
  CHECK(all.min_val == 0.0f);
  CHECK(all.max_val == 100.0f);
}

TEST_CASE("histogram observer: entropy (KL) range", "[histogram][observer]") {
  // Gaussian with a few far outliers: the threshold sits well inside the outliers.
  auto x = randn(50000, 11);
  for (int i = 0; i < 5; ++i) x[static_cast<std::size_t>(i)] = 30.0f + static_cast<float>(i);
  fq::EntropyHistogramObserver ob;
  ob.observe(view(x));
  const auto r = ob.clip_range({-128, 127});
  CHECK(r.max_val > 2.5f);
  CHECK(r.max_val < 15.0f);
  CHECK(r.min_val == -r.max_val);
  // TensorRT's fixed 2048 magnitude bins agree within a few source bins.
  fq::EntropyHistogramObserver o2(2048, fq::EntropyRange{2048});
  o2.observe(view(x));
  CHECK(o2.clip_range({-128, 127}).max_val == Approx(r.max_val).margin(0.5));
  CHECK_THROWS_AS(fq::EntropyHistogramObserver(16, fq::EntropyRange{1}).clip_range({-128, 127}),
                  fq::Error);
  // Non-negative data gives [0, T].
  std::vector<float> pos(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) pos[i] = std::fabs(x[i]);
  fq::EntropyHistogramObserver op;
  op.observe(view(pos));
  const auto rp = op.clip_range({0, 255});
  CHECK(rp.min_val == op.min_val()[0]);  // never below the data
  CHECK(rp.max_val < 15.0f);
  // Uniform data has no tail to cut: the threshold stays near the maximum.
  std::vector<float> u(20000);
  for (std::size_t i = 0; i < u.size(); ++i)
    u[i] = -1.0f + 2.0f * static_cast<float>(i) / static_cast<float>(u.size() - 1);
  fq::EntropyHistogramObserver ou;
  ou.observe(view(u));
  CHECK(ou.clip_range({-128, 127}).max_val > 0.9f);
  // Data far from zero: the magnitude histogram stays at most 2048 bins (fast), T <= max.
  std::vector<float> far(1000);
  for (std::size_t i = 0; i < far.size(); ++i) far[i] = 1000.0f + 1e-3f * static_cast<float>(i);
  fq::EntropyHistogramObserver of;
  of.observe(view(far));
  const auto rfar = of.clip_range({0, 255});
  CHECK(rfar.max_val <= far.back());
  CHECK(rfar.max_val > 900.0f);
}

TEST_CASE("histogram observer: works inside fq::FakeQuantize", "[histogram][observer]") {
  fq::FakeQuantize<fq::QScheme<fq::UInt8>, fq::HistogramObserver<>> fqm;
  fqm.observer() = fq::HistogramObserver<>(512);
  auto x = randn(4096, 3);
  std::vector<float> y(x.size());
  fq::Mask m;
  fqm.forward(view(x), TensorView<float>(y.data(), {4096}), &m);
  const auto q = fqm.observer().calculate_qparams<fq::QScheme<fq::UInt8>>({0, 255});
  CHECK(fqm.quantizer().scale()[0] == q.scale);
  CHECK(fqm.quantizer().zero_point()[0] == q.zero_point);
  CHECK(fqm.observer().histogram().bins() == 512);
  CHECK(fqm.observer().histogram().total() == 4096);
  // y is on the grid of the chosen qparams.
  for (float v : y) {
    const float level = v / q.scale + static_cast<float>(q.zero_point);
    REQUIRE(std::fabs(level - std::nearbyint(level)) < 1e-3f);
  }
}

TEST_CASE("histogram observer: qparams policy, double data, reset", "[histogram][observer]") {
  auto x = randn(3000, 21);
  fq::HistogramObserver<fq::PercentileRange, fq::FusedQParams<true>> fused(
      2048, fq::PercentileRange{100.0});
  fused.observe(view(x));
  const fq::QuantRange s8{-128, 127};
  const auto q = fused.calculate_qparams<AffineRt>(s8);
  const fq::ClipRange r = fused.clip_range(s8);
  const auto want = fq::FusedSymmetricQParams::compute<AffineRt>(r.min_val, r.max_val, s8);
  CHECK(q.scale == want.scale);
  CHECK(q.zero_point == want.zero_point);
  CHECK(r.min_val == *std::min_element(x.begin(), x.end()));

  std::vector<double> xd(x.begin(), x.end());
  fq::MseHistogramObserver od(512);
  od.observe(TensorView<const double>(xd.data(), {static_cast<std::int64_t>(xd.size())}));
  fq::MseHistogramObserver of(512);
  of.observe(view(x));
  CHECK(od.histogram().counts() == of.histogram().counts());  // float-exact values, same bins
  od.reset();
  CHECK(od.histogram().total() == 0);
  CHECK(od.min_val()[0] == std::numeric_limits<float>::infinity());
  CHECK(od.calculate_qparams<AffineRt>(s8).scale == 1.0f);
}
