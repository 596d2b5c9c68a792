// SPDX-License-Identifier: MIT
// fakequant/observer/aminmax.hpp: min and max of a strided tensor, whole or per channel.
//
// Observers refuse non-finite data: a NaN or Inf would make every later scale NaN or Inf, so
// it is reported at once (ErrorCode::kNonFiniteInput) instead of propagating silently.
#ifndef FQ_OBSERVER_AMINMAX_HPP_
#define FQ_OBSERVER_AMINMAX_HPP_

#include <algorithm>  // min, max
#include <cmath>      // isfinite
#include <cstdint>    // int64_t
#include <limits>     // numeric_limits

#include <fakequant/core/checks.hpp>
#include <fakequant/core/tensor_view.hpp>
#include <fakequant/detail/run_plan.hpp>

namespace fq {
namespace detail {

/// min/max of one strided run, folded into *mn, *mx; returns false if a value is not finite.
template <class T>
inline bool fold_minmax(const T* p, std::ptrdiff_t stride, std::int64_t n, float* mn,
                        float* mx) noexcept {
  T lo = std::numeric_limits<T>::infinity(), hi = -lo;
  bool finite = true;
  for (std::int64_t i = 0; i < n; ++i) {
    const T v = p[i * stride];
    finite = finite & (v - v == T(0));  // false for NaN and +-Inf
    lo = v < lo ? v : lo;
    hi = v > hi ? v : hi;
  }
  *mn = std::min(*mn, static_cast<float>(lo));
  *mx = std::max(*mx, static_cast<float>(hi));
  return finite;
}

/// min/max of x (axis < 0: whole tensor, one pair) or per index along `axis` (count = the
/// extent on axis) into mn[], mx[], initialised to +inf/-inf here.
template <class T>
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
      finite = fold_minmax(p, s, n, mn + ch, mx + ch) && finite;
    } else {
      for (std::int64_t i = 0; i < n; ++i)
        finite = fold_minmax(p + i * s, 1, 1, mn + i, mx + i) && finite;
    }
  });
  FQ_CHECK(finite, ErrorCode::kNonFiniteInput,
           msg(where, ": the observed tensor contains NaN or Inf"));
}

}  // namespace detail
}  // namespace fq

#endif  // FQ_OBSERVER_AMINMAX_HPP_
