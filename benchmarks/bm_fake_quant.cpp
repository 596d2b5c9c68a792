// SPDX-License-Identifier: MIT
// bm_fake_quant: fake-quant forward and forward+backward against a memcpy of the same bytes
// and a naive -O3 loop, 1 thread, at 4Ki, 256Ki, 4Mi and 32Mi floats.
//   forward          reads x, writes y (+ 1 bit/element mask)   vs memcpy x -> y
//   forward+backward the above, then reads dy and the mask, writes dx   vs two such memcpys
// Buffers are allocated and touched once per size, outside the timed loop.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include <benchmark/benchmark.h>

#include <fakequant/fakequant.hpp>

#include "bm_buffers.hpp"

namespace {

using fq_bench::BM_Memcpy;
using fq_bench::BM_MemcpyTwice;
using fq_bench::Buffers;
using fq_bench::set_bytes;
using fq_bench::sizes;

constexpr float kScale = 0.05f;
constexpr std::int32_t kZero = 3;
constexpr std::int64_t kChannels = 256;

// The loop a user would write: y = (clamp(nearbyint(x * inv) + z) - z) * s.
void BM_NaiveForward(benchmark::State& st) {
  const std::int64_t n = st.range(0);
  Buffers b(n);
  const float inv = 1.0f / kScale;
  for (auto _ : st) {
    const float* x = b.x.data();
    float* y = b.y.data();
    for (std::int64_t i = 0; i < n; ++i) {
      const float q = std::nearbyint(x[i] * inv) + float(kZero);
      y[i] = (std::fmin(std::fmax(q, 0.0f), 255.0f) - float(kZero)) * kScale;
    }
    benchmark::ClobberMemory();
  }
  set_bytes(st, n, 1);
}

void BM_PerTensorForward(benchmark::State& st) {
  const std::int64_t n = st.range(0);
  Buffers b(n);
  fq::Mask mask;
  const fq::TensorView<const float> x(b.x.data(), {n});
  const fq::TensorView<float> y(b.y.data(), {n});
  for (auto _ : st) {
    fq::fake_quantize_per_tensor(x, y, &mask, kScale, kZero, fq::QuantRange{0, 255});
    benchmark::ClobberMemory();
  }
  set_bytes(st, n, 1);
}

void BM_PerTensorForwardBackward(benchmark::State& st) {
  const std::int64_t n = st.range(0);
  Buffers b(n);
  fq::Mask mask;
  const fq::TensorView<const float> x(b.x.data(), {n}), dy(b.dy.data(), {n});
  const fq::TensorView<float> y(b.y.data(), {n}), dx(b.dx.data(), {n});
  for (auto _ : st) {
    fq::fake_quantize_per_tensor(x, y, &mask, kScale, kZero, fq::QuantRange{0, 255});
    fq::fake_quantize_backward(dy, mask, dx);
    benchmark::ClobberMemory();
  }
  set_bytes(st, n, 2);
}

// Per-channel on [256, n/256] along axis 0 (weights), symmetric int8, one scale per row.
struct PerChannelCase {
  Buffers b;
  std::vector<float> s;
  std::vector<std::int32_t> z;
  explicit PerChannelCase(std::int64_t n) : b(n), s(kChannels), z(kChannels, 0) {
    for (std::int64_t c = 0; c < kChannels; ++c)
      s[static_cast<std::size_t>(c)] = 0.01f + 0.0001f * float(c);
  }
  fq::TensorView<const float> in(const std::vector<float>& v) const {
    return Buffers::in(v, kChannels);
  }
  fq::TensorView<float> out(std::vector<float>& v) const { return Buffers::out(v, kChannels); }
  void forward(fq::Mask& mask) {
    fq::fake_quantize_per_channel(in(b.x), out(b.y), &mask, s.data(), z.data(), kChannels, 0,
                                  fq::QuantRange{-128, 127});
  }
};

void BM_PerChannelForward(benchmark::State& st) {
  PerChannelCase c(st.range(0));
  fq::Mask mask;
  for (auto _ : st) {
    c.forward(mask);
    benchmark::ClobberMemory();
  }
  set_bytes(st, st.range(0), 1);
}

void BM_PerChannelForwardBackward(benchmark::State& st) {
  PerChannelCase c(st.range(0));
  fq::Mask mask;
  for (auto _ : st) {
    c.forward(mask);
    fq::fake_quantize_backward(c.in(c.b.dy), mask, c.out(c.b.dx));
    benchmark::ClobberMemory();
  }
  set_bytes(st, st.range(0), 2);
}

}  // namespace

BENCHMARK(BM_Memcpy)->Apply(sizes);
BENCHMARK(BM_MemcpyTwice)->Apply(sizes);
BENCHMARK(BM_NaiveForward)->Apply(sizes);
BENCHMARK(BM_PerTensorForward)->Apply(sizes);
BENCHMARK(BM_PerTensorForwardBackward)->Apply(sizes);
BENCHMARK(BM_PerChannelForward)->Apply(sizes);
BENCHMARK(BM_PerChannelForwardBackward)->Apply(sizes);
BENCHMARK_MAIN();
