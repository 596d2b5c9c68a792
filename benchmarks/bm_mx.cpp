// SPDX-License-Identifier: MIT
// bm_mx: MX (MXFP4, MXFP8 E4M3) and NVFP4 fake quantization, forward and forward+backward,
// against a memcpy of the same bytes, 1 thread, at 256Ki and 4Mi floats ([n / 4096, 4096]).
//   forward          reads x, writes y (+ 1 bit/element mask, 1 scale per block)   vs memcpy
//   forward+backward the above, then reads dy and the mask, writes dx   vs two memcpys
// The scales are dynamic (computed from x at every forward), as in MX/NVFP4 training.
#include <cstdint>
#include <cstring>
#include <vector>

#include <benchmark/benchmark.h>

#include <fakequant/quantizer/mx_quantizer.hpp>
#include <fakequant/quantizer/nvfp4_quantizer.hpp>

#include "bm_buffers.hpp"

namespace {

using fq_bench::BM_Memcpy;
using fq_bench::BM_MemcpyTwice;
using fq_bench::Buffers;
using fq_bench::set_bytes;

constexpr std::int64_t kCols = 4096;

void mx_sizes(benchmark::internal::Benchmark* b) {
  for (std::int64_t n : {std::int64_t{256} << 10, std::int64_t{4} << 20}) b->Arg(n);
}

template <class Q>
void BM_Forward(benchmark::State& st) {
  const std::int64_t n = st.range(0);
  Buffers b(n);
  Q q;
  fq::Mask mask;
  const std::int64_t rows = n / kCols;
  for (auto _ : st) {
    q.forward(Buffers::in(b.x, rows), Buffers::out(b.y, rows), &mask);
    benchmark::ClobberMemory();
  }
  set_bytes(st, n, 1);
}

template <class Q>
void BM_ForwardBackward(benchmark::State& st) {
  const std::int64_t n = st.range(0);
  Buffers b(n);
  Q q;
  fq::Mask mask;
  const std::int64_t rows = n / kCols;
  for (auto _ : st) {
    q.forward(Buffers::in(b.x, rows), Buffers::out(b.y, rows), &mask);
    q.backward(Buffers::in(b.dy, rows), mask, Buffers::out(b.dx, rows));
    benchmark::ClobberMemory();
  }
  set_bytes(st, n, 2);
}

BENCHMARK(BM_Memcpy)->Apply(mx_sizes);
BENCHMARK(BM_MemcpyTwice)->Apply(mx_sizes);
BENCHMARK_TEMPLATE(BM_Forward, fq::MxFp4)->Apply(mx_sizes);
BENCHMARK_TEMPLATE(BM_ForwardBackward, fq::MxFp4)->Apply(mx_sizes);
BENCHMARK_TEMPLATE(BM_Forward, fq::MxFp8E4M3)->Apply(mx_sizes);
BENCHMARK_TEMPLATE(BM_ForwardBackward, fq::MxFp8E4M3)->Apply(mx_sizes);
BENCHMARK_TEMPLATE(BM_Forward, fq::NvFp4)->Apply(mx_sizes);
BENCHMARK_TEMPLATE(BM_ForwardBackward, fq::NvFp4)->Apply(mx_sizes);

}  // namespace

BENCHMARK_MAIN();
