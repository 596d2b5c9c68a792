// SPDX-License-Identifier: MIT
// fakequant/layers/qlinear.hpp: QLinear, the QAT linear layer —
//   y = Aq(act(x · Wq(w)ᵀ + b)),  x [N, in] -> y [N, out],  w [out, in]
// with the quantizer slots and the fused activation of layers/qlayer_base.hpp. In integer
// arithmetic (use_integer_arithmetic) it runs its cached Int8Linear (layers/integer_eval.hpp),
// the layer convert deploys: bit for bit the deployed outputs.
#ifndef FQ_LAYERS_QLINEAR_HPP_
#define FQ_LAYERS_QLINEAR_HPP_

#include <cstdint>  // int64_t, uint64_t
#include <random>   // mt19937

#include <fakequant/int8/linear.hpp>
#include <fakequant/int8/params.hpp>
#include <fakequant/layers/integer_eval.hpp>
#include <fakequant/layers/qlayer_base.hpp>
#include <fakequant/layers/quantizer_slots.hpp>
#include <fakequant/ops/linear.hpp>
#include <fakequant/simd/arch.hpp>
#include <fakequant/tape/tape.hpp>

namespace fq {

/// y = Aq(act(x · Wq(w)ᵀ + b)); x [N, in] -> y [N, out].
template <class WeightQ = DefaultWeightFakeQuant, class ActQ = DefaultActFakeQuant>
class QLinear : public detail::QBiasedLayer<WeightQ, ActQ> {
 public:
  QLinear(std::int64_t in, std::int64_t out, std::mt19937& rng, Activation act = Activation::kNone,
          bool bias = true)
      : detail::QBiasedLayer<WeightQ, ActQ>(detail::linear_weight_shape(in, out, "QLinear"),
                                            "linear.weight", "linear.bias", act, bias, rng) {}

  /// Arch: the kernels' instruction set (fq::DefaultArch; simd/arch.hpp), passed to the fake
  /// quantizers and the integer kernels; call as forward(tape, x).
  template <class Arch = DefaultArch>
  Var forward(Tape& tape, const Var& x) {
    if constexpr (Base::kIntegerCapable)
      if (this->integer_in_) {
        detail::check_integer_eval(x, "integer arithmetic (linear)");
        return detail::integer_forward<Arch>(tape, x, integer_layer<Arch>());
      }
    const Var wq = this->template quantized<Arch>(tape, this->weight_.var(tape));
    return this->template finish<Arch>(tape, ops::linear(tape, x, wq, this->bias_var(tape)));
  }
  /// The integer parameters convert deploys, for input qparams `in` (Arch: as forward).
  template <class Arch = DefaultArch>
  Int8LayerParams int8_params(ActQParams in) const {
    return this->template int8_params_from<Arch>(this->weight_.value(), this->bias_or_zeros(), in,
                                                 "convert(QLinear)");
  }
  /// How many times integer arithmetic built its Int8Linear: once, then again only after a
  /// change of what it is built from (layers/integer_eval.hpp).
  std::uint64_t integer_builds() const noexcept { return integer_.builds; }

 private:
  using Base = detail::QBiasedLayer<WeightQ, ActQ>;

  template <class Arch>
  const Int8Linear& integer_layer() {
    return integer_.get([this](detail::SourceSnapshot& s) { this->add_integer_sources(s); },
                        [this] {
                          return Int8Linear(int8_params<Arch>(*this->integer_in_),
                                            this->weight_.shape()[1]);
                        });
  }

  detail::IntegerCache<Int8Linear> integer_;
};

}  // namespace fq

#endif  // FQ_LAYERS_QLINEAR_HPP_
