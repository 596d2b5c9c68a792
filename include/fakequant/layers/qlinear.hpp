// SPDX-License-Identifier: MIT
// fakequant/layers/qlinear.hpp: QLinear, the QAT linear layer —
//   y = Aq(act(Iq(x) · Wq(w)ᵀ + b)),  x [..., in] -> y [..., out],  w [out, in]
// with the quantizer slots and the fused activation of layers/qlayer_base.hpp, and an input
// quantizer Iq (NoFakeQuant by default): the transformer convention, where every matmul's
// inputs are fake-quantized (TorchAO's 8da4w: per-token activations, group-wise weights), while
// the CNN convention quantizes each layer's output. The leading dims of x ([B, T, in] for
// tokens) are rows of one GEMM. In integer arithmetic (use_integer_arithmetic) it runs its
// cached Int8Linear (layers/integer_eval.hpp), the layer convert deploys: bit for bit the
// deployed outputs. A layer with an input quantizer deploys instead as an Int8FloatLinear
// (int8/float_linear.hpp: float in, its input quantized inside, float out), and evaluates on
// it after use_int8_kernels().
#ifndef FQ_LAYERS_QLINEAR_HPP_
#define FQ_LAYERS_QLINEAR_HPP_

#include <cstddef>      // size_t
#include <cstdint>      // int64_t, uint64_t
#include <optional>     // optional
#include <random>       // mt19937
#include <type_traits>  // is_same
#include <vector>       // vector

#include <fakequant/int8/float_linear.hpp>
#include <fakequant/int8/linear.hpp>
#include <fakequant/int8/params.hpp>
#include <fakequant/layers/integer_eval.hpp>
#include <fakequant/layers/layer_state.hpp>
#include <fakequant/layers/qlayer_base.hpp>
#include <fakequant/layers/quantizer_slots.hpp>
#include <fakequant/ops/linear.hpp>
#include <fakequant/simd/arch.hpp>
#include <fakequant/tape/tape.hpp>

namespace fq {

/// y = Aq(act(Iq(x) · Wq(w)ᵀ + b)); x [..., in] -> y [..., out].
template <class WeightQ = DefaultWeightFakeQuant, class ActQ = DefaultActFakeQuant,
          class InputQ = NoFakeQuant>
class QLinear : public detail::QBiasedLayer<WeightQ, ActQ> {
  static_assert(detail::check_quantizer_slot<InputQ>(),
                "QLinear: the input quantizer slot holds fq::NoFakeQuant or a quantizer of the "
                "protocol (quantizer/concept.hpp).");
  static constexpr bool kHasInputQ = !std::is_same<InputQ, NoFakeQuant>::value;
  using Base = detail::QBiasedLayer<WeightQ, ActQ>;

 public:
  QLinear(std::int64_t in, std::int64_t out, std::mt19937& rng, Activation act = Activation::kNone,
          bool bias = true)
      : detail::QBiasedLayer<WeightQ, ActQ>(detail::linear_weight_shape(in, out, "QLinear"),
                                            "linear.weight", "linear.bias", act, bias, rng) {}

  /// Arch: the kernels' instruction set (fq::DefaultArch; simd/arch.hpp), passed to the fake
  /// quantizers and the integer kernels; call as forward(tape, x).
  template <class Arch = DefaultArch>
  Var forward(Tape& tape, const Var& x) {
    if constexpr (kIntegerCapable)
      if (this->integer_in_) {
        detail::check_integer_eval(x, "integer arithmetic (linear)");
        return detail::integer_forward<Arch>(tape, x, integer_layer<Arch>());
      }
    if constexpr (kHasInputQ)
      if (int8_kernels_) return this->template finish<Arch>(tape, int8_forward<Arch>(tape, x));
    const Var xq = detail::maybe_fake_quant<Arch>(tape, x, iq_);
    const Var wq = this->template quantized<Arch>(tape, this->weight_.var(tape));
    return this->template finish<Arch>(tape, ops::linear<Arch>(tape, xq, wq, this->bias_var(tape)));
  }
  /// Whether the layer converts to the integer model (the base's rule, and no input quantizer).
  static constexpr bool kIntegerCapable = Base::kIntegerCapable && !kHasInputQ;
  /// Evaluates in integer arithmetic with input qparams `in` (layers/qlayer_base.hpp).
  void use_integer_arithmetic(ActQParams in) {
    static_assert(!kHasInputQ,
                  "QLinear::use_integer_arithmetic: a layer with an input quantizer deploys as an "
                  "fq::Int8FloatLinear (int8/float_linear.hpp), not as an Int8Linear.");
    Base::use_integer_arithmetic(in);
  }
  /// Back to the float simulation (from integer arithmetic or the int8 kernels).
  void use_float_arithmetic() noexcept {
    Base::use_float_arithmetic();
    int8_kernels_.reset();
  }
  /// The deployed layer of a layer with an input quantizer: float in, float out on the int8
  /// kernels, the input quantized as its quantizer does (int8/float_linear.hpp); built from the
  /// current weights, bias and quantizers (which must have qparams or be dynamic per token).
  template <class Arch = DefaultArch>
  Int8FloatLinear int8_float_linear() const {
    static_assert(kHasInputQ,
                  "QLinear::int8_float_linear: the layer needs an input quantizer (its third "
                  "template argument); a layer without one converts to an Int8Linear.");
    const Shape& ws = this->weight_.shape();
    return Int8FloatLinear::from_quantizers<Arch>(iq_, this->weight_.value(), ws[0], ws[1],
                                                  this->wq_, this->bias_or_zeros());
  }
  /// Evaluates (without gradients) on the int8 kernels from now on: int8_float_linear() built
  /// now — call again after the weights or qparams change — until use_float_arithmetic().
  template <class Arch = DefaultArch>
  void use_int8_kernels() {
    int8_kernels_.emplace(int8_float_linear<Arch>());
  }
  bool uses_int8_kernels() const noexcept { return int8_kernels_.has_value(); }
  InputQ& input_quantizer() noexcept { return iq_; }
  const InputQ& input_quantizer() const noexcept { return iq_; }
  /// Every quantizer slot in forward order: input, weight, output.
  template <class F>
  void for_each_quantizer(F&& f) {
    detail::visit_quantizer(iq_, f);
    Base::for_each_quantizer(f);
  }
  /// The checkpoint state (base/state.hpp): weight, bias, the three quantizer slots.
  template <class V>
  void visit_state(V& v) {
    v.kind("qlinear");
    detail::visit_qlayer_state(v, *this);
    v.config("has_bias", this->has_bias_);
    if (this->has_bias_) v.child("bias", this->bias_);
    detail::visit_slot_state(v, "input_quantizer", iq_);
  }
  /// Weight, bias (if any), then the learnable quantizers' parameters (input's last).
  std::vector<optim::ParamRef> parameters() {
    std::vector<optim::ParamRef> p = Base::parameters();
    detail::append_quantizer_parameters(iq_, p);
    return p;
  }
  /// The integer parameters convert deploys, for input qparams `in` (Arch: as forward).
  template <class Arch = DefaultArch>
  Int8LayerParams int8_params(ActQParams in) const {
    static_assert(!kHasInputQ,
                  "QLinear::int8_params: a layer with an input quantizer deploys as an "
                  "fq::Int8FloatLinear (int8/float_linear.hpp), not through convert.");
    return this->template int8_params_from<Arch>(this->weight_.value().data(),
                                                 this->bias_or_zeros(), in, "convert(QLinear)");
  }
  /// How many times integer arithmetic built its Int8Linear: once, then again only after a
  /// change of what it is built from (layers/integer_eval.hpp).
  std::uint64_t integer_builds() const noexcept { return integer_.builds; }

 private:
  template <class Arch>
  Var int8_forward(Tape& tape, const Var& x) {
    detail::check_integer_eval(x, "QLinear on the int8 kernels");
    const std::int64_t in = this->weight_.shape()[1];
    FQ_CHECK(x.shape().rank >= 2 && x.size(x.shape().rank - 1) == in, ErrorCode::kShapeMismatch,
             detail::msg("QLinear on the int8 kernels: x ", x.shape().str(), " must be [..., ", in,
                         "]"));
    Shape s = x.shape();
    s.dims[static_cast<std::size_t>(s.rank - 1)] = this->weight_.shape()[0];
    Var y = tape.variable(s, false);
    int8_kernels_->template forward<Arch>(x.value(), x.numel() / in, y.value());
    return y;
  }

  template <class Arch>
  const Int8Linear& integer_layer() {
    return integer_.get([this](detail::SourceSnapshot& s) { this->add_integer_sources(s); },
                        [this] {
                          return Int8Linear(int8_params<Arch>(*this->integer_in_),
                                            this->weight_.shape()[1]);
                        });
  }

  detail::IntegerCache<Int8Linear> integer_;
  InputQ iq_{};
  std::optional<Int8FloatLinear> int8_kernels_;
};

}  // namespace fq

#endif  // FQ_LAYERS_QLINEAR_HPP_
