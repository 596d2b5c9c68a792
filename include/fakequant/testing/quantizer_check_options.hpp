// SPDX-License-Identifier: MIT
// fakequant/testing/quantizer_check_options.hpp: QuantizerCheckOptions, the settings of
// check_quantizer (testing/check_quantizer.hpp), and what ErrorBound::kAuto means for a
// quantizer: round to nearest (kHalfStep) unless it declares
// `static constexpr bool kRoundsToNearest = false` or is an fq scheme with RoundFloor.
#ifndef FQ_TESTING_QUANTIZER_CHECK_OPTIONS_HPP_
#define FQ_TESTING_QUANTIZER_CHECK_OPTIONS_HPP_

#include <cstddef>      // size_t
#include <cstdint>      // int64_t, uint32_t
#include <functional>   // function
#include <optional>     // optional
#include <type_traits>  // false_type, true_type, is_same, void_t
#include <utility>      // pair
#include <vector>       // vector

#include <fakequant/policy/rounding.hpp>
#include <fakequant/testing/grid.hpp>
#include <fakequant/testing/result.hpp>

namespace fq {
namespace testing {

/// How far an output may be from its input inside the range.
enum class ErrorBound {
  kAuto,        ///< kHalfStep unless Q declares kRoundsToNearest = false or is RoundFloor
  kHalfStep,    ///< round to nearest: |y - x| <= half the cell containing x
  kBracketing,  ///< any rounding (floor, log-domain nearest): y is one of the two levels around x
};

/// What a quantizer must do with NaN and +-Inf inputs.
enum class NonFinite {
  kOnGridMaskOff,  ///< y is a finite level, mask 0 (fq and PyTorch: NaN/+-Inf clamp to a level)
  kNaNPropagates,  ///< NaN gives NaN; +-Inf give a finite level; mask 0
  kUnchecked,      ///< only that the forward returns
};

/// Options of check_quantizer. The defaults suit fq::FakeQuantizer.
struct QuantizerCheckOptions {
  /// The levels; empty: grid_of(q) for affine quantizers, else on_grid must be set.
  Grid grid;
  /// Overrides the level test: true if y is a representable output of channel c.
  std::function<bool(double y, std::int64_t c)> on_grid;
  /// The channel axis of x; default: the grid's, else Q::kAxis if Q::kPerChannel, else none.
  std::optional<int> channel_axis;
  /// The tensor shape; default: rank 2 (or axis + 1), about 64 elements per channel.
  std::vector<std::int64_t> shape;
  /// Input interval when there are no levels (predicate-only grids).
  std::pair<double, double> input_range{-4.0, 4.0};
  std::uint32_t seed = 20240601u;
  ErrorBound error_bound = ErrorBound::kAuto;
  NonFinite non_finite = NonFinite::kOnGridMaskOff;
  /// Outputs depend only on their own input (and channel): NaN must not spread.
  bool elementwise = true;
  /// Allowed distance of an output from a level, in float ulps of the output.
  int grid_ulps = 0;
  /// Slack of the error_bound and clamp checks, as a fraction of the cell width (plus 4
  /// float ulps of x, the error of computing x * f32(1/s)).
  double rel_tol = 1e-6;
  bool check_on_grid = true, check_error_bound = true, check_clamp = true, check_mask = true,
       check_monotonic = true, check_idempotent = true, check_channel_independence = true,
       check_non_finite = true;
  /// Failures kept per property (all are counted).
  std::size_t max_failures_per_property = 8;
};

namespace detail {

/// Whether Q says how it rounds: `static constexpr bool kRoundsToNearest` ...
template <class Q, class = void>
struct declares_rounding : std::false_type {};
template <class Q>
struct declares_rounding<Q, std::void_t<decltype(Q::kRoundsToNearest)>> : std::true_type {};
/// ... or an fq scheme whose rounding policy tells.
template <class Q, class = void>
struct has_scheme_rounding : std::false_type {};
template <class Q>
struct has_scheme_rounding<Q, std::void_t<typename Q::scheme::numerics::rounding>>
    : std::true_type {};

/// What kAuto means for Q: round to nearest unless Q declares otherwise. The strict bound is
/// the default because a user's quantizer is most often meant to round to nearest, and the
/// bracketing bound would let a floor-instead-of-round bug pass.
template <class Q>
constexpr bool rounds_to_nearest() {
  if constexpr (declares_rounding<Q>::value)
    return static_cast<bool>(Q::kRoundsToNearest);
  else if constexpr (has_scheme_rounding<Q>::value)
    return !std::is_same<typename Q::scheme::numerics::rounding, RoundFloor>::value;
  else
    return true;
}

template <class Q>
ErrorBound resolve_error_bound(ErrorBound b) {
  if (b != ErrorBound::kAuto) return b;
  return rounds_to_nearest<Q>() ? ErrorBound::kHalfStep : ErrorBound::kBracketing;
}

/// A note when kAuto assumed round-to-nearest for a quantizer that does not say how it rounds.
template <class Q>
void note_assumed_bound(ErrorBound given, CheckResult& r) {
  if (given == ErrorBound::kAuto && !declares_rounding<Q>::value && !has_scheme_rounding<Q>::value)
    r.add_note(
        "error_bound: round to nearest (kHalfStep) assumed; a quantizer that rounds otherwise "
        "(floor, log domain, stochastic) sets error_bound = kBracketing or declares "
        "static constexpr bool kRoundsToNearest = false");
}

}  // namespace detail

}  // namespace testing
}  // namespace fq

#endif  // FQ_TESTING_QUANTIZER_CHECK_OPTIONS_HPP_
