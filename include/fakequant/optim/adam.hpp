// SPDX-License-Identifier: MIT
// fakequant/optim/adam.hpp: Adam with L2 weight decay (torch.optim.Adam) and AdamW with
// decoupled weight decay (torch.optim.AdamW), with PyTorch 1.13's arithmetic.
//
// Per parameter w with gradient g at step t = 1, 2, ... (learning rate lr, betas b1, b2):
//   AdamW only:  w = w * (1 - lr * wd)                      (decoupled decay, before all else)
//   Adam only:   g = g + wd * w                             (L2 decay folded into the gradient)
//   m = b1 * m + (1 - b1) * g
//   v = b2 * v + (1 - b2) * g * g
//   w = w - (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
// eps is added after the bias-corrected square root, as in PyTorch. The bias corrections and
// step size are computed in double and rounded to float, as PyTorch does with its Python
// scalars; the element-wise arithmetic is float32. A parameter whose ParamRef::weight_decay is
// false gets no decay of either kind. The moments are allocated once, at construction. The
// result does not depend on where the buffers lie in memory (see update()).
#ifndef FQ_OPTIM_ADAM_HPP_
#define FQ_OPTIM_ADAM_HPP_

#include <algorithm>  // copy
#include <cmath>      // pow, sqrt
#include <cstddef>    // size_t
#include <cstdint>    // int64_t
#include <utility>    // move
#include <vector>     // vector

#include <fakequant/base/error.hpp>
#include <fakequant/base/state.hpp>
#include <fakequant/optim/param.hpp>

namespace fq {
namespace optim {

/// Hyper-parameters of Adam (kDecoupled = false) and AdamW (true); defaults are PyTorch's.
template <bool kDecoupled>
struct AdamOptionsT {
  double lr = 1e-3;      ///< learning rate, >= 0
  double beta1 = 0.9;    ///< first-moment decay, in [0, 1)
  double beta2 = 0.999;  ///< second-moment decay, in [0, 1)
  double eps = 1e-8;     ///< added to the bias-corrected root of the second moment, >= 0
  double weight_decay = kDecoupled ? 1e-2 : 0.0;  ///< L2 (Adam) or decoupled (AdamW), >= 0
};

/// Adam (kDecoupled = false) or AdamW (true) over a fixed list of parameters.
template <bool kDecoupled>
class AdamT {
 public:
  using Options = AdamOptionsT<kDecoupled>;

  /// Builds the optimizer and its two moment buffers for `params` (views, not owned).
  explicit AdamT(std::vector<ParamRef> params, const Options& options = Options())
      : params_(std::move(params)), options_(options) {
    const char* where = kDecoupled ? "AdamW" : "Adam";
    detail::check_param_list(params_, where);
    detail::check_non_negative(options_.lr, "lr", where);
    detail::check_unit_interval(options_.beta1, "beta1", where);
    detail::check_unit_interval(options_.beta2, "beta2", where);
    detail::check_non_negative(options_.eps, "eps", where);
    detail::check_non_negative(options_.weight_decay, "weight_decay", where);
    const std::size_t n = detail::total_size(params_);
    exp_avg_.assign(n, 0.0f);
    exp_avg_sq_.assign(n, 0.0f);
  }

  /// Applies one update to the parameters given at construction.
  void step() { step_impl(params_); }

  /// Applies one update to `params`, which must match the construction list size for size
  /// (the pointers may have moved); they become the list that zero_grad() and step() use.
  void step(const std::vector<ParamRef>& params) {
    detail::check_same_layout(params_, params, kDecoupled ? "AdamW::step" : "Adam::step");
    std::copy(params.begin(), params.end(), params_.begin());
    step_impl(params_);
  }

  /// Sets every gradient to zero.
  void zero_grad() noexcept { optim::zero_grad(params_); }

  /// The learning rate of the next step.
  double lr() const noexcept { return options_.lr; }
  /// Changes the learning rate (for schedules); it must be finite and >= 0.
  void set_lr(double lr) {
    detail::check_non_negative(lr, "lr", kDecoupled ? "AdamW::set_lr" : "Adam::set_lr");
    options_.lr = lr;
  }

  /// Steps taken so far (the bias corrections use step_count() after the increment).
  std::int64_t step_count() const noexcept { return step_; }
  const Options& options() const noexcept { return options_; }
  const std::vector<ParamRef>& params() const noexcept { return params_; }

  /// The checkpoint state (base/state.hpp): the learning rate (a schedule may have set it),
  /// both moments and the step count; the other hyper-parameters and the parameters' sizes
  /// must match.
  template <class V>
  void visit_state(V& v) {
    v.kind(kDecoupled ? "adamw" : "adam");
    v.config("beta1", options_.beta1);
    v.config("beta2", options_.beta2);
    v.config("eps", options_.eps);
    v.config("weight_decay", options_.weight_decay);
    detail::visit_param_layout(v, params_);
    v.state("lr", options_.lr, state_non_negative());
    v.state_span("exp_avg", exp_avg_.data(), exp_avg_.size(), state_finite());
    v.state_span("exp_avg_sq", exp_avg_sq_.data(), exp_avg_sq_.size(), state_non_negative());
    v.state("step", step_, state_non_negative());
  }

 private:
  // The float constants of one step, rounded from double as PyTorch rounds its scalars.
  struct StepConstants {
    float beta1, one_minus_beta1, beta2, one_minus_beta2, bias_correction2_sqrt, eps, neg_step_size;
  };

  // One parameter's n elements, in a plain loop: each element takes the same correctly rounded
  // operations wherever the buffers lie. (With Eigen expressions the vectorized path peels
  // scalar elements up to the buffers' alignment, and the scalar and vector code did not round
  // alike: AdamW's trajectory changed with the buffers' offset modulo 64 bytes, so identically
  // seeded runs differed and a resumed run did not repeat an uninterrupted one; tests/optim,
  // "[determinism]".) decay: AdamW's factor applied to w first, or Adam's L2 weight added to
  // the gradient; 1 and 0 for none.
  static void update(float* w, const float* g, float* m, float* v, std::size_t n, float decay,
                     const StepConstants& c) {
    for (std::size_t i = 0; i < n; ++i) {
      float gi = g[i];
      if (kDecoupled)
        w[i] *= decay;
      else
        gi += decay * w[i];
      m[i] = m[i] * c.beta1 + c.one_minus_beta1 * gi;
      v[i] = v[i] * c.beta2 + (c.one_minus_beta2 * gi) * gi;
      w[i] = w[i] + (c.neg_step_size * m[i]) / (std::sqrt(v[i]) / c.bias_correction2_sqrt + c.eps);
    }
  }

  void step_impl(const std::vector<ParamRef>& params) {
    ++step_;
    const double t = static_cast<double>(step_);
    const double bias_correction1 = 1.0 - std::pow(options_.beta1, t);
    const double bias_correction2 = 1.0 - std::pow(options_.beta2, t);
    const StepConstants c{static_cast<float>(options_.beta1),
                          static_cast<float>(1.0 - options_.beta1),
                          static_cast<float>(options_.beta2),
                          static_cast<float>(1.0 - options_.beta2),
                          static_cast<float>(std::sqrt(bias_correction2)),
                          static_cast<float>(options_.eps),
                          static_cast<float>(-(options_.lr / bias_correction1))};
    const auto decay = static_cast<float>(kDecoupled ? 1.0 - options_.lr * options_.weight_decay
                                                     : options_.weight_decay);
    std::size_t offset = 0;
    for (const ParamRef& p : params) {
      if (p.size == 0) continue;
      const bool decays = p.weight_decay && options_.weight_decay != 0.0;
      update(p.value, p.grad, exp_avg_.data() + offset, exp_avg_sq_.data() + offset, p.size,
             decays ? decay : (kDecoupled ? 1.0f : 0.0f), c);
      offset += p.size;
    }
  }

  std::vector<ParamRef> params_;
  Options options_;
  std::vector<float> exp_avg_;     // first moments of all parameters, back to back
  std::vector<float> exp_avg_sq_;  // second moments
  std::int64_t step_ = 0;
};

using AdamOptions = AdamOptionsT<false>;
using AdamWOptions = AdamOptionsT<true>;
/// torch.optim.Adam: L2 weight decay added to the gradient.
using Adam = AdamT<false>;
/// torch.optim.AdamW: decoupled weight decay, w *= 1 - lr * wd before the update.
using AdamW = AdamT<true>;

}  // namespace optim
}  // namespace fq

#endif  // FQ_OPTIM_ADAM_HPP_
