// SPDX-License-Identifier: MIT
// fakequant/layers/qconv2d.hpp: QConv2d, the QAT convolution —
//   y = Aq(act(conv2d(x, Wq(w)) + b)),  x [N, C, H, W],  w [O, C/groups, KH, KW]
// (ops::conv2d: stride, zero padding, groups) with the quantizer slots and the fused activation
// of layers/qlayer_base.hpp. In integer arithmetic (use_integer_arithmetic) it runs its cached
// Int8Conv2d (layers/integer_eval.hpp), the layer convert deploys, for the input's extents.
#ifndef FQ_LAYERS_QCONV2D_HPP_
#define FQ_LAYERS_QCONV2D_HPP_

#include <cstdint>  // int64_t, uint64_t
#include <random>   // mt19937

#include <fakequant/base/error.hpp>
#include <fakequant/int8/conv2d.hpp>
#include <fakequant/int8/params.hpp>
#include <fakequant/kernels/im2col.hpp>
#include <fakequant/layers/integer_eval.hpp>
#include <fakequant/layers/layer_state.hpp>
#include <fakequant/layers/qlayer_base.hpp>
#include <fakequant/layers/quantizer_slots.hpp>
#include <fakequant/ops/conv2d.hpp>
#include <fakequant/simd/arch.hpp>
#include <fakequant/tape/tape.hpp>

namespace fq {

namespace detail {
/// Refuses a convolution input that is not NCHW (rank 4), before its extents are read.
inline void check_conv_input_rank(const Var& x, const char* where) {
  FQ_CHECK(x.shape().rank == 4, ErrorCode::kShapeMismatch,
           msg(where, ": input shape ", x.shape().str(), " is not NCHW"));
}
}  // namespace detail

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

  /// Arch: the kernels' instruction set (fq::DefaultArch; simd/arch.hpp), passed to the fake
  /// quantizers and the integer kernels; call as forward(tape, x).
  template <class Arch = DefaultArch>
  Var forward(Tape& tape, const Var& x) {
    if constexpr (Base::kIntegerCapable)
      if (this->integer_in_) {
        constexpr const char* kWhere = "integer arithmetic (conv2d)";
        detail::check_integer_eval(x, kWhere);
        detail::check_conv_input_rank(x, kWhere);
        return detail::integer_forward<Arch>(tape, x, integer_layer<Arch>(x.size(2), x.size(3)));
      }
    const Var wq = this->template quantized<Arch>(tape, this->weight_.var(tape));
    return this->template finish<Arch>(tape,
                                       ops::conv2d<Arch>(tape, x, wq, this->bias_var(tape), opt_));
  }
  const ops::Conv2dOptions& options() const noexcept { return opt_; }
  /// The checkpoint state (base/state.hpp): weight, bias, quantizers; options must match.
  template <class V>
  void visit_state(V& v) {
    v.kind("qconv2d");
    detail::visit_conv_options(v, opt_);
    detail::visit_qlayer_state(v, *this);
    v.config("has_bias", this->has_bias_);
    if (this->has_bias_) v.child("bias", this->bias_);
  }
  /// The integer parameters convert deploys, for input qparams `in`.
  template <class Arch = DefaultArch>
  Int8LayerParams int8_params(ActQParams in) const {
    return this->template int8_params_from<Arch>(this->weight_.value().data(),
                                                 this->bias_or_zeros(), in, "convert(QConv2d)");
  }
  /// The shape of one image of this convolution on an in_h × in_w input.
  Conv2dShape conv_shape(std::int64_t in_h, std::int64_t in_w) const {
    return detail::conv_shape(this->weight_.shape(), opt_, in_h, in_w);
  }
  /// How many times integer arithmetic built its Int8Conv2d: once, then again only after a
  /// change of what it is built from or of the input's extents (layers/integer_eval.hpp).
  std::uint64_t integer_builds() const noexcept { return integer_.builds; }

 private:
  using Base = detail::QBiasedLayer<WeightQ, ActQ>;

  template <class Arch>
  const Int8Conv2d& integer_layer(std::int64_t in_h, std::int64_t in_w) {
    return integer_.get(
        [&](detail::SourceSnapshot& s) {
          this->add_integer_sources(s);
          s.add_value(in_h);
          s.add_value(in_w);
        },
        [&] { return Int8Conv2d(int8_params<Arch>(*this->integer_in_), conv_shape(in_h, in_w)); });
  }

  ops::Conv2dOptions opt_;
  detail::IntegerCache<Int8Conv2d> integer_;
};

}  // namespace fq

#endif  // FQ_LAYERS_QCONV2D_HPP_
