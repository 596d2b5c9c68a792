// SPDX-License-Identifier: MIT
// fakequant/observer/switchable.hpp: Switchable<Q>, any quantizer of the protocol with the
// two switches of PyTorch's FakeQuantize module, so that QatSchedule (schedule/qat_schedule.hpp)
// can drive the format quantizers (group-wise, per-token, FP8, MX, NVFP4, NF4) through the QAT
// phases:
//   enable_fake_quant(false)  forward is the identity, y = x, and the mask is all ones (the
//                             gradient passes everywhere): the FP32 warm-up.
//   enable_observer(false)    a dynamic quantizer (one with dynamic(), freeze(), unfreeze():
//                             its scales follow the data) keeps its scales: at the next forward
//                             they are computed from that batch one last time and frozen.
//                             enable_observer(true) unfreezes at the next forward. Only the
//                             switch changes act: scales the user froze with set_scales()
//                             stay frozen until enable_observer is toggled.
// Everything else (scales, presets' accessors, backward) is Q's: Switchable<Q> derives from Q.
//
//   fq::QLinear<fq::Switchable<fq::Int4WeightGroup32Symmetric>,
//               fq::Switchable<fq::Int8ActPerTokenDynamic>> layer(256, 128, rng);
//   schedule.add(layer.weight_quantizer());  schedule.add(layer.output_quantizer());
// Learnable quantizers (a backward(x, dy, mask, dx) form: LSQ, PACT) have their own switch,
// set_learning; wrapping them is a static_assert.
#ifndef FQ_OBSERVER_SWITCHABLE_HPP_
#define FQ_OBSERVER_SWITCHABLE_HPP_

#include <type_traits>  // false_type, true_type, void_t
#include <utility>      // declval, forward

#include <fakequant/core/checks.hpp>
#include <fakequant/core/mask.hpp>
#include <fakequant/core/tensor_view.hpp>
#include <fakequant/observer/fake_quantize_module.hpp>
#include <fakequant/quantizer/concept.hpp>
#include <fakequant/simd/arch.hpp>

namespace fq {
namespace detail {
template <class Q, class = void>
struct has_freeze : std::false_type {};
template <class Q>
struct has_freeze<
    Q, std::void_t<decltype(std::declval<Q&>().freeze()), decltype(std::declval<Q&>().unfreeze()),
                   decltype(bool{std::declval<const Q&>().dynamic()})>> : std::true_type {};
template <class Q, class Arch, class = void>
struct forward_has_arch : std::false_type {};
template <class Q, class Arch>
struct forward_has_arch<Q, Arch,
                        std::void_t<decltype(std::declval<Q&>().template forward<Arch>(
                            std::declval<TensorView<const float>>(),
                            std::declval<TensorView<float>>(), std::declval<Mask*>()))>>
    : std::true_type {};
}  // namespace detail

/// Q with enable_fake_quant / enable_observer switches (see the file comment).
template <class Q>
class Switchable : public Q {
  static_assert(assert_quantizer<Q>(), "Switchable: Q must meet the quantizer protocol.");
  static_assert(!detail::has_backward_x_dy<Q>::value,
                "Switchable: learnable quantizers (backward(x, dy, mask, dx): LSQ, PACT) are "
                "switched by set_learning, not wrapped.");

 public:
  using Q::Q;
  Switchable() = default;

  /// True while fake quantization is off: forward is then the identity (ops::fake_quant returns
  /// x itself).
  bool is_identity() const noexcept { return !fake_quant_enabled_; }

  /// y = Q(x), or y = x with an all-ones mask while fake quantization is off.
  template <class Arch = DefaultArch>
  void forward(TensorView<const float> x, TensorView<float> y, Mask* mask = nullptr) {
    if (!fake_quant_enabled_) {
      detail::check_output(x, y, "Switchable::forward");
      detail::copy_view<Arch>(x, y);
      if (mask) {
        mask->prepare(x.rank(), x.shape(), detail::order_by_strides(x.rank(), x.strides()));
        mask->set_all();
      }
      return;
    }
    const bool freeze_after = apply_observer_switch();
    if constexpr (detail::forward_has_arch<Q, Arch>::value)
      Q::template forward<Arch>(x, y, mask);
    else
      Q::forward(x, y, mask);
    if constexpr (detail::has_freeze<Q>::value) {
      if (freeze_after) Q::freeze();
    }
  }

  void enable_fake_quant(bool on = true) noexcept { fake_quant_enabled_ = on; }
  void disable_fake_quant() noexcept { fake_quant_enabled_ = false; }
  bool fake_quant_enabled() const noexcept { return fake_quant_enabled_; }
  /// For a dynamic quantizer: whether its scales follow the data (applied at the next forward).
  void enable_observer(bool on = true) noexcept {
    if (on != observer_enabled_) pending_ = !pending_;
    observer_enabled_ = on;
  }
  void disable_observer() noexcept { enable_observer(false); }
  bool observer_enabled() const noexcept { return observer_enabled_; }

  /// The checkpoint state (base/state.hpp): the two switches, a switch change not yet applied,
  /// then Q's state under "quantizer".
  template <class V>
  void visit_state(V& v) {
    v.kind("switchable");
    v.state("fake_quant_enabled", fake_quant_enabled_);
    v.state("observer_enabled", observer_enabled_);
    v.state("pending", pending_);
    v.child("quantizer", static_cast<Q&>(*this));
  }

 private:
  /// Applies a changed observer switch; returns true if the forward must freeze after itself.
  bool apply_observer_switch() {
    if constexpr (detail::has_freeze<Q>::value) {
      if (!pending_) return false;
      pending_ = false;
      if (observer_enabled_) {
        if (!Q::dynamic()) Q::unfreeze();
        return false;
      }
      return Q::dynamic();  // compute this batch's scales, then keep them
    }
    return false;
  }

  bool fake_quant_enabled_ = true;
  bool observer_enabled_ = true;
  bool pending_ = false;
};

}  // namespace fq

#endif  // FQ_OBSERVER_SWITCHABLE_HPP_
