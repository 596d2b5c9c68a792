// SPDX-License-Identifier: MIT
// fakequant/ops/batch_norm.hpp: batch normalisation over axis 1 of [N, C] or [N, C, H, W].
//
// Training (batch statistics), M = N·H·W values per channel:
//   μ = Σx/M, σ² = Σ(x−μ)²/M (biased), x̂ = (x−μ)/√(σ²+ε), y = γ·x̂ + β;
//   running_mean ← (1−m)·running_mean + m·μ, running_var ← (1−m)·running_var + m·σ²·M/(M−1)
//   (PyTorch's unbiased running variance; skipped when `update_stats` is false).
//   Gradient: dβ += Σdy, dγ += Σdy·x̂, dx += γ/(M·√(σ²+ε)) · (M·dy − Σdy − x̂·Σdy·x̂).
// Evaluation (running statistics): y = γ·(x − running_mean)/√(running_var+ε) + β;
//   dx += dy·γ/√(running_var+ε); dγ, dβ as above with x̂ from the running statistics.
//   dx is stored, not added, when this op is its first writer (tape/grad_state.hpp).
// Channel sums: float within one image's plane (detail::plane_reduce: an order fixed by the plane
// size, so the results do not depend on where x lies), double across the batch.
// batch_norm_relu fuses clamp(·, 0, hi) (relu, hi = +inf; relu6, hi = 6) into the op: y =
//   min(max(γ·x̂ + β, 0), hi), clamped in place (no second output and no second zeroed
//   gradient); the backward uses dy·[0 < y < hi] (y the clamped output: the same test as on
//   the normalised value) in place of dy, made in one pass as clamped_relu's backward makes it
//   but stored into an arena buffer instead of added to the separate op's zeroed gradient (an
//   arena buffer too: the per-plane sums take the same path). Forward and gradients are bit
//   for bit those of relu(batch_norm(…)) or relu6.
// Synchronized (a SyncBatchStats scope alive in training, base/communicator.hpp): M, Σx and
// Σ(x−μ)² are summed over ranks in double (two all-reduces), so μ, σ² and the running
// statistics are those of the global batch and identical on every rank; the backward sums
// Σdy and Σdy·x̂ over ranks for dx (one all-reduce) while dγ, dβ keep this rank's sums (the
// gradient all-reduce averages them). On one rank this path gives the local path's bits.
#ifndef FQ_OPS_BATCH_NORM_HPP_
#define FQ_OPS_BATCH_NORM_HPP_

#include <algorithm>  // max
#include <cmath>      // isfinite, sqrt
#include <cstdint>    // int64_t
#include <limits>     // numeric_limits
#include <vector>     // vector

#include <fakequant/base/communicator.hpp>
#include <fakequant/base/config.hpp>
#include <fakequant/core/ordered_sum.hpp>
#include <fakequant/ops/elementwise.hpp>
#include <fakequant/simd/arch.hpp>
#include <fakequant/simd/ordered_reduce.hpp>
#include <fakequant/tape/tape.hpp>

namespace fq {
namespace ops {

struct BatchNormOptions {
  bool training = true;      ///< batch statistics (true) or running statistics (false)
  bool update_stats = true;  ///< in training, update the running statistics
  float momentum = 0.1f;
  float eps = 1e-5f;
};

namespace detail {

// A plane's sum Σ_k term(k) over hw floats in an order fixed by hw alone, never by the plane's
// address (simd/ordered_reduce.hpp). Kind 0: Σ a; 1: Σ (a − m)²; 2: Σ b·(a − m).
template <class Arch, int Kind>
float plane_reduce(const float* a, const float* b, float m, std::int64_t hw) noexcept {
  const auto term = [&](std::int64_t k) {
    if constexpr (Kind == 0) {
      return a[k];
    } else if constexpr (Kind == 1) {
      const float d = a[k] - m;
      return d * d;
    } else {
      return b[k] * (a[k] - m);
    }
  };
#if FQ_HAS_XSIMD
  if constexpr (kSimdArch<Arch>) {
    using B = xsimd::batch<float, Arch>;
    const auto vterm = [&](std::int64_t k) {
      const B v = B::load_unaligned(a + k);
      if constexpr (Kind == 0) {
        return v;
      } else if constexpr (Kind == 1) {
        const B d = v - B(m);
        return d * d;
      } else {
        return B::load_unaligned(b + k) * (v - B(m));
      }
    };
    return simd::ordered_sum<Arch>(hw, vterm, term);
  }
#endif
  return fq::detail::ordered_sum(hw, term);
}
template <class Arch>
float plane_sum(const float* p, std::int64_t hw) noexcept {
  return plane_reduce<Arch, 0>(p, nullptr, 0.0f, hw);
}
template <class Arch>
float plane_sum_sq_dev(const float* p, std::int64_t hw, float mean) noexcept {
  return plane_reduce<Arch, 1>(p, nullptr, mean, hw);
}

// The synchronized training statistics (file comment): mu[ch], istd[ch] of the global batch,
// and the running statistics updated from them. Returns the global M.
template <class Arch>
std::int64_t batch_norm_global_stats(Communicator& comm, const float* x, std::int64_t n,
                                     std::int64_t c, std::int64_t hw, std::int64_t m, float* mu,
                                     float* istd, float* running_mean, float* running_var,
                                     const BatchNormOptions& opt) {
  // [Σx per channel, M], then [Σ(x−μ)² per channel]: the sums of the local path, per rank.
  std::vector<double> acc(static_cast<std::size_t>(c + 1));
  FQ_PARALLEL_FOR
  for (std::int64_t ch = 0; ch < c; ++ch) {
    double s = 0.0;
    for (std::int64_t i = 0; i < n; ++i) s += plane_sum<Arch>(x + (i * c + ch) * hw, hw);
    acc[static_cast<std::size_t>(ch)] = s;
  }
  acc[static_cast<std::size_t>(c)] = static_cast<double>(m);
  comm.all_reduce(acc.data(), acc.size(), ReduceOp::kSum);
  const double mg = acc[static_cast<std::size_t>(c)];
  FQ_CHECK(mg > 1.0, ErrorCode::kShapeMismatch,
           fq::detail::msg("batch_norm: synchronized training needs more than one value per "
                           "channel over all ranks, got ",
                           mg));
  FQ_PARALLEL_FOR
  for (std::int64_t ch = 0; ch < c; ++ch) {
    const auto meanf = static_cast<float>(acc[static_cast<std::size_t>(ch)] / mg);
    double s2 = 0.0;
    for (std::int64_t i = 0; i < n; ++i)
      s2 += plane_sum_sq_dev<Arch>(x + (i * c + ch) * hw, hw, meanf);
    mu[ch] = meanf;
    acc[static_cast<std::size_t>(ch)] = s2;
  }
  comm.all_reduce(acc.data(), static_cast<std::size_t>(c), ReduceOp::kSum);
  for (std::int64_t ch = 0; ch < c; ++ch) {
    const double var = acc[static_cast<std::size_t>(ch)] / mg;
    istd[ch] = static_cast<float>(1.0 / std::sqrt(var + static_cast<double>(opt.eps)));
    if (opt.update_stats) {
      const float mo = opt.momentum;
      running_mean[ch] = (1.0f - mo) * running_mean[ch] + mo * mu[ch];
      running_var[ch] =
          (1.0f - mo) * running_var[ch] + mo * static_cast<float>(var * mg / (mg - 1.0));
    }
  }
  return static_cast<std::int64_t>(mg);
}

// Channel ch of a batch-norm backward, shared by the local and the synchronized paths: the
// batch sums Σdy and Σdy·x̂ (double), added to dβ and dγ.
struct BnChannelSums {
  double dy, dy_xhat;
};
// dy_all: the gradient reaching the normalisation (y's, or batch_norm_relu's masked one).
template <class Arch>
BnChannelSums bn_channel_grad_sums(const Var& x, const Var& gamma, const Var& beta,
                                   const float* dy_all, float mu, float istd, std::int64_t n,
                                   std::int64_t c, std::int64_t hw, std::int64_t ch) {
  double sdy = 0.0, sdyx = 0.0;
  for (std::int64_t i = 0; i < n; ++i) {
    const std::int64_t off = (i * c + ch) * hw;
    const float* dy = dy_all + off;
    const float* xp = x.value() + off;
    sdy += plane_sum<Arch>(dy, hw);
    sdyx += plane_reduce<Arch, 2>(xp, dy, mu, hw);
  }
  const double sdyxhat = sdyx * istd;
  if (gamma.requires_grad()) gamma.grad()[ch] += static_cast<float>(sdyxhat);
  if (beta.requires_grad()) beta.grad()[ch] += static_cast<float>(sdy);
  return {sdy, sdyxhat};
}
// dx (+)= k·(dy − mdy − x̂·mdyx) over channel ch (k = γ·istd; mdy, mdyx the means over the
// batch, 0 in evaluation); stored when this op is dx's first writer (tape/grad_state.hpp).
inline void bn_channel_dx(const Var& x, GradWrite dx, const float* dy_all, float mu, float istd,
                          float k, float mdy, float mdyx, std::int64_t n, std::int64_t c,
                          std::int64_t hw, std::int64_t ch) {
  using Block = Eigen::Map<Eigen::ArrayXf>;
  for (std::int64_t i = 0; i < n; ++i) {
    const std::int64_t off = (i * c + ch) * hw;
    const Eigen::Map<const Eigen::ArrayXf> dy(dy_all + off, hw);
    const auto xhat = (Block(x.value() + off, hw) - mu) * istd;
    write_grad(dx, off, hw, k * (dy - mdy - xhat * mdyx));
  }
}

// The synchronized training backward (file comment); m is the global count.
template <class Arch>
void batch_norm_backward_synced(Communicator& comm, const Var& x, const Var& gamma, const Var& beta,
                                const float* dy, const float* mu, const float* istd, std::int64_t n,
                                std::int64_t c, std::int64_t hw, std::int64_t m) {
  std::vector<double> acc(static_cast<std::size_t>(2 * c));  // [Σdy, Σdy·x̂] per channel
  FQ_PARALLEL_FOR
  for (std::int64_t ch = 0; ch < c; ++ch) {
    const BnChannelSums sums =
        bn_channel_grad_sums<Arch>(x, gamma, beta, dy, mu[ch], istd[ch], n, c, hw, ch);
    acc[static_cast<std::size_t>(ch)] = sums.dy;
    acc[static_cast<std::size_t>(c + ch)] = sums.dy_xhat;
  }
  if (!x.requires_grad()) return;
  comm.all_reduce(acc.data(), acc.size(), ReduceOp::kSum);
  const GradWrite dx = x.claim_grad_unshared({&gamma, &beta});  // γ, β add during the loop
  FQ_PARALLEL_FOR
  for (std::int64_t ch = 0; ch < c; ++ch) {
    const float k = gamma.value()[ch] * istd[ch];
    const auto md = static_cast<double>(m);
    const auto mdy = static_cast<float>(acc[static_cast<std::size_t>(ch)] / md);
    const auto mdyx = static_cast<float>(acc[static_cast<std::size_t>(c + ch)] / md);
    bn_channel_dx(x, dx, dy, mu[ch], istd[ch], k, mdy, mdyx, n, c, hw, ch);
  }
}

// batch_norm (clamp false) and batch_norm_relu (clamp to [0, hi]); op names the caller.
template <class Arch>
Var batch_norm(Tape& tape, const Var& x, const Var& gamma, const Var& beta, float* running_mean,
               float* running_var, const BatchNormOptions& opt, bool clamp, float hi,
               const char* op) {
  fq::detail::check_tape(tape, {&x, &gamma, &beta}, op);
  FQ_CHECK(x.shape().rank == 2 || x.shape().rank == 4, ErrorCode::kShapeMismatch,
           fq::detail::msg(op, ": x ", x.shape().str(), " must be [N, C] or [N, C, H, W]"));
  const std::int64_t n = x.size(0), c = x.size(1),
                     hw = x.numel() / std::max<std::int64_t>(n * c, 1);
  FQ_CHECK(gamma.numel() == c && beta.numel() == c, ErrorCode::kParamCountMismatch,
           fq::detail::msg(op, ": gamma and beta need ", c, " elements"));
  FQ_CHECK(running_mean != nullptr && running_var != nullptr, ErrorCode::kInvalidArgument,
           fq::detail::msg(op, ": running statistics are null"));
  FQ_CHECK(!clamp || hi > 0.0f, ErrorCode::kInvalidArgument,
           fq::detail::msg(op, ": the clamp's upper bound must be > 0, got ", hi));
  const std::int64_t m = n * hw;
  // Synchronized statistics (file comment) only in training: running statistics are equal on
  // every rank already.
  Communicator* const comm = opt.training ? batch_stats_communicator() : nullptr;
  FQ_CHECK(!opt.training || comm != nullptr || m > 1, ErrorCode::kShapeMismatch,
           fq::detail::msg(op, ": training needs more than one value per channel, got ", m));
  FQ_CHECK(std::isfinite(opt.eps) && opt.eps > 0.0f && opt.momentum >= 0.0f && opt.momentum <= 1.0f,
           ErrorCode::kInvalidArgument,
           fq::detail::msg(op, ": eps must be finite and > 0 and momentum in [0, 1], got eps ",
                           opt.eps, " and momentum ", opt.momentum));
  const bool need = fq::detail::needs_grad(tape, {&x, &gamma, &beta});
  Var y = tape.variable(x.shape(), need);
  // Per channel: the mean used and 1/sqrt(var + eps).
  float* mu = tape.scratch<float>(static_cast<std::size_t>(2 * c));
  float* istd = mu + c;
  using Block = Eigen::Map<Eigen::ArrayXf>;
  // The global batch's statistics; m becomes the global count (used by the backward).
  const std::int64_t m_all =
      comm != nullptr ? detail::batch_norm_global_stats<Arch>(*comm, x.value(), n, c, hw, m, mu,
                                                              istd, running_mean, running_var, opt)
                      : m;
  if (!opt.training)  // checked here: no error may leave the parallel loop below
    for (std::int64_t ch = 0; ch < c; ++ch)
      FQ_CHECK(running_var[ch] >= 0.0f, ErrorCode::kInvalidArgument,
               fq::detail::msg(op, ": a running variance is negative"));
  FQ_PARALLEL_FOR
  for (std::int64_t ch = 0; ch < c; ++ch) {
    if (comm != nullptr) {
      // mu, istd and the running statistics are set already.
    } else if (opt.training) {
      double s = 0.0, s2 = 0.0;
      for (std::int64_t i = 0; i < n; ++i) s += plane_sum<Arch>(x.value() + (i * c + ch) * hw, hw);
      const double mean = s / static_cast<double>(m);
      const auto meanf = static_cast<float>(mean);
      for (std::int64_t i = 0; i < n; ++i)
        s2 += plane_sum_sq_dev<Arch>(x.value() + (i * c + ch) * hw, hw, meanf);
      const double var = s2 / static_cast<double>(m);
      mu[ch] = static_cast<float>(mean);
      istd[ch] = static_cast<float>(1.0 / std::sqrt(var + static_cast<double>(opt.eps)));
      if (opt.update_stats) {
        const float mo = opt.momentum;
        running_mean[ch] = (1.0f - mo) * running_mean[ch] + mo * mu[ch];
        running_var[ch] =
            (1.0f - mo) * running_var[ch] +
            mo * static_cast<float>(var * static_cast<double>(m) / static_cast<double>(m - 1));
      }
    } else {
      mu[ch] = running_mean[ch];
      istd[ch] = 1.0f / std::sqrt(running_var[ch] + opt.eps);
    }
    const float a = gamma.value()[ch] * istd[ch], bb = beta.value()[ch] - mu[ch] * a;
    for (std::int64_t i = 0; i < n; ++i) {
      const std::int64_t off = (i * c + ch) * hw;
      Block(y.value() + off, hw) = Block(x.value() + off, hw) * a + bb;
    }
  }
  if (clamp) y.array() = y.array().max(0.0f).min(hi);  // clamped_relu's expression, in place
  // The masked gradient (file comment): written whole by the backward, so not zeroed.
  float* const buf =
      need && clamp ? tape.scratch<float>(static_cast<std::size_t>(x.numel())) : nullptr;
  if (need)
    tape.push_backward(
        [x, gamma, beta, y, mu, istd, n, c, hw, m = m_all, comm, training = opt.training, hi, buf] {
          if (buf != nullptr)  // clamped_relu's backward into a zeroed gradient, as a store
            ops::impl::clamped_relu_backward<Arch, false>(y.value(), y.grad(), buf, y.numel(), hi);
          const float* const dy = buf != nullptr ? buf : y.grad();
          if (comm != nullptr) {
            batch_norm_backward_synced<Arch>(*comm, x, gamma, beta, dy, mu, istd, n, c, hw, m);
            return;
          }
          const GradWrite dx = x.claim_grad_unshared({&gamma, &beta});
          FQ_PARALLEL_FOR
          for (std::int64_t ch = 0; ch < c; ++ch) {
            const BnChannelSums sums =
                bn_channel_grad_sums<Arch>(x, gamma, beta, dy, mu[ch], istd[ch], n, c, hw, ch);
            if (!x.requires_grad()) continue;
            const float k = gamma.value()[ch] * istd[ch];
            // Training: dx = k·(dy − mean(dy) − x̂·mean(dy·x̂)); evaluation: dx = k·dy.
            const auto md = static_cast<double>(m);
            const float mdy = training ? static_cast<float>(sums.dy / md) : 0.0f;
            const float mdyx = training ? static_cast<float>(sums.dy_xhat / md) : 0.0f;
            bn_channel_dx(x, dx, dy, mu[ch], istd[ch], k, mdy, mdyx, n, c, hw, ch);
          }
        });
  return y;
}
}  // namespace detail

/// Batch norm; `running_mean` and `running_var` (C floats each) belong to the caller. Arch: the
/// instruction set of the per-plane sums (simd/arch.hpp).
template <class Arch = DefaultArch>
Var batch_norm(Tape& tape, const Var& x, const Var& gamma, const Var& beta, float* running_mean,
               float* running_var, const BatchNormOptions& opt = {}) {
  return detail::batch_norm<Arch>(tape, x, gamma, beta, running_mean, running_var, opt, false, 0.0f,
                                  "batch_norm");
}

/// relu(batch_norm(…)) in one op (hi = +inf; hi = 6 for relu6; file comment): the same bits,
/// without the activation's own pass over the output, its gradient buffer and its backward.
template <class Arch = DefaultArch>
Var batch_norm_relu(Tape& tape, const Var& x, const Var& gamma, const Var& beta,
                    float* running_mean, float* running_var, const BatchNormOptions& opt = {},
                    float hi = std::numeric_limits<float>::infinity()) {
  return detail::batch_norm<Arch>(tape, x, gamma, beta, running_mean, running_var, opt, true, hi,
                                  "batch_norm_relu");
}

/// The folding factor γ/√(running_var + ε) of QAT batch-norm folding, as a Var: its gradient
/// flows to γ (running_var is a statistic, not a parameter).
inline Var bn_fold_factor(Tape& tape, const Var& gamma, const float* running_var, float eps) {
  fq::detail::check_tape(tape, {&gamma}, "bn_fold_factor");
  // eps <= 0 (or NaN) would give 1/sqrt(0) = inf or NaN factors for a zero running variance.
  FQ_CHECK(std::isfinite(eps) && eps > 0.0f, ErrorCode::kInvalidArgument,
           fq::detail::msg("bn_fold_factor: eps must be finite and > 0, got ", eps));
  const std::int64_t c = gamma.numel();
  FQ_CHECK(running_var != nullptr || c == 0, ErrorCode::kInvalidArgument,
           "bn_fold_factor: running_var is null");
  const bool need = fq::detail::needs_grad(tape, {&gamma});
  Var f = tape.variable(gamma.shape(), need);
  float* rstd = tape.scratch<float>(static_cast<std::size_t>(c));
  for (std::int64_t ch = 0; ch < c; ++ch) {
    FQ_CHECK(running_var[ch] >= 0.0f, ErrorCode::kInvalidArgument,
             "bn_fold_factor: a running variance is negative");
    rstd[ch] = 1.0f / std::sqrt(running_var[ch] + eps);
    f.value()[ch] = gamma.value()[ch] * rstd[ch];
  }
  if (need)
    tape.push_backward([gamma, f, rstd, c] {
      for (std::int64_t ch = 0; ch < c; ++ch) gamma.grad()[ch] += f.grad()[ch] * rstd[ch];
    });
  return f;
}

}  // namespace ops
}  // namespace fq

#endif  // FQ_OPS_BATCH_NORM_HPP_
