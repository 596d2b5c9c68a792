// SPDX-License-Identifier: MIT
// fakequant/kernels/gemm_amx_tiles.hpp: the two tile backends of the AMX-INT8 GEMM
// (gemm_amx.hpp), one interface:
//
//   load_config(cfg)        ldtilecfg (palette 1); also zeroes every tile
//   zero<T>()               tilezero tmmT
//   load<T>(base, stride)   tileloadd: rows(T) rows of colsb(T) bytes, row r at base + r*stride
//   store<T>(base, stride)  tilestored: the same extent, written
//   dpbusd<C, A, B>()       C[m][n] += sum_i u8(A[m][4k + i]) * s8(B[k][4n + i]), k < colsb(A)/4
//   dpbssd<C, A, B>()       the same with s8(A)
//   release()               tilerelease
//
// AmxHardwareTiles runs the instructions (one noinline FQ_TARGET_AMX function per operation:
// the tile numbers are immediates, so each is a template over them, and the compiler barrier
// in each keeps scratch stores ahead of the tile loads that read them). Only valid when
// isa_supported(Isa::kAmx).
// AmxEmulatedTiles is a plain C++ model of the eight tiles and the palette-1 configuration
// with the architectural semantics: int32 wrap-around sums, loads that read only rows x colsb
// bytes (the rest of the tile becomes zero), and the checks on which the hardware faults
// (#GP on a bad configuration, #UD on a tile used while unconfigured or with operand shapes
// that disagree), reported as ErrorCode::kInvalidArgument. It lets the kernel's tiling, edge
// tiles and K tails be tested bit-exact on any machine.
#ifndef FQ_KERNELS_GEMM_AMX_TILES_HPP_
#define FQ_KERNELS_GEMM_AMX_TILES_HPP_

#include <array>    // array
#include <cstddef>  // ptrdiff_t, size_t
#include <cstdint>  // int8_t, int32_t, int64_t, uint8_t, uint16_t, uint32_t
#include <cstring>  // memcpy, memset

#include <fakequant/base/error.hpp>
#include <fakequant/simd/isa.hpp>

#if FQ_KERNELS_X86
#include <immintrin.h>
#endif

namespace fq {
namespace detail {

/// The 64-byte tile configuration of ldtilecfg, palette 1 (8 tiles of up to 16 rows x 64 bytes).
struct AmxTileConfig {
  std::uint8_t palette_id = 1;
  std::uint8_t start_row = 0;
  std::uint8_t reserved[14] = {};
  std::uint16_t colsb[16] = {};  ///< bytes per row of tile t (t < 8 used)
  std::uint8_t rows[16] = {};    ///< rows of tile t (t < 8 used)
};
static_assert(sizeof(AmxTileConfig) == 64, "the ldtilecfg operand is 64 bytes");

inline constexpr int kAmxTiles = 8, kAmxMaxRows = 16;
inline constexpr std::ptrdiff_t kAmxMaxColsb = 64;  // a byte offset factor: pointer-sized

/// The plain C++ model of the tiles (file comment).
class AmxEmulatedTiles {
 public:
  void load_config(const AmxTileConfig& cfg) {
    bool ok = cfg.palette_id == 1 && cfg.start_row == 0;
    for (std::uint8_t r : cfg.reserved) ok = ok && r == 0;
    for (int t = 0; t < 16; ++t) {
      const int rows = cfg.rows[t], colsb = cfg.colsb[t];
      if (t >= kAmxTiles) {
        ok = ok && rows == 0 && colsb == 0;
        continue;
      }
      ok = ok && rows <= kAmxMaxRows && colsb <= kAmxMaxColsb && (rows == 0) == (colsb == 0);
    }
    FQ_CHECK(ok, ErrorCode::kInvalidArgument,
             msg("AMX emulator: ldtilecfg: invalid palette-1 configuration; the hardware would "
                 "raise #GP"));
    cfg_ = cfg;
    configured_ = true;
    for (auto& t : tiles_) t.fill(0);
  }
  void release() noexcept { configured_ = false; }

  template <int T>
  void zero() {
    check_tile(T, "tilezero");
    tiles_[T].fill(0);
  }
  template <int T>
  void load(const void* base, std::int64_t stride) {
    check_tile(T, "tileloadd");
    auto& t = tiles_[T];
    t.fill(0);
    for (int r = 0; r < cfg_.rows[T]; ++r)
      std::memcpy(t.data() + r * kAmxMaxColsb, static_cast<const std::uint8_t*>(base) + r * stride,
                  cfg_.colsb[T]);
  }
  template <int T>
  void store(void* base, std::int64_t stride) {
    check_tile(T, "tilestored");
    for (int r = 0; r < cfg_.rows[T]; ++r)
      std::memcpy(static_cast<std::uint8_t*>(base) + r * stride,
                  tiles_[T].data() + r * kAmxMaxColsb, cfg_.colsb[T]);
  }
  template <int C, int A, int B>
  void dpbusd() {
    dot(C, A, B, false, "tdpbusd");
  }
  template <int C, int A, int B>
  void dpbssd() {
    dot(C, A, B, true, "tdpbssd");
  }

  /// Row r of tile t as bytes (tests).
  const std::uint8_t* row(int t, std::ptrdiff_t r) const noexcept {
    return tiles_[static_cast<std::size_t>(t)].data() + r * kAmxMaxColsb;
  }

 private:
  void check_tile(int t, const char* op) const {
    FQ_CHECK(configured_ && cfg_.rows[t] != 0, ErrorCode::kInvalidArgument,
             msg("AMX emulator: ", op, ": tile ", t,
                 " is not configured; the hardware would raise #UD"));
  }
  void dot(int c, int a, int b, bool signed_a, const char* op) {
    check_tile(c, op);
    check_tile(a, op);
    check_tile(b, op);
    const int m = cfg_.rows[c], n4 = cfg_.colsb[c], ka = cfg_.colsb[a];
    FQ_CHECK(c != a && c != b && a != b && m == cfg_.rows[a] && n4 % 4 == 0 && ka % 4 == 0 &&
                 n4 == cfg_.colsb[b] && ka / 4 == cfg_.rows[b],
             ErrorCode::kInvalidArgument,
             msg("AMX emulator: ", op, ": operand shapes disagree (C ", m, "x", n4, ", A ",
                 int(cfg_.rows[a]), "x", ka, ", B ", int(cfg_.rows[b]), "x", int(cfg_.colsb[b]),
                 " bytes); the hardware would raise #UD"));
    for (std::ptrdiff_t i = 0; i < m; ++i)
      for (std::ptrdiff_t j = 0; j < n4 / 4; ++j) {
        std::int32_t acc;
        std::memcpy(&acc, row(c, i) + 4 * j, 4);
        std::uint32_t sum = static_cast<std::uint32_t>(acc);  // wraps as the hardware's int32
        for (std::ptrdiff_t k = 0; k < ka / 4; ++k)
          for (std::ptrdiff_t q = 0; q < 4; ++q) {
            const std::uint8_t av = row(a, i)[4 * k + q];
            const std::int32_t x = signed_a ? std::int32_t(static_cast<std::int8_t>(av)) : av;
            const std::int32_t y = static_cast<std::int8_t>(row(b, k)[4 * j + q]);
            sum += static_cast<std::uint32_t>(x * y);
          }
        std::memcpy(tiles_[static_cast<std::size_t>(c)].data() + i * kAmxMaxColsb + 4 * j, &sum, 4);
      }
  }

  AmxTileConfig cfg_{};
  bool configured_ = false;
  std::array<std::array<std::uint8_t, kAmxMaxRows * kAmxMaxColsb>, kAmxTiles> tiles_{};
};

#if FQ_KERNELS_X86
// The intrinsics take the tile number as a literal: one case per tile the kernel uses.
#define FQ_AMX_TILE_CASES(T, OP)                          \
  if constexpr ((T) == 0) {                               \
    OP(0);                                                \
  } else if constexpr ((T) == 1) {                        \
    OP(1);                                                \
  } else if constexpr ((T) == 2) {                        \
    OP(2);                                                \
  } else if constexpr ((T) == 3) {                        \
    OP(3);                                                \
  } else if constexpr ((T) == 4) {                        \
    OP(4);                                                \
  } else if constexpr ((T) == 5) {                        \
    OP(5);                                                \
  } else if constexpr ((T) == 6) {                        \
    OP(6);                                                \
  } else {                                                \
    static_assert((T) == 7, "AMX tile numbers are 0..7"); \
    OP(7);                                                \
  }

template <int T>
FQ_TARGET_AMX void amx_hw_zero() {
#define FQ_AMX_OP(t) _tile_zero(t)
  FQ_AMX_TILE_CASES(T, FQ_AMX_OP)
#undef FQ_AMX_OP
}
template <int T>
FQ_TARGET_AMX void amx_hw_load(const void* base, std::int64_t stride) {
  __asm__ __volatile__("" ::: "memory");  // tileloadd's asm names no memory operand
#define FQ_AMX_OP(t) _tile_loadd(t, base, stride)
  FQ_AMX_TILE_CASES(T, FQ_AMX_OP)
#undef FQ_AMX_OP
}
template <int T>
FQ_TARGET_AMX void amx_hw_store(void* base, std::int64_t stride) {
#define FQ_AMX_OP(t) _tile_stored(t, base, stride)
  FQ_AMX_TILE_CASES(T, FQ_AMX_OP)
#undef FQ_AMX_OP
  __asm__ __volatile__("" ::: "memory");
}
// The kernel's tile map: C in tmm0..3, A in tmm4..5, B in tmm6..7 (16 combinations).
template <int C, int A, int B, bool kSigned>
FQ_TARGET_AMX void amx_hw_dot() {
  static_assert(C >= 0 && C < 4 && (A == 4 || A == 5) && (B == 6 || B == 7),
                "AmxHardwareTiles: C in tmm0..3, A in tmm4..5, B in tmm6..7");
#define FQ_AMX_DOT(c, a, b)                         \
  if constexpr (C == (c) && A == (a) && B == (b)) { \
    if constexpr (kSigned)                          \
      _tile_dpbssd(c, a, b);                        \
    else                                            \
      _tile_dpbusd(c, a, b);                        \
  }
#define FQ_AMX_DOT_C(c) \
  FQ_AMX_DOT(c, 4, 6) FQ_AMX_DOT(c, 4, 7) FQ_AMX_DOT(c, 5, 6) FQ_AMX_DOT(c, 5, 7)
  FQ_AMX_DOT_C(0) FQ_AMX_DOT_C(1) FQ_AMX_DOT_C(2) FQ_AMX_DOT_C(3)
#undef FQ_AMX_DOT_C
#undef FQ_AMX_DOT
}
// GCC's _tile_loadconfig names only 8 bytes of the configuration as its memory operand: the
// barrier makes every byte of *cfg stored first.
FQ_TARGET_AMX inline void amx_hw_load_config(const AmxTileConfig* cfg) {
  __asm__ __volatile__("" ::: "memory");
  _tile_loadconfig(cfg);
}
FQ_TARGET_AMX inline void amx_hw_release() { _tile_release(); }

/// The real tiles (file comment). Only valid when isa_supported(Isa::kAmx).
struct AmxHardwareTiles {
  static void load_config(const AmxTileConfig& cfg) { amx_hw_load_config(&cfg); }
  static void release() { amx_hw_release(); }
  template <int T>
  void zero() {
    amx_hw_zero<T>();
  }
  template <int T>
  void load(const void* base, std::int64_t stride) {
    amx_hw_load<T>(base, stride);
  }
  template <int T>
  void store(void* base, std::int64_t stride) {
    amx_hw_store<T>(base, stride);
  }
  template <int C, int A, int B>
  void dpbusd() {
    amx_hw_dot<C, A, B, false>();
  }
  template <int C, int A, int B>
  void dpbssd() {
    amx_hw_dot<C, A, B, true>();
  }
};
#undef FQ_AMX_TILE_CASES
#endif  // FQ_KERNELS_X86

}  // namespace detail
}  // namespace fq

#endif  // FQ_KERNELS_GEMM_AMX_TILES_HPP_
