// SPDX-License-Identifier: MIT
// Optimizer behaviour beyond the golden trajectories: empty lists, exempt parameters,
// zero_grad, step() with a moved list, hand-computed first steps, and bad input.
#include <cmath>
#include <cstddef>
#include <limits>
#include <random>
#include <vector>

#include <fakequant/kernels/packed_weights.hpp>
#include <fakequant/optim/adam.hpp>
#include <fakequant/optim/grad_clip.hpp>
#include <fakequant/optim/lr_schedule.hpp>
#include <fakequant/optim/sgd.hpp>

#include "catch.hpp"
#include "test_util.hpp"

namespace {

using fq::ErrorCode;
using fq::optim::ParamRef;

template <class F>
ErrorCode error_of(F&& f) {
  try {
    f();
  } catch (const fq::Error& e) {
    return e.code();
  }
  return ErrorCode{};
}

struct Buffers {
  std::vector<float> value{1.0f, -2.0f, 0.5f};
  std::vector<float> grad{0.25f, 0.5f, -1.0f};
  std::vector<ParamRef> params(bool decays = true) {
    return {ParamRef{value.data(), grad.data(), value.size(), decays, "p"}};
  }
};

using fq_test::kInf;
using fq_test::kNaN;

}  // namespace

TEST_CASE("optimizers: an empty list or a size-0 parameter is a no-op", "[optim]") {
  std::vector<ParamRef> none;
  fq::optim::Sgd sgd(none);
  fq::optim::Adam adam(none);
  sgd.step();
  adam.step();
  sgd.zero_grad();
  CHECK(fq::optim::clip_grad_norm(none, 1.0) == 0.0f);

  Buffers b;
  auto params = b.params();
  params.push_back(ParamRef{nullptr, nullptr, 0, true, "empty"});
  fq::optim::SgdOptions o;
  o.momentum = 0.9;
  fq::optim::Sgd s(params, o);
  s.step();
  CHECK(b.value[0] == 1.0f - 0.01f * 0.25f);
  fq::optim::AdamW w(params);
  w.step();
  CHECK(fq::optim::clip_grad_norm(params, 10.0) > 0.0f);
}

TEST_CASE("SGD: first steps by hand (buffer starts as the gradient, then mu*b + g)", "[optim]") {
  Buffers b;
  fq::optim::SgdOptions o;
  o.lr = 0.5;
  o.momentum = 0.5;
  fq::optim::Sgd sgd(b.params(), o);
  sgd.step();  // b = g = 0.25; w = 1 - 0.5 * 0.25
  CHECK(b.value[0] == 0.875f);
  sgd.step();  // b = 0.5 * 0.25 + 0.25 = 0.375; w = 0.875 - 0.5 * 0.375
  CHECK(b.value[0] == 0.6875f);

  Buffers n;
  o.nesterov = true;
  fq::optim::Sgd nes(n.params(), o);
  nes.step();  // d = g + mu * b = 0.375; w = 1 - 0.1875
  CHECK(n.value[0] == 0.8125f);
}

TEST_CASE("Adam: the first step moves each element by about lr (bias correction)", "[optim]") {
  Buffers b;
  fq::optim::AdamOptions o;
  o.lr = 0.125;
  o.eps = 0.0;
  fq::optim::Adam adam(b.params(), o);
  const std::vector<float> before = b.value;
  adam.step();  // m_hat = g, v_hat = g^2: w -= lr * sign(g)
  for (std::size_t i = 0; i < before.size(); ++i)
    CHECK(b.value[i] == Approx(before[i] - 0.125f * std::copysign(1.0f, b.grad[i])).epsilon(1e-6));
}

TEST_CASE("weight decay skips parameters marked weight_decay = false", "[optim]") {
  for (int kind = 0; kind < 3; ++kind) {
    Buffers decayed, exempt, plain;
    auto run = [&](Buffers& buf, bool decays, double wd) {
      if (kind == 0) {
        fq::optim::SgdOptions o;
        o.weight_decay = wd;
        fq::optim::Sgd(buf.params(decays), o).step();
      } else if (kind == 1) {
        fq::optim::AdamOptions o;
        o.weight_decay = wd;
        fq::optim::Adam(buf.params(decays), o).step();
      } else {
        fq::optim::AdamWOptions o;
        o.weight_decay = wd;
        fq::optim::AdamW(buf.params(decays), o).step();
      }
    };
    run(decayed, true, 0.5);
    run(exempt, false, 0.5);
    run(plain, true, 0.0);
    INFO("kind " << kind);
    CHECK(exempt.value == plain.value);
    CHECK(decayed.value != plain.value);
  }
}

TEST_CASE("zero_grad clears the gradients; step(list) follows moved memory", "[optim]") {
  Buffers b;
  fq::optim::Adam adam(b.params());
  adam.zero_grad();
  CHECK(b.grad == std::vector<float>(3, 0.0f));

  Buffers moved;
  fq::optim::Sgd sgd(b.params());
  sgd.step(moved.params());
  CHECK(moved.value[0] == 1.0f - 0.01f * 0.25f);
  CHECK(b.value[0] == 1.0f);
  sgd.zero_grad();  // now clears the moved list
  CHECK(moved.grad[2] == 0.0f);
}

TEST_CASE("optimizers: bad input is a clear error", "[optim]") {
  Buffers b;
  std::vector<ParamRef> null_value{ParamRef{nullptr, b.grad.data(), 3}};
  std::vector<ParamRef> null_grad{ParamRef{b.value.data(), nullptr, 3}};
  CHECK(error_of([&] { fq::optim::Sgd s(null_value); }) == ErrorCode::kInvalidArgument);
  CHECK(error_of([&] { fq::optim::Adam a(null_grad); }) == ErrorCode::kInvalidArgument);
  CHECK(error_of([&] { fq::optim::clip_grad_norm(null_grad, 1.0); }) ==
        ErrorCode::kInvalidArgument);

  fq::optim::SgdOptions so;
  so.lr = -0.1;
  CHECK(error_of([&] { fq::optim::Sgd s(b.params(), so); }) == ErrorCode::kInvalidArgument);
  so.lr = std::nan("");
  CHECK(error_of([&] { fq::optim::Sgd s(b.params(), so); }) == ErrorCode::kInvalidArgument);
  so = {};
  so.nesterov = true;  // without momentum
  CHECK(error_of([&] { fq::optim::Sgd s(b.params(), so); }) == ErrorCode::kInvalidArgument);
  so.momentum = 0.9;
  so.dampening = 0.1;  // Nesterov with dampening
  CHECK(error_of([&] { fq::optim::Sgd s(b.params(), so); }) == ErrorCode::kInvalidArgument);
  so = {};
  so.momentum = -0.5;
  CHECK(error_of([&] { fq::optim::Sgd s(b.params(), so); }) == ErrorCode::kInvalidArgument);
  so = {};
  so.weight_decay = -1e-4;
  CHECK(error_of([&] { fq::optim::Sgd s(b.params(), so); }) == ErrorCode::kInvalidArgument);

  for (double beta : {-0.1, 1.0, 1.5, std::nan("")}) {
    fq::optim::AdamOptions ao;
    ao.beta1 = beta;
    CHECK(error_of([&] { fq::optim::Adam a(b.params(), ao); }) == ErrorCode::kInvalidArgument);
    fq::optim::AdamWOptions wo;
    wo.beta2 = beta;
    CHECK(error_of([&] { fq::optim::AdamW a(b.params(), wo); }) == ErrorCode::kInvalidArgument);
  }
  fq::optim::AdamOptions ao;
  ao.eps = -1e-8;
  CHECK(error_of([&] { fq::optim::Adam a(b.params(), ao); }) == ErrorCode::kInvalidArgument);

  fq::optim::Adam adam(b.params());
  CHECK(error_of([&] { adam.set_lr(-1.0); }) == ErrorCode::kInvalidArgument);
  CHECK(error_of([&] { adam.set_lr(std::numeric_limits<double>::infinity()); }) ==
        ErrorCode::kInvalidArgument);
  CHECK(adam.lr() == 1e-3);

  // step(list) with another layout: count or size changed.
  Buffers other;
  auto two = other.params();
  two.push_back(two[0]);
  CHECK(error_of([&] { adam.step(two); }) == ErrorCode::kParamCountMismatch);
  auto shorter = other.params();
  shorter[0].size = 2;
  CHECK(error_of([&] { adam.step(shorter); }) == ErrorCode::kShapeMismatch);
  CHECK(adam.step_count() == 0);
  CHECK(b.value == Buffers().value);
}

TEST_CASE("clip_grad_norm: NaN or Inf norm is an error and leaves gradients alone", "[optim]") {
  for (float bad : {kNaN, kInf, -kInf}) {
    Buffers b;
    b.grad[1] = bad;
    const auto before = b.grad;
    CHECK(error_of([&] { fq::optim::clip_grad_norm(b.params(), 1.0); }) ==
          ErrorCode::kNonFiniteInput);
    CHECK(b.grad[0] == before[0]);
    CHECK(b.grad[2] == before[2]);
  }
  Buffers b;
  CHECK(error_of([&] { fq::optim::clip_grad_norm(b.params(), -1.0); }) ==
        ErrorCode::kInvalidArgument);
  CHECK(error_of([&] { fq::optim::clip_grad_norm(b.params(), std::nan("")); }) ==
        ErrorCode::kInvalidArgument);
  // +Inf max_norm never clips; the returned norm is the L2 norm of all gradients.
  const float total =
      fq::optim::clip_grad_norm(b.params(), std::numeric_limits<double>::infinity());
  CHECK(total == Approx(std::sqrt(0.0625 + 0.25 + 1.0)).epsilon(1e-7));
  CHECK(b.grad == Buffers().grad);
}

TEST_CASE("LR schedules: shape and bad input", "[optim]") {
  const fq::optim::CosineAnnealingLR cos(0.1, 10, 0.001, fq::optim::LinearWarmup{4, 0.25});
  CHECK(cos.lr_at(0) == Approx(0.025));
  CHECK(cos.lr_at(4) == Approx(0.1));
  CHECK(cos.lr_at(14) == Approx(0.001));
  for (int t = 4; t < 14; ++t) CHECK(cos.lr_at(t + 1) < cos.lr_at(t));
  CHECK(fq::optim::StepLR(1.0, 2, 0.5).lr_at(5) == 0.25);

  CHECK(error_of([] { fq::optim::StepLR(0.1, 0); }) == ErrorCode::kInvalidArgument);
  CHECK(error_of([] { fq::optim::StepLR(-0.1, 3); }) == ErrorCode::kInvalidArgument);
  CHECK(error_of([] { fq::optim::StepLR(0.1, 3).lr_at(-1); }) == ErrorCode::kInvalidArgument);
  CHECK(error_of([] { fq::optim::CosineAnnealingLR(0.1, 0); }) == ErrorCode::kInvalidArgument);
  CHECK(error_of([] {
          fq::optim::CosineAnnealingLR(0.1, 10, 0.0, fq::optim::LinearWarmup{3, 0.0});
        }) == ErrorCode::kInvalidArgument);
  CHECK(error_of([] {
          fq::optim::CosineAnnealingLR(0.1, 10, 0.0, fq::optim::LinearWarmup{-1, 0.5});
        }) == ErrorCode::kInvalidArgument);
}

namespace {
// Steps optimizer O over `steps` random gradients of a 1152-element parameter stored at float
// offset `at` of a 64-byte-aligned block (so at every alignment modulo 64 bytes), after a first
// parameter of `at` elements (which moves its moments, kept back to back, by `at` floats too);
// returns the final values.
template <class O, class Opt>
std::vector<float> trajectory_at(std::size_t at, const Opt& options) {
  constexpr std::size_t kN = 1152;
  std::vector<float, fq::detail::Align64Allocator<float>> value(kN + 16), grad(kN + 16);
  std::mt19937 rng(7);
  std::normal_distribution<float> nd;
  for (std::size_t i = 0; i < kN; ++i) value[at + i] = nd(rng);
  std::vector<float> first(at, 1.0f), first_grad(at, 0.0f);
  O opt({ParamRef{first.data(), first_grad.data(), at, true, "first"},
         ParamRef{value.data() + at, grad.data() + at, kN, true, "p"}},
        options);
  for (int s = 0; s < 30; ++s) {
    for (std::size_t i = 0; i < kN; ++i) grad[at + i] = nd(rng);
    opt.step();
  }
  std::vector<float> out(value.begin() + std::ptrdiff_t(at),
                         value.begin() + std::ptrdiff_t(at + kN));
  out.push_back(fq::optim::clip_grad_norm({opt.params()[1]}, 1.0));  // the norm's sum too
  return out;
}
}  // namespace

TEST_CASE("optimizers give the same values wherever the parameters lie in memory",
          "[optim][determinism]") {
  // Every alignment of the parameter, gradient and moment buffers modulo 64 bytes: the same
  // trajectory bit for bit, so that a resumed run repeats an uninterrupted one and identically
  // seeded runs agree. (With Eigen's vectorized expressions AdamW differed at 15 of 15 offsets.)
  fq::optim::AdamWOptions aw;
  aw.lr = 1e-2;
  fq::optim::AdamOptions ad;
  ad.weight_decay = 1e-2;
  fq::optim::SgdOptions sg;
  sg.lr = 0.1;
  sg.momentum = 0.9;
  sg.nesterov = true;
  sg.weight_decay = 1e-3;
  const auto adamw0 = trajectory_at<fq::optim::AdamW>(0, aw);
  const auto adam0 = trajectory_at<fq::optim::Adam>(0, ad);
  const auto sgd0 = trajectory_at<fq::optim::Sgd>(0, sg);
  for (std::size_t at = 1; at < 16; ++at) {
    INFO("offset " << at << " floats");
    CHECK(trajectory_at<fq::optim::AdamW>(at, aw) == adamw0);
    CHECK(trajectory_at<fq::optim::Adam>(at, ad) == adam0);
    CHECK(trajectory_at<fq::optim::Sgd>(at, sg) == sgd0);
  }
}
