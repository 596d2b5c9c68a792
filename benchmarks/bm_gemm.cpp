// SPDX-License-Identifier: MIT
// bm_gemm: the int8 GEMM of a linear layer, C[M, N] = A[M, K] * W[N, K]^T, 1 thread.
//   BM_Gemm<Impl>/M/K/N          u8 x s8 -> s32
//   BM_GemmRequant<Impl>/M/K/N   u8 x s8 + s32 bias, per-channel requantization -> u8
// Impl: Fakequant (fq::gemm_u8s8s32 / fq::linear_u8, runtime-dispatched: AVX-512 VNNI here;
// FakequantAvx2 forces the AVX2 widening path),
// OneDNN (dnnl::matmul, when built with oneDNN; weights reordered to its preferred layout
// outside the timed loop, as ours are packed outside it), EigenF32 (the float GEMM,
// Eigen's own blocking, as the FP32 baseline). Counter GOPS = 2*M*N*K / time.
// Shapes: square 256..2048 and layer shapes M in {64, 256}, K in {784, 1024, 4096},
// N in {256, 1024}. oneDNN must run single-threaded: run with OMP_NUM_THREADS=1 (the OneDNN
// benchmarks refuse to run otherwise).
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <random>
#include <unordered_map>
#include <vector>

#include <Eigen/Core>
#include <benchmark/benchmark.h>

#include <fakequant/kernels/gemm.hpp>
#include <fakequant/kernels/linear.hpp>

#if defined(FQ_BENCH_HAVE_DNNL) && FQ_BENCH_HAVE_DNNL
#include <dnnl.hpp>
#endif

namespace {

struct Problem {
  std::int64_t m, k, n;
  std::vector<std::uint8_t> a;
  std::vector<std::int8_t> w;
  std::vector<std::int32_t> bias;
  std::vector<float> scales;
  Problem(std::int64_t m_, std::int64_t k_, std::int64_t n_) : m(m_), k(k_), n(n_) {
    std::mt19937 rng(42);
    a.resize(static_cast<std::size_t>(m * k));
    w.resize(static_cast<std::size_t>(n * k));
    for (auto& v : a) v = static_cast<std::uint8_t>(rng() % 256);
    for (auto& v : w) v = static_cast<std::int8_t>(static_cast<int>(rng() % 255) - 127);
    for (std::int64_t j = 0; j < n; ++j) {
      bias.push_back(static_cast<std::int32_t>(rng() % 2001) - 1000);
      scales.push_back(static_cast<float>(1e-4 * (1.0 + double(rng() % 100) / 100.0)));
    }
  }
};

constexpr std::int32_t kInZeroPoint = 128;
constexpr std::int32_t kOutZeroPoint = 5;

void set_gops(benchmark::State& st, const Problem& p) {
  st.counters["GOPS"] = benchmark::Counter(2e-9 * double(p.m) * double(p.n) * double(p.k),
                                           benchmark::Counter::kIsIterationInvariantRate);
}

void BM_GemmFakequant(benchmark::State& st) {
  const Problem p(st.range(0), st.range(1), st.range(2));
  const fq::PackedWeights pw(p.w.data(), p.n, p.k, p.k);
  std::vector<std::int32_t> c(static_cast<std::size_t>(p.m * p.n));
  for (auto _ : st) {
    fq::gemm_u8s8s32(p.a.data(), p.m, p.k, pw, c.data(), p.n);
    benchmark::DoNotOptimize(c.data());
    benchmark::ClobberMemory();
  }
  st.SetLabel(fq::to_string(fq::detect_isa()));
  set_gops(st, p);
}

// The AVX2 widening path on the same shapes (for information; the dispatch picks VNNI here).
void BM_GemmFakequantAvx2(benchmark::State& st) {
  if (!fq::isa_supported(fq::Isa::kAvx2)) {
    st.SkipWithError("no AVX2");
    return;
  }
  const Problem p(st.range(0), st.range(1), st.range(2));
  const fq::PackedWeights pw(p.w.data(), p.n, p.k, p.k);
  std::vector<std::int32_t> c(static_cast<std::size_t>(p.m * p.n));
  for (auto _ : st) {
    fq::gemm_u8s8s32(p.a.data(), p.m, p.k, pw, c.data(), p.n, 0, fq::Isa::kAvx2);
    benchmark::DoNotOptimize(c.data());
    benchmark::ClobberMemory();
  }
  set_gops(st, p);
}

void BM_GemmRequantFakequant(benchmark::State& st) {
  const Problem p(st.range(0), st.range(1), st.range(2));
  const fq::PackedWeights pw(p.w.data(), p.n, p.k, p.k);
  std::vector<fq::QuantizedMultiplier> mult;
  for (float s : p.scales) mult.push_back(fq::quantize_multiplier(double(s)));
  fq::RequantParams rp;
  rp.bias = p.bias.data();
  rp.multipliers = mult.data();
  rp.multiplier_count = p.n;
  rp.out_zero_point = kOutZeroPoint;
  std::vector<std::uint8_t> y(static_cast<std::size_t>(p.m * p.n));
  for (auto _ : st) {
    fq::linear_u8(p.a.data(), p.m, p.k, kInZeroPoint, pw, rp, y.data(), p.n);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  st.SetLabel(fq::to_string(fq::detect_isa()));
  set_gops(st, p);
}

void BM_GemmEigenF32(benchmark::State& st) {
  const Problem p(st.range(0), st.range(1), st.range(2));
  using RowMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  RowMat a(p.m, p.k), w(p.n, p.k), c(p.m, p.n);
  for (std::int64_t i = 0; i < p.m * p.k; ++i)
    a.data()[i] = float(p.a[static_cast<std::size_t>(i)]);
  for (std::int64_t i = 0; i < p.n * p.k; ++i)
    w.data()[i] = float(p.w[static_cast<std::size_t>(i)]);
  for (auto _ : st) {
    c.noalias() = a * w.transpose();
    benchmark::DoNotOptimize(c.data());
    benchmark::ClobberMemory();
  }
  set_gops(st, p);
}

#if defined(FQ_BENCH_HAVE_DNNL) && FQ_BENCH_HAVE_DNNL
bool dnnl_single_thread(benchmark::State& st) {
  const char* env = std::getenv("OMP_NUM_THREADS");
  if (env && std::strcmp(env, "1") == 0) return true;
  st.SkipWithError("run with OMP_NUM_THREADS=1 so that oneDNN uses one thread");
  return false;
}

// u8 src [M, K] x s8 weights [K, N] (our W [N, K] row-major seen as strides {1, K}).
void run_dnnl(benchmark::State& st, bool requant) {
  if (!dnnl_single_thread(st)) return;
  const Problem p(st.range(0), st.range(1), st.range(2));
  using dt = dnnl::memory::data_type;
  using tag = dnnl::memory::format_tag;
  dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  dnnl::stream strm(eng);
  const dnnl::memory::dims sd{p.m, p.k}, wd{p.k, p.n}, dd{p.m, p.n}, bd{1, p.n};
  const dnnl::memory::desc src_md(sd, dt::u8, tag::ab);
  const dnnl::memory::desc w_user_md(wd, dt::s8, tag::ba);
  const dnnl::memory::desc w_any_md(wd, dt::s8, tag::any);
  const dnnl::memory::desc dst_md(dd, requant ? dt::u8 : dt::s32, tag::ab);
  const dnnl::memory::desc bias_md(bd, dt::s32, tag::ab);
  dnnl::primitive_attr attr;
  if (requant) {
    attr.set_output_scales(1 << 1, p.scales);
    attr.set_zero_points(DNNL_ARG_SRC, 0, {kInZeroPoint});
    attr.set_zero_points(DNNL_ARG_DST, 0, {kOutZeroPoint});
  }
  const dnnl::matmul::desc desc = requant ? dnnl::matmul::desc(src_md, w_any_md, bias_md, dst_md)
                                          : dnnl::matmul::desc(src_md, w_any_md, dst_md);
  const dnnl::matmul::primitive_desc pd(desc, attr, eng);
  dnnl::memory src(src_md, eng, const_cast<std::uint8_t*>(p.a.data()));
  dnnl::memory w_user(w_user_md, eng, const_cast<std::int8_t*>(p.w.data()));
  dnnl::memory w(pd.weights_desc(), eng);
  dnnl::reorder(w_user, w).execute(strm, w_user, w);
  dnnl::memory bias(bias_md, eng, const_cast<std::int32_t*>(p.bias.data()));
  dnnl::memory dst(pd.dst_desc(), eng);
  const dnnl::matmul mm(pd);
  std::unordered_map<int, dnnl::memory> args{
      {DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, w}, {DNNL_ARG_DST, dst}};
  if (requant) args.insert({DNNL_ARG_BIAS, bias});
  for (auto _ : st) {
    mm.execute(strm, args);
    strm.wait();
    benchmark::ClobberMemory();
  }
  st.SetLabel(pd.impl_info_str());
  set_gops(st, p);
}

void BM_GemmOneDNN(benchmark::State& st) { run_dnnl(st, false); }
void BM_GemmRequantOneDNN(benchmark::State& st) { run_dnnl(st, true); }
#endif

void shapes(benchmark::internal::Benchmark* b) {
  for (std::int64_t s : {256, 512, 1024, 2048}) b->Args({s, s, s});
  for (std::int64_t m : {64, 256})
    for (std::int64_t k : {784, 1024, 4096})
      for (std::int64_t n : {256, 1024}) b->Args({m, k, n});
  b->ArgNames({"M", "K", "N"})->Unit(benchmark::kMillisecond);
}

}  // namespace

BENCHMARK(BM_GemmFakequant)->Apply(shapes);
#if defined(FQ_BENCH_HAVE_DNNL) && FQ_BENCH_HAVE_DNNL
BENCHMARK(BM_GemmOneDNN)->Apply(shapes);
#endif
BENCHMARK(BM_GemmEigenF32)->Apply(shapes);
BENCHMARK(BM_GemmFakequantAvx2)->Apply(shapes);
BENCHMARK(BM_GemmRequantFakequant)->Apply(shapes);
#if defined(FQ_BENCH_HAVE_DNNL) && FQ_BENCH_HAVE_DNNL
BENCHMARK(BM_GemmRequantOneDNN)->Apply(shapes);
#endif

BENCHMARK_MAIN();
