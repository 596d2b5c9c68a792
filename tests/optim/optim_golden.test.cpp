// SPDX-License-Identifier: MIT
// The optimizers, gradient clipping and learning-rate schedules against golden values from
// PyTorch 1.13 (tests/optim/gen_golden_optim.py): whole trajectories of a few steps, each
// element within 8 float ulps or 1e-6 relative of torch's float32 result. Where an update
// nearly cancels a parameter (values far below the parameters' O(1) scale) the bound is
// 1e-6 of 0.1 instead: builds without FMA round `a * b + c` twice where torch fuses it.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include <fakequant/optim/adam.hpp>
#include <fakequant/optim/grad_clip.hpp>
#include <fakequant/optim/lr_schedule.hpp>
#include <fakequant/optim/sgd.hpp>

#include "catch.hpp"
#include "optim/optim_golden_data.hpp"
#include "test_util.hpp"

namespace {

namespace golden = fq_optim_golden;
using fq::optim::ParamRef;
using fq_test::float_from_bits;

/// Distance in units in the last place between two finite floats of any sign.
std::int64_t ulp_distance(float a, float b) {
  auto ordered = [](float v) {
    const auto bits = static_cast<std::int64_t>(fq_test::bits_of(v));
    return bits & 0x80000000 ? -(bits & 0x7fffffff) : bits;
  };
  return std::llabs(ordered(a) - ordered(b));
}

bool close(float got, float want) {
  return ulp_distance(got, want) <= 8 ||
         std::fabs(double(got) - double(want)) <= 1e-6 * std::max(std::fabs(double(want)), 0.1);
}

std::vector<float> decode(const std::uint32_t* bits, std::size_t n) {
  std::vector<float> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = float_from_bits(bits[i]);
  return v;
}

// Two parameters over one buffer each, the second exempt from decay if the case says so.
struct Model {
  std::vector<float> value = decode(golden::kInit, golden::kTotal);
  std::vector<float> grad = std::vector<float>(golden::kTotal, 0.0f);
  std::vector<ParamRef> params(bool second_decays) {
    return {ParamRef{value.data(), grad.data(), golden::kSizes[0], true, "w"},
            ParamRef{value.data() + golden::kSizes[0], grad.data() + golden::kSizes[0],
                     golden::kSizes[1], second_decays, "b"}};
  }
};

template <class Opt>
void run_trajectory(const golden::OptimCase& c, Model& m, Opt& opt) {
  for (int s = 0; s < golden::kSteps; ++s) {
    opt.set_lr(c.lr[s]);
    const auto g = decode(golden::kGrads[s], golden::kTotal);
    std::copy(g.begin(), g.end(), m.grad.begin());
    opt.step();
    for (std::size_t i = 0; i < golden::kTotal; ++i) {
      const float want = float_from_bits(c.want[s][i]);
      INFO(c.name << ": step " << s + 1 << " element " << i << " got " << m.value[i] << " want "
                  << want << " (" << ulp_distance(m.value[i], want) << " ulp)");
      REQUIRE(close(m.value[i], want));
    }
    // The update must have moved the parameters (a test that cannot fail otherwise).
    REQUIRE(m.value != decode(golden::kInit, golden::kTotal));
  }
}

}  // namespace

TEST_CASE("golden: SGD, Adam and AdamW trajectories match torch.optim", "[optim][golden]") {
  int sgd = 0, adam = 0, adamw = 0;
  for (const auto& c : golden::kOptimCases) {
    Model m;
    if (c.kind == 0) {
      fq::optim::SgdOptions o;
      o.lr = c.lr[0];
      o.momentum = c.momentum;
      o.dampening = c.dampening;
      o.nesterov = c.nesterov;
      o.weight_decay = c.weight_decay;
      fq::optim::Sgd opt(m.params(c.second_decays), o);
      run_trajectory(c, m, opt);
      ++sgd;
    } else {
      auto fill = [&](auto& o) {
        o.lr = c.lr[0];
        o.beta1 = c.beta1;
        o.beta2 = c.beta2;
        o.eps = c.eps;
        o.weight_decay = c.weight_decay;
      };
      if (c.kind == 1) {
        fq::optim::AdamOptions o;
        fill(o);
        fq::optim::Adam opt(m.params(c.second_decays), o);
        run_trajectory(c, m, opt);
        REQUIRE(opt.step_count() == golden::kSteps);
        ++adam;
      } else {
        fq::optim::AdamWOptions o;
        fill(o);
        fq::optim::AdamW opt(m.params(c.second_decays), o);
        run_trajectory(c, m, opt);
        ++adamw;
      }
    }
  }
  CHECK(sgd >= 7);
  CHECK(adam >= 5);
  CHECK(adamw >= 3);
}

TEST_CASE("golden: clip_grad_norm matches torch.nn.utils.clip_grad_norm_", "[optim][golden]") {
  int n = 0;
  for (const auto& c : golden::kClipCases) {
    Model m;
    m.grad = decode(c.grads, golden::kTotal);
    const float total = fq::optim::clip_grad_norm(m.params(true), c.max_norm);
    const float want_total = float_from_bits(c.total);
    INFO(c.name << ": total " << total << " want " << want_total);
    REQUIRE(close(total, want_total));
    for (std::size_t i = 0; i < golden::kTotal; ++i) {
      const float want = float_from_bits(c.want[i]);
      INFO(c.name << ": element " << i << " got " << m.grad[i] << " want " << want);
      REQUIRE(close(m.grad[i], want));
    }
    ++n;
  }
  CHECK(n == 5);
}

TEST_CASE("golden: StepLR and CosineAnnealingLR (with warm-up) match torch's closed forms",
          "[optim][golden]") {
  for (const auto& c : golden::kScheduleCases) {
    for (int t = 0; t < golden::kScheduleSteps; ++t) {
      double got;
      if (c.kind == 0) {
        got = fq::optim::StepLR(c.base_lr, c.a, c.b).lr_at(t);
      } else {
        fq::optim::LinearWarmup w;
        w.steps = c.warmup;
        w.start_factor = c.start_factor;
        got = fq::optim::CosineAnnealingLR(c.base_lr, c.a, c.b, w).lr_at(t);
      }
      INFO(c.name << ": t " << t << " got " << got << " want " << c.lr[t]);
      // Same double operations in the same order: within one ulp of double (libm's cos).
      REQUIRE(std::fabs(got - c.lr[t]) <= 4e-16 * std::fabs(c.lr[t]) + 1e-300);
    }
  }
}
