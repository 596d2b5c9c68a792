// SPDX-License-Identifier: MIT
// fakequant/ops/fake_quant.hpp: fake_quant — a fake-quantization node on a Tape.
//
// Forward: y = q.forward(x) — for the quantizers of this library
//   y = (clamp(round(x/s) + z, qmin, qmax) − z)·s, observing x first when q is an
//   fq::FakeQuantize with its observer on (formulas and rounding: core/fake_quantize.hpp);
//   LSQ/PACT/LearnableFakeQuant with their learned parameters (learnable/, layers/).
// Gradient: dx = q.backward(x, dy, mask) when q has that form (LSQ, PACT: their gradients need
//   x), else q.backward(dy, mask): dy·[x in range] (masked STE) or dy (pass-through); dx is
//   added into x's gradient when x has one (stored, when this node is that gradient's first
//   writer: tape/grad_state.hpp). A quantizer with learnable parameters
//   (visit_parameters) accumulates their gradients in its backward, so its node records a
//   backward whenever the tape records, even if x needs no gradient.
//   The masked STE is one rule everywhere: dy times the mask bit as a real multiplication
//   (ATen's dY * mask), so a NaN/Inf gradient at a clipped position gives NaN here exactly as
//   in fq::fake_quantize_backward (docs/numerics.md, "The backward").
// The STE mask lives in the tape (Tape::scratch_mask), so one quantizer may appear in several
// nodes of a step (their parameter gradients add up).
// A quantizer whose q.is_identity() is true (FakeQuantize with fake quantization and observer
// off, Switchable with fake quantization off: y = x, all-ones mask) is not run: fake_quant
// returns x itself, so an FP32 phase pays no copy and no pass-through backward.
//
// Q meets the quantizer protocol (quantizer/concept.hpp, checked with a static_assert), e.g.
// fq::FakeQuantizer<Scheme>, fq::FakeQuantize<Scheme, Observer>, fq::LsqQuantizer, fq::Pact,
// fq::LearnableFakeQuant. It must outlive the step.
// Arch (fq::DefaultArch; simd/arch.hpp): the kernels' instruction set, passed on as
// q.template forward<Arch>(...) / backward<Arch>(...) when q's members are such templates (the
// quantizers of this library); a user's quantizer with plain forward/backward is called as is.
#ifndef FQ_OPS_FAKE_QUANT_HPP_
#define FQ_OPS_FAKE_QUANT_HPP_

#include <cstdint>      // int64_t, uint64_t
#include <type_traits>  // is_same, void_t
#include <utility>      // declval

#include <fakequant/core/mask.hpp>
#include <fakequant/core/tensor_view.hpp>
#include <fakequant/policy/clamp_grad.hpp>
#include <fakequant/quantizer/concept.hpp>
#include <fakequant/simd/arch.hpp>
#include <fakequant/tape/tape.hpp>

namespace fq {
namespace ops {

namespace impl {
template <class Q, class = void>
struct has_masked_ste : std::false_type {};
template <class Q>
struct has_masked_ste<Q, std::void_t<typename Q::scheme::clamp_grad>>
    : std::is_same<typename Q::scheme::clamp_grad, MaskedSte> {};

/// Whether q.template forward<Arch>(x, y, mask) / backward<Arch>(dy, mask, dx) are valid.
template <class Q, class Arch, class = void>
struct forward_takes_arch : std::false_type {};
template <class Q, class Arch>
struct forward_takes_arch<Q, Arch,
                          std::void_t<decltype(std::declval<Q&>().template forward<Arch>(
                              std::declval<TensorView<const float>>(),
                              std::declval<TensorView<float>>(), std::declval<Mask*>()))>>
    : std::true_type {};
template <class Q, class Arch, class = void>
struct backward_takes_arch : std::false_type {};
template <class Q, class Arch>
struct backward_takes_arch<Q, Arch,
                           std::void_t<decltype(std::declval<Q&>().template backward<Arch>(
                               std::declval<TensorView<const float>>(), std::declval<const Mask&>(),
                               std::declval<TensorView<float>>()))>> : std::true_type {};

template <class Q, class Arch, class = void>
struct backward_x_takes_arch : std::false_type {};
template <class Q, class Arch>
struct backward_x_takes_arch<
    Q, Arch,
    std::void_t<decltype(std::declval<Q&>().template backward<Arch>(
        std::declval<TensorView<const float>>(), std::declval<TensorView<const float>>(),
        std::declval<const Mask&>(), std::declval<TensorView<float>>()))>> : std::true_type {};

template <class Arch, class Q>
void forward_on(Q& q, TensorView<const float> x, TensorView<float> y, Mask* mask) {
  if constexpr (forward_takes_arch<Q, Arch>::value)
    q.template forward<Arch>(x, y, mask);
  else
    q.forward(x, y, mask);
}
template <class Arch, class Q>
void backward_on(Q& q, TensorView<const float> dy, const Mask& mask, TensorView<float> dx) {
  if constexpr (backward_takes_arch<Q, Arch>::value)
    q.template backward<Arch>(dy, mask, dx);
  else
    q.backward(dy, mask, dx);
}
template <class Arch, class Q>
void backward_on(Q& q, TensorView<const float> x, TensorView<const float> dy, const Mask& mask,
                 TensorView<float> dx) {
  if constexpr (backward_x_takes_arch<Q, Arch>::value)
    q.template backward<Arch>(x, dy, mask, dx);
  else
    q.backward(x, dy, mask, dx);
}

/// dx[i] (+)= dy[i] * bit i of the mask: the masked STE of fq::fake_quantize_backward (ATen's
/// dY * mask: a NaN or infinite dy at a masked position gives NaN, not 0), stored when
/// kStore (the gradient's first writer, tape/grad_state.hpp) and accumulated otherwise, in
/// one pass. The product quiets a signaling NaN, as mask_multiply does there. A Var is
/// contiguous and row-major, so the mask's visiting order is the memory order. Arch: the
/// caller's architecture tag (the loop is vectorised for its flags, simd/arch.hpp).
template <class Arch, bool kStore>
void write_masked(const float* dy, const Mask& mask, float* dx) {
  const std::int64_t n = mask.numel();
  const std::uint64_t* words = mask.words().data();
  for (std::int64_t base = 0; base < n; base += 64) {
    const std::uint64_t bits = words[base / 64];
    const std::int64_t m = n - base < 64 ? n - base : 64;
    for (std::int64_t j = 0; j < m; ++j) {
      const float v = dy[base + j] * static_cast<float>((bits >> j) & 1u);
      if constexpr (kStore)
        dx[base + j] = v;
      else
        dx[base + j] += v;
    }
  }
}
/// True if Q has is_identity() (file comment).
template <class Q, class = void>
struct has_is_identity : std::false_type {};
template <class Q>
struct has_is_identity<Q, std::void_t<decltype(bool(std::declval<const Q&>().is_identity()))>>
    : std::true_type {};
}  // namespace impl

template <class Arch = DefaultArch, class Q>
Var fake_quant(Tape& tape, const Var& x, Q& q) {
  static_assert(assert_quantizer<Q>(),
                "ops::fake_quant: q must meet the quantizer protocol (quantizer/concept.hpp).");
  if constexpr (is_quantizer_v<Q>) {  // else only the sentences above, no cascade of errors
    constexpr bool kParams = has_learnable_parameters_v<Q>;
    constexpr bool kBackwardX = fq::detail::has_backward_x_dy<Q>::value;
    fq::detail::check_tape(tape, {&x}, "fake_quant");
    if constexpr (impl::has_is_identity<Q>::value && !kParams)
      if (q.is_identity()) return x;
    // Parameter gradients are wanted whenever the tape records (file comment).
    const bool need = fq::detail::needs_grad(tape, {&x}) || (kParams && tape.recording());
    Var y = tape.variable(x.shape(), need);
    if (x.numel() == 0) return y;
    if (!need) {
      impl::forward_on<Arch>(q, x.cview(), y.view(), nullptr);
      return y;
    }
    Mask* mask = &tape.scratch_mask();
    impl::forward_on<Arch>(q, x.cview(), y.view(), mask);
    if constexpr (impl::has_masked_ste<Q>::value && !kBackwardX && !kParams) {
      tape.push_backward([x, y, mask] {
        const GradWrite dx = x.claim_grad();
        if (dx.overwrite)
          impl::write_masked<Arch, true>(y.grad(), *mask, dx.data);
        else
          impl::write_masked<Arch, false>(y.grad(), *mask, dx.data);
      });
    } else {
      Q* qp = &q;
      tape.push_backward([x, y, mask, qp] {
        // The quantizer's own backward writes dx (and accumulates its parameters' gradients):
        // straight into x's gradient when this op is its first writer, else into scratch that
        // is then added.
        const GradWrite dx = x.claim_grad();
        float* out =
            dx.overwrite ? dx.data : x.tape()->scratch<float>(static_cast<std::size_t>(x.numel()));
        const Var t(x.tape(), out, nullptr, x.shape());
        const TensorView<const float> dy(y.grad_view());
        if constexpr (kBackwardX)
          impl::backward_on<Arch>(*qp, x.cview(), dy, *mask, t.view());
        else
          impl::backward_on<Arch>(*qp, dy, *mask, t.view());
        if (x.requires_grad() && !dx.overwrite) x.grad_array() += t.array();
      });
    }
    return y;
  } else {
    return Var();
  }
}

}  // namespace ops
}  // namespace fq

#endif  // FQ_OPS_FAKE_QUANT_HPP_
