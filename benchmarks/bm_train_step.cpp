// SPDX-License-Identifier: MIT
// bm_train_step: one training step (forward, backward, SGD update) of a 784-256-256-10 MLP
// with ReLUs and softmax cross-entropy, batch 64, 1 thread:
//   BM_StepHandWritten  the same FP32 step written directly with Eigen, no tape
//   BM_StepTapeFp32     fakequant's tape and QLinear layers, quantizers off (NoFakeQuant)
//   BM_StepTapeQat      the same with per-channel symmetric int8 weights (min-max observer)
//                       and per-tensor affine uint8 activations (moving-average observer),
//                       observers on
// Ratios of interest: tape FP32 / hand-written (the tape's overhead) and QAT / FP32.
#include <cstdint>
#include <random>
#include <vector>

#include <benchmark/benchmark.h>

#include <fakequant/layers/qlayers.hpp>
#include <fakequant/ops/loss.hpp>
#include <fakequant/optim/sgd.hpp>

namespace {

constexpr std::int64_t kBatch = 64, kIn = 784, kHidden = 256, kOut = 10;

struct Batch {
  std::vector<float> x;
  std::vector<std::int32_t> labels;
  Batch() : x(static_cast<std::size_t>(kBatch * kIn)), labels(static_cast<std::size_t>(kBatch)) {
    std::mt19937 rng(1);
    std::normal_distribution<float> nd;
    for (float& v : x) v = nd(rng);
    for (auto& l : labels) l = static_cast<std::int32_t>(rng() % kOut);
  }
};

template <class WQ, class AQ>
struct Mlp {
  std::mt19937 rng{7};
  fq::QLinear<WQ, AQ> l1{kIn, kHidden, rng, fq::Activation::kReLU};
  fq::QLinear<WQ, AQ> l2{kHidden, kHidden, rng, fq::Activation::kReLU};
  fq::QLinear<WQ, fq::NoFakeQuant> l3{kHidden, kOut, rng};
  fq::Var forward(fq::Tape& t, const fq::Var& x) {
    return l3.forward(t, l2.forward(t, l1.forward(t, x)));
  }
};

template <class WQ, class AQ>
void run_tape(benchmark::State& st) {
  Eigen::setNbThreads(1);
  Batch b;
  Mlp<WQ, AQ> net;
  fq::optim::SgdOptions so;
  so.lr = 1e-3;
  so.momentum = 0.9;
  fq::optim::Sgd opt(fq::parameters_of(net.l1, net.l2, net.l3), so);
  fq::Tape tape;
  for (auto _ : st) {
    fq::Var x = tape.constant(b.x.data(), {kBatch, kIn});
    fq::Var loss = fq::ops::softmax_cross_entropy(tape, net.forward(tape, x), b.labels.data());
    tape.backward(loss);
    opt.step();
    opt.zero_grad();
    tape.clear();
    benchmark::DoNotOptimize(loss.value());
  }
}

void BM_StepTapeFp32(benchmark::State& st) { run_tape<fq::NoFakeQuant, fq::NoFakeQuant>(st); }
void BM_StepTapeQat(benchmark::State& st) {
  run_tape<fq::DefaultWeightFakeQuant, fq::DefaultActFakeQuant>(st);
}

// The same FP32 step by hand: the fewest passes over memory an Eigen user would write.
void BM_StepHandWritten(benchmark::State& st) {
  Eigen::setNbThreads(1);
  using Mat = fq::RowMatrixXf;
  Batch b;
  std::mt19937 rng(7);
  auto init = [&](std::int64_t rows, std::int64_t cols) {
    std::uniform_real_distribution<float> u(-0.05f, 0.05f);
    Mat m(rows, cols);
    for (Eigen::Index i = 0; i < m.size(); ++i) m.data()[i] = u(rng);
    return m;
  };
  Mat w1 = init(kHidden, kIn), w2 = init(kHidden, kHidden), w3 = init(kOut, kHidden);
  Eigen::RowVectorXf b1 = Eigen::RowVectorXf::Zero(kHidden), b2 = b1,
                     b3 = Eigen::RowVectorXf::Zero(kOut);
  Mat dw1 = Mat::Zero(kHidden, kIn), dw2 = Mat::Zero(kHidden, kHidden),
      dw3 = Mat::Zero(kOut, kHidden);
  Mat mw1 = dw1, mw2 = dw2, mw3 = dw3;
  Eigen::RowVectorXf db1(kHidden), db2(kHidden), db3(kOut), mb1 = b1, mb2 = b2, mb3 = b3;
  Mat h1(kBatch, kHidden), h2(kBatch, kHidden), z(kBatch, kOut), g3(kBatch, kOut),
      g2(kBatch, kHidden), g1(kBatch, kHidden);
  const Eigen::Map<const Mat> x(b.x.data(), kBatch, kIn);
  const float lr = 1e-3f, mu = 0.9f;
  auto sgd = [&](auto& w, auto& dw, auto& m) {
    m = mu * m + dw;
    w -= lr * m;
  };
  for (auto _ : st) {
    h1.noalias() = x * w1.transpose();
    h1 = (h1.rowwise() + b1).cwiseMax(0.0f);
    h2.noalias() = h1 * w2.transpose();
    h2 = (h2.rowwise() + b2).cwiseMax(0.0f);
    z.noalias() = h2 * w3.transpose();
    z.rowwise() += b3;
    float loss = 0;
    for (Eigen::Index i = 0; i < kBatch; ++i) {
      const float m = z.row(i).maxCoeff();
      const auto e = (z.row(i).array() - m).exp();
      const float s = e.sum();
      loss += std::log(s) - (z(i, b.labels[static_cast<std::size_t>(i)]) - m);
      g3.row(i) = (e / (s * kBatch)).matrix();
      g3(i, b.labels[static_cast<std::size_t>(i)]) -= 1.0f / kBatch;
    }
    dw3.noalias() = g3.transpose() * h2;
    db3 = g3.colwise().sum();
    g2.noalias() = g3 * w3;
    g2 = (h2.array() > 0.0f).select(g2, 0.0f);
    dw2.noalias() = g2.transpose() * h1;
    db2 = g2.colwise().sum();
    g1.noalias() = g2 * w2;
    g1 = (h1.array() > 0.0f).select(g1, 0.0f);
    dw1.noalias() = g1.transpose() * x;
    db1 = g1.colwise().sum();
    sgd(w1, dw1, mw1);
    sgd(w2, dw2, mw2);
    sgd(w3, dw3, mw3);
    sgd(b1, db1, mb1);
    sgd(b2, db2, mb2);
    sgd(b3, db3, mb3);
    benchmark::DoNotOptimize(loss);
  }
}

}  // namespace

BENCHMARK(BM_StepHandWritten)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_StepTapeFp32)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_StepTapeQat)->Unit(benchmark::kMicrosecond);
BENCHMARK_MAIN();
