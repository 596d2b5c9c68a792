// SPDX-License-Identifier: MIT
// fakequant/learnable/lsq_group.hpp: LSQ / LSQ+ per group — one learned scale (and, if
// learned, one zero point) per group of G consecutive elements along an axis, for an LsqScheme
// whose Granularity is fq::PerGroup<G, Axis, Tail> (groups as core/group_layout.hpp lays them
// out: group of element (o, k, i) = (o * ceil(K / G) + k / G) * inner + i).
//
// Per group g with effective scale s_g = Restriction(ScaleParam(p_g)) and zero point z_g, the
// element formulas of lsq_numerics.hpp with PyTorch's per-CHANNEL zero-point rule (zb = zf):
// Forward    zf = clamp(rne(z_g), qmin, qmax);  v = x * f32(1/s_g)  (MulByInverse, as LSQ)
//            y  = (clamp(rne(v) + zf, qmin, qmax) - zf) * s_g,  NaN/Inf/overflow -> qmin
//            (LsqTorch*) or saturating (LsqPaper); mask = qmin <= rne(v) + zf <= qmax
// Backward   dx = dy * [in range], clipping decided per the numerics: LsqPaper on v itself
//            (qmin - zf <= v <= qmax - zf), LsqTorch on rne(fma(x, 1/s, zf)); the mask the
//            forward wrote is not used (the fused pass recomputes it from x, as LsqQuantizer).
//            d s_g = g_g * sum over group g of dy * (rne(v) - v inside | qmin - zf below |
//                    qmax - zf above)     (LsqTorch: (f32((xq - zf) s) - x) / s inside)
//            d z_g = -g_g * sum over group g of dy * (clipped ? s_g : 0)   (LSQ+)
//            then chained through the restriction and the scale parametrization into p_g.
//            g_g = Scheme::grad_scale::factor(numel, N_g, range): LsqPaperGradScale
//            1/sqrt(N_g * quant_max) with N_g the elements of group g (the LSQ paper's rule
//            with N = elements per scale; a short last group has its own N_g), TorchGradScale
//            1/sqrt(numel * quant_max) (PyTorch's whole-tensor convention), NoGradScale 1.
// With G = the row length (one group per row) every result equals LsqQuantizer with
// PerChannel<0> and LsqPaperGradScale bit for bit (same element kernels, same summation
// order: element by element into double, scalar path). Sums are in double.
// Protocol (quantizer/concept.hpp): forward(x, y, mask) writes y and the in-range bits (row-
// major); backward(x, dy, mask, dx) writes dx and ADDS the raw-parameter gradients to
// scale_grad()/zero_point_grad(); forward_backward() overwrites them; visit_parameters(f)
// reports ("lsq.scale", p, dp) and, if learned, ("lsq.zero_point", z, dz), one entry per group
// in GroupLayout order, sized at construction and never reallocated. The scales are always
// the stored (learned) ones: an x whose group layout differs from the constructed one is
// kShapeMismatch. Only contiguous row-major float tensors (group formats).
// init_from(x): the LSQ paper's initial scale per group, s_g = 2 * mean_g|x| / sqrt(quant_max)
// (floored at FLT_EPSILON for an all-zero group), zero points untouched; for a min-max or MSE
// start use observer/group_observer.hpp and set_qparams().
// References: no PyTorch/TorchAO op learns per-group scales; the element formulas and g are
// LsqQuantizer's (PyTorch 1.13 per channel / the LSQ and LSQ+ papers), reduced per group.
// SIMD: the forward runs the fake-quant kernels of Arch on each group (bit-identical to the
// scalar reference, simd/fake_quantize_simd.hpp); the backward is the scalar fused kernel.
#ifndef FQ_LEARNABLE_LSQ_GROUP_HPP_
#define FQ_LEARNABLE_LSQ_GROUP_HPP_

#include <algorithm>  // max
#include <cmath>      // fabs, sqrt, isfinite
#include <cstddef>    // size_t
#include <cstdint>    // int32_t, int64_t
#include <vector>     // vector

#include <fakequant/core/bit_writer.hpp>
#include <fakequant/core/checks.hpp>
#include <fakequant/core/fake_quantize_scalar.hpp>
#include <fakequant/core/group_layout.hpp>
#include <fakequant/core/mask.hpp>
#include <fakequant/core/run_plan.hpp>
#include <fakequant/core/tensor_view.hpp>
#include <fakequant/learnable/lsq.hpp>
#include <fakequant/scheme/qparams.hpp>
#include <fakequant/simd/arch.hpp>
#include <fakequant/simd/fake_quantize_simd.hpp>

namespace fq {

/// The LSQ paper per group: clip before rounding, 1/sqrt(N_g Qp), log2-domain scale.
template <int G, int Axis = -1, GroupTail Tail = GroupTail::kMustDivide>
using PaperLsqGroup =
    LsqScheme<LsqPaper, LsqPaperGradScale, Log2Scale, NoScaleRestriction, PerGroup<G, Axis, Tail>>;
/// As PaperLsqGroup with the scale itself as the parameter (floor 2^-23).
template <int G, int Axis = -1, GroupTail Tail = GroupTail::kMustDivide>
using LinearLsqGroup = LsqScheme<LsqPaper, LsqPaperGradScale, LinearScale<>, NoScaleRestriction,
                                 PerGroup<G, Axis, Tail>>;

/// Learned per-group scales and zero points (file comment).
template <class Scheme>
class LsqGroupQuantizer {
  using Gran = typename Scheme::granularity;
  static_assert(Gran::kPerGroup,
                "LsqGroupQuantizer: the scheme's Granularity must be fq::PerGroup<G, Axis, Tail>; "
                "per tensor or per channel use fq::LsqQuantizer (learnable/lsq.hpp).");

 public:
  using scheme = Scheme;
  using M = typename Scheme::numerics;
  using SP = typename Scheme::scale_param;
  using R = typename Scheme::restriction;
  static constexpr int kAxis = Gran::kAxis;

  /// @param range [quant_min, quant_max] (float-exact). @param shape the tensor's shape, which
  /// fixes the group layout. @param learn_zero_point false: zero points fixed (symmetric).
  /// @param group_size the run-time G for PerGroup<kRuntimeGroupSize> (else leave it, or
  /// repeat the compile-time G). Initial scales 1, zero points 0.
  LsqGroupQuantizer(QuantRange range, const std::vector<std::int64_t>& shape,
                    bool learn_zero_point = true, std::int64_t group_size = Gran::kGroupSize)
      : range_(range), learn_zero_point_(learn_zero_point), group_arg_(group_size) {
    constexpr const char* kWhere = "LsqGroupQuantizer";
    detail::check_lsq_range(range_, kWhere);
    FQ_CHECK(Gran::kGroupSize != kRuntimeGroupSize || group_size > 0, ErrorCode::kInvalidArgument,
             detail::msg(kWhere,
                         ": a PerGroup<fq::kRuntimeGroupSize> scheme needs a group size "
                         "> 0 at construction, got ",
                         group_size));
    FQ_CHECK(Gran::kGroupSize == kRuntimeGroupSize || group_size == Gran::kGroupSize,
             ErrorCode::kInvalidArgument,
             detail::msg(kWhere, ": group size ", group_size, " differs from the scheme's ",
                         Gran::kGroupSize));
    FQ_CHECK(!shape.empty() && shape.size() <= static_cast<std::size_t>(kMaxRank),
             ErrorCode::kInvalidLayout,
             detail::msg(kWhere, ": the shape must have 1 to ", kMaxRank, " dimensions, got ",
                         shape.size()));
    layout_ = detail::make_group_layout(shape.data(), static_cast<int>(shape.size()), kAxis,
                                        group_arg_, Gran::kTail, kWhere);
    FQ_CHECK(layout_.groups() > 0, ErrorCode::kInvalidArgument,
             detail::msg(kWhere, ": the shape has no group (an extent is 0)"));
    const auto n = static_cast<std::size_t>(layout_.groups());
    scale_param_.assign(n, SP::from_scale(1.0f));
    zero_point_.assign(n, 0.0f);
    scale_grad_.assign(n, 0.0f);
    zero_point_grad_.assign(n, 0.0f);
  }

  std::int64_t groups() const noexcept { return layout_.groups(); }
  const GroupLayout& layout() const noexcept { return layout_; }
  const QuantRange& range() const noexcept { return range_; }
  bool learns_zero_point() const noexcept { return learn_zero_point_; }
  /// Always false: the learned scales are used as stored (the scale-mode convention's frozen).
  static constexpr bool dynamic() noexcept { return false; }

  /// Every group's scale (> 0, finite) / zero point (finite).
  void set_scale(float s) {
    detail::check_scale(s, "LsqGroupQuantizer::set_scale");
    for (auto& p : scale_param_) p = SP::from_scale(s);
  }
  void set_zero_point(float z) {
    detail::check_lsq_zero_point(z, "LsqGroupQuantizer::set_zero_point");
    for (auto& v : zero_point_) v = z;
  }
  /// One scale and zero point per group in GroupLayout order (an observer's output,
  /// observer/group_observer.hpp); all validated before any is stored.
  template <class Z>
  void set_qparams(const std::vector<float>& scales, const std::vector<Z>& zero_points) {
    constexpr const char* kWhere = "LsqGroupQuantizer::set_qparams";
    FQ_CHECK(scales.size() == scale_param_.size() && zero_points.size() == scale_param_.size(),
             ErrorCode::kParamCountMismatch,
             detail::msg(kWhere, ": ", scales.size(), " scales and ", zero_points.size(),
                         " zero points for ", scale_param_.size(), " groups"));
    for (std::size_t g = 0; g < scales.size(); ++g) {
      detail::check_scale(scales[g], kWhere);
      detail::check_lsq_zero_point(static_cast<float>(zero_points[g]), kWhere);
    }
    for (std::size_t g = 0; g < scales.size(); ++g) {
      scale_param_[g] = SP::from_scale(scales[g]);
      zero_point_[g] = static_cast<float>(zero_points[g]);
    }
  }

  /// The raw parameters (fixed size) and their gradients, one entry per group.
  ParamSpan scale_param() noexcept { return {scale_param_.data(), scale_param_.size()}; }
  ParamSpan zero_point() noexcept { return {zero_point_.data(), zero_point_.size()}; }
  const std::vector<float>& scale_param() const noexcept { return scale_param_; }
  const std::vector<float>& zero_point() const noexcept { return zero_point_; }
  const std::vector<float>& scale_grad() const noexcept { return scale_grad_; }
  const std::vector<float>& zero_point_grad() const noexcept { return zero_point_grad_; }

  /// The effective scale of group g: Restriction(ScaleParam(p_g)).
  float scale(std::int64_t g) const {
    check_group(g);
    const float s =
        R::apply(SP::to_scale(scale_param_[static_cast<std::size_t>(g)], "LsqGroupQuantizer"));
    detail::check_scale(s, "LsqGroupQuantizer");
    return s;
  }
  /// The integer zero point the forward uses for group g: clamp(rne(z_g), qmin, qmax).
  float forward_zero_point(std::int64_t g) const {
    check_group(g);
    const float z = zero_point_[static_cast<std::size_t>(g)];
    detail::check_lsq_zero_point(z, "LsqGroupQuantizer");
    return detail::make_lsq_params<M>(1.0f, z, range_, true).zf;
  }
  /// g_g, the gradient scale of group g (file comment).
  float grad_scale_factor(std::int64_t g) const {
    check_group(g);
    const std::int64_t len = layout_.group_len((g / layout_.inner) % layout_.groups_per_axis);
    return Scheme::grad_scale::factor(layout_.numel(), len, range_);
  }

  /// The LSQ paper's initial scales from the data (file comment); x must have the layout.
  void init_from(TensorView<const float> x) {
    constexpr const char* kWhere = "LsqGroupQuantizer::init_from";
    FQ_CHECK(x.is_contiguous(), ErrorCode::kInvalidLayout,
             detail::msg(kWhere, ": x must be contiguous row-major"));
    check_layout(x, kWhere);
    FQ_CHECK(range_.quant_max > 0, ErrorCode::kInvalidRange,
             detail::msg(kWhere, ": 2 mean|x| / sqrt(quant_max) needs quant_max > 0"));
    std::vector<double> sum(scale_param_.size(), 0.0);
    const float* xp = x.data();
    for (std::int64_t f = 0; f < layout_.numel(); ++f) {
      FQ_CHECK(std::isfinite(xp[f]), ErrorCode::kNonFiniteInput,
               detail::msg(kWhere, ": x holds a non-finite value (", xp[f], ") at index ", f));
      sum[static_cast<std::size_t>(layout_.group_of_flat(f))] += std::fabs(double{xp[f]});
    }
    std::vector<float> s(sum.size());
    const double root = std::sqrt(static_cast<double>(range_.quant_max));
    for (std::size_t g = 0; g < s.size(); ++g) {
      const auto gi = static_cast<std::int64_t>(g);
      const double n =
          static_cast<double>(layout_.group_len((gi / layout_.inner) % layout_.groups_per_axis));
      s[g] = std::max(static_cast<float>(2.0 * (sum[g] / n) / root), kObserverEps);
      detail::check_scale(s[g], kWhere);
    }
    for (std::size_t g = 0; g < s.size(); ++g) scale_param_[g] = SP::from_scale(s[g]);
  }

  /// The checkpoint state (base/state.hpp): range, group size and layout must match; the
  /// raw scale parameters and zero points are restored.
  template <class V>
  void visit_state(V& v) {
    v.kind("lsq_group_quantizer");
    v.config("quant_min", range_.quant_min);
    v.config("quant_max", range_.quant_max);
    v.config("learn_zero_point", learn_zero_point_);
    const std::int64_t layout[5] = {layout_.outer, layout_.axis_len, layout_.inner,
                                    layout_.group_size, layout_.groups_per_axis};
    v.config_array("layout", layout, 5);
    v.state_span("scale_param", scale_param_.data(), scale_param_.size(), state_finite());
    v.state_span("zero_point", zero_point_.data(), zero_point_.size(), state_finite());
  }

  /// The protocol's forward: y = the per-group fake quantization of x; mask (if not null)
  /// the in-range bits, row-major. y may be x.
  template <class Arch = DefaultArch>
  void forward(TensorView<const float> x, TensorView<float> y, Mask* mask = nullptr,
               Isa path = Isa::kAuto) const {
    constexpr const char* kWhere = "LsqGroupQuantizer::forward";
    const bool simd = detail::use_simd_kernels<Arch>(path, kWhere);
    detail::check_contiguous_io(x, y, kWhere);
    if (x.numel() > 0) check_layout(x, kWhere);
    using N = typename M::forward_numerics;
    const auto n = static_cast<std::size_t>(x.numel() > 0 ? groups() : 0);
    std::vector<float> s(n);
    std::vector<std::int32_t> z(n);
    for (std::size_t g = 0; g < n; ++g) {  // every check before the mask is touched
      s[g] = scale(static_cast<std::int64_t>(g));
      z[g] = static_cast<std::int32_t>(forward_zero_point(static_cast<std::int64_t>(g)));
    }
    std::uint64_t* words =
        mask ? mask->prepare(x.rank(), x.shape(), detail::row_major_order()) : nullptr;
    if (x.numel() == 0) return;
    detail::BitWriter bw(words, 0);
    detail::BitWriter* bwp = words ? &bw : nullptr;
    const GroupLayout& L = layout_;
    const float* xp = x.data();
    float* yp = y.data();
    if (L.inner == 1) {  // each group is one contiguous run with constant parameters
      for (std::int64_t o = 0; o < L.outer; ++o)
        for (std::int64_t j = 0; j < L.groups_per_axis; ++j) {
          const std::int64_t base = o * L.axis_len + j * L.group_size, len = L.group_len(j);
          const auto g = static_cast<std::size_t>(o * L.groups_per_axis + j);
          const auto p = detail::make_element_params<N, float>(s[g], z[g], range_);
          run_constant<Arch, N>(simd, xp + base, yp + base, len, p, bwp);
        }
    } else {  // a run along the inner extent walks `inner` consecutive groups
      for (std::int64_t o = 0; o < L.outer; ++o)
        for (std::int64_t k = 0; k < L.axis_len; ++k) {
          const std::int64_t base = (o * L.axis_len + k) * L.inner;
          const auto g0 = static_cast<std::size_t>(L.group_of(o, k, 0));
          run_varying<Arch, N>(simd, xp + base, yp + base, L.inner, s.data() + g0, z.data() + g0,
                               bwp);
        }
    }
    if (bwp) bw.flush();
  }

  /// Fused forward+backward: writes y and dx and OVERWRITES scale_grad()/zero_point_grad().
  template <class Arch = DefaultArch>
  void forward_backward(TensorView<const float> x, TensorView<const float> dy, TensorView<float> y,
                        TensorView<float> dx) {
    fused<Arch>(x, dy, y, dx, false, "LsqGroupQuantizer::forward_backward");
  }

  /// The protocol's backward: dx, and the parameter gradients ADDED to scale_grad() and
  /// zero_point_grad(). The mask is not needed (the clipping is recomputed from x).
  template <class Arch = DefaultArch>
  void backward(TensorView<const float> x, TensorView<const float> dy, const Mask& /*mask*/,
                TensorView<float> dx) {
    scratch_.resize(static_cast<std::size_t>(x.numel()));
    TensorView<float> y(scratch_.data(), x.rank(), x.shape().data(), x.strides().data());
    fused<Arch>(x, dy, y, dx, true, "LsqGroupQuantizer::backward");
  }

  /// The learnable parameters: f(name, value, grad) per raw parameter array (file comment).
  template <class F>
  void visit_parameters(F&& f) {
    const auto n = static_cast<std::int64_t>(scale_param_.size());
    f("lsq.scale", TensorView<float>::vector(scale_param_.data(), n),
      TensorView<float>::vector(scale_grad_.data(), n));
    if (learn_zero_point_)
      f("lsq.zero_point", TensorView<float>::vector(zero_point_.data(), n),
        TensorView<float>::vector(zero_point_grad_.data(), n));
  }

 private:
  template <class Arch, class N>
  void run_constant(bool simd, const float* x, float* y, std::int64_t n,
                    const detail::ElementParams<float>& p, detail::BitWriter* bw) const noexcept {
#if FQ_HAS_XSIMD
    if constexpr (kSimdArch<Arch>) {
      if (simd) return simd::fq_run<N, Arch>(x, y, n, p, bw, range_);
    }
#endif
    (void)simd;
    detail::fq_run_scalar<Arch, N, false>(x, 1, y, 1, n, p, bw);
  }
  template <class Arch, class N>
  void run_varying(bool simd, const float* x, float* y, std::int64_t n, const float* s,
                   const std::int32_t* z, detail::BitWriter* bw) const noexcept {
#if FQ_HAS_XSIMD
    if constexpr (kSimdArch<Arch>) {
      if (simd) return simd::fq_run_varying<N, Arch>(x, y, n, s, z, range_, bw);
    }
#endif
    (void)simd;
    detail::fq_run_scalar_varying<Arch, N>(x, 1, y, 1, n, s, z, range_, bw);
  }

  template <class Arch>
  void fused(TensorView<const float> x, TensorView<const float> dy, TensorView<float> y,
             TensorView<float> dx, bool accumulate, const char* where) {
    detail::check_lsq_views(x, dy, y, dx, where);
    FQ_CHECK(x.is_contiguous() && dy.is_contiguous() && y.is_contiguous() && dx.is_contiguous(),
             ErrorCode::kInvalidLayout,
             detail::msg(where, ": group formats take contiguous row-major tensors"));
    const std::size_t n = scale_param_.size();
    if (x.numel() == 0) {  // nothing quantized: zero gradients (added: unchanged)
      if (!accumulate)
        for (std::size_t g = 0; g < n; ++g) scale_grad_[g] = zero_point_grad_[g] = 0.0f;
      return;
    }
    check_layout(x, where);
    std::vector<float> s_dom(n), s(n);
    std::vector<detail::LsqParams> params(n);
    for (std::size_t g = 0; g < n; ++g) {
      s_dom[g] = SP::to_scale(scale_param_[g], where);
      s[g] = R::apply(s_dom[g]);
      detail::check_scale(s[g], where);
      detail::check_lsq_zero_point(zero_point_[g], where);
      params[g] = detail::make_lsq_params<M>(s[g], zero_point_[g], range_, true);
    }
    std::vector<detail::LsqSums> sums(n);
    const GroupLayout& L = layout_;
    const float *xp = x.data(), *gp = dy.data();
    float *yp = y.data(), *dxp = dx.data();
    if (L.inner == 1) {
      for (std::int64_t o = 0; o < L.outer; ++o)
        for (std::int64_t j = 0; j < L.groups_per_axis; ++j) {
          const std::int64_t b = o * L.axis_len + j * L.group_size;
          const auto g = static_cast<std::size_t>(o * L.groups_per_axis + j);
          detail::lsq_run_scalar<Arch, M>(xp + b, 1, gp + b, 1, yp + b, 1, dxp + b, 1,
                                          L.group_len(j), params[g], sums[g]);
        }
    } else {
      for (std::int64_t o = 0; o < L.outer; ++o)
        for (std::int64_t k = 0; k < L.axis_len; ++k) {
          const std::int64_t b = (o * L.axis_len + k) * L.inner;
          const auto g0 = static_cast<std::size_t>(L.group_of(o, k, 0));
          detail::lsq_run_scalar_varying<Arch, M>(xp + b, 1, gp + b, 1, yp + b, 1, dxp + b, 1,
                                                  L.inner, params.data() + g0, sums.data() + g0);
        }
    }
    for (std::size_t g = 0; g < n; ++g) {
      const double gf = static_cast<double>(grad_scale_factor(static_cast<std::int64_t>(g)));
      float ds = detail::lsq_scale_grad(gf, sums[g].ts);
      float dz = detail::lsq_zero_point_grad(gf, sums[g].tz);
      ds *= R::grad(s_dom[g], s[g]) * SP::grad(scale_param_[g], s_dom[g]);
      if (!learn_zero_point_) dz = 0.0f;
      scale_grad_[g] = accumulate ? scale_grad_[g] + ds : ds;
      zero_point_grad_[g] = accumulate ? zero_point_grad_[g] + dz : dz;
    }
  }

  template <class T>
  void check_layout(const TensorView<T>& x, const char* where) const {
    const GroupLayout got = detail::make_group_layout(x.shape().data(), x.rank(), kAxis, group_arg_,
                                                      Gran::kTail, where);
    FQ_CHECK(got == layout_, ErrorCode::kShapeMismatch,
             detail::msg(where, ": x of shape ", detail::shape_str(x), " has ", got.groups(),
                         " groups of ", got.group_size, " along an axis of ", got.axis_len,
                         ", the quantizer was built for ", layout_.groups(), " groups of ",
                         layout_.group_size, " along ", layout_.axis_len, " (outer ", layout_.outer,
                         ", inner ", layout_.inner, ")"));
  }
  void check_group(std::int64_t g) const {
    FQ_CHECK(g >= 0 && g < groups(), ErrorCode::kInvalidArgument,
             detail::msg("LsqGroupQuantizer: group ", g, " is outside [0, ", groups(), ")"));
  }

  QuantRange range_;
  bool learn_zero_point_;
  std::int64_t group_arg_;
  GroupLayout layout_;
  std::vector<float> scale_param_, zero_point_, scale_grad_, zero_point_grad_;
  std::vector<float> scratch_;  // the backward's y
};

}  // namespace fq

#endif  // FQ_LEARNABLE_LSQ_GROUP_HPP_
