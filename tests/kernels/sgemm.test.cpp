// SPDX-License-Identifier: MIT
// fq::sgemm (kernels/sgemm.hpp): the SIMD kernel equals sgemm_reference bit for bit — the fused
// chain in ascending k — on every operand layout, edge tiles in M and N, several K and N blocks,
// accumulate or not, with A packed by the call or beforehand; C outside its view untouched.
// fq::sgemm_parallel (kernels/sgemm_parallel.hpp): the same bits for every split of C.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include <fakequant/kernels/sgemm.hpp>
#include <fakequant/kernels/sgemm_parallel.hpp>

#include "catch.hpp"

namespace {

/// A matrix stored row-major [rows, cols] with row stride ld >= cols, its view as an operand,
/// plain or transposed (then the operand is [cols, rows]).
struct Stored {
  std::vector<float> v;
  std::int64_t ld;
  Stored(std::int64_t rows, std::int64_t cols, std::int64_t pad, std::mt19937& rng)
      : v(static_cast<std::size_t>(rows * (cols + pad))), ld(cols + pad) {
    std::normal_distribution<float> nd(0.0f, 1.0f);
    for (float& e : v) e = nd(rng);
  }
  fq::SgemmOperand op(bool transposed) const {
    return transposed ? fq::SgemmOperand{v.data(), 1, ld} : fq::SgemmOperand{v.data(), ld, 1};
  }
};

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

}  // namespace

TEST_CASE("sgemm: equals the fused-chain reference bit for bit", "[kernels][bit_exact]") {
  INFO("SIMD kernel: " << (fq::kSgemmSimd<fq::DefaultArch> ? "yes" : "no (the reference runs)"));
  std::mt19937 rng(7);
  const std::int64_t kc = fq::kSgemmKc, nc = fq::kSgemmNc;
  struct Dims {
    std::int64_t m, n, k;
  };
  // Edge tiles in M (1..MR+1) and N (1 vector and less, 2, 3 vectors and more), K of one and of
  // several blocks (and K = 0), N of several N blocks, the convolution's shapes.
  const Dims dims[] = {{1, 1, 1},           {3, 5, 7},        {8, 48, 16},          {9, 49, 17},
                       {7, 33, kc},         {13, 17, kc + 1}, {16, 96, 2 * kc + 5}, {5, nc + 3, 40},
                       {6, 2 * nc + 50, 9}, {64, 196, 288},   {288, 196, 64},       {32, 784, 9},
                       {2, 3, 0},           {17, 100, 450}};
  for (const Dims& d : dims)
    for (int layout = 0; layout < 4; ++layout)
      for (bool accumulate : {false, true}) {
        const bool at = layout & 1, bt = layout & 2;
        CAPTURE(d.m, d.n, d.k, at, bt, accumulate);
        const Stored a = at ? Stored(d.k, d.m, 3, rng) : Stored(d.m, d.k, 2, rng);
        const Stored b = bt ? Stored(d.n, d.k, 1, rng) : Stored(d.k, d.n, 4, rng);
        const std::int64_t ldc = d.n + 5;
        Stored c0(d.m, d.n, 5, rng);  // C's start values; the padding columns are guards
        std::vector<float> got = c0.v, want = c0.v, packed = c0.v;
        std::vector<float> scratch(static_cast<std::size_t>(fq::sgemm_scratch_size(d.m, d.n, d.k)));
        fq::sgemm(d.m, d.n, d.k, a.op(at), b.op(bt), got.data(), ldc, accumulate, scratch.data());
        fq::sgemm_reference(d.m, d.n, d.k, a.op(at), b.op(bt), want.data(), ldc, accumulate);
        CHECK(same_bits(got, want));
        if constexpr (fq::kSgemmSimd<fq::DefaultArch>) {  // A packed once, used twice
          std::vector<float> pa(static_cast<std::size_t>(fq::sgemm_packed_a_size(d.m, d.k))),
              ws(static_cast<std::size_t>(fq::sgemm_workspace_size(d.n, d.k)));
          fq::sgemm_pack_a(d.m, d.k, a.op(at), pa.data());
          for (int r = 0; r < 2; ++r) {
            packed = c0.v;
            fq::sgemm_packed(d.m, d.n, d.k, pa.data(), b.op(bt), packed.data(), ldc, accumulate,
                             ws.data());
            CHECK(same_bits(packed, want));
          }
        }
      }
}

TEST_CASE("sgemm: the chain is fused and in k order", "[kernels][bit_exact]") {
  // a0·b0 = 1 + 2^-23 and a1·b1 = −(1 + 2^-22 + 2^-46), both exact in a fused multiply-add.
  // The chain in k order, fma(a1, b1, fma(a0, b0, 0)), is −(2^-23 + 2^-46); a separate multiply
  // rounds a1·b1 to −(1 + 2^-22) (giving −2^-23), and so does the chain in the other order.
  const float e = 1.0f + 0x1p-23f;
  const float a[2] = {e, -e}, b[2] = {1.0f, e};
  const float want = -(0x1p-23f + 0x1p-46f);
  for (std::int64_t pad : {0, 1}) {  // K = 2, and K = 2 among the columns of a wider B
    const std::int64_t n = 1 + pad;
    std::vector<float> bm(static_cast<std::size_t>(2 * n), 0.0f), c(static_cast<std::size_t>(n));
    bm[0] = b[0];
    bm[static_cast<std::size_t>(n)] = b[1];
    std::vector<float> scratch(static_cast<std::size_t>(fq::sgemm_scratch_size(1, n, 2)));
    fq::sgemm(1, n, 2, fq::SgemmOperand{a, 2, 1}, fq::SgemmOperand{bm.data(), n, 1}, c.data(), n,
              false, scratch.data());
    CHECK(c[0] == want);
  }
}

TEST_CASE("sgemm_parallel: the bits of the reference for every split", "[kernels][bit_exact]") {
  // Splits by columns (n of two panels and more: A packed once, shared) and by rows (narrower
  // n), parts from 1 to more than the panels, last blocks short, accumulate or not, every
  // layout. The parts run one after the other here (no OpenMP in this test); the thread-count
  // test of the ops (tests/ops/thread_count.omp.cpp) runs them on threads.
  std::mt19937 rng(11);
  struct Dims {
    std::int64_t m, n, k;
  };
  const Dims dims[] = {{64, 256, 100}, {9, 97, 17}, {70, 10, 33},
                       {1, 500, 3},    {33, 1, 5},  {20, 150, fq::kSgemmKc + 7}};
  for (const Dims& d : dims)
    for (std::int64_t parts : {1, 2, 3, 5, 64})
      for (int layout = 0; layout < 4; ++layout)
        for (bool accumulate : {false, true}) {
          const bool at = layout & 1, bt = layout & 2;
          CAPTURE(d.m, d.n, d.k, parts, at, bt, accumulate);
          const Stored a = at ? Stored(d.k, d.m, 1, rng) : Stored(d.m, d.k, 0, rng);
          const Stored b = bt ? Stored(d.n, d.k, 2, rng) : Stored(d.k, d.n, 0, rng);
          const Stored c0(d.m, d.n, 3, rng);
          const std::int64_t ldc = d.n + 3;
          std::vector<float> got = c0.v, want = c0.v;
          std::vector<float> scratch(
              static_cast<std::size_t>(fq::sgemm_parallel_scratch_size(d.m, d.n, d.k, parts)));
          fq::sgemm_parallel(d.m, d.n, d.k, a.op(at), b.op(bt), got.data(), ldc, accumulate,
                             scratch.data(), parts);
          fq::sgemm_reference(d.m, d.n, d.k, a.op(at), b.op(bt), want.data(), ldc, accumulate);
          CHECK(same_bits(got, want));
        }
}

TEST_CASE("sgemm_parts: one part per thread, fewer for a small product", "[kernels]") {
  const std::int64_t threads = fq::sgemm_threads();
  CHECK(threads >= 1);
  CHECK(fq::sgemm_parts(1, 1, 1) == 1);
  CHECK(fq::sgemm_parts(0, 5, 5) == 1);
  CHECK(fq::sgemm_parts(4096, 4096, 4096) == threads);
  // Exactly two parts' worth of work: min(2, threads).
  CHECK(fq::sgemm_parts(1, 2, fq::kSgemmPartWork) == std::min<std::int64_t>(2, threads));
}
