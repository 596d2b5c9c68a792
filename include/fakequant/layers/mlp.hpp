// SPDX-License-Identifier: MIT
// fakequant/layers/mlp.hpp: QMlp, a transformer's feed-forward block with fake quantizers at
// both matmul inputs (layers/recipe.hpp):
//   y = Iq(act(Iq(x) · Wq(W1)ᵀ + b1)) · Wq(W2)ᵀ + b2      x [..., D] -> [..., hidden] -> [..., D]
// act is GELU (erf form by default, or PyTorch's tanh approximation) or SiLU, in float.
#ifndef FQ_LAYERS_MLP_HPP_
#define FQ_LAYERS_MLP_HPP_

#include <cstdint>  // int64_t
#include <random>   // mt19937
#include <vector>   // vector

#include <fakequant/layers/qlinear.hpp>
#include <fakequant/layers/recipe.hpp>
#include <fakequant/ops/activation.hpp>
#include <fakequant/optim/param.hpp>
#include <fakequant/simd/arch.hpp>
#include <fakequant/tape/tape.hpp>

namespace fq {

/// The MLP's activation.
enum class MlpActivation { kGelu, kGeluTanh, kSilu };

/// Feed-forward block D -> hidden -> D with recipe R's quantizers (file comment).
template <class R = FloatRecipe>
class QMlp {
 public:
  using Linear = QLinear<typename R::weight, NoFakeQuant, typename R::input>;

  QMlp(std::int64_t dim, std::int64_t hidden, std::mt19937& rng,
       MlpActivation act = MlpActivation::kGelu)
      : fc1_(dim, hidden, rng), fc2_(hidden, dim, rng), act_(act) {}

  template <class Arch = DefaultArch>
  Var forward(Tape& tape, const Var& x) {
    const Var h = fc1_.template forward<Arch>(tape, x);
    const Var a = act_ == MlpActivation::kSilu       ? ops::silu(tape, h)
                  : act_ == MlpActivation::kGeluTanh ? ops::gelu(tape, h, ops::GeluApprox::kTanh)
                                                     : ops::gelu(tape, h);
    return fc2_.template forward<Arch>(tape, a);
  }
  /// The checkpoint state (base/state.hpp): the activation (must match) and the two layers.
  template <class V>
  void visit_state(V& v) {
    v.kind("qmlp");
    v.config("activation", static_cast<std::int32_t>(act_));
    v.child("fc1", fc1_);
    v.child("fc2", fc2_);
  }
  std::vector<optim::ParamRef> parameters() { return optim::parameters_of(fc1_, fc2_); }
  template <class F>
  void for_each_quantizer(F&& f) {
    fc1_.for_each_quantizer(f);
    fc2_.for_each_quantizer(f);
  }
  /// f(layer) for the two linear layers.
  template <class F>
  void for_each_linear(F&& f) {
    f(fc1_);
    f(fc2_);
  }
  Linear& fc1() noexcept { return fc1_; }
  Linear& fc2() noexcept { return fc2_; }

 private:
  Linear fc1_, fc2_;
  MlpActivation act_;
};

}  // namespace fq

#endif  // FQ_LAYERS_MLP_HPP_
