// SPDX-License-Identifier: MIT
// fakequant/layers/qlayer_base.hpp: what the QAT layers (QLinear, QConv2d, QConvBn2d) share —
// a weight with its quantizer, an output quantizer, a fused activation, an optional bias, the
// switch to integer arithmetic, and the checks of their constructor arguments.
//
// Each layer computes   y = Aq( act( op(x, Wq(w)) + b ) )   where Wq fake-quantizes the
// weights (per output channel: axis 0), act is an optional fused ReLU/ReLU6 and Aq
// fake-quantizes the output activation (NoFakeQuant for none); see layers/quantizer_slots.hpp.
// Construction refuses what no layer can compute (ErrorCode::kInvalidArgument, naming the
// layer and the values): features, channels or kernel size <= 0, stride or groups <= 0,
// negative padding, channels not divisible by the groups. (The PyTorch init U(±1/√fan_in)
// would otherwise divide by zero.)
// Integer arithmetic: after use_integer_arithmetic(in) a layer evaluates with the deployed
// integer layer itself (layers/integer_eval.hpp), built once from its current parameters and
// rebuilt whenever one of them changes; int8_params(in) gives the integer parameters.
#ifndef FQ_LAYERS_QLAYER_BASE_HPP_
#define FQ_LAYERS_QLAYER_BASE_HPP_

#include <cstdint>      // int32_t, int64_t
#include <optional>     // optional
#include <random>       // mt19937
#include <type_traits>  // is_same
#include <vector>       // vector

#include <fakequant/base/error.hpp>
#include <fakequant/int8/params.hpp>
#include <fakequant/kernels/im2col.hpp>
#include <fakequant/layers/parameter.hpp>
#include <fakequant/layers/quantizer_slots.hpp>
#include <fakequant/ops/conv2d.hpp>
#include <fakequant/optim/param.hpp>
#include <fakequant/tape/tape.hpp>

namespace fq {
namespace detail {

/// The weight shape [out, in] of a linear layer, checked (file comment).
inline Shape linear_weight_shape(std::int64_t in, std::int64_t out, const char* where) {
  FQ_CHECK(in > 0 && out > 0, ErrorCode::kInvalidArgument,
           msg(where, ": in_features and out_features must be > 0, got ", in, " and ", out));
  return {out, in};
}

/// The weight shape [out, in / groups, kernel, kernel] of a convolution, checked (file comment).
inline Shape conv_weight_shape(std::int64_t in, std::int64_t out, std::int64_t kernel,
                               const ops::Conv2dOptions& o, const char* where) {
  FQ_CHECK(in > 0 && out > 0 && kernel > 0, ErrorCode::kInvalidArgument,
           msg(where, ": in_channels, out_channels and kernel size must be > 0, got ", in, ", ",
               out, " and ", kernel));
  FQ_CHECK(o.stride_h > 0 && o.stride_w > 0 && o.pad_h >= 0 && o.pad_w >= 0 && o.groups > 0,
           ErrorCode::kInvalidArgument,
           msg(where, ": strides and groups must be > 0 and padding >= 0, got stride [", o.stride_h,
               ", ", o.stride_w, "], padding [", o.pad_h, ", ", o.pad_w, "], groups ", o.groups));
  FQ_CHECK(in % o.groups == 0 && out % o.groups == 0, ErrorCode::kInvalidArgument,
           msg(where, ": groups = ", o.groups, " must divide in_channels = ", in,
               " and out_channels = ", out));
  return {out, in / o.groups, kernel, kernel};
}

/// The Conv2dShape of one image of a convolution with weights of shape w.
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
/// Adds a quantizer's deployed scales, zero points and range to a snapshot (a learned one's as
/// fq::freeze gives them: a changed learned scale rebuilds the integer layer).
template <class S, class Q>
void add_qparams_sources(S& s, const Q& q) {
  const auto& fqz = deployed_quantizer(q);
  s.add(fqz.scale());
  s.add(fqz.zero_point());
  s.add_value(fqz.range().quant_min);
  s.add_value(fqz.range().quant_max);
  s.add_value(fqz.has_qparams());
}

/// What every QAT layer has: a weight with its quantizer, an output quantizer and a fused
/// activation. forward = finish(op(x, quantized_weight())).
template <class WeightQ, class ActQ>
class QLayerBase {
  static_assert(check_quantizer_slot<WeightQ>() && check_quantizer_slot<ActQ>(),
                "QAT layer: a quantizer slot holds fq::NoFakeQuant or a quantizer of the "
                "protocol (quantizer/concept.hpp).");

 public:
  template <class F>
  void for_each_quantizer(F&& f) {
    visit_quantizer(wq_, f);
    visit_quantizer(aq_, f);
  }
  Parameter& weight() noexcept { return weight_; }
  const Parameter& weight() const noexcept { return weight_; }
  Activation activation() const noexcept { return act_; }
  WeightQ& weight_quantizer() noexcept { return wq_; }
  const WeightQ& weight_quantizer() const noexcept { return wq_; }
  ActQ& output_quantizer() noexcept { return aq_; }
  const ActQ& output_quantizer() const noexcept { return aq_; }

  /// Whether the layer converts to the integer model (symmetric weights per output channel or
  /// per tensor, a per-tensor output quantizer or none; fixed, LSQ or PACT quantizers).
  static constexpr bool kIntegerCapable = integer_capable<WeightQ, ActQ>();
  /// Evaluates in integer arithmetic (file comment) with input qparams `in` from now on.
  void use_integer_arithmetic(ActQParams in) {
    static_assert(kIntegerCapable,
                  "use_integer_arithmetic: the layer needs fixed (fq::FakeQuantize) or learned "
                  "(LSQ, PACT) quantizers with symmetric weights per output channel or per tensor "
                  "and a per-tensor output.");
    integer_in_ = in;
  }
  /// Back to the float simulation.
  void use_float_arithmetic() noexcept { integer_in_.reset(); }
  bool uses_integer_arithmetic() const noexcept { return integer_in_.has_value(); }

 protected:
  /// Adds what every integer layer is built from besides the layer's own tensors (see
  /// layers/integer_eval.hpp): the input qparams and the quantizers' qparams and ranges.
  template <class S>
  void add_quantizer_sources(S& s) const {
    s.add_value(integer_in_ ? integer_in_->scale : 0.0f);
    s.add_value(integer_in_ ? integer_in_->zero_point : std::int32_t{0});
    add_qparams_sources(s, wq_);
    if constexpr (!std::is_same<ActQ, NoFakeQuant>::value) add_qparams_sources(s, aq_);
  }
  /// The integer parameters for effective weights w_eff (shape of the weight) and bias.
  template <class Arch>
  Int8LayerParams int8_params_from(const float* w_eff, const std::vector<float>& bias,
                                   ActQParams in, const char* where) const {
    static_assert(kIntegerCapable,
                  "convert: the layer needs fixed (fq::FakeQuantize) or learned (LSQ, PACT) "
                  "quantizers with symmetric weights per output channel or per tensor and a "
                  "per-tensor output quantizer (or fq::NoFakeQuant).");
    const Shape& ws = weight_.shape();
    if constexpr (std::is_same<ActQ, NoFakeQuant>::value)
      return make_int8_params<Arch>(w_eff, ws[0], ws.numel() / ws[0], bias, wq_, in, nullptr, act_,
                                    where);
    else
      return make_int8_params<Arch>(w_eff, ws[0], ws.numel() / ws[0], bias, wq_, in, &aq_, act_,
                                    where);
  }
  /// `own` followed by the learnable quantizers' parameters.
  std::vector<optim::ParamRef> with_quantizer_parameters(std::vector<optim::ParamRef> own) {
    append_quantizer_parameters(wq_, own);
    append_quantizer_parameters(aq_, own);
    return own;
  }
  QLayerBase(Shape weight_shape, const char* name, Activation act)
      : weight_(weight_shape, name), act_(act) {
    size_weight_quantizer(weight_shape);
  }
  /// A per-channel learnable weight quantizer is sized now, from the weight's shape, so that
  /// parameters() (and an optimizer built from it) is valid before the first forward.
  void size_weight_quantizer(const Shape& ws) {
    if constexpr (has_channel_count<WeightQ>::value) {
      if constexpr (WeightQ::kPerChannel) {
        const int axis = WeightQ::kAxis < 0 ? WeightQ::kAxis + ws.rank : WeightQ::kAxis;
        FQ_CHECK(axis >= 0 && axis < ws.rank, ErrorCode::kInvalidAxis,
                 detail::msg("QAT layer: the weight quantizer's channel axis ", WeightQ::kAxis,
                             " does not exist in the weight shape ", ws.str()));
        wq_.set_channel_count(ws[axis]);
      }
    }
  }
  template <class Arch>
  Var quantized(Tape& tape, const Var& w) {
    // The weight is the same on every rank: its statistics are not reduced (data parallel,
    // base/communicator.hpp).
    ReplicatedStats replicated;
    return maybe_fake_quant<Arch>(tape, w, wq_);
  }
  template <class Arch>
  Var finish(Tape& tape, const Var& y) {
    return finish_activated<Arch>(tape, activate(tape, y, act_));
  }
  /// finish for an op that applied the activation itself (a fused op).
  template <class Arch>
  Var finish_activated(Tape& tape, const Var& y) {
    return maybe_fake_quant<Arch>(tape, y, aq_);
  }

  Parameter weight_;
  WeightQ wq_{};
  ActQ aq_{};
  Activation act_;
  std::optional<ActQParams> integer_in_;
};

/// A QAT layer with an optional bias (linear, conv).
template <class WeightQ, class ActQ>
class QBiasedLayer : public QLayerBase<WeightQ, ActQ> {
 public:
  /// Weight, bias (if any), then the learnable quantizers' parameters.
  std::vector<optim::ParamRef> parameters() {
    if (has_bias_) return this->with_quantizer_parameters({this->weight_.ref(), bias_.ref()});
    return this->with_quantizer_parameters({this->weight_.ref()});
  }
  Parameter& bias() noexcept { return bias_; }
  bool has_bias() const noexcept { return has_bias_; }

 protected:
  /// PyTorch's default init of weight and bias: U(−1/√fan_in, 1/√fan_in), fan_in = the
  /// weight's elements per output channel (taken from the checked shape: the layers' own
  /// arguments may be invalid until the shape helper has refused them).
  QBiasedLayer(Shape weight_shape, const char* weight_name, const char* bias_name, Activation act,
               bool bias, std::mt19937& rng)
      : QLayerBase<WeightQ, ActQ>(weight_shape, weight_name, act),
        bias_({weight_shape[0]}, bias_name, false),
        has_bias_(bias) {
    const std::int64_t fan_in = weight_shape.numel() / weight_shape[0];
    this->weight_.init_uniform(rng, fan_in);
    if (bias) bias_.init_uniform(rng, fan_in);
  }
  Var bias_var(Tape& tape) { return has_bias_ ? bias_.var(tape) : Var(); }
  /// What the integer layer of a linear or conv layer is built from (layers/integer_eval.hpp).
  template <class S>
  void add_integer_sources(S& s) const {
    s.add(this->weight_.value());
    s.add_value(has_bias_);
    if (has_bias_) s.add(bias_.value());
    this->add_quantizer_sources(s);
  }
  std::vector<float> bias_or_zeros() const {
    return has_bias_ ? std::vector<float>(bias_.value().begin(), bias_.value().end())
                     : std::vector<float>(static_cast<std::size_t>(this->weight_.shape()[0]), 0.0f);
  }

  Parameter bias_;
  bool has_bias_;
};
}  // namespace detail
}  // namespace fq

#endif  // FQ_LAYERS_QLAYER_BASE_HPP_
