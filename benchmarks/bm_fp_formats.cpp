// SPDX-License-Identifier: MIT
// bm_fp_formats: FP8 E4M3 per-tensor fake quantization (kernels/fp_fake_quantize.hpp,
// quantizer/fp_quantizer.hpp) against a memcpy of the same bytes, 1 thread, 256Ki floats
// (and 4Mi, DRAM).
//   forward (frozen)     reads x, writes y + 1 bit/element mask           vs memcpy x -> y
//     - a generic scale (0.0123f: x / s is a division) and a power-of-two scale (2^-6: the
//       kernel multiplies by the exact reciprocal)
//   forward (dynamic)    the amax pass over x, then the above                vs memcpy
//   forward+backward     dynamic forward, then dx = dy * mask                vs two memcpys
// Buffers are allocated and touched once per size, outside the timed loop.
#include <cstdint>
#include <cstring>
#include <vector>

#include <benchmark/benchmark.h>

#include <fakequant/kernels/fake_quantize.hpp>
#include <fakequant/kernels/fp_fake_quantize.hpp>
#include <fakequant/quantizer/fp_quantizer.hpp>

#include "bm_buffers.hpp"

namespace {

using fq_bench::BM_Memcpy;
using fq_bench::BM_MemcpyTwice;
using fq_bench::Buffers;
using fq_bench::set_bytes;

void fp_sizes(benchmark::internal::Benchmark* b) {
  b->Arg(std::int64_t{256} << 10)->Arg(std::int64_t{4} << 20);
}

void frozen_forward(benchmark::State& st, float scale) {
  const std::int64_t n = st.range(0);
  Buffers b(n);
  fq::Mask mask;
  const fq::TensorView<const float> x(b.x.data(), {n});
  const fq::TensorView<float> y(b.y.data(), {n});
  for (auto _ : st) {
    fq::fp_fake_quantize_per_tensor<fq::FloatE4M3>(x, y, &mask, scale);
    benchmark::ClobberMemory();
  }
  set_bytes(st, n, 1);
}

void BM_E4M3FrozenForward(benchmark::State& st) { frozen_forward(st, 0.0123f); }
void BM_E4M3FrozenForwardPow2(benchmark::State& st) { frozen_forward(st, 1.0f / 64); }

void BM_E4M3DynamicForward(benchmark::State& st) {
  const std::int64_t n = st.range(0);
  Buffers b(n);
  fq::Mask mask;
  fq::Fp8E4M3PerTensor q;
  const fq::TensorView<const float> x(b.x.data(), {n});
  const fq::TensorView<float> y(b.y.data(), {n});
  for (auto _ : st) {
    q.forward(x, y, &mask);
    benchmark::ClobberMemory();
  }
  set_bytes(st, n, 1);
}

void BM_E4M3DynamicForwardBackward(benchmark::State& st) {
  const std::int64_t n = st.range(0);
  Buffers b(n);
  fq::Mask mask;
  fq::Fp8E4M3PerTensor q;
  const fq::TensorView<const float> x(b.x.data(), {n}), dy(b.dy.data(), {n});
  const fq::TensorView<float> y(b.y.data(), {n}), dx(b.dx.data(), {n});
  for (auto _ : st) {
    q.forward(x, y, &mask);
    q.backward(dy, mask, dx);
    benchmark::ClobberMemory();
  }
  set_bytes(st, n, 2);
}

void BM_E4M3FrozenForwardBackward(benchmark::State& st) {
  const std::int64_t n = st.range(0);
  Buffers b(n);
  fq::Mask mask;
  fq::Fp8E4M3PerTensor q;
  q.set_scale(0.0123f);
  const fq::TensorView<const float> x(b.x.data(), {n}), dy(b.dy.data(), {n});
  const fq::TensorView<float> y(b.y.data(), {n}), dx(b.dx.data(), {n});
  for (auto _ : st) {
    q.forward(x, y, &mask);
    q.backward(dy, mask, dx);
    benchmark::ClobberMemory();
  }
  set_bytes(st, n, 2);
}

}  // namespace

BENCHMARK(BM_Memcpy)->Apply(fp_sizes);
BENCHMARK(BM_MemcpyTwice)->Apply(fp_sizes);
BENCHMARK(BM_E4M3FrozenForward)->Apply(fp_sizes);
BENCHMARK(BM_E4M3FrozenForwardPow2)->Apply(fp_sizes);
BENCHMARK(BM_E4M3DynamicForward)->Apply(fp_sizes);
BENCHMARK(BM_E4M3FrozenForwardBackward)->Apply(fp_sizes);
BENCHMARK(BM_E4M3DynamicForwardBackward)->Apply(fp_sizes);
BENCHMARK_MAIN();
