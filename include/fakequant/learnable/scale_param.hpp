// SPDX-License-Identifier: MIT
// fakequant/learnable/scale_param.hpp: how a learned scale is parametrized so that it can
// never become <= 0, whatever the optimizer does to the parameter p.
//
//   LinearScale<FloorExp>  s = max(p, 2^FloorExp)  (default 2^-23 = float32 eps, the floor
//                          PyTorch's _LearnableFakeQuantize clamps its scale to). ds/dp = 1:
//                          the gradient passes the floor straight through (as PyTorch, which
//                          clamps the parameter's data, not the graph), so a parameter pushed
//                          below the floor can climb back.
//   Log2Scale              s = 2^p, p = log2 s; ds/dp = s ln 2. Multiplicative updates; p is
//                          kept to [-126, 126] so s is a normal float with a finite inverse.
// A NaN or infinite parameter is a clear error (ErrorCode::kInvalidScale), never a silent
// clamp.
#ifndef FQ_LEARNABLE_SCALE_PARAM_HPP_
#define FQ_LEARNABLE_SCALE_PARAM_HPP_

#include <algorithm>    // max, min
#include <cmath>        // exp2, log2, isfinite
#include <type_traits>  // false_type, true_type

#include <fakequant/base/error.hpp>

namespace fq {

/// The parameter is the scale, floored at 2^FloorExp.
template <int FloorExp = -23>
struct LinearScale {
  static_assert(FloorExp >= -126 && FloorExp <= 0,
                "LinearScale: FloorExp must lie in [-126, 0] (the floor is 2^FloorExp, a normal "
                "float32 <= 1).");
  static constexpr float floor() noexcept {
    float f = 1.0f;
    for (int i = 0; i > FloorExp; --i) f *= 0.5f;
    return f;
  }
  /// The scale a parameter value stands for.
  static float to_scale(float p, const char* where) {
    FQ_CHECK(std::isfinite(p), ErrorCode::kInvalidScale,
             detail::msg(where, ": scale parameter must be finite, got ", p));
    return std::max(p, floor());
  }
  /// The parameter value that stands for scale s (s > 0).
  static float from_scale(float s) noexcept { return s; }
  /// ds/dp at p (s = to_scale(p)).
  static float grad(float /*p*/, float /*s*/) noexcept { return 1.0f; }
};

/// The parameter is log2 of the scale.
struct Log2Scale {
  static float to_scale(float p, const char* where) {
    FQ_CHECK(std::isfinite(p), ErrorCode::kInvalidScale,
             detail::msg(where, ": log2-scale parameter must be finite, got ", p));
    return std::exp2(std::min(std::max(p, -126.0f), 126.0f));
  }
  static float from_scale(float s) noexcept { return std::log2(s); }
  static float grad(float /*p*/, float s) noexcept { return s * 0.693147180559945309f; }
};

template <class P>
struct is_scale_param : std::false_type {};
template <int F>
struct is_scale_param<LinearScale<F>> : std::true_type {};
template <>
struct is_scale_param<Log2Scale> : std::true_type {};

}  // namespace fq

#endif  // FQ_LEARNABLE_SCALE_PARAM_HPP_
