// SPDX-License-Identifier: MIT
// benchmarks/bm_buffers.hpp: the x, y, dy, dx buffers of the element-wise benchmarks, filled
// once per size (x, dy ~ N(0, 2²), seed 42) outside the timed loops.
#ifndef FQ_BENCHMARKS_BM_BUFFERS_HPP_
#define FQ_BENCHMARKS_BM_BUFFERS_HPP_

#include <cstdint>
#include <random>
#include <vector>

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

}  // namespace fq_bench

#endif  // FQ_BENCHMARKS_BM_BUFFERS_HPP_
