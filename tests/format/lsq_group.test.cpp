// SPDX-License-Identifier: MIT
// LsqGroupQuantizer (learnable/lsq_group.hpp): the forward against an independent per-group
// reference (group index from the multi-index, the formula written out), SIMD against scalar
// bit for bit, the gradients against central finite differences, bit-for-bit equality with the
// per-channel LsqQuantizer when a group is a whole row, the gradient-scale factor, the optimizer
// path, bad input, the testing kit and the tape.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include <catch2/catch.hpp>

#include <fakequant/learnable/lsq_group.hpp>
#include <fakequant/ops/fake_quant.hpp>
#include <fakequant/optim/param.hpp>
#include <fakequant/optim/sgd.hpp>
#include <fakequant/tape/tape.hpp>
#include <fakequant/testing/check_op_gradients.hpp>
#include <fakequant/testing/testing.hpp>

#include "test_util.hpp"

using fq::GroupTail;
using fq::TensorView;

namespace {

constexpr int kRt = fq::kRuntimeGroupSize;

template <class M, int G, int Axis = -1, GroupTail T = GroupTail::kMustDivide,
          class GS = fq::LsqPaperGradScale, class SP = fq::LinearScale<>>
using GScheme = fq::LsqScheme<M, GS, SP, fq::NoScaleRestriction, fq::PerGroup<G, Axis, T>>;

std::int64_t numel_of(const std::vector<std::int64_t>& shape) {
  std::int64_t n = 1;
  for (auto e : shape) n *= e;
  return n;
}

std::vector<std::int64_t> row_major(const std::vector<std::int64_t>& shape) {
  std::vector<std::int64_t> st(shape.size(), 1);
  for (std::size_t d = shape.size(); d-- > 1;) st[d - 1] = st[d] * shape[d];
  return st;
}

template <class T>
TensorView<T> make_view(T* data, const std::vector<std::int64_t>& shape) {
  const std::vector<std::int64_t> st = row_major(shape);
  return TensorView<T>(data, static_cast<int>(shape.size()), shape.data(), st.data());
}

/// The group of each element, from its multi-index (an independent derivation of the
/// GroupLayout formula), and the element count of each group.
struct RefGroups {
  std::vector<std::int64_t> of;   // per element
  std::vector<std::int64_t> len;  // per group
};
RefGroups ref_groups(const std::vector<std::int64_t>& shape, int axis, std::int64_t G) {
  const int rank = static_cast<int>(shape.size());
  const int a = axis < 0 ? axis + rank : axis;
  std::int64_t outer = 1, inner = 1;
  for (int d = 0; d < a; ++d) outer *= shape[static_cast<std::size_t>(d)];
  for (int d = a + 1; d < rank; ++d) inner *= shape[static_cast<std::size_t>(d)];
  const std::int64_t K = shape[static_cast<std::size_t>(a)];
  const std::int64_t g_size = G < 0 ? K : G;
  const std::int64_t per_axis = (K + g_size - 1) / g_size;
  RefGroups r;
  r.len.assign(static_cast<std::size_t>(outer * per_axis * inner), 0);
  std::vector<std::int64_t> idx(shape.size(), 0);
  const std::int64_t n = numel_of(shape);
  for (std::int64_t f = 0; f < n; ++f) {
    std::int64_t rest = f;
    for (int d = rank - 1; d >= 0; --d) {
      idx[static_cast<std::size_t>(d)] = rest % shape[static_cast<std::size_t>(d)];
      rest /= shape[static_cast<std::size_t>(d)];
    }
    std::int64_t o = 0, i = 0;
    for (int d = 0; d < a; ++d)
      o = o * shape[static_cast<std::size_t>(d)] + idx[static_cast<std::size_t>(d)];
    for (int d = a + 1; d < rank; ++d)
      i = i * shape[static_cast<std::size_t>(d)] + idx[static_cast<std::size_t>(d)];
    const std::int64_t g = (o * per_axis + idx[static_cast<std::size_t>(a)] / g_size) * inner + i;
    r.of.push_back(g);
    ++r.len[static_cast<std::size_t>(g)];
  }
  return r;
}

/// y and the mask of one element, the formula written out: v = x * f32(1/s), q = rne(v) + z,
/// c = clamp(q) (NaN -> qmin; +-Inf and |q| >= 2^63 -> qmin unless saturating), y = (c - z) s.
float ref_element(float x, float s, float z, float qmin, float qmax, bool saturate, bool& in) {
  const float inv = 1.0f / s;
  const float q = std::nearbyint(x * inv) + z;
  in = q >= qmin && q <= qmax;
  float c;
  if (std::isnan(q))
    c = qmin;
  else if (!saturate && !(q < 9223372036854775808.0f))
    c = qmin;
  else
    c = q < qmin ? qmin : (q > qmax ? qmax : q);
  return (c - z) * s;
}

std::vector<float> random_vec(std::size_t n, std::uint32_t seed, float lo, float hi) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> v(n);
  for (float& e : v) e = u(rng);
  return v;
}

/// Random per-group scales in [0.02, 0.12] and zero points (integers or not) in the range.
template <class Q>
void randomize_params(Q& q, std::uint32_t seed, bool integer_zp) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> us(0.02f, 0.12f), uz(0.0f, 1.0f);
  const auto r = q.range();
  for (std::size_t g = 0; g < q.scale_param().size(); ++g) {
    q.scale_param()[g] = us(rng);
    float z =
        static_cast<float>(r.quant_min) + uz(rng) * static_cast<float>(r.quant_max - r.quant_min);
    if (integer_zp) z = std::nearbyint(z);
    if (q.learns_zero_point()) q.zero_point()[g] = r.quant_min < 0 ? 0.0f : z;
  }
}

/// Forward vs the reference, SIMD vs scalar (y and mask bits), on one layout.
template <class Scheme>
void check_forward(const std::vector<std::int64_t>& shape, std::int64_t G, fq::QuantRange range,
                   std::uint32_t seed) {
  CAPTURE(shape, G, seed);
  fq::LsqGroupQuantizer<Scheme> q(range, shape, true, G);
  randomize_params(q, seed, false);
  const auto n = static_cast<std::size_t>(numel_of(shape));
  const std::vector<float> x =
      fq_test::make_fq_input<float>(n, 0.07f, range.quant_min, range.quant_max, 0, seed, true);
  std::vector<float> y(n), y_scalar(n);
  fq::Mask m, m_scalar;
  q.forward(make_view(x.data(), shape), make_view(y.data(), shape), &m);
  q.forward(make_view(x.data(), shape), make_view(y_scalar.data(), shape), &m_scalar,
            fq::Isa::kScalar);
  REQUIRE(std::memcmp(y.data(), y_scalar.data(), n * sizeof(float)) == 0);
  REQUIRE(m.words() == m_scalar.words());

  const RefGroups rg = ref_groups(shape, Scheme::granularity::kAxis, G);
  REQUIRE(static_cast<std::int64_t>(rg.len.size()) == q.groups());
  const bool saturate = !Scheme::numerics::kTorch;
  const auto qmin = static_cast<float>(range.quant_min), qmax = static_cast<float>(range.quant_max);
  std::int64_t mismatches = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const std::int64_t g = rg.of[i];
    const float s = q.scale(g);
    const float z =
        std::min(std::max(std::nearbyint(q.zero_point()[static_cast<std::size_t>(g)]), qmin), qmax);
    bool in = false;
    const float want = ref_element(x[i], s, z, qmin, qmax, saturate, in);
    if (fq_test::bits_of(want) != fq_test::bits_of(y[i]) ||
        in != m.test_linear(static_cast<std::int64_t>(i))) {
      if (++mismatches <= 5) {
        INFO("element " << i << " group " << g << " x " << x[i] << " want " << want << " got "
                        << y[i] << " mask " << in);
        CHECK(false);
      }
    }
  }
  CHECK(mismatches == 0);

  // In place gives the same bits.
  std::vector<float> xy = x;
  q.forward(make_view(static_cast<const float*>(xy.data()), shape), make_view(xy.data(), shape));
  CHECK(std::memcmp(xy.data(), y.data(), n * sizeof(float)) == 0);
}

}  // namespace

TEST_CASE("LsqGroupQuantizer forward: independent per-group reference, SIMD == scalar",
          "[formats][lsq_group]") {
  const fq::QuantRange u4{0, 15}, s4{-8, 7}, s8{-128, 127};
  for (std::uint32_t seed = 1; seed <= 3; ++seed) {
    check_forward<GScheme<fq::LsqPaper, 32>>({4, 96}, 32, s4, seed);
    check_forward<GScheme<fq::LsqTorch, 32>>({4, 96}, 32, u4, seed);
    check_forward<GScheme<fq::LsqPaper, kRt, -1, GroupTail::kShortLast>>({3, 50}, 13, u4, seed);
    check_forward<GScheme<fq::LsqTorch, kRt, -1, GroupTail::kShortLast>>({3, 50}, 13, s8, seed);
    check_forward<GScheme<fq::LsqPaper, kRt, 1, GroupTail::kShortLast>>({2, 7, 19}, 3, u4, seed);
    check_forward<GScheme<fq::LsqTorchNoFma, kRt, 0>>({6, 3, 17}, 2, s4, seed);
    check_forward<GScheme<fq::LsqPaper, fq::kWholeAxisGroup>>({5, 37}, fq::kWholeAxisGroup, s4,
                                                              seed);
    check_forward<GScheme<fq::LsqPaper, kRt, -1, GroupTail::kShortLast>>({1, 1000}, 129, s8, seed);
  }
}

namespace {

/// Group rows of a [R, K] tensor as groups of K vs LsqQuantizer per channel on axis 0: every
/// output bit for bit (the scalar fused path of both).
template <class M, class SP, class Rst = fq::NoScaleRestriction>
void compare_with_per_channel(std::int64_t rows, std::int64_t K, fq::QuantRange range,
                              std::uint32_t seed) {
  CAPTURE(rows, K, seed);
  using GS = fq::LsqScheme<M, fq::LsqPaperGradScale, SP, Rst, fq::PerGroup<kRt>>;
  using CS = fq::LsqScheme<M, fq::LsqPaperGradScale, SP, Rst, fq::PerChannel<0>>;
  fq::LsqGroupQuantizer<GS> gq(range, {rows, K}, true, K);
  fq::LsqQuantizer<CS> cq(range, rows, true);
  REQUIRE(gq.groups() == rows);
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> us(0.01f, 0.1f), uz(-2.0f, 18.0f);
  for (std::size_t r = 0; r < static_cast<std::size_t>(rows); ++r) {
    gq.scale_param()[r] = cq.scale_param()[r] = SP::from_scale(us(rng));
    gq.zero_point()[r] = cq.zero_point()[r] = range.quant_min < 0 ? 0.3f : uz(rng);
  }
  const auto n = static_cast<std::size_t>(rows * K);
  const std::vector<float> x =
      fq_test::make_fq_input<float>(n, 0.05f, range.quant_min, range.quant_max, 0, seed, true);
  const std::vector<float> dy = random_vec(n, seed + 7, -1.5f, 1.5f);
  std::vector<float> y1(n), y2(n), dx1(n), dx2(n);
  const std::vector<std::int64_t> shape{rows, K};
  gq.forward_backward(make_view(x.data(), shape), make_view(dy.data(), shape),
                      make_view(y1.data(), shape), make_view(dx1.data(), shape));
  cq.forward_backward(make_view(x.data(), shape), make_view(dy.data(), shape),
                      make_view(y2.data(), shape), make_view(dx2.data(), shape), fq::Isa::kScalar);
  CHECK(fq_test::first_bit_mismatch(y1, y2) == -1);
  CHECK(fq_test::first_bit_mismatch(dx1, dx2) == -1);
  CHECK(fq_test::first_bit_mismatch(gq.scale_grad(), cq.scale_grad()) == -1);
  CHECK(fq_test::first_bit_mismatch(gq.zero_point_grad(), cq.zero_point_grad()) == -1);
  bool any_nonzero = false;
  for (float v : gq.scale_grad()) any_nonzero = any_nonzero || v != 0.0f;
  CHECK(any_nonzero);

  // The protocol forward (SIMD on both) and its mask.
  fq::Mask m1, m2;
  gq.forward(make_view(x.data(), shape), make_view(y1.data(), shape), &m1);
  cq.forward(make_view(x.data(), shape), make_view(y2.data(), shape), &m2);
  CHECK(fq_test::first_bit_mismatch(y1, y2) == -1);
  CHECK(m1.words() == m2.words());
}

}  // namespace

TEST_CASE("LsqGroupQuantizer with one group per row equals the per-channel LsqQuantizer",
          "[formats][lsq_group]") {
  const fq::QuantRange u4{0, 15}, s8{-128, 127};
  for (std::uint32_t seed = 11; seed <= 13; ++seed) {
    compare_with_per_channel<fq::LsqPaper, fq::LinearScale<>>(5, 48, u4, seed);
    compare_with_per_channel<fq::LsqTorch, fq::LinearScale<>>(5, 48, u4, seed);
    compare_with_per_channel<fq::LsqTorch, fq::Log2Scale>(3, 37, s8, seed);
    compare_with_per_channel<fq::LsqPaper, fq::Log2Scale>(7, 5, s8, seed);
    compare_with_per_channel<fq::LsqPaper, fq::LinearScale<>, fq::PowerOfTwoRound>(4, 33, u4, seed);
    compare_with_per_channel<fq::LsqTorch, fq::Log2Scale, fq::PowerOfTwoCeil>(4, 33, s8, seed);
  }
}

namespace {

/// Data clear of rounding and clamping boundaries for group g's (s, z): v = k + u with k an
/// interior level (|u| <= 0.3) or v at least 2 levels beyond an end.
std::vector<float> clear_data(const std::vector<float>& s, const std::vector<float>& z,
                              const RefGroups& rg, fq::QuantRange r, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-0.3f, 0.3f);
  std::vector<float> x(rg.of.size());
  const auto lo = static_cast<std::int64_t>(r.quant_min),
             hi = static_cast<std::int64_t>(r.quant_max);
  for (std::size_t i = 0; i < x.size(); ++i) {
    const auto g = static_cast<std::size_t>(rg.of[i]);
    const auto zi = static_cast<std::int64_t>(z[g]);
    const auto kind = rng() % 6;
    float v;
    if (kind == 0)
      v = static_cast<float>(lo - zi - 2 - static_cast<std::int64_t>(rng() % 3)) + u(rng);
    else if (kind == 1)
      v = static_cast<float>(hi - zi + 2 + static_cast<std::int64_t>(rng() % 3)) + u(rng);
    else
      v = static_cast<float>(
              lo + 1 + static_cast<std::int64_t>(rng() % static_cast<std::uint32_t>(hi - lo - 1)) -
              zi) +
          u(rng);
    x[i] = v * s[g];
  }
  return x;
}

}  // namespace

TEMPLATE_TEST_CASE("LsqGroupQuantizer gradients against central finite differences",
                   "[formats][lsq_group]", fq::LsqPaper, fq::LsqTorch) {
  using Scheme = GScheme<TestType, kRt, 1, GroupTail::kShortLast>;
  const std::vector<std::int64_t> shape{2, 11, 3};  // groups of 4 along axis 1, tails of 3
  const std::int64_t G = 4;
  const fq::QuantRange range{0, 15};
  fq::LsqGroupQuantizer<Scheme> q(range, shape, true, G);
  const auto ng = static_cast<std::size_t>(q.groups());
  const RefGroups rg = ref_groups(shape, 1, G);
  std::vector<float> s(ng), z(ng);
  for (std::size_t g = 0; g < ng; ++g) {
    s[g] = 0.03f + 0.01f * static_cast<float>(g % 5);
    z[g] = static_cast<float>(3 + g % 9);
    q.scale_param()[g] = s[g];
    q.zero_point()[g] = z[g];
  }
  const std::vector<float> x = clear_data(s, z, rg, range, 17);
  const std::vector<float> dy = random_vec(x.size(), 18, -1.5f, 1.5f);
  const auto n = x.size();
  std::vector<float> y(n), dx(n);
  q.forward_backward(make_view(x.data(), shape), make_view(dy.data(), shape),
                     make_view(y.data(), shape), make_view(dx.data(), shape));
  const std::vector<float> ds = q.scale_grad(), dz = q.zero_point_grad();

  // L restricted to group g, from the real forward with group g's scale set to sg.
  auto loss_of_group = [&](std::size_t g, float sg) {
    auto q2 = q;
    q2.scale_param()[g] = sg;
    std::vector<float> y2(n);
    q2.forward(make_view(x.data(), shape), make_view(y2.data(), shape));
    double l = 0;
    for (std::size_t i = 0; i < n; ++i)
      if (static_cast<std::size_t>(rg.of[i]) == g) l += double(dy[i]) * double(y2[i]);
    return l;
  };
  const double qmin = double(range.quant_min), qmax = double(range.quant_max);
  for (std::size_t g = 0; g < ng; ++g) {
    CAPTURE(g);
    const double gfac =
        1.0 / std::sqrt(double(rg.len[g]) * double(range.quant_max));  // the LSQ paper's rule
    CHECK(q.grad_scale_factor(static_cast<std::int64_t>(g)) == Approx(gfac).epsilon(1e-7));
    // d/ds: the staircase's slope (rounding held: FD of the real forward) minus v where the
    // STE passes (d rne(v)/ds = -v/s through the identity): the LSQ gradient.
    const float h = 0.01f * s[g];
    const double fd = (loss_of_group(g, s[g] + h) - loss_of_group(g, s[g] - h)) /
                      (double(s[g] + h) - double(s[g] - h));
    double ste = 0, abs_sum = 0, zsum = 0;
    for (std::size_t i = 0; i < n; ++i) {
      if (static_cast<std::size_t>(rg.of[i]) != g) continue;
      const double v = double(x[i]) / double(s[g]);
      const bool inside = v + z[g] > qmin && v + z[g] < qmax;
      if (inside) ste += double(dy[i]) * v;
      abs_sum += std::fabs(double(dy[i])) * (std::fabs(v) + 16);
      // d/dz of the relaxed forward s (clamp(R + z) - z), R = rne(v) held, by central FD.
      const double R = std::nearbyint(v), hz = 0.25;
      auto yz = [&](double zz) {
        return double(s[g]) * (std::min(std::max(R + zz, qmin), qmax) - zz);
      };
      zsum += double(dy[i]) * (yz(z[g] + hz) - yz(z[g] - hz)) / (2 * hz);
      // dx: the slope of the relaxed forward in x is 1 inside, 0 outside.
      const double hx = 0.1 * double(s[g]);
      auto yx = [&](double xx) {
        const double vv = xx / double(s[g]) + (R - v);
        return double(s[g]) * (std::min(std::max(vv + z[g], qmin), qmax) - z[g]);
      };
      const double fdx = double(dy[i]) * (yx(double(x[i]) + hx) - yx(double(x[i]) - hx)) / (2 * hx);
      CHECK(double(dx[i]) == Approx(fdx).margin(1e-9));
    }
    CHECK(double(ds[g]) == Approx(gfac * (fd - ste)).margin(3e-5 * gfac * abs_sum + 1e-7));
    CHECK(double(dz[g]) == Approx(gfac * zsum).epsilon(1e-5).margin(1e-7));
  }

  // backward() adds to the gradients; the STE dx equals forward_backward's.
  std::vector<float> dx2(n);
  fq::Mask m;
  q.forward(make_view(x.data(), shape), make_view(y.data(), shape), &m);
  q.backward(make_view(x.data(), shape), make_view(dy.data(), shape), m,
             make_view(dx2.data(), shape));
  CHECK(fq_test::first_bit_mismatch(dx, dx2) == -1);
  for (std::size_t g = 0; g < ng; ++g) {
    CHECK(q.scale_grad()[g] == ds[g] + ds[g]);
    CHECK(q.zero_point_grad()[g] == dz[g] + dz[g]);
  }
}

TEST_CASE("LsqGroupQuantizer gradient-scale policies", "[formats][lsq_group]") {
  const std::vector<std::int64_t> shape{3, 10};  // groups of 4: lengths 4, 4, 2 per row
  const fq::QuantRange range{-8, 7};
  fq::LsqGroupQuantizer<GScheme<fq::LsqPaper, 4, -1, GroupTail::kShortLast>> paper(range, shape);
  fq::LsqGroupQuantizer<GScheme<fq::LsqPaper, 4, -1, GroupTail::kShortLast, fq::TorchGradScale>>
      torch(range, shape);
  fq::LsqGroupQuantizer<GScheme<fq::LsqPaper, 4, -1, GroupTail::kShortLast, fq::NoGradScale>> none(
      range, shape);
  REQUIRE(paper.groups() == 9);
  for (std::int64_t g = 0; g < 9; ++g) {
    const double len = g % 3 == 2 ? 2.0 : 4.0;
    CHECK(paper.grad_scale_factor(g) == static_cast<float>(1.0 / std::sqrt(len * 7.0)));
    CHECK(torch.grad_scale_factor(g) == static_cast<float>(1.0 / std::sqrt(30.0 * 7.0)));
    CHECK(none.grad_scale_factor(g) == 1.0f);
  }
  // The gradients scale by the factor (one float rounding apart).
  paper.set_scale(0.3f);
  none.set_scale(0.3f);
  const std::vector<float> x = random_vec(30, 3, -3.0f, 3.0f), dy = random_vec(30, 4, -1, 1);
  std::vector<float> y(30), dx(30);
  paper.forward_backward(make_view(x.data(), shape), make_view(dy.data(), shape),
                         make_view(y.data(), shape), make_view(dx.data(), shape));
  none.forward_backward(make_view(x.data(), shape), make_view(dy.data(), shape),
                        make_view(y.data(), shape), make_view(dx.data(), shape));
  for (std::size_t g = 0; g < 9; ++g) {
    CHECK(paper.scale_grad()[g] ==
          Approx(none.scale_grad()[g] * paper.grad_scale_factor(static_cast<std::int64_t>(g)))
              .epsilon(1e-6));
    CHECK(paper.zero_point_grad()[g] ==
          Approx(none.zero_point_grad()[g] * paper.grad_scale_factor(static_cast<std::int64_t>(g)))
              .epsilon(1e-6));
  }
}

TEST_CASE("LsqGroupQuantizer: visit_parameters and an SGD step move the per-group scales",
          "[formats][lsq_group]") {
  const std::vector<std::int64_t> shape{4, 64};
  fq::LsqGroupQuantizer<fq::LinearLsqGroup<32>> q(fq::QuantRange{0, 15}, shape, true);
  randomize_params(q, 9, true);
  std::vector<const char*> names;
  q.visit_parameters([&](const char* name, TensorView<float> v, TensorView<float> g) {
    names.push_back(name);
    CHECK(v.numel() == 8);
    CHECK(g.numel() == 8);
  });
  REQUIRE(names.size() == 2);
  CHECK(std::string(names[0]) == "lsq.scale");
  CHECK(std::string(names[1]) == "lsq.zero_point");
  fq::LsqGroupQuantizer<fq::LinearLsqGroup<32>> sym(fq::QuantRange{-8, 7}, shape, false);
  int count = 0;
  sym.visit_parameters([&](const char*, TensorView<float>, TensorView<float>) { ++count; });
  CHECK(count == 1);

  fq::optim::SgdOptions o;
  o.lr = 0.5;
  fq::optim::Sgd opt(fq::optim::parameters_of(q), o);
  const std::vector<float> before(q.scale_param().begin(), q.scale_param().end());
  const std::vector<float> x = random_vec(256, 21, -1.0f, 2.0f), dy = random_vec(256, 22, -1, 1);
  std::vector<float> dx(256);
  fq::Mask m;
  std::vector<float> y(256);
  opt.zero_grad();
  q.forward(make_view(x.data(), shape), make_view(y.data(), shape), &m);
  q.backward(make_view(x.data(), shape), make_view(dy.data(), shape), m,
             make_view(dx.data(), shape));
  const std::vector<float> grad = q.scale_grad();
  opt.step();
  int moved = 0;
  for (std::size_t g = 0; g < 8; ++g) {
    CHECK(q.scale_param()[g] == before[g] + static_cast<float>(-0.5) * grad[g]);
    if (q.scale_param()[g] != before[g]) ++moved;
  }
  CHECK(moved == 8);
}

TEST_CASE("LsqGroupQuantizer init_from: 2 mean|x| / sqrt(qmax) per group", "[formats][lsq_group]") {
  const std::vector<std::int64_t> shape{2, 4};
  fq::LsqGroupQuantizer<fq::PaperLsqGroup<2>> q(fq::QuantRange{-8, 7}, shape, false);
  const std::vector<float> x{1.0f, -3.0f, 0.0f, 0.0f, 0.5f, 0.25f, -8.0f, 2.0f};
  q.init_from(make_view(x.data(), shape));
  const float r7 = static_cast<float>(std::sqrt(7.0));
  CHECK(q.scale(0) == Approx(2.0f * 2.0f / r7).epsilon(1e-6));
  CHECK(q.scale(1) == Approx(std::numeric_limits<float>::epsilon()).epsilon(1e-6));  // all zero
  CHECK(q.scale(2) == Approx(2.0f * 0.375f / r7).epsilon(1e-6));
  CHECK(q.scale(3) == Approx(2.0f * 5.0f / r7).epsilon(1e-6));
  std::vector<float> bad = x;
  bad[5] = std::numeric_limits<float>::quiet_NaN();
  const float before = q.scale(2);
  CHECK(fq_test::error_code_of([&] { q.init_from(make_view(bad.data(), shape)); }) ==
        fq::ErrorCode::kNonFiniteInput);
  CHECK(q.scale(2) == before);
}

TEST_CASE("LsqGroupQuantizer bad input", "[formats][lsq_group]") {
  using Q = fq::LsqGroupQuantizer<fq::LinearLsqGroup<32>>;
  using QR = fq::LsqGroupQuantizer<GScheme<fq::LsqPaper, kRt>>;
  const fq::QuantRange r{0, 15};
  auto code = [](auto&& f) { return fq_test::error_code_of(f); };
  CHECK(code([&] { Q q(r, {4, 48}); }) == fq::ErrorCode::kShapeMismatch);  // 32 does not divide 48
  CHECK(code([&] { QR q(r, {4, 48}); }) == fq::ErrorCode::kInvalidArgument);  // no run-time G
  CHECK(code([&] { Q q(r, {4, 64}, true, 16); }) == fq::ErrorCode::kInvalidArgument);
  CHECK(code([&] { Q q(fq::QuantRange{0, 1 << 25}, {4, 64}); }) == fq::ErrorCode::kInvalidRange);
  CHECK(code([&] { Q q(r, {0, 64}); }) == fq::ErrorCode::kInvalidArgument);

  Q q(r, {4, 64});
  std::vector<float> x(256, 0.5f), y(256), dy(256, 1.0f), dx(256);
  fq::Mask m;
  // Another layout: 6 groups instead of 8.
  CHECK(code([&] {
          q.forward(make_view(x.data(), {3, 64}), make_view(y.data(), {3, 64}));
        }) == fq::ErrorCode::kShapeMismatch);
  CHECK(code([&] {
          q.forward(make_view(x.data(), {8, 32}), make_view(y.data(), {8, 32}));
        }) == fq::ErrorCode::kShapeMismatch);  // 8 groups, but another layout
  CHECK(code([&] {
          q.backward(make_view(x.data(), {2, 128}), make_view(dy.data(), {2, 128}), m,
                     make_view(dx.data(), {2, 128}));
        }) == fq::ErrorCode::kShapeMismatch);
  CHECK(code([&] {
          q.forward(make_view(x.data(), {4, 64}), make_view(y.data(), {64, 4}));
        }) == fq::ErrorCode::kShapeMismatch);
  // A strided (transposed) view.
  const std::int64_t sh[2] = {64, 4}, st[2] = {1, 64};
  CHECK(code([&] {
          q.forward(TensorView<const float>(x.data(), 2, sh, st),
                    TensorView<float>(y.data(), 2, sh, st));
        }) == fq::ErrorCode::kInvalidLayout);
  // Parameters.
  CHECK(code([&] { q.set_scale(0.0f); }) == fq::ErrorCode::kInvalidScale);
  CHECK(code([&] { q.set_zero_point(std::nanf("")); }) == fq::ErrorCode::kInvalidZeroPoint);
  CHECK(code([&] { q.set_qparams(std::vector<float>(7, 1.0f), std::vector<int>(7, 0)); }) ==
        fq::ErrorCode::kParamCountMismatch);
  std::vector<float> sc(8, 0.1f);
  sc[3] = std::numeric_limits<float>::infinity();
  CHECK(code([&] { q.set_qparams(sc, std::vector<int>(8, 0)); }) == fq::ErrorCode::kInvalidScale);
  CHECK(q.scale(3) == 1.0f);  // nothing stored
  q.forward(make_view(x.data(), {4, 64}), make_view(y.data(), {4, 64}), &m);
  const std::vector<std::uint64_t> words = m.words();
  q.scale_param()[2] = std::nanf("");
  CHECK(code([&] {
          q.forward(make_view(x.data(), {4, 64}), make_view(y.data(), {4, 64}), &m);
        }) == fq::ErrorCode::kInvalidScale);
  CHECK(m.words() == words);  // a refused call leaves the mask as it was
  CHECK(m.numel() == 256);
  q.scale_param()[2] = 0.1f;
  q.zero_point()[5] = std::nanf("");
  CHECK(code([&] {
          q.forward_backward(make_view(x.data(), {4, 64}), make_view(dy.data(), {4, 64}),
                             make_view(y.data(), {4, 64}), make_view(dx.data(), {4, 64}));
        }) == fq::ErrorCode::kInvalidZeroPoint);
  q.zero_point()[5] = 0.0f;
  CHECK(code([&] { (void)q.scale(8); }) == fq::ErrorCode::kInvalidArgument);
  const fq::Isa other = fq::isa_of_arch<fq::DefaultArch>() == fq::Isa::kAvx2
                            ? fq::Isa::kAvx512Vnni
                            : fq::Isa::kAvx2;  // not the instruction set of the kernels
  CHECK(code([&] {
          q.forward(make_view(x.data(), {4, 64}), make_view(y.data(), {4, 64}), nullptr, other);
        }) == fq::ErrorCode::kInvalidArgument);
  // An empty tensor does nothing.
  std::vector<float> none;
  q.forward(make_view(none.data(), {0, 64}), make_view(none.data(), {0, 64}), &m);
  CHECK(m.numel() == 0);
}

TEST_CASE("LsqGroupQuantizer passes the testing kit on [groups, G]",
          "[formats][lsq_group][testing_kit]") {
  constexpr std::int64_t kGroups = 6, kG = 16;
  const fq::QuantRange range{0, 15};
  using Scheme = fq::LinearLsqGroup<kG>;
  fq::LsqGroupQuantizer<Scheme> q(range, {kGroups, kG}, true);
  std::vector<float> s(static_cast<std::size_t>(kGroups));
  std::vector<double> z(s.size());
  std::vector<std::vector<double>> levels;
  for (std::size_t g = 0; g < s.size(); ++g) {
    s[g] = 0.02f + 0.015f * static_cast<float>(g);
    z[g] = static_cast<double>(2 + 2 * g);
    q.scale_param()[g] = s[g];
    q.zero_point()[g] = static_cast<float>(z[g]);
    levels.push_back(
        fq::testing::Grid::affine_levels(s[g], static_cast<std::int32_t>(z[g]), range));
  }
  fq::testing::QuantizerCheckOptions qo;
  qo.grid = fq::testing::Grid::per_channel(levels, 0);
  qo.shape = {kGroups, kG};
  const auto r = fq::testing::check_quantizer(q, qo);
  INFO(r.report());
  CHECK(r.passed());
  CHECK(r.checked("on_grid") == kGroups * kG);
  CHECK(r.checked("channel_independence") > 0);

  fq::testing::GradientCheckOptions go;
  go.grid = qo.grid;
  go.shape = {kGroups, kG};
  const double gfac = 1.0 / std::sqrt(double(kG) * 15.0);
  go.formulas["lsq.scale"] = fq::testing::formulas::lsq_scale(s, z, range, gfac);
  go.formulas["lsq.zero_point"] = fq::testing::formulas::lsq_zero_point(s, z, range, gfac);
  const auto rg = fq::testing::check_gradients(q, go);
  INFO(rg.report());
  CHECK(rg.passed());
  CHECK(rg.checked("gradient_dx") > 0);
  CHECK(rg.checked("param_gradient") == 2 * kGroups);
  // Another group's scales in the formula: the check can fail.
  std::vector<float> s2 = s;
  s2[1] *= 1.5f;
  go.formulas["lsq.scale"] = fq::testing::formulas::lsq_scale(s2, z, range, gfac);
  CHECK(fq::testing::check_gradients(q, go).has_failure("param_gradient"));
}

TEST_CASE("LsqGroupQuantizer on the tape: fake_quant reaches the per-group scales",
          "[formats][lsq_group][ops]") {
  constexpr std::int64_t kRows = 4, kCols = 64;
  using Scheme = GScheme<fq::LsqTorch, 32>;
  fq::LsqGroupQuantizer<Scheme> q(fq::QuantRange{0, 15}, {kRows, kCols});
  randomize_params(q, 31, false);
  std::vector<float> x = random_vec(kRows * kCols, 32, -0.5f, 1.5f);
  const std::vector<float> r = random_vec(x.size(), 33, -1.0f, 1.0f);
  auto ref = q;
  std::vector<float> y_ref(x.size()), dx_ref(x.size());
  ref.forward_backward(make_view(x.data(), {kRows, kCols}), make_view(r.data(), {kRows, kCols}),
                       make_view(y_ref.data(), {kRows, kCols}),
                       make_view(dx_ref.data(), {kRows, kCols}));

  fq::Tape tape;
  std::vector<float> gx(x.size(), 0.0f);
  const fq::Var v = tape.leaf(x.data(), gx.data(), {kRows, kCols});
  const fq::Var y = fq::ops::fake_quant(tape, v, q);
  for (std::size_t i = 0; i < x.size(); ++i) CHECK(y.value()[i] == y_ref[i]);
  tape.backward(fq::testing::detail::weighted_sum(tape, y, r.data()));
  for (std::size_t i = 0; i < x.size(); ++i) CHECK(gx[i] == dx_ref[i]);
  int nonzero = 0;
  for (std::size_t g = 0; g < 8; ++g) {
    CHECK(q.scale_grad()[g] == ref.scale_grad()[g]);
    CHECK(q.zero_point_grad()[g] == ref.zero_point_grad()[g]);
    nonzero += q.scale_grad()[g] != 0.0f;
  }
  CHECK(nonzero == 8);
}
