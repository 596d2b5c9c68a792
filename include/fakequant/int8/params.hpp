// SPDX-License-Identifier: MIT
// fakequant/int8/params.hpp: the integer parameters of one QAT layer (fq::Int8LayerParams) —
// what Int8Linear and Int8Conv2d (int8/linear.hpp, int8/conv2d.hpp) run with, both when
// convert deploys a layer and when the layer itself evaluates in integer arithmetic
// (layers/integer_eval.hpp) — and the qparams of the uint8 activations between them.
//
// For a layer with input activation qparams (s_x, z_x), per-output-channel symmetric weight
// scales s_w[o] (zero point 0; a per-tensor weight scale is repeated per channel), effective
// real weights w_eff and bias b[o], a fused activation and output activation qparams (s_y, z_y,
// range [q_lo, q_hi]):
//   weights  q_w = quantize(w_eff, s_w)          the levels the simulation used, bit for bit
//                                                 (the same Numerics as the weight quantizer)
//   bias     q_b[o] = rne(b[o] / (s_x · s_w[o]))   int32, in units of the accumulator
//   multiplier M[o] = s_x · s_w[o] / s_y          fixed point (kernels/fixed_point.hpp)
//   y_q = clamp(requant(Σ (x_q − z_x)·q_w + q_b, M) + z_y, lo, hi)
// with lo = q_lo, or max(q_lo, z_y) with a fused ReLU (fq(max(v, 0)) = max(fq(v), z_y): a
// per-tensor quantizer is monotone), and hi = q_hi, or min(q_hi, level of 6) with a fused
// ReLU6 (the level the output quantizer gives 6.0, by its own Numerics). A layer without an
// output quantizer has a float output y = fma(f32(s_x·s_w[o]), f32(acc), b[o]).
// Activation levels are uint8; an int8 activation quantizer's levels and zero point are shifted
// by 128 (act_qparams), which leaves every real value unchanged.
// Quantizers: fixed ones (fq::FakeQuantize, fq::FakeQuantizer) give their qparams; learned ones
// (LSQ, LSQ+, PACT: fq::LearnableFakeQuant, fq::LsqQuantizer, fq::Pact) those of their snapshot
// fq::freeze (learnable/freeze.hpp), which fake-quantizes exactly as they do now
// (detail::deployed_quantizer).
#ifndef FQ_INT8_PARAMS_HPP_
#define FQ_INT8_PARAMS_HPP_

#include <algorithm>    // max, min
#include <cmath>        // abs, fma, nearbyint
#include <cstddef>      // nullptr_t, size_t
#include <cstdint>      // int8_t, int32_t, int64_t, uint8_t
#include <string>       // string
#include <type_traits>  // decay_t, declval, is_same, false_type, true_type, void_t
#include <vector>       // vector

#include <fakequant/base/error.hpp>
#include <fakequant/kernels/fixed_point.hpp>
#include <fakequant/kernels/linear.hpp>
#include <fakequant/kernels/quantize.hpp>
#include <fakequant/learnable/freeze.hpp>
#include <fakequant/quantizer/concept.hpp>
#include <fakequant/scheme/numerics.hpp>
#include <fakequant/simd/arch.hpp>

namespace fq {

/// Per-tensor qparams of a uint8 activation (the integer model's levels; see act_qparams for
/// int8 activations).
struct ActQParams {
  float scale = 1.0f;
  std::int32_t zero_point = 0;
};

/// The fused activation of a QAT layer (applied before its output quantizer).
enum class Activation { kNone, kReLU, kReLU6 };

namespace detail {
template <class Q, class = void>
struct has_quantizer_member : std::false_type {};
template <class Q>
struct has_quantizer_member<Q, std::void_t<decltype(std::declval<const Q&>().quantizer())>>
    : std::true_type {};
/// The quantizer() of a module (fq::FakeQuantize, fq::LearnableFakeQuant), or the argument
/// itself.
template <class Q>
const auto& fake_quantizer_of(const Q& q) {
  if constexpr (has_quantizer_member<Q>::value) {
    return q.quantizer();
  } else {
    return q;
  }
}
/// True for the quantizers whose qparams are learned parameters (LSQ, PACT), directly or as a
/// module's quantizer() (fq::LearnableFakeQuant).
template <class Q>
inline constexpr bool is_learned_quantizer_v =
    is_freezable<std::decay_t<decltype(fake_quantizer_of(std::declval<const Q&>()))>>::value;
/// The fixed quantizer a quantizer deploys as: the FakeQuantizer of an fq::FakeQuantize (a
/// reference), an fq::FakeQuantizer itself, or the snapshot fq::freeze takes of a learned one
/// (by value: bind it to a const reference). Either way a FakeQuantizer whose forward is the
/// quantizer's forward now.
template <class Q>
decltype(auto) deployed_quantizer(const Q& q) {
  const auto& inner = fake_quantizer_of(q);
  if constexpr (is_freezable<std::decay_t<decltype(inner)>>::value)
    return freeze(inner);
  else
    return inner;  // a reference variable: decltype(auto) returns a reference
}
/// The scheme of deployed_quantizer(q).
template <class Q>
using deployed_scheme_t =
    typename std::decay_t<decltype(deployed_quantizer(std::declval<const Q&>()))>::scheme;
/// True when the quantizer holds qparams from observed data, set_qparams or training (LSQ), not
/// the placeholder scale 1 it starts with.
template <class Q>
bool has_qparams(const Q& q) {
  return deployed_quantizer(q).has_qparams();
}
/// Refuses an uncalibrated quantizer: `where` names the layer, `which` the quantizer (input,
/// weight, output). Converting one would silently deploy scale 1, zero point 0.
template <class Q>
void check_calibrated(const Q& q, const std::string& where, const char* which) {
  FQ_CHECK(has_qparams(q), ErrorCode::kInvalidState,
           msg(where, ": the ", which,
               " quantizer is not calibrated (it has observed no data and set_qparams was never "
               "called, so its scale 1 and zero point 0 are placeholders); run the network on "
               "data with its observers enabled, or set the qparams, before converting"));
}
/// What the integer model adds to an activation quantizer's levels to make them uint8: 0 for a
/// range within [0, 255], 128 for a signed range within [-128, 127]. An int8 affine quantizer
/// with zero point z and the uint8 one with zero point z + 128 give the same real values
/// ((q + 128) - (z + 128) = q - z, exact), so the integer model runs int8 activations as uint8
/// levels shifted by 128; a runtime that wants int8 bytes flips the top bit (q ^ 0x80).
inline std::int32_t act_level_offset(QuantRange r) {
  const bool is_unsigned = r.quant_min >= 0 && r.quant_max <= 255;
  const bool is_signed = r.quant_min >= -128 && r.quant_max <= 127;
  FQ_CHECK(is_unsigned || is_signed, ErrorCode::kInvalidRange,
           msg("act_qparams: the integer model runs 8-bit activations; the quantizer's range [",
               r.quant_min, ", ", r.quant_max, "] is within neither [0, 255] nor [-128, 127]"));
  return is_unsigned ? 0 : 128;
}
}  // namespace detail

/// The integer model's qparams of a per-tensor activation quantizer (fq::FakeQuantize or
/// fq::FakeQuantizer): its scale and zero point, the zero point shifted by 128 for a signed
/// range (detail::act_level_offset). An uncalibrated quantizer is ErrorCode::kInvalidState.
template <class Q>
ActQParams act_qparams(const Q& q) {
  static_assert(assert_quantizer<Q>(),
                "act_qparams: the activation quantizer must meet the quantizer protocol.");
  detail::check_calibrated(q, "act_qparams", "activation");
  const auto& fqz = detail::deployed_quantizer(q);
  static_assert(!std::decay_t<decltype(fqz)>::scheme::granularity::kPerChannel,
                "act_qparams: an activation quantizer must be per-tensor.");
  return {fqz.scale()[0],
          static_cast<std::int32_t>(fqz.zero_point()[0]) + detail::act_level_offset(fqz.range())};
}

/// The integer parameters of an int8 linear or conv layer (file comment): built by a QAT
/// layer's int8_params(in), read from a model file, or filled by hand (the integer layers'
/// constructors validate them).
struct Int8LayerParams {
  std::vector<std::int8_t> weight;  // levels, [out, ...] row-major
  std::vector<float> weight_scale;  // s_w[o]
  std::vector<std::int32_t> bias;   // q_b[o]
  std::vector<float> real_bias;     // b[o] (for a float output)
  std::vector<QuantizedMultiplier> multiplier;
  ActQParams in, out;
  std::int32_t out_min = 0, out_max = 255;  // lo and hi of the file comment
  bool relu = false, float_out = false;

  RequantParams requant() const {
    RequantParams rp;
    rp.bias = bias.data();
    rp.multipliers = multiplier.data();
    rp.multiplier_count = static_cast<std::int64_t>(multiplier.size());
    rp.out_zero_point = out.zero_point;
    rp.out_min = out_min;
    rp.out_max = out_max;
    rp.relu = relu;
    return rp;
  }
  /// The float output of channel o for accumulator acc (float-output layers). One fused
  /// multiply-add, so that every caller rounds identically whatever the compiler contracts.
  float float_output(std::int32_t acc, std::size_t o) const noexcept {
    return std::fma(in.scale * weight_scale[o], static_cast<float>(acc), real_bias[o]);
  }
};

namespace detail {

/// The [lo, hi] output levels (uint8, shifted by act_level_offset) of an output quantizer
/// with a fused activation.
template <class AQ>
void set_output_range(Int8LayerParams& p, const AQ& aq_module, Activation act) {
  const auto& aq = deployed_quantizer(aq_module);
  using N = typename std::decay_t<decltype(aq)>::scheme::numerics;
  const QuantRange r = aq.range();
  const std::int32_t offset = act_level_offset(r);
  p.out_min = static_cast<std::int32_t>(r.quant_min) + offset;
  p.out_max = static_cast<std::int32_t>(r.quant_max) + offset;
  p.relu = act != Activation::kNone;
  if (act == Activation::kReLU6) {  // the level of 6.0 on the quantizer's own grid, then shifted
    const auto e =
        make_element_params<N, float>(aq.scale()[0], static_cast<float>(aq.zero_point()[0]), r);
    p.out_max = std::min(p.out_max, static_cast<std::int32_t>(quant_level<N>(6.0f, e)) + offset);
  }
}

/// True when a weight quantizer's zero points are 0 by its scheme (Symmetric), or learned values
/// that convert checks (LSQ, PACT).
template <class WQ>
constexpr bool symmetric_or_learned_weights() {
  return deployed_scheme_t<WQ>::mapping::kSymmetric || is_learned_quantizer_v<WQ>;
}

/// Refuses weight zero points other than 0 (the integer kernels' weights are symmetric): a
/// learned one may have drifted. `wq` is a deployed quantizer (deployed_quantizer).
template <class FQ>
void check_weight_zero_points(const FQ& wq, const std::string& where) {
  for (std::size_t c = 0; c < wq.zero_point().size(); ++c)
    FQ_CHECK(
        wq.zero_point()[c] == 0, ErrorCode::kInvalidZeroPoint,
        msg(where, ": the weight quantizer's zero point is ", wq.zero_point()[c], " in channel ", c,
            "; the integer kernels take symmetric weights (zero point 0): learn weight "
            "scales without a zero point (a signed range, learn_zero_point = false)"));
}

/// make_int8_params below, from the deployed weight quantizer `wq` (a FakeQuantizer: per output
/// channel on axis 0, or per tensor; its zero points are checked to be 0).
template <class Arch, class FQ, class AQPtr>
Int8LayerParams int8_params_deployed(const float* w_eff, std::int64_t out, std::int64_t k,
                                     const std::vector<float>& real_bias, const FQ& wq,
                                     ActQParams in, AQPtr aq, Activation act, const char* where) {
  constexpr bool kFloatOut = std::is_same<AQPtr, std::nullptr_t>::value;
  using Scheme = typename FQ::scheme;
  static_assert(!Scheme::granularity::kPerChannel || Scheme::granularity::kAxis == 0,
                "convert: the integer kernels take weights quantized per output channel (axis 0 "
                "of [out, ...]) or per tensor; use e.g. fq::Int8WeightPerChannelSymmetric.");
  const QuantRange r = wq.range();
  FQ_CHECK(r.quant_min >= -128 && r.quant_max <= 127, ErrorCode::kInvalidRange,
           msg(where, ": weight range [", r.quant_min, ", ", r.quant_max, "] is not int8"));
  const auto n_scales = static_cast<std::int64_t>(wq.scale().size());
  FQ_CHECK(n_scales == (Scheme::granularity::kPerChannel ? out : 1), ErrorCode::kParamCountMismatch,
           msg(where, ": the weight quantizer has ", n_scales, " scales for ", out,
               " output channels (run the layer once so its observer sees the weights)"));
  check_weight_zero_points(wq, where);
  FQ_CHECK(!kFloatOut || act == Activation::kNone, ErrorCode::kInvalidArgument,
           msg(where, ": a float-output layer cannot have a fused activation"));
  check_scale(in.scale, where);
  FQ_CHECK(in.zero_point >= 0 && in.zero_point <= 255, ErrorCode::kInvalidZeroPoint,
           msg(where, ": input zero point ", in.zero_point, " is outside [0, 255]"));
  Int8LayerParams p;
  p.in = in;
  p.float_out = kFloatOut;
  if constexpr (!kFloatOut) {
    p.out = act_qparams(*aq);
    set_output_range(p, *aq, act);
  }
  p.weight.resize(static_cast<std::size_t>(out * k));
  p.weight_scale = wq.scale();
  p.weight_scale.resize(static_cast<std::size_t>(out), wq.scale()[0]);  // per tensor: repeated
  const std::vector<std::int32_t> zp(static_cast<std::size_t>(out), 0);
  quantize_per_channel<typename Scheme::numerics, Arch>(
      TensorView<const float>(w_eff, {out, k}), TensorView<std::int8_t>(p.weight.data(), {out, k}),
      p.weight_scale.data(), zp.data(), out, 0, r);
  p.real_bias = real_bias;
  for (std::int64_t o = 0; o < out; ++o) {
    const auto oi = static_cast<std::size_t>(o);
    const double acc_unit = static_cast<double>(in.scale) * static_cast<double>(p.weight_scale[oi]);
    const double qb = std::nearbyint(static_cast<double>(real_bias[oi]) / acc_unit);
    FQ_CHECK(std::abs(qb) < 2147483647.0, ErrorCode::kInvalidArgument,
             msg(where, ": bias ", real_bias[oi], " of channel ", o,
                 " overflows int32 in units of ", acc_unit));
    p.bias.push_back(static_cast<std::int32_t>(qb));
    if (!kFloatOut)
      p.multiplier.push_back(quantize_multiplier(acc_unit / static_cast<double>(p.out.scale)));
  }
  return p;
}

/// Quantizes w_eff [out, k] with the weight quantizer's qparams (per output channel, or one
/// pair for the tensor, which the integer layer repeats per channel: the same levels) and fills
/// the integer bias, the multipliers and the output range. `wq_module` is the weight quantizer
/// (FakeQuantize, FakeQuantizer, or a learned one: LSQ, LearnableFakeQuant, deployed by its
/// snapshot, learnable/freeze.hpp); `aq` points to the output quantizer, or is nullptr for a
/// float output. Arch: the quantize kernels' instruction set (fq::DefaultArch; simd/arch.hpp).
template <class Arch = DefaultArch, class WQ, class AQPtr>
Int8LayerParams make_int8_params(const float* w_eff, std::int64_t out, std::int64_t k,
                                 const std::vector<float>& real_bias, const WQ& wq_module,
                                 ActQParams in, AQPtr aq, Activation act, const char* where) {
  constexpr bool kFloatOut = std::is_same<AQPtr, std::nullptr_t>::value;
  static_assert(assert_quantizer<WQ>(),
                "convert: the weight quantizer must meet the quantizer protocol.");
  static_assert(symmetric_or_learned_weights<WQ>(),
                "convert: the integer kernels take symmetric weights (zero point 0); use e.g. "
                "fq::Int8WeightPerChannelSymmetric.");
  check_calibrated(wq_module, where, "weight");
  if constexpr (!kFloatOut) check_calibrated(*aq, where, "output");
  return int8_params_deployed<Arch>(w_eff, out, k, real_bias, deployed_quantizer(wq_module), in, aq,
                                    act, where);
}
}  // namespace detail

}  // namespace fq

#endif  // FQ_INT8_PARAMS_HPP_
