// SPDX-License-Identifier: MIT
// fakequant/ops/pool.hpp: max and average 2-D pooling (NCHW, no padding) on a Tape.
//
//   max_pool2d: y[n,c,i,j] = max over the k×k window at (i·s, j·s); dx[argmax] += dy
//               (the first maximum in row-major window order wins ties, as PyTorch; NaN wins).
//   avg_pool2d: y = window mean; dx[window] += dy / k².
// OH = (H − k) / s + 1 (floor), likewise OW.
#ifndef FQ_OPS_POOL_HPP_
#define FQ_OPS_POOL_HPP_

#include <algorithm>    // fill
#include <cstdint>      // int32_t, int64_t, uint32_t
#include <cstring>      // memcpy
#include <limits>       // numeric_limits
#include <type_traits>  // is_base_of

#include <fakequant/base/config.hpp>
#include <fakequant/simd/arch.hpp>
#include <fakequant/tape/tape.hpp>

#if FQ_HAS_XSIMD && defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace fq {
namespace ops {

namespace impl {
struct PoolGeometry {
  std::int64_t n, c, h, w, oh, ow, k, s;
  static PoolGeometry make(const Var& x, std::int64_t k, std::int64_t s, const char* op) {
    FQ_CHECK(x.shape().rank == 4, ErrorCode::kShapeMismatch,
             fq::detail::msg(op, ": x ", x.shape().str(), " must be NCHW"));
    FQ_CHECK(k > 0 && s > 0 && k <= x.size(2) && k <= x.size(3), ErrorCode::kInvalidArgument,
             fq::detail::msg(op, ": window ", k, " stride ", s, " invalid for ", x.shape().str()));
    return {x.size(0),
            x.size(1),
            x.size(2),
            x.size(3),
            (x.size(2) - k) / s + 1,
            (x.size(3) - k) / s + 1,
            k,
            s};
  }
};

inline std::uint32_t bits_of(float v) noexcept {
  std::uint32_t b = 0;
  std::memcpy(&b, &v, sizeof b);
  return b;
}
inline float float_of(std::uint32_t b) noexcept {
  float v = 0.0f;
  std::memcpy(&v, &b, sizeof v);
  return v;
}

/// One step of the window scan: takes xp[o] if it is > *bv, or NaN while *bv is not (NaN
/// propagates; the first maximum wins ties). Branch-free, by masks: a branch per element
/// mispredicts about half the time on activations.
inline void take_if_greater(const float* xp, std::int64_t o, float* bv, std::int64_t* best) {
  const float v = xp[o];
  const std::uint32_t take =
      static_cast<std::uint32_t>(!(v <= *bv)) & static_cast<std::uint32_t>(*bv == *bv);
  const std::uint32_t m = 0u - take;
  *bv = float_of((bits_of(v) & m) | (bits_of(*bv) & ~m));
  const std::int64_t m64 = -static_cast<std::int64_t>(take);
  *best = (o & m64) | (*best & ~m64);
}

/// dx[arg] += dy, plane by plane. As x's gradient's first writer (tape/grad_state.hpp) it
/// zeroes each plane just before adding into it, while the plane is in cache, instead of
/// letting the whole gradient be zeroed at once: the same sums, one pass less over memory.
/// Arch only names the instruction set this copy is compiled for (simd/arch.hpp: TUs with
/// different -m flags must not share one copy).
template <class Arch>
void push_max_pool2d_backward(Tape& tape, const Var& x, const Var& y, const PoolGeometry& g,
                              const std::int32_t* arg) {
  tape.push_backward([x, y, g, arg] {
    const std::int64_t per = g.oh * g.ow, plane = g.h * g.w;
    const GradWrite dx_all = x.claim_grad();
    const float* const dy = y.grad();
    FQ_PARALLEL_FOR
    for (std::int64_t nc = 0; nc < g.n * g.c; ++nc) {
      float* dx = dx_all.data + nc * plane;
      if (dx_all.overwrite) std::fill(dx, dx + plane, 0.0f);
      for (std::int64_t o = nc * per; o < (nc + 1) * per; ++o) dx[arg[o]] += dy[o];
    }
  });
}

/// The forward of max_pool2d over every plane: y and, if arg is not null, the arg-max offsets
/// within the plane. The window K and stride S are compile-time constants when > 0 (the
/// demo's 2x2 pooling: the window unrolled), else g.k and g.s. The window is scanned in
/// row-major order with the same rule either way, so the results do not depend on the path.
template <class Arch, std::int64_t K, std::int64_t S>
void max_pool2d_planes(const float* x, const PoolGeometry& g, float* y, std::int32_t* arg) {
  const std::int64_t k = K > 0 ? K : g.k, s = S > 0 ? S : g.s, w = g.w, ow = g.ow;
  FQ_PARALLEL_FOR
  for (std::int64_t nc = 0; nc < g.n * g.c; ++nc) {
    const float* xp = x + nc * g.h * w;
    for (std::int64_t i = 0; i < g.oh; ++i) {
      float* yp = y + (nc * g.oh + i) * ow;
      std::int32_t* ap = arg ? arg + (nc * g.oh + i) * ow : nullptr;
      const std::int64_t row0 = i * s * w;
      for (std::int64_t j = 0; j < ow; ++j) {
        const std::int64_t first = row0 + j * s;
        std::int64_t best = first;
        float bv = xp[first];
        for (std::int64_t p = 0; p < k; ++p)
          for (std::int64_t q = 0; q < k; ++q) {
            take_if_greater(xp, first + p * w + q, &bv, &best);
          }
        yp[j] = bv;
        if (ap) ap[j] = static_cast<std::int32_t>(best);  // < h·w, checked by the caller
      }
    }
  }
}

#if FQ_HAS_XSIMD && defined(__AVX512F__)
/// max_pool2d_planes<Arch, 2, 2> on AVX-512 (Arch an AVX-512 architecture, this TU compiled for
/// it), for even widths: 16 outputs of a row pair at a time, the window's four values split into
/// even and odd columns by permutes, masked stores for the short rows (14 and 7 outputs in the
/// demo). Loads are whole vectors wherever 32 floats from the row start lie inside x (the lanes
/// past the row read the next row or plane and are never stored): an AVX-512 masked load costs
/// about 8 plain ones on AMD Zen 5 (docs/benchmarks.md), so only the tensor's last rows use
/// them. The same rule per lane as the scalar scan, in the same window order, so the same bits
/// and arg-max.
template <class Arch>  // in the name, as every SIMD path (simd/arch.hpp: ODR)
void max_pool2d_2x2_avx512(const float* x, const PoolGeometry& g, float* y, std::int32_t* arg) {
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
  const __m512i lane2 =
      _mm512_slli_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), 1);
  const std::int64_t w = g.w, ow = g.ow;
  const float* const end = x + g.n * g.c * g.h * w;
  // Takes v (offset o) into (bv, best) where v > bv, or v is NaN while bv is not.
  const auto step = [](__m512 v, __m512i o, __m512* bv, __m512i* best) {
    const __mmask16 take =
        _mm512_cmp_ps_mask(v, *bv, _CMP_GT_OQ) |
        (_mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q) & _mm512_cmp_ps_mask(*bv, *bv, _CMP_ORD_Q));
    *bv = _mm512_mask_mov_ps(*bv, take, v);
    *best = _mm512_mask_mov_epi32(*best, take, o);
  };
  FQ_PARALLEL_FOR
  for (std::int64_t nc = 0; nc < g.n * g.c; ++nc)
    for (std::int64_t i = 0; i < g.oh; ++i) {
      const float* r0 = x + nc * g.h * w + 2 * i * w;
      const float* r1 = r0 + w;
      float* yp = y + (nc * g.oh + i) * ow;
      std::int32_t* ap = arg ? arg + (nc * g.oh + i) * ow : nullptr;
      for (std::int64_t j = 0; j < ow; j += 16) {
        const std::int64_t left = ow - j < 16 ? ow - j : 16;  // outputs in this step
        const auto m_out = static_cast<__mmask16>((1u << left) - 1u);
        const float* p0 = r0 + 2 * j;
        const float* p1 = r1 + 2 * j;
        __m512 a0, a1, b0, b1;
        if (end - p1 >= 32) {
          a0 = _mm512_loadu_ps(p0), a1 = _mm512_loadu_ps(p0 + 16);
          b0 = _mm512_loadu_ps(p1), b1 = _mm512_loadu_ps(p1 + 16);
        } else {
          const std::int64_t in_lo = 2 * left < 16 ? 2 * left : 16, in_hi = 2 * left - in_lo;
          const auto m_lo = static_cast<__mmask16>((1u << in_lo) - 1u),
                     m_hi = static_cast<__mmask16>((1u << in_hi) - 1u);
          a0 = _mm512_maskz_loadu_ps(m_lo, p0), a1 = _mm512_maskz_loadu_ps(m_hi, p0 + 16);
          b0 = _mm512_maskz_loadu_ps(m_lo, p1), b1 = _mm512_maskz_loadu_ps(m_hi, p1 + 16);
        }
        const __m512i o = _mm512_add_epi32(
            lane2, _mm512_set1_epi32(static_cast<std::int32_t>(2 * i * w + 2 * j)));
        __m512 bv = _mm512_permutex2var_ps(a0, even, a1);
        __m512i best = o;
        step(_mm512_permutex2var_ps(a0, odd, a1), _mm512_add_epi32(o, _mm512_set1_epi32(1)), &bv,
             &best);
        const auto wi = static_cast<std::int32_t>(w);
        step(_mm512_permutex2var_ps(b0, even, b1), _mm512_add_epi32(o, _mm512_set1_epi32(wi)), &bv,
             &best);
        step(_mm512_permutex2var_ps(b0, odd, b1), _mm512_add_epi32(o, _mm512_set1_epi32(wi + 1)),
             &bv, &best);
        _mm512_mask_storeu_ps(yp + j, m_out, bv);
        if (ap) _mm512_mask_storeu_epi32(ap + j, m_out, best);
      }
    }
}
#endif
}  // namespace impl

/// Max pooling with a k×k window and stride s (default s = k). Arch: the instruction set of
/// the forward's kernel (simd/arch.hpp).
template <class Arch = DefaultArch>
Var max_pool2d(Tape& tape, const Var& x, std::int64_t k, std::int64_t s = 0) {
  fq::detail::check_tape(tape, {&x}, "max_pool2d");
  const auto g = impl::PoolGeometry::make(x, k, s > 0 ? s : k, "max_pool2d");
  const bool need = fq::detail::needs_grad(tape, {&x});
  // The arg-max indices are int32 offsets within one input plane.
  FQ_CHECK(!need || g.h * g.w <= std::numeric_limits<std::int32_t>::max(), ErrorCode::kOutOfMemory,
           fq::detail::msg("max_pool2d: an input plane of ", g.h, "x", g.w,
                           " elements exceeds the int32 arg-max index"));
  Var y = tape.variable({g.n, g.c, g.oh, g.ow}, need);
  std::int32_t* arg =
      need ? tape.scratch<std::int32_t>(static_cast<std::size_t>(y.numel())) : nullptr;
#if FQ_HAS_XSIMD && defined(__AVX512F__)
  if constexpr (std::is_base_of<xsimd::avx512f, Arch>::value) {
    if (g.k == 2 && g.s == 2 && g.w % 2 == 0) {
      impl::max_pool2d_2x2_avx512<Arch>(x.value(), g, y.value(), arg);
      if (need) impl::push_max_pool2d_backward<Arch>(tape, x, y, g, arg);
      return y;
    }
  }
#endif
  if (g.k == 2 && g.s == 2)
    impl::max_pool2d_planes<Arch, 2, 2>(x.value(), g, y.value(), arg);
  else if (g.k == 3 && g.s == 2)
    impl::max_pool2d_planes<Arch, 3, 2>(x.value(), g, y.value(), arg);
  else
    impl::max_pool2d_planes<Arch, 0, 0>(x.value(), g, y.value(), arg);
  if (need) impl::push_max_pool2d_backward<Arch>(tape, x, y, g, arg);
  return y;
}

/// Average pooling with a k×k window and stride s (default s = k).
inline Var avg_pool2d(Tape& tape, const Var& x, std::int64_t k, std::int64_t s = 0) {
  fq::detail::check_tape(tape, {&x}, "avg_pool2d");
  const auto g = impl::PoolGeometry::make(x, k, s > 0 ? s : k, "avg_pool2d");
  const bool need = fq::detail::needs_grad(tape, {&x});
  Var y = tape.variable({g.n, g.c, g.oh, g.ow}, need);
  const float inv = 1.0f / static_cast<float>(g.k * g.k);
  for (std::int64_t nc = 0; nc < g.n * g.c; ++nc) {
    const float* xp = x.value() + nc * g.h * g.w;
    for (std::int64_t i = 0; i < g.oh; ++i)
      for (std::int64_t j = 0; j < g.ow; ++j) {
        float acc = 0.0f;
        for (std::int64_t p = 0; p < g.k; ++p)
          for (std::int64_t q = 0; q < g.k; ++q) acc += xp[(i * g.s + p) * g.w + j * g.s + q];
        y.value()[(nc * g.oh + i) * g.ow + j] = acc * inv;
      }
  }
  if (need)
    tape.push_backward([x, y, g, inv] {
      float* const dx_all = x.grad();
      const float* const dy = y.grad();
      for (std::int64_t nc = 0; nc < g.n * g.c; ++nc) {
        float* dx = dx_all + nc * g.h * g.w;
        for (std::int64_t i = 0; i < g.oh; ++i)
          for (std::int64_t j = 0; j < g.ow; ++j) {
            const float d = dy[(nc * g.oh + i) * g.ow + j] * inv;
            for (std::int64_t p = 0; p < g.k; ++p)
              for (std::int64_t q = 0; q < g.k; ++q) dx[(i * g.s + p) * g.w + j * g.s + q] += d;
          }
      }
    });
  return y;
}

}  // namespace ops
}  // namespace fq

#endif  // FQ_OPS_POOL_HPP_
