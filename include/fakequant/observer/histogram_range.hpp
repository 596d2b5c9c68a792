// SPDX-License-Identifier: MIT
// fakequant/observer/histogram_range.hpp: range choosers — policies that turn a Histogram
// (observer/histogram.hpp) into a clipping range [min, max] for the qparams code.
//
//   MseRange        PyTorch HistogramObserver's _non_linear_param_search: walk the quantiles
//                   in steps of 1e-5 from both ends, moving whichever end gains more bins, and
//                   stop when the L2 error (each source bin's values spread uniformly and
//                   rounded to the centre of one of dst_bins destination bins over the
//                   candidate range, clipped values to the end bins) rises. Result, in float32
//                   as PyTorch: min = lo + w*start, max = lo + w*(end + 1), w = (hi - lo) / N.
//   PercentileRange the values at the (100 - p)% and p% points of the CDF, linearly
//                   interpolated inside a bin (values spread uniformly in a bin): two-sided.
//   EntropyRange    TensorRT's entropy (KL) calibration on the magnitude histogram |x|: for
//                   each candidate threshold bin i, P = bins [0, i) with the outliers added to
//                   bin i-1, Q = the same bins (no outliers) merged into L levels and spread back
//                   over their non-empty bins; pick the i of smallest KL(P || Q). L = levels/2
//                   for signed data (128 for int8), all levels for non-negative data. Range
//                   [-T, T] (or [0, T]) with T = i * w, clipped to the data range. The search
//                   costs O(M^2) for M magnitude bins, so M is at most kMaxEntropyBins (16384,
//                   about a second; TensorRT uses 2048): the automatic M is capped there and a
//                   larger magnitude_bins is an ErrorCode::kInvalidArgument.
// Extreme ranges (a histogram spanning +-3e38): MseRange's float32 edge arithmetic would
// overflow, so it is done in double there and the result saturates at +-FLT_MAX; every chooser
// returns finite float values (the qparams code then clips them: scheme/qparams.hpp).
// A histogram with no data gives [+inf, -inf] (the qparams code's "nothing observed"); one
// whose values are all equal gives [v, v].
#ifndef FQ_OBSERVER_HISTOGRAM_RANGE_HPP_
#define FQ_OBSERVER_HISTOGRAM_RANGE_HPP_

#include <algorithm>  // min, max, lower_bound
#include <cmath>      // ceil, fabs, floor, log
#include <cstdint>    // int64_t
#include <limits>     // numeric_limits
#include <vector>     // vector

#include <fakequant/base/error.hpp>
#include <fakequant/observer/histogram.hpp>
#include <fakequant/policy/rounding.hpp>
#include <fakequant/scheme/range.hpp>

namespace fq {

/// A clipping range chosen from a histogram.
struct ClipRange {
  float min_val;
  float max_val;
};

namespace detail {
/// The range for an empty or degenerate histogram; returns false if h needs a search.
inline bool trivial_clip_range(const Histogram& h, ClipRange& out) noexcept {
  if (h.empty()) {
    out = {std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity()};
    return true;
  }
  if (h.degenerate()) {
    out = {static_cast<float>(h.lower()), static_cast<float>(h.upper())};
    return true;
  }
  return false;
}

inline double cube_norm(double begin, double end) noexcept {
  return (end * end * end - begin * begin * begin) / 3.0;
}
}  // namespace detail

/// L2-error search over candidate [min, max], as PyTorch's HistogramObserver.
struct MseRange {
  /// Destination bins of the error model: PyTorch uses 2^8 for its 8-bit dtypes whatever the
  /// quant_min/quant_max; set the level count (e.g. 16) to match a narrower grid.
  std::int64_t dst_bins = 256;

  ClipRange choose(const Histogram& h, QuantRange /*range*/) const {
    FQ_CHECK(dst_bins >= 1, ErrorCode::kInvalidArgument,
             detail::msg("MseRange: dst_bins must be >= 1, got ", dst_bins));
    ClipRange out{};
    if (detail::trivial_clip_range(h, out)) return out;
    const std::int64_t n = h.bins();
    const auto& c = h.counts();
    const float lo_f = detail::saturate_to_float(h.lower()),
                hi_f = detail::saturate_to_float(h.upper());
    const double bw =
        (static_cast<double>(hi_f) - static_cast<double>(lo_f)) / static_cast<double>(n);
    std::vector<double> csum(static_cast<std::size_t>(n));
    double acc = 0.0;
    for (std::size_t i = 0; i < csum.size(); ++i) csum[i] = acc += static_cast<double>(c[i]);
    const double total = acc;
    // PyTorch compares the float32 cumulative sum with a float32 threshold.
    auto below = [&](std::int64_t i, double thr) {
      return static_cast<float>(csum[static_cast<std::size_t>(i)]) < static_cast<float>(thr);
    };
    auto above = [&](std::int64_t i, double thr) {
      return static_cast<float>(csum[static_cast<std::size_t>(i)]) > static_cast<float>(thr);
    };
    const double step = 1e-5;
    double alpha = 0.0, beta = 1.0, norm_min = std::numeric_limits<double>::infinity();
    std::int64_t start = 0, end = n - 1;
    while (alpha < beta) {
      const double na = alpha + step, nb = beta - step;
      // The cumulative sum is non-decreasing, so the walks of PyTorch are binary searches.
      std::int64_t l = start, r = end;
      {
        std::int64_t a = start, b = end;  // first l in [start, end) not below, else end
        while (a < b) {
          const std::int64_t mid = a + (b - a) / 2;
          if (below(mid, na * total))
            a = mid + 1;
          else
            b = mid;
        }
        l = a;
      }
      {
        std::int64_t a = start, b = end;  // last r in (start, end] not above, else start
        while (a < b) {
          const std::int64_t mid = a + (b - a + 1) / 2;
          if (above(mid, nb * total))
            b = mid - 1;
          else
            a = mid;
        }
        r = a;
      }
      std::int64_t ns = start, ne = end;
      if (l - start > end - r) {
        ns = l;
        alpha = na;
      } else {
        ne = r;
        beta = nb;
      }
      if (ns == start && ne == end) continue;
      const double norm = error(c, n, bw, ns, ne);
      if (norm > norm_min) break;
      norm_min = norm;
      start = ns;
      end = ne;
    }
    // float32 tensor arithmetic, as PyTorch: w = (max - min) / N, min + w * bin.
    const float wf = (hi_f - lo_f) / static_cast<float>(n);
    // No FMA contraction: PyTorch rounds the product before the sum.
    const ClipRange r{lo_f + detail::no_contract(wf * static_cast<float>(start)),
                      lo_f + detail::no_contract(wf * static_cast<float>(end + 1))};
    if (std::isfinite(r.min_val) && std::isfinite(r.max_val)) return r;
    // The span or an edge overflows float32 (data near +-3e38): the same in double, saturated.
    const double wd =
        (static_cast<double>(hi_f) - static_cast<double>(lo_f)) / static_cast<double>(n);
    return {detail::saturate_to_float(lo_f + wd * static_cast<double>(start)),
            detail::saturate_to_float(lo_f + wd * static_cast<double>(end + 1))};
  }

  /// PyTorch's _compute_quantization_error for candidate bins [s, e] (in double).
  double error(const std::vector<std::uint64_t>& c, std::int64_t n, double bw, std::int64_t s,
               std::int64_t e) const {
    const double dbw = bw * static_cast<double>(e - s + 1) / static_cast<double>(dst_bins);
    if (dbw == 0.0) return 0.0;
    const double top = static_cast<double>(dst_bins - 1), half = dbw / 2.0;
    const double full = detail::cube_norm(-half, half);
    double sum = 0.0;
    for (std::int64_t i = 0; i < n; ++i) {
      const auto cnt = c[static_cast<std::size_t>(i)];
      if (cnt == 0) continue;
      const double b = static_cast<double>(i - s) * bw, en = b + bw;
      const double db = std::min(std::max(std::floor(b / dbw), 0.0), top);
      const double de = std::min(std::max(std::floor(en / dbw), 0.0), top);
      const double density = static_cast<double>(cnt) / bw;
      double v = detail::cube_norm(b - (db + 0.5) * dbw, half);
      v += (de - db - 1.0) * full;
      v += detail::cube_norm(-half, en - (de * dbw + half));
      sum += density * v;
    }
    return sum;
  }
};

/// Two-sided percentile clipping.
struct PercentileRange {
  /// Percentile p in (50, 100]: (100 - p)% of the values are clipped at each end.
  double percentile = 99.99;

  ClipRange choose(const Histogram& h, QuantRange /*range*/) const {
    FQ_CHECK(percentile > 50.0 && percentile <= 100.0, ErrorCode::kInvalidArgument,
             detail::msg("PercentileRange: percentile must be in (50, 100], got ", percentile));
    ClipRange out{};
    if (detail::trivial_clip_range(h, out)) return out;
    const double total = static_cast<double>(h.total());
    const double lo_v = value_at(h, total * (1.0 - percentile / 100.0));
    const double hi_v = value_at(h, total * (percentile / 100.0));
    // Never beyond the values actually seen.
    return {detail::saturate_to_float(std::max(lo_v, h.data_min())),
            detail::saturate_to_float(std::min(std::max(hi_v, lo_v), h.data_max()))};
  }

  /// The value below which `rank` of the values lie (uniform inside a bin).
  static double value_at(const Histogram& h, double rank) {
    const auto& c = h.counts();
    const double w = (h.upper() - h.lower()) / static_cast<double>(h.bins());
    double acc = 0.0;
    for (std::size_t i = 0; i < c.size(); ++i) {
      const auto ci = static_cast<double>(c[i]);
      if (ci > 0.0 && acc + ci >= rank) {
        const double frac = std::min(std::max((rank - acc) / ci, 0.0), 1.0);
        return h.lower() + (static_cast<double>(i) + frac) * w;
      }
      acc += ci;
    }
    return h.upper();
  }
};

/// The most magnitude bins EntropyRange searches (file comment).
inline constexpr std::int64_t kMaxEntropyBins = std::int64_t{1} << 14;

/// TensorRT-style entropy (KL divergence) calibration.
struct EntropyRange {
  /// Bins M of the magnitude histogram over [0, max|x|]; 0 (default): the source histogram's
  /// bin width (at most its bin count), so that each source bin lands in about one magnitude
  /// bin (TensorRT: 2048), capped at kMaxEntropyBins. The search costs O(M^2); a larger M
  /// than kMaxEntropyBins is refused.
  std::int64_t magnitude_bins = 0;

  ClipRange choose(const Histogram& h, QuantRange range) const {
    check_range(range, "EntropyRange");
    FQ_CHECK(magnitude_bins == 0 || (magnitude_bins >= 2 && magnitude_bins <= kMaxEntropyBins),
             ErrorCode::kInvalidArgument,
             detail::msg("EntropyRange: magnitude_bins must be 0 or in [2, ", kMaxEntropyBins,
                         "] (the search costs O(bins^2)), got ", magnitude_bins));
    ClipRange out{};
    if (detail::trivial_clip_range(h, out)) return out;
    const bool is_signed = h.data_min() < 0.0;
    const double amax = std::max(std::fabs(h.data_min()), std::fabs(h.data_max()));
    if (amax == 0.0) return {0.0f, 0.0f};
    const double w = (h.upper() - h.lower()) / static_cast<double>(h.bins());
    // At most the source's bin count and kMaxEntropyBins: the search costs O(bins^2).
    const double auto_bins =
        std::min(std::min(std::max(std::ceil(amax / w), 2.0), static_cast<double>(h.bins())),
                 static_cast<double>(kMaxEntropyBins));
    const auto nbin = static_cast<std::size_t>(
        magnitude_bins > 0 ? magnitude_bins : static_cast<std::int64_t>(auto_bins));
    // Magnitude histogram: each source bin goes, by its centre, to the bin of |centre|.
    std::vector<double> mag(nbin, 0.0);
    const double mw = amax / static_cast<double>(nbin);
    const auto& c = h.counts();
    for (std::size_t i = 0; i < c.size(); ++i) {
      if (c[i] == 0) continue;
      const double centre = std::fabs(h.lower() + (static_cast<double>(i) + 0.5) * w);
      const double j = std::min(std::floor(centre / mw), static_cast<double>(nbin - 1));
      mag[static_cast<std::size_t>(j)] += static_cast<double>(c[i]);
    }
    const std::int64_t levels = range.span() + 1;
    const auto nq = static_cast<std::size_t>(std::max<std::int64_t>(
        1,
        std::min<std::int64_t>(is_signed ? levels / 2 : levels, static_cast<std::int64_t>(nbin))));
    std::vector<double> tail(nbin + 1, 0.0);  // tail[i] = sum of mag[i..]
    for (std::size_t i = nbin; i-- > 0;) tail[i] = tail[i + 1] + mag[i];
    std::vector<double> q(nbin);
    double best = std::numeric_limits<double>::infinity();
    std::size_t best_i = nbin;
    for (std::size_t i = nq; i <= nbin; ++i) {
      const double kl = divergence(mag, tail, i, nq, q);
      if (kl < best) {
        best = kl;
        best_i = i;
      }
    }
    const double t = static_cast<double>(best_i) * mw;
    const double lo = is_signed ? std::max(-t, h.data_min()) : std::max(0.0, h.data_min());
    return {detail::saturate_to_float(lo),
            detail::saturate_to_float(std::max(std::min(t, h.data_max()), lo))};
  }

  /// KL(P || Q) for the threshold bin i (see the file comment); +inf if Q misses P's mass.
  static double divergence(const std::vector<double>& mag, const std::vector<double>& tail,
                           std::size_t i, std::size_t nq, std::vector<double>& q) {
    double p_sum = tail[0];  // P holds every value (outliers moved into bin i-1)
    if (p_sum <= 0.0) return std::numeric_limits<double>::infinity();
    double q_sum = 0.0;
    for (std::size_t g = 0; g < nq; ++g) {
      const std::size_t b = g * i / nq, e = (g + 1) * i / nq;
      double mass = 0.0;
      std::size_t nonzero = 0;
      for (std::size_t j = b; j < e; ++j) {
        mass += mag[j];
        if (mag[j] != 0.0) ++nonzero;
      }
      for (std::size_t j = b; j < e; ++j) {
        q[j] = mag[j] != 0.0 ? mass / static_cast<double>(nonzero) : 0.0;
        q_sum += q[j];
      }
    }
    if (q_sum <= 0.0) return std::numeric_limits<double>::infinity();
    double kl = 0.0;
    for (std::size_t j = 0; j < i; ++j) {
      const double p = (j + 1 == i ? mag[j] + tail[i] : mag[j]) / p_sum;
      if (p == 0.0) continue;
      const double qq = q[j] / q_sum;
      if (qq == 0.0) return std::numeric_limits<double>::infinity();
      kl += p * std::log(p / qq);
    }
    return kl;
  }
};

}  // namespace fq

#endif  // FQ_OBSERVER_HISTOGRAM_RANGE_HPP_
