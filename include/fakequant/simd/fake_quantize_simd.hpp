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
  B c = xsimd::min(xsimd::max(q, qmin), qmax);
  // qmin <= q <= qmax exactly when the clamp left q unchanged (false for NaN and +-Inf):
  // one comparison instead of two and a mask AND.
  in = to_bits(c == q);
  if constexpr (detail::kSaturates<N, T>)
    c = xsimd::select(q == q, c, qmin);
  else
    c = xsimd::select(q < B(detail::kInt64Limit<T>), c, qmin);
  return (c - zero) * scale;
}

/// Forward over a contiguous run with constant parameters (integer zero point). With a mask,
/// 64 / W batches fill one 64-bit word, handed to the BitWriter at once: one writer update
/// per 64 elements keeps its serial dependency off the per-batch path.
template <class N, class A, class T>
void fq_run(const T* x, T* y, std::int64_t n, const detail::ElementParams<T>& p,
            detail::BitWriter* bw) noexcept {
  using B = xsimd::batch<T, A>;
  constexpr std::int64_t W = static_cast<std::int64_t>(B::size);
  static_assert(64 % W == 0, "fq_run: the batch width must divide 64");
  constexpr std::int64_t kPerWord = 64 / W;
  const B mult(p.mult), scale(p.scale), zero(p.zero), qmin(p.qmin), qmax(p.qmax);
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
  detail::fq_run_scalar<N, false>(x + i, 1, y + i, 1, n - i, p, bw);
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
