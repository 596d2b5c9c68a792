// SPDX-License-Identifier: MIT
// fakequant/kernels/sgemm.hpp: a float GEMM for the tape's convolution, written once over
// xsimd's batch<float, Arch> for architectures with fused multiply-add (FMA3, AVX-512).
//
//   C [m, n] (row stride ldc) = (accumulate ? C : 0) + A [m, k] · B [k, n]
//
// A and B are strided views (SgemmOperand): row-major, or the transpose of a row-major matrix,
// so the convolution's W·cols, dY·colsᵀ and Wᵀ·dY need no transposed copies.
// Rounding: every C element is one chain of fused multiply-adds in ascending k, starting from
// C (accumulate) or from 0: c = fma(a[i, k−1], b[k−1, j], … fma(a[i, 0], b[0, j], c0)). K is
// cut into blocks of kSgemmKc, the chain's partial value stored in C between blocks (a float:
// exact), so the blocking does not change the bits. sgemm_reference is that chain in scalar
// code (std::fma); the SIMD kernel equals it bit for bit (tests/kernels/sgemm.test.cpp).
// Unlike Eigen's GEMM, C is not zeroed first: with accumulate = false it is only written.
//
// Structure (GotoBLAS): A is packed once per call into panels of MR rows (kc × MR floats per
// K block, rows past m zero), B per K block into panels of NR = NB vectors of columns (kc × NR,
// columns past n zero); the micro-kernel keeps an MR × NR tile of C in MR · NB registers
// (AVX-512: 8 × 48 in 24 zmm; AVX, SSE: 6 × 2 vectors in 12 registers). Edge tiles go through a
// tile on the stack. A can be packed once by the caller and reused (sgemm_pack_a, sgemm_packed):
// the convolution packs its weights once per batch. No allocation: the caller passes the packing
// buffers (sizes from sgemm_packed_a_size and sgemm_workspace_size).
#ifndef FQ_KERNELS_SGEMM_HPP_
#define FQ_KERNELS_SGEMM_HPP_

#include <algorithm>  // min, fill_n
#include <cmath>      // fma
#include <cstdint>    // int64_t
#include <type_traits>

#include <fakequant/base/config.hpp>
#include <fakequant/simd/arch.hpp>
#if FQ_HAS_XSIMD
#include <fakequant/simd/xsimd_compat.hpp>
#endif

namespace fq {

/// A read-only float matrix: element (i, j) at data[i · row_stride + j · col_stride]
/// (row-major: {p, ld, 1}; the transpose of a row-major [cols, rows] matrix: {p, 1, ld}).
struct SgemmOperand {
  const float* data = nullptr;
  std::int64_t row_stride = 0, col_stride = 1;
  float at(std::int64_t i, std::int64_t j) const noexcept {
    return data[i * row_stride + j * col_stride];
  }
};

/// True if Arch has a fused multiply-add (simd::kHaveFusedMulAdd: AVX-512, or AVX/SSE built
/// with FMA), the SIMD kernel's operation; elsewhere sgemm runs sgemm_reference.
template <class Arch>
inline constexpr bool kSgemmSimd =
#if FQ_HAS_XSIMD
    simd::kHaveFusedMulAdd<Arch>;
#else
    false;
#endif

/// The micro-kernel's tile: MR rows × NB vectors of C (NR = NB · lanes columns).
template <class Arch, bool = kSgemmSimd<Arch>>
struct SgemmTile {
  static constexpr std::int64_t kMr = 1, kNb = 1, kNr = 1;
};
#if FQ_HAS_XSIMD
template <class Arch>
struct SgemmTile<Arch, true> {
  static constexpr std::int64_t kLanes = static_cast<std::int64_t>(xsimd::batch<float, Arch>::size);
  static constexpr std::int64_t kMr = kLanes == 16 ? 8 : 6, kNb = kLanes == 16 ? 3 : 2,
                                kNr = kNb * kLanes;
};
#endif

/// K block: a packed B panel (kc × NR floats: 36 KB for AVX-512) stays in L1 while the A panels
/// stream past it.
inline constexpr std::int64_t kSgemmKc = 192;
/// N block: the packed B of one K block (kc × nc floats: 384 KB) stays in L2.
inline constexpr std::int64_t kSgemmNc = 480;

namespace detail {
constexpr std::int64_t sgemm_round_up(std::int64_t x, std::int64_t m) noexcept {
  return (x + m - 1) / m * m;
}
}  // namespace detail

/// Floats of A packed by sgemm_pack_a<Arch>(m, k, …).
template <class Arch = DefaultArch>
std::int64_t sgemm_packed_a_size(std::int64_t m, std::int64_t k) noexcept {
  return detail::sgemm_round_up(m, SgemmTile<Arch>::kMr) * k;
}
/// Floats of the workspace of sgemm_packed<Arch>(·, n, k, …) (the packed B of one block).
template <class Arch = DefaultArch>
std::int64_t sgemm_workspace_size(std::int64_t n, std::int64_t k) noexcept {
  return std::min(k, kSgemmKc) *
         detail::sgemm_round_up(std::min(n, kSgemmNc), SgemmTile<Arch>::kNr);
}

/// Packs A [m, k] for sgemm_packed: per K block (offset round_up(m, MR) · k0), panels of MR rows,
/// each kc × MR floats in k-major order; rows past m are zero.
template <class Arch = DefaultArch>
void sgemm_pack_a(std::int64_t m, std::int64_t k, SgemmOperand a, float* packed) noexcept {
  constexpr std::int64_t mr = SgemmTile<Arch>::kMr;
  const std::int64_t mp = detail::sgemm_round_up(m, mr);
  for (std::int64_t k0 = 0; k0 < k; k0 += kSgemmKc) {
    const std::int64_t kc = std::min(kSgemmKc, k - k0);
    float* blk = packed + mp * k0;
    for (std::int64_t i0 = 0; i0 < mp; i0 += mr) {
      float* panel = blk + i0 * kc;
      if (a.row_stride == 1) {  // a transposed operand: a column of the panel is contiguous
        const std::int64_t rows = std::min(mr, m - i0);
        for (std::int64_t kk = 0; kk < kc; ++kk) {
          const float* src = a.data + i0 + (k0 + kk) * a.col_stride;
          float* d = panel + kk * mr;
          for (std::int64_t r = 0; r < rows; ++r) d[r] = src[r];
          for (std::int64_t r = rows; r < mr; ++r) d[r] = 0.0f;
        }
        continue;
      }
      for (std::int64_t r = 0; r < mr; ++r) {
        const std::int64_t i = i0 + r;
        if (i >= m) {
          for (std::int64_t kk = 0; kk < kc; ++kk) panel[kk * mr + r] = 0.0f;
          continue;
        }
        const float* src = a.data + i * a.row_stride + k0 * a.col_stride;
        for (std::int64_t kk = 0; kk < kc; ++kk) panel[kk * mr + r] = src[kk * a.col_stride];
      }
    }
  }
}

namespace detail {
/// Packs B [k0 : k0 + kc, j0 : j0 + nc] into panels of NR columns (kc × NR, k-major), columns
/// past nc zero. Reads along B's contiguous direction.
template <class Arch>
void sgemm_pack_b(SgemmOperand b, std::int64_t k0, std::int64_t kc, std::int64_t j0,
                  std::int64_t nc, float* out) noexcept {
  constexpr std::int64_t nr = SgemmTile<Arch>::kNr;
  for (std::int64_t p0 = 0; p0 < nc; p0 += nr) {
    float* panel = out + p0 * kc;
    const std::int64_t w = std::min(nr, nc - p0);
    const float* src = b.data + k0 * b.row_stride + (j0 + p0) * b.col_stride;
    if (b.col_stride == 1) {  // row-major: a row of the panel is contiguous
      for (std::int64_t kk = 0; kk < kc; ++kk) {
        const float* s = src + kk * b.row_stride;
        float* d = panel + kk * nr;
        for (std::int64_t j = 0; j < w; ++j) d[j] = s[j];
        for (std::int64_t j = w; j < nr; ++j) d[j] = 0.0f;
      }
    } else {  // a column of B is contiguous when row_stride is 1 (a transposed operand)
      for (std::int64_t j = 0; j < nr; ++j) {
        if (j >= w) {
          for (std::int64_t kk = 0; kk < kc; ++kk) panel[kk * nr + j] = 0.0f;
          continue;
        }
        const float* s = src + j * b.col_stride;
        for (std::int64_t kk = 0; kk < kc; ++kk) panel[kk * nr + j] = s[kk * b.row_stride];
      }
    }
  }
}

#if FQ_HAS_XSIMD
/// The MR × (NB vectors) tile C (row stride ldc) from packed panels ap (kc × MR) and bp (kc × NR;
/// its first NB vectors): the fused chain in k order, from C (load) or from 0.
template <class Arch, std::int64_t NB = SgemmTile<Arch>::kNb>
FQ_INLINE void sgemm_micro(std::int64_t kc, const float* ap, const float* bp, float* c,
                           std::int64_t ldc, bool load) noexcept {
  using B = xsimd::batch<float, Arch>;
  using T = SgemmTile<Arch>;
  constexpr std::int64_t mr = T::kMr, nb = NB, nr = T::kNr, l = T::kLanes;
  B acc[std::size_t{mr}][std::size_t{nb}];
  FQ_UNROLL
  for (std::int64_t r = 0; r < mr; ++r) FQ_UNROLL
  for (std::int64_t v = 0; v < nb; ++v)
    acc[r][v] = load ? B::load_unaligned(c + r * ldc + v * l) : B(0.0f);
  for (std::int64_t kk = 0; kk < kc; ++kk) {
    B bv[std::size_t{nb}];
    FQ_UNROLL
    for (std::int64_t v = 0; v < nb; ++v) bv[v] = B::load_unaligned(bp + kk * nr + v * l);
    FQ_UNROLL
    for (std::int64_t r = 0; r < mr; ++r) {
      const B av(ap[kk * mr + r]);
      FQ_UNROLL
      for (std::int64_t v = 0; v < nb; ++v) acc[r][v] = simd::fused_mul_add(av, bv[v], acc[r][v]);
    }
  }
  FQ_UNROLL
  for (std::int64_t r = 0; r < mr; ++r) FQ_UNROLL
  for (std::int64_t v = 0; v < nb; ++v) acc[r][v].store_unaligned(c + r * ldc + v * l);
}
#endif
}  // namespace detail

/// The scalar reference: each C element one fused chain in ascending k (file comment).
inline void sgemm_reference(std::int64_t m, std::int64_t n, std::int64_t k, SgemmOperand a,
                            SgemmOperand b, float* c, std::int64_t ldc, bool accumulate) noexcept {
  for (std::int64_t i = 0; i < m; ++i)
    for (std::int64_t j = 0; j < n; ++j) {
      float s = accumulate ? c[i * ldc + j] : 0.0f;
      for (std::int64_t kk = 0; kk < k; ++kk) s = std::fma(a.at(i, kk), b.at(kk, j), s);
      c[i * ldc + j] = s;
    }
}

/// C [m, n] = (accumulate ? C : 0) + A · B with A packed by sgemm_pack_a<Arch>(m, k, …);
/// workspace: sgemm_workspace_size<Arch>(n, k) floats. Only for kSgemmSimd<Arch>.
template <class Arch = DefaultArch>
void sgemm_packed(std::int64_t m, std::int64_t n, std::int64_t k, const float* packed_a,
                  SgemmOperand b, float* c, std::int64_t ldc, bool accumulate,
                  float* workspace) noexcept {
  static_assert(kSgemmSimd<Arch>,
                "sgemm_packed needs an architecture with FMA (kSgemmSimd); use fq::sgemm");
#if FQ_HAS_XSIMD
  using T = SgemmTile<Arch>;
  constexpr std::int64_t mr = T::kMr, nr = T::kNr;
  if (m <= 0 || n <= 0) return;
  if (k <= 0) {
    if (!accumulate)
      for (std::int64_t i = 0; i < m; ++i) std::fill_n(c + i * ldc, n, 0.0f);
    return;
  }
  const std::int64_t mp = detail::sgemm_round_up(m, mr);
  alignas(64) float edge[std::size_t{mr * nr}];
  for (std::int64_t j0 = 0; j0 < n; j0 += kSgemmNc) {
    const std::int64_t nc = std::min(kSgemmNc, n - j0);
    for (std::int64_t k0 = 0; k0 < k; k0 += kSgemmKc) {
      const std::int64_t kc = std::min(kSgemmKc, k - k0);
      const bool load = accumulate || k0 > 0;
      detail::sgemm_pack_b<Arch>(b, k0, kc, j0, nc, workspace);
      const float* ablk = packed_a + mp * k0;
      for (std::int64_t i0 = 0; i0 < m; i0 += mr) {
        const float* ap = ablk + i0 * kc;
        const std::int64_t rows = std::min(mr, m - i0);
        for (std::int64_t p0 = 0; p0 < nc; p0 += nr) {
          const float* bp = workspace + p0 * kc;
          const std::int64_t cols = std::min(nr, nc - p0);
          float* ct = c + i0 * ldc + j0 + p0;
          if (rows == mr && cols == nr) {
            detail::sgemm_micro<Arch>(kc, ap, bp, ct, ldc, load);
            continue;
          }
          // An edge tile: through a tile on the stack, with as many vectors as its columns need
          // (the extra rows and columns are computed from zero padding and dropped).
          if (load) {
            std::fill_n(edge, mr * nr, 0.0f);
            for (std::int64_t r = 0; r < rows; ++r) std::copy_n(ct + r * ldc, cols, edge + r * nr);
          }
          const std::int64_t vectors = (cols + T::kLanes - 1) / T::kLanes;
          if (vectors == T::kNb)
            detail::sgemm_micro<Arch>(kc, ap, bp, edge, nr, load);
          else if (vectors == 1)
            detail::sgemm_micro<Arch, 1>(kc, ap, bp, edge, nr, load);
          else
            detail::sgemm_micro<Arch, (T::kNb > 2 ? 2 : 1)>(kc, ap, bp, edge, nr, load);
          for (std::int64_t r = 0; r < rows; ++r) std::copy_n(edge + r * nr, cols, ct + r * ldc);
        }
      }
    }
  }
#else
  (void)m, (void)n, (void)k, (void)packed_a, (void)b, (void)c, (void)ldc, (void)accumulate,
      (void)workspace;
#endif
}

/// Floats of the workspace of sgemm<Arch>(m, n, k, …): the packed A and B.
template <class Arch = DefaultArch>
std::int64_t sgemm_scratch_size(std::int64_t m, std::int64_t n, std::int64_t k) noexcept {
  return kSgemmSimd<Arch> ? sgemm_packed_a_size<Arch>(m, k) + sgemm_workspace_size<Arch>(n, k) : 0;
}

/// C [m, n] = (accumulate ? C : 0) + A · B: the SIMD kernel where kSgemmSimd<Arch>, else
/// sgemm_reference (the same bits). scratch: sgemm_scratch_size<Arch>(m, n, k) floats.
template <class Arch = DefaultArch>
void sgemm(std::int64_t m, std::int64_t n, std::int64_t k, SgemmOperand a, SgemmOperand b, float* c,
           std::int64_t ldc, bool accumulate, float* scratch) noexcept {
  if constexpr (kSgemmSimd<Arch>) {
    sgemm_pack_a<Arch>(m, k, a, scratch);
    sgemm_packed<Arch>(m, n, k, scratch, b, c, ldc, accumulate,
                       scratch + sgemm_packed_a_size<Arch>(m, k));
  } else {
    (void)scratch;
    sgemm_reference(m, n, k, a, b, c, ldc, accumulate);
  }
}

}  // namespace fq

#endif  // FQ_KERNELS_SGEMM_HPP_
