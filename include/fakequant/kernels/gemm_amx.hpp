// SPDX-License-Identifier: MIT
// fakequant/kernels/gemm_amx.hpp: the raw int8 GEMM on AMX-INT8 tiles.
//
// Computes exactly what gemm_scalar.hpp computes, written once over a tile backend
// (gemm_amx_tiles.hpp): AmxHardwareTiles runs it (Isa::kAmx), AmxEmulatedTiles runs the same
// code on any machine for the bit-exact tests.
// Weights: the PackedWeights layout as it is. A panel's 64-byte block of group g holds 16
// columns x 4 K values, which is one row of an AMX B operand (K/4 rows x 16 columns x 4
// bytes), so 16 consecutive blocks of a panel form a B tile with stride 64 bytes.
// Tiles: C in tmm0..3 (a 32 x 32 int32 block as 2 x 2 tiles of 16 x 16), A in tmm4..5 (16
// rows x 64 bytes = 64 K values each, straight from the user's rows, stride lda), B in
// tmm6..7 (16 groups x 16 columns). One K step is four tdpbusd (u8 activations) or tdpbssd
// (int8 activations, see kFlip below) of 16 x 16 x 64.
// Edges: a block of fewer than 32 rows or columns configures its tiles with fewer rows / row
// bytes (tiles a block does not need are left unconfigured), so the C stores write only the
// user's [M, N]. The configuration is reloaded only when the block shape changes (ldtilecfg
// zeroes the tiles, so it never happens inside a block's K loop).
// K tail: the K steps that lie entirely inside K read A in place; the last, partial step (K
// not a multiple of 64, hence also K not a multiple of 4) copies the rows' remaining bytes
// into a zero-padded 64-byte-row scratch, and the B panels' remaining groups into a
// zero-padded 16-row scratch, so no tile load reads past the user's A or the packed weights,
// and every step keeps the same tile shapes. Zero bytes add nothing.
// kFlip (int8 activations): the raw result is sum (a + 128) * w (gemm.hpp); tdpbssd gives
// sum a * w on the unmodified bytes, and + 128 * col_sums[n] is added to the stored block.
// Both terms, and all partial sums, are inside int32 by the K bound of gemm.hpp.
// Blocking: rows in chunks of kMc (kMc x K activation bytes <= 1 MiB, kept in L2 across the
// column blocks), then 32-column blocks (a pair of panels, 32 x K bytes, kept in L2 across
// the 32-row blocks of the chunk), then the full K in the tiles (C stays in tmm0..3).
#ifndef FQ_KERNELS_GEMM_AMX_HPP_
#define FQ_KERNELS_GEMM_AMX_HPP_

#include <algorithm>  // min, max
#include <cstddef>    // ptrdiff_t
#include <cstdint>    // int8_t, int32_t, int64_t, uint8_t
#include <cstring>    // memcpy, memset, memcmp

#include <fakequant/kernels/gemm_amx_tiles.hpp>
#include <fakequant/kernels/packed_weights.hpp>

namespace fq {
namespace detail {

/// Bytes of a full tile (16 rows x 64 bytes): the second tile's offset in the scratch buffers.
inline constexpr std::ptrdiff_t kAmxTileBytes = std::ptrdiff_t{16} * 64;

/// The configuration of a block with r0 / r1 rows in its upper / lower tile row and c0 / c1
/// columns in its left / right tile column (r1, c1 may be 0: those tiles stay unconfigured).
inline AmxTileConfig amx_block_config(int r0, int r1, int c0, int c1) noexcept {
  AmxTileConfig cfg;
  const auto set = [&](int t, int rows, int colsb) {
    cfg.rows[t] = static_cast<std::uint8_t>(rows > 0 && colsb > 0 ? rows : 0);
    cfg.colsb[t] = static_cast<std::uint16_t>(rows > 0 && colsb > 0 ? colsb : 0);
  };
  set(0, r0, 4 * c0);
  set(1, r0, 4 * c1);
  set(2, r1, 4 * c0);
  set(3, r1, 4 * c1);
  set(4, r0, 64);
  set(5, r1, 64);
  set(6, 16, 4 * c0);
  set(7, 16, 4 * c1);
  return cfg;
}

/// One K step on the block: A tiles already hold the activations, B tiles the weights.
template <bool kFlip, class Tiles>
void amx_block_step(Tiles& t, bool lower, bool right) {
  if constexpr (kFlip) {
    t.template dpbssd<0, 4, 6>();
    if (right) t.template dpbssd<1, 4, 7>();
    if (lower) t.template dpbssd<2, 5, 6>();
    if (lower && right) t.template dpbssd<3, 5, 7>();
  } else {
    t.template dpbusd<0, 4, 6>();
    if (right) t.template dpbusd<1, 4, 7>();
    if (lower) t.template dpbusd<2, 5, 6>();
    if (lower && right) t.template dpbusd<3, 5, 7>();
  }
}

/// Raw C = a' * W^T on the tiles of `t` (see gemm_scalar.hpp for the definition). K > 0.
template <bool kFlip, class Tiles>
void gemm_raw_amx_with(Tiles& t, const std::uint8_t* a, std::int64_t m, std::int64_t lda,
                       const PackedWeights& w, std::int32_t* c, std::int64_t ldc) {
  const std::int64_t n = w.n(), k = w.k(), kg = w.k_groups(), ps = w.panel_stride();
  const std::int64_t steps = k / 64;                 // K steps read in place
  const std::int64_t tail_bytes = k - steps * 64;    // 0..63 activation bytes left
  const std::int64_t tail_groups = kg - steps * 16;  // 0..16 weight groups left
  const std::int64_t mc =
      std::max<std::int64_t>(32, std::min<std::int64_t>(512, (1 << 20) / k) / 32 * 32);
  alignas(64) std::uint8_t a_tail[32 * 64];
  alignas(64) std::int8_t b_tail[2 * 16 * 64];
  AmxTileConfig cur;
  bool configured = false;
  const std::int32_t* cs = w.col_sums();
  for (std::int64_t ic = 0; ic < m; ic += mc) {
    const std::int64_t ie = std::min(m, ic + mc);
    for (std::int64_t j0 = 0; j0 < n; j0 += 32) {
      const int c0 = static_cast<int>(std::min<std::int64_t>(16, n - j0));
      const int c1 =
          static_cast<int>(std::max<std::int64_t>(0, std::min<std::int64_t>(16, n - j0 - 16)));
      const std::int8_t* b0 = w.data() + (j0 / kPanelCols) * ps;
      const std::int8_t* b1 = b0 + ps;  // read only if c1 > 0 (the panel exists)
      if (tail_groups > 0) {
        std::memset(b_tail, 0, sizeof b_tail);
        std::memcpy(b_tail, b0 + steps * 16 * 64, static_cast<std::size_t>(tail_groups * 64));
        if (c1 > 0)
          std::memcpy(b_tail + kAmxTileBytes, b1 + steps * 16 * 64,
                      static_cast<std::size_t>(tail_groups * 64));
      }
      for (std::int64_t i0 = ic; i0 < ie; i0 += 32) {
        const int r0 = static_cast<int>(std::min<std::int64_t>(16, ie - i0));
        const int r1 =
            static_cast<int>(std::max<std::int64_t>(0, std::min<std::int64_t>(16, ie - i0 - 16)));
        const bool lower = r1 > 0, right = c1 > 0;
        const AmxTileConfig cfg = amx_block_config(r0, r1, c0, c1);
        if (!configured || std::memcmp(&cfg, &cur, sizeof cfg) != 0) {
          t.load_config(cfg);
          cur = cfg;
          configured = true;
        }
        t.template zero<0>();
        if (right) t.template zero<1>();
        if (lower) t.template zero<2>();
        if (lower && right) t.template zero<3>();
        const std::uint8_t* a0 = a + i0 * lda;
        const std::uint8_t* a1 = a0 + 16 * lda;  // read only if lower
        for (std::int64_t s = 0; s < steps; ++s) {
          t.template load<4>(a0 + s * 64, lda);
          if (lower) t.template load<5>(a1 + s * 64, lda);
          t.template load<6>(b0 + s * 16 * 64, 64);
          if (right) t.template load<7>(b1 + s * 16 * 64, 64);
          amx_block_step<kFlip>(t, lower, right);
        }
        if (tail_groups > 0) {
          std::memset(a_tail, 0, sizeof a_tail);
          for (std::int64_t r = 0; r < r0 + r1; ++r)
            std::memcpy(a_tail + r * 64, a0 + r * lda + steps * 64,
                        static_cast<std::size_t>(tail_bytes));
          t.template load<4>(a_tail, 64);
          if (lower) t.template load<5>(a_tail + kAmxTileBytes, 64);
          t.template load<6>(b_tail, 64);
          if (right) t.template load<7>(b_tail + kAmxTileBytes, 64);
          amx_block_step<kFlip>(t, lower, right);
        }
        std::int32_t* cb = c + i0 * ldc + j0;
        const std::int64_t cstride = ldc * static_cast<std::int64_t>(sizeof(std::int32_t));
        t.template store<0>(cb, cstride);
        if (right) t.template store<1>(cb + 16, cstride);
        if (lower) t.template store<2>(cb + 16 * ldc, cstride);
        if (lower && right) t.template store<3>(cb + 16 * ldc + 16, cstride);
        if constexpr (kFlip) {  // sum (a + 128) w = sum a w + 128 col_sums
          for (int r = 0; r < r0 + r1; ++r)
            for (int j = 0; j < c0 + c1; ++j) cb[r * ldc + j] += 128 * cs[j0 + j];
        }
      }
    }
  }
  if (configured) t.release();
}

#if FQ_KERNELS_X86
/// Raw C = a' * W^T on the AMX hardware (only when isa_supported(Isa::kAmx)). K > 0.
template <bool kFlip>
void gemm_raw_amx(const std::uint8_t* a, std::int64_t m, std::int64_t lda, const PackedWeights& w,
                  std::int32_t* c, std::int64_t ldc) {
  AmxHardwareTiles t;
  gemm_raw_amx_with<kFlip>(t, a, m, lda, w, c, ldc);
}
#endif

}  // namespace detail
}  // namespace fq

#endif  // FQ_KERNELS_GEMM_AMX_HPP_
