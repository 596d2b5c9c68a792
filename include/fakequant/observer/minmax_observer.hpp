// SPDX-License-Identifier: MIT
// fakequant/observer/minmax_observer.hpp: MinMax and MovingAverageMinMax observers, per tensor
// and per channel, with torch.ao's update rules and qparams (scheme/qparams.hpp):
//   MinMax:        min = min(min, batch_min), max = max(max, batch_max)
//   MovingAverage: first batch copied; then min += c * (batch_min - min) in float32, c = 0.01
//                  by default (not bitwise equal to (1-c)*min + c*batch_min: PyTorch's form).
//                  Where batch_min - min overflows float32 (ranges near +-3e38 on both sides) the
//                  step is computed in double instead (PyTorch gives +-inf): still finite.
// Double data beyond float's range is observed as +-FLT_MAX (observer/aminmax.hpp); the qparams
// clip extreme ranges to +-FLT_MAX / 4 (scheme/qparams.hpp), so the scale is always finite.
// Data parallel (a SyncBatchStats scope alive, base/communicator.hpp): batch_min and batch_max
// are the minimum and maximum over every rank's batch before the update, so every rank keeps
// the same range, that of the global batch (min and max reduce exactly).
#ifndef FQ_OBSERVER_MINMAX_OBSERVER_HPP_
#define FQ_OBSERVER_MINMAX_OBSERVER_HPP_

#include <algorithm>  // min, max
#include <cmath>      // isfinite
#include <cstdint>    // int64_t
#include <limits>     // numeric_limits
#include <utility>    // forward
#include <vector>     // vector

#include <fakequant/base/communicator.hpp>
#include <fakequant/base/state.hpp>
#include <fakequant/core/tensor_view.hpp>
#include <fakequant/observer/aminmax.hpp>
#include <fakequant/policy/rounding.hpp>
#include <fakequant/scheme/qparams.hpp>

namespace fq {

/// Running minimum and maximum.
struct RunningMinMaxUpdate {
  static constexpr bool kMovingAverage = false;
};
/// Exponential moving average of the batch minimum and maximum.
struct MovingAverageUpdate {
  static constexpr bool kMovingAverage = true;
};

/// Observes tensors and turns their range into qparams for a scheme.
/// @tparam Update RunningMinMaxUpdate or MovingAverageUpdate.
/// @tparam PerChannel one range per index along the axis given at construction.
/// @tparam QParamsPolicy how a range becomes qparams: ObserverQParams (torch.ao observers) or
/// FusedQParams<> (observer/fused_qparams.hpp, PyTorch's fused QAT module).
template <class Update, bool PerChannel, class QParamsPolicy = ObserverQParams>
class MinMaxObserverBase {
 public:
  static constexpr bool kPerChannel = PerChannel;

  /// @param averaging_constant c of the moving average (ignored by MinMax), in (0, 1].
  /// @param axis channel axis (per-channel only; negative counts from the end).
  explicit MinMaxObserverBase(float averaging_constant = 0.01f, int axis = 0)
      : c_(averaging_constant), axis_(axis) {
    FQ_CHECK(!Update::kMovingAverage || (c_ > 0.0f && c_ <= 1.0f), ErrorCode::kInvalidArgument,
             detail::msg("MovingAverage observer: averaging_constant must be in (0, 1], got ", c_));
    if (!PerChannel) reset_to(1);
  }

  /// Folds a tensor's range into the state. Empty tensors are ignored; NaN/Inf is an error.
  /// Arch: the instruction set of the min/max kernel (simd/arch.hpp); leave the default.
  template <class Arch = DefaultArch, class X>
  void observe(X&& x_in) {
    using T = detail::view_scalar_t<X>;
    const TensorView<const T> x = detail::as_view(std::forward<X>(x_in));
    constexpr const char* kWhere = "observer";
    if (x.numel() == 0) return;
    const int ax = PerChannel ? detail::normalize_axis(axis_, x.rank(), kWhere) : -1;
    const std::int64_t count = PerChannel ? x.size(ax) : 1;
    if (PerChannel && min_.empty()) reset_to(count);
    FQ_CHECK(
        count == static_cast<std::int64_t>(min_.size()), ErrorCode::kParamCountMismatch,
        detail::msg(kWhere, ": ", count, " channels, but the observer has seen ", min_.size()));
    bmin_.resize(static_cast<std::size_t>(count));
    bmax_.resize(static_cast<std::size_t>(count));
    detail::aminmax<Arch>(x, ax, bmin_.data(), bmax_.data(), kWhere);
    detail::sync_batch_range(bmin_.data(), bmax_.data(), bmin_.size());
    for (std::size_t i = 0; i < bmin_.size(); ++i) {
      const bool first = std::isinf(min_[i]) && min_[i] > 0 && std::isinf(max_[i]) && max_[i] < 0;
      if (Update::kMovingAverage && !first) {
        // Two roundings, as PyTorch's float32 tensor ops: no FMA contraction.
        min_[i] = moving_average(min_[i], bmin_[i]);
        max_[i] = moving_average(max_[i], bmax_[i]);
      } else {
        min_[i] = std::min(min_[i], bmin_[i]);
        max_[i] = std::max(max_[i], bmax_[i]);
      }
    }
  }

  /// Observed minimum (one per channel; +inf before any data).
  const std::vector<float>& min_val() const noexcept { return min_; }
  /// Observed maximum (one per channel; -inf before any data).
  const std::vector<float>& max_val() const noexcept { return max_; }
  /// True once a non-empty tensor was observed (since construction or reset()).
  bool has_data() const noexcept { return !min_.empty() && !(std::isinf(min_[0]) && min_[0] > 0); }
  int axis() const noexcept { return axis_; }
  float averaging_constant() const noexcept { return c_; }

  /// The qparams of Scheme on `range` for each channel observed (one for per tensor).
  template <class Scheme>
  void calculate_qparams(QuantRange range, std::vector<float>& scale,
                         std::vector<typename Scheme::zero_point_type>& zero_point) const {
    scale.resize(min_.size());
    zero_point.resize(min_.size());
    for (std::size_t i = 0; i < min_.size(); ++i) {
      const auto q = QParamsPolicy::template compute<Scheme>(min_[i], max_[i], range);
      scale[i] = q.scale;
      zero_point[i] = q.zero_point;
    }
  }
  /// Per-tensor convenience: the single (scale, zero point).
  template <class Scheme>
  QParams<typename Scheme::zero_point_type> calculate_qparams(QuantRange range) const {
    static_assert(!PerChannel, "calculate_qparams(range) is per-tensor; pass vectors per channel.");
    return QParamsPolicy::template compute<Scheme>(min_[0], max_[0], range);
  }

  /// Forgets everything observed.
  void reset() { reset_to(PerChannel ? 0 : 1); }

  /// The checkpoint state (base/state.hpp): the running or averaged range of each channel
  /// (none yet per channel before data; +-inf before data per tensor).
  template <class V>
  void visit_state(V& v) {
    v.kind(Update::kMovingAverage ? "moving_average_minmax_observer" : "minmax_observer");
    v.config("per_channel", PerChannel);
    v.config("averaging_constant", c_);
    v.config("axis", axis_);
    const StateSize n = PerChannel ? StateSize{} : StateSize{1, 1, nullptr};
    v.state_vector("min", min_, state_not_nan(), n);
    v.state_vector("max", max_, state_not_nan(), StateSize{n.min, n.max, "min"});
  }

 private:
  // m + c (b - m) in float32 (PyTorch's), or in double where b - m overflows float: the
  // result lies between m and b, so it is finite.
  float moving_average(float m, float b) const noexcept {
    const float r = m + detail::no_contract(c_ * (b - m));
    if (std::isfinite(r)) return r;
    const double m_d = m;
    return static_cast<float>(m_d + static_cast<double>(c_) * (static_cast<double>(b) - m_d));
  }
  void reset_to(std::int64_t n) {
    min_.assign(static_cast<std::size_t>(n), std::numeric_limits<float>::infinity());
    max_.assign(static_cast<std::size_t>(n), -std::numeric_limits<float>::infinity());
  }

  float c_;
  int axis_;
  std::vector<float> min_, max_, bmin_, bmax_;
};

/// torch.ao MinMaxObserver.
using MinMaxObserver = MinMaxObserverBase<RunningMinMaxUpdate, false>;
/// torch.ao PerChannelMinMaxObserver (ch_axis given at construction, default 0).
using PerChannelMinMaxObserver = MinMaxObserverBase<RunningMinMaxUpdate, true>;
/// torch.ao MovingAverageMinMaxObserver (averaging_constant 0.01).
using MovingAverageMinMaxObserver = MinMaxObserverBase<MovingAverageUpdate, false>;
/// torch.ao MovingAveragePerChannelMinMaxObserver.
using MovingAveragePerChannelMinMaxObserver = MinMaxObserverBase<MovingAverageUpdate, true>;

}  // namespace fq

#endif  // FQ_OBSERVER_MINMAX_OBSERVER_HPP_
