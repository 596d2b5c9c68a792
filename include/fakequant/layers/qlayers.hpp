// SPDX-License-Identifier: MIT
// fakequant/layers/qlayers.hpp: QAT layers whose quantizers are template parameters —
// QLinear, QConv2d and QConvBn2d (batch-norm folding) — and ActQuant for a network's input.
//
// Each layer computes   y = Aq( act( op(x, Wq(w)) + b ) )   where Wq fake-quantizes the
// weights (per output channel: axis 0), act is an optional fused ReLU/ReLU6 and Aq
// fake-quantizes the output activation (NoFakeQuant for none). Wq and Aq are any fake-quant
// node types (ops/fake_quant.hpp), usually fq::FakeQuantize<Scheme, Observer>, whose
// observer/fake-quant switches (and a QAT schedule) decide what they do on a step, or
// learnable quantizers (fq::LearnableFakeQuant: LSQ), whose scale and zero point then join
// the layer's parameters().
//
// QConvBn2d simulates the folded convolution of the deployed model during training (Jacob et
// al. 2018, Krishnamoorthi 2018 §3.2; PyTorch's _ConvBnNd._forward_approximate):
//   f = γ / √(running_var + ε);  z = conv(x, Wq(w·f)) / f (+ b);  y = BN(z)
// BN uses batch statistics while training and the running ones once frozen (or in eval
// mode). With running statistics this is exactly conv(x, Wq(w·f)) + β − f·(running_mean − b):
// the folded layer convert produces.
//
// Construction refuses what no layer can compute (ErrorCode::kInvalidArgument, naming the
// layer and the values): features, channels or kernel size <= 0, stride or groups <= 0,
// negative padding, channels not divisible by the groups, and for QConvBn2d an eps that is not
// finite and > 0 or a momentum outside [0, 1]. (The PyTorch init U(±1/√fan_in) would
// otherwise divide by zero.)
//
// Integer arithmetic: after use_integer_arithmetic(in) a layer evaluates with the deployed
// integer model's arithmetic (layers/integer_eval.hpp), its outputs bit for bit those of the
// layer convert produces; int8_params(in) gives the integer parameters themselves.
#ifndef FQ_LAYERS_QLAYERS_HPP_
#define FQ_LAYERS_QLAYERS_HPP_

#include <cmath>        // isfinite
#include <cstdint>      // int64_t
#include <optional>     // optional
#include <random>       // mt19937
#include <type_traits>  // is_same, void_t
#include <utility>      // declval
#include <vector>       // vector

#include <fakequant/int8/params.hpp>
#include <fakequant/observer/fake_quantize_module.hpp>
#include <fakequant/kernels/im2col.hpp>
#include <fakequant/layers/integer_eval.hpp>
#include <fakequant/layers/parameter.hpp>
#include <fakequant/ops/batch_norm.hpp>
#include <fakequant/ops/conv2d.hpp>
#include <fakequant/ops/elementwise.hpp>
#include <fakequant/ops/fake_quant.hpp>
#include <fakequant/ops/linear.hpp>
#include <fakequant/scheme/presets.hpp>

namespace fq {

/// No fake quantization at this point (an identity quantizer slot).
struct NoFakeQuant {};

/// Default quantizers: int8 per-channel symmetric weights with a min-max observer, and uint8
/// per-tensor affine activations with a moving-average observer. PyTorch's QAT qconfig also
/// gives the weights a moving-average observer; its range then trails a growing weight, whose
/// STE gradient is masked once it leaves the range, so the largest weights can grow only as
/// fast as the average follows. A min-max observer keeps every weight inside its range.
using DefaultWeightFakeQuant =
    FakeQuantize<Int8WeightPerChannelSymmetric, PerChannelMinMaxObserver>;
using DefaultActFakeQuant = FakeQuantize<Uint8ActPerTensorAffine, MovingAverageMinMaxObserver>;

namespace detail {
/// Quantizers that are tape nodes themselves (learnable ones: LearnableFakeQuant) have
/// forward(Tape&, const Var&) and parameters().
template <class Q, class = void>
struct is_tape_quantizer : std::false_type {};
template <class Q>
struct is_tape_quantizer<Q, std::void_t<decltype(std::declval<Q&>().parameters())>>
    : std::is_same<decltype(std::declval<Q&>().forward(std::declval<Tape&>(),
                                                       std::declval<const Var&>())),
                   Var> {};

/// Tape quantizers that can be sized before their first forward (LearnableFakeQuant).
template <class Q, class = void>
struct has_channel_count : std::false_type {};
template <class Q>
struct has_channel_count<
    Q, std::void_t<decltype(std::declval<Q&>().set_channel_count(std::int64_t{1})),
                   decltype(Q::kPerChannel), decltype(Q::kAxis)>> : std::true_type {};

template <class Q>
Var maybe_fake_quant(Tape& tape, const Var& x, Q& q) {
  if constexpr (std::is_same<Q, NoFakeQuant>::value) {
    return x;
  } else if constexpr (is_tape_quantizer<Q>::value) {
    return q.forward(tape, x);
  } else {
    return ops::fake_quant(tape, x, q);
  }
}
/// Appends a learnable quantizer's parameters (nothing for the others).
template <class Q>
void append_quantizer_parameters(Q& q, std::vector<optim::ParamRef>& out) {
  if constexpr (is_tape_quantizer<Q>::value)
    for (const optim::ParamRef& p : q.parameters()) out.push_back(p);
}
inline Var activate(Tape& tape, const Var& x, Activation a) {
  switch (a) {
    case Activation::kReLU:
      return ops::relu(tape, x);
    case Activation::kReLU6:
      return ops::relu6(tape, x);
    default:
      return x;
  }
}
template <class Q, class F>
void visit_quantizer(Q& q, F& f) {
  if constexpr (!std::is_same<Q, NoFakeQuant>::value) f(q);
}

/// Quantizers with fixed qparams (fq::FakeQuantize, fq::FakeQuantizer), as convert needs.
template <class Q>
struct is_fixed_fake_quant : std::false_type {};
template <class S, class O>
struct is_fixed_fake_quant<FakeQuantize<S, O>> : std::true_type {};
template <class S>
struct is_fixed_fake_quant<FakeQuantizer<S>> : std::true_type {};
template <class Q, bool = is_fixed_fake_quant<Q>::value>
struct scheme_of {
  using type = void;
};
template <class Q>
struct scheme_of<Q, true> {
  using type = typename std::decay_t<decltype(fake_quantizer_of(std::declval<const Q&>()))>::scheme;
};
/// A layer converts to the integer model (and evaluates in integer arithmetic) when its
/// weights are per-output-channel symmetric and its output is per-tensor or not quantized.
template <class S>
constexpr bool per_channel_axis0_symmetric() {
  if constexpr (std::is_void<S>::value) {
    return false;
  } else {
    return S::granularity::kPerChannel && S::granularity::kAxis == 0 && S::mapping::kSymmetric;
  }
}
template <class S>
constexpr bool per_tensor_scheme() {
  if constexpr (std::is_void<S>::value) {
    return false;
  } else {
    return !S::granularity::kPerChannel;
  }
}
template <class WeightQ, class ActQ>
constexpr bool integer_capable() {
  return per_channel_axis0_symmetric<typename scheme_of<WeightQ>::type>() &&
         (std::is_same<ActQ, NoFakeQuant>::value ||
          per_tensor_scheme<typename scheme_of<ActQ>::type>());
}

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
}  // namespace detail

/// Fake-quantizes a tensor (e.g. the network input, as PyTorch's QuantStub).
template <class Q = DefaultActFakeQuant>
class ActQuant {
 public:
  Var forward(Tape& tape, const Var& x) { return detail::maybe_fake_quant(tape, x, q_); }
  std::vector<optim::ParamRef> parameters() {
    std::vector<optim::ParamRef> p;
    detail::append_quantizer_parameters(q_, p);
    return p;
  }
  template <class F>
  void for_each_quantizer(F&& f) {
    f(q_);
  }
  Q& quantizer() noexcept { return q_; }

 private:
  Q q_;
};

namespace detail {
/// What every QAT layer has: a weight with its quantizer, an output quantizer and a fused
/// activation. forward = finish(op(x, quantized_weight())).
template <class WeightQ, class ActQ>
class QLayerBase {
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

  /// Whether the layer converts to the integer model (per-output-channel symmetric weights,
  /// a per-tensor output quantizer or none).
  static constexpr bool kIntegerCapable = integer_capable<WeightQ, ActQ>();
  /// Evaluates in integer arithmetic (file comment) with input qparams `in` from now on.
  void use_integer_arithmetic(ActQParams in) {
    static_assert(kIntegerCapable,
                  "use_integer_arithmetic: the layer needs fq::FakeQuantize quantizers with "
                  "per-output-channel symmetric weights and a per-tensor output.");
    integer_in_ = in;
  }
  /// Back to the float simulation.
  void use_float_arithmetic() noexcept { integer_in_.reset(); }
  bool uses_integer_arithmetic() const noexcept { return integer_in_.has_value(); }

 protected:
  /// The integer parameters for effective weights w_eff (shape of the weight) and bias.
  Int8LayerParams int8_params_from(const std::vector<float>& w_eff, const std::vector<float>& bias,
                                   ActQParams in, const char* where) const {
    static_assert(kIntegerCapable,
                  "convert: the layer needs fq::FakeQuantize quantizers with per-output-channel "
                  "symmetric weights and a per-tensor output quantizer (or fq::NoFakeQuant).");
    const Shape& ws = weight_.shape();
    if constexpr (std::is_same<ActQ, NoFakeQuant>::value)
      return make_int8_params(w_eff, ws[0], ws.numel() / ws[0], bias, wq_, in, nullptr, act_,
                              where);
    else
      return make_int8_params(w_eff, ws[0], ws.numel() / ws[0], bias, wq_, in, &aq_, act_, where);
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
  Var quantized(Tape& tape, const Var& w) { return maybe_fake_quant(tape, w, wq_); }
  Var finish(Tape& tape, const Var& y) {
    return maybe_fake_quant(tape, activate(tape, y, act_), aq_);
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
  std::vector<float> bias_or_zeros() const {
    return has_bias_ ? bias_.value()
                     : std::vector<float>(static_cast<std::size_t>(this->weight_.shape()[0]), 0.0f);
  }

  Parameter bias_;
  bool has_bias_;
};
}  // namespace detail

/// y = Aq(act(x · Wq(w)ᵀ + b)); x [N, in] -> y [N, out].
template <class WeightQ = DefaultWeightFakeQuant, class ActQ = DefaultActFakeQuant>
class QLinear : public detail::QBiasedLayer<WeightQ, ActQ> {
 public:
  QLinear(std::int64_t in, std::int64_t out, std::mt19937& rng, Activation act = Activation::kNone,
          bool bias = true)
      : detail::QBiasedLayer<WeightQ, ActQ>(detail::linear_weight_shape(in, out, "QLinear"),
                                            "linear.weight", "linear.bias", act, bias, rng) {}

  Var forward(Tape& tape, const Var& x) {
    if constexpr (Base::kIntegerCapable)
      if (this->integer_in_)
        return detail::integer_linear(tape, x, int8_params(*this->integer_in_));
    const Var wq = this->quantized(tape, this->weight_.var(tape));
    return this->finish(tape, ops::linear(tape, x, wq, this->bias_var(tape)));
  }
  /// The integer parameters convert deploys, for input qparams `in`.
  detail::Int8LayerParams int8_params(ActQParams in) const {
    return this->int8_params_from(this->weight_.value(), this->bias_or_zeros(), in,
                                  "convert(QLinear)");
  }

 private:
  using Base = detail::QBiasedLayer<WeightQ, ActQ>;
};

/// y = Aq(act(conv2d(x, Wq(w)) + b)); x [N, C, H, W], w [O, C/groups, KH, KW].
template <class WeightQ = DefaultWeightFakeQuant, class ActQ = DefaultActFakeQuant>
class QConv2d : public detail::QBiasedLayer<WeightQ, ActQ> {
 public:
  QConv2d(std::int64_t in_ch, std::int64_t out_ch, std::int64_t kernel, std::mt19937& rng,
          ops::Conv2dOptions opt = {}, Activation act = Activation::kNone, bool bias = true)
      : detail::QBiasedLayer<WeightQ, ActQ>(
            detail::conv_weight_shape(in_ch, out_ch, kernel, opt, "QConv2d"), "conv.weight",
            "conv.bias", act, bias, rng),
        opt_(opt) {}

  Var forward(Tape& tape, const Var& x) {
    if constexpr (Base::kIntegerCapable)
      if (this->integer_in_)
        return detail::integer_conv2d(tape, x, int8_params(*this->integer_in_),
                                      conv_shape(x.size(2), x.size(3)));
    const Var wq = this->quantized(tape, this->weight_.var(tape));
    return this->finish(tape, ops::conv2d(tape, x, wq, this->bias_var(tape), opt_));
  }
  const ops::Conv2dOptions& options() const noexcept { return opt_; }
  /// The integer parameters convert deploys, for input qparams `in`.
  detail::Int8LayerParams int8_params(ActQParams in) const {
    return this->int8_params_from(this->weight_.value(), this->bias_or_zeros(), in,
                                  "convert(QConv2d)");
  }
  /// The shape of one image of this convolution on an in_h × in_w input.
  Conv2dShape conv_shape(std::int64_t in_h, std::int64_t in_w) const {
    return detail::conv_shape(this->weight_.shape(), opt_, in_h, in_w);
  }

 private:
  using Base = detail::QBiasedLayer<WeightQ, ActQ>;
  ops::Conv2dOptions opt_;
};

/// Convolution + batch norm with QAT folding (file comment); conv without bias, as usual
/// before a batch norm.
template <class WeightQ = DefaultWeightFakeQuant, class ActQ = DefaultActFakeQuant>
class QConvBn2d : public detail::QLayerBase<WeightQ, ActQ> {
 public:
  QConvBn2d(std::int64_t in_ch, std::int64_t out_ch, std::int64_t kernel, std::mt19937& rng,
            ops::Conv2dOptions opt = {}, Activation act = Activation::kNone, float momentum = 0.1f,
            float eps = 1e-5f)
      : detail::QLayerBase<WeightQ, ActQ>(
            detail::conv_weight_shape(in_ch, out_ch, kernel, opt, "QConvBn2d"), "convbn.weight",
            act),
        gamma_({out_ch}, "convbn.gamma", false),
        beta_({out_ch}, "convbn.beta", false),
        running_mean_(static_cast<std::size_t>(out_ch), 0.0f),
        running_var_(static_cast<std::size_t>(out_ch), 1.0f),
        opt_(opt) {
    FQ_CHECK(std::isfinite(eps) && eps > 0.0f, ErrorCode::kInvalidArgument,
             detail::msg("QConvBn2d: eps must be finite and > 0, got ", eps));
    FQ_CHECK(momentum >= 0.0f && momentum <= 1.0f, ErrorCode::kInvalidArgument,
             detail::msg("QConvBn2d: momentum must be in [0, 1], got ", momentum));
    this->weight_.init_uniform(rng, in_ch / opt.groups * kernel * kernel);
    gamma_.fill(1.0f);
    bn_.momentum = momentum;
    bn_.eps = eps;
  }

  Var forward(Tape& tape, const Var& x) {
    if constexpr (Base::kIntegerCapable)
      if (this->integer_in_) {
        FQ_CHECK(!training_ || bn_frozen_, ErrorCode::kInvalidArgument,
                 "QConvBn2d: integer arithmetic folds batch norm with its running statistics; "
                 "call train(false) or freeze_bn_stats() first");
        return detail::integer_conv2d(tape, x, int8_params(*this->integer_in_),
                                      conv_shape(x.size(2), x.size(3)));
      }
    const Var f = ops::bn_fold_factor(tape, gamma_.var(tape), running_var_.data(), bn_.eps);
    const Var w = ops::scale_channels(tape, this->weight_.var(tape), f, 0);
    const Var conv = ops::conv2d(tape, x, this->quantized(tape, w), Var(), opt_);
    const Var z = ops::scale_channels(tape, conv, f, 1, /*divide=*/true);
    ops::BatchNormOptions o = bn_;
    o.training = training_ && !bn_frozen_;
    o.update_stats = o.training;
    return this->finish(tape, ops::batch_norm(tape, z, gamma_.var(tape), beta_.var(tape),
                                              running_mean_.data(), running_var_.data(), o));
  }

  /// Training mode (batch statistics unless frozen) or evaluation (running statistics).
  void train(bool on = true) noexcept { training_ = on; }
  /// Stops updating and using batch statistics (PyTorch's freeze_bn_stats).
  void freeze_bn_stats(bool on = true) noexcept { bn_frozen_ = on; }
  bool bn_stats_frozen() const noexcept { return bn_frozen_; }

  /// Weight, γ, β, then the learnable quantizers' parameters.
  std::vector<optim::ParamRef> parameters() {
    return this->with_quantizer_parameters({this->weight_.ref(), gamma_.ref(), beta_.ref()});
  }
  Parameter& gamma() noexcept { return gamma_; }
  Parameter& beta() noexcept { return beta_; }
  std::vector<float>& running_mean() noexcept { return running_mean_; }
  std::vector<float>& running_var() noexcept { return running_var_; }
  float eps() const noexcept { return bn_.eps; }
  const ops::Conv2dOptions& options() const noexcept { return opt_; }
  Conv2dShape conv_shape(std::int64_t in_h, std::int64_t in_w) const {
    return detail::conv_shape(this->weight_.shape(), opt_, in_h, in_w);
  }

  /// The integer parameters convert deploys, for input qparams `in`: batch norm folded with
  /// its running statistics by the very float operations of the evaluation forward,
  /// w_eff = w·f (scale_channels) and b = β − μ·f, f = bn_fold_factor, so that the weight
  /// levels equal the simulated ones exactly.
  detail::Int8LayerParams int8_params(ActQParams in) const {
    Tape tape;
    NoGradGuard no_grad(tape);
    const Var gamma = tape.constant(gamma_.value().data(), gamma_.shape());
    const Var w = tape.constant(this->weight_.value().data(), this->weight_.shape());
    const Var f = ops::bn_fold_factor(tape, gamma, running_var_.data(), bn_.eps);
    const Var wf = ops::scale_channels(tape, w, f, 0);
    const std::vector<float> w_eff(wf.value(), wf.value() + wf.numel());
    std::vector<float> bias(static_cast<std::size_t>(f.numel()));
    for (std::size_t o = 0; o < bias.size(); ++o)
      bias[o] = beta_.value()[o] - running_mean_[o] * f.value()[o];
    return this->int8_params_from(w_eff, bias, in, "convert(QConvBn2d)");
  }

 private:
  using Base = detail::QLayerBase<WeightQ, ActQ>;
  Parameter gamma_, beta_;
  std::vector<float> running_mean_, running_var_;
  ops::Conv2dOptions opt_;
  ops::BatchNormOptions bn_;
  bool training_ = true;
  bool bn_frozen_ = false;
};

/// The parameters of several layers, in order (for an optimizer).
template <class... Layers>
std::vector<optim::ParamRef> parameters_of(Layers&... layers) {
  std::vector<optim::ParamRef> all;
  auto append = [&all](auto& layer) {
    for (const optim::ParamRef& p : layer.parameters()) all.push_back(p);
  };
  (append(layers), ...);
  return all;
}

/// Calls f(q) for every quantizer of several layers, in order (switches, schedules).
template <class F, class... Layers>
void for_each_quantizer_of(F&& f, Layers&... layers) {
  (layers.for_each_quantizer(f), ...);
}

}  // namespace fq

#endif  // FQ_LAYERS_QLAYERS_HPP_
