// SPDX-License-Identifier: MIT
// benchmarks/bm_buffers.hpp: the x, y, dy, dx buffers of the element-wise benchmarks, filled
// once per size (x, dy ~ N(0, 2²), seed 42) outside the timed loops, and their sizes.
#ifndef FQ_BENCHMARKS_BM_BUFFERS_HPP_
#define FQ_BENCHMARKS_BM_BUFFERS_HPP_

#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include <benchmark/benchmark.h>

#include <fakequant/core/tensor_view.hpp>

namespace fq_bench {

struct Buffers {
  std::vector<float> x, y, dy, dx;
  explicit Buffers(std::int64_t n)
      : x(static_cast<std::size_t>(n)), y(x.size()), dy(x.size()), dx(x.size()) {
    std::mt19937 rng(42);
    std::normal_distribution<float> nd(0.0f, 2.0f);
    for (auto& v : x) v = nd(rng);
    for (auto& v : dy) v = nd(rng);
  }
  /// v seen as [rows, size / rows].
  static fq::TensorView<const float> in(const std::vector<float>& v, std::int64_t rows) {
    return {v.data(), {rows, static_cast<std::int64_t>(v.size()) / rows}};
  }
  static fq::TensorView<float> out(std::vector<float>& v, std::int64_t rows) {
    return {v.data(), {rows, static_cast<std::int64_t>(v.size()) / rows}};
  }
};

/// The element counts of the element-wise benchmarks: 4Ki (L1), 256Ki (L2), 4Mi and 32Mi
/// floats (DRAM).
inline void sizes(benchmark::internal::Benchmark* b) {
  for (std::int64_t n : {std::int64_t{4} << 10, std::int64_t{256} << 10, std::int64_t{4} << 20,
                         std::int64_t{32} << 20})
    b->Arg(n);
}

/// Bytes moved per iteration: `passes` times n floats read and n written.
inline void set_bytes(benchmark::State& st, std::int64_t n, int passes) {
  st.SetBytesProcessed(st.iterations() * n * 8 * passes);
}

/// The reference of a forward: memcpy x -> y of st.range(0) floats.
inline void BM_Memcpy(benchmark::State& st) {
  const std::int64_t n = st.range(0);
  Buffers b(n);
  for (auto _ : st) {
    std::memcpy(b.y.data(), b.x.data(), b.x.size() * sizeof(float));
    benchmark::ClobberMemory();
  }
  set_bytes(st, n, 1);
}

/// The reference of a forward+backward: memcpy x -> y and dy -> dx.
inline void BM_MemcpyTwice(benchmark::State& st) {
  const std::int64_t n = st.range(0);
  Buffers b(n);
  for (auto _ : st) {
    std::memcpy(b.y.data(), b.x.data(), b.x.size() * sizeof(float));
    std::memcpy(b.dx.data(), b.dy.data(), b.x.size() * sizeof(float));
    benchmark::ClobberMemory();
  }
  set_bytes(st, n, 2);
}

}  // namespace fq_bench

#endif  // FQ_BENCHMARKS_BM_BUFFERS_HPP_
