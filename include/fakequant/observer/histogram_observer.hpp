// SPDX-License-Identifier: MIT
// fakequant/observer/histogram_observer.hpp: HistogramObserver — accumulates a histogram of
// every tensor observed (observer/histogram.hpp), picks a clipping range [min, max] with a
// range chooser (observer/histogram_range.hpp: MseRange as PyTorch's HistogramObserver,
// PercentileRange, EntropyRange) and turns it into qparams with a QParamsPolicy
// (ObserverQParams, scheme/qparams.hpp, by default). Per tensor only, as PyTorch's.
//
// It has the observer interface of MinMaxObserver, so it drops into fq::FakeQuantize:
//   fq::FakeQuantize<fq::Uint8ActPerTensorAffine, fq::HistogramObserver<>> act;
// FakeQuantize recomputes the qparams after every observed batch, and each recomputation runs
// the chooser's search over the bins (O(bins) to O(bins^2)); for calibration, observe many
// batches with the observer alone and compute the qparams once.
// Differences from PyTorch's HistogramObserver (pytorch#83672 and its merge rule): values at
// the histogram edges are always counted, and a growing range re-bins exactly
// (observer/histogram.hpp) instead of up/down-sampling, so multi-batch results with a growing
// range differ; a single batch, or batches sharing one range, give PyTorch's qparams when its
// min and max are whole numbers (its int() truncation then drops nothing).
#ifndef FQ_OBSERVER_HISTOGRAM_OBSERVER_HPP_
#define FQ_OBSERVER_HISTOGRAM_OBSERVER_HPP_

#include <cstdint>  // int64_t
#include <limits>   // numeric_limits
#include <utility>  // forward
#include <vector>   // vector

#include <fakequant/base/state.hpp>
#include <fakequant/observer/histogram.hpp>
#include <fakequant/observer/histogram_range.hpp>
#include <fakequant/quantizer/fake_quantizer.hpp>
#include <fakequant/scheme/qparams.hpp>

namespace fq {

/// Histogram-based observer (see the file comment).
/// @tparam RangeChooser MseRange (PyTorch) | PercentileRange | EntropyRange, or any type with
///   `ClipRange choose(const Histogram&, QuantRange) const`.
/// @tparam QParamsPolicy ObserverQParams (default) or FusedQParams<> (fused_qparams.hpp).
template <class RangeChooser = MseRange, class QParamsPolicy = ObserverQParams>
class HistogramObserver {
 public:
  static constexpr bool kPerChannel = false;
  using range_chooser = RangeChooser;

  /// 2048 bins (PyTorch's default) and a default-constructed chooser.
  HistogramObserver() : hist_(2048) {}
  /// `bins` bins and the given chooser (e.g. PercentileRange{99.9}).
  explicit HistogramObserver(std::int64_t bins, RangeChooser chooser = RangeChooser{})
      : hist_(bins), chooser_(chooser) {}
  /// The constructor fq::FakeQuantize calls: a histogram has no averaging constant and is per
  /// tensor, so both are ignored (assign observer() to configure bins or the chooser).
  HistogramObserver(float /*averaging_constant*/, int /*axis*/) : hist_(2048) {}

  /// Adds a tensor (float or double) to the histogram. Empty tensors are ignored; NaN/Inf is
  /// an error (ErrorCode::kNonFiniteInput) and leaves the state unchanged. Arch: the
  /// instruction set of the min/max kernel (simd/arch.hpp); leave the default.
  template <class Arch = DefaultArch, class X>
  void observe(X&& x_in) {
    using T = detail::view_scalar_t<X>;
    const TensorView<const T> x = detail::as_view(std::forward<X>(x_in));
    if (x.numel() == 0) return;
    hist_.template add<Arch>(x);
    min_[0] = detail::saturate_to_float(hist_.data_min());
    max_[0] = detail::saturate_to_float(hist_.data_max());
  }

  /// The clipping range the chooser picks for `range` ([+inf, -inf] before any data).
  ClipRange clip_range(QuantRange range) const { return chooser_.choose(hist_, range); }

  /// The qparams of Scheme on `range` (one pair: per tensor).
  template <class Scheme>
  void calculate_qparams(QuantRange range, std::vector<float>& scale,
                         std::vector<typename Scheme::zero_point_type>& zero_point) const {
    const auto q = calculate_qparams<Scheme>(range);
    scale.assign(1, q.scale);
    zero_point.assign(1, q.zero_point);
  }
  template <class Scheme>
  QParams<typename Scheme::zero_point_type> calculate_qparams(QuantRange range) const {
    static_assert(!Scheme::granularity::kPerChannel,
                  "HistogramObserver: the histogram observer is per tensor; use a PerTensor "
                  "scheme.");
    const ClipRange r = clip_range(range);
    return QParamsPolicy::template compute<Scheme>(r.min_val, r.max_val, range);
  }

  /// Smallest and largest value observed (one entry; +inf/-inf before any data).
  const std::vector<float>& min_val() const noexcept { return min_; }
  const std::vector<float>& max_val() const noexcept { return max_; }
  /// True once a non-empty tensor was observed (since construction or reset()).
  bool has_data() const noexcept { return !hist_.empty(); }
  const Histogram& histogram() const noexcept { return hist_; }
  const RangeChooser& chooser() const noexcept { return chooser_; }
  RangeChooser& chooser() noexcept { return chooser_; }

  /// The checkpoint state (base/state.hpp): the histogram and the observed range. The range
  /// chooser's settings are configuration the caller sets again (they are not checked).
  template <class V>
  void visit_state(V& v) {
    v.kind("histogram_observer");
    v.child("histogram", hist_);
    v.state_vector("min", min_, state_not_nan(), StateSize{1, 1, nullptr});
    v.state_vector("max", max_, state_not_nan(), StateSize{1, 1, nullptr});
  }

  /// Forgets everything observed.
  void reset() {
    hist_.reset();
    min_[0] = std::numeric_limits<float>::infinity();
    max_[0] = -std::numeric_limits<float>::infinity();
  }

 private:
  Histogram hist_;
  RangeChooser chooser_{};
  std::vector<float> min_{std::numeric_limits<float>::infinity()};
  std::vector<float> max_{-std::numeric_limits<float>::infinity()};
};

/// PyTorch's HistogramObserver (L2 search), edge values counted.
using MseHistogramObserver = HistogramObserver<MseRange>;
/// Percentile clipping (99.99% by default).
using PercentileHistogramObserver = HistogramObserver<PercentileRange>;
/// TensorRT-style entropy (KL) calibration.
using EntropyHistogramObserver = HistogramObserver<EntropyRange>;

}  // namespace fq

#endif  // FQ_OBSERVER_HISTOGRAM_OBSERVER_HPP_
