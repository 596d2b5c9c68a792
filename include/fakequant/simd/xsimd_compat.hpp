// SPDX-License-Identifier: MIT
// fakequant/simd/xsimd_compat.hpp: what the kernels need from xsimd, across versions.
//
// xsimd 8.1 (Debian 12) has no batch_bool <-> bit-mask conversion; these helpers provide it
// (AVX-512 mask registers, SSE/AVX movemask, a portable fallback). The architecture A of every
// helper is a template argument: fq::DefaultArch (simd/arch.hpp) is chosen by the public entry
// points, never here.
#ifndef FQ_SIMD_XSIMD_COMPAT_HPP_
#define FQ_SIMD_XSIMD_COMPAT_HPP_

#include <fakequant/base/config.hpp>

#if FQ_HAS_XSIMD
#include <cstddef>      // size_t
#include <cstdint>      // uint64_t
#include <type_traits>  // is_base_of, is_same

#include <xsimd/xsimd.hpp>

namespace fq {
namespace simd {

/// The lanes of a batch_bool as bits (lane i -> bit i).
template <class T, class A>
FQ_INLINE std::uint64_t to_bits(const xsimd::batch_bool<T, A>& b) noexcept {
#if XSIMD_WITH_AVX512F
  if constexpr (std::is_base_of<xsimd::avx512f, A>::value) {
    using R = typename xsimd::batch_bool<T, A>::register_type;
    return static_cast<std::uint64_t>(static_cast<R>(b));
  } else
#endif
#if XSIMD_WITH_AVX
      if constexpr (std::is_base_of<xsimd::avx, A>::value && std::is_same<T, float>::value) {
    return static_cast<std::uint64_t>(_mm256_movemask_ps(b));
  } else if constexpr (std::is_base_of<xsimd::avx, A>::value && std::is_same<T, double>::value) {
    return static_cast<std::uint64_t>(_mm256_movemask_pd(b));
  } else
#endif
#if XSIMD_WITH_SSE2
      if constexpr (std::is_base_of<xsimd::sse2, A>::value && std::is_same<T, float>::value) {
    return static_cast<std::uint64_t>(_mm_movemask_ps(b));
  } else if constexpr (std::is_base_of<xsimd::sse2, A>::value && std::is_same<T, double>::value) {
    return static_cast<std::uint64_t>(_mm_movemask_pd(b));
  } else
#endif
  {
    std::uint64_t bits = 0;
    for (std::size_t i = 0; i < xsimd::batch_bool<T, A>::size; ++i)
      bits |= static_cast<std::uint64_t>(b.get(i)) << i;
    return bits;
  }
}

/// A batch holding 1 in the lanes whose bit is set and 0 elsewhere.
template <class T, class A>
FQ_INLINE xsimd::batch<T, A> ones_from_bits(std::uint64_t bits) noexcept {
  using B = xsimd::batch<T, A>;
#if XSIMD_WITH_AVX512F
  if constexpr (std::is_base_of<xsimd::avx512f, A>::value) {
    using R = typename xsimd::batch_bool<T, A>::register_type;
    return xsimd::select(xsimd::batch_bool<T, A>(static_cast<R>(bits)), B(T(1)), B(T(0)));
  } else
#endif
  {
    alignas(64) T lanes[B::size];
    for (std::size_t i = 0; i < B::size; ++i) lanes[i] = T((bits >> i) & 1u);
    return B::load_aligned(lanes);
  }
}

/// Keeps the compiler from fusing a multiply into the following add (see rounding.hpp).
template <class T, class A>
FQ_INLINE xsimd::batch<T, A> no_contract(xsimd::batch<T, A> v) noexcept {
#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
  auto r = static_cast<typename xsimd::batch<T, A>::register_type>(v);
  __asm__("" : "+v"(r));
  return xsimd::batch<T, A>(r);
#else
  return v;
#endif
}

/// True if a*b+c can be computed with one rounding on batches of architecture A.
// The trailing `false` closes the preprocessor-selected disjunction.
// NOLINTBEGIN(readability-simplify-boolean-expr)
template <class A>
inline constexpr bool kHaveFusedMulAdd =
#if XSIMD_WITH_AVX512F
    std::is_base_of<xsimd::avx512f, A>::value ||
#endif
#if defined(__FMA__) && XSIMD_WITH_AVX
    std::is_base_of<xsimd::avx, A>::value ||
#endif
#if defined(__FMA__) && XSIMD_WITH_SSE2
    std::is_base_of<xsimd::sse2, A>::value ||
#endif
    false;
// NOLINTEND(readability-simplify-boolean-expr)

/// a*b+c rounded once (only where kHaveFusedMulAdd<A>).
template <class A>
FQ_INLINE xsimd::batch<float, A> fused_mul_add(const xsimd::batch<float, A>& a,
                                               const xsimd::batch<float, A>& b,
                                               const xsimd::batch<float, A>& c) noexcept {
#if XSIMD_WITH_AVX512F
  if constexpr (std::is_base_of<xsimd::avx512f, A>::value) {
    return _mm512_fmadd_ps(a, b, c);
  } else
#endif
#if defined(__FMA__) && XSIMD_WITH_AVX
      if constexpr (std::is_base_of<xsimd::avx, A>::value) {
    return _mm256_fmadd_ps(a, b, c);
  } else
#endif
#if defined(__FMA__) && XSIMD_WITH_SSE2
      if constexpr (std::is_base_of<xsimd::sse2, A>::value) {
    return _mm_fmadd_ps(a, b, c);
  } else
#endif
  {
    static_assert(kHaveFusedMulAdd<A>, "fused_mul_add: no fused multiply-add on this arch.");
    return a * b + c;
  }
}

}  // namespace simd
}  // namespace fq

#endif  // FQ_HAS_XSIMD
#endif  // FQ_SIMD_XSIMD_COMPAT_HPP_
