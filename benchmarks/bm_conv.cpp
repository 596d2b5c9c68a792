// SPDX-License-Identifier: MIT
// bm_conv: the int8 convolution (fq::conv2d_u8) against the FP32 convolution of fakequant's
// tape (fq::ops::conv2d, no gradients), batch 64, 1 thread. Counters: img/s (images per
// second) and GOPS = 2 * MACs / time.
//   BM_ConvFp32/<layer>          ops::conv2d on a Tape under NoGradGuard (im2col + Eigen GEMM)
//   BM_ConvInt8Batch/<layer>     conv2d_u8, the whole batch in one call (runtime-dispatched:
//                                the channel-major AVX-512 VNNI path here)
//   BM_ConvInt8PerImage/<layer>  conv2d_u8 once per image with a one-image shape
//   BM_ConvInt8Im2colGemm/<layer> the im2col + gemm_requant path with the NCHW-strided (scalar)
//                                epilogue, as conv2d_u8 ran before the channel-major path
//   BM_ConvInt8Avx2/<layer>      conv2d_u8 forced to the AVX2 path (im2col + AVX2 GEMM)
// Layers: 0 = the Fashion-MNIST demo's first conv (1 -> 32, 3x3, pad 1, 28x28), 1 = its second
// (32 -> 64, 3x3, pad 1, 14x14), 2 = a ResNet-like layer (64 -> 64, 3x3, pad 1, 56x56).
#include <cstdint>
#include <random>
#include <vector>

#include <benchmark/benchmark.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include <fakequant/kernels/conv2d.hpp>
#include <fakequant/ops/conv2d.hpp>
#include <fakequant/tape/tape.hpp>

namespace {

constexpr std::int64_t kBatch = 64;

fq::Conv2dShape layer(std::int64_t i) {
  fq::Conv2dShape s;
  const std::int64_t cin[] = {1, 32, 64}, cout[] = {32, 64, 64}, hw[] = {28, 14, 56};
  s.batch = kBatch;
  s.in_channels = cin[i];
  s.out_channels = cout[i];
  s.in_h = s.in_w = hw[i];
  s.kernel_h = s.kernel_w = 3;
  s.pad_h = s.pad_w = 1;
  return s;
}

void set_counters(benchmark::State& st, const fq::Conv2dShape& s) {
  const double macs = double(s.batch) * double(s.out_channels) * double(s.out_h()) *
                      double(s.out_w()) * double(s.group_k());
  st.counters["img/s"] =
      benchmark::Counter(double(s.batch), benchmark::Counter::kIsIterationInvariantRate);
  st.counters["GOPS"] =
      benchmark::Counter(2e-9 * macs, benchmark::Counter::kIsIterationInvariantRate);
}

void one_thread() {
#ifdef _OPENMP
  omp_set_num_threads(1);
#endif
  Eigen::setNbThreads(1);
}

/// Random uint8 activations, int8 weights, bias and per-channel multipliers of a layer.
struct Int8Layer {
  fq::Conv2dShape s;
  std::vector<std::uint8_t> x, y;
  std::vector<std::int8_t> w;
  std::vector<std::int32_t> bias;
  std::vector<fq::QuantizedMultiplier> mult;
  fq::RequantParams rp;
  explicit Int8Layer(std::int64_t i) : s(layer(i)) {
    std::mt19937 rng(42);
    x.resize(static_cast<std::size_t>(s.batch * s.in_channels * s.in_h * s.in_w));
    y.resize(static_cast<std::size_t>(s.batch * s.out_channels * s.out_h() * s.out_w()));
    w.resize(static_cast<std::size_t>(s.out_channels * s.group_k()));
    for (auto& v : x) v = static_cast<std::uint8_t>(rng() % 256);
    for (auto& v : w) v = static_cast<std::int8_t>(static_cast<int>(rng() % 255) - 127);
    for (std::int64_t o = 0; o < s.out_channels; ++o) {
      bias.push_back(static_cast<std::int32_t>(rng() % 2001) - 1000);
      mult.push_back(fq::quantize_multiplier(1e-4 * (1.0 + double(rng() % 100) / 100.0)));
    }
    rp.bias = bias.data();
    rp.multipliers = mult.data();
    rp.multiplier_count = s.out_channels;
    rp.out_zero_point = 0;
    rp.relu = true;
  }
  /// The layer's shape for one image (what PackedConv2dWeights packs for).
  fq::Conv2dShape one_image() const {
    fq::Conv2dShape one = s;
    one.batch = 1;
    return one;
  }
};

constexpr std::int32_t kInZeroPoint = 7;

void BM_ConvInt8Batch(benchmark::State& st) {
  one_thread();
  Int8Layer l(st.range(0));
  const fq::Conv2dShape one = l.one_image();
  const fq::PackedConv2dWeights pw(l.w.data(), one);
  for (auto _ : st) {
    fq::conv2d_u8(l.x.data(), kInZeroPoint, pw, l.rp, l.y.data(), l.s.batch);
    benchmark::DoNotOptimize(l.y.data());
    benchmark::ClobberMemory();
  }
  set_counters(st, l.s);
}

void BM_ConvInt8PerImage(benchmark::State& st) {
  one_thread();
  Int8Layer l(st.range(0));
  const fq::Conv2dShape one = l.one_image();
  const fq::PackedConv2dWeights pw(l.w.data(), one);
  const std::int64_t in = one.in_channels * one.in_h * one.in_w,
                     out = one.out_channels * one.out_h() * one.out_w();
  for (auto _ : st) {
    for (std::int64_t i = 0; i < l.s.batch; ++i)
      fq::conv2d_u8(l.x.data() + i * in, kInZeroPoint, pw, l.rp, l.y.data() + i * out);
    benchmark::DoNotOptimize(l.y.data());
    benchmark::ClobberMemory();
  }
  set_counters(st, l.s);
}

void BM_ConvInt8Im2colGemm(benchmark::State& st) {
  one_thread();
  Int8Layer l(st.range(0));
  const fq::Conv2dShape& s = l.s;
  const fq::PackedWeights pw(l.w.data(), s.out_channels, s.group_k(), s.group_k());
  const std::int64_t p = s.out_h() * s.out_w(), k = s.group_k(), hw = s.in_h * s.in_w;
  std::vector<std::uint8_t> col(static_cast<std::size_t>(p * k));
  for (auto _ : st) {
    for (std::int64_t b = 0; b < s.batch; ++b) {
      fq::im2col<std::uint8_t>(l.x.data() + b * s.in_channels * hw, s.in_channels, s,
                               static_cast<std::uint8_t>(kInZeroPoint), col.data(), k);
      fq::detail::run_requant<fq::SingleRounding<fq::RoundHalfEven>>(
          col.data(), p, k, pw, kInZeroPoint, l.rp,
          fq::GemmOutput<std::uint8_t>{l.y.data() + b * s.out_channels * p, 1, p, 0},
          fq::Isa::kAuto);
    }
    benchmark::DoNotOptimize(l.y.data());
    benchmark::ClobberMemory();
  }
  set_counters(st, l.s);
}

void BM_ConvInt8Avx2(benchmark::State& st) {
  if (!fq::isa_supported(fq::Isa::kAvx2)) {
    st.SkipWithError("no AVX2");
    return;
  }
  one_thread();
  Int8Layer l(st.range(0));
  const fq::PackedConv2dWeights pw(l.w.data(), l.s);
  for (auto _ : st) {
    fq::conv2d_u8(l.x.data(), kInZeroPoint, pw, l.rp, l.y.data(), fq::Isa::kAvx2);
    benchmark::DoNotOptimize(l.y.data());
    benchmark::ClobberMemory();
  }
  set_counters(st, l.s);
}

void BM_ConvFp32(benchmark::State& st) {
  one_thread();
  const fq::Conv2dShape s = layer(st.range(0));
  std::mt19937 rng(42);
  std::normal_distribution<float> nd;
  std::vector<float> x(static_cast<std::size_t>(s.batch * s.in_channels * s.in_h * s.in_w)),
      w(static_cast<std::size_t>(s.out_channels * s.group_k())),
      b(static_cast<std::size_t>(s.out_channels));
  for (float& v : x) v = nd(rng);
  for (float& v : w) v = 0.1f * nd(rng);
  for (float& v : b) v = 0.1f * nd(rng);
  fq::Tape tape;
  fq::NoGradGuard no_grad(tape);
  const auto opt = fq::ops::Conv2dOptions::make(s.stride_h, s.pad_h);
  for (auto _ : st) {
    const fq::Var xv = tape.constant(x.data(), {s.batch, s.in_channels, s.in_h, s.in_w});
    const fq::Var wv =
        tape.constant(w.data(), {s.out_channels, s.in_channels, s.kernel_h, s.kernel_w});
    const fq::Var bv = tape.constant(b.data(), {s.out_channels});
    const fq::Var y = fq::ops::conv2d(tape, xv, wv, bv, opt);
    benchmark::DoNotOptimize(y.value());
    benchmark::ClobberMemory();
    tape.clear();
  }
  set_counters(st, s);
}

BENCHMARK(BM_ConvFp32)->DenseRange(0, 2)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_ConvInt8Batch)->DenseRange(0, 2)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_ConvInt8PerImage)->DenseRange(0, 2)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_ConvInt8Im2colGemm)->DenseRange(0, 2)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_ConvInt8Avx2)->DenseRange(0, 2)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
