// SPDX-License-Identifier: MIT
// bm_float_linear: the transformer's integer linear layer, float [M, K] -> float [M, N]
// (fq::Int8FloatLinear: quantize the input rows, u8 x s8 -> s32 GEMM, float epilogue), against
// the float layer it replaces, 1 thread, same run:
//   BM_FloatLinearInt8Static/M/K/N    static per-tensor uint8 input (FakeQuantize, calibrated)
//   BM_FloatLinearInt8Token/M/K/N     dynamic per-token int8 input (Int8ActPerTokenDynamic)
//   BM_FloatLinearInt8GemmOnly/M/K/N  the GEMM alone (fq::gemm_u8s8s32 on ready levels): the
//                                     share of quantization and epilogue is the difference
//   BM_FloatLinearEigen/M/K/N         y = x · wᵀ + b in float (Eigen, row-major, noalias)
// Shapes: a small ViT (width 64, MLP 256, 16 patches + class token, batch 64): M = 64 · 17 rows,
// K -> N in {64 -> 192 (qkv), 64 -> 64 (attention output), 64 -> 256 (MLP up), 256 -> 64
// (MLP down)}. Counter GOPS = 2·M·N·K / time. The ratio Eigen / Int8 (of medians, e.g.
// --benchmark_repetitions=5) is the speed-up of the integer layer.
#include <cmath>  // sqrt
#include <cstdint>
#include <random>
#include <vector>

#include <Eigen/Core>
#include <benchmark/benchmark.h>

#include <fakequant/int8/float_linear.hpp>
#include <fakequant/kernels/gemm.hpp>
#include <fakequant/observer/fake_quantize_module.hpp>
#include <fakequant/observer/minmax_observer.hpp>
#include <fakequant/quantizer/group_quantizer.hpp>
#include <fakequant/scheme/presets.hpp>
#include <fakequant/simd/isa.hpp>

namespace {

using I64 = std::int64_t;
using WeightQ = fq::FakeQuantize<fq::Int8WeightPerChannelSymmetric, fq::PerChannelMinMaxObserver>;
using InputQ = fq::FakeQuantize<fq::Uint8ActPerTensorAffine, fq::MinMaxObserver>;

/// x ~ N(0, 1) (a LayerNorm output), w ~ N(0, 1/K), b ~ N(0, 0.1²); the weight quantizer
/// calibrated on w.
struct Problem {
  I64 m, k, n;
  std::vector<float> x, w, b, y;
  WeightQ wq;
  Problem(I64 m_, I64 k_, I64 n_) : m(m_), k(k_), n(n_) {
    std::mt19937 rng(42);
    std::normal_distribution<float> g(0.0f, 1.0f);
    x.resize(static_cast<std::size_t>(m * k));
    w.resize(static_cast<std::size_t>(n * k));
    b.resize(static_cast<std::size_t>(n));
    y.resize(static_cast<std::size_t>(m * n));
    for (auto& v : x) v = g(rng);
    const float ws = 1.0f / std::sqrt(static_cast<float>(k));
    for (auto& v : w) v = g(rng) * ws;
    for (auto& v : b) v = g(rng) * 0.1f;
    std::vector<float> tmp(w.size());
    wq.forward(fq::TensorView<const float>(w.data(), {n, k}),
               fq::TensorView<float>(tmp.data(), {n, k}));
  }
};

void set_counters(benchmark::State& st, const Problem& p) {
  st.counters["GOPS"] = benchmark::Counter(2e-9 * double(p.m) * double(p.n) * double(p.k),
                                           benchmark::Counter::kIsIterationInvariantRate);
}

void run_layer(benchmark::State& st, Problem& p, const fq::Int8FloatLinear& l) {
  for (auto _ : st) {
    l.forward(p.x.data(), p.m, p.y.data());
    benchmark::DoNotOptimize(p.y.data());
    benchmark::ClobberMemory();
  }
  st.SetLabel(fq::to_string(fq::detect_isa()));
  set_counters(st, p);
}

void BM_FloatLinearInt8Static(benchmark::State& st) {
  Problem p(st.range(0), st.range(1), st.range(2));
  InputQ iq;
  std::vector<float> tmp(p.x.size());
  iq.forward(fq::TensorView<const float>(p.x.data(), {p.m, p.k}),
             fq::TensorView<float>(tmp.data(), {p.m, p.k}));
  run_layer(st, p, fq::Int8FloatLinear::from_quantizers(iq, p.w, p.n, p.k, p.wq, p.b));
}

void BM_FloatLinearInt8Token(benchmark::State& st) {
  Problem p(st.range(0), st.range(1), st.range(2));
  run_layer(
      st, p,
      fq::Int8FloatLinear::from_quantizers(fq::Int8ActPerTokenDynamic{}, p.w, p.n, p.k, p.wq, p.b));
}

void BM_FloatLinearInt8GemmOnly(benchmark::State& st) {
  Problem p(st.range(0), st.range(1), st.range(2));
  const auto l =
      fq::Int8FloatLinear::from_quantizers(fq::Int8ActPerTokenDynamic{}, p.w, p.n, p.k, p.wq, p.b);
  std::vector<std::uint8_t> a(p.x.size());
  std::mt19937 rng(7);
  for (auto& v : a) v = static_cast<std::uint8_t>(rng() % 256);
  std::vector<std::int32_t> c(p.y.size());
  for (auto _ : st) {
    fq::gemm_u8s8s32(a.data(), p.m, p.k, l.packed_weights(), c.data(), p.n);
    benchmark::DoNotOptimize(c.data());
    benchmark::ClobberMemory();
  }
  st.SetLabel(fq::to_string(fq::detect_isa()));
  set_counters(st, p);
}

void BM_FloatLinearEigen(benchmark::State& st) {
  const Problem p(st.range(0), st.range(1), st.range(2));
  using RowMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  const Eigen::Map<const RowMat> x(p.x.data(), p.m, p.k), w(p.w.data(), p.n, p.k);
  const Eigen::Map<const Eigen::RowVectorXf> b(p.b.data(), p.n);
  RowMat y(p.m, p.n);
  for (auto _ : st) {
    y.noalias() = x * w.transpose();
    y.rowwise() += b;
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  set_counters(st, p);
}

void shapes(benchmark::internal::Benchmark* b) {
  constexpr I64 kRows = 64 * 17;
  b->Args({kRows, 64, 192})->Args({kRows, 64, 64})->Args({kRows, 64, 256})->Args({kRows, 256, 64});
  b->Unit(benchmark::kMicrosecond);
}

}  // namespace

BENCHMARK(BM_FloatLinearInt8Static)->Apply(shapes);
BENCHMARK(BM_FloatLinearInt8Token)->Apply(shapes);
BENCHMARK(BM_FloatLinearInt8GemmOnly)->Apply(shapes);
BENCHMARK(BM_FloatLinearEigen)->Apply(shapes);

BENCHMARK_MAIN();
