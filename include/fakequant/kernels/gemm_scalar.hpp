// SPDX-License-Identifier: MIT
// fakequant/kernels/gemm_scalar.hpp: the scalar reference of the raw int8 GEMM.
//
//   C[m][n] = sum_k a'[m][k] * W[n][k]      (int32; a' = a, or a XOR 0x80 = a + 128 for
//                                            signed activations read as unsigned)
// over the packed layout of packed_weights.hpp, group by group as the SIMD paths. The sum is
// exact: gemm.hpp rejects K above the int32 accumulator bound before any kernel runs.
#ifndef FQ_KERNELS_GEMM_SCALAR_HPP_
#define FQ_KERNELS_GEMM_SCALAR_HPP_

#include <cstdint>  // int32_t, int64_t, uint8_t

#include <fakequant/kernels/packed_weights.hpp>

namespace fq {
namespace detail {

/// Raw C = a' * W^T; kFlip reads each activation byte XOR 0x80 (int8 -> uint8 + 128). Arch:
/// the caller's architecture tag (the loops are vectorised for its flags, simd/arch.hpp).
template <class Arch, bool kFlip>
void gemm_raw_scalar(const std::uint8_t* a, std::int64_t m, std::int64_t lda,
                     const PackedWeights& w, std::int32_t* c, std::int64_t ldc) noexcept {
  const std::int64_t n = w.n(), k = w.k(), kg = w.k_groups();
  const std::uint8_t flip = kFlip ? 0x80 : 0x00;
  for (std::int64_t i = 0; i < m; ++i) {
    const std::uint8_t* ar = a + i * lda;
    for (std::int64_t j = 0; j < n; ++j) {
      const std::int8_t* blk =
          w.data() + (j / kPanelCols) * w.panel_stride() + (j % kPanelCols) * 4;
      std::int32_t sum = 0;
      for (std::int64_t g = 0; g < kg; ++g)
        for (std::int64_t t = 0; t < kGroupK; ++t) {
          const std::int64_t kk = g * kGroupK + t;
          const std::int32_t av = kk < k ? std::int32_t(ar[kk] ^ flip) : 0;
          sum += av * std::int32_t(blk[g * 64 + t]);
        }
      c[i * ldc + j] = sum;
    }
  }
}

}  // namespace detail
}  // namespace fq

#endif  // FQ_KERNELS_GEMM_SCALAR_HPP_
