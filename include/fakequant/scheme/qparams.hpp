// SPDX-License-Identifier: MIT
// fakequant/scheme/qparams.hpp: (scale, zero point) from an observed [min, max] — the one
// home of this math, exactly as torch.ao's observers compute it (observer.py
// _calculate_qparams), in float32:
//   mn = min(min, 0), mx = max(max, 0)                  (the range always contains 0)
//   Affine:    s = max(f32((mx - mn) / (qmax - qmin)), eps);
//              z = clamp(qmin - round_half_even(mn / s), qmin, qmax)
//   Symmetric: s = max(f32(max(-mn, mx) / ((qmax - qmin) / 2)), eps)   (/127.5 for int8)
//              z = the scheme's fixed zero point (0, 128 for uint8; see scheme/qscheme.hpp)
//   FloatZeroPoint (PyTorch's per_channel_affine_float_qparams, no zero inclusion):
//              s = (max - min) / (qmax - qmin), 1 if s <= eps; z = -min / s
//   eps = FLT_EPSILON (1.1920929e-07). No data seen yet (min = +inf, max = -inf): s = 1, z = 0.
// Extreme but finite ranges: min and max are first clipped to +-kMaxObservedMagnitude
// (FLT_MAX / 4, about 8.5e37), so that the span, the scale and every level (q - z)·s of the grid
// are finite floats (PyTorch returns an infinite scale for data near +-3e38); data beyond it is
// clipped like any value outside the range. Ranges within +-8.5e37 are untouched (PyTorch's
// qparams bit for bit). A range needs quant_min < quant_max (one level has no scale:
// kInvalidRange, as PyTorch); an infinite min or max is ErrorCode::kNonFiniteInput.
#ifndef FQ_SCHEME_QPARAMS_HPP_
#define FQ_SCHEME_QPARAMS_HPP_

#include <algorithm>  // min, max, clamp
#include <cmath>      // nearbyint, isinf
#include <cstdint>    // int32_t, int64_t
#include <limits>     // numeric_limits

#include <fakequant/scheme/qscheme.hpp>

namespace fq {

/// PyTorch's observer eps: float32 machine epsilon.
inline constexpr float kObserverEps = std::numeric_limits<float>::epsilon();
/// The largest |min| or |max| the qparams use (file comment): FLT_MAX / 4.
inline constexpr float kMaxObservedMagnitude = std::numeric_limits<float>::max() / 4;

namespace detail {
/// Checks an observed range (finite, min <= max) and a range of at least two levels, then
/// clips min and max to +-kMaxObservedMagnitude (file comment).
inline void prepare_observed_range(float& min_val, float& max_val, QuantRange range,
                                   const char* where) {
  FQ_CHECK(range.quant_min < range.quant_max, ErrorCode::kInvalidRange,
           msg(where, ": the range [", range.quant_min, ", ", range.quant_max,
               "] has one level; qparams need quant_min < quant_max"));
  FQ_CHECK(min_val <= max_val, ErrorCode::kInvalidArgument,
           msg(where, ": min (", min_val, ") must be <= max (", max_val, ")"));
  FQ_CHECK(std::isfinite(min_val) && std::isfinite(max_val), ErrorCode::kNonFiniteInput,
           msg(where, ": the observed range [", min_val, ", ", max_val, "] is not finite"));
  min_val = std::clamp(min_val, -kMaxObservedMagnitude, kMaxObservedMagnitude);
  max_val = std::clamp(max_val, -kMaxObservedMagnitude, kMaxObservedMagnitude);
}
}  // namespace detail

/// Quantization parameters for one tensor or channel.
template <class Z = std::int32_t>
struct QParams {
  float scale;
  Z zero_point;
};

/// The qparams of Scheme on `range` for an observed [min_val, max_val].
template <class Scheme>
QParams<typename Scheme::zero_point_type> calculate_qparams(float min_val, float max_val,
                                                            QuantRange range) {
  using Z = typename Scheme::zero_point_type;
  constexpr const char* kWhere = "calculate_qparams";
  check_range(range, kWhere);
  if (std::isinf(min_val) && min_val > 0 && std::isinf(max_val) && max_val < 0)
    return {1.0f, Z(0)};  // nothing observed yet, as PyTorch
  detail::prepare_observed_range(min_val, max_val, range, kWhere);
  const float qspan = static_cast<float>(range.quant_max - range.quant_min);
  if constexpr (std::is_same<Z, float>::value) {
    float s = (max_val - min_val) / qspan;
    if (s <= kObserverEps) s = 1.0f;
    return {s, -min_val / s};
  } else {
    const float mn = std::min(min_val, 0.0f), mx = std::max(max_val, 0.0f);
    if constexpr (Scheme::mapping::kSymmetric) {
      const float s = std::max(std::max(-mn, mx) / (qspan / 2.0f), kObserverEps);
      return {s, symmetric_zero_point<Scheme>(range)};
    } else {
      const float s = std::max((mx - mn) / qspan, kObserverEps);
      // |mn / s| <= qspan here (s >= (mx - mn) / qspan, mn <= 0 <= mx): the cast is exact.
      const std::int64_t z = range.quant_min - static_cast<std::int64_t>(std::nearbyint(mn / s));
      return {s, static_cast<Z>(std::clamp(z, range.quant_min, range.quant_max))};
    }
  }
}

/// The qparams chooser policy of the observers: calculate_qparams above (torch.ao's observer
/// rule). observer/fused_qparams.hpp has the fused module's rule (FusedQParams).
struct ObserverQParams {
  template <class Scheme>
  static QParams<typename Scheme::zero_point_type> compute(float min_val, float max_val,
                                                           QuantRange range) {
    return calculate_qparams<Scheme>(min_val, max_val, range);
  }
};

}  // namespace fq

#endif  // FQ_SCHEME_QPARAMS_HPP_
