// SPDX-License-Identifier: MIT
// fakequant/layers/qconv_bn2d.hpp: QConvBn2d, a convolution followed by batch norm, trained
// with the folding of the deployed model (Jacob et al. 2018, Krishnamoorthi 2018 §3.2;
// PyTorch's _ConvBnNd._forward_approximate):
//   f = γ / √(running_var + ε);  z = conv(x, Wq(w·f)) / f;  y = Aq(act(BN(z)))
// BN uses batch statistics while training and the running ones once frozen (or in eval
// mode). With running statistics this is exactly conv(x, Wq(w·f)) + β − f·running_mean: the
// folded layer convert produces (int8_params). Construction also refuses an eps that is not
// finite and > 0 or a momentum outside [0, 1] (ErrorCode::kInvalidArgument).
// In integer arithmetic (use_integer_arithmetic; batch norm must use its running statistics:
// train(false) or freeze_bn_stats()) it runs its cached Int8Conv2d (layers/integer_eval.hpp).
#ifndef FQ_LAYERS_QCONV_BN2D_HPP_
#define FQ_LAYERS_QCONV_BN2D_HPP_

#include <cmath>    // isfinite, sqrt
#include <cstddef>  // size_t
#include <cstdint>  // int64_t, uint64_t
#include <limits>   // numeric_limits
#include <random>   // mt19937
#include <vector>   // vector

#include <fakequant/base/error.hpp>
#include <fakequant/base/state.hpp>
#include <fakequant/int8/conv2d.hpp>
#include <fakequant/int8/params.hpp>
#include <fakequant/kernels/im2col.hpp>
#include <fakequant/layers/integer_eval.hpp>
#include <fakequant/layers/layer_state.hpp>
#include <fakequant/layers/parameter.hpp>
#include <fakequant/layers/qconv2d.hpp>
#include <fakequant/layers/qlayer_base.hpp>
#include <fakequant/layers/quantizer_slots.hpp>
#include <fakequant/ops/batch_norm.hpp>
#include <fakequant/ops/conv2d.hpp>
#include <fakequant/ops/elementwise.hpp>
#include <fakequant/optim/param.hpp>
#include <fakequant/simd/arch.hpp>
#include <fakequant/tape/tape.hpp>

namespace fq {

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

  /// Arch: the kernels' instruction set (fq::DefaultArch; simd/arch.hpp), passed to the fake
  /// quantizers and the integer kernels; call as forward(tape, x).
  template <class Arch = DefaultArch>
  Var forward(Tape& tape, const Var& x) {
    if constexpr (Base::kIntegerCapable)
      if (this->integer_in_) {
        FQ_CHECK(!training_ || bn_frozen_, ErrorCode::kInvalidArgument,
                 "QConvBn2d: integer arithmetic folds batch norm with its running statistics; "
                 "call train(false) or freeze_bn_stats() first");
        constexpr const char* kWhere = "integer arithmetic (conv2d)";
        detail::check_integer_eval(x, kWhere);
        detail::check_conv_input_rank(x, kWhere);
        return detail::integer_forward<Arch>(tape, x, integer_layer<Arch>(x.size(2), x.size(3)));
      }
    const Var f = ops::bn_fold_factor(tape, gamma_.var(tape), running_var_.data(), bn_.eps);
    const Var w = ops::scale_channels(tape, this->weight_.var(tape), f, 0);
    // z = conv(x, Wq) / f in one pass over the conv's output (ops::conv2d_divided).
    const Var z =
        ops::conv2d_divided<Arch>(tape, x, this->template quantized<Arch>(tape, w), f, opt_);
    ops::BatchNormOptions o = bn_;
    o.training = training_ && !bn_frozen_;
    o.update_stats = o.training;
    const Var gamma = gamma_.var(tape), beta = beta_.var(tape);
    float* const rm = running_mean_.data();
    float* const rv = running_var_.data();
    if (this->act_ == Activation::kNone)
      return this->template finish<Arch>(tape,
                                         ops::batch_norm<Arch>(tape, z, gamma, beta, rm, rv, o));
    // The activation fused into batch norm (ops::batch_norm_relu: the same bits).
    const float hi =
        this->act_ == Activation::kReLU6 ? 6.0f : std::numeric_limits<float>::infinity();
    return this->template finish_activated<Arch>(
        tape, ops::batch_norm_relu<Arch>(tape, z, gamma, beta, rm, rv, o, hi));
  }

  /// Training mode (batch statistics unless frozen) or evaluation (running statistics).
  void train(bool on = true) noexcept { training_ = on; }
  /// Stops updating and using batch statistics (PyTorch's freeze_bn_stats).
  void freeze_bn_stats(bool on = true) noexcept { bn_frozen_ = on; }
  bool bn_stats_frozen() const noexcept { return bn_frozen_; }

  /// The checkpoint state (base/state.hpp): weight, γ, β, the running statistics (finite; the
  /// variance >= 0), the quantizers, the training and frozen flags; options, ε and the
  /// momentum must match.
  template <class V>
  void visit_state(V& v) {
    v.kind("qconv_bn2d");
    detail::visit_conv_options(v, opt_);
    v.config("bn_eps", bn_.eps);
    v.config("bn_momentum", bn_.momentum);
    detail::visit_qlayer_state(v, *this);
    v.child("gamma", gamma_);
    v.child("beta", beta_);
    v.state_span("running_mean", running_mean_.data(), running_mean_.size(), state_finite());
    v.state_span("running_var", running_var_.data(), running_var_.size(), state_non_negative());
    v.state("training", training_);
    v.state("bn_frozen", bn_frozen_);
  }
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
  /// its running statistics by the very float operations of the evaluation forward
  /// (ops::bn_fold_factor, ops::scale_channels), f = γ · (1 / √(running_var + ε)),
  /// w_eff = w·f and b = β − μ·f, so that the weight levels equal the simulated ones exactly.
  template <class Arch = DefaultArch>
  Int8LayerParams int8_params(ActQParams in) const {
    const std::size_t out = running_var_.size();
    const std::size_t per_channel = this->weight_.value().size() / out;
    std::vector<float> w_eff(this->weight_.value().size()), bias(out);
    for (std::size_t o = 0; o < out; ++o) {
      FQ_CHECK(running_var_[o] >= 0.0f, ErrorCode::kInvalidArgument,
               "convert(QConvBn2d): a running variance is negative");
      const float f = gamma_.value()[o] * (1.0f / std::sqrt(running_var_[o] + bn_.eps));
      for (std::size_t i = o * per_channel; i < (o + 1) * per_channel; ++i)
        w_eff[i] = this->weight_.value()[i] * f;
      bias[o] = beta_.value()[o] - running_mean_[o] * f;
    }
    return this->template int8_params_from<Arch>(w_eff.data(), bias, in, "convert(QConvBn2d)");
  }
  /// How many times integer arithmetic built its Int8Conv2d: once, then again only after a
  /// change of what it is built from — weight, γ, β, running statistics, ε, qparams — or of
  /// the input's extents (layers/integer_eval.hpp).
  std::uint64_t integer_builds() const noexcept { return integer_.builds; }

 private:
  using Base = detail::QLayerBase<WeightQ, ActQ>;

  template <class Arch>
  const Int8Conv2d& integer_layer(std::int64_t in_h, std::int64_t in_w) {
    return integer_.get(
        [&](detail::SourceSnapshot& s) {
          s.add(this->weight_.value());
          s.add(gamma_.value());
          s.add(beta_.value());
          s.add(running_mean_);
          s.add(running_var_);
          s.add_value(bn_.eps);
          this->add_quantizer_sources(s);
          s.add_value(in_h);
          s.add_value(in_w);
        },
        [&] { return Int8Conv2d(int8_params<Arch>(*this->integer_in_), conv_shape(in_h, in_w)); });
  }

  Parameter gamma_, beta_;
  std::vector<float> running_mean_, running_var_;
  ops::Conv2dOptions opt_;
  ops::BatchNormOptions bn_;
  bool training_ = true;
  bool bn_frozen_ = false;
  detail::IntegerCache<Int8Conv2d> integer_;
};

}  // namespace fq

#endif  // FQ_LAYERS_QCONV_BN2D_HPP_
