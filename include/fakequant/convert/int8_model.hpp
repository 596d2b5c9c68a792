// SPDX-License-Identifier: MIT
// fakequant/convert/int8_model.hpp: fq::convert_sequential(input_quantizer, input_shape,
// layers...) converts a sequential QAT network in one call to an fq::Int8Model
// (int8/model.hpp): it converts the layers in order (fq::convert, convert/convert.hpp), chaining
// each layer's output qparams and extents into the next, with the shape layers fq::MaxPool2d
// and fq::Flatten (layers/pool.hpp) becoming Int8MaxPool2d and Int8Flatten steps.
// A linear layer after a convolution or a pooling needs an explicit fq::Flatten{} (no implicit
// flatten: a missing pooling is a shape error, not a reinterpreted tensor).
//
// Errors (FQ_CHECK; the message names the step index, the layer type and, for calibration, the
// quantizer): a layer input of the wrong rank (kShapeMismatch), a layer after a float-output
// layer (kInvalidArgument), an input, weight or output quantizer that was never calibrated
// (kInvalidState), a learned weight zero point other than 0 (kInvalidZeroPoint), and everything
// Int8Model's constructor refuses.
// Learned quantizers (LSQ, LSQ+, PACT, power-of-two restricted; fq::LearnableFakeQuant or the
// bare quantizers) deploy as their snapshot (fq::freeze, learnable/freeze.hpp): the float32
// scales and integer zero points their forward uses now.
#ifndef FQ_CONVERT_INT8_MODEL_HPP_
#define FQ_CONVERT_INT8_MODEL_HPP_

#include <string>       // string
#include <type_traits>  // decay_t, is_same
#include <utility>      // move
#include <vector>       // vector

#include <fakequant/base/error.hpp>
#include <fakequant/convert/convert.hpp>
#include <fakequant/int8/model.hpp>
#include <fakequant/int8/params.hpp>
#include <fakequant/layers/qlayers.hpp>
#include <fakequant/quantizer/concept.hpp>
#include <fakequant/scheme/numerics.hpp>
#include <fakequant/simd/arch.hpp>
#include <fakequant/tape/tape.hpp>

namespace fq {

namespace detail {
/// The input quantization of a model: qparams and range.
struct ModelInput {
  ActQParams qparams;
  QuantRange range;
};
inline ModelInput model_input(const ActQParams& q) { return {q, QuantRange{0, 255}}; }
template <class Q>
ModelInput model_input(const Q& q) {
  static_assert(is_deployable_quantizer_v<Q>,
                "convert_sequential: the first argument is the network's input quantizer: an "
                "fq::ActQuant module (not const: its quantizer() is not const), its quantizer() "
                "(fq::FakeQuantize, fq::FakeQuantizer, fq::LearnableFakeQuant, fq::LsqQuantizer "
                "or fq::Pact), or fq::ActQParams.");
  if constexpr (is_deployable_quantizer_v<Q>) {
    static_assert(assert_quantizer<Q>(),
                  "convert_sequential: the input quantizer must meet the quantizer protocol.");
    check_calibrated(q, "convert_sequential", "input");
    const auto& fqz = deployed_quantizer(q);  // a learned one: its snapshot
    using Scheme = typename std::decay_t<decltype(fqz)>::scheme;
    static_assert(std::is_same<typename Scheme::numerics, TorchNumerics>::value &&
                      std::is_same<typename Scheme::zero_point_policy, IntegerZeroPoint>::value,
                  "convert_sequential: the integer model quantizes its input with TorchNumerics "
                  "(ties to even, x * f32(1/s), overflow to qmin) and an integer zero point; the "
                  "input quantizer's scheme must use them (PACT and paper-LSQ quantizers "
                  "saturate: use a fixed or PyTorch-numerics LSQ input quantizer).");
    const QuantRange r = fqz.range();
    const std::int32_t offset = act_level_offset(r);  // 128 for int8 activations
    return {act_qparams(q), QuantRange{r.quant_min + offset, r.quant_max + offset}};
  } else {
    return {};  // not reached: the static_assert above fails
  }
}
template <class AQ>
ModelInput model_input(ActQuant<AQ>& a) {
  return model_input(a.quantizer());
}

/// The state convert_sequential threads through the layers.
struct SequentialBuilder {
  Shape shape;
  ActQParams q;
  std::vector<Int8Step> steps;
  bool float_out = false;

  /// Checks that a layer may follow the previous one (no float output before it) and that its
  /// input has rank `rank` (1: flat, 3: images; 0: any rank >= 1).
  void expect(const char* layer, int rank) const {
    const std::size_t i = steps.size();
    FQ_CHECK(!float_out, ErrorCode::kInvalidArgument,
             msg("convert_sequential: step ", i, " (", layer, ") follows step ", i - 1,
                 ", a layer without output quantizer (float output): only the last layer may "
                 "have one"));
    FQ_CHECK(rank == 0 ? shape.rank >= 1 : shape.rank == rank, ErrorCode::kShapeMismatch,
             msg("convert_sequential: step ", i, " (", layer, ") takes ",
                 rank == 1   ? "flat [features]"
                 : rank == 3 ? "[C, H, W] images"
                             : "a tensor of rank >= 1",
                 " but gets ", shape.str(),
                 rank == 1 ? "; put fq::Flatten{} before a linear layer" : ""));
  }
  /// Refuses a layer whose weight or output quantizer is not calibrated, or whose (learned)
  /// weight zero points are not 0, naming the step.
  template <class L>
  void expect_calibrated(const L& l, const char* layer) const {
    const std::string where = msg("convert_sequential: step ", steps.size(), " (", layer, ")");
    check_calibrated(l.weight_quantizer(), where, "weight");
    check_weight_zero_points(deployed_quantizer(l.weight_quantizer()), where);
    using AQ = std::decay_t<decltype(l.output_quantizer())>;
    if constexpr (!std::is_same<AQ, NoFakeQuant>::value)
      check_calibrated(l.output_quantizer(), where, "output (activation)");
  }
  void push(Int8Step s) {
    if (const Int8LayerParams* p = step_params(s)) {
      float_out = p->float_out;
      q = p->out;
    }
    shape = step_output_shape(s);
    steps.push_back(std::move(s));
  }
};

template <class Arch, class WQ, class AQ>
void append_step(SequentialBuilder& b, const QLinear<WQ, AQ>& l) {
  b.expect_calibrated(l, "QLinear");
  b.expect("QLinear", 1);
  b.push(convert<Arch>(l, b.q));
}
template <class Arch, class WQ, class AQ>
void append_step(SequentialBuilder& b, const QConv2d<WQ, AQ>& l) {
  b.expect_calibrated(l, "QConv2d");
  b.expect("QConv2d", 3);
  b.push(convert<Arch>(l, b.q, b.shape[1], b.shape[2]));
}
template <class Arch, class WQ, class AQ>
void append_step(SequentialBuilder& b, const QConvBn2d<WQ, AQ>& l) {
  b.expect_calibrated(l, "QConvBn2d");
  b.expect("QConvBn2d", 3);
  b.push(convert<Arch>(l, b.q, b.shape[1], b.shape[2]));
}
template <class Arch>
void append_step(SequentialBuilder& b, const MaxPool2d& m) {
  b.expect("MaxPool2d", 3);
  b.push(Int8MaxPool2d(b.shape[0], b.shape[1], b.shape[2], m.kernel,
                       m.stride > 0 ? m.stride : m.kernel));
}
template <class Arch>
void append_step(SequentialBuilder& b, const Flatten& /*flatten*/) {
  b.expect("Flatten", 0);
  b.push(Int8Flatten(b.shape));
}
template <class Arch, class T>
void append_step(SequentialBuilder& /*b*/, const T& /*layer*/) {
  static_assert(sizeof(T) == 0,
                "convert_sequential: each layer must be an fq::QLinear, fq::QConv2d, "
                "fq::QConvBn2d, fq::MaxPool2d or fq::Flatten.");
}
}  // namespace detail

/// Converts a sequential network to an Int8Model (file comment). `input` is the network's
/// input quantizer (an fq::ActQuant module, its quantizer() — fixed, or learned: LSQ, PACT —,
/// or fq::ActQParams with the range [0, 255]); `input_shape` the shape of one input ({C, H, W} or
/// {features}); then the layers in order: const QLinear, QConv2d and QConvBn2d references,
/// fq::MaxPool2d{k, s} and fq::Flatten{}. Batch norm is folded with its running statistics, as
/// fq::convert does. Arch: the quantize kernels' instruction set (fq::DefaultArch; simd/arch.hpp).
template <class Arch = DefaultArch, class Input, class... Layers>
Int8Model convert_sequential(Input&& input, const Shape& input_shape, const Layers&... layers) {
  static_assert(sizeof...(Layers) > 0, "convert_sequential: give at least one layer.");
  const detail::ModelInput in = detail::model_input(input);
  detail::SequentialBuilder b{input_shape, in.qparams, {}, false};
  (detail::append_step<Arch>(b, layers), ...);
  return Int8Model(in.qparams, input_shape, std::move(b.steps), in.range);
}

}  // namespace fq

#endif  // FQ_CONVERT_INT8_MODEL_HPP_
