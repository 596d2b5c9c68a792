// SPDX-License-Identifier: MIT
// fakequant/optim/lr_schedule.hpp: learning-rate schedules as closed forms of the step (or
// epoch) index t = 0, 1, 2, ..., equal to PyTorch 1.13's _get_closed_form_lr, in double.
//
//   StepLR:             lr(t) = base * gamma^floor(t / step_size)
//   CosineAnnealingLR:  lr(t) = eta_min + (base - eta_min) * (1 + cos(pi * t / t_max)) / 2
//     with a linear warm-up of W steps (torch.optim.lr_scheduler.LinearLR from start_factor
//     to 1, then the cosine, as SequentialLR([LinearLR, CosineAnnealingLR], [W])):
//       t < W:  lr(t) = base * (start_factor + (1 - start_factor) * t / W)
//       t >= W: the cosine at t - W.
// As in PyTorch the cosine is periodic past t_max (it rises again after reaching eta_min).
// Use: optimizer.set_lr(schedule.lr_at(t)) before the step t.
#ifndef FQ_OPTIM_LR_SCHEDULE_HPP_
#define FQ_OPTIM_LR_SCHEDULE_HPP_

#include <cmath>    // cos, isfinite, pow
#include <cstdint>  // int64_t

#include <fakequant/base/error.hpp>
#include <fakequant/optim/param.hpp>

namespace fq {
namespace optim {

namespace detail {
inline void check_step_index(std::int64_t t, const char* where) {
  FQ_CHECK(t >= 0, ErrorCode::kInvalidArgument,
           ::fq::detail::msg(where, ": step index must be >= 0, got ", t));
}
}  // namespace detail

/// Multiplies the learning rate by gamma every step_size steps (torch StepLR).
class StepLR {
 public:
  StepLR(double base_lr, std::int64_t step_size, double gamma = 0.1)
      : base_lr_(base_lr), step_size_(step_size), gamma_(gamma) {
    detail::check_non_negative(base_lr, "base_lr", "StepLR");
    detail::check_non_negative(gamma, "gamma", "StepLR");
    FQ_CHECK(step_size > 0, ErrorCode::kInvalidArgument,
             ::fq::detail::msg("StepLR: step_size must be > 0, got ", step_size));
  }

  /// A closed form holds no state: a checkpoint (base/state.hpp) checks its configuration.
  template <class V>
  void visit_state(V& v) const {
    v.kind("step_lr");
    v.config("base_lr", base_lr_);
    v.config("step_size", step_size_);
    v.config("gamma", gamma_);
  }

  /// The learning rate at step t >= 0.
  double lr_at(std::int64_t t) const {
    detail::check_step_index(t, "StepLR::lr_at");
    const std::int64_t decays = t / step_size_;  // whole steps only: integer division
    return base_lr_ * std::pow(gamma_, static_cast<double>(decays));
  }

 private:
  double base_lr_;
  std::int64_t step_size_;
  double gamma_;
};

/// A linear warm-up from start_factor * base to base over `steps` steps (0: none).
struct LinearWarmup {
  std::int64_t steps = 0;           ///< warm-up length W, >= 0
  double start_factor = 1.0 / 3.0;  ///< first factor, in (0, 1] (LinearLR's default)
};

/// Cosine annealing from base to eta_min over t_max steps, after an optional linear warm-up
/// (torch CosineAnnealingLR, preceded by LinearLR through SequentialLR).
class CosineAnnealingLR {
 public:
  CosineAnnealingLR(double base_lr, std::int64_t t_max, double eta_min = 0.0,
                    const LinearWarmup& warmup = LinearWarmup())
      : base_lr_(base_lr), eta_min_(eta_min), t_max_(t_max), warmup_(warmup) {
    constexpr const char* kWhere = "CosineAnnealingLR";
    detail::check_non_negative(base_lr, "base_lr", kWhere);
    detail::check_non_negative(eta_min, "eta_min", kWhere);
    FQ_CHECK(t_max > 0, ErrorCode::kInvalidArgument,
             ::fq::detail::msg(kWhere, ": t_max must be > 0, got ", t_max));
    FQ_CHECK(warmup.steps >= 0, ErrorCode::kInvalidArgument,
             ::fq::detail::msg(kWhere, ": warm-up steps must be >= 0, got ", warmup.steps));
    FQ_CHECK(warmup.start_factor > 0.0 && warmup.start_factor <= 1.0, ErrorCode::kInvalidArgument,
             ::fq::detail::msg(kWhere, ": warm-up start_factor must be in (0, 1], got ",
                               warmup.start_factor));
  }

  /// A closed form holds no state: a checkpoint (base/state.hpp) checks its configuration.
  template <class V>
  void visit_state(V& v) const {
    v.kind("cosine_annealing_lr");
    v.config("base_lr", base_lr_);
    v.config("eta_min", eta_min_);
    v.config("t_max", t_max_);
    v.config("warmup_steps", warmup_.steps);
    v.config("warmup_start_factor", warmup_.start_factor);
  }

  /// The learning rate at step t >= 0.
  double lr_at(std::int64_t t) const {
    detail::check_step_index(t, "CosineAnnealingLR::lr_at");
    if (t < warmup_.steps) {
      const double w = static_cast<double>(warmup_.steps);
      return base_lr_ *
             (warmup_.start_factor + (1.0 - warmup_.start_factor) * static_cast<double>(t) / w);
    }
    const auto e = static_cast<double>(t - warmup_.steps);
    constexpr double kPi = 3.14159265358979323846;
    return eta_min_ +
           (base_lr_ - eta_min_) * (1.0 + std::cos(kPi * e / static_cast<double>(t_max_))) / 2.0;
  }

 private:
  double base_lr_;
  double eta_min_;
  std::int64_t t_max_;
  LinearWarmup warmup_;
};

}  // namespace optim
}  // namespace fq

#endif  // FQ_OPTIM_LR_SCHEDULE_HPP_
