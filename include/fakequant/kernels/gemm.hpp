// SPDX-License-Identifier: MIT
// fakequant/kernels/gemm.hpp: int8 GEMM for a linear layer, C = (A - za) * W^T in int32.
//
//   A  activations [M, K] row-major (row stride lda), uint8 or int8, zero point za
//   W  weights [N, K] row-major, int8, packed once (PackedWeights)
//   C  [M, N] row-major int32 (row stride ldc):  C[m][n] = sum_k (A[m][k] - za) * W[n][k]
// The kernels (scalar reference, AVX2, AVX-512 VNNI, AMX-INT8; all bit-identical) multiply unsigned
// bytes by signed bytes. int8 activations are read as uint8 a + 128 (a XOR 0x80), so all
// paths compute acc = sum_k (a + s) * w and then
//   C = acc - (za + s) * col_sums[n],   s = 0 (uint8 A) or 128 (int8 A),
// with col_sums[n] = sum_k W[n][k] computed at packing.
// Accumulator bound: every partial sum of acc lies in [-K * 255 * 128, K * 255 * 127], so
// int32 is exact iff K * 255 * 128 < 2^31, i.e. K <= kMaxGemmK = 65793. Larger K is rejected
// with ErrorCode::kInvalidArgument (split K and add the int32 partial results in int64), by
// PackedWeights already.
// Zero sizes are well defined on every path: M = 0 or N = 0 writes nothing, K = 0 writes
// C = 0 (A is then not read and may be null). C must not overlap A (kInvalidLayout), and the
// extents (M - 1) * lda + K and (M - 1) * ldc + N must fit (kOutOfMemory).
// Dispatch: the Isa argument (default kAuto: the best the CPU runs, see isa.hpp) — this
// function is the one place that picks the kernel. The AVX2 / AVX-512 VNNI kernels carry
// their own target attributes; the dispatcher and the scalar reference are compiled with the
// caller's flags, so they are templates on Arch (fq::DefaultArch; simd/arch.hpp), which keeps
// translation units with different -m flags from sharing one copy.
#ifndef FQ_KERNELS_GEMM_HPP_
#define FQ_KERNELS_GEMM_HPP_

#include <cstdint>  // int8_t, int32_t, int64_t, uint8_t

#include <fakequant/base/checked.hpp>
#include <fakequant/base/error.hpp>
#include <fakequant/kernels/gemm_amx.hpp>
#include <fakequant/kernels/gemm_avx2.hpp>
#include <fakequant/kernels/gemm_avx512_vnni.hpp>
#include <fakequant/kernels/gemm_scalar.hpp>
#include <fakequant/kernels/packed_weights.hpp>
#include <fakequant/simd/arch.hpp>
#include <fakequant/simd/isa.hpp>

namespace fq {

namespace detail {

/// Raw acc = a' * W^T on the chosen path (isa already resolved).
template <class Arch, bool kFlip>
void gemm_raw(const std::uint8_t* a, std::int64_t m, std::int64_t lda, const PackedWeights& w,
              std::int32_t* c, std::int64_t ldc, Isa isa) {
  if (w.k() == 0) {  // C = 0 on every path, without forming row pointers into A (may be null)
    for (std::int64_t i = 0; i < m; ++i)
      for (std::int64_t j = 0; j < w.n(); ++j) c[i * ldc + j] = 0;
    return;
  }
#if FQ_KERNELS_X86
  if (isa == Isa::kAmx) return gemm_raw_amx<kFlip>(a, m, lda, w, c, ldc);
  if (isa == Isa::kAvx512Vnni) return gemm_raw_avx512_vnni<kFlip>(a, m, lda, w, c, ldc);
  if (isa == Isa::kAvx2) return gemm_raw_avx2<kFlip>(a, m, lda, w, c, ldc);
#endif
  (void)isa;
  gemm_raw_scalar<Arch, kFlip>(a, m, lda, w, c, ldc);
}

/// The arguments every GEMM entry point checks; `a_size` is the activation element size, and
/// `c` null with `c_size` 0 skips the output (gemm_requant checks its own).
inline void check_gemm_args(const void* a, std::size_t a_size, std::int64_t m, std::int64_t lda,
                            const PackedWeights& w, const void* c, std::size_t c_size,
                            std::int64_t ldc, const char* where) {
  FQ_CHECK(m >= 0, ErrorCode::kShapeMismatch, msg(where, ": negative M = ", m));
  FQ_CHECK(w.k() <= kMaxGemmK, ErrorCode::kInvalidArgument,
           msg(where, ": K = ", w.k(), " exceeds ", kMaxGemmK,
               ", the largest K whose int32 accumulator cannot overflow (K * 255 * 128 < 2^31); "
               "split K"));
  FQ_CHECK(lda >= w.k(), ErrorCode::kInvalidLayout,
           msg(where, ": lda = ", lda, " is smaller than K = ", w.k()));
  FQ_CHECK(c_size == 0 || ldc >= w.n(), ErrorCode::kInvalidLayout,
           msg(where, ": ldc = ", ldc, " is smaller than N = ", w.n()));
  if (m == 0) return;
  // Elements spanned by A [M, K] and C [M, N]: (M - 1) * ld + extent.
  const std::int64_t a_elems =
      checked_add(checked_mul(m - 1, lda, where, "the activations' extent"), w.k(), where,
                  "the activations' extent");
  const std::int64_t a_bytes = static_cast<std::int64_t>(checked_bytes(a_elems, a_size, where));
  FQ_CHECK(a != nullptr || w.k() == 0, ErrorCode::kInvalidArgument,
           msg(where, ": null activations for M = ", m, ", K = ", w.k()));
  if (c_size == 0 || w.n() == 0) return;
  const std::int64_t c_elems = checked_add(checked_mul(m - 1, ldc, where, "the output's extent"),
                                           w.n(), where, "the output's extent");
  const std::int64_t c_bytes = static_cast<std::int64_t>(checked_bytes(c_elems, c_size, where));
  FQ_CHECK(c != nullptr, ErrorCode::kInvalidArgument,
           msg(where, ": null output for M = ", m, ", N = ", w.n()));
  FQ_CHECK(!byte_ranges_overlap(a, w.k() == 0 ? 0 : a_bytes, c, c_bytes), ErrorCode::kInvalidLayout,
           msg(where, ": the output overlaps the activations"));
}

/// C -= comp * col_sums[n] (comp = za + s, see the file comment). Arch as gemm_raw.
template <class Arch>
void gemm_compensate(std::int32_t* c, std::int64_t m, std::int64_t ldc, const PackedWeights& w,
                     std::int32_t comp) noexcept {
  if (comp == 0) return;
  const std::int32_t* cs = w.col_sums();
  for (std::int64_t i = 0; i < m; ++i) {
    std::int32_t* row = c + i * ldc;
    for (std::int64_t j = 0; j < w.n(); ++j) row[j] -= comp * cs[j];
  }
}

}  // namespace detail

/// C[m][n] = sum_k (A[m][k] - a_zero_point) * W[n][k], A uint8, a_zero_point in [0, 255].
template <class Arch = DefaultArch>
void gemm_u8s8s32(const std::uint8_t* a, std::int64_t m, std::int64_t lda, const PackedWeights& w,
                  std::int32_t* c, std::int64_t ldc, std::int32_t a_zero_point = 0,
                  Isa isa = Isa::kAuto) {
  constexpr const char* kWhere = "gemm_u8s8s32";
  detail::check_gemm_args(a, 1, m, lda, w, c, sizeof(std::int32_t), ldc, kWhere);
  FQ_CHECK(a_zero_point >= 0 && a_zero_point <= 255, ErrorCode::kInvalidZeroPoint,
           detail::msg(kWhere, ": activation zero point ", a_zero_point, " is outside [0, 255]"));
  const Isa path = resolve_isa(isa, kWhere);
  if (m == 0 || w.n() == 0) return;
  detail::gemm_raw<Arch, false>(a, m, lda, w, c, ldc, path);
  detail::gemm_compensate<Arch>(c, m, ldc, w, a_zero_point);
}

/// C[m][n] = sum_k (A[m][k] - a_zero_point) * W[n][k], A int8, a_zero_point in [-128, 127].
template <class Arch = DefaultArch>
void gemm_s8s8s32(const std::int8_t* a, std::int64_t m, std::int64_t lda, const PackedWeights& w,
                  std::int32_t* c, std::int64_t ldc, std::int32_t a_zero_point = 0,
                  Isa isa = Isa::kAuto) {
  constexpr const char* kWhere = "gemm_s8s8s32";
  detail::check_gemm_args(a, 1, m, lda, w, c, sizeof(std::int32_t), ldc, kWhere);
  FQ_CHECK(
      a_zero_point >= -128 && a_zero_point <= 127, ErrorCode::kInvalidZeroPoint,
      detail::msg(kWhere, ": activation zero point ", a_zero_point, " is outside [-128, 127]"));
  const Isa path = resolve_isa(isa, kWhere);
  if (m == 0 || w.n() == 0) return;
  // Reading int8 objects through unsigned char is allowed aliasing.
  detail::gemm_raw<Arch, true>(reinterpret_cast<const std::uint8_t*>(a), m, lda, w, c, ldc, path);
  detail::gemm_compensate<Arch>(c, m, ldc, w, a_zero_point + 128);
}

}  // namespace fq

#endif  // FQ_KERNELS_GEMM_HPP_
