// SPDX-License-Identifier: MIT
// bm_sgemm: fq::sgemm (kernels/sgemm.hpp) against Eigen's GEMM on the tape convolution's
// per-image products, 1 thread: the Fashion-MNIST demo's second conv (O = 64, K = 32·3·3 = 288,
// P = 14·14 = 196) forward W·cols [64×288·288×196], backward Wᵀ·dY [288×64·64×196] and
// dY·colsᵀ [64×196·196×288], and its first conv's forward [32×9·9×784]; and the tape linear's
// three products (forward, dX, dW) for bm_train_step's first layer (batch 64, 784 -> 256) and its
// classifier's forward (256 -> 10), the demo's classifier input layer (batch 128, 3136 -> 128)
// and bm_vit's QKV projection (64 images x 17 tokens, 64 -> 192). Variants: "packed" =
// sgemm_packed with A packed beforehand (as conv2d packs its weights once per batch), "sgemm" =
// packing A in the call, "eigen" = Eigen's product (C = A·B: it zeroes C first). Counter GFLOPS.
#include <cstdint>
#include <iterator>  // size
#include <random>
#include <vector>

#include <Eigen/Dense>
#include <benchmark/benchmark.h>

#include <fakequant/kernels/sgemm.hpp>

namespace {

using RowMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

struct Case {
  std::int64_t m, n, k;
  bool a_transposed, b_transposed;
  const char* name;
};
const Case kCases[] = {{64, 196, 288, false, false, "conv2 W*cols"},
                       {288, 196, 64, true, false, "conv2 Wt*dY"},
                       {64, 288, 196, false, true, "conv2 dY*colsT"},
                       {32, 784, 9, false, false, "conv1 W*cols"},
                       // linear (ops/linear.hpp): y = x·Wᵀ, dX = dY·W, dW = dYᵀ·x
                       {64, 256, 784, false, true, "mlp fc1 x*Wt"},
                       {64, 784, 256, false, false, "mlp fc1 dY*W"},
                       {256, 784, 64, true, false, "mlp fc1 dYt*x"},
                       {64, 10, 256, false, true, "mlp fc3 x*Wt"},
                       {128, 128, 3136, false, true, "demo fc x*Wt"},
                       {128, 3136, 128, false, false, "demo fc dY*W"},
                       {128, 3136, 128, true, false, "demo fc dYt*x"},
                       {1088, 192, 64, false, true, "vit qkv x*Wt"},
                       {1088, 64, 192, false, false, "vit qkv dY*W"},
                       {192, 64, 1088, true, false, "vit qkv dYt*x"}};

struct Operands {
  RowMatrix a, b, c;  // a: [m, k] or [k, m] (transposed); b: [k, n] or [n, k]
  explicit Operands(const Case& cs) : c(cs.m, cs.n) {
    std::mt19937 rng(1);
    std::normal_distribution<float> nd;
    a = cs.a_transposed ? RowMatrix(cs.k, cs.m) : RowMatrix(cs.m, cs.k);
    b = cs.b_transposed ? RowMatrix(cs.n, cs.k) : RowMatrix(cs.k, cs.n);
    for (Eigen::Index i = 0; i < a.size(); ++i) a.data()[i] = nd(rng);
    for (Eigen::Index i = 0; i < b.size(); ++i) b.data()[i] = nd(rng);
  }
  fq::SgemmOperand op_a(const Case& cs) const {
    return cs.a_transposed ? fq::SgemmOperand{a.data(), 1, cs.m}
                           : fq::SgemmOperand{a.data(), cs.k, 1};
  }
  fq::SgemmOperand op_b(const Case& cs) const {
    return cs.b_transposed ? fq::SgemmOperand{b.data(), 1, cs.k}
                           : fq::SgemmOperand{b.data(), cs.n, 1};
  }
};

void finish(benchmark::State& st, const Case& cs) {
  st.SetLabel(cs.name);
  st.counters["GFLOPS"] = benchmark::Counter(
      2e-9 * double(cs.m * cs.n * cs.k) * double(st.iterations()), benchmark::Counter::kIsRate);
}

void BM_SgemmPacked(benchmark::State& st) {
  const Case& cs = kCases[st.range(0)];
  Operands o(cs);
  if constexpr (fq::kSgemmSimd<fq::DefaultArch>) {
    std::vector<float> pa(static_cast<std::size_t>(fq::sgemm_packed_a_size(cs.m, cs.k))),
        ws(static_cast<std::size_t>(fq::sgemm_workspace_size(cs.n, cs.k)));
    fq::sgemm_pack_a(cs.m, cs.k, o.op_a(cs), pa.data());
    for (auto _ : st) {
      fq::sgemm_packed(cs.m, cs.n, cs.k, pa.data(), o.op_b(cs), o.c.data(), cs.n, false, ws.data());
      benchmark::DoNotOptimize(o.c.data());
    }
    finish(st, cs);
  } else {
    st.SkipWithError("no SIMD sgemm kernel for this architecture (needs FMA)");
  }
}

void BM_Sgemm(benchmark::State& st) {
  const Case& cs = kCases[st.range(0)];
  Operands o(cs);
  std::vector<float> scratch(static_cast<std::size_t>(fq::sgemm_scratch_size(cs.m, cs.n, cs.k)));
  for (auto _ : st) {
    fq::sgemm(cs.m, cs.n, cs.k, o.op_a(cs), o.op_b(cs), o.c.data(), cs.n, false, scratch.data());
    benchmark::DoNotOptimize(o.c.data());
  }
  finish(st, cs);
}

void BM_EigenGemm(benchmark::State& st) {
  const Case& cs = kCases[st.range(0)];
  Operands o(cs);
  for (auto _ : st) {
    if (cs.a_transposed)
      o.c.noalias() = o.a.transpose() * o.b;
    else if (cs.b_transposed)
      o.c.noalias() = o.a * o.b.transpose();
    else
      o.c.noalias() = o.a * o.b;
    benchmark::DoNotOptimize(o.c.data());
  }
  finish(st, cs);
}

void cases(benchmark::internal::Benchmark* b) {
  b->ArgName("case")
      ->DenseRange(0, static_cast<int>(std::size(kCases)) - 1)
      ->Unit(benchmark::kMicrosecond);
}

}  // namespace

BENCHMARK(BM_SgemmPacked)->Apply(cases);
BENCHMARK(BM_Sgemm)->Apply(cases);
BENCHMARK(BM_EigenGemm)->Apply(cases);
BENCHMARK_MAIN();
