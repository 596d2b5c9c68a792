// SPDX-License-Identifier: MIT
// bm_vit: the transformer targets of issue 15, 1 thread:
//   BM_VitStep<R>         one training step (forward, softmax cross-entropy, backward, AdamW
//                         step, zero_grad, tape.clear) of the Fashion-MNIST demo's ViT
//                         (28×28 images, 7×7 patches, 17 tokens, width 64, 4 heads, 4 blocks,
//                         MLP 128, 10 classes) at batch 64, for FloatRecipe (FP32),
//                         W8A8Recipe (observers and fake quantization on) and, for
//                         information, W4A8G32Recipe. Target: W8A8 / FP32 <= 1.2.
//   BM_AttentionTape      fq::QMultiHeadAttention<FloatRecipe> forward + backward on the tape
//                         (B 64, T 17, D 64, H 4), with a fixed random upstream gradient seeded
//                         through a weighted-sum loss, and the zeroing of the gradients the tape
//                         accumulates into (x and the four parameters).
//   BM_AttentionHand      the same block written directly with Eigen: one fused QKV GEMM,
//                         per head S = Q Kᵀ/√Dh, softmax, P V into the merged layout, the
//                         output projection; and the whole backward (x, both weights and
//                         biases). Target: tape / hand-written <= 1.1.
// At startup the hand-written gradients are checked against the tape's (max-abs error within
// 1e-4 of each tensor's max-abs value); the program aborts otherwise, so the comparison is
// between two computations of the same thing. After the run the median ratios are printed.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include <fakequant/layers/transformer.hpp>
#include <fakequant/ops/loss.hpp>
#include <fakequant/optim/adam.hpp>
#include <fakequant/tape/custom_op.hpp>

namespace {

// ------------------------------------------------------------------------- ViT training step
constexpr std::int64_t kVitBatch = 64;

/// Steady state before timing: a new tape's first step grows its arena block by block,
/// faulting in every page (the arena keeps its blocks since issue 17, so the second step no
/// longer faults; the warm-up also fills the caches and the quantizers' observers).
template <class F>
void warm_up(F&& step) {
  for (int i = 0; i < 3; ++i) step();
}

fq::VitOptions demo_vit_options() {  // examples/vit_fashion_mnist_qat.cpp: vit_options()
  fq::VitOptions v;
  v.image = 28;
  v.patch = 7;
  v.classes = 10;
  v.depth = 4;
  v.block.dim = 64;
  v.block.heads = 4;
  v.block.mlp_hidden = 128;
  return v;
}

// The demo's W4A8: its patch embedding (K = 49) takes int4 groups of 32 with a short last group.
using Int4WeightGroup32ShortTail = fq::GroupFakeQuantizer<
    fq::QScheme<fq::Int4, fq::Symmetric, fq::PerGroup<32, -1, fq::GroupTail::kShortLast>>>;
using EmbedW4A8 = fq::QuantRecipe<Int4WeightGroup32ShortTail, fq::Int8ActPerTokenDynamic>;

template <class R, class EmbedR = R>
void BM_VitStep(benchmark::State& st) {
  Eigen::setNbThreads(1);
  std::mt19937 rng(7);
  std::vector<float> images(static_cast<std::size_t>(kVitBatch * 28 * 28));
  std::vector<std::int32_t> labels(static_cast<std::size_t>(kVitBatch));
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  for (float& v : images) v = u(rng);
  for (auto& l : labels) l = static_cast<std::int32_t>(rng() % 10);
  fq::QVisionTransformer<EmbedR, R, R> net(demo_vit_options(), rng);
  fq::optim::AdamWOptions ao;
  ao.lr = 1e-4;
  ao.weight_decay = 0.05;
  fq::optim::AdamW opt(net.parameters(), ao);
  fq::Tape tape;
  auto step = [&] {
    const fq::Var x = tape.constant(images.data(), {kVitBatch, 1, 28, 28});
    const fq::Var loss = fq::ops::softmax_cross_entropy(tape, net.forward(tape, x), labels.data());
    tape.backward(loss);
    opt.step();
    opt.zero_grad();
    tape.clear();
    benchmark::DoNotOptimize(loss.value());
  };
  warm_up(step);
  for (auto _ : st) step();
}

// ------------------------------------------------------------------------- attention block
constexpr std::int64_t kB = 64, kT = 17, kD = 64, kH = 4, kDh = kD / kH, kN = kB * kT;

using Mat = fq::RowMatrixXf;
using MapM = Eigen::Map<Mat>;
using Vec = Eigen::RowVectorXf;

std::vector<float> random_vector(std::size_t n, std::uint32_t seed, float sd) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, sd);
  std::vector<float> v(n);
  for (float& e : v) e = nd(rng);
  return v;
}

/// The block on the tape, with the gradients it produces.
struct TapeAttention {
  std::mt19937 rng{11};
  fq::QMultiHeadAttention<fq::FloatRecipe> attn{kD, kH, rng};
  std::vector<fq::optim::ParamRef> params = attn.parameters();  // Wqkv, bqkv, Wo, bo
  std::vector<float> x = random_vector(static_cast<std::size_t>(kN * kD), 1, 1.0f);
  std::vector<float> dx = std::vector<float>(x.size());
  std::vector<float> g = random_vector(static_cast<std::size_t>(kN * kD), 2, 1.0f);  // dL/dy
  std::vector<float> y = std::vector<float>(x.size());
  fq::Tape tape;

  void step() {
    for (const auto& p : params) std::memset(p.grad, 0, p.size * sizeof(float));
    std::memset(dx.data(), 0, dx.size() * sizeof(float));
    const fq::Var xv = tape.leaf(x.data(), dx.data(), {kB, kT, kD});
    const fq::Var yv = attn.forward(tape, xv);
    // loss = Σ y ⊙ g: seeds dL/dy = g.
    const float* gp = g.data();
    const fq::Var loss = fq::custom_op(
        tape, {yv}, {},
        [&](float* out) {
          out[0] = (yv.array() * Eigen::Map<const Eigen::ArrayXf>(gp, yv.numel())).sum();
        },
        [yv, gp](const float*, const float* dl) {
          yv.grad_array() += Eigen::Map<const Eigen::ArrayXf>(gp, yv.numel()) * dl[0];
        });
    tape.backward(loss);
    std::memcpy(y.data(), yv.value(), y.size() * sizeof(float));
    tape.clear();
  }
};

/// The same block by hand with Eigen (file comment); parameters copied from the tape's layer.
struct HandAttention {
  Mat wqkv, wo;
  Vec bqkv, bo;
  Mat qkv{kN, 3 * kD}, o{kN, kD}, y{kN, kD}, p{kB * kH * kT, kT};
  Mat dwqkv{3 * kD, kD}, dwo{kD, kD}, dqkv{kN, 3 * kD}, d_o{kN, kD}, dx{kN, kD};
  Vec dbqkv, dbo;
  Mat dp{kT, kT};
  const float scale = 1.0f / std::sqrt(static_cast<float>(kDh));

  explicit HandAttention(const std::vector<fq::optim::ParamRef>& ps)
      : wqkv(MapM(ps[0].value, 3 * kD, kD)),
        wo(MapM(ps[2].value, kD, kD)),
        bqkv(Eigen::Map<Vec>(ps[1].value, 3 * kD)),
        bo(Eigen::Map<Vec>(ps[3].value, kD)) {}

  void step(const float* xp, const float* gp) {
    const Eigen::Map<const Mat> x(xp, kN, kD), g(gp, kN, kD);
    // Forward.
    qkv.noalias() = x * wqkv.transpose();
    qkv.rowwise() += bqkv;
    for (std::int64_t b = 0; b < kB; ++b) {
      for (std::int64_t h = 0; h < kH; ++h)  // S = Q Kᵀ / √Dh for the H heads of image b
        p.block((b * kH + h) * kT, 0, kT, kT).noalias() =
            scale * (qkv.block(b * kT, h * kDh, kT, kDh) *
                     qkv.block(b * kT, kD + h * kDh, kT, kDh).transpose());
      // Softmax over the image's H·T rows at once: the exp runs over one contiguous block.
      MapM pb(p.data() + b * kH * kT * kT, kH * kT, kT);
      pb.colwise() -= pb.rowwise().maxCoeff();
      Eigen::Map<Eigen::ArrayXf> pe(pb.data(), pb.size());
      pe = pe.exp();
      pb.array().colwise() *= pb.rowwise().sum().array().inverse();
      for (std::int64_t h = 0; h < kH; ++h)  // O = P V, into the merged [B·T, D] layout
        o.block(b * kT, h * kDh, kT, kDh).noalias() =
            p.block((b * kH + h) * kT, 0, kT, kT) * qkv.block(b * kT, 2 * kD + h * kDh, kT, kDh);
    }
    y.noalias() = o * wo.transpose();
    y.rowwise() += bo;
    // Backward, dL/dy = g.
    dwo.noalias() = g.transpose() * o;
    dbo = g.colwise().sum();
    d_o.noalias() = g * wo;
    for (std::int64_t b = 0; b < kB; ++b)
      for (std::int64_t h = 0; h < kH; ++h) {
        const auto q = qkv.block(b * kT, h * kDh, kT, kDh);
        const auto k = qkv.block(b * kT, kD + h * kDh, kT, kDh);
        const auto v = qkv.block(b * kT, 2 * kD + h * kDh, kT, kDh);
        const auto pb = p.block((b * kH + h) * kT, 0, kT, kT);
        const auto dob = d_o.block(b * kT, h * kDh, kT, kDh);
        dp.noalias() = dob * v.transpose();
        dqkv.block(b * kT, 2 * kD + h * kDh, kT, kDh).noalias() = pb.transpose() * dob;
        for (std::int64_t r = 0; r < kT; ++r) {  // dS = P ⊙ (dP − Σ dP ⊙ P) / √Dh
          auto pr = pb.row(r).array();
          auto dr = dp.row(r).array();
          dr = pr * (dr - (dr * pr).sum()) * scale;
        }
        dqkv.block(b * kT, h * kDh, kT, kDh).noalias() = dp * k;
        dqkv.block(b * kT, kD + h * kDh, kT, kDh).noalias() = dp.transpose() * q;
      }
    dwqkv.noalias() = dqkv.transpose() * x;
    dbqkv = dqkv.colwise().sum();
    dx.noalias() = dqkv * wqkv;
  }
};

/// max |a − b| / max |b| (b the reference).
float rel_err(const float* a, const float* b, std::size_t n) {
  float err = 0.0f, mag = 0.0f;
  for (std::size_t i = 0; i < n; ++i) {
    err = std::max(err, std::fabs(a[i] - b[i]));
    mag = std::max(mag, std::fabs(b[i]));
  }
  return mag > 0.0f ? err / mag : err;
}

/// Aborts unless the hand-written forward and gradients equal the tape's within 1e-4.
void check_attention_once() {
  TapeAttention t;
  t.step();
  HandAttention hand(t.params);
  hand.step(t.x.data(), t.g.data());
  const struct {
    const char* name;
    const float* tape;
    const float* hand;
    std::size_t n;
  } cmp[] = {
      {"y", t.y.data(), hand.y.data(), t.y.size()},
      {"dx", t.dx.data(), hand.dx.data(), t.dx.size()},
      {"dW_qkv", t.params[0].grad, hand.dwqkv.data(), t.params[0].size},
      {"db_qkv", t.params[1].grad, hand.dbqkv.data(), t.params[1].size},
      {"dW_o", t.params[2].grad, hand.dwo.data(), t.params[2].size},
      {"db_o", t.params[3].grad, hand.dbo.data(), t.params[3].size},
  };
  for (const auto& c : cmp) {
    const float e = rel_err(c.hand, c.tape, c.n);
    std::fprintf(stderr, "attention check: %-6s relative max error %.2e\n", c.name, double(e));
    if (!(e <= 1e-4f)) {
      std::fprintf(stderr, "bm_vit: the hand-written attention differs from the tape's (%s)\n",
                   c.name);
      std::abort();
    }
  }
}

void BM_AttentionTape(benchmark::State& st) {
  Eigen::setNbThreads(1);
  TapeAttention t;
  warm_up([&] { t.step(); });
  for (auto _ : st) {
    t.step();
    benchmark::DoNotOptimize(t.dx.data());
  }
}

void BM_AttentionHand(benchmark::State& st) {
  Eigen::setNbThreads(1);
  TapeAttention t;  // for the same parameters and data
  HandAttention hand(t.params);
  warm_up([&] { hand.step(t.x.data(), t.g.data()); });
  for (auto _ : st) {
    hand.step(t.x.data(), t.g.data());
    benchmark::DoNotOptimize(hand.dx.data());
  }
}

// ------------------------------------------------------------------------- ratios
/// The console reporter, keeping each benchmark's median (or its single run) real time.
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  std::map<std::string, double> median, single;
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& r : runs) {
      const std::string name =
          r.run_name.function_name + (r.run_name.args.empty() ? "" : "/") + r.run_name.args;
      if (r.run_type == Run::RT_Aggregate && r.aggregate_name == "median")
        median[name] = r.GetAdjustedRealTime();
      else if (r.run_type == Run::RT_Iteration)
        single[name] = r.GetAdjustedRealTime();
    }
    ConsoleReporter::ReportRuns(runs);
  }
  double time(const std::string& name) const {
    auto it = median.find(name);
    if (it != median.end()) return it->second;
    it = single.find(name);
    return it != single.end() ? it->second : 0.0;
  }
  void ratio(const char* what, const std::string& num, const std::string& den, double target) {
    const double a = time(num), b = time(den);
    if (a <= 0 || b <= 0) return;
    std::printf("%-40s %6.3f  (target <= %.2f: %s)\n", what, a / b, target,
                a / b <= target ? "met" : "MISSED");
  }
};

}  // namespace

BENCHMARK_TEMPLATE(BM_VitStep, fq::FloatRecipe)->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(BM_VitStep, fq::W8A8Recipe)->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(BM_VitStep, fq::W4A8G32Recipe, EmbedW4A8)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_AttentionHand)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_AttentionTape)->Unit(benchmark::kMicrosecond);

int main(int argc, char** argv) {
  Eigen::setNbThreads(1);
  check_attention_once();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  RatioReporter rep;
  benchmark::RunSpecifiedBenchmarks(&rep);
  std::printf("\nratios of median real times:\n");
  rep.ratio("ViT step QAT W8A8 / FP32", "BM_VitStep<fq::W8A8Recipe>", "BM_VitStep<fq::FloatRecipe>",
            1.2);
  rep.ratio("ViT step W4A8 g32 / FP32 (info)", "BM_VitStep<fq::W4A8G32Recipe, EmbedW4A8>",
            "BM_VitStep<fq::FloatRecipe>", 1e9);
  rep.ratio("attention tape / hand-written", "BM_AttentionTape", "BM_AttentionHand", 1.1);
  benchmark::Shutdown();
  return 0;
}
