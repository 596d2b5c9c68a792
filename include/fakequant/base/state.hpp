// SPDX-License-Identifier: MIT
// fakequant/base/state.hpp: the state protocol — how a stateful object (a layer, a quantizer,
// an observer, an optimizer, a schedule) reports what a checkpoint must save and restore
// (convert/checkpoint.hpp writes and reads the file).
//
// An object has a member template visit_state(v) that calls, in an order fixed by its type
// and configuration (never by the values of its state, so that a save and a load walk the
// same entries):
//   v.kind("...")                      what the object is (a load refuses another kind)
//   v.config(name, x)                  a value fixed at construction (a shape, a range, eps,
//   v.config_array(name, p, n)         a hyper-parameter): saved, and on load compared with
//                                      the object's own (bitwise); a mismatch is refused
//   v.state(name, x, check)            a scalar (bool, int32, int64, float, double) restored
//   v.state_span(name, p, n, check)    n elements restored in place (the size must match)
//   v.state_vector(name, vec, check, size)  a std::vector resized to the file's length,
//                                      which must obey `size` (StateSize)
//   v.child(name, obj)                 obj.visit_state(v) with names under "name."
// `check` (StateCheck) bounds the values a load accepts: a checkpoint whose state breaks an
// invariant (a NaN parameter, a scale <= 0, a negative variance) is refused before anything
// is written. Element types: float, double, int32, int64, uint32, uint64, uint8 and bool.
#ifndef FQ_BASE_STATE_HPP_
#define FQ_BASE_STATE_HPP_

#include <cmath>        // isfinite, isnan
#include <cstddef>      // size_t
#include <limits>       // numeric_limits
#include <string>       // string
#include <type_traits>  // false_type, true_type, void_t
#include <utility>      // declval

#include <fakequant/base/error.hpp>

namespace fq {

/// The values a state entry may hold (inclusive bounds; NaN only if allowed).
struct StateCheck {
  double lo = -std::numeric_limits<double>::infinity();
  double hi = std::numeric_limits<double>::infinity();
  bool finite = false;  ///< refuses +-inf
  bool nan = false;     ///< accepts NaN
  bool scale = false;   ///< a quantization scale: > 0 and finite with a finite float32 inverse
};

/// Any value, NaN included (bit patterns restored as they are).
inline constexpr StateCheck state_any() noexcept {
  StateCheck c;
  c.nan = true;
  return c;
}
/// Any value but NaN (observer ranges are +-inf before data).
inline constexpr StateCheck state_not_nan() noexcept { return StateCheck{}; }
/// A finite value (parameters, gradients' moments, averages).
inline constexpr StateCheck state_finite() noexcept {
  StateCheck c;
  c.finite = true;
  return c;
}
/// A finite value in [lo, hi].
inline constexpr StateCheck state_in(double lo, double hi) noexcept {
  StateCheck c;
  c.lo = lo;
  c.hi = hi;
  c.finite = true;
  return c;
}
/// A finite value >= 0 (variances, second moments, counts).
inline constexpr StateCheck state_non_negative() noexcept {
  return state_in(0.0, std::numeric_limits<double>::max());
}
/// A quantization scale (core/checks.hpp's check_scale).
inline constexpr StateCheck state_scale() noexcept {
  StateCheck c = state_finite();
  c.scale = true;
  return c;
}

/// The lengths a state_vector accepts: [min, max], and equal to the length of an earlier
/// entry of the same object if `same_as` names one.
struct StateSize {
  std::size_t min = 0;
  std::size_t max = std::size_t{1} << 31;
  const char* same_as = nullptr;
};

namespace detail {
/// Whether v passes c (file comment).
inline bool state_value_ok(const StateCheck& c, double v) noexcept {
  if (std::isnan(v)) return c.nan;
  if (c.finite && !std::isfinite(v)) return false;
  if (v < c.lo || v > c.hi) return false;
  if (c.scale) {
    const auto f = static_cast<float>(v);
    return f > 0.0f && std::isfinite(1.0f / f);
  }
  return true;
}
/// What c requires, for messages.
inline std::string describe_state_check(const StateCheck& c) {
  if (c.scale) return "a scale > 0 with a finite inverse";
  std::string s = c.finite ? "finite" : (c.nan ? "any value" : "not NaN");
  if (c.lo > -std::numeric_limits<double>::max() || c.hi < std::numeric_limits<double>::max())
    s += msg(", in [", c.lo, ", ", c.hi, "]");
  return s;
}

/// True if T has visit_state(v) for some visitor (checked where a child is visited).
template <class T, class V, class = void>
struct has_visit_state : std::false_type {};
template <class T, class V>
struct has_visit_state<T, V,
                       std::void_t<decltype(std::declval<T&>().visit_state(std::declval<V&>()))>>
    : std::true_type {};
}  // namespace detail

}  // namespace fq

#endif  // FQ_BASE_STATE_HPP_
