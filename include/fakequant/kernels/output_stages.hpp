// SPDX-License-Identifier: MIT
// fakequant/kernels/output_stages.hpp: composable int32 -> int8/uint8 epilogues (gemmlowp's
// "output stages") for the int8 GEMM.
//
// Each stage is a small trivially-copyable struct with
//   std::int32_t apply(std::int32_t v, std::int64_t channel) const
// (channel = output column, i.e. output channel). An OutputPipeline applies its stages left to
// right, then saturates to the output type. The usual requantizing epilogue is
//   BiasAdd -> Requantize<DoubleRounding | SingleRounding<R>> -> AddZeroPoint -> Clamp
// with a fused ReLU expressed as Clamp{max(out_min, out_zero_point), out_max}:
//   y = clamp(requant(acc + bias[n], M[n]) + z_out, lo, hi)
// Bias add saturates in int32 (a no-op within the GEMM bound for real biases).
// A stage may also have  void check(std::int64_t first_channel, std::int64_t channels,
// const char* where) const,  which gemm_requant calls once per call (OutputPipeline::check)
// to refuse bad parameters (a null bias or multiplier array, a multiplier outside the range
// of fixed_point.hpp) before any element is computed; apply() itself does not check.
#ifndef FQ_KERNELS_OUTPUT_STAGES_HPP_
#define FQ_KERNELS_OUTPUT_STAGES_HPP_

#include <algorithm>    // min, max
#include <cstdint>      // int32_t, int64_t
#include <limits>       // numeric_limits
#include <tuple>        // tuple, apply
#include <type_traits>  // is_trivially_copyable, void_t
#include <utility>      // declval

#include <fakequant/kernels/fixed_point.hpp>

namespace fq {

/// v + bias[channel] (saturating).
struct BiasAdd {
  const std::int32_t* bias;
  std::int32_t apply(std::int32_t v, std::int64_t ch) const noexcept {
    return detail::saturate_int32(std::int64_t{v} + bias[ch]);
  }
  void check(std::int64_t, std::int64_t channels, const char* where) const {
    FQ_CHECK(channels == 0 || bias != nullptr, ErrorCode::kInvalidArgument,
             detail::msg(where, ": BiasAdd has a null bias array"));
  }
};

/// v * M[channel] in fixed point, M per channel (per_channel) or one M for all.
template <class Rounding = SingleRounding<RoundHalfEven>>
struct Requantize {
  static_assert(is_requant_rounding<Rounding>::value,
                "Requantize: Rounding must be DoubleRounding or SingleRounding<R>.");
  const QuantizedMultiplier* multipliers;
  bool per_channel;
  std::int32_t apply(std::int32_t v, std::int64_t ch) const noexcept {
    return Rounding::apply(v, multipliers[per_channel ? ch : 0]);
  }
  /// The multipliers of channels [first, first + channels) (or the single one) are valid.
  void check(std::int64_t first, std::int64_t channels, const char* where) const {
    if (channels == 0) return;
    if (per_channel)
      detail::check_quantized_multipliers(multipliers == nullptr ? nullptr : multipliers + first,
                                          channels, where);
    else
      detail::check_quantized_multipliers(multipliers, 1, where);
  }
};

/// v + zero_point (saturating).
struct AddZeroPoint {
  std::int32_t zero_point;
  std::int32_t apply(std::int32_t v, std::int64_t) const noexcept {
    return detail::saturate_int32(std::int64_t{v} + zero_point);
  }
};

/// clamp(v, lo, hi); a fused ReLU is lo = the output zero point.
struct Clamp {
  std::int32_t lo;
  std::int32_t hi;
  std::int32_t apply(std::int32_t v, std::int64_t) const noexcept {
    return std::min(std::max(v, lo), hi);
  }
};

namespace detail {
template <class S, class = void>
struct has_stage_check : std::false_type {};
template <class S>
struct has_stage_check<S, std::void_t<decltype(std::declval<const S&>().check(
                              std::int64_t{}, std::int64_t{}, static_cast<const char*>(nullptr)))>>
    : std::true_type {};
}  // namespace detail

/// The stages, applied left to right.
template <class... Stages>
struct OutputPipeline {
  static_assert((std::is_trivially_copyable<Stages>::value && ...),
                "OutputPipeline: output stages must be small trivially-copyable structs.");
  std::tuple<Stages...> stages;

  std::int32_t apply(std::int32_t v, std::int64_t ch) const noexcept {
    std::apply([&](const auto&... s) { ((v = s.apply(v, ch)), ...); }, stages);
    return v;
  }
  /// Runs the check() of every stage that has one (file comment), for channels
  /// [first, first + channels).
  void check(std::int64_t first, std::int64_t channels, const char* where) const {
    std::apply(
        [&](const auto&... s) {
          (
              [&](const auto& st) {
                if constexpr (detail::has_stage_check<std::decay_t<decltype(st)>>::value)
                  st.check(first, channels, where);
              }(s),
              ...);
        },
        stages);
  }
  /// The result saturated to the output type Out.
  template <class Out>
  Out apply_to(std::int32_t v, std::int64_t ch) const noexcept {
    const std::int32_t r = apply(v, ch);
    constexpr std::int32_t lo = std::numeric_limits<Out>::min(),
                           hi = std::numeric_limits<Out>::max();
    return static_cast<Out>(std::min(std::max(r, lo), hi));
  }
};

template <class... Stages>
OutputPipeline<Stages...> make_output_pipeline(Stages... s) {
  return OutputPipeline<Stages...>{std::tuple<Stages...>(s...)};
}

/// The usual requantizing epilogue (see the file comment).
template <class Rounding>
using RequantPipeline = OutputPipeline<BiasAdd, Requantize<Rounding>, AddZeroPoint, Clamp>;

}  // namespace fq

#endif  // FQ_KERNELS_OUTPUT_STAGES_HPP_
