// SPDX-License-Identifier: MIT
// fakequant/observer/group_observer.hpp: observers per group (PerGroup<G, Axis, Tail>): the
// (scale, zero point) of every group, as plain vectors in GroupLayout order (group of element
// (o, k, i) = (o * ceil(K / G) + k / G) * inner + i, core/group_layout.hpp), the input a
// group quantizer's set_qparams() and LsqGroupQuantizer::set_qparams() take.
//
// GroupMinMaxObserver: per-group min and max of the last observed tensor (GroupObserve::kLast,
//   the default: a weight's qparams, as TorchAO/GPTQ compute them from the weight itself) or
//   the running min/max over every observed tensor (kRunning; the layout must stay the same).
//   calculate_qparams<Scheme>(range) applies scheme/qparams.hpp's calculate_qparams to each
//   group — TorchAO's choose_qparams_affine rule (quant_primitives.py, in float32):
//     mn = min(min, 0), mx = max(max, 0)
//     Symmetric  s = max(max(-mn, mx) / ((qmax - qmin) / 2), eps), z = the scheme's fixed zero
//                point (0 signed; 2^(b-1) unsigned IntRange = TorchAO's int((qmax+qmin+1)/2))
//     Affine     s = max((mx - mn) / (qmax - qmin), eps), z = clamp(qmin - rne(mn / s))
//   eps = FLT_EPSILON, as TorchAO's default for float32 input. An all-zero group gets s = eps
//   (GPTQ instead widens it to [-1, 1]). Differences from TorchAO: a RuntimeRange symmetric
//   zero point is (qmin + qmax) / 2 (PyTorch's observer rule); ranges beyond +-FLT_MAX / 4 are
//   clipped (scheme/qparams.hpp).
// GroupMseObserver: keeps a copy of the last observed tensor and, per group, searches the
//   clipping ratio as GPTQ's Quantizer.find_params(mse=True) (IST-DASLab/gptq quant.py):
//     for i = 0, 1, ..., floor(maxshrink * grid) - 1:  p = f32(1 - i / grid)
//       candidate [f32(p * min), f32(p * max)] -> (s, z) by the min-max rule above
//       error = sum over the group of |fq(x) - x|^norm   (double; fq = the scheme's element
//               formula, scheme/numerics.hpp, i.e. the group fake quantizer's forward)
//     keep the candidate of least error; a tie keeps the larger ratio (the earlier one, as
//     GPTQ's `err < best`). Defaults grid 100, maxshrink 0.8, norm 2.4 (GPTQ's): the ratios
//     are 1, 0.99, ..., 0.21 (GPTQ's range excludes 1 - maxshrink itself). p = 1 is always
//     tried, so the chosen error is <= the min-max error of every group. A candidate's sum
//     stops once it reaches the best error so far (the terms are >= 0: the choice is exact).
//   Differences from GPTQ: GPTQ quantizes onto [0, maxq] with an unclamped zero point
//   round(-min / s) and a symmetric scale 2 amax / maxq; here the Scheme's range, mapping and
//   rounding decide (for symmetric int4 both give s = amax / 7.5); GPTQ sums in float32.
// Bad input: NaN/Inf in an observed tensor is kNonFiniteInput (nothing stored); a group size
// that does not divide the axis under GroupTail::kMustDivide, or a kRunning tensor whose
// layout differs from the first, is kShapeMismatch; calculate_qparams before any data is
// kInvalidState; a Scheme whose PerGroup differs from the observer's is kInvalidArgument.
// Empty tensors are ignored. Only contiguous row-major float tensors.
#ifndef FQ_OBSERVER_GROUP_OBSERVER_HPP_
#define FQ_OBSERVER_GROUP_OBSERVER_HPP_

#include <algorithm>    // min, max
#include <cmath>        // fabs, pow, isfinite
#include <cstddef>      // size_t
#include <cstdint>      // int64_t
#include <limits>       // numeric_limits
#include <type_traits>  // is_floating_point
#include <utility>      // move
#include <vector>       // vector

#include <fakequant/core/group_layout.hpp>
#include <fakequant/core/tensor_view.hpp>
#include <fakequant/scheme/numerics.hpp>
#include <fakequant/scheme/qparams.hpp>

namespace fq {

/// How a GroupMinMaxObserver folds a new tensor into its state.
enum class GroupObserve {
  kLast,     ///< min/max of the last observed tensor only
  kRunning,  ///< running min/max over every observed tensor (same layout)
};

/// One scale and zero point per group, in GroupLayout order.
template <class Z>
struct GroupObserverQParams {
  std::vector<float> scale;
  std::vector<Z> zero_point;
};

/// GroupMseObserver's result: the qparams and, per group, the chosen ratio p and its error.
template <class Z>
struct GroupMseQParams : GroupObserverQParams<Z> {
  std::vector<float> ratio;
  std::vector<double> error;
};

/// The clipping search of GroupMseObserver (GPTQ's defaults).
struct GroupMseOptions {
  std::int64_t grid = 100;  ///< ratio step 1 / grid
  double maxshrink = 0.8;   ///< ratios down to (but excluding) 1 - maxshrink
  double norm = 2.4;        ///< error exponent
};

namespace detail {

/// The state both group observers share: configuration, layout, per-group min and max.
class GroupObserverBase {
 public:
  GroupObserverBase(std::int64_t group_size, int axis, GroupTail tail, const char* where)
      : group_size_(group_size), axis_(axis), tail_(tail) {
    FQ_CHECK(group_size > 0 || group_size == kWholeAxisGroup, ErrorCode::kInvalidArgument,
             msg(where, ": the group size must be > 0 or fq::kWholeAxisGroup, got ", group_size));
    FQ_CHECK(axis >= -kMaxRank && axis < kMaxRank, ErrorCode::kInvalidAxis,
             msg(where, ": axis ", axis, " is outside [-", kMaxRank, ", ", kMaxRank, ")"));
  }

  std::int64_t group_size() const noexcept { return group_size_; }
  int axis() const noexcept { return axis_; }
  GroupTail tail() const noexcept { return tail_; }
  /// True once a non-empty tensor was observed (since construction or reset()).
  bool has_data() const noexcept { return has_data_; }
  /// The layout of the observed tensor(s) (valid once has_data()).
  const GroupLayout& layout() const noexcept { return layout_; }
  /// Per-group minimum and maximum, GroupLayout order (empty before any data).
  const std::vector<float>& min_val() const noexcept { return min_; }
  const std::vector<float>& max_val() const noexcept { return max_; }
  void reset() {
    has_data_ = false;
    layout_ = GroupLayout{};
    min_.clear();
    max_.clear();
  }

 protected:
  /// The checkpoint state both observers share (base/state.hpp): the groups (must match),
  /// then the observed layout and the per-group min/max (as many maxima as minima).
  template <class V>
  void visit_base_state(V& v) {
    v.config("group_size", group_size_);
    v.config("axis", static_cast<std::int32_t>(axis_));
    v.config("tail", static_cast<std::int32_t>(tail_));
    v.state("has_data", has_data_);
    std::int32_t rank = layout_rank_;
    v.state("layout_rank", rank, state_in(0, kMaxRank));
    layout_rank_ = rank;
    visit_group_layout_state(v, "layout", layout_);
    v.state_vector("min", min_, state_finite(), StateSize{});
    v.state_vector("max", max_, state_finite(), StateSize{0, StateSize{}.max, "min"});
  }

  /// Keeps a scan's result as the observed state.
  void store(const GroupLayout& L, int rank, std::vector<float> mn, std::vector<float> mx) {
    layout_ = L;
    layout_rank_ = rank;
    min_ = std::move(mn);
    max_ = std::move(mx);
    has_data_ = true;
  }
  /// The layout of x and its per-group min/max (x contiguous, non-empty, finite: else error).
  GroupLayout scan(const TensorView<const float>& x, std::vector<float>& mn, std::vector<float>& mx,
                   const char* where) const {
    FQ_CHECK(x.is_contiguous(), ErrorCode::kInvalidLayout,
             msg(where, ": group observers take contiguous row-major tensors (strides ",
                 strides_str(x), "); copy a strided view first"));
    const GroupLayout L =
        make_group_layout(x.shape().data(), x.rank(), axis_, group_size_, tail_, where);
    mn.assign(static_cast<std::size_t>(L.groups()), std::numeric_limits<float>::infinity());
    mx.assign(mn.size(), -std::numeric_limits<float>::infinity());
    for_each_group(L, [&](std::size_t g, std::int64_t base, std::int64_t len) {
      float lo = mn[g], hi = mx[g];
      for (std::int64_t k = 0; k < len; ++k) {
        const float v = x.data()[base + k * L.inner];
        FQ_CHECK(std::isfinite(v), ErrorCode::kNonFiniteInput,
                 msg(where, ": the observed tensor holds a non-finite value (", v, ") at index ",
                     base + k * L.inner));
        lo = std::min(lo, v);
        hi = std::max(hi, v);
      }
      mn[g] = lo;
      mx[g] = hi;
    });
    return L;
  }

  /// f(group index, offset of its first element, element count); its elements are `inner`
  /// apart. Groups in GroupLayout order.
  template <class F>
  static void for_each_group(const GroupLayout& L, F&& f) {
    std::size_t g = 0;
    for (std::int64_t o = 0; o < L.outer; ++o)
      for (std::int64_t j = 0; j < L.groups_per_axis; ++j)
        for (std::int64_t i = 0; i < L.inner; ++i, ++g)
          f(g, (o * L.axis_len + j * L.group_size) * L.inner + i, L.group_len(j));
  }

  /// Scheme must be a PerGroup scheme matching this observer's groups; data must exist.
  template <class Scheme>
  void check_scheme(const char* where) const {
    using Gr = typename Scheme::granularity;
    static_assert(Gr::kPerGroup,
                  "group observers: calculate_qparams<Scheme> needs a Scheme whose granularity "
                  "is fq::PerGroup<G, Axis, Tail> (per tensor / per channel: "
                  "observer/minmax_observer.hpp).");
    FQ_CHECK(has_data_, ErrorCode::kInvalidState,
             msg(where, ": no tensor observed yet; observe() one first"));
    std::int64_t groups = 0, numel = 0;  // restored state must be whole (visit_base_state)
    FQ_CHECK(layout_counts(layout_, &groups, &numel) && layout_rank_ >= 1 &&
                 static_cast<std::int64_t>(min_.size()) == groups && max_.size() == min_.size(),
             ErrorCode::kInvalidState,
             msg(where, ": the observed layout and its ", min_.size(), " min/max values disagree"));
    const int rank = layout_rank_;
    const bool same_size = Gr::kGroupSize == kRuntimeGroupSize || Gr::kGroupSize == group_size_;
    const bool same_axis =
        normalize_axis(Gr::kAxis, rank, where) == normalize_axis(axis_, rank, where);
    FQ_CHECK(same_size && same_axis && Gr::kTail == tail_, ErrorCode::kInvalidArgument,
             msg(where, ": the scheme's PerGroup<", Gr::kGroupSize, ", ", Gr::kAxis, "> (tail ",
                 Gr::kTail == GroupTail::kShortLast ? "kShortLast" : "kMustDivide",
                 ") differs from the observer's groups (size ", group_size_, ", axis ", axis_,
                 ", tail ", tail_ == GroupTail::kShortLast ? "kShortLast" : "kMustDivide", ")"));
  }

  std::int64_t group_size_;
  int axis_;
  GroupTail tail_;
  bool has_data_ = false;
  int layout_rank_ = 0;
  GroupLayout layout_;
  std::vector<float> min_, max_;
};

/// fq(v) with the Scheme's element formula for qparams (s, z): an integer or float zero point.
template <class Scheme, class Z>
inline float group_fake_quant(float v, const ElementParams<float>& p) noexcept {
  using N = typename Scheme::numerics;
  bool in = false;
  if constexpr (std::is_floating_point<Z>::value)
    return fake_quant_element_float_zp<N>(v, p, in);
  else
    return fake_quant_element<N>(v, p, in);
}

}  // namespace detail

/// Per-group min/max observer (file comment).
class GroupMinMaxObserver : public detail::GroupObserverBase {
 public:
  /// @param group_size G > 0 or kWholeAxisGroup. @param axis the grouped axis (negative from
  /// the end). @param tail GroupTail. @param update kLast (default) or kRunning.
  explicit GroupMinMaxObserver(std::int64_t group_size, int axis = -1,
                               GroupTail tail = GroupTail::kMustDivide,
                               GroupObserve update = GroupObserve::kLast)
      : GroupObserverBase(group_size, axis, tail, "GroupMinMaxObserver"), update_(update) {}

  /// The observer of Scheme's PerGroup (runtime_group_size for PerGroup<kRuntimeGroupSize>).
  template <class Scheme>
  static GroupMinMaxObserver for_scheme(GroupObserve update = GroupObserve::kLast,
                                        std::int64_t runtime_group_size = kRuntimeGroupSize) {
    using Gr = typename Scheme::granularity;
    static_assert(Gr::kPerGroup, "GroupMinMaxObserver::for_scheme: Scheme must be PerGroup.");
    return GroupMinMaxObserver(
        Gr::kGroupSize == kRuntimeGroupSize ? runtime_group_size : Gr::kGroupSize, Gr::kAxis,
        Gr::kTail, update);
  }

  GroupObserve update() const noexcept { return update_; }

  /// Folds x's per-group ranges into the state (file comment). Empty x is ignored.
  void observe(TensorView<const float> x) {
    constexpr const char* kWhere = "GroupMinMaxObserver::observe";
    if (x.numel() == 0) return;
    std::vector<float> mn, mx;
    const GroupLayout L = scan(x, mn, mx, kWhere);
    if (update_ == GroupObserve::kRunning && has_data_) {
      FQ_CHECK(L == layout_, ErrorCode::kShapeMismatch,
               detail::msg(kWhere, ": x of shape ", detail::shape_str(x), " has ", L.groups(),
                           " groups, the running state ", layout_.groups(),
                           " (another layout); reset() first"));
      FQ_CHECK(min_.size() == mn.size() && max_.size() == mn.size(), ErrorCode::kInvalidState,
               detail::msg(kWhere, ": the running state holds ", min_.size(),
                           " min/max values for ", mn.size(), " groups"));
      for (std::size_t g = 0; g < mn.size(); ++g) {
        min_[g] = std::min(min_[g], mn[g]);
        max_[g] = std::max(max_[g], mx[g]);
      }
      return;
    }
    store(L, x.rank(), std::move(mn), std::move(mx));
  }

  /// The qparams of every group on `range` (file comment).
  template <class Scheme>
  GroupObserverQParams<typename Scheme::zero_point_type> calculate_qparams(QuantRange range) const {
    check_scheme<Scheme>("GroupMinMaxObserver::calculate_qparams");
    GroupObserverQParams<typename Scheme::zero_point_type> out;
    out.scale.resize(min_.size());
    out.zero_point.resize(min_.size());
    for (std::size_t g = 0; g < min_.size(); ++g) {
      const auto q = ::fq::calculate_qparams<Scheme>(min_[g], max_[g], range);
      out.scale[g] = q.scale;
      out.zero_point[g] = q.zero_point;
    }
    return out;
  }
  /// As above on the scheme's compile-time range.
  template <class Scheme>
  GroupObserverQParams<typename Scheme::zero_point_type> calculate_qparams() const {
    static_assert(!Scheme::range::kRuntime,
                  "GroupMinMaxObserver::calculate_qparams(): a RuntimeRange scheme needs the "
                  "range as the argument.");
    return calculate_qparams<Scheme>(Scheme::range::value());
  }
  /// The checkpoint state (base/state.hpp): the update rule (must match) and the observed
  /// min/max.
  template <class V>
  void visit_state(V& v) {
    v.kind("group_minmax_observer");
    v.config("update", static_cast<std::int32_t>(update_));
    visit_base_state(v);
  }

 private:
  GroupObserve update_;
};

/// Per-group MSE clipping search (file comment).
class GroupMseObserver : public detail::GroupObserverBase {
 public:
  explicit GroupMseObserver(std::int64_t group_size, int axis = -1,
                            GroupTail tail = GroupTail::kMustDivide,
                            GroupMseOptions options = GroupMseOptions{})
      : GroupObserverBase(group_size, axis, tail, "GroupMseObserver"), opt_(options) {
    constexpr const char* kWhere = "GroupMseObserver";
    FQ_CHECK(opt_.grid >= 1, ErrorCode::kInvalidArgument,
             detail::msg(kWhere, ": grid must be >= 1, got ", opt_.grid));
    FQ_CHECK(opt_.maxshrink >= 0.0 && opt_.maxshrink < 1.0, ErrorCode::kInvalidArgument,
             detail::msg(kWhere, ": maxshrink must lie in [0, 1), got ", opt_.maxshrink));
    FQ_CHECK(std::isfinite(opt_.norm) && opt_.norm > 0.0, ErrorCode::kInvalidArgument,
             detail::msg(kWhere, ": norm must be finite and > 0, got ", opt_.norm));
  }

  template <class Scheme>
  static GroupMseObserver for_scheme(GroupMseOptions options = GroupMseOptions{},
                                     std::int64_t runtime_group_size = kRuntimeGroupSize) {
    using Gr = typename Scheme::granularity;
    static_assert(Gr::kPerGroup, "GroupMseObserver::for_scheme: Scheme must be PerGroup.");
    return GroupMseObserver(
        Gr::kGroupSize == kRuntimeGroupSize ? runtime_group_size : Gr::kGroupSize, Gr::kAxis,
        Gr::kTail, options);
  }

  const GroupMseOptions& options() const noexcept { return opt_; }
  /// Number of ratios tried per group: max(1, floor(maxshrink * grid)).
  std::int64_t candidates() const noexcept {
    const auto n = static_cast<std::int64_t>(opt_.maxshrink * static_cast<double>(opt_.grid));
    return n > 0 ? n : 1;
  }
  /// The i-th ratio, f32(1 - i / grid).
  float ratio(std::int64_t i) const noexcept {
    return static_cast<float>(1.0 - static_cast<double>(i) / static_cast<double>(opt_.grid));
  }

  /// Keeps a copy of x (the last tensor) and its per-group min/max. Empty x is ignored.
  void observe(TensorView<const float> x) {
    constexpr const char* kWhere = "GroupMseObserver::observe";
    if (x.numel() == 0) return;
    std::vector<float> mn, mx;
    const GroupLayout L = scan(x, mn, mx, kWhere);
    data_.assign(x.data(), x.data() + x.numel());
    store(L, x.rank(), std::move(mn), std::move(mx));
  }

  /// The best-ratio qparams of every group on `range` (file comment).
  template <class Scheme>
  GroupMseQParams<typename Scheme::zero_point_type> calculate_qparams(QuantRange range) const {
    using Z = typename Scheme::zero_point_type;
    using N = typename Scheme::numerics;
    constexpr const char* kWhere = "GroupMseObserver::calculate_qparams";
    check_scheme<Scheme>(kWhere);
    check_range(range, kWhere);
    FQ_CHECK(float_exact_range(range), ErrorCode::kInvalidRange,
             detail::msg(kWhere, ": the range must be float-exact (at most 2^24 levels)"));
    GroupMseQParams<Z> out;
    FQ_CHECK(static_cast<std::int64_t>(data_.size()) == layout_.numel(), ErrorCode::kInvalidState,
             detail::msg("GroupMseObserver::calculate_qparams: ", data_.size(),
                         " kept values for a tensor of ", layout_.numel()));
    const std::size_t n = min_.size();
    out.scale.resize(n);
    out.zero_point.resize(n);
    out.ratio.resize(n);
    out.error.resize(n);
    const std::int64_t count = candidates();
    const double norm = opt_.norm;
    auto power = [norm](double e) { return norm == 2.0 ? e * e : std::pow(e, norm); };
    const GroupLayout& L = layout_;
    for_each_group(L, [&](std::size_t g, std::int64_t base, std::int64_t len) {
      double best = std::numeric_limits<double>::infinity();
      for (std::int64_t i = 0; i < count; ++i) {
        const float p = ratio(i);
        const auto q = ::fq::calculate_qparams<Scheme>(p * min_[g], p * max_[g], range);
        const auto ep = detail::make_element_params<N, float>(q.scale, double(q.zero_point), range);
        double err = 0.0;
        for (std::int64_t k = 0; k < len && err < best; ++k) {
          const float v = data_[static_cast<std::size_t>(base + k * L.inner)];
          const float y = detail::group_fake_quant<Scheme, Z>(v, ep);
          err += power(std::fabs(static_cast<double>(y) - static_cast<double>(v)));
        }
        if (i == 0 || err < best) {  // strict: a tie keeps the larger ratio
          best = err;
          out.scale[g] = q.scale;
          out.zero_point[g] = q.zero_point;
          out.ratio[g] = p;
          out.error[g] = err;
        }
      }
    });
    return out;
  }
  template <class Scheme>
  GroupMseQParams<typename Scheme::zero_point_type> calculate_qparams() const {
    static_assert(!Scheme::range::kRuntime,
                  "GroupMseObserver::calculate_qparams(): a RuntimeRange scheme needs the range "
                  "as the argument.");
    return calculate_qparams<Scheme>(Scheme::range::value());
  }

  /// Forgets the data.
  void reset() {
    GroupObserverBase::reset();
    data_.clear();
  }
  /// The checkpoint state (base/state.hpp): the search options (must match), the observed
  /// min/max and the kept data the search runs on.
  template <class V>
  void visit_state(V& v) {
    v.kind("group_mse_observer");
    v.config("grid", opt_.grid);
    v.config("maxshrink", opt_.maxshrink);
    v.config("norm", opt_.norm);
    visit_base_state(v);
    v.state_vector("data", data_, state_finite(), StateSize{});
  }

 private:
  GroupMseOptions opt_;
  std::vector<float> data_;
};

}  // namespace fq

#endif  // FQ_OBSERVER_GROUP_OBSERVER_HPP_
