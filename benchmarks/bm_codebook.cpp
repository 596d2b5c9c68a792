// SPDX-License-Identifier: MIT
// bm_codebook: codebook fake quantization (NF4 absmax per block of 64, QLoRA) against a memcpy
// of the same bytes, 1 thread, 256Ki floats as [256, 1024] (bm_buffers.hpp data, N(0, 2²)).
//   Nf4Block64Forward          dynamic absmax per block + nearest level + mask  vs memcpy
//   Nf4Block64ForwardNoMask    the same without the mask
//   Nf4Block64ForwardScalar    the scalar reference (Isa::kScalar), for scale
//   Nf4Block64ForwardBackward  forward, then dx = dy * mask                      vs two memcpys
//   Pow2Block64Forward         15 power-of-two levels (permute path)
//   Codebook32Block64Forward   a 32-level run-time codebook (select-chain path)
#include <cstdint>
#include <cstring>
#include <vector>

#include <benchmark/benchmark.h>

#include <fakequant/quantizer/codebook_quantizer.hpp>

#include "bm_buffers.hpp"

namespace {

using fq_bench::Buffers;

constexpr std::int64_t kN = std::int64_t{256} << 10;
constexpr std::int64_t kRows = 256;

void set_bytes(benchmark::State& st, int passes) {
  st.SetBytesProcessed(st.iterations() * kN * 8 * passes);
}

void BM_Memcpy(benchmark::State& st) {
  Buffers b(kN);
  for (auto _ : st) {
    std::memcpy(b.y.data(), b.x.data(), b.x.size() * sizeof(float));
    benchmark::ClobberMemory();
  }
  set_bytes(st, 1);
}

void BM_MemcpyTwice(benchmark::State& st) {
  Buffers b(kN);
  for (auto _ : st) {
    std::memcpy(b.y.data(), b.x.data(), b.x.size() * sizeof(float));
    std::memcpy(b.dx.data(), b.dy.data(), b.x.size() * sizeof(float));
    benchmark::ClobberMemory();
  }
  set_bytes(st, 2);
}

template <class Q>
void forward(benchmark::State& st, Q& q, bool with_mask, fq::Isa path) {
  Buffers b(kN);
  fq::Mask mask;
  for (auto _ : st) {
    q.forward(Buffers::in(b.x, kRows), Buffers::out(b.y, kRows), with_mask ? &mask : nullptr, path);
    benchmark::ClobberMemory();
  }
  set_bytes(st, 1);
}

void BM_Nf4Block64Forward(benchmark::State& st) {
  fq::Nf4Block64 q;
  forward(st, q, true, fq::Isa::kAuto);
}
void BM_Nf4Block64ForwardNoMask(benchmark::State& st) {
  fq::Nf4Block64 q;
  forward(st, q, false, fq::Isa::kAuto);
}
void BM_Nf4Block64ForwardScalar(benchmark::State& st) {
  fq::Nf4Block64 q;
  forward(st, q, true, fq::Isa::kScalar);
}
void BM_Pow2Block64Forward(benchmark::State& st) {
  fq::Pow2Block64 q;
  forward(st, q, true, fq::Isa::kAuto);
}
void BM_Codebook32Block64Forward(benchmark::State& st) {
  std::vector<float> lv;
  for (int i = 0; i < 32; ++i)
    lv.push_back(-1.0f + 2.0f * float(i * i) / 961.0f);  // denser near -1
  fq::CodebookBlock q(fq::Codebook(lv), 64);
  forward(st, q, true, fq::Isa::kAuto);
}

void BM_Nf4Block64ForwardBackward(benchmark::State& st) {
  Buffers b(kN);
  fq::Nf4Block64 q;
  fq::Mask mask;
  for (auto _ : st) {
    q.forward(Buffers::in(b.x, kRows), Buffers::out(b.y, kRows), &mask);
    q.backward(Buffers::in(b.dy, kRows), mask, Buffers::out(b.dx, kRows));
    benchmark::ClobberMemory();
  }
  set_bytes(st, 2);
}

}  // namespace

BENCHMARK(BM_Memcpy);
BENCHMARK(BM_MemcpyTwice);
BENCHMARK(BM_Nf4Block64Forward);
BENCHMARK(BM_Nf4Block64ForwardNoMask);
BENCHMARK(BM_Nf4Block64ForwardScalar);
BENCHMARK(BM_Nf4Block64ForwardBackward);
BENCHMARK(BM_Pow2Block64Forward);
BENCHMARK(BM_Codebook32Block64Forward);
BENCHMARK_MAIN();
