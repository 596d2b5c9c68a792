// SPDX-License-Identifier: MIT
// bm_gemm: the int8 GEMM of a linear layer, C[M, N] = A[M, K] * W[N, K]^T, 1 thread.
//   BM_Gemm<Impl>/M/K/N          u8 x s8 -> s32
//   BM_GemmRequant<Impl>/M/K/N   u8 x s8 + s32 bias, per-channel requantization -> u8
// Impl: Fakequant (fq::gemm_u8s8s32 / fq::linear_u8, runtime-dispatched: AMX-INT8 where the
// CPU and OS allow it, else AVX-512 VNNI, else AVX2; the label names the path), FakequantAmx /
// FakequantVnni / FakequantAvx2 (that path forced; skipped with an error message on a CPU
// without it),
// OneDNN (dnnl::matmul, when built with oneDNN; weights reordered to its preferred layout
// outside the timed loop, as ours are packed outside it), EigenF32 (the float GEMM,
// Eigen's own blocking, as the FP32 baseline). Counter GOPS = 2*M*N*K / time; on the
// Fakequant rows, peak_frac = GOPS / the measured peak of the path that ran, where the peak
// is timed once per path in the same run by an in-register loop of that path's instruction
// (BM_IsaPeak reports it): vpdpbusd zmm (128 ops) for VNNI, vpmaddwd + vpaddd ymm (32 ops)
// for AVX2 (the widening path's multiply), tdpbusd 16x16x64 (32768 ops) for AMX.
// Shapes: square 256..2048 and layer shapes M in {64, 256}, K in {784, 1024, 4096},
// N in {256, 1024}. oneDNN must run single-threaded: run with OMP_NUM_THREADS=1 (the OneDNN
// benchmarks refuse to run otherwise).
#include <algorithm>  // max
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <ctime>  // clock_gettime
#include <random>
#include <unordered_map>
#include <vector>

#include <Eigen/Core>
#include <benchmark/benchmark.h>

#include <fakequant/kernels/gemm.hpp>
#include <fakequant/kernels/linear.hpp>

#if FQ_KERNELS_X86
#include <immintrin.h>
#endif

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

// ---- The measured peak of each path: its multiply instruction in a loop of independent
// accumulators (no memory operands), timed for about 50 ms.
#if FQ_KERNELS_X86
// Named accumulators (an array would live in memory): 12 for VNNI, 8 for AVX2.
#define FQ_BM_ACC12(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)
#define FQ_BM_ACC8(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7)
FQ_TARGET_AVX512VNNI std::int64_t peak_loop_vnni(std::int64_t iters) {
#define FQ_BM_DECL(i) __m512i acc##i = _mm512_set1_epi32(i);  // distinct: no chain is merged
#define FQ_BM_STEP(i) acc##i = _mm512_dpbusd_epi32(acc##i, a, b);
#define FQ_BM_SUM(i) s = _mm512_add_epi32(s, acc##i);
  FQ_BM_ACC12(FQ_BM_DECL)
  const __m512i a = _mm512_set1_epi32(0x01020304), b = _mm512_set1_epi32(0x01FF01FF);
  for (std::int64_t i = 0; i < iters; ++i) {
    FQ_BM_ACC12(FQ_BM_STEP)
  }
  __m512i s = _mm512_setzero_si512();
  FQ_BM_ACC12(FQ_BM_SUM)
#undef FQ_BM_DECL
#undef FQ_BM_STEP
#undef FQ_BM_SUM
  alignas(64) std::int32_t out[16];
  _mm512_store_si512(out, s);
  return out[0];
}
FQ_TARGET_AVX2 std::int64_t peak_loop_avx2(std::int64_t iters) {
#define FQ_BM_DECL(i) __m256i acc##i = _mm256_set1_epi32(i);
#define FQ_BM_STEP(i) acc##i = _mm256_add_epi32(acc##i, _mm256_madd_epi16(a, b##i));
#define FQ_BM_B(i) const __m256i b##i = _mm256_set1_epi32(0x00010001 * (i + 1));
#define FQ_BM_SUM(i) s = _mm256_add_epi32(s, acc##i);
  FQ_BM_ACC8(FQ_BM_DECL)
  // a changes each iteration (one add) and each accumulator has its own b: no product is
  // hoisted or shared.
  FQ_BM_ACC8(FQ_BM_B)
  __m256i a = _mm256_set1_epi32(0x00030004);
  const __m256i one = _mm256_set1_epi16(1);
  for (std::int64_t i = 0; i < iters; ++i) {
    FQ_BM_ACC8(FQ_BM_STEP)
    a = _mm256_add_epi16(a, one);
  }
  __m256i s = _mm256_setzero_si256();
  FQ_BM_ACC8(FQ_BM_SUM)
#undef FQ_BM_DECL
#undef FQ_BM_STEP
#undef FQ_BM_SUM
#undef FQ_BM_B
  return _mm256_extract_epi32(s, 0);
}
FQ_TARGET_AMX std::int64_t peak_loop_amx(std::int64_t iters) {
  fq::detail::AmxTileConfig cfg;
  for (int t = 0; t < 8; ++t) {
    cfg.rows[t] = 16;
    cfg.colsb[t] = 64;
  }
  fq::detail::amx_hw_load_config(&cfg);
  alignas(64) std::uint8_t ab[16 * 64];  // nonzero operands in tmm4..7
  for (int i = 0; i < 16 * 64; ++i) ab[i] = static_cast<std::uint8_t>(i * 37 + 1);
  fq::detail::amx_hw_load<4>(ab, 64);
  fq::detail::amx_hw_load<5>(ab, 64);
  fq::detail::amx_hw_load<6>(ab, 64);
  fq::detail::amx_hw_load<7>(ab, 64);
  for (std::int64_t i = 0; i < iters; ++i) {
    _tile_dpbusd(0, 4, 6);
    _tile_dpbusd(1, 4, 7);
    _tile_dpbusd(2, 5, 6);
    _tile_dpbusd(3, 5, 7);
  }
  alignas(64) std::int32_t out[256];
  _tile_stored(0, out, 64);
  _tile_release();
  return out[0];
}
#endif

// The best of 5 timings of about 20 ms each. Ops of one iteration of each loop: vpdpbusd zmm = 16
// lanes x 4 products x 2; vpmaddwd ymm = 8 lanes x 2 products x 2; tdpbusd = 16 x 16 x 64 products
// x 2. This thread's CPU time in seconds: the timed loops and the peaks are measured alike (and
// like Google Benchmark's CPU time, the denominator of its GOPS rate), so time stolen by other
// processes on a shared machine counts in neither.
double thread_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

double measure_peak_gops(fq::Isa isa) {
#if FQ_KERNELS_X86
  std::int64_t (*loop)(std::int64_t) = nullptr;
  double ops = 0;
  if (isa == fq::Isa::kAvx512Vnni) loop = peak_loop_vnni, ops = 12.0 * 128;
  if (isa == fq::Isa::kAvx2) loop = peak_loop_avx2, ops = 8.0 * 32;
  if (isa == fq::Isa::kAmx) loop = peak_loop_amx, ops = 4.0 * 32768;
  if (loop == nullptr || !fq::isa_supported(isa)) return 0.0;
  std::int64_t iters = 1000;
  for (;;) {  // about 20 ms per measurement
    const double t0 = thread_seconds();
    benchmark::DoNotOptimize(loop(iters));
    if (thread_seconds() - t0 > 0.02) break;
    iters *= 4;
  }
  double best = 0.0;  // the best of 5: a sibling thread or an interrupt only slows a run down
  for (int r = 0; r < 5; ++r) {
    const double t0 = thread_seconds();
    benchmark::DoNotOptimize(loop(iters));
    best = std::max(best, 1e-9 * ops * double(iters) / (thread_seconds() - t0));
  }
  return best;
#else
  (void)isa;
  return 0.0;
#endif
}

double peak_gops(fq::Isa isa) {  // measured once per path and run
  static std::unordered_map<int, double> cache;
  auto it = cache.find(static_cast<int>(isa));
  if (it == cache.end()) it = cache.emplace(static_cast<int>(isa), measure_peak_gops(isa)).first;
  return it->second;
}

// GOPS and peak_frac for `seconds` of timed loop on path `isa`.
void set_gops_and_peak(benchmark::State& st, const Problem& p, fq::Isa isa, double seconds) {
  set_gops(st, p);
  const double gops =
      2e-9 * double(p.m) * double(p.n) * double(p.k) * double(st.iterations()) / seconds;
  const double peak = peak_gops(isa);
  if (peak > 0) st.counters["peak_frac"] = gops / peak;
  st.SetLabel(fq::to_string(isa));
}

void run_gemm_path(benchmark::State& st, fq::Isa isa) {
  if (!fq::isa_supported(isa)) {
    st.SkipWithError(isa == fq::Isa::kAmx ? "no AMX-INT8 on this CPU"
                                          : "this CPU does not run this path");
    return;
  }
  const fq::Isa path = isa == fq::Isa::kAuto ? fq::detect_isa() : isa;
  const Problem p(st.range(0), st.range(1), st.range(2));
  const fq::PackedWeights pw(p.w.data(), p.n, p.k, p.k);
  std::vector<std::int32_t> c(static_cast<std::size_t>(p.m * p.n));
  (void)peak_gops(path);  // measured before the timed loop
  const double t0 = thread_seconds();
  for (auto _ : st) {
    fq::gemm_u8s8s32(p.a.data(), p.m, p.k, pw, c.data(), p.n, 0, isa);
    benchmark::DoNotOptimize(c.data());
    benchmark::ClobberMemory();
  }
  set_gops_and_peak(st, p, path, thread_seconds() - t0);
}

void BM_GemmFakequant(benchmark::State& st) { run_gemm_path(st, fq::Isa::kAuto); }
// The paths forced, on the same shapes.
void BM_GemmFakequantAmx(benchmark::State& st) { run_gemm_path(st, fq::Isa::kAmx); }
void BM_GemmFakequantVnni(benchmark::State& st) { run_gemm_path(st, fq::Isa::kAvx512Vnni); }
void BM_GemmFakequantAvx2(benchmark::State& st) { run_gemm_path(st, fq::Isa::kAvx2); }

// The measured peak of each path (GOPS), the denominator of peak_frac.
void BM_IsaPeak(benchmark::State& st) {
  const auto isa = static_cast<fq::Isa>(st.range(0));
  if (!fq::isa_supported(isa)) {
    st.SkipWithError(isa == fq::Isa::kAmx ? "no AMX-INT8 on this CPU"
                                          : "this CPU does not run this path");
    return;
  }
  for (auto _ : st) benchmark::DoNotOptimize(peak_gops(isa));
  st.counters["peak_GOPS"] = peak_gops(isa);
  st.SetLabel(fq::to_string(isa));
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
  (void)peak_gops(fq::detect_isa());
  const double t0 = thread_seconds();
  for (auto _ : st) {
    fq::linear_u8(p.a.data(), p.m, p.k, kInZeroPoint, pw, rp, y.data(), p.n);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  set_gops_and_peak(st, p, fq::detect_isa(), thread_seconds() - t0);
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

BENCHMARK(BM_IsaPeak)
    ->Arg(static_cast<int>(fq::Isa::kAvx2))
    ->Arg(static_cast<int>(fq::Isa::kAvx512Vnni))
    ->Arg(static_cast<int>(fq::Isa::kAmx))
    ->Iterations(1);
BENCHMARK(BM_GemmFakequant)->Apply(shapes);
BENCHMARK(BM_GemmFakequantAmx)->Apply(shapes);
BENCHMARK(BM_GemmFakequantVnni)->Apply(shapes);
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
