// SPDX-License-Identifier: MIT
// bm_group: group-wise int4 (G = 32) and per-token int8 fake quant against a memcpy of the same
// bytes, 1 thread, 256Ki floats ([256, 1024]) — the issue 14 targets:
//   int4 G=32 forward (dynamic: group min/max + qparams + fake quant)   <= 1.3x memcpy
//   int4 G=32 forward+backward                                          <= 1.5x two memcpys
//   int8 per-token forward (the row min/max pass + fake quant)          <= 1.5x memcpy
// Also, for the cost split: the per-tensor int4 kernel on the same bytes (the floor of the
// quantize loop), the frozen forwards (no reduction), int4 G = 128, and 4Mi floats
// ([4096, 1024]).
// Buffers are allocated and touched once per size, outside the timed loops.
#include <cstdint>
#include <cstring>

#include <benchmark/benchmark.h>

#include <fakequant/kernels/fake_quantize.hpp>
#include <fakequant/quantizer/group_quantizer.hpp>

#include "bm_buffers.hpp"

namespace {

using fq_bench::BM_Memcpy;
using fq_bench::BM_MemcpyTwice;
using fq_bench::Buffers;
using fq_bench::set_bytes;
constexpr std::int64_t kCols = 1024;

void shapes(benchmark::internal::Benchmark* b) {
  for (std::int64_t n : {std::int64_t{256} << 10, std::int64_t{4} << 20}) b->Arg(n);
}

// The per-tensor kernel (kernels/fake_quantize.hpp) on the same bytes and range: the floor a
// group kernel's quantize loop can reach (it adds per-group constants and the reduction).
void BM_Int4PerTensorForward(benchmark::State& st) {
  const std::int64_t n = st.range(0), rows = n / kCols;
  Buffers b(n);
  fq::Mask mask;
  for (auto _ : st) {
    fq::fake_quantize_per_tensor(Buffers::in(b.x, rows), Buffers::out(b.y, rows), &mask, 0.5f, 0,
                                 fq::QuantRange{-8, 7});
    benchmark::ClobberMemory();
  }
  set_bytes(st, n, 1);
}

template <class Q>
void forward(benchmark::State& st, bool frozen) {
  const std::int64_t n = st.range(0), rows = n / kCols;
  Buffers b(n);
  Q q;
  fq::Mask mask;
  q.forward(Buffers::in(b.x, rows), Buffers::out(b.y, rows), &mask);
  if (frozen) q.freeze();
  for (auto _ : st) {
    q.forward(Buffers::in(b.x, rows), Buffers::out(b.y, rows), &mask);
    benchmark::ClobberMemory();
  }
  set_bytes(st, n, 1);
}

void BM_Int4G32Forward(benchmark::State& st) { forward<fq::Int4WeightGroup32Symmetric>(st, false); }
void BM_Int4G32FrozenForward(benchmark::State& st) {
  forward<fq::Int4WeightGroup32Symmetric>(st, true);
}
void BM_Int4G128Forward(benchmark::State& st) {
  forward<fq::Int4WeightGroup128Symmetric>(st, false);
}
void BM_Int4G128FrozenForward(benchmark::State& st) {
  forward<fq::Int4WeightGroup128Symmetric>(st, true);
}
void BM_Int8PerTokenForward(benchmark::State& st) {
  forward<fq::Int8ActPerTokenDynamic>(st, false);
}

void BM_Int8PerTokenFrozenForward(benchmark::State& st) {
  forward<fq::Int8ActPerTokenDynamic>(st, true);
}

void BM_Int4G32ForwardBackward(benchmark::State& st) {
  const std::int64_t n = st.range(0), rows = n / kCols;
  Buffers b(n);
  fq::Int4WeightGroup32Symmetric q;
  fq::Mask mask;
  for (auto _ : st) {
    q.forward(Buffers::in(b.x, rows), Buffers::out(b.y, rows), &mask);
    q.backward(Buffers::in(b.dy, rows), mask, Buffers::out(b.dx, rows));
    benchmark::ClobberMemory();
  }
  set_bytes(st, n, 2);
}

}  // namespace

BENCHMARK(BM_Memcpy)->Apply(shapes);
BENCHMARK(BM_MemcpyTwice)->Apply(shapes);
BENCHMARK(BM_Int4PerTensorForward)->Apply(shapes);
BENCHMARK(BM_Int4G32Forward)->Apply(shapes);
BENCHMARK(BM_Int4G32FrozenForward)->Apply(shapes);
BENCHMARK(BM_Int4G32ForwardBackward)->Apply(shapes);
BENCHMARK(BM_Int4G128Forward)->Apply(shapes);
BENCHMARK(BM_Int4G128FrozenForward)->Apply(shapes);
BENCHMARK(BM_Int8PerTokenForward)->Apply(shapes);
BENCHMARK(BM_Int8PerTokenFrozenForward)->Apply(shapes);
BENCHMARK_MAIN();
