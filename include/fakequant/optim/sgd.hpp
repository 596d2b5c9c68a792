// SPDX-License-Identifier: MIT
// fakequant/optim/sgd.hpp: stochastic gradient descent with momentum, dampening, Nesterov
// momentum and L2 weight decay, with the semantics of torch.optim.SGD (PyTorch 1.13).
//
// Per parameter w with gradient g, learning rate lr, momentum mu, dampening tau, decay wd:
//   d = g + wd * w                       (only when wd != 0 and the parameter decays)
//   b = d                                (first step: the buffer starts as a copy of d)
//   b = mu * b + (1 - tau) * d           (later steps; only when mu != 0)
//   d = d + mu * b  (Nesterov)   or   d = b  (classic momentum)
//   w = w - lr * d
// Arithmetic is float32 like PyTorch's kernels; hyper-parameters are held as double and
// rounded to float where PyTorch rounds its Python scalars. Nesterov needs mu > 0 and tau = 0
// (as in PyTorch). The momentum buffers are allocated once, at construction.
#ifndef FQ_OPTIM_SGD_HPP_
#define FQ_OPTIM_SGD_HPP_

#include <algorithm>  // copy
#include <cstddef>    // size_t
#include <utility>    // move
#include <vector>     // vector

#include <fakequant/base/error.hpp>
#include <fakequant/base/state.hpp>
#include <fakequant/optim/param.hpp>

namespace fq {
namespace optim {

/// Hyper-parameters of Sgd; the defaults are PyTorch's (lr has none there: set it).
struct SgdOptions {
  double lr = 0.01;           ///< learning rate, >= 0
  double momentum = 0.0;      ///< mu, >= 0; 0 disables the buffers
  double dampening = 0.0;     ///< tau, >= 0; scales the new gradient by (1 - tau)
  double weight_decay = 0.0;  ///< L2 coefficient added to the gradient, >= 0
  bool nesterov = false;      ///< Nesterov momentum (needs momentum > 0, dampening = 0)
};

/// SGD over a fixed list of parameters (torch.optim.SGD).
class Sgd {
 public:
  /// Builds the optimizer and its momentum buffers for `params` (views, not owned).
  explicit Sgd(std::vector<ParamRef> params, const SgdOptions& options = SgdOptions())
      : params_(std::move(params)), options_(options) {
    constexpr const char* kWhere = "Sgd";
    detail::check_param_list(params_, kWhere);
    detail::check_non_negative(options_.lr, "lr", kWhere);
    detail::check_non_negative(options_.momentum, "momentum", kWhere);
    detail::check_non_negative(options_.dampening, "dampening", kWhere);
    detail::check_non_negative(options_.weight_decay, "weight_decay", kWhere);
    FQ_CHECK(!options_.nesterov || (options_.momentum > 0.0 && options_.dampening == 0.0),
             ErrorCode::kInvalidArgument,
             ::fq::detail::msg(kWhere,
                               ": Nesterov momentum requires momentum > 0 and dampening "
                               "0, got momentum ",
                               options_.momentum, " and dampening ", options_.dampening));
    if (options_.momentum != 0.0) buffers_.assign(detail::total_size(params_), 0.0f);
  }

  /// Applies one update to the parameters given at construction.
  void step() { step_impl(params_); }

  /// Applies one update to `params`, which must match the construction list size for size
  /// (the pointers may have moved); they become the list that zero_grad() and step() use.
  void step(const std::vector<ParamRef>& params) {
    detail::check_same_layout(params_, params, "Sgd::step");
    std::copy(params.begin(), params.end(), params_.begin());
    step_impl(params_);
  }

  /// Sets every gradient to zero.
  void zero_grad() noexcept { optim::zero_grad(params_); }

  /// The learning rate of the next step.
  double lr() const noexcept { return options_.lr; }
  /// Changes the learning rate (for schedules); it must be finite and >= 0.
  void set_lr(double lr) {
    detail::check_non_negative(lr, "lr", "Sgd::set_lr");
    options_.lr = lr;
  }

  const SgdOptions& options() const noexcept { return options_; }
  const std::vector<ParamRef>& params() const noexcept { return params_; }

  /// The checkpoint state (base/state.hpp): the learning rate (a schedule may have set it),
  /// the momentum buffers and whether the next step is the first; the other hyper-parameters
  /// and the parameters' sizes must match.
  template <class V>
  void visit_state(V& v) {
    v.kind("sgd");
    v.config("momentum", options_.momentum);
    v.config("dampening", options_.dampening);
    v.config("weight_decay", options_.weight_decay);
    v.config("nesterov", options_.nesterov);
    detail::visit_param_layout(v, params_);
    v.state("lr", options_.lr, state_non_negative());
    v.state_span("momentum_buffer", buffers_.data(), buffers_.size(), state_finite());
    v.state("first_step", first_step_);
  }

 private:
  // One parameter's n elements, in a plain loop: each element takes the same operations
  // wherever the buffers lie (Eigen's vectorized path peels scalar elements up to the buffers'
  // alignment, so results depended on heap addresses; see optim/adam.hpp). wd: the L2 weight
  // added to the gradient (0: none); buffer: the momentum buffer, or null without momentum.
  void update(float* w, const float* g, float* buffer, std::size_t n, float wd) const {
    const auto neg_lr = static_cast<float>(-options_.lr);
    const auto mu = static_cast<float>(options_.momentum);
    const auto damp = static_cast<float>(1.0 - options_.dampening);
    for (std::size_t i = 0; i < n; ++i) {
      const float d = wd != 0.0f ? g[i] + wd * w[i] : g[i];
      if (buffer == nullptr) {
        w[i] = w[i] + neg_lr * d;
        continue;
      }
      buffer[i] = first_step_ ? d : buffer[i] * mu + damp * d;
      w[i] = options_.nesterov ? w[i] + neg_lr * (d + mu * buffer[i]) : w[i] + neg_lr * buffer[i];
    }
  }

  void step_impl(const std::vector<ParamRef>& params) {
    std::size_t offset = 0;
    for (const ParamRef& p : params) {
      if (p.size == 0) continue;
      float* buffer = buffers_.empty() ? nullptr : buffers_.data() + offset;
      update(p.value, p.grad, buffer, p.size,
             static_cast<float>(p.weight_decay ? options_.weight_decay : 0.0));
      offset += p.size;
    }
    first_step_ = false;
  }

  std::vector<ParamRef> params_;
  SgdOptions options_;
  std::vector<float> buffers_;  // momentum buffers of all parameters, back to back
  bool first_step_ = true;
};

}  // namespace optim
}  // namespace fq

#endif  // FQ_OPTIM_SGD_HPP_
