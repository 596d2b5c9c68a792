// SPDX-License-Identifier: MIT
// fakequant/simd/fake_quantize_simd.hpp: fake-quant run kernels over xsimd::batch<T, Arch>.
//
// Each kernel performs, lane by lane, exactly the operations of the scalar reference in
// core/numerics.hpp (same IEEE operations in the same order, no FMA), so the results are
// bit-identical to it; tails are finished by the scalar reference itself. Only contiguous
// runs come here. Mask bits come from the comparison lanes and are appended with BitWriter.
#ifndef FQ_SIMD_FAKE_QUANTIZE_SIMD_HPP_
#define FQ_SIMD_FAKE_QUANTIZE_SIMD_HPP_

#include <fakequant/config.hpp>

#if FQ_HAS_XSIMD
#include <cstddef>      // ptrdiff_t
#include <cstdint>      // int64_t, int32_t
#include <type_traits>  // is_same

#include <fakequant/core/numerics.hpp>
#include <fakequant/detail/bit_writer.hpp>
#include <fakequant/detail/fake_quantize_scalar.hpp>
#include <fakequant/simd/xsimd_compat.hpp>

// GCC 12 reports its own AVX-512 intrinsics (_mm512_undefined_*) as maybe-uninitialized when
// they are inlined here (GCC bug 105593); the kernels read no uninitialized data.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace fq {
namespace simd {

/// round(v) for a batch, per the Rounding policy.
template <class Rounding, class T, class A>
FQ_INLINE xsimd::batch<T, A> round_batch(const xsimd::batch<T, A>& v) noexcept {
  if constexpr (std::is_same<Rounding, RoundHalfEven>::value)
    return xsimd::nearbyint(v);
  else if constexpr (std::is_same<Rounding, RoundHalfAway>::value)
    return xsimd::round(v);
  else if constexpr (std::is_same<Rounding, RoundHalfUp>::value)
    return xsimd::floor(no_contract(v) + xsimd::batch<T, A>(T(0.5)));
  else
    return xsimd::floor(v);
}

/// The element formula on one batch; `in` receives the mask lanes.
template <class N, class T, class A>
FQ_INLINE xsimd::batch<T, A> fake_quant_batch(
    const xsimd::batch<T, A>& x, const xsimd::batch<T, A>& mult, const xsimd::batch<T, A>& scale,
    const xsimd::batch<T, A>& zero, const xsimd::batch<T, A>& qmin, const xsimd::batch<T, A>& qmax,
    std::uint64_t& in) noexcept {
  using B = xsimd::batch<T, A>;
  B v;
  if constexpr (std::is_same<typename N::scale_apply, MulByInverse>::value)
    v = x * mult;
  else
    v = x / mult;
  const B q = round_batch<typename N::rounding>(v) + zero;
  // x86's max(q, qmin) returns its second operand when q is NaN, so the clamp itself maps NaN
  // to qmin, as the scalar reference does.
  constexpr bool kX86 = std::is_base_of<xsimd::sse2, A>::value;
  const B lower = xsimd::max(q, qmin);
  B c;
#if XSIMD_WITH_AVX512F
  if constexpr (std::is_base_of<xsimd::avx512f, A>::value && std::is_same<T, float>::value &&
                !detail::kSaturates<N, T>) {
    // q >= 2^63 (and NaN) go to qmin: the upper clamp runs only in the lanes below 2^63 and
    // the others take qmin, one masked min instead of a min and a blend.
    const __mmask16 finite = _mm512_cmp_ps_mask(q, B(detail::kInt64Limit<float>), _CMP_LT_OQ);
    c = _mm512_mask_min_ps(qmin, finite, lower, qmax);
  } else
#endif
  {
    c = xsimd::min(lower, qmax);
    if constexpr (detail::kSaturates<N, T>) {
      if constexpr (!kX86) c = xsimd::select(q == q, c, qmin);
    } else {
      c = xsimd::select(q < B(detail::kInt64Limit<T>), c, qmin);
    }
  }
  // qmin <= q <= qmax exactly when the clamp left q unchanged (false for NaN and +-Inf):
  // one comparison instead of two and a mask AND.
  in = to_bits(c == q);
  return (c - zero) * scale;
}

/// Forward over the whole batches of a contiguous run with constant parameters (integer zero
/// point); returns how many elements it did (the caller finishes the tail with the scalar
/// reference). With a mask, 64 / W batches fill one 64-bit word, handed to the BitWriter at
/// once: one writer update per 64 elements keeps its serial dependency off the per-batch path.
template <class N, class A, class T>
FQ_INLINE std::int64_t fq_run_batches(
    const T* x, T* y, std::int64_t n, const xsimd::batch<T, A>& mult,
    const xsimd::batch<T, A>& scale, const xsimd::batch<T, A>& zero, const xsimd::batch<T, A>& qmin,
    const xsimd::batch<T, A>& qmax, detail::BitWriter* bw) noexcept {
  using B = xsimd::batch<T, A>;
  constexpr std::int64_t W = static_cast<std::int64_t>(B::size);
  static_assert(64 % W == 0, "fq_run: the batch width must divide 64");
  constexpr std::int64_t kPerWord = 64 / W;
  std::int64_t i = 0;
  std::uint64_t in = 0;
  if (bw) {
    for (; i + 64 <= n; i += 64) {
      std::uint64_t word = 0;
      for (std::int64_t k = 0; k < kPerWord; ++k) {
        fake_quant_batch<N>(B::load_unaligned(x + i + k * W), mult, scale, zero, qmin, qmax, in)
            .store_unaligned(y + i + k * W);
        word |= in << (k * W);
      }
      bw->put(word, 64);
    }
    for (; i + W <= n; i += W) {
      fake_quant_batch<N>(B::load_unaligned(x + i), mult, scale, zero, qmin, qmax, in)
          .store_unaligned(y + i);
      bw->put(in, static_cast<int>(W));
    }
  } else {
    for (; i + W <= n; i += W)
      fake_quant_batch<N>(B::load_unaligned(x + i), mult, scale, zero, qmin, qmax, in)
          .store_unaligned(y + i);
  }
  return i;
}

/// Forward over a contiguous run with constant parameters (integer zero point).
template <class N, class A, class T>
void fq_run(const T* x, T* y, std::int64_t n, const detail::ElementParams<T>& p,
            detail::BitWriter* writer) noexcept {
  using B = xsimd::batch<T, A>;
  // A local copy of the writer, so that its state can live in registers (the mask stores
  // might alias the caller's object); written back at the end.
  detail::BitWriter local = writer ? *writer : detail::BitWriter(nullptr, 0);
  detail::BitWriter* bw = writer ? &local : nullptr;
  const std::int64_t i =
      fq_run_batches<N, A>(x, y, n, B(p.mult), B(p.scale), B(p.zero), B(p.qmin), B(p.qmax), bw);
  if (i < n) detail::fq_run_scalar<N, false>(x + i, 1, y + i, 1, n - i, p, bw);
  if (writer) *writer = local;
}

/// Forward over `rows` contiguous rows of n elements, row c (channel c) starting at
/// x + c * x_row and y + c * y_row, visited in order (float tensors, int32 zero points). The
/// per-channel constants (f32(1/s), z as float) are computed a block of channels at a time,
/// once per call, so a short row costs three broadcasts instead of a full set-up.
template <class N, class A>
void fq_rows(const float* x, std::ptrdiff_t x_row, float* y, std::ptrdiff_t y_row,
             std::int64_t rows, std::int64_t n, const float* scale, const std::int32_t* zero_point,
             const QuantRange& r, detail::BitWriter* writer) noexcept {
  using B = xsimd::batch<float, A>;
  using BI = xsimd::batch<std::int32_t, A>;
  detail::BitWriter local = writer ? *writer : detail::BitWriter(nullptr, 0);  // as fq_run
  detail::BitWriter* bw = writer ? &local : nullptr;
  constexpr std::int64_t W = static_cast<std::int64_t>(B::size);
  constexpr std::int64_t kBlock = 64;
  constexpr bool kInverse = std::is_same<typename N::scale_apply, MulByInverse>::value;
  alignas(64) float mult[kBlock];
  alignas(64) float zero[kBlock];
  const auto qmin_f = static_cast<float>(r.quant_min), qmax_f = static_cast<float>(r.quant_max);
  const B qmin(qmin_f), qmax(qmax_f);
  for (std::int64_t c0 = 0; c0 < rows; c0 += kBlock) {
    const std::int64_t m = rows - c0 < kBlock ? rows - c0 : kBlock;
    const float* s = scale + c0;
    // As make_element_params, W channels at a time (an IEEE division and an int32 -> float
    // conversion are correctly rounded in every lane, so the batches change no bit).
    std::int64_t j = 0;
    for (; j + W <= m; j += W) {
      const B sb = B::load_unaligned(s + j);
      (kInverse ? B(1.0f) / sb : sb).store_aligned(mult + j);
      xsimd::to_float(BI::load_unaligned(zero_point + c0 + j)).store_aligned(zero + j);
    }
    for (; j < m; ++j) {
      mult[j] = kInverse ? 1.0f / s[j] : s[j];
      zero[j] = static_cast<float>(zero_point[c0 + j]);
    }
    if (n % W == 0 && n < 64) {
      // Short rows of whole batches: no tails, and the mask bits of consecutive rows are
      // gathered into one 64-bit word (W divides 64) that reaches the BitWriter when full. A
      // block of symmetric channels (all zero points 0) keeps z = +0 in a register instead of
      // broadcasting it per row: the same value, so the same bits.
      auto short_rows = [&](auto symmetric) {
        std::uint64_t word = 0, in = 0;
        int filled = 0;
        for (std::int64_t c = 0; c < m; ++c) {
          const float* xc = x + (c0 + c) * x_row;
          float* yc = y + (c0 + c) * y_row;
          const B mc(mult[c]), sc(s[c]);
          const B zc = decltype(symmetric)::value ? B(0.0f) : B(zero[c]);
          for (std::int64_t i = 0; i < n; i += W) {
            fake_quant_batch<N>(B::load_unaligned(xc + i), mc, sc, zc, qmin, qmax, in)
                .store_unaligned(yc + i);
            if (bw) {
              word |= in << filled;
              filled += static_cast<int>(W);
              if (filled == 64) {
                bw->put(word, 64);
                word = 0;
                filled = 0;
              }
            }
          }
        }
        if (bw && filled) bw->put(word, filled);
      };
      std::int32_t any_zero_point = 0;
      for (std::int64_t c = 0; c < m; ++c) any_zero_point |= zero_point[c0 + c];
      if (any_zero_point == 0)
        short_rows(std::true_type{});
      else
        short_rows(std::false_type{});
      continue;
    }
    for (std::int64_t c = 0; c < m; ++c) {
      const float* xc = x + (c0 + c) * x_row;
      float* yc = y + (c0 + c) * y_row;
      const std::int64_t i =
          fq_run_batches<N, A>(xc, yc, n, B(mult[c]), B(s[c]), B(zero[c]), qmin, qmax, bw);
      if (i < n) {
        const detail::ElementParams<float> p{mult[c], s[c], zero[c], qmin_f, qmax_f};
        detail::fq_run_scalar<N, false>(xc + i, 1, yc + i, 1, n - i, p, bw);
      }
    }
  }
  if (writer) *writer = local;
}

/// Forward over a contiguous run walking the channel axis: element i uses scale[i],
/// zero_point[i] (float tensors, int32 zero points).
template <class N, class A>
void fq_run_varying(const float* x, float* y, std::int64_t n, const float* scale,
                    const std::int32_t* zero_point, const QuantRange& r,
                    detail::BitWriter* bw) noexcept {
  using B = xsimd::batch<float, A>;
  using BI = xsimd::batch<std::int32_t, A>;
  constexpr std::int64_t W = static_cast<std::int64_t>(B::size);
  const B qmin(float(r.quant_min)), qmax(float(r.quant_max)), one(1.0f);
  std::int64_t i = 0;
  std::uint64_t in = 0;
  for (; i + W <= n; i += W) {
    const B s = B::load_unaligned(scale + i);
    const B mult = std::is_same<typename N::scale_apply, MulByInverse>::value ? one / s : s;
    const B zero = xsimd::to_float(BI::load_unaligned(zero_point + i));
    fake_quant_batch<N>(B::load_unaligned(x + i), mult, s, zero, qmin, qmax, in)
        .store_unaligned(y + i);
    if (bw) bw->put(in, static_cast<int>(W));
  }
  detail::fq_run_scalar_varying<N>(x + i, 1, y + i, 1, n - i, scale + i, zero_point + i, r, bw);
}

/// Masked STE backward over a contiguous run: dx = dy * bit. The mask is read a 64-bit word
/// at a time, as the forward wrote it.
template <class A, class T>
void ste_run(const T* dy, T* dx, std::int64_t n, detail::BitReader& br) noexcept {
  using B = xsimd::batch<T, A>;
  constexpr std::int64_t W = static_cast<std::int64_t>(B::size);
  static_assert(64 % W == 0 && W < 64, "ste_run: the batch width must divide 64 and be < 64");
  constexpr std::uint64_t kLanes = (std::uint64_t{1} << W) - 1;
  std::int64_t i = 0;
  for (; i + 64 <= n; i += 64) {
    const std::uint64_t word = br.get(64);
    for (std::int64_t k = 0; k < 64 / W; ++k)
      (B::load_unaligned(dy + i + k * W) * ones_from_bits<T, A>((word >> (k * W)) & kLanes))
          .store_unaligned(dx + i + k * W);
  }
  for (; i + W <= n; i += W)
    (B::load_unaligned(dy + i) * ones_from_bits<T, A>(br.get(static_cast<int>(W))))
        .store_unaligned(dx + i);
  detail::ste_run_scalar(dy + i, 1, dx + i, 1, n - i, br);
}

}  // namespace simd
}  // namespace fq

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

#endif  // FQ_HAS_XSIMD
#endif  // FQ_SIMD_FAKE_QUANTIZE_SIMD_HPP_
