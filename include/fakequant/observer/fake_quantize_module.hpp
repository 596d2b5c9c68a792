// SPDX-License-Identifier: MIT
// fakequant/observer/fake_quantize_module.hpp: FakeQuantize — an observer, a FakeQuantizer and the
// two switches of PyTorch's torch.ao.quantization.FakeQuantize.
//
// forward(x, y, mask):
//   observer enabled   -> observe x, recompute the qparams, store them in the quantizer
//   fake-quant enabled -> y = fake_quant(x) with the STE mask (core/fake_quantize.hpp)
//   else               -> y = x and an all-ones mask (the gradient passes unchanged)
// An empty x is a no-op (y must have its shape; the mask becomes empty): nothing is observed
// and a per-channel quantizer's channel count is not checked against it.
// backward(dy, mask, dx): dx = dy * mask (MaskedSte) or dy (PassThroughSte).
// calibrated(): true once the quantizer holds qparams from data or from an explicit
// quantizer().set_qparams(...) — convert refuses an uncalibrated one (int8/params.hpp),
// whose scale 1 and zero point 0 are placeholders, not a range.
// forward/backward are member templates on Arch (fq::DefaultArch; simd/arch.hpp), passed to
// the observer (when its observe is such a template) and the quantizer.
#ifndef FQ_OBSERVER_FAKE_QUANTIZE_MODULE_HPP_
#define FQ_OBSERVER_FAKE_QUANTIZE_MODULE_HPP_

#include <type_traits>  // true_type, void_t
#include <utility>      // declval, forward
#include <vector>       // vector

#include <fakequant/observer/minmax_observer.hpp>
#include <fakequant/quantizer/fake_quantizer.hpp>

namespace fq {

namespace detail {
/// Whether Observer::observe takes the architecture as its first template argument (the
/// observers of this library); a user's observer may have a plain observe(x).
template <class Observer, class Arch, class X, class = void>
struct observe_takes_arch : std::false_type {};
template <class Observer, class Arch, class X>
struct observe_takes_arch<
    Observer, Arch, X,
    std::void_t<decltype(std::declval<Observer&>().template observe<Arch>(std::declval<X>()))>>
    : std::true_type {};

/// y = x for same-shaped strided views (no-op when y is x). Arch: the caller's architecture
/// tag (the copy loop is vectorised for its flags, simd/arch.hpp).
template <class Arch, class T>
void copy_view(const TensorView<const T>& x, const TensorView<T>& y) {
  const auto plan = make_run_plan<2>(x.rank(), x.shape(), {&x.strides(), &y.strides()},
                                     order_by_strides(x.rank(), x.strides()), -1);
  const auto last = static_cast<std::size_t>(plan.nd - 1);
  const auto xs = static_cast<std::ptrdiff_t>(plan.stride[0][last]);
  const auto ys = static_cast<std::ptrdiff_t>(plan.stride[1][last]);
  for_each_run(plan, [&](const auto& off, std::int64_t n, std::int64_t, std::int64_t) {
    const T* xp = x.data() + off[0];
    T* yp = y.data() + off[1];
    if (xp != yp)
      for (std::int64_t i = 0; i < n; ++i) yp[i * ys] = xp[i * xs];
  });
}
}  // namespace detail

/// Observer + fake quantizer with enable switches, as PyTorch's FakeQuantize module.
/// @tparam Scheme a QScheme. @tparam Observer an observer whose granularity matches it.
template <class Scheme, class Observer = std::conditional_t<Scheme::granularity::kPerChannel,
                                                            MovingAveragePerChannelMinMaxObserver,
                                                            MovingAverageMinMaxObserver>>
class FakeQuantize {
  static_assert(!Scheme::granularity::kPerGroup,
                "FakeQuantize: a PerGroup or PerToken scheme needs fq::GroupFakeQuantizer "
                "(quantizer/group_quantizer.hpp), whose scales come from the tensor itself or "
                "from a group observer.");
  static_assert(Scheme::granularity::kPerGroup ||
                    Observer::kPerChannel == Scheme::granularity::kPerChannel,
                "FakeQuantize: the observer must be per-channel exactly when the scheme is "
                "(e.g. PerChannelMinMaxObserver with PerChannel<Axis>).");

 public:
  using scheme = Scheme;
  using quantizer_type = FakeQuantizer<Scheme>;

  /// Per-tensor scheme with a compile-time range.
  FakeQuantize() : FakeQuantize(quantizer_type::default_range()) {}
  /// Any scheme; `range` is needed for RuntimeRange schemes. The channel count of a
  /// per-channel scheme is taken from the first observed tensor.
  explicit FakeQuantize(QuantRange range, float averaging_constant = 0.01f)
      : quantizer_(1, range), observer_(averaging_constant, Scheme::granularity::kAxis) {}

  /// Observes (if enabled) and fake-quantizes (if enabled) x into y; see the file comment.
  template <class Arch = DefaultArch, class X, class Y>
  void forward(X&& x_in, Y&& y_in, Mask* mask = nullptr) {
    using T = detail::view_scalar_t<Y>;
    const TensorView<const T> x = detail::as_view(std::forward<X>(x_in));
    const TensorView<T> y = detail::as_view(std::forward<Y>(y_in));
    if (x.numel() == 0) {  // nothing to observe or quantize (see the file comment)
      detail::check_output(x, y, "FakeQuantize::forward");
      if (mask) mask->prepare(x.rank(), x.shape(), detail::order_by_strides(x.rank(), x.strides()));
      return;
    }
    if (observer_enabled_) {
      if constexpr (detail::observe_takes_arch<Observer, Arch, decltype(x)>::value)
        observer_.template observe<Arch>(x);
      else
        observer_.observe(x);
      observer_.template calculate_qparams<Scheme>(quantizer_.range(), scale_, zero_point_);
      if (Scheme::granularity::kPerChannel &&
          quantizer_.channels() != static_cast<std::int64_t>(scale_.size()))
        quantizer_ = quantizer_type(static_cast<std::int64_t>(scale_.size()), quantizer_.range());
      quantizer_.set_qparams(scale_, zero_point_);
    }
    if (fake_quant_enabled_) {
      quantizer_.template forward<Arch>(x, y, mask);
    } else {
      detail::check_output(x, y, "FakeQuantize::forward");
      detail::copy_view<Arch>(x, y);
      if (mask) {
        mask->prepare(x.rank(), x.shape(), detail::order_by_strides(x.rank(), x.strides()));
        mask->set_all();
      }
    }
  }

  /// dx = dy * mask (or dy for PassThroughSte).
  template <class Arch = DefaultArch, class DY, class DX>
  void backward(DY&& dy, const Mask& mask, DX&& dx) const {
    quantizer_.template backward<Arch>(std::forward<DY>(dy), mask, std::forward<DX>(dx));
  }

  void enable_observer(bool on = true) noexcept { observer_enabled_ = on; }
  void disable_observer() noexcept { observer_enabled_ = false; }
  void enable_fake_quant(bool on = true) noexcept { fake_quant_enabled_ = on; }
  void disable_fake_quant() noexcept { fake_quant_enabled_ = false; }
  bool observer_enabled() const noexcept { return observer_enabled_; }
  bool fake_quant_enabled() const noexcept { return fake_quant_enabled_; }
  /// True when forward is the identity (fake quantization and observer both off, so y = x and
  /// an all-ones mask): ops::fake_quant then returns x itself, with no copy and no backward.
  bool is_identity() const noexcept { return !fake_quant_enabled_ && !observer_enabled_; }
  /// True once the quantizer has qparams from observed data or set_qparams (file comment).
  bool calibrated() const noexcept { return quantizer_.has_qparams(); }

  const quantizer_type& quantizer() const noexcept { return quantizer_; }
  quantizer_type& quantizer() noexcept { return quantizer_; }
  const Observer& observer() const noexcept { return observer_; }
  Observer& observer() noexcept { return observer_; }

  /// The checkpoint state (base/state.hpp): the quantizer's qparams, the observer's state and
  /// the two switches. (scale_ and zero_point_ are scratch, recomputed at each observation.)
  template <class V>
  void visit_state(V& v) {
    v.kind("fake_quantize");
    v.child("quantizer", quantizer_);
    v.child("observer", observer_);
    v.state("observer_enabled", observer_enabled_);
    v.state("fake_quant_enabled", fake_quant_enabled_);
  }

 private:
  quantizer_type quantizer_;
  Observer observer_;
  std::vector<float> scale_;
  std::vector<typename Scheme::zero_point_type> zero_point_;
  bool observer_enabled_ = true;
  bool fake_quant_enabled_ = true;
};

}  // namespace fq

#endif  // FQ_OBSERVER_FAKE_QUANTIZE_MODULE_HPP_
