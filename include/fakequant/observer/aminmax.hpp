// SPDX-License-Identifier: MIT
// fakequant/observer/aminmax.hpp: min and max of a strided tensor, whole or per channel.
//
// Observers refuse non-finite data: a NaN or Inf would make every later scale NaN or Inf, so
// it is reported at once (ErrorCode::kNonFiniteInput) instead of propagating silently.
// Observers keep float32 state: a finite double beyond float's range (|x| > FLT_MAX, e.g.
// 1e300) is observed as +-FLT_MAX (saturate_to_float), which no float grid could exceed anyway.
// Arch (fq::DefaultArch): the instruction set of the min/max loops, part of each
// instantiation's name so that TUs with different -m flags never share one (simd/arch.hpp).
#ifndef FQ_OBSERVER_AMINMAX_HPP_
#define FQ_OBSERVER_AMINMAX_HPP_

#include <algorithm>    // min, max
#include <cmath>        // isfinite
#include <cstdint>      // int64_t
#include <limits>       // numeric_limits
#include <type_traits>  // is_same

#include <fakequant/base/config.hpp>
#include <fakequant/core/checks.hpp>
#include <fakequant/core/run_plan.hpp>
#include <fakequant/core/tensor_view.hpp>
#include <fakequant/simd/arch.hpp>
#include <fakequant/simd/xsimd_compat.hpp>

namespace fq {
namespace detail {

/// v as a float, saturating at +-FLT_MAX (converting a double beyond float's range is
/// undefined behaviour). NaN stays NaN.
template <class T>
inline float saturate_to_float(T v) noexcept {
  if constexpr (std::is_same<T, float>::value) {
    return v;
  } else {
    constexpr T kMax = static_cast<T>(std::numeric_limits<float>::max());
    return static_cast<float>(v > kMax ? kMax : (v < -kMax ? -kMax : v));
  }
}

/// min/max of one strided run, folded into *mn, *mx; returns false if a value is not finite.
template <class Arch, class T>
inline bool fold_minmax(const T* p, std::ptrdiff_t stride, std::int64_t n, float* mn,
                        float* mx) noexcept {
  constexpr T lo_init = std::numeric_limits<T>::infinity();
  T lo = lo_init, hi = -lo;
#if FQ_HAS_XSIMD
  if constexpr (kSimdArch<Arch>) {
    using B = xsimd::batch<T, Arch>;
    constexpr auto W = static_cast<std::int64_t>(B::size);
    if (stride == 1 && n >= W) {
      // Contiguous: one vectorised pass. (v − v) is 0 for finite v and NaN for NaN/±Inf, so
      // the running sum `bad` is NaN exactly when a value is not finite.
      B vlo(lo_init), vhi(-lo_init), bad(T(0));
      std::int64_t i = 0;
      for (; i + W <= n; i += W) {
        const B v = B::load_unaligned(p + i);
        vlo = xsimd::min(vlo, v);
        vhi = xsimd::max(vhi, v);
        bad += v - v;
      }
      alignas(64) T l[B::size], h[B::size];
      vlo.store_aligned(l);
      vhi.store_aligned(h);
      T bsum = xsimd::hadd(bad);
      T lo_s = l[0], hi_s = h[0];
      for (std::int64_t j = 1; j < W; ++j) {
        lo_s = l[j] < lo_s ? l[j] : lo_s;
        hi_s = h[j] > hi_s ? h[j] : hi_s;
      }
      for (; i < n; ++i) {
        const T v = p[i];
        bsum += v - v;
        lo_s = v < lo_s ? v : lo_s;
        hi_s = v > hi_s ? v : hi_s;
      }
      if (!(bsum == T(0))) return false;
      *mn = std::min(*mn, saturate_to_float(lo_s));
      *mx = std::max(*mx, saturate_to_float(hi_s));
      return true;
    }
  }
#endif
  bool finite = true;
  for (std::int64_t i = 0; i < n; ++i) {
    const T v = p[i * stride];
    finite = finite & (v - v == T(0));  // false for NaN and +-Inf
    lo = v < lo ? v : lo;
    hi = v > hi ? v : hi;
  }
  if (!finite) return false;  // lo/hi may be NaN: nothing to fold
  *mn = std::min(*mn, saturate_to_float(lo));
  *mx = std::max(*mx, saturate_to_float(hi));
  return true;
}

/// min/max of x (axis < 0: whole tensor, one pair) or per index along `axis` (count = the
/// extent on axis) into mn[], mx[], initialised to +inf/-inf here.
template <class Arch = DefaultArch, class T>
void aminmax(const TensorView<const T>& x, int axis, float* mn, float* mx, const char* where) {
  const std::int64_t count = axis < 0 ? 1 : x.size(axis);
  std::fill(mn, mn + count, std::numeric_limits<float>::infinity());
  std::fill(mx, mx + count, -std::numeric_limits<float>::infinity());
  const auto plan = make_run_plan<1>(x.rank(), x.shape(), {&x.strides()},
                                     order_by_strides(x.rank(), x.strides()), axis);
  const std::ptrdiff_t s =
      static_cast<std::ptrdiff_t>(plan.stride[0][static_cast<std::size_t>(plan.nd - 1)]);
  bool finite = true;
  for_each_run(plan, [&](const auto& off, std::int64_t n, std::int64_t ch, std::int64_t) {
    const T* p = x.data() + off[0];
    if (ch >= 0) {
      finite = fold_minmax<Arch>(p, s, n, mn + ch, mx + ch) && finite;
    } else {
      for (std::int64_t i = 0; i < n; ++i)
        finite = fold_minmax<Arch>(p + i * s, 1, 1, mn + i, mx + i) && finite;
    }
  });
  FQ_CHECK(finite, ErrorCode::kNonFiniteInput,
           msg(where, ": the observed tensor contains NaN or Inf"));
}

}  // namespace detail
}  // namespace fq

#endif  // FQ_OBSERVER_AMINMAX_HPP_
