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

#include <Eigen/Core>

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
  using Array = Eigen::Map<Eigen::ArrayXf>;
  using ConstArray = Eigen::Map<const Eigen::ArrayXf>;

  // `d` is the (possibly decayed) gradient expression; it may read `w`, whose old value it
  // sees because every assignment below is element-wise and `w` is written last.
  template <class D>
  void update(Array& w, const Eigen::ArrayBase<D>& d, float* buffer) const {
    const auto neg_lr = static_cast<float>(-options_.lr);
    if (buffer == nullptr) {
      w = w + neg_lr * d;
      return;
    }
    Array b(buffer, w.size());
    const auto mu = static_cast<float>(options_.momentum);
    if (first_step_)
      b = d;
    else
      b = b * mu + static_cast<float>(1.0 - options_.dampening) * d;
    if (options_.nesterov)
      w = w + neg_lr * (d + mu * b);
    else
      w = w + neg_lr * b;
  }

  void step_impl(const std::vector<ParamRef>& params) {
    std::size_t offset = 0;
    for (const ParamRef& p : params) {
      if (p.size == 0) continue;
      const auto n = static_cast<Eigen::Index>(p.size);
      Array w(p.value, n);
      const ConstArray g(p.grad, n);
      float* buffer = buffers_.empty() ? nullptr : buffers_.data() + offset;
      const auto wd = static_cast<float>(p.weight_decay ? options_.weight_decay : 0.0);
      if (wd != 0.0f)
        update(w, g + wd * w, buffer);
      else
        update(w, g, buffer);
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
