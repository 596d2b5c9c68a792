// SPDX-License-Identifier: MIT
// fakequant/simd/arch.hpp: the instruction set as a type (fq::DefaultArch, fq::ScalarArch) and
// the one place where an Isa request picks the fake-quant kernels or the scalar reference.
//
// Inline functions of one name must be the same code in every translation unit (ODR). The
// SIMD kernels are compiled for the TU's -m flags, so a function that chose them internally
// would differ between a TU built with -mavx512f and a baseline one, and the linker would keep
// one copy for both (AVX-512 code run from the baseline TU: SIGILL on older CPUs). As in xsimd
// (batch<T, Arch>), the instruction set is therefore part of the type: every public entry
// point that reaches SIMD code takes `class Arch = fq::DefaultArch` and passes it down to every
// helper on the path, so each TU's flags give distinctly named instantiations.
//
// The Isa argument of the fake-quant, quantize/dequantize, LSQ, PACT and FakeQuantizer entry
// points (use_simd_kernels below):
//   Isa::kAuto    the kernels of Arch: SIMD if Arch is an xsimd architecture, else scalar
//   Isa::kScalar  the scalar reference (bit-identical results; for tests and debugging)
//   another value the Isa that names Arch's instruction set (Isa::kAvx2 for an AVX2 Arch)
//                 behaves as kAuto; any other is ErrorCode::kInvalidArgument, since these
//                 kernels run only Arch's instructions (the int8 GEMM values kAvx2 and
//                 kAvx512Vnni choose GEMM kernels, simd/isa.hpp, not fake-quant ones).
#ifndef FQ_SIMD_ARCH_HPP_
#define FQ_SIMD_ARCH_HPP_

#include <type_traits>  // conditional_t, is_base_of, is_same

#include <fakequant/base/config.hpp>
#include <fakequant/base/error.hpp>
#include <fakequant/simd/isa.hpp>

#if FQ_HAS_XSIMD
#include <xsimd/xsimd.hpp>
#endif

namespace fq {

/// The architecture tag of the scalar kernels: builds without xsimd, or CPUs xsimd has no
/// architecture for. Only a name; no batch type exists for it.
struct ScalarArch {
  static constexpr const char* name() noexcept { return "scalar"; }
};

#if FQ_HAS_XSIMD
/// The architecture this translation unit's flags give (-mavx2, -march=native, ...).
using DefaultArch = std::conditional_t<std::is_same<xsimd::default_arch, xsimd::unavailable>::value,
                                       ScalarArch, xsimd::default_arch>;
#else
using DefaultArch = ScalarArch;
#endif

/// True if Arch is an xsimd architecture, i.e. has SIMD kernels.
template <class Arch>
inline constexpr bool kSimdArch = !std::is_same<Arch, ScalarArch>::value;

/// The Isa value that names Arch's instruction set, or Isa::kAuto if none does.
template <class Arch>
constexpr Isa isa_of_arch() noexcept {
#if FQ_HAS_XSIMD && XSIMD_WITH_AVX2
  if constexpr (std::is_base_of<xsimd::avx2, Arch>::value) return Isa::kAvx2;
#endif
  return Isa::kAuto;
}

namespace detail {

/// Whether a fake-quant entry point of architecture Arch runs its SIMD kernels for `path`
/// (see the file comment); an Isa that is not Arch's is kInvalidArgument.
template <class Arch>
bool use_simd_kernels(Isa path, const char* where) {
  if (path == Isa::kScalar) return false;
  if (path == Isa::kAuto) return kSimdArch<Arch>;
  FQ_CHECK(path == isa_of_arch<Arch>(), ErrorCode::kInvalidArgument,
           msg(where, ": the Isa ", to_string(path),
               " is not the instruction set of these kernels, which run ", Arch::name(),
               " (their Arch template argument); pass Isa::kAuto, or Isa::kScalar for the "
               "scalar reference"));
  return true;
}

}  // namespace detail
}  // namespace fq

#endif  // FQ_SIMD_ARCH_HPP_
