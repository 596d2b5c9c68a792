// SPDX-License-Identifier: MIT
// fakequant/simd/fake_quantize_simd.hpp: fake-quant run kernels over xsimd::batch<T, Arch>.
//
// Each kernel performs, lane by lane, exactly the operations of the scalar reference in
// scheme/numerics.hpp (same IEEE operations in the same order, no FMA), so the results are
// bit-identical to it, NaN payloads and quietness included; tails are finished by the scalar
// reference itself. Float tensors come here only on float-exact ranges (float_exact_range);
// float zero points take the scalar path. Only contiguous
// runs come here. Mask bits come from the comparison lanes and are appended with BitWriter.
#ifndef FQ_SIMD_FAKE_QUANTIZE_SIMD_HPP_
#define FQ_SIMD_FAKE_QUANTIZE_SIMD_HPP_

#include <fakequant/base/config.hpp>

#if FQ_HAS_XSIMD
#include <cmath>        // signbit
#include <cstddef>      // ptrdiff_t
#include <cstdint>      // int64_t, int32_t
#include <type_traits>  // conjunction, is_same

#include <fakequant/core/bit_writer.hpp>
#include <fakequant/core/fake_quantize_scalar.hpp>
#include <fakequant/scheme/numerics.hpp>
#include <fakequant/scheme/range.hpp>
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

/// clamp(q, qmin, qmax) with the overflow rule of N (scheme/numerics.hpp: clamp_level).
template <class N, class T, class A>
FQ_INLINE xsimd::batch<T, A> clamp_level_batch(const xsimd::batch<T, A>& q,
                                               const xsimd::batch<T, A>& qmin,
                                               const xsimd::batch<T, A>& qmax) noexcept {
  using B = xsimd::batch<T, A>;
  // x86's max(q, qmin) returns its second operand when q is NaN, so the clamp itself maps NaN
  // to qmin, as the scalar reference does.
  constexpr bool kX86 = std::is_base_of<xsimd::sse2, A>::value;
  const B lower = xsimd::max(q, qmin);
#if XSIMD_WITH_AVX512F
  if constexpr (std::is_base_of<xsimd::avx512f, A>::value && std::is_same<T, float>::value &&
                !detail::kSaturates<N, T>) {
    // q >= 2^63 (and NaN) go to qmin: the upper clamp runs only in the lanes below 2^63 and
    // the others take qmin, one masked min instead of a min and a blend.
    const __mmask16 finite = _mm512_cmp_ps_mask(q, B(detail::kInt64Limit<float>), _CMP_LT_OQ);
    return _mm512_mask_min_ps(qmin, finite, lower, qmax);
  } else
#endif
  {
    const B c = xsimd::min(lower, qmax);
    if constexpr (detail::kSaturates<N, T>) {
      if constexpr (!kX86) return xsimd::select(q == q, c, qmin);
      return c;
    } else {
      return xsimd::select(q < B(detail::kInt64Limit<T>), c, qmin);
    }
  }
}

/// The element formula on one batch; `in` receives the mask lanes. kZeroIsZero: the caller
/// guarantees zero == +0, and the final subtraction is skipped: c - (+0) is c for every c the
/// clamp can produce (q = round(v) + 0 is never -0, and c is never NaN), so no bit changes.
template <class N, bool kZeroIsZero = false, class T, class A>
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
  const B c = clamp_level_batch<N>(q, qmin, qmax);
  // qmin <= q <= qmax exactly when the clamp left q unchanged (false for NaN and +-Inf):
  // one comparison instead of two and a mask AND.
  in = to_bits(c == q);
  if constexpr (kZeroIsZero)
    return c * scale;
  else
    return (c - zero) * scale;
}

/// True if fake_quant_batch_shifted may replace fake_quant_batch: float data, round half to
/// even, and a range within +-2^20 (the caller checks it with shifted_range_ok).
template <class N, class T>
inline constexpr bool kShiftedRounding =
    std::conjunction<std::is_same<T, float>,
                     std::is_same<typename N::rounding, RoundHalfEven>>::value;

inline bool shifted_range_ok(const QuantRange& r) noexcept {
  return r.quant_min >= -(std::int64_t{1} << 20) && r.quant_max <= (std::int64_t{1} << 20);
}

/// r = (v + 1.5 * 2^23) - 1.5 * 2^23: round half to even for |v| < 2^22 (the sum's ulp is 1),
/// never -0; for |v| >= 2^22 within 2 of v (so beyond a range within +-2^21, and >= 2^63
/// exactly when v is). Needs the default rounding mode, as the scalar reference's nearbyint.
template <class A>
FQ_INLINE xsimd::batch<float, A> shifted_level(const xsimd::batch<float, A>& v) noexcept {
  const xsimd::batch<float, A> magic(12582912.0f);  // 1.5 * 2^23
  return (no_contract(v) + magic) - magic;          // v is a product: no fused multiply-add
}

/// fake_quant_batch from v = x * f32(1/s) (or x / s) with one operation fewer, bit for bit the
/// same y and mask (checked over all 2^32 floats for several ranges and zero points):
///   r = shifted_level(v)
///   c = clamp(r, qmin - z, qmax - z)   the clamp shifted by z (exact integers within +-2^21;
///                                      r >= 2^63 exactly when round(v) + z >= 2^63)
///   y = c * s;  mask = (c == r)        as (clamp(round(v) + z) - z) * s and its mask
/// lo = qmin - z and hi = qmax - z, computed in float.
template <class N, class A>
FQ_INLINE xsimd::batch<float, A> fake_quant_batch_shifted(const xsimd::batch<float, A>& v,
                                                          const xsimd::batch<float, A>& scale,
                                                          const xsimd::batch<float, A>& lo,
                                                          const xsimd::batch<float, A>& hi,
                                                          std::uint64_t& in) noexcept {
  using B = xsimd::batch<float, A>;
  const B r = shifted_level(v);
  const B c = clamp_level_batch<N>(r, lo, hi);
  in = to_bits(c == r);
  return c * scale;
}

/// v = x * mult or x / mult, per the ScaleApply policy of N.
template <class N, class T, class A>
FQ_INLINE xsimd::batch<T, A> apply_mult(const xsimd::batch<T, A>& x,
                                        const xsimd::batch<T, A>& mult) noexcept {
  if constexpr (std::is_same<typename N::scale_apply, MulByInverse>::value)
    return x * mult;
  else
    return x / mult;
}

/// Forward over the whole batches of a contiguous run; `fq(x_batch, in)` returns the y batch
/// and sets the mask lanes. Returns how many elements it did (the caller finishes the tail
/// with the scalar reference). With a mask, 64 / W batches fill one 64-bit word, handed to
/// the BitWriter at once: one writer update per 64 elements keeps its serial dependency off
/// the per-batch path. Software-pipelined by one batch: each batch is loaded before the
/// previous one is stored. Otherwise, with x and y a few bytes apart modulo 4 KiB
/// (consecutive heap blocks are 16 bytes apart), every load would wait on the previous
/// stores, whose addresses match it in the low 12 bits (4K aliasing).
template <class A, class T, class F>
FQ_INLINE std::int64_t fq_run_batches(const T* x, T* y, std::int64_t n, F&& fq,
                                      detail::BitWriter& bw, bool with_mask) noexcept {
  using B = xsimd::batch<T, A>;
  constexpr std::int64_t W = static_cast<std::int64_t>(B::size);
  static_assert(64 % W == 0, "fq_run: the batch width must divide 64");
  constexpr std::int64_t kPerWord = 64 / W;
  if (n < W) return 0;
  std::int64_t i = 0;
  std::uint64_t in = 0;
  B next = B::load_unaligned(x);
  // The batch at i is in `next`; returns its y after loading the batch at i + W (if any:
  // `ahead` true says it is, so that the loops below test it once per word, not per batch).
  auto step = [&](std::int64_t at, bool ahead) {
    const B cur = next;
    if (ahead || at + 2 * W <= n) next = B::load_unaligned(x + at + W);
    return fq(cur, in);
  };
  if (with_mask) {
    auto word_at = [&](std::int64_t at, bool ahead) {
      std::uint64_t word = 0;
      for (std::int64_t k = 0; k < kPerWord; ++k) {
        step(at + k * W, ahead).store_unaligned(y + at + k * W);
        word |= in << (k * W);
      }
      bw.put(word, 64);
    };
    for (; i + 64 + W <= n; i += 64) word_at(i, true);
    for (; i + 64 <= n; i += 64) word_at(i, false);
    for (; i + W <= n; i += W) {
      step(i, false).store_unaligned(y + i);
      bw.put(in, static_cast<int>(W));
    }
  } else {
    for (; i + 2 * W <= n; i += W) step(i, true).store_unaligned(y + i);
    for (; i + W <= n; i += W) step(i, false).store_unaligned(y + i);
  }
  return i;
}

/// True if a zero point is +0, the value that lets kernels skip the final subtraction.
template <class T>
FQ_INLINE bool is_positive_zero(T z) noexcept {
  return z == T(0) && !std::signbit(z);
}

/// Forward over a contiguous run with constant parameters (integer zero point).
template <class N, class A, class T>
void fq_run(const T* x, T* y, std::int64_t n, const detail::ElementParams<T>& p,
            detail::BitWriter* writer, const QuantRange& r) noexcept {
  using B = xsimd::batch<T, A>;
  // A local copy of the writer, used by reference only, so that its state can live in
  // registers (the mask stores might alias the caller's object); written back at the end.
  const bool with_mask = writer != nullptr;
  detail::BitWriter local = with_mask ? *writer : detail::BitWriter(nullptr, 0);
  const B mult(p.mult), scale(p.scale), zero(p.zero), qmin(p.qmin), qmax(p.qmax);
  std::int64_t i = -1;
  if constexpr (kShiftedRounding<N, T>) {
    if (shifted_range_ok(r)) {
      const B lo(p.qmin - p.zero), hi(p.qmax - p.zero);
      i = fq_run_batches<A>(
          x, y, n,
          [&](const B& xb, std::uint64_t& in) {
            return fake_quant_batch_shifted<N>(apply_mult<N>(xb, mult), scale, lo, hi, in);
          },
          local, with_mask);
    }
  }
  if (i < 0 && is_positive_zero(p.zero)) {
    i = fq_run_batches<A>(
        x, y, n,
        [&](const B& xb, std::uint64_t& in) {
          return fake_quant_batch<N, true>(xb, mult, scale, zero, qmin, qmax, in);
        },
        local, with_mask);
  } else if (i < 0) {
    i = fq_run_batches<A>(
        x, y, n,
        [&](const B& xb, std::uint64_t& in) {
          return fake_quant_batch<N>(xb, mult, scale, zero, qmin, qmax, in);
        },
        local, with_mask);
  }
  if (with_mask) {
    detail::BitWriter tail = local;  // a copy: taking local's address would pin it to memory
    detail::fq_run_scalar<A, N, false>(x + i, 1, y + i, 1, n - i, p, &tail);
    *writer = tail;
  } else {
    detail::fq_run_scalar<A, N, false>(x + i, 1, y + i, 1, n - i, p, nullptr);
  }
}

/// Forward over `m` rows whose length n is a whole number of batches and divides 64 (n = W,
/// 2W, 4W, ...), so that each 64-bit mask word holds 64 / n whole rows: the 64 / W batches
/// of a word are unrolled, each with the broadcast constants of its row, and the word is
/// assembled in a register and stored to `words` (if not null) whole; a last partial word
/// is stored with its unused high bits zero. Row c uses mult[c], scale[c], zero[c] and starts
/// at x + c * x_row, y + c * y_row.
template <class N, class A, bool kZeroIsZero>
FQ_INLINE void fq_short_rows(const float* x, std::ptrdiff_t x_row, float* y, std::ptrdiff_t y_row,
                             std::int64_t m, std::int64_t n, const float* mult, const float* scale,
                             const float* zero, const xsimd::batch<float, A>& qmin,
                             const xsimd::batch<float, A>& qmax, std::uint64_t* words) noexcept {
  using B = xsimd::batch<float, A>;
  constexpr std::int64_t W = static_cast<std::int64_t>(B::size);
  constexpr std::int64_t kPerWord = 64 / W;
  int shift = 0;  // n = W << shift: batch k of a word is batch (k & last) of row k >> shift
  while ((W << shift) < n) ++shift;
  const std::int64_t last = (std::int64_t{1} << shift) - 1;
  const std::int64_t rows_per_word = 64 / n;
  auto row_batch = [&](std::int64_t row, std::int64_t i, std::uint64_t& in) {
    const B zc = kZeroIsZero ? B(0.0f) : B(zero[row]);
    fake_quant_batch<N, kZeroIsZero>(B::load_unaligned(x + row * x_row + i), B(mult[row]),
                                     B(scale[row]), zc, qmin, qmax, in)
        .store_unaligned(y + row * y_row + i);
  };
  std::int64_t c = 0;
  std::uint64_t in = 0;
  if (n == W) {  // the same with shift = 0, spelled out: fewer live registers
    const float* xp = x;
    float* yp = y;
    for (; c + kPerWord <= m; c += kPerWord) {
      std::uint64_t word = 0;
      for (std::int64_t k = 0; k < kPerWord; ++k, xp += x_row, yp += y_row) {
        const B zc = kZeroIsZero ? B(0.0f) : B(zero[c + k]);
        fake_quant_batch<N, kZeroIsZero>(B::load_unaligned(xp), B(mult[c + k]), B(scale[c + k]), zc,
                                         qmin, qmax, in)
            .store_unaligned(yp);
        word |= in << (k * W);
      }
      if (words) *words++ = word;
    }
  }
  for (; c + rows_per_word <= m; c += rows_per_word) {
    std::uint64_t word = 0;
    for (std::int64_t k = 0; k < kPerWord; ++k) {
      row_batch(c + (k >> shift), (k & last) * W, in);
      word |= in << (k * W);
    }
    if (words) *words++ = word;
  }
  std::uint64_t word = 0;  // the rows of a last, partial word
  int filled = 0;
  for (; c < m; ++c) {
    for (std::int64_t i = 0; i < n; i += W, filled += static_cast<int>(W)) {
      row_batch(c, i, in);
      word |= in << filled;
    }
  }
  if (words && filled) *words = word;
}

/// Forward over `rows` contiguous rows of n elements, row c (channel c) starting at
/// x + c * x_row and y + c * y_row, visited in order (float tensors, int32 zero points); the
/// mask bits go to `words` from bit 0 (every word written), if not null. The per-channel
/// constants (f32(1/s), z as float) are computed a block of channels at a time, once per
/// call, so a short row costs a few broadcasts instead of a full set-up. A block of
/// symmetric channels (all zero points 0) skips the subtraction of z (fake_quant_batch).
/// Not inlined: inside the caller's run loop GCC 12 runs out of registers and spills.
template <class N, class A>
[[gnu::noinline]] void fq_rows(const float* x, std::ptrdiff_t x_row, float* y, std::ptrdiff_t y_row,
                               std::int64_t rows, std::int64_t n, const float* scale,
                               const std::int32_t* zero_point, const QuantRange& r,
                               std::uint64_t* words) noexcept {
  using B = xsimd::batch<float, A>;
  using BI = xsimd::batch<std::int32_t, A>;
  const bool with_mask = words != nullptr;
  detail::BitWriter writer(words, 0);  // for rows that are not short; used by reference only
  constexpr std::int64_t W = static_cast<std::int64_t>(B::size);
  constexpr std::int64_t kBlock = 64;
  constexpr bool kInverse = std::is_same<typename N::scale_apply, MulByInverse>::value;
  alignas(64) float mult[kBlock];
  alignas(64) float zero[kBlock];
  const auto qmin_f = static_cast<float>(r.quant_min), qmax_f = static_cast<float>(r.quant_max);
  const B qmin(qmin_f), qmax(qmax_f);
  const bool short_rows = n % W == 0 && 64 % n == 0;
  for (std::int64_t c0 = 0; c0 < rows; c0 += kBlock) {
    const std::int64_t m = rows - c0 < kBlock ? rows - c0 : kBlock;
    const float* s = scale + c0;
    // As make_element_params, W channels at a time (an IEEE division and an int32 -> float
    // conversion are correctly rounded in every lane, so the batches change no bit).
    std::int64_t j = 0;
    xsimd::batch_bool<std::int32_t, A> nonzero(false);
    for (; j + W <= m; j += W) {
      const B sb = B::load_unaligned(s + j);
      (kInverse ? B(1.0f) / sb : sb).store_aligned(mult + j);
      const BI zb = BI::load_unaligned(zero_point + c0 + j);
      nonzero = nonzero | (zb != BI(0));
      xsimd::to_float(zb).store_aligned(zero + j);
    }
    bool symmetric = !xsimd::any(nonzero);
    for (; j < m; ++j) {
      mult[j] = kInverse ? 1.0f / s[j] : s[j];
      zero[j] = static_cast<float>(zero_point[c0 + j]);
      symmetric = symmetric && zero_point[c0 + j] == 0;
    }
    const float* xb = x + c0 * x_row;
    float* yb = y + c0 * y_row;
    if (short_rows) {
      // A block of kBlock rows is n whole mask words.
      std::uint64_t* wb = with_mask ? words + (c0 / kBlock) * n : nullptr;
      if (symmetric)
        fq_short_rows<N, A, true>(xb, x_row, yb, y_row, m, n, mult, s, zero, qmin, qmax, wb);
      else
        fq_short_rows<N, A, false>(xb, x_row, yb, y_row, m, n, mult, s, zero, qmin, qmax, wb);
      continue;
    }
    for (std::int64_t c = 0; c < m; ++c) {
      const float* xc = xb + c * x_row;
      float* yc = yb + c * y_row;
      const B mc(mult[c]), sc(s[c]), zc(zero[c]);
      const std::int64_t i =
          symmetric ? fq_run_batches<A>(
                          xc, yc, n,
                          [&](const B& xv, std::uint64_t& in) {
                            return fake_quant_batch<N, true>(xv, mc, sc, zc, qmin, qmax, in);
                          },
                          writer, with_mask)
                    : fq_run_batches<A>(
                          xc, yc, n,
                          [&](const B& xv, std::uint64_t& in) {
                            return fake_quant_batch<N>(xv, mc, sc, zc, qmin, qmax, in);
                          },
                          writer, with_mask);
      if (i < n) {
        const detail::ElementParams<float> p{mult[c], s[c], zero[c], qmin_f, qmax_f};
        detail::BitWriter tail = writer;  // a copy: taking writer's address would pin it
        detail::fq_run_scalar<A, N, false>(xc + i, 1, yc + i, 1, n - i, p,
                                           with_mask ? &tail : nullptr);
        writer = tail;
      }
    }
  }
  if (with_mask && !short_rows) writer.flush();
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
  detail::fq_run_scalar_varying<A, N>(x + i, 1, y + i, 1, n - i, scale + i, zero_point + i, r, bw);
}

/// Masked STE backward over a contiguous run: dx = dy * bit, a real multiplication as the
/// scalar reference's mask_multiply (the 0/1 factor is hidden from the optimiser, which would
/// fold dy * 1 into dy and leave a signaling NaN unquieted). The mask is read a 64-bit word
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
      (B::load_unaligned(dy + i + k * W) *
       no_contract(ones_from_bits<T, A>((word >> (k * W)) & kLanes)))
          .store_unaligned(dx + i + k * W);
  }
  for (; i + W <= n; i += W)
    (B::load_unaligned(dy + i) * no_contract(ones_from_bits<T, A>(br.get(static_cast<int>(W)))))
        .store_unaligned(dx + i);
  detail::ste_run_scalar<A>(dy + i, 1, dx + i, 1, n - i, br);
}

}  // namespace simd
}  // namespace fq

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

#endif  // FQ_HAS_XSIMD
#endif  // FQ_SIMD_FAKE_QUANTIZE_SIMD_HPP_
