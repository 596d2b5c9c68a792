// SPDX-License-Identifier: MIT
// fakequant/kernels/linear.hpp: the int8 linear layer (inference).
//
//   y[m][n] = clamp(requant(sum_k (x[m][k] - z_x) * W[n][k] + bias[n], M[n]) + z_y, lo, hi)
// x uint8 [M, K] (zero point z_x), W int8 [N, K] packed (per-channel symmetric: zero point 0),
// bias int32 (in units of s_x * s_w[n]), M[n] = s_x * s_w[n] / s_y as QuantizedMultiplier,
// y uint8 [M, N]. lo = out_min, or max(out_min, z_y) with the fused ReLU. requant is
// SingleRounding<RoundHalfEven> by default (matches fake-quant's ties-to-even rounding of the
// exact product) or DoubleRounding (TFLite). See gemm.hpp for the K bound.
#ifndef FQ_KERNELS_LINEAR_HPP_
#define FQ_KERNELS_LINEAR_HPP_

#include <algorithm>  // max
#include <cstdint>    // int32_t, int64_t, uint8_t

#include <fakequant/kernels/gemm_requant.hpp>
#include <fakequant/kernels/output_stages.hpp>

namespace fq {

/// How an int8 layer's int32 accumulators become its uint8 output.
struct RequantParams {
  const std::int32_t* bias = nullptr;                ///< N entries, or null for no bias
  const QuantizedMultiplier* multipliers = nullptr;  ///< N entries, or 1 (per tensor)
  std::int64_t multiplier_count = 1;
  std::int32_t out_zero_point = 0;
  std::int32_t out_min = 0;
  std::int32_t out_max = 255;
  bool relu = false;  ///< fused ReLU: clamp below at out_zero_point
};

namespace detail {
inline void check_requant_params(const RequantParams& rp, std::int64_t n, const char* where) {
  FQ_CHECK(rp.multipliers != nullptr, ErrorCode::kInvalidArgument,
           msg(where, ": null requantization multipliers"));
  FQ_CHECK(rp.multiplier_count == 1 || rp.multiplier_count == n, ErrorCode::kParamCountMismatch,
           msg(where, ": ", rp.multiplier_count, " multipliers for ", n, " output channels"));
  check_quantized_multipliers(rp.multipliers, rp.multiplier_count, where);  // O(channels)
  FQ_CHECK(
      0 <= rp.out_min && rp.out_min <= rp.out_max && rp.out_max <= 255, ErrorCode::kInvalidRange,
      msg(where, ": output range [", rp.out_min, ", ", rp.out_max, "] is not within [0, 255]"));
  FQ_CHECK(rp.out_zero_point >= rp.out_min && rp.out_zero_point <= rp.out_max,
           ErrorCode::kInvalidZeroPoint,
           msg(where, ": output zero point ", rp.out_zero_point, " is outside [", rp.out_min, ", ",
               rp.out_max, "]"));
}

/// Runs gemm_requant with the requantizing pipeline of `rp`.
template <class Rounding, class Arch = DefaultArch, class A>
void run_requant(const A* a, std::int64_t m, std::int64_t lda, const PackedWeights& w,
                 std::int32_t a_zero_point, const RequantParams& rp, GemmOutput<std::uint8_t> out,
                 Isa isa) {
  const Requantize<Rounding> rq{rp.multipliers, rp.multiplier_count != 1};
  const AddZeroPoint zp{rp.out_zero_point};
  const Clamp cl{rp.relu ? std::max(rp.out_min, rp.out_zero_point) : rp.out_min, rp.out_max};
  if (rp.bias) {
    gemm_requant<Arch>(a, m, lda, w, a_zero_point,
                       make_output_pipeline(BiasAdd{rp.bias}, rq, zp, cl), out, isa);
  } else {
    gemm_requant<Arch>(a, m, lda, w, a_zero_point, make_output_pipeline(rq, zp, cl), out, isa);
  }
}
}  // namespace detail

/// The int8 linear layer: x uint8 [m, K] (row stride ldx) -> y uint8 [m, N] (row stride ldy).
/// Arch: as gemm_requant (simd/arch.hpp); leave the default.
template <class Rounding = SingleRounding<RoundHalfEven>, class Arch = DefaultArch>
void linear_u8(const std::uint8_t* x, std::int64_t m, std::int64_t ldx, std::int32_t x_zero_point,
               const PackedWeights& w, const RequantParams& rp, std::uint8_t* y, std::int64_t ldy,
               Isa isa = Isa::kAuto) {
  static_assert(is_requant_rounding<Rounding>::value,
                "linear_u8: Rounding must be DoubleRounding or SingleRounding<R>.");
  constexpr const char* kWhere = "linear_u8";
  detail::check_requant_params(rp, w.n(), kWhere);
  FQ_CHECK(ldy >= w.n(), ErrorCode::kInvalidLayout,
           detail::msg(kWhere, ": ldy = ", ldy, " is smaller than N = ", w.n()));
  detail::run_requant<Rounding, Arch>(x, m, ldx, w, x_zero_point, rp,
                                      GemmOutput<std::uint8_t>{y, ldy, 1, 0}, isa);
}

}  // namespace fq

#endif  // FQ_KERNELS_LINEAR_HPP_
