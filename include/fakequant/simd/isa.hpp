// SPDX-License-Identifier: MIT
// fakequant/simd/isa.hpp: the instruction sets of the int8 kernels and the ONE place where
// the kernel path is chosen at run time.
//
// The int8 GEMM has four implementations that give bit-identical int32 results:
//   kAmx         AMX-INT8 tiles (tdpbusd / tdpbssd, 16 x 16 int32 per tile, K steps of 64),
//                gemm_amx.hpp. Chosen only when the CPU has AMX-TILE and AMX-INT8 (CPUID
//                leaf 7, EDX bits 24 and 25), AVX-512 VNNI (its epilogues) AND the OS grants
//                the tile data state: on Linux arch_prctl(ARCH_REQ_XCOMP_PERM,
//                XFEATURE_XTILEDATA = 18), asked once; refused, or not Linux: not supported,
//                and kAuto silently picks the VNNI path.
//   kAvx512Vnni  vpdpbusd (u8 x s8, four products summed into int32), 64 columns x 6 rows
//   kAvx2        a widening path: u8 -> int16 and s8 -> int16, then vpmaddwd (int16 pairs
//                summed into int32). It avoids vpmaddubsw, whose int16 pair sum saturates
//                (255 * 127 * 2 = 64770 > 32767), so it is exact for every u8 x s8 input.
//   kScalar      the reference, plain C++.
// The SIMD functions carry __attribute__((target(...))), so the library needs no -march flag
// (and noinline: they are only reached through the dispatch, and inlining them into callers
// with constant sizes makes GCC 12 warn about tile stores it cannot see are unreachable);
// detect_isa() asks the CPU (__builtin_cpu_supports) once. Non-GCC/Clang or non-x86 builds
// compile only the scalar path.
#ifndef FQ_SIMD_ISA_HPP_
#define FQ_SIMD_ISA_HPP_

#include <vector>  // vector

#include <fakequant/base/error.hpp>

#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
#include <cpuid.h>  // __get_cpuid_count
#endif
#if defined(__linux__) && defined(__x86_64__)
#include <sys/syscall.h>  // SYS_arch_prctl
#include <unistd.h>       // syscall
#endif

#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
#define FQ_KERNELS_X86 1
#define FQ_TARGET_AVX512VNNI \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni"), noinline))
#define FQ_TARGET_AVX2 __attribute__((target("avx2"), noinline))
// The AMX tile instructions (gemm_amx.hpp: one noinline wrapper per tile operation).
#define FQ_TARGET_AMX \
  __attribute__((target("amx-tile,amx-int8,avx512f,avx512bw,avx512vl,avx512vnni"), noinline))
// Small helpers called from FQ_TARGET_AVX512VNNI functions (inlined into them).
#define FQ_TARGET_AVX512VNNI_INLINE \
  inline __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni"), always_inline))
#else
#define FQ_KERNELS_X86 0
#endif

// Full unrolling of the register-tile loops: the accumulator arrays must become registers.
#if defined(__clang__)
#define FQ_UNROLL _Pragma("unroll")
#elif defined(__GNUC__)
#define FQ_UNROLL _Pragma("GCC unroll 32")
#else
#define FQ_UNROLL
#endif

namespace fq {

/// Which implementation of an int8 kernel runs. kAuto picks the best one the CPU supports.
enum class Isa { kAuto, kScalar, kAvx2, kAvx512Vnni, kAmx };

/// Short name, e.g. "avx512_vnni".
inline const char* to_string(Isa isa) noexcept {
  switch (isa) {
    case Isa::kAuto:
      return "auto";
    case Isa::kScalar:
      return "scalar";
    case Isa::kAvx2:
      return "avx2";
    case Isa::kAvx512Vnni:
      return "avx512_vnni";
    case Isa::kAmx:
      return "amx";
  }
  return "unknown";
}

namespace detail {
/// CPUID leaf 7, sub-leaf 0, EDX bits 24 (AMX-TILE) and 25 (AMX-INT8).
inline bool cpu_has_amx_int8() noexcept {
#if FQ_KERNELS_X86
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return false;
  return ((edx >> 24) & 1u) != 0 && ((edx >> 25) & 1u) != 0;
#else
  return false;
#endif
}

/// Asks Linux for the AMX tile data state (arch_prctl(ARCH_REQ_XCOMP_PERM = 0x1023,
/// XFEATURE_XTILEDATA = 18)); without it the first tile instruction faults. Other systems:
/// false (not supported, so the VNNI path runs). Call once (detect_isa caches it).
inline bool os_grants_amx_tiles() noexcept {
#if defined(__linux__) && defined(__x86_64__) && defined(SYS_arch_prctl)
  constexpr long kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
  return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
#else
  return false;
#endif
}

inline Isa detect_isa_uncached() noexcept {
#if FQ_KERNELS_X86
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni")) {
    // The permission is requested only on a CPU with AMX-INT8.
    if (cpu_has_amx_int8() && os_grants_amx_tiles()) return Isa::kAmx;
    return Isa::kAvx512Vnni;
  }
  if (__builtin_cpu_supports("avx2")) return Isa::kAvx2;
#endif
  return Isa::kScalar;
}
}  // namespace detail

/// The best implementation this CPU runs (detected once).
inline Isa detect_isa() noexcept {
  static const Isa best = detail::detect_isa_uncached();
  return best;
}

/// True if this CPU (and this build) can run `isa`.
inline bool isa_supported(Isa isa) noexcept {
  const Isa best = detect_isa();
  switch (isa) {
    case Isa::kAuto:
    case Isa::kScalar:
      return true;
    case Isa::kAvx2:
      return best == Isa::kAvx2 || best == Isa::kAvx512Vnni || best == Isa::kAmx;
    case Isa::kAvx512Vnni:
      return best == Isa::kAvx512Vnni || best == Isa::kAmx;
    case Isa::kAmx:
      return best == Isa::kAmx;
  }
  return false;
}

/// Every implementation this CPU runs, scalar first (tests run each against the reference).
inline std::vector<Isa> supported_isas() {
  std::vector<Isa> out{Isa::kScalar};
  if (isa_supported(Isa::kAvx2)) out.push_back(Isa::kAvx2);
  if (isa_supported(Isa::kAvx512Vnni)) out.push_back(Isa::kAvx512Vnni);
  if (isa_supported(Isa::kAmx)) out.push_back(Isa::kAmx);
  return out;
}

/// Resolves kAuto to the detected ISA; a request the CPU cannot run is an error.
inline Isa resolve_isa(Isa requested, const char* where) {
  if (requested == Isa::kAuto) return detect_isa();
  FQ_CHECK(isa_supported(requested), ErrorCode::kInvalidArgument,
           detail::msg(where, ": the CPU or this build does not support ", to_string(requested)));
  return requested;
}

}  // namespace fq

#endif  // FQ_SIMD_ISA_HPP_
