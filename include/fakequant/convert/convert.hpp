// SPDX-License-Identifier: MIT
// fakequant/convert/convert.hpp: a QAT-trained layer becomes an integer layer that runs on the
// int8 kernels (kernels/), with the qparams its fake quantizers learned.
//
// For a layer with input activation qparams (s_x, z_x), per-output-channel symmetric weight
// scales s_w[o] (zero point 0), real bias b[o] and output activation qparams (s_y, z_y):
//   weights  q_w = quantize(w_eff, s_w)           the levels the simulation used, bit for bit
//                                                  (the same Numerics as the weight quantizer)
//   bias     q_b[o] = rne(b[o] / (s_x · s_w[o]))  int32, in units of the accumulator
//   multiplier M[o] = s_x · s_w[o] / s_y           fixed point (kernels/fixed_point.hpp)
//   y_q = clamp(requant(Σ (x_q − z_x)·q_w + q_b, M) + z_y, lo, hi), lo = z_y with a fused ReLU
// For QConvBn2d, w_eff = w·f and b = β − f·running_mean with f = γ/√(running_var + ε), computed
// by the very float operations of the layer's evaluation forward (BN folded with its running
// statistics), so q_w equals the simulated weight levels exactly.
//
// Agreement with the fake-quant simulation: the integer sum is exact, the simulation's float32
// sum is not, and the bias is rounded to the accumulator's unit; with single rounding
// (ties-to-even, the default) an output level differs from the simulation's by at most 1 LSB,
// and only where the real pre-activation lies within float error of a rounding midpoint
// (tests/convert measure how often). Double rounding (TFLite) adds its own ≤ 1 LSB.
#ifndef FQ_CONVERT_CONVERT_HPP_
#define FQ_CONVERT_CONVERT_HPP_

#include <cmath>        // nearbyint
#include <cstdint>      // int8_t, int32_t, int64_t, uint8_t
#include <limits>       // numeric_limits
#include <type_traits>  // is_same
#include <utility>      // declval, move
#include <vector>       // vector

#include <fakequant/kernels/conv2d.hpp>
#include <fakequant/kernels/fixed_point.hpp>
#include <fakequant/kernels/gemm.hpp>
#include <fakequant/kernels/linear.hpp>
#include <fakequant/kernels/quantize.hpp>
#include <fakequant/layers/qlayers.hpp>
#include <fakequant/ops/batch_norm.hpp>
#include <fakequant/ops/elementwise.hpp>

namespace fq {

/// Per-tensor qparams of a uint8 activation.
struct ActQParams {
  float scale = 1.0f;
  std::int32_t zero_point = 0;
};

namespace detail {
template <class Q, class = void>
struct has_quantizer_member : std::false_type {};
template <class Q>
struct has_quantizer_member<Q, std::void_t<decltype(std::declval<const Q&>().quantizer())>>
    : std::true_type {};
/// The FakeQuantizer of an fq::FakeQuantize, or the argument itself.
template <class Q>
const auto& fake_quantizer_of(const Q& q) {
  if constexpr (has_quantizer_member<Q>::value) {
    return q.quantizer();
  } else {
    return q;
  }
}
}  // namespace detail

/// The qparams of a per-tensor activation quantizer (fq::FakeQuantize or fq::FakeQuantizer).
template <class Q>
ActQParams act_qparams(const Q& q) {
  const auto& fqz = detail::fake_quantizer_of(q);
  static_assert(!std::decay_t<decltype(fqz)>::scheme::granularity::kPerChannel,
                "act_qparams: an activation quantizer must be per-tensor.");
  FQ_CHECK(fqz.range().quant_min >= 0 && fqz.range().quant_max <= 255, ErrorCode::kInvalidRange,
           "act_qparams: the integer model runs uint8 activations; the quantizer's range is "
           "not within [0, 255]");
  return {fqz.scale()[0], static_cast<std::int32_t>(fqz.zero_point()[0])};
}

namespace detail {

/// The integer parts shared by the int8 linear and conv layers.
struct Int8LayerParams {
  std::vector<std::int8_t> weight;  // levels, [out, ...] row-major
  std::vector<float> weight_scale;  // s_w[o]
  std::vector<std::int32_t> bias;   // q_b[o]
  std::vector<float> real_bias;     // b[o] (for a float output)
  std::vector<QuantizedMultiplier> multiplier;
  ActQParams in, out;
  bool relu = false, float_out = false;

  RequantParams requant() const {
    RequantParams rp;
    rp.bias = bias.data();
    rp.multipliers = multiplier.data();
    rp.multiplier_count = static_cast<std::int64_t>(multiplier.size());
    rp.out_zero_point = out.zero_point;
    rp.relu = relu;
    return rp;
  }
};

/// Quantizes w_eff [out, k] with the weight quantizer's per-channel qparams and fills the
/// integer bias and multipliers. `wq` is the weight quantizer (FakeQuantize or FakeQuantizer).
template <class WQ>
Int8LayerParams make_int8_params(const std::vector<float>& w_eff, std::int64_t out, std::int64_t k,
                                 const std::vector<float>& real_bias, const WQ& wq_module,
                                 ActQParams in, const ActQParams* out_q, bool relu,
                                 const char* where) {
  const auto& wq = fake_quantizer_of(wq_module);
  using Scheme = typename std::decay_t<decltype(wq)>::scheme;
  static_assert(Scheme::granularity::kPerChannel && Scheme::granularity::kAxis == 0 &&
                    Scheme::mapping::kSymmetric,
                "convert: the integer kernels take per-output-channel (axis 0) symmetric "
                "weights; use e.g. fq::Int8WeightPerChannelSymmetric.");
  const QuantRange r = wq.range();
  FQ_CHECK(r.quant_min >= -128 && r.quant_max <= 127, ErrorCode::kInvalidRange,
           msg(where, ": weight range [", r.quant_min, ", ", r.quant_max, "] is not int8"));
  FQ_CHECK(static_cast<std::int64_t>(wq.scale().size()) == out, ErrorCode::kParamCountMismatch,
           msg(where, ": the weight quantizer has ", wq.scale().size(), " scales for ", out,
               " output channels (run the layer once so its observer sees the weights)"));
  Int8LayerParams p;
  p.in = in;
  p.relu = relu;
  p.float_out = out_q == nullptr;
  if (out_q) p.out = *out_q;
  p.weight.resize(static_cast<std::size_t>(out * k));
  std::vector<std::int32_t> zp(wq.zero_point().begin(), wq.zero_point().end());
  quantize_per_channel<typename Scheme::numerics>(
      TensorView<const float>(w_eff.data(), {out, k}),
      TensorView<std::int8_t>(p.weight.data(), {out, k}), wq.scale().data(), zp.data(), out, 0, r);
  p.weight_scale = wq.scale();
  p.real_bias = real_bias;
  for (std::int64_t o = 0; o < out; ++o) {
    const auto oi = static_cast<std::size_t>(o);
    const double acc_unit = static_cast<double>(in.scale) * static_cast<double>(wq.scale()[oi]);
    const double qb = std::nearbyint(static_cast<double>(real_bias[oi]) / acc_unit);
    FQ_CHECK(std::abs(qb) < 2147483647.0, ErrorCode::kInvalidArgument,
             msg(where, ": bias ", real_bias[oi], " of channel ", o,
                 " overflows int32 in units of ", acc_unit));
    p.bias.push_back(static_cast<std::int32_t>(qb));
    if (out_q)
      p.multiplier.push_back(quantize_multiplier(acc_unit / static_cast<double>(out_q->scale)));
  }
  return p;
}
}  // namespace detail

/// An int8 linear layer: uint8 [m, in] -> uint8 [m, out], or float [m, out] (logits) when
/// the trained layer had no output quantizer.
class Int8Linear {
 public:
  explicit Int8Linear(detail::Int8LayerParams p, std::int64_t in_features)
      : p_(std::move(p)),
        packed_(p_.weight.data(), static_cast<std::int64_t>(p_.bias.size()), in_features,
                in_features) {}

  std::int64_t in_features() const noexcept { return packed_.k(); }
  std::int64_t out_features() const noexcept { return packed_.n(); }
  const ActQParams& input_qparams() const noexcept { return p_.in; }
  const ActQParams& output_qparams() const noexcept { return p_.out; }
  bool float_output() const noexcept { return p_.float_out; }
  const detail::Int8LayerParams& params() const noexcept { return p_; }

  /// uint8 output (the layer had an output quantizer).
  void run(const std::uint8_t* x, std::int64_t m, std::uint8_t* y) const {
    FQ_CHECK(!p_.float_out, ErrorCode::kInvalidArgument,
             "Int8Linear::run: this layer has a float output; pass a float*");
    linear_u8(x, m, in_features(), p_.in.zero_point, packed_, p_.requant(), y, out_features());
  }
  /// Float output: y = s_x·s_w[o]·Σ(x_q − z_x)·q_w + b[o] (the float bias, not rounded).
  void run(const std::uint8_t* x, std::int64_t m, float* y) const {
    FQ_CHECK(p_.float_out, ErrorCode::kInvalidArgument,
             "Int8Linear::run: this layer has a uint8 output; pass a std::uint8_t*");
    acc_.resize(static_cast<std::size_t>(m * out_features()));
    gemm_u8s8s32(x, m, in_features(), packed_, acc_.data(), out_features(), p_.in.zero_point);
    for (std::int64_t i = 0; i < m; ++i)
      for (std::int64_t o = 0; o < out_features(); ++o) {
        const auto oi = static_cast<std::size_t>(o);
        y[i * out_features() + o] =
            p_.in.scale * p_.weight_scale[oi] *
                static_cast<float>(acc_[static_cast<std::size_t>(i * out_features() + o)]) +
            p_.real_bias[oi];
      }
  }

 private:
  detail::Int8LayerParams p_;
  PackedWeights packed_;
  mutable std::vector<std::int32_t> acc_;
};

/// An int8 convolution: uint8 NCHW [n, C, H, W] -> uint8 NCHW [n, O, OH, OW].
class Int8Conv2d {
 public:
  Int8Conv2d(detail::Int8LayerParams p, const Conv2dShape& one_image)
      : p_(std::move(p)), packed_(p_.weight.data(), one_image) {}

  const Conv2dShape& shape() const noexcept { return packed_.shape(); }
  const ActQParams& input_qparams() const noexcept { return p_.in; }
  const ActQParams& output_qparams() const noexcept { return p_.out; }
  std::int64_t in_numel() const noexcept {
    return shape().in_channels * shape().in_h * shape().in_w;
  }
  std::int64_t out_numel() const noexcept {
    return shape().out_channels * shape().out_h() * shape().out_w();
  }
  const detail::Int8LayerParams& params() const noexcept { return p_; }

  void run(const std::uint8_t* x, std::int64_t n, std::uint8_t* y) const {
    const RequantParams rp = p_.requant();
    for (std::int64_t i = 0; i < n; ++i)  // the packed shape is one image
      conv2d_u8(x + i * in_numel(), p_.in.zero_point, packed_, rp, y + i * out_numel());
  }

 private:
  detail::Int8LayerParams p_;
  PackedConv2dWeights packed_;
};

namespace detail {
inline Conv2dShape conv_shape(const Shape& w, const ops::Conv2dOptions& o, std::int64_t in_h,
                              std::int64_t in_w) {
  Conv2dShape s;
  s.batch = 1;
  s.in_channels = w[1] * o.groups;
  s.in_h = in_h;
  s.in_w = in_w;
  s.out_channels = w[0];
  s.kernel_h = w[2];
  s.kernel_w = w[3];
  s.stride_h = o.stride_h;
  s.stride_w = o.stride_w;
  s.pad_h = o.pad_h;
  s.pad_w = o.pad_w;
  s.groups = o.groups;
  return s;
}
template <class AQ>
const ActQParams* output_qparams(const AQ& aq, ActQParams& storage) {
  if constexpr (std::is_same<AQ, NoFakeQuant>::value) {
    return nullptr;
  } else {
    storage = act_qparams(aq);
    return &storage;
  }
}
}  // namespace detail

/// QLinear -> Int8Linear; `in` are the qparams of the layer's input activations. A fused
/// ReLU6 is not supported (the integer epilogue clamps at the output range only).
template <class WQ, class AQ>
Int8Linear convert(QLinear<WQ, AQ>& l, ActQParams in) {
  FQ_CHECK(l.activation() != Activation::kReLU6, ErrorCode::kInvalidArgument,
           "convert(QLinear): a fused ReLU6 has no integer epilogue here");
  const Shape& ws = l.weight().shape();
  std::vector<float> bias =
      l.has_bias() ? l.bias().value() : std::vector<float>(static_cast<std::size_t>(ws[0]), 0.0f);
  ActQParams oq;
  const ActQParams* out = detail::output_qparams(l.output_quantizer(), oq);
  FQ_CHECK(out != nullptr || l.activation() == Activation::kNone, ErrorCode::kInvalidArgument,
           "convert(QLinear): a float-output layer cannot have a fused activation");
  return Int8Linear(
      detail::make_int8_params(l.weight().value(), ws[0], ws[1], bias, l.weight_quantizer(), in,
                               out, l.activation() == Activation::kReLU, "convert(QLinear)"),
      ws[1]);
}

namespace detail {
/// The int8 convolution of a QConv2d or QConvBn2d layer from its effective weights and bias.
template <class Layer>
Int8Conv2d make_int8_conv(Layer& l, const std::vector<float>& w_eff, const std::vector<float>& bias,
                          ActQParams in, std::int64_t in_h, std::int64_t in_w, const char* where) {
  static_assert(
      !std::is_same<std::decay_t<decltype(l.output_quantizer())>, NoFakeQuant>::value,
      "convert: the integer convolution needs an output quantizer (not fq::NoFakeQuant).");
  FQ_CHECK(l.activation() != Activation::kReLU6, ErrorCode::kInvalidArgument,
           msg(where, ": a fused ReLU6 has no integer epilogue here"));
  const Shape& ws = l.weight().shape();
  ActQParams oq = act_qparams(l.output_quantizer());
  return Int8Conv2d(make_int8_params(w_eff, ws[0], ws.numel() / ws[0], bias, l.weight_quantizer(),
                                     in, &oq, l.activation() == Activation::kReLU, where),
                    conv_shape(ws, l.options(), in_h, in_w));
}
}  // namespace detail

/// QConvBn2d -> Int8Conv2d with batch norm folded by its running statistics (the layer's
/// evaluation forward); `in_h`, `in_w` are the input's spatial extents.
template <class WQ, class AQ>
Int8Conv2d convert(QConvBn2d<WQ, AQ>& l, ActQParams in, std::int64_t in_h, std::int64_t in_w) {
  // The evaluation forward's own float operations: f = bn_fold_factor, w·f = scale_channels,
  // β − μ·f as batch_norm computes its shift.
  Tape tape;
  NoGradGuard no_grad(tape);
  const Var f = ops::bn_fold_factor(tape, l.gamma().var(tape), l.running_var().data(), l.eps());
  const Var wf = ops::scale_channels(tape, l.weight().var(tape), f, 0);
  const std::vector<float> w_eff(wf.value(), wf.value() + wf.numel());
  std::vector<float> bias(static_cast<std::size_t>(f.numel()));
  for (std::size_t o = 0; o < bias.size(); ++o)
    bias[o] = l.beta().value()[o] - l.running_mean()[o] * f.value()[o];
  return detail::make_int8_conv(l, w_eff, bias, in, in_h, in_w, "convert(QConvBn2d)");
}

/// QConv2d -> Int8Conv2d.
template <class WQ, class AQ>
Int8Conv2d convert(QConv2d<WQ, AQ>& l, ActQParams in, std::int64_t in_h, std::int64_t in_w) {
  const std::vector<float> bias =
      l.has_bias() ? l.bias().value()
                   : std::vector<float>(static_cast<std::size_t>(l.weight().shape()[0]), 0.0f);
  return detail::make_int8_conv(l, l.weight().value(), bias, in, in_h, in_w, "convert(QConv2d)");
}

/// Max pooling on uint8 NCHW levels (no padding). Exact with respect to the simulation: a
/// per-tensor quantizer is monotone, so the max of levels is the level of the max.
inline void max_pool2d_u8(const std::uint8_t* x, std::int64_t nc, std::int64_t h, std::int64_t w,
                          std::int64_t k, std::int64_t s, std::uint8_t* y) {
  FQ_CHECK(k > 0 && s > 0 && k <= h && k <= w, ErrorCode::kInvalidArgument,
           "max_pool2d_u8: window and stride must be > 0 and fit the input");
  const std::int64_t oh = (h - k) / s + 1, ow = (w - k) / s + 1;
  for (std::int64_t c = 0; c < nc; ++c)
    for (std::int64_t i = 0; i < oh; ++i)
      for (std::int64_t j = 0; j < ow; ++j) {
        std::uint8_t m = 0;
        for (std::int64_t p = 0; p < k; ++p)
          for (std::int64_t q = 0; q < k; ++q) {
            const std::uint8_t v = x[(c * h + i * s + p) * w + j * s + q];
            m = v > m ? v : m;
          }
        y[(c * oh + i) * ow + j] = m;
      }
}

}  // namespace fq

#endif  // FQ_CONVERT_CONVERT_HPP_
