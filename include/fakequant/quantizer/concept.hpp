// SPDX-License-Identifier: MIT
// fakequant/quantizer/concept.hpp: the quantizer protocol — what every consumer of a quantizer
// (ops::fake_quant, the QAT layers, convert, the testing kit) requires of it, checked by each
// with fq::assert_quantizer<Q>() (one static_assert sentence per missing member).
//
// A type Q is a *quantizer* when, for an lvalue `q` of type Q,
//   q.forward(fq::TensorView<const float> x, fq::TensorView<float> y, fq::Mask* mask)
//       writes y = Q(x) (same shape; element-wise, or per channel) and, if mask is not null,
//       the STE mask: one bit per element, set where the gradient passes (fq::Mask; see
//       testing/elementwise.hpp for a helper that writes it);
// and one of
//   q.backward(fq::TensorView<const float> dy, const fq::Mask& mask, fq::TensorView<float> dx)
//   q.backward(fq::TensorView<const float> x, fq::TensorView<const float> dy,
//              const fq::Mask& mask, fq::TensorView<float> dx)
//       writes dx, the gradient of sum(dy * y) w.r.t. x (the second form is for quantizers
//       whose gradient needs x, e.g. LSQ; the kit prefers it when both exist).
// Optional members the kit uses when present:
//   static constexpr bool kPerChannel; static constexpr int kAxis;   the channel axis of x
//   scale(), zero_point(), range()   an affine grid (c - z) * s, c in [quant_min, quant_max],
//                                     per channel: the kit derives the grid (testing/grid.hpp)
//   template <class F> void visit_parameters(F&& f)   learnable parameters, the one way a
//       quantizer exposes them: calls
//       f(const char* name, fq::TensorView<float> value, fq::TensorView<float> grad)
//       for each one; backward writes (or adds to) grad, the gradient of sum(dy * y).
// fq::FakeQuantizer<Scheme>, fq::FakeQuantize<Scheme, Observer>, the learnable quantizers
// (fq::LsqQuantizer, fq::Pact objects) and fq::LearnableFakeQuant meet the protocol; a consumer
// that has both backwards prefers backward(x, dy, mask, dx) (ops::fake_quant, the kit), and
// learnable parameters reach an optimizer only through fq::optim::parameters_of; forward/backward
// may be const or not, may be templates with defaulted template parameters (e.g. the instruction
// set), and may throw fq::Error on bad input. Consumers keep x alive and unchanged between a
// forward and its backward, so a quantizer may keep a view of x. Tensors are float.
#ifndef FQ_QUANTIZER_CONCEPT_HPP_
#define FQ_QUANTIZER_CONCEPT_HPP_

#include <type_traits>  // false_type, true_type, void_t
#include <utility>      // declval

#include <fakequant/core/mask.hpp>
#include <fakequant/core/tensor_view.hpp>

namespace fq {
namespace detail {

template <class Q, class = void>
struct has_forward : std::false_type {};
template <class Q>
struct has_forward<Q, std::void_t<decltype(std::declval<Q&>().forward(
                          std::declval<TensorView<const float>>(),
                          std::declval<TensorView<float>>(), std::declval<Mask*>()))>>
    : std::true_type {};

template <class Q, class = void>
struct has_backward_dy : std::false_type {};
template <class Q>
struct has_backward_dy<Q, std::void_t<decltype(std::declval<Q&>().backward(
                              std::declval<TensorView<const float>>(), std::declval<const Mask&>(),
                              std::declval<TensorView<float>>()))>> : std::true_type {};

template <class Q, class = void>
struct has_backward_x_dy : std::false_type {};
template <class Q>
struct has_backward_x_dy<
    Q, std::void_t<decltype(std::declval<Q&>().backward(
           std::declval<TensorView<const float>>(), std::declval<TensorView<const float>>(),
           std::declval<const Mask&>(), std::declval<TensorView<float>>()))>> : std::true_type {};

/// Calls f(name, value, grad) for nothing: the argument type of the detection below.
struct ParameterProbe {
  void operator()(const char*, TensorView<float>, TensorView<float>) const noexcept {}
};

template <class Q, class = void>
struct has_parameters : std::false_type {};
template <class Q>
struct has_parameters<
    Q, std::void_t<decltype(std::declval<Q&>().visit_parameters(std::declval<ParameterProbe&>()))>>
    : std::true_type {};

template <class Q, class = void>
struct has_channel_axis : std::false_type {};
template <class Q>
struct has_channel_axis<Q, std::void_t<decltype(bool{Q::kPerChannel}), decltype(int{Q::kAxis})>>
    : std::true_type {};

template <class Q, class = void>
struct has_affine_grid : std::false_type {};
template <class Q>
struct has_affine_grid<Q, std::void_t<decltype(std::declval<const Q&>().scale()[0]),
                                      decltype(std::declval<const Q&>().zero_point()[0]),
                                      decltype(std::declval<const Q&>().range().quant_min)>>
    : std::true_type {};

}  // namespace detail

/// True if Q has the forward and one of the backwards of the quantizer protocol.
template <class Q>
struct is_quantizer : std::integral_constant<bool, detail::has_forward<Q>::value &&
                                                       (detail::has_backward_dy<Q>::value ||
                                                        detail::has_backward_x_dy<Q>::value)> {};
template <class Q>
inline constexpr bool is_quantizer_v = is_quantizer<Q>::value;

/// True if Q exposes learnable parameters through visit_parameters.
template <class Q>
inline constexpr bool has_learnable_parameters_v = detail::has_parameters<Q>::value;

/// Compile-time check with one sentence per missing member; every consumer of a quantizer
/// calls it (static_assert(fq::assert_quantizer<Q>())).
template <class Q>
constexpr bool assert_quantizer() {
  static_assert(detail::has_forward<Q>::value,
                "fq: the quantizer must provide forward(fq::TensorView<const float> x, "
                "fq::TensorView<float> y, fq::Mask* mask) (the quantizer protocol: "
                "fakequant/quantizer/concept.hpp).");
  static_assert(!detail::has_forward<Q>::value || detail::has_backward_dy<Q>::value ||
                    detail::has_backward_x_dy<Q>::value,
                "fq: the quantizer must provide backward(fq::TensorView<const float> dy, "
                "const fq::Mask& mask, fq::TensorView<float> dx) or backward(x, dy, mask, dx) "
                "(the quantizer protocol: fakequant/quantizer/concept.hpp).");
  return is_quantizer<Q>::value;
}

#if defined(__cpp_concepts) && __cpp_concepts >= 201907L
/// The quantizer protocol as a C++20 concept (same rule as is_quantizer).
template <class Q>
concept Quantizer = is_quantizer_v<Q>;
#endif

/// The testing kit's names for the protocol (it was defined there first).
namespace testing {
using ::fq::assert_quantizer;
using ::fq::has_learnable_parameters_v;
using ::fq::is_quantizer;
using ::fq::is_quantizer_v;
#if defined(__cpp_concepts) && __cpp_concepts >= 201907L
using ::fq::Quantizer;
#endif
}  // namespace testing

}  // namespace fq

#endif  // FQ_QUANTIZER_CONCEPT_HPP_
