// SPDX-License-Identifier: MIT
// fakequant/layers/norm.hpp: LayerNorm and RmsNorm, the normalization layers of a transformer,
// over the last axis (features) — kept in float, as QAT practice does (their inputs and outputs
// are quantized where a matmul consumes them: layers/recipe.hpp).
//   LayerNorm  y = (x − mean) / sqrt(var + eps) · gamma + beta   (ops::layer_norm; PyTorch's
//              nn.LayerNorm: biased variance, gamma = 1, beta = 0 at init)
//   RmsNorm    y = x / sqrt(mean(x²) + eps) · gamma              (ops::rms_norm; gamma = 1)
// gamma and beta are parameters without weight decay (as timm and nanoGPT exclude them).
#ifndef FQ_LAYERS_NORM_HPP_
#define FQ_LAYERS_NORM_HPP_

#include <cmath>    // isfinite
#include <cstdint>  // int64_t
#include <vector>   // vector

#include <fakequant/base/error.hpp>
#include <fakequant/layers/parameter.hpp>
#include <fakequant/ops/norm.hpp>
#include <fakequant/optim/param.hpp>
#include <fakequant/tape/tape.hpp>

namespace fq {

namespace detail {
inline std::int64_t checked_norm_features(std::int64_t d, float eps, const char* where) {
  FQ_CHECK(d > 0, ErrorCode::kInvalidArgument,
           msg(where, ": the feature count must be > 0, got ", d));
  FQ_CHECK(std::isfinite(eps) && eps > 0.0f, ErrorCode::kInvalidArgument,
           msg(where, ": eps must be finite and > 0, got ", eps));
  return d;
}
}  // namespace detail

/// Layer normalization over the last axis of size `features` (file comment).
class LayerNorm {
 public:
  explicit LayerNorm(std::int64_t features, float eps = 1e-5f)
      : gamma_({detail::checked_norm_features(features, eps, "LayerNorm")}, "layer_norm.weight",
               false),
        beta_({features}, "layer_norm.bias", false),
        eps_(eps) {
    gamma_.fill(1.0f);
  }
  template <class Arch = DefaultArch>
  Var forward(Tape& tape, const Var& x) {
    return ops::layer_norm<Arch>(tape, x, gamma_.var(tape), beta_.var(tape), eps_);
  }
  std::vector<optim::ParamRef> parameters() { return {gamma_.ref(), beta_.ref()}; }
  template <class F>
  void for_each_quantizer(F&&) {}
  Parameter& weight() noexcept { return gamma_; }
  Parameter& bias() noexcept { return beta_; }
  float eps() const noexcept { return eps_; }
  /// The checkpoint state (base/state.hpp): gamma and beta; eps must match.
  template <class V>
  void visit_state(V& v) {
    v.kind("layer_norm");
    v.config("eps", eps_);
    v.child("weight", gamma_);
    v.child("bias", beta_);
  }

 private:
  Parameter gamma_, beta_;
  float eps_;
};

/// Root-mean-square normalization over the last axis of size `features` (file comment).
class RmsNorm {
 public:
  explicit RmsNorm(std::int64_t features, float eps = 1e-6f)
      : gamma_({detail::checked_norm_features(features, eps, "RmsNorm")}, "rms_norm.weight", false),
        eps_(eps) {
    gamma_.fill(1.0f);
  }
  template <class Arch = DefaultArch>
  Var forward(Tape& tape, const Var& x) {
    return ops::rms_norm<Arch>(tape, x, gamma_.var(tape), eps_);
  }
  std::vector<optim::ParamRef> parameters() { return {gamma_.ref()}; }
  template <class F>
  void for_each_quantizer(F&&) {}
  Parameter& weight() noexcept { return gamma_; }
  float eps() const noexcept { return eps_; }
  /// The checkpoint state (base/state.hpp): gamma; eps must match.
  template <class V>
  void visit_state(V& v) {
    v.kind("rms_norm");
    v.config("eps", eps_);
    v.child("weight", gamma_);
  }

 private:
  Parameter gamma_;
  float eps_;
};

}  // namespace fq

#endif  // FQ_LAYERS_NORM_HPP_
