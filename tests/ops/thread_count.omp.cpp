// SPDX-License-Identifier: MIT
// The tape ops on OpenMP threads (this binary is built with OpenMP; the other tests are not):
// linear, matmul, attention, conv2d, batch norm and max pool give the same bits — outputs and
// gradients — for 1, 2, 3 and 4 threads. For linear and matmul that holds where the CPU has FMA
// (fq::sgemm_parallel; on Eigen the blocking follows the thread count); conv2d splits its batch
// into a fixed number of chunks.
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <omp.h>
#include <random>
#include <vector>

#include <catch2/catch.hpp>

#include <fakequant/kernels/sgemm_parallel.hpp>
#include <fakequant/layers/attention.hpp>
#include <fakequant/ops/batch_norm.hpp>
#include <fakequant/ops/conv2d.hpp>
#include <fakequant/ops/linear.hpp>
#include <fakequant/ops/matmul.hpp>
#include <fakequant/ops/pool.hpp>

#include "ops/ops_test_util.hpp"

using fq::Tape;
using fq::Var;

namespace {

/// A leaf input of random values and its gradient buffer (preloaded with random values: the
/// ops add onto a leaf's gradient).
struct Input {
  fq::Shape shape;
  std::vector<float> value, grad;
  Input(fq::Shape s, std::uint32_t seed) : shape(s) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> nd;
    value.resize(static_cast<std::size_t>(s.numel()));
    grad.resize(value.size());
    for (float& v : value) v = nd(rng);
    for (float& v : grad) v = nd(rng);
  }
};

using Build = std::function<Var(Tape&, std::vector<Var>&)>;

/// The op's output and its inputs' gradients (loss Σ dy · y, dy fixed) with `threads` threads,
/// concatenated.
std::vector<float> run(std::vector<Input> in, const Build& build, int threads) {
  omp_set_num_threads(threads);
  Tape tape;
  std::vector<Var> vars;
  for (Input& i : in) vars.push_back(tape.leaf(i.value.data(), i.grad.data(), i.shape));
  const Var y = build(tape, vars);
  std::vector<float> dy(static_cast<std::size_t>(y.numel()));
  std::mt19937 rng(99);
  std::normal_distribution<float> nd;
  for (float& v : dy) v = nd(rng);
  fq_test::backward_with(tape, y, dy);
  std::vector<float> out(y.value(), y.value() + y.numel());
  for (const Input& i : in) out.insert(out.end(), i.grad.begin(), i.grad.end());
  return out;
}

void check_thread_counts(const std::vector<Input>& in, const Build& build) {
  const int saved = omp_get_max_threads();
  const std::vector<float> one = run(in, build, 1);
  for (int threads : {2, 3, 4}) {
    const std::vector<float> got = run(in, build, threads);
    std::size_t bad = 0;
    for (std::size_t e = 0; e < one.size(); ++e)
      bad += std::memcmp(&one[e], &got[e], sizeof(float)) != 0;
    CAPTURE(threads, one.size());
    CHECK(bad == 0);
  }
  omp_set_num_threads(saved);
}

}  // namespace

TEST_CASE("linear and matmul: the same bits for every thread count", "[ops][gemm][threads]") {
  if constexpr (!fq::kSgemmSimd<fq::DefaultArch>) {
    WARN("this build's architecture has no FMA: linear and matmul run on Eigen's GEMM");
    return;
  }
  const int saved = omp_get_max_threads();
  omp_set_num_threads(2);  // these products are large enough to be split
  CHECK(fq::sgemm_parts(130, 200, 300) == 2);
  CHECK(fq::sgemm_parts(200, 10, 1300) == 2);
  omp_set_num_threads(saved);
  // 130 × 200 (cut by rows: the more even cut for two threads), 200 × 10 (too narrow for
  // columns), bias.
  check_thread_counts(
      {Input({130, 300}, 1), Input({200, 300}, 2), Input({200}, 3)},
      [](Tape& t, std::vector<Var>& v) { return fq::ops::linear(t, v[0], v[1], v[2]); });
  check_thread_counts({Input({200, 1300}, 4), Input({10, 1300}, 5)},
                      [](Tape& t, std::vector<Var>& v) { return fq::ops::linear(t, v[0], v[1]); });
  // Many small batches (whole batches per thread), alpha: attention's scores.
  check_thread_counts({Input({8, 65, 64}, 6), Input({8, 65, 64}, 7)},
                      [](Tape& t, std::vector<Var>& v) {
                        return fq::ops::matmul(t, v[0], v[1], false, true, 0.125f);
                      });
  // A shared weight: one flat GEMM (200 × 256: cut by columns, A packed once and shared);
  // transposed a: per batch, db summed over the batches.
  check_thread_counts({Input({2, 100, 300}, 8), Input({300, 256}, 9)},
                      [](Tape& t, std::vector<Var>& v) { return fq::ops::matmul(t, v[0], v[1]); });
  check_thread_counts(
      {Input({3, 300, 100}, 10), Input({300, 256}, 11)},
      [](Tape& t, std::vector<Var>& v) { return fq::ops::matmul(t, v[0], v[1], true, false); });
}

TEST_CASE("attention: the same bits for every thread count", "[ops][gemm][threads]") {
  if constexpr (!fq::kSgemmSimd<fq::DefaultArch>) {
    WARN("this build's architecture has no FMA: the products run on Eigen's GEMM");
    return;
  }
  // Float Q, K, V (heads read in place) and W8A8 (matmul on the heads' copies); 4 × 4 heads.
  // A fresh layer per run (its observers learn from the input), kept until the test ends: the
  // tape's backward reads its weights.
  std::vector<std::shared_ptr<void>> layers;
  const auto attention = [&layers](auto recipe) {
    return [&layers](Tape& t, std::vector<Var>& v) {
      std::mt19937 rng(21);
      auto attn = std::make_shared<fq::QMultiHeadAttention<decltype(recipe)>>(32, 4, rng);
      layers.push_back(attn);
      return attn->forward(t, v[0]);
    };
  };
  check_thread_counts({Input({4, 9, 32}, 19)}, attention(fq::FloatRecipe{}));
  check_thread_counts({Input({4, 9, 32}, 20)}, attention(fq::W8A8Recipe{}));
}

TEST_CASE("conv2d, batch norm with ReLU, max pool: the same bits for every thread count",
          "[ops][threads]") {
  fq::ops::Conv2dOptions opt;
  opt.pad_h = opt.pad_w = 1;
  check_thread_counts(
      {Input({6, 3, 12, 12}, 12), Input({8, 3, 3, 3}, 13), Input({8}, 14)},
      [opt](Tape& t, std::vector<Var>& v) { return fq::ops::conv2d(t, v[0], v[1], v[2], opt); });
  // Training mode: batch statistics; the running statistics start afresh in every run.
  std::vector<float> mean(8), var(8);
  check_thread_counts({Input({6, 8, 9, 9}, 15), Input({8}, 16), Input({8}, 17)},
                      [&mean, &var](Tape& t, std::vector<Var>& v) {
                        mean.assign(8, 0.0f);
                        var.assign(8, 1.0f);
                        return fq::ops::batch_norm_relu(t, v[0], v[1], v[2], mean.data(),
                                                        var.data());
                      });
  check_thread_counts({Input({4, 5, 9, 7}, 18)}, [](Tape& t, std::vector<Var>& v) {
    return fq::ops::max_pool2d(t, v[0], 3, 2);
  });
}
