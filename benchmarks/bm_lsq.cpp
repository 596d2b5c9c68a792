// SPDX-License-Identifier: MIT
// bm_lsq: LSQ fused forward+backward (reads x and dy, writes y and dx, accumulates d scale
// and d zero point) against a memcpy of the same bytes (x -> y and dy -> dx) and against a
// naive scalar loop doing the same work, 1 thread, at 4Ki, 256Ki, 4Mi and 32Mi floats.
//   per tensor   scale 0.05, zero point 3, [0, 255], PyTorch numerics (and the paper's)
//   per channel  [256, n/256] along axis 0, int8 [-128, 127], one scale per row; and
//                [n/256, 256] along axis 1 (channels innermost)
// Buffers are allocated and touched once per size, outside the timed loop.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include <benchmark/benchmark.h>

#include <fakequant/kernels/fake_quantize.hpp>
#include <fakequant/learnable/learnable.hpp>

#include "bm_buffers.hpp"

namespace {

using fq_bench::Buffers;
using fq_bench::sizes;

constexpr float kScale = 0.05f;
constexpr float kZero = 3.0f;
constexpr std::int64_t kChannels = 256;

// 16 bytes per element: read x and dy, write y and dx.
void set_bytes(benchmark::State& st, std::int64_t n) {
  st.SetBytesProcessed(st.iterations() * n * 16);
}

void BM_Memcpy(benchmark::State& st) {
  const std::int64_t n = st.range(0);
  Buffers b(n);
  for (auto _ : st) {
    std::memcpy(b.y.data(), b.x.data(), b.x.size() * sizeof(float));
    std::memcpy(b.dx.data(), b.dy.data(), b.x.size() * sizeof(float));
    benchmark::ClobberMemory();
  }
  set_bytes(st, n);
}

// The loop a user would write for PyTorch's formulas (forward zero point rne, backward
// half-up; clipping on the rounded value).
void naive_lsq(const float* x, const float* dy, float* y, float* dx, std::int64_t n, float s,
               float z, float qmin, float qmax, double& ds, double& dz) {
  const float inv = 1.0f / s;
  const float zf = std::fmin(std::fmax(std::nearbyint(z), qmin), qmax);
  const float zb = std::trunc(std::fmin(std::fmax(z + 0.5f, qmin), qmax));
  for (std::int64_t i = 0; i < n; ++i) {
    const float q = std::nearbyint(x[i] * inv) + zf;
    y[i] = (std::fmin(std::fmax(q, qmin), qmax) - zf) * s;
    const float xq = std::nearbyint(std::fma(x[i], inv, zb));
    if (xq < qmin) {
      dx[i] = 0.0f;
      ds += double(dy[i] * (qmin - zb));
      dz += double(dy[i]);
    } else if (xq > qmax) {
      dx[i] = 0.0f;
      ds += double(dy[i] * (qmax - zb));
      dz += double(dy[i]);
    } else {
      dx[i] = dy[i];
      ds += double(dy[i] * (((xq - zb) * s - x[i]) * inv));
    }
  }
}

void BM_NaivePerTensor(benchmark::State& st) {
  const std::int64_t n = st.range(0);
  Buffers b(n);
  for (auto _ : st) {
    double ds = 0, dz = 0;
    naive_lsq(b.x.data(), b.dy.data(), b.y.data(), b.dx.data(), n, kScale, kZero, 0.0f, 255.0f, ds,
              dz);
    benchmark::DoNotOptimize(ds);
    benchmark::DoNotOptimize(dz);
    benchmark::ClobberMemory();
  }
  set_bytes(st, n);
}

template <class M>
void BM_LsqPerTensor(benchmark::State& st) {
  const std::int64_t n = st.range(0);
  Buffers b(n);
  for (auto _ : st) {
    const auto g = fq::lsq_per_tensor<M>(b.in(b.x, 1), b.in(b.dy, 1), b.out(b.y, 1), b.out(b.dx, 1),
                                         kScale, kZero, fq::QuantRange{0, 255});
    benchmark::DoNotOptimize(g);
    benchmark::ClobberMemory();
  }
  set_bytes(st, n);
}

std::vector<float> channel_scales() {
  std::vector<float> s(kChannels);
  for (std::int64_t c = 0; c < kChannels; ++c)
    s[static_cast<std::size_t>(c)] = 0.01f + 0.0001f * float(c);
  return s;
}

void BM_NaivePerChannel(benchmark::State& st) {
  const std::int64_t n = st.range(0), k = n / kChannels;
  Buffers b(n);
  const auto s = channel_scales();
  for (auto _ : st) {
    for (std::int64_t c = 0; c < kChannels; ++c) {
      double ds = 0, dz = 0;
      const std::int64_t o = c * k;
      naive_lsq(b.x.data() + o, b.dy.data() + o, b.y.data() + o, b.dx.data() + o, k,
                s[static_cast<std::size_t>(c)], 0.0f, -128.0f, 127.0f, ds, dz);
      benchmark::DoNotOptimize(ds);
      benchmark::DoNotOptimize(dz);
    }
    benchmark::ClobberMemory();
  }
  set_bytes(st, n);
}

void BM_LsqPerChannel(benchmark::State& st) {
  const std::int64_t n = st.range(0);
  Buffers b(n);
  const auto s = channel_scales();
  const std::vector<float> z(kChannels, 0.0f);
  std::vector<float> ds(kChannels), dz(kChannels);
  for (auto _ : st) {
    fq::lsq_per_channel(b.in(b.x, kChannels), b.in(b.dy, kChannels), b.out(b.y, kChannels),
                        b.out(b.dx, kChannels), s.data(), z.data(), kChannels, 0,
                        fq::QuantRange{-128, 127}, 1.0f, ds.data(), dz.data());
    benchmark::ClobberMemory();
  }
  set_bytes(st, n);
}

// Channels innermost: [n/256, 256] on axis 1 (e.g. NHWC activations, HWIO weights).
void BM_LsqPerChannelLastAxis(benchmark::State& st) {
  const std::int64_t n = st.range(0), rows = n / kChannels;
  Buffers b(n);
  const auto s = channel_scales();
  const std::vector<float> z(kChannels, 0.0f);
  std::vector<float> ds(kChannels), dz(kChannels);
  for (auto _ : st) {
    fq::lsq_per_channel(b.in(b.x, rows), b.in(b.dy, rows), b.out(b.y, rows), b.out(b.dx, rows),
                        s.data(), z.data(), kChannels, 1, fq::QuantRange{-128, 127}, 1.0f,
                        ds.data(), dz.data());
    benchmark::ClobberMemory();
  }
  set_bytes(st, n);
}

}  // namespace

BENCHMARK(BM_Memcpy)->Apply(sizes);
BENCHMARK(BM_NaivePerTensor)->Apply(sizes);
BENCHMARK_TEMPLATE(BM_LsqPerTensor, fq::LsqTorch)->Apply(sizes);
BENCHMARK_TEMPLATE(BM_LsqPerTensor, fq::LsqPaper)->Apply(sizes);
BENCHMARK(BM_NaivePerChannel)->Apply(sizes);
BENCHMARK(BM_LsqPerChannel)->Apply(sizes);
BENCHMARK(BM_LsqPerChannelLastAxis)->Apply(sizes);
BENCHMARK_MAIN();
