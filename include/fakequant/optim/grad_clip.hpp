// SPDX-License-Identifier: MIT
// fakequant/optim/grad_clip.hpp: gradient-norm clipping, torch.nn.utils.clip_grad_norm_
// (PyTorch 1.13, L2 norm).
//
//   total = || (||g_1||, ||g_2||, ...) ||_2          (the L2 norm over all gradients)
//   coef  = min(max_norm / (total + 1e-6), 1)
//   g_i   = g_i * coef                               (every gradient, in place)
// Returns `total` (before clipping). As in PyTorch the per-parameter norms and `total` are
// float32 values and `coef` is computed in float; the sums of squares are accumulated in
// double. A NaN or Inf total norm is an error (kNonFiniteInput) and leaves the gradients
// untouched: PyTorch's error_if_nonfinite=True.
#ifndef FQ_OPTIM_GRAD_CLIP_HPP_
#define FQ_OPTIM_GRAD_CLIP_HPP_

#include <algorithm>  // min
#include <cmath>      // isfinite, isnan, sqrt
#include <vector>     // vector

#include <Eigen/Core>

#include <fakequant/base/error.hpp>
#include <fakequant/optim/param.hpp>

namespace fq {
namespace optim {

/// Scales all gradients so that their total L2 norm is at most `max_norm` (>= 0; +Inf never
/// clips); returns the total norm before scaling. An empty list returns 0.
inline float clip_grad_norm(const std::vector<ParamRef>& params, double max_norm) {
  constexpr const char* kWhere = "clip_grad_norm";
  FQ_CHECK(!std::isnan(max_norm) && max_norm >= 0.0, ErrorCode::kInvalidArgument,
           ::fq::detail::msg(kWhere, ": max_norm must be >= 0, got ", max_norm));
  detail::check_param_list(params, kWhere);
  double total_sq = 0.0;
  for (const ParamRef& p : params) {
    if (p.size == 0) continue;
    double sq = 0.0;  // in order, in double: the same sum wherever the gradient lies
    for (std::size_t i = 0; i < p.size; ++i)
      sq += static_cast<double>(p.grad[i]) * static_cast<double>(p.grad[i]);
    const auto norm = static_cast<float>(std::sqrt(sq));
    total_sq += static_cast<double>(norm) * static_cast<double>(norm);
  }
  const auto total = static_cast<float>(std::sqrt(total_sq));
  FQ_CHECK(std::isfinite(total), ErrorCode::kNonFiniteInput,
           ::fq::detail::msg(kWhere, ": the total gradient norm is ", total,
                             ", so the gradients cannot be clipped"));
  const float coef = std::min(static_cast<float>(max_norm) / (total + 1e-6f), 1.0f);
  for (const ParamRef& p : params)
    if (p.size != 0) Eigen::Map<Eigen::ArrayXf>(p.grad, static_cast<Eigen::Index>(p.size)) *= coef;
  return total;
}

}  // namespace optim
}  // namespace fq

#endif  // FQ_OPTIM_GRAD_CLIP_HPP_
