// SPDX-License-Identifier: MIT
// GroupMinMaxObserver and GroupMseObserver (observer/group_observer.hpp): min-max qparams equal
// the per-channel observer's when a group is a row, and hand-computed values; per-group ranges
// on every layout against a brute force over multi-indices; the MSE clipping search against an
// independent loop (GPTQ's find_params written out), never worse than min-max and strictly
// better with an outlier; ties, all-zero groups, short tails, errors; the qparams drive
// LsqGroupQuantizer::set_qparams.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include <catch2/catch.hpp>

#include <fakequant/learnable/lsq_group.hpp>
#include <fakequant/observer/group_observer.hpp>
#include <fakequant/observer/minmax_observer.hpp>
#include <fakequant/scheme/qscheme.hpp>

#include "test_util.hpp"

using fq::GroupTail;
using fq::TensorView;

namespace {

constexpr int kRt = fq::kRuntimeGroupSize;
using fq_test::kEps;

using Sym4 = fq::QScheme<fq::Int4, fq::Symmetric, fq::PerGroup<kRt>>;
using Aff4 = fq::QScheme<fq::UInt4, fq::Affine, fq::PerGroup<kRt>>;
using USym4 = fq::QScheme<fq::UInt4, fq::Symmetric, fq::PerGroup<kRt>>;
using Aff8 = fq::QScheme<fq::UInt8, fq::Affine, fq::PerGroup<kRt>>;
using AffFloatZp = Aff4::with_zero_point<fq::FloatZeroPoint>;

std::vector<std::int64_t> row_major(const std::vector<std::int64_t>& shape) {
  std::vector<std::int64_t> st(shape.size(), 1);
  for (std::size_t d = shape.size(); d-- > 1;) st[d - 1] = st[d] * shape[d];
  return st;
}
TensorView<const float> view(const std::vector<float>& v, const std::vector<std::int64_t>& shape) {
  const std::vector<std::int64_t> st = row_major(shape);
  return TensorView<const float>(v.data(), static_cast<int>(shape.size()), shape.data(), st.data());
}

/// Elements of each group, from the multi-index (independent of GroupLayout's formula).
std::vector<std::vector<std::size_t>> ref_group_members(const std::vector<std::int64_t>& shape,
                                                        int axis, std::int64_t G) {
  const int rank = static_cast<int>(shape.size());
  const auto a = static_cast<std::size_t>(axis < 0 ? axis + rank : axis);
  std::int64_t outer = 1, inner = 1, n = 1;
  for (std::size_t d = 0; d < shape.size(); ++d) {
    n *= shape[d];
    if (d < a) outer *= shape[d];
    if (d > a) inner *= shape[d];
  }
  const std::int64_t K = shape[a], gs = G < 0 ? K : G, per_axis = (K + gs - 1) / gs;
  std::vector<std::vector<std::size_t>> members(static_cast<std::size_t>(outer * per_axis * inner));
  std::vector<std::int64_t> idx(shape.size());
  for (std::int64_t f = 0; f < n; ++f) {
    std::int64_t rest = f;
    for (std::size_t d = shape.size(); d-- > 0;) {
      idx[d] = rest % shape[d];
      rest /= shape[d];
    }
    std::int64_t o = 0, i = 0;
    for (std::size_t d = 0; d < a; ++d) o = o * shape[d] + idx[d];
    for (std::size_t d = a + 1; d < shape.size(); ++d) i = i * shape[d] + idx[d];
    members[static_cast<std::size_t>((o * per_axis + idx[a] / gs) * inner + i)].push_back(
        static_cast<std::size_t>(f));
  }
  return members;
}

/// The min-max rule written out (TorchAO choose_qparams_affine, float32).
struct RefQ {
  float s;
  float z;
};
RefQ ref_qparams(float mn, float mx, fq::QuantRange r, bool symmetric, float sym_zero) {
  mn = std::min(mn, 0.0f);
  mx = std::max(mx, 0.0f);
  const auto span = static_cast<float>(r.quant_max - r.quant_min);
  if (symmetric) return {std::max(std::max(-mn, mx) / (span / 2.0f), kEps), sym_zero};
  const float s = std::max((mx - mn) / span, kEps);
  const float z = std::nearbyint(static_cast<float>(r.quant_min) - std::nearbyint(mn / s));
  return {s,
          std::min(std::max(z, static_cast<float>(r.quant_min)), static_cast<float>(r.quant_max))};
}
float ref_fq(float x, RefQ q, fq::QuantRange r) {
  const float c = std::nearbyint(x * (1.0f / q.s)) + q.z;
  const float cl =
      std::min(std::max(c, static_cast<float>(r.quant_min)), static_cast<float>(r.quant_max));
  return (cl - q.z) * q.s;
}
double power(double e, double norm) { return norm == 2.0 ? e * e : std::pow(e, norm); }
double ref_error(const std::vector<float>& x, const std::vector<std::size_t>& members, RefQ q,
                 fq::QuantRange r, double norm) {
  double err = 0;
  for (std::size_t i : members)
    err += power(std::fabs(double(ref_fq(x[i], q, r)) - double(x[i])), norm);
  return err;
}

/// GPTQ's find_params(mse=True) per group, written out (file comment of group_observer.hpp).
struct RefMse {
  RefQ q;
  float ratio;
  double error;
};
RefMse ref_mse(const std::vector<float>& x, const std::vector<std::size_t>& members,
               fq::QuantRange r, bool symmetric, float sym_zero, const fq::GroupMseOptions& o) {
  float mn = std::numeric_limits<float>::infinity(), mx = -mn;
  for (std::size_t i : members) {
    mn = std::min(mn, x[i]);
    mx = std::max(mx, x[i]);
  }
  RefMse best{ref_qparams(mn, mx, r, symmetric, sym_zero), 1.0f,
              std::numeric_limits<double>::infinity()};
  const auto count = std::max<std::int64_t>(
      1, static_cast<std::int64_t>(o.maxshrink * static_cast<double>(o.grid)));
  for (std::int64_t i = 0; i < count; ++i) {
    const auto p = static_cast<float>(1.0 - double(i) / double(o.grid));
    const RefQ q = ref_qparams(p * mn, p * mx, r, symmetric, sym_zero);
    const double e = ref_error(x, members, q, r, o.norm);
    if (e < best.error) best = {q, p, e};
  }
  return best;
}

std::vector<float> gaussian(std::size_t n, std::uint32_t seed, float sigma) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> g(0.0f, sigma);
  std::vector<float> v(n);
  for (float& e : v) e = g(rng);
  return v;
}

}  // namespace

TEST_CASE("GroupMinMaxObserver: one group per row equals the per-channel observer",
          "[formats][group_observer]") {
  const std::vector<std::int64_t> shape{6, 40};
  std::vector<float> x = gaussian(240, 1, 0.7f);
  for (std::size_t c = 0; c < 40; ++c) x[40 + c] = std::fabs(x[40 + c]);  // a positive row
  for (std::size_t c = 0; c < 40; ++c) x[80 + c] = 0.0f;                  // an all-zero row
  fq::PerChannelMinMaxObserver pc(0.01f, 0);
  pc.observe(view(x, shape));
  fq::GroupMinMaxObserver go(40);
  go.observe(view(x, shape));
  auto same = [&](auto scheme_tag, auto channel_tag, fq::QuantRange r) {
    using GS = decltype(scheme_tag);
    using CS = decltype(channel_tag);
    std::vector<float> s;
    std::vector<typename CS::zero_point_type> z;
    pc.calculate_qparams<CS>(r, s, z);
    const auto q = go.calculate_qparams<GS>(r);
    REQUIRE(q.scale.size() == 6);
    CHECK(fq_test::first_bit_mismatch(q.scale, s) == -1);
    CHECK(q.zero_point == z);
  };
  same(Sym4{}, fq::QScheme<fq::Int4, fq::Symmetric, fq::PerChannel<0>>{}, fq::Int4::value());
  same(Aff4{}, fq::QScheme<fq::UInt4, fq::Affine, fq::PerChannel<0>>{}, fq::UInt4::value());
  same(USym4{}, fq::QScheme<fq::UInt4, fq::Symmetric, fq::PerChannel<0>>{}, fq::UInt4::value());
  same(Aff8{}, fq::QScheme<fq::UInt8, fq::Affine, fq::PerChannel<0>>{}, fq::UInt8::value());
  same(AffFloatZp{},
       fq::QScheme<fq::UInt4, fq::Affine, fq::PerChannel<0>>::with_zero_point<fq::FloatZeroPoint>{},
       fq::UInt4::value());
  // The whole-axis group (per token) is the same.
  fq::GroupMinMaxObserver tok(fq::kWholeAxisGroup);
  tok.observe(view(x, shape));
  CHECK(tok.calculate_qparams<fq::QScheme<fq::Int8, fq::Affine, fq::PerToken>>().scale ==
        go.calculate_qparams<fq::QScheme<fq::Int8, fq::Affine, fq::PerGroup<kRt>>>().scale);
}

TEST_CASE("GroupMinMaxObserver: hand-computed qparams, every layout, running mode",
          "[formats][group_observer]") {
  // Groups of 4: [-1, 0.5, 2, 3] and [-1, 2, 0, 0.25].
  const std::vector<float> x{-1.0f, 0.5f, 2.0f, 3.0f, -1.0f, 2.0f, 0.0f, 0.25f};
  fq::GroupMinMaxObserver o(4);
  o.observe(view(x, {8}));
  const auto sym = o.calculate_qparams<Sym4>();
  CHECK(sym.scale[0] == 3.0f / 7.5f);  // amax / ((7 - -8) / 2)
  CHECK(sym.scale[1] == 2.0f / 7.5f);
  CHECK(sym.zero_point == std::vector<std::int32_t>{0, 0});
  const auto aff = o.calculate_qparams<Aff4>();
  CHECK(aff.scale[0] == 4.0f / 15.0f);
  CHECK(aff.zero_point[0] == 4);  // 0 - rne(-1 / (4/15)) = rne(3.75) = 4
  CHECK(aff.scale[1] == 3.0f / 15.0f);
  CHECK(aff.zero_point[1] == 5);  // rne(5) = 5
  CHECK(o.calculate_qparams<USym4>().zero_point == std::vector<std::int32_t>{8, 8});

  // Per-group min/max on layouts with an inner extent and short tails, against a brute force.
  struct Case {
    std::vector<std::int64_t> shape;
    int axis;
    std::int64_t G;
    GroupTail tail;
  };
  const std::vector<Case> cases{{{2, 7, 5}, 1, 3, GroupTail::kShortLast},
                                {{3, 10}, -1, 4, GroupTail::kShortLast},
                                {{8, 3, 2}, 0, 4, GroupTail::kMustDivide},
                                {{5, 9}, 1, fq::kWholeAxisGroup, GroupTail::kMustDivide}};
  std::uint32_t seed = 5;
  for (const Case& c : cases) {
    CAPTURE(c.shape, c.axis, c.G);
    std::int64_t n = 1;
    for (auto e : c.shape) n *= e;
    const std::vector<float> v = gaussian(static_cast<std::size_t>(n), seed++, 2.0f);
    fq::GroupMinMaxObserver obs(c.G, c.axis, c.tail);
    obs.observe(view(v, c.shape));
    const auto members = ref_group_members(c.shape, c.axis, c.G);
    REQUIRE(obs.min_val().size() == members.size());
    for (std::size_t g = 0; g < members.size(); ++g) {
      float mn = std::numeric_limits<float>::infinity(), mx = -mn;
      for (std::size_t i : members[g]) {
        mn = std::min(mn, v[i]);
        mx = std::max(mx, v[i]);
      }
      CHECK(obs.min_val()[g] == mn);
      CHECK(obs.max_val()[g] == mx);
    }
  }

  // kRunning folds; kLast replaces.
  const std::vector<float> a{1, 2, 3, 4, -1, -2, -3, -4}, b{0, 3, 0, 0, 0, 0, 0, -9};
  fq::GroupMinMaxObserver run(4, -1, GroupTail::kMustDivide, fq::GroupObserve::kRunning);
  fq::GroupMinMaxObserver last(4);
  for (const auto* t : {&a, &b}) {
    run.observe(view(*t, {2, 4}));
    last.observe(view(*t, {2, 4}));
  }
  CHECK(run.min_val() == std::vector<float>{0, -9});
  CHECK(run.max_val() == std::vector<float>{4, 0});
  CHECK(last.min_val() == std::vector<float>{0, -9});
  CHECK(last.max_val() == std::vector<float>{3, 0});
  run.reset();
  run.observe(view(a, {2, 4}));
  CHECK(run.min_val() == std::vector<float>{1, -4});
  CHECK(last.min_val() != run.min_val());
}

TEST_CASE("GroupMseObserver equals an independent GPTQ-style search", "[formats][group_observer]") {
  const std::vector<fq::GroupMseOptions> opts{{100, 0.8, 2.4}, {20, 0.5, 2.0}, {7, 0.9, 1.0}};
  std::uint32_t seed = 40;
  for (const auto& o : opts) {
    for (int layout = 0; layout < 2; ++layout) {
      CAPTURE(o.grid, o.maxshrink, o.norm, layout);
      // 30 small groups of 6 (or short-tailed groups of 5 along axis 1 with inner 3).
      const std::vector<std::int64_t> shape =
          layout == 0 ? std::vector<std::int64_t>{30, 6} : std::vector<std::int64_t>{4, 13, 3};
      const int axis = layout == 0 ? -1 : 1;
      const std::int64_t G = layout == 0 ? 6 : 5;
      std::int64_t n = 1;
      for (auto e : shape) n *= e;
      std::vector<float> x = gaussian(static_cast<std::size_t>(n), seed++, 1.0f);
      std::mt19937 rng(seed++);
      for (float& v : x)
        if (rng() % 9 == 0) v *= 6.0f;  // outliers
      fq::GroupMseObserver mse(G, axis, GroupTail::kShortLast, o);
      mse.observe(view(x, shape));
      const auto members = ref_group_members(shape, axis, G);
      auto run = [&](auto scheme_tag, bool symmetric, float sym_zero) {
        using S = fq::QScheme<typename decltype(scheme_tag)::range,
                              typename decltype(scheme_tag)::mapping,
                              fq::PerGroup<kRt, -1, GroupTail::kShortLast>>;
        const fq::QuantRange r = decltype(scheme_tag)::range::value();
        using SA = fq::QScheme<typename decltype(scheme_tag)::range,
                               typename decltype(scheme_tag)::mapping,
                               fq::PerGroup<kRt, 1, GroupTail::kShortLast>>;
        const auto q = layout == 0 ? mse.calculate_qparams<S>(r) : mse.calculate_qparams<SA>(r);
        REQUIRE(q.scale.size() == members.size());
        int mismatches = 0;
        for (std::size_t g = 0; g < members.size(); ++g) {
          const RefMse want = ref_mse(x, members[g], r, symmetric, sym_zero, o);
          const bool ok = fq_test::bits_of(q.scale[g]) == fq_test::bits_of(want.q.s) &&
                          static_cast<float>(q.zero_point[g]) == want.q.z &&
                          q.ratio[g] == want.ratio && q.error[g] == want.error;
          if (!ok && ++mismatches <= 3) {
            INFO("group " << g << ": scale " << q.scale[g] << " vs " << want.q.s << ", zero "
                          << q.zero_point[g] << " vs " << want.q.z << ", ratio " << q.ratio[g]
                          << " vs " << want.ratio << ", error " << q.error[g] << " vs "
                          << want.error);
            CHECK(ok);
          }
        }
        CHECK(mismatches == 0);
      };
      run(Sym4{}, true, 0.0f);
      run(Aff4{}, false, 0.0f);
      run(USym4{}, true, 8.0f);
    }
  }
}

TEST_CASE("GroupMseObserver: never worse than min-max, strictly better on heavy tails",
          "[formats][group_observer]") {
  // Even groups Gaussian, odd groups Laplace (heavy-tailed: clipping pays), group 2 Gaussian
  // with one far outlier (norm 2.4 charges the clipped outlier heavily: min-max may stay best).
  constexpr std::size_t kGroups = 8, kG = 64;
  std::vector<float> x = gaussian(kGroups * kG, 77, 1.0f);
  std::mt19937 rng(78);
  std::exponential_distribution<float> ex(1.0f);
  for (std::size_t g = 1; g < kGroups; g += 2)
    for (std::size_t k = 0; k < kG; ++k) x[g * kG + k] = (rng() % 2 ? 1.0f : -1.0f) * ex(rng);
  x[2 * kG + 10] = 25.0f;
  const std::vector<std::int64_t> shape{static_cast<std::int64_t>(kGroups),
                                        static_cast<std::int64_t>(kG)};
  fq::GroupMseObserver mse(kG);
  fq::GroupMinMaxObserver mm(kG);
  mse.observe(view(x, shape));
  mm.observe(view(x, shape));
  const auto members = ref_group_members(shape, -1, kG);
  auto check = [&](auto scheme_tag, bool symmetric) {
    using S = decltype(scheme_tag);
    const fq::QuantRange r = S::range::value();
    const auto qm = mm.calculate_qparams<S>();
    const auto qs = mse.calculate_qparams<S>();
    int better = 0;
    for (std::size_t g = 0; g < kGroups; ++g) {
      CAPTURE(g, symmetric);
      const RefQ mmq{qm.scale[g], static_cast<float>(qm.zero_point[g])};
      const RefQ msq{qs.scale[g], static_cast<float>(qs.zero_point[g])};
      const double e_mm = ref_error(x, members[g], mmq, r, 2.4);
      const double e_mse = ref_error(x, members[g], msq, r, 2.4);
      CHECK(e_mse == Approx(qs.error[g]).epsilon(1e-12));
      CHECK(e_mse <= e_mm);
      if (g % 2 == 1 && e_mse < e_mm) {  // Laplace, clipped
        ++better;
        CHECK(qs.ratio[g] < 1.0f);
      }
    }
    CHECK(better >= 3);  // of the 4 Laplace groups (a Laplace sample may keep its range)
  };
  check(Sym4{}, true);
  check(Aff4{}, false);
}

TEST_CASE("GroupMseObserver: ties keep the larger ratio; all-zero groups; short tails",
          "[formats][group_observer]") {
  // Group 0 all zero (every ratio: error 0); group 1 tiny (every ratio's scale is eps: equal
  // errors > 0); group 2 ordinary; group 3 the short tail (2 elements).
  const std::vector<float> x{0.0f,  0.0f,  0.0f, 0.0f,  1e-9f, -2e-9f, 5e-10f,
                             1e-9f, -0.3f, 1.2f, 0.05f, -2.0f, 0.7f,   -0.1f};
  fq::GroupMseObserver mse(4, -1, GroupTail::kShortLast);
  fq::GroupMinMaxObserver mm(4, -1, GroupTail::kShortLast);
  mse.observe(view(x, {14}));
  mm.observe(view(x, {14}));
  REQUIRE(mse.layout().groups() == 4);
  using S = fq::QScheme<fq::Int4, fq::Symmetric, fq::PerGroup<4, -1, GroupTail::kShortLast>>;
  using A = fq::QScheme<fq::UInt4, fq::Affine, fq::PerGroup<4, -1, GroupTail::kShortLast>>;
  const auto q = mse.calculate_qparams<S>();
  const auto qa = mse.calculate_qparams<A>();
  CHECK(q.ratio[0] == 1.0f);
  CHECK(q.error[0] == 0.0);
  CHECK(q.scale[0] == kEps);
  CHECK(q.zero_point[0] == 0);
  CHECK(qa.scale[0] == kEps);
  CHECK(qa.zero_point[0] == 0);
  CHECK(mm.calculate_qparams<S>().scale[0] == kEps);
  CHECK(mm.calculate_qparams<A>().zero_point[0] == 0);
  CHECK(q.ratio[1] == 1.0f);
  CHECK(q.error[1] > 0.0);
  CHECK(q.scale[1] == kEps);
  // The short tail is searched on its own two elements.
  const auto members = ref_group_members({14}, -1, 4);
  REQUIRE(members[3].size() == 2);
  const RefMse tail = ref_mse(x, members[3], fq::Int4::value(), true, 0.0f, fq::GroupMseOptions{});
  CHECK(q.scale[3] == tail.q.s);
  CHECK(q.ratio[3] == tail.ratio);
  CHECK(mm.calculate_qparams<S>().scale[3] == 0.7f / 7.5f);
  // The ratios: 1, 0.99, ..., 0.21 (80 of them).
  CHECK(mse.candidates() == 80);
  CHECK(mse.ratio(0) == 1.0f);
  CHECK(mse.ratio(79) == 0.21f);
}

TEST_CASE("Group observers: bad input", "[formats][group_observer]") {
  auto code = [](auto&& f) { return fq_test::error_code_of(f); };
  std::vector<float> x = gaussian(64, 3, 1.0f);
  fq::GroupMinMaxObserver mm(16);
  fq::GroupMseObserver mse(16);
  CHECK(code([&] { mm.calculate_qparams<Sym4>(); }) == fq::ErrorCode::kInvalidState);
  CHECK(code([&] { mse.calculate_qparams<Sym4>(); }) == fq::ErrorCode::kInvalidState);
  mm.observe(view(x, {4, 16}));
  mse.observe(view(x, {4, 16}));
  std::vector<float> bad = x;
  for (float special :
       {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
        -std::numeric_limits<float>::infinity()}) {
    bad[37] = special;
    CHECK(code([&] { mm.observe(view(bad, {4, 16})); }) == fq::ErrorCode::kNonFiniteInput);
    CHECK(code([&] { mse.observe(view(bad, {4, 16})); }) == fq::ErrorCode::kNonFiniteInput);
  }
  // The state is untouched by the failed calls.
  CHECK(mm.min_val()[2] == *std::min_element(x.begin() + 32, x.begin() + 48));
  CHECK(mse.calculate_qparams<Sym4>().scale.size() == 4);
  // 16 does not divide 24 (kMustDivide).
  CHECK(code([&] { mm.observe(view(x, {2, 24})); }) == fq::ErrorCode::kShapeMismatch);
  CHECK(code([&] { mse.observe(view(x, {2, 24})); }) == fq::ErrorCode::kShapeMismatch);
  // Running state with another layout.
  fq::GroupMinMaxObserver run(16, -1, GroupTail::kMustDivide, fq::GroupObserve::kRunning);
  run.observe(view(x, {4, 16}));
  CHECK(code([&] { run.observe(view(x, {2, 32})); }) == fq::ErrorCode::kShapeMismatch);
  // A scheme with other groups.
  CHECK(code([&] {
          mm.calculate_qparams<fq::QScheme<fq::Int4, fq::Symmetric, fq::PerGroup<32>>>();
        }) == fq::ErrorCode::kInvalidArgument);
  CHECK(code([&] {
          mm.calculate_qparams<fq::QScheme<fq::Int4, fq::Symmetric, fq::PerGroup<16, 0>>>();
        }) == fq::ErrorCode::kInvalidArgument);
  CHECK(code([&] {
          mm.calculate_qparams<
              fq::QScheme<fq::Int4, fq::Symmetric, fq::PerGroup<16, -1, GroupTail::kShortLast>>>();
        }) == fq::ErrorCode::kInvalidArgument);
  CHECK(mm.calculate_qparams<fq::QScheme<fq::Int4, fq::Symmetric, fq::PerGroup<16, 1>>>()
            .scale.size() == 4);
  // Configuration.
  CHECK(code([&] { fq::GroupMinMaxObserver o(0); }) == fq::ErrorCode::kInvalidArgument);
  CHECK(code([&] {
          fq::GroupMseObserver o(8, -1, GroupTail::kMustDivide, {0, 0.8, 2.4});
        }) == fq::ErrorCode::kInvalidArgument);
  CHECK(code([&] {
          fq::GroupMseObserver o(8, -1, GroupTail::kMustDivide, {100, 1.0, 2.4});
        }) == fq::ErrorCode::kInvalidArgument);
  CHECK(code([&] {
          fq::GroupMseObserver o(8, -1, GroupTail::kMustDivide, {100, 0.8, 0.0});
        }) == fq::ErrorCode::kInvalidArgument);
  // A strided view.
  const std::int64_t sh[2] = {16, 4}, st[2] = {1, 16};
  CHECK(code([&] { mm.observe(TensorView<const float>(x.data(), 2, sh, st)); }) ==
        fq::ErrorCode::kInvalidLayout);
  // Empty tensors are ignored.
  std::vector<float> none;
  mm.observe(view(none, {0, 16}));
  CHECK(mm.has_data());
  CHECK(mm.min_val().size() == 4);
}

TEST_CASE("Group observer qparams drive LsqGroupQuantizer::set_qparams",
          "[formats][group_observer]") {
  const std::vector<std::int64_t> shape{4, 32};
  std::vector<float> x = gaussian(128, 91, 0.5f);
  x[17] = 6.0f;
  auto mse =
      fq::GroupMseObserver::for_scheme<fq::QScheme<fq::UInt4, fq::Affine, fq::PerGroup<8>>>();
  mse.observe(view(x, shape));
  const auto q = mse.calculate_qparams<fq::QScheme<fq::UInt4, fq::Affine, fq::PerGroup<8>>>();
  fq::LsqGroupQuantizer<fq::LinearLsqGroup<8>> lsq(fq::UInt4::value(), shape);
  lsq.set_qparams(q.scale, q.zero_point);
  std::vector<float> y(128);
  lsq.forward(view(x, shape), TensorView<float>(y.data(), {4, 32}));
  const auto members = ref_group_members(shape, -1, 8);
  for (std::size_t g = 0; g < 16; ++g) {
    double err = 0;
    for (std::size_t i : members[g]) {
      CHECK(y[i] ==
            ref_fq(x[i], {q.scale[g], static_cast<float>(q.zero_point[g])}, fq::UInt4::value()));
      err += std::pow(std::fabs(double(y[i]) - double(x[i])), 2.4);
    }
    CHECK(err == Approx(q.error[g]).epsilon(1e-12));
  }
}
