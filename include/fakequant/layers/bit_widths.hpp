// SPDX-License-Identifier: MIT
// fakequant/layers/bit_widths.hpp: bit widths chosen at run time, per layer — mixed-precision
// sweeps without recompiling.
//
// RuntimeBitsFakeQuantize<Scheme, Observer> is an fq::FakeQuantize of a RuntimeRange scheme
// whose range follows a bit width set at run time (8 until set_bits):
//   symmetric (weights)     [−2^(b−1), 2^(b−1) − 1], zero point 0      (qint8-style, as Int4/Int8)
//   affine (activations)    [0, 2^b − 1]                                (quint8-style, as UInt8)
// for b in [2, 16]. set_bits(b) starts the quantizer afresh (observer, qparams and switches are
// reset: a new range needs new statistics); the switches are kept.
// RuntimeBitsRecipe puts them in every slot (layers/recipe.hpp): per-channel weights, per-tensor
// activations. A layer's bit widths are set with set_layer_bits(layer, weight_bits, act_bits),
// for any layer with for_each_quantizer (QLinear, QMultiHeadAttention, QMlp, QEncoderBlock, a
// whole model): weight quantizers (per-channel schemes) get weight_bits, the others act_bits.
// A model's per-layer table is applied by the caller, layer by layer (the ViT demo's
// --bits "8,4,4,4,4,8" sets the embedding, each block and the head).
#ifndef FQ_LAYERS_BIT_WIDTHS_HPP_
#define FQ_LAYERS_BIT_WIDTHS_HPP_

#include <cstdint>      // int64_t
#include <type_traits>  // decay_t, false_type, true_type

#include <fakequant/base/error.hpp>
#include <fakequant/layers/recipe.hpp>
#include <fakequant/observer/fake_quantize_module.hpp>
#include <fakequant/observer/minmax_observer.hpp>
#include <fakequant/scheme/presets.hpp>
#include <fakequant/scheme/range.hpp>

namespace fq {

/// The integer range of `bits` bits for a scheme's mapping (file comment).
template <class Scheme>
QuantRange runtime_bits_range(int bits) {
  FQ_CHECK(bits >= 2 && bits <= 16, ErrorCode::kInvalidArgument,
           detail::msg("runtime_bits_range: bits must be between 2 and 16, got ", bits));
  const std::int64_t half = std::int64_t{1} << (bits - 1);
  if constexpr (Scheme::mapping::kSymmetric)
    return QuantRange{-half, half - 1};
  else
    return QuantRange{0, 2 * half - 1};
}

/// An fq::FakeQuantize whose bit width is set at run time (file comment).
template <class Scheme, class Observer>
class RuntimeBitsFakeQuantize : public FakeQuantize<Scheme, Observer> {
  static_assert(Scheme::range::kRuntime,
                "RuntimeBitsFakeQuantize: the scheme's range must be fq::RuntimeRange.");
  using Base = FakeQuantize<Scheme, Observer>;

 public:
  RuntimeBitsFakeQuantize() : RuntimeBitsFakeQuantize(8) {}
  explicit RuntimeBitsFakeQuantize(int bits)
      : Base(runtime_bits_range<Scheme>(bits)), bits_(bits) {}

  /// A new bit width: a fresh quantizer of that range with the same switches.
  void set_bits(int bits) {
    const bool observe = this->observer_enabled(), fake_quant = this->fake_quant_enabled();
    *this = RuntimeBitsFakeQuantize(bits);
    this->enable_observer(observe);
    this->enable_fake_quant(fake_quant);
  }
  int bits() const noexcept { return bits_; }

 private:
  int bits_;
};

/// Per-output-channel symmetric weights and per-tensor affine activations of run-time bit
/// widths (8 until set).
using RuntimeBitsRecipe =
    QuantRecipe<RuntimeBitsFakeQuantize<QScheme<RuntimeRange, Symmetric, PerChannel<0>>,
                                        PerChannelMinMaxObserver>,
                RuntimeBitsFakeQuantize<RuntimeActPerTensorAffine, MovingAverageMinMaxObserver>>;

namespace detail {
template <class Q>
struct is_runtime_bits : std::false_type {};
template <class S, class O>
struct is_runtime_bits<RuntimeBitsFakeQuantize<S, O>> : std::true_type {};
}  // namespace detail

/// Sets every RuntimeBitsFakeQuantize of `layer`: per-channel ones (weights) to weight_bits,
/// the others to act_bits (file comment). Returns how many quantizers it set.
template <class Layer>
int set_layer_bits(Layer& layer, int weight_bits, int act_bits) {
  runtime_bits_range<Int8WeightPerChannelSymmetric>(weight_bits);  // checks both first
  runtime_bits_range<Uint8ActPerTensorAffine>(act_bits);
  int n = 0;
  layer.for_each_quantizer([&](auto& q) {
    using Q = std::decay_t<decltype(q)>;
    if constexpr (detail::is_runtime_bits<Q>::value) {
      q.set_bits(Q::scheme::granularity::kPerChannel ? weight_bits : act_bits);
      ++n;
    }
  });
  return n;
}

}  // namespace fq

#endif  // FQ_LAYERS_BIT_WIDTHS_HPP_
