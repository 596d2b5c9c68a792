// SPDX-License-Identifier: MIT
// fakequant/observer/histogram.hpp: a fixed-bin-count histogram whose range grows with the
// data, for the histogram observer (observer/histogram_observer.hpp).
//
// Binning (PyTorch's histc formula, in float32 for float data when the range allows):
//   t = ((x - lo) * N) / (hi - lo),  bin = trunc(clamp(t, 0, N - 1))
// so x = hi lands in the last bin and every finite value of the batch is counted: the range
// always covers the batch, and the clamp absorbs rounding at both edges. PyTorch's
// HistogramObserver instead bins over [int(min), int(max)] and drops what falls outside
// (pytorch#83672). When (hi - lo) * N overflows float32, or for double data, t is computed in
// double.
// Growth rule (exact: counts are never split, interpolated or dropped): the first batch sets
// [lo, hi] = [batch min, batch max]. A later batch outside [lo, hi] widens the bin width by the
// smallest integer factor k >= 2 and shifts the low edge down by the smallest whole number m of
// old bins such that the new range covers both; old bin i then lies entirely inside new bin
// (i + m) / k (integer division), where its count is moved. The slack goes to the high end.
// When the range grows so much (about 2^52 times: a range of 1e-8 meeting 1e30) that bin
// indices would no longer be exact in double, the old range lies inside one or two new bins:
// the new range is then [new min, new max] and each old bin's count moves to the new bin of its
// centre.
// Extreme data: values are binned in double when float32 would overflow, and double values
// beyond float's range (|x| > FLT_MAX) count as +-FLT_MAX (observers keep float32 state:
// observer/aminmax.hpp), so every edge and width stays finite.
// A degenerate histogram (every value equal, lo == hi) holds a point mass, re-binned as a value.
// NaN/Inf data is rejected (ErrorCode::kNonFiniteInput) before any state changes; empty
// tensors are ignored.
// Data parallel (a SyncBatchStats scope alive, base/communicator.hpp): the range grows to the
// global batch's [min, max] (reduced over ranks), each rank bins its own values over that same
// range and the new counts and the element count are summed over ranks in int64: bins are
// assigned element by element, so the merged histogram equals, bit for bit, the one a single
// process builds from the whole global batch, and is identical on every rank.
#ifndef FQ_OBSERVER_HISTOGRAM_HPP_
#define FQ_OBSERVER_HISTOGRAM_HPP_

#include <algorithm>    // fill, min, max
#include <cmath>        // ceil, floor, isfinite, nextafter, HUGE_VALF
#include <cstdint>      // int32_t, int64_t, uint32_t, uint64_t
#include <cstring>      // memcpy
#include <limits>       // numeric_limits
#include <type_traits>  // is_same
#include <vector>       // vector

#include <fakequant/base/communicator.hpp>
#include <fakequant/base/state.hpp>
#include <fakequant/core/checks.hpp>
#include <fakequant/core/run_plan.hpp>
#include <fakequant/core/tensor_view.hpp>
#include <fakequant/observer/aminmax.hpp>
#include <fakequant/policy/rounding.hpp>

namespace fq {
namespace detail {

/// The bin of x (scalar reference of the binning rule in the file comment), computed in C.
/// The clamp is written so that NaN goes to bin 0 and +-Inf to an end bin: never UB.
template <class C>
inline std::int32_t histogram_bin(C x, C lo, C nbins, C width, C top) noexcept {
  C t = (x - lo) * nbins / width;
  t = t > C(0) ? t : C(0);
  t = t < top ? t : top;
  return static_cast<std::int32_t>(t);
}

/// A signed integer whose order is the order of the (non-NaN) float v, so that the min/max of
/// a block is an integer reduction (which compilers vectorise; float min/max is not, because
/// of NaN and signed-zero rules).
inline std::int32_t float_order_key(float v) noexcept {
  std::int32_t b;
  std::memcpy(&b, &v, sizeof b);
  return b ^ ((b >> 31) & 0x7fffffff);
}
inline float float_from_order_key(std::int32_t k) noexcept {
  const std::int32_t b = k ^ ((k >> 31) & 0x7fffffff);
  float v;
  std::memcpy(&v, &b, sizeof v);
  return v;
}

/// Min/max (as order keys) of a float run and whether a value fell outside [in_lo, in_hi] or
/// was NaN.
struct RunStatsF32 {
  std::int32_t kmin = std::numeric_limits<std::int32_t>::max();
  std::int32_t kmax = std::numeric_limits<std::int32_t>::min();
  std::int32_t outside = 0;
};

/// Counts a contiguous float run into `sub` (4 interleaved sub-histograms of `sub_stride`
/// counters, so that repeated bins do not serialise on one counter) and folds the run's
/// min/max and range check into `st`, in one pass. The per-element part is one plain loop over
/// a block, which compilers vectorise; its bin is the same expression as histogram_bin.
inline void histogram_count_run_f32(const float* x, std::int64_t n, float lo, float nbins,
                                    float width, float top, float in_lo, float in_hi,
                                    std::uint32_t* sub, std::int64_t sub_stride,
                                    RunStatsF32& st) noexcept {
  constexpr std::int64_t kBlock = 256;
  std::int32_t idx[kBlock];
  std::uint32_t* h0 = sub;
  std::uint32_t* h1 = sub + sub_stride;
  std::uint32_t* h2 = sub + 2 * sub_stride;
  std::uint32_t* h3 = sub + 3 * sub_stride;
  std::int32_t kmin = st.kmin, kmax = st.kmax, outside = st.outside;
  for (std::int64_t b = 0; b < n; b += kBlock) {
    const std::int64_t m = std::min(kBlock, n - b);
    const float* xb = x + b;
    for (std::int64_t i = 0; i < m; ++i) {
      const float v = xb[i];
      float t = (v - lo) * nbins / width;
      t = t > 0.0f ? t : 0.0f;
      t = t < top ? t : top;
      idx[i] = static_cast<std::int32_t>(t);
      const std::int32_t k = float_order_key(v);
      kmin = k < kmin ? k : kmin;
      kmax = k > kmax ? k : kmax;
      outside |= static_cast<std::int32_t>(!((v >= in_lo) & (v <= in_hi)));
    }
    std::int64_t i = 0;
    for (; i + 4 <= m; i += 4) {
      ++h0[idx[i]];
      ++h1[idx[i + 1]];
      ++h2[idx[i + 2]];
      ++h3[idx[i + 3]];
    }
    for (; i < m; ++i) ++h0[idx[i]];
  }
  st.kmin = kmin;
  st.kmax = kmax;
  st.outside = outside;
}

}  // namespace detail

/// A histogram of N bins over a range [lower, upper] that grows to cover every batch added.
class Histogram {
 public:
  /// @param bins number of bins N, >= 1 (PyTorch's HistogramObserver uses 2048).
  explicit Histogram(std::int64_t bins = 2048) : bins_(bins) {
    FQ_CHECK(bins >= 1 && bins <= (std::int64_t{1} << 20), ErrorCode::kInvalidArgument,
             detail::msg("Histogram: bins must be in [1, 2^20], got ", bins));
    reset();
  }

  /// Adds every element of x (float or double) to the histogram; see the file comment.
  /// Arch: the instruction set of the min/max kernel (simd/arch.hpp); leave the default.
  template <class Arch = DefaultArch, class T>
  void add(const TensorView<const T>& x) {
    constexpr const char* kWhere = "Histogram::add";
    if (x.numel() == 0) return;
    if (Communicator* comm = batch_stats_communicator()) {
      add_synced<Arch>(x, *comm);
      return;
    }
    // Common case, one pass: bin with the current range while tracking min/max; kept if the
    // batch was inside the range (sub-histograms are discarded otherwise, nothing changed).
    if (total_ > 0 && lo_ < hi_ && x.numel() <= (std::int64_t{1} << 31)) {
      double mn = 0.0, mx = 0.0;
      bool inside = false;
      count<Arch>(x, mn, mx, inside);
      if (inside) {
        commit(x.numel(), mn, mx);
        return;
      }
    }
    float bmin = 0.0f, bmax = 0.0f;
    detail::aminmax<Arch>(x, -1, &bmin, &bmax, kWhere);  // NaN/Inf: error, state untouched
    // aminmax folds into float; a double batch needs its exact extremes for the range.
    double dmin = bmin, dmax = bmax;
    if (std::is_same<T, double>::value) exact_minmax<Arch>(x, dmin, dmax);
    grow_to(dmin, dmax);
    if (lo_ == hi_) {  // every value so far (and in this batch) equals lo_
      counts_[0] += static_cast<std::uint64_t>(x.numel());
      total_ += static_cast<std::uint64_t>(x.numel());
      data_min_ = std::min(data_min_, dmin);
      data_max_ = std::max(data_max_, dmax);
      return;
    }
    double mn = 0.0, mx = 0.0;
    bool inside = false;
    count<Arch>(x, mn, mx, inside);
    commit(x.numel(), dmin, dmax);
  }

  std::int64_t bins() const noexcept { return bins_; }
  /// Low and high edge of the histogram (+inf/-inf before any data).
  double lower() const noexcept { return lo_; }
  double upper() const noexcept { return hi_; }
  /// Smallest and largest value added (+inf/-inf before any data).
  double data_min() const noexcept { return data_min_; }
  double data_max() const noexcept { return data_max_; }
  /// Bin i covers [lower + i*w, lower + (i+1)*w], w = (upper - lower) / bins.
  const std::vector<std::uint64_t>& counts() const noexcept { return counts_; }
  /// Number of values added.
  std::uint64_t total() const noexcept { return total_; }
  bool empty() const noexcept { return total_ == 0; }
  /// True when every value added so far is the same (all counts are in bin 0).
  bool degenerate() const noexcept { return total_ > 0 && lo_ == hi_; }

  /// The checkpoint state (base/state.hpp): counts, total, edges and extremes (+-inf before
  /// data); the bin count must match. (The sub-histograms are scratch.)
  template <class V>
  void visit_state(V& v) {
    v.kind("histogram");
    v.config("bins", bins_);
    v.state_span("counts", counts_.data(), counts_.size(), state_not_nan());
    v.state("total", total_, state_not_nan());
    v.state("lower", lo_, state_not_nan());
    v.state("upper", hi_, state_not_nan());
    v.state("data_min", data_min_, state_not_nan());
    v.state("data_max", data_max_, state_not_nan());
  }

  /// Forgets everything.
  void reset() {
    counts_.assign(static_cast<std::size_t>(bins_), 0);
    total_ = 0;
    lo_ = data_min_ = std::numeric_limits<double>::infinity();
    hi_ = data_max_ = -std::numeric_limits<double>::infinity();
  }

 private:
  // v, and for double data +-FLT_MAX beyond float's range (file comment).
  template <class T>
  static double saturated(T v) noexcept {
    if constexpr (std::is_same<T, float>::value) {
      return static_cast<double>(v);
    } else {
      constexpr double kMax = std::numeric_limits<float>::max();
      const auto d = static_cast<double>(v);
      return d > kMax ? kMax : (d < -kMax ? -kMax : d);  // NaN passes: caught by the caller
    }
  }
  // Arch (here and in count): the caller's architecture tag, for the TU's flags (simd/arch.hpp).
  template <class Arch, class T>
  static void exact_minmax(const TensorView<const T>& x, double& mn, double& mx) {
    const auto plan = detail::make_run_plan<1>(x.rank(), x.shape(), {&x.strides()},
                                               detail::order_by_strides(x.rank(), x.strides()), -1);
    const auto s =
        static_cast<std::ptrdiff_t>(plan.stride[0][static_cast<std::size_t>(plan.nd - 1)]);
    mn = std::numeric_limits<double>::infinity();
    mx = -mn;
    detail::for_each_run(plan, [&](const auto& off, std::int64_t n, std::int64_t, std::int64_t) {
      const T* p = x.data() + off[0];
      for (std::int64_t i = 0; i < n; ++i) {
        const double v = saturated(p[i * s]);
        mn = std::min(mn, v);
        mx = std::max(mx, v);
      }
    });
  }

  // add() over every rank's batch (file comment): the global range, then this rank's counts
  // over it, summed over ranks. Errors (NaN/Inf) are raised before any collective.
  template <class Arch, class T>
  void add_synced(const TensorView<const T>& x, Communicator& comm) {
    float bmin = 0.0f, bmax = 0.0f;
    detail::aminmax<Arch>(x, -1, &bmin, &bmax, "Histogram::add");
    double range[2] = {bmin, -static_cast<double>(bmax)};
    if (std::is_same<T, double>::value) {
      exact_minmax<Arch>(x, range[0], range[1]);
      range[1] = -range[1];
    }
    comm.all_reduce(range, 2, ReduceOp::kMin);  // [min, -max] over ranks
    const double dmin = range[0], dmax = -range[1];
    std::int64_t total = x.numel();
    grow_to(dmin, dmax);  // the same on every rank: same state, same global range
    if (lo_ == hi_) {     // every value of every rank equals lo_
      comm.all_reduce(&total, 1, ReduceOp::kSum);
      counts_[0] += static_cast<std::uint64_t>(total);
    } else {
      const std::vector<std::uint64_t> before = counts_;
      double mn = 0.0, mx = 0.0;
      bool inside = false;
      count<Arch>(x, mn, mx, inside);
      flush();
      // [new counts per bin, element count], summed over ranks (exact in int64).
      std::vector<std::int64_t> added(counts_.size() + 1);
      for (std::size_t i = 0; i < counts_.size(); ++i)
        added[i] = static_cast<std::int64_t>(counts_[i] - before[i]);
      added.back() = total;
      comm.all_reduce(added.data(), added.size(), ReduceOp::kSum);
      for (std::size_t i = 0; i < counts_.size(); ++i)
        counts_[i] = before[i] + static_cast<std::uint64_t>(added[i]);
      total = added.back();
    }
    total_ += static_cast<std::uint64_t>(total);
    data_min_ = std::min(data_min_, dmin);
    data_max_ = std::max(data_max_, dmax);
  }

  // Makes [lo_, hi_] cover [mn, mx] by the growth rule.
  void grow_to(double mn, double mx) {
    if (total_ == 0) {
      lo_ = mn;
      hi_ = mx;
      return;
    }
    if (mn >= lo_ && mx <= hi_) return;
    const double nlo = std::min(lo_, mn), nhi = std::max(hi_, mx);
    if (lo_ == hi_) {  // a point mass at lo_: re-bin it as a value
      const std::uint64_t c = counts_[0];
      const double point = lo_;
      counts_[0] = 0;
      lo_ = nlo;
      hi_ = nhi;
      counts_[static_cast<std::size_t>(bin_of(point))] = c;
      return;
    }
    const double n = static_cast<double>(bins_);
    const double w = (hi_ - lo_) / n;
    const double m = std::max(0.0, std::ceil((lo_ - nlo) / w));
    double k = std::ceil((m + (nhi - lo_) / w) / n);
    k = std::max(k, 2.0);
    std::vector<std::uint64_t> moved(counts_.size(), 0);
    constexpr double kExact = 4503599627370496.0;  // 2^52: (i + m) / k is exact below it
    if (!(m + n < kExact) || !(k < kExact)) {      // huge growth (file comment); also NaN-safe
      const double old_lo = lo_;
      lo_ = nlo;
      hi_ = nhi;
      for (std::int64_t i = 0; i < bins_; ++i) {
        const double centre = old_lo + (static_cast<double>(i) + 0.5) * w;
        moved[static_cast<std::size_t>(bin_of(centre))] += counts_[static_cast<std::size_t>(i)];
      }
      counts_.swap(moved);
      return;
    }
    for (std::int64_t i = 0; i < bins_; ++i) {
      const double j = std::floor((static_cast<double>(i) + m) / k);
      const auto ju = static_cast<std::size_t>(std::min(std::max(j, 0.0), n - 1.0));
      moved[ju] += counts_[static_cast<std::size_t>(i)];
    }
    counts_.swap(moved);
    lo_ = lo_ - detail::no_contract(m * w);  // the same edges with and without FMA
    hi_ = lo_ + detail::no_contract(n * (k * w));
    lo_ = std::min(lo_, nlo);  // guard against rounding above the batch minimum
    hi_ = std::max(hi_, nhi);  // and below the batch maximum
  }

  // The bin of one double value (used for point masses).
  std::int64_t bin_of(double v) const noexcept {
    if (hi_ == lo_) return 0;
    const double n = static_cast<double>(bins_);
    return detail::histogram_bin<double>(v, lo_, n, hi_ - lo_, n - 1.0);
  }

  // Bins x into sub_ (4 sub-histograms) with the current range (lo_ < hi_); the batch's min
  // and max come back, and `inside` = every value is finite and inside [lo_, hi_]. Nothing
  // reaches counts_ except through the overflow flush of batches over 2^31 elements (only on
  // the validated two-pass path).
  template <class Arch, class T>
  void count(const TensorView<const T>& x, double& mn, double& mx, bool& inside) {
    const auto nb = static_cast<std::size_t>(bins_);
    sub_.assign(4 * nb, 0);
    const auto plan = detail::make_run_plan<1>(x.rank(), x.shape(), {&x.strides()},
                                               detail::order_by_strides(x.rank(), x.strides()), -1);
    const auto s =
        static_cast<std::ptrdiff_t>(plan.stride[0][static_cast<std::size_t>(plan.nd - 1)]);
    const float wf = static_cast<float>(hi_ - lo_);
    const float nf = static_cast<float>(bins_);
    const double nd = static_cast<double>(bins_);
    const auto lo_f = static_cast<float>(lo_);
    // float32 binning (PyTorch's) when no intermediate can overflow, else double.
    const bool use_float = std::is_same<T, float>::value && std::isfinite(wf) &&
                           std::isfinite(wf * nf) && std::isfinite(lo_f) && wf > 0.0f;
    // The float range check: the floats inside [lo_, hi_].
    float in_lo = lo_f, in_hi = static_cast<float>(hi_);
    if (static_cast<double>(in_lo) < lo_) in_lo = std::nextafter(in_lo, HUGE_VALF);
    if (static_cast<double>(in_hi) > hi_) in_hi = std::nextafter(in_hi, -HUGE_VALF);
    detail::RunStatsF32 sf;
    double dmn = std::numeric_limits<double>::infinity(), dmx = -dmn;
    bool d_inside = true;
    std::uint64_t pending = 0;
    constexpr std::uint64_t kFlushAt = std::uint64_t{1} << 31;  // no uint32 counter overflows
    const auto stride = static_cast<std::int64_t>(nb);
    detail::for_each_run(plan, [&](const auto& off, std::int64_t n, std::int64_t, std::int64_t) {
      const T* p = x.data() + off[0];
      for (std::int64_t b = 0; b < n;) {
        const std::int64_t m = std::min<std::int64_t>(n - b, std::int64_t{1} << 30);
        if (pending + static_cast<std::uint64_t>(m) > kFlushAt) {
          flush();
          pending = 0;
        }
        if constexpr (std::is_same<T, float>::value) {
          if (s == 1 && use_float) {
            detail::histogram_count_run_f32(p + b, m, lo_f, nf, wf, nf - 1.0f, in_lo, in_hi,
                                            sub_.data(), stride, sf);
            pending += static_cast<std::uint64_t>(m);
            b += m;
            continue;
          }
        }
        for (std::int64_t i = 0; i < m; ++i) {
          const T v = p[(b + i) * s];
          const double vd = saturated(v);
          dmn = vd < dmn ? vd : dmn;
          dmx = vd > dmx ? vd : dmx;
          d_inside = d_inside && vd >= lo_ && vd <= hi_;  // false for NaN
          const std::int32_t j =
              use_float
                  ? detail::histogram_bin<float>(static_cast<float>(v), lo_f, nf, wf, nf - 1.0f)
                  : detail::histogram_bin<double>(vd, lo_, nd, hi_ - lo_, nd - 1.0);
          ++sub_[static_cast<std::size_t>(j)];
        }
        pending += static_cast<std::uint64_t>(m);
        b += m;
      }
    });
    if (sf.kmin <= sf.kmax) {
      dmn = std::min(dmn, static_cast<double>(detail::float_from_order_key(sf.kmin)));
      dmx = std::max(dmx, static_cast<double>(detail::float_from_order_key(sf.kmax)));
    }
    mn = dmn;
    mx = dmx;
    inside = d_inside && sf.outside == 0;
  }

  // Adds sub_ into counts_ and clears it.
  void flush() {
    const std::size_t nb = counts_.size();
    for (std::size_t i = 0; i < nb; ++i)
      counts_[i] += std::uint64_t{sub_[i]} + sub_[nb + i] + sub_[2 * nb + i] + sub_[3 * nb + i];
    std::fill(sub_.begin(), sub_.end(), 0u);
  }

  // Makes the binned batch part of the histogram.
  void commit(std::int64_t n, double mn, double mx) {
    flush();
    total_ += static_cast<std::uint64_t>(n);
    data_min_ = std::min(data_min_, mn);
    data_max_ = std::max(data_max_, mx);
  }

  std::int64_t bins_;
  std::vector<std::uint64_t> counts_;
  std::vector<std::uint32_t> sub_;
  std::uint64_t total_ = 0;
  double lo_, hi_, data_min_, data_max_;
};

}  // namespace fq

#endif  // FQ_OBSERVER_HISTOGRAM_HPP_
