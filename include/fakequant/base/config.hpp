// SPDX-License-Identifier: MIT
// fakequant/base/config.hpp: build configuration — SIMD availability, exceptions, inlining.
//
// FQ_HAS_XSIMD is 1 when the xsimd kernels are compiled in. CMake defines it from the option
// FQ_USE_XSIMD; without CMake it is detected with __has_include, and FQ_NO_XSIMD forces the
// scalar path. Both paths give bit-identical results (tested).
#ifndef FQ_BASE_CONFIG_HPP_
#define FQ_BASE_CONFIG_HPP_

#include <fakequant/base/version.hpp>

#if !defined(FQ_HAS_XSIMD)
#if defined(FQ_NO_XSIMD)
#define FQ_HAS_XSIMD 0
#elif defined(__has_include)
#if __has_include(<xsimd/xsimd.hpp>)
#define FQ_HAS_XSIMD 1
#else
#define FQ_HAS_XSIMD 0
#endif
#else
#define FQ_HAS_XSIMD 0
#endif
#endif

#if defined(__cpp_exceptions) || defined(__EXCEPTIONS) || defined(_CPPUNWIND)
#define FQ_HAS_EXCEPTIONS 1
#else
#define FQ_HAS_EXCEPTIONS 0
#endif

#if defined(__GNUC__) || defined(__clang__)
#define FQ_INLINE inline __attribute__((always_inline))
#define FQ_UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define FQ_INLINE inline
#define FQ_UNLIKELY(x) (x)
#endif

// The tape ops' loops over channels run in parallel when the user compiles with OpenMP
// (-fopenmp); otherwise this expands to nothing. Each such loop writes disjoint memory.
#if defined(_OPENMP)
#define FQ_PARALLEL_FOR _Pragma("omp parallel for schedule(static)")
#else
#define FQ_PARALLEL_FOR
#endif

namespace fq {
/// The one rank limit: tensor views, tape shapes, per-channel axes and model files describe
/// tensors of at most this many dimensions.
inline constexpr int kMaxRank = 8;
}  // namespace fq

#endif  // FQ_BASE_CONFIG_HPP_
