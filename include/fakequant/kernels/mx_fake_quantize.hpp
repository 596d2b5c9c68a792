// SPDX-License-Identifier: MIT
// fakequant/kernels/mx_fake_quantize.hpp: OCP Microscaling (MX v1.0) fake quantization — the
// scalar reference and the dispatch to the SIMD kernels (simd/mx_fake_quantize_simd.hpp).
//
// Blocks: B consecutive elements along the last axis (B = 32 in the spec); the last axis must be
// a multiple of B (fq::Error kShapeMismatch otherwise, as TorchAO's to_mx asserts). The scales
// form the row-major array [..., K / B] (core/group_layout.hpp). Per block, with element
// format E (format/e8m0.hpp: MxElement) and E8M0 mode M:
//   amax  = max |V_i|                         (NaN or Inf in the block: b = 0xFF)
//   b     = e8m0_from_amax<E, M>(amax)        X = 2^(b - 127)   (dynamic), or the stored b (frozen)
//   P_i   = round_E(V_i * 2^(127 - b))        round to nearest even, saturating to +-elem_max
//   y_i   = P_i * X                           (one rounding; exact unless it underflows)
//   mask  = |V_i * 2^(127 - b)| <= elem_max   (false for NaN): the STE passes the gradient there
// A NaN scale (b = 0xFF) makes the whole block the default quiet NaN (+qNaN, a fixed bit
// pattern: a product of two NaNs would carry either one's payload, by operand order) and its
// mask 0. A NaN element otherwise gives
// NaN (quieted) at its place only if the block's b is given (frozen); dynamically it makes
// its block NaN. Gradient (backward, via fq::fake_quantize_backward<MaskedSte>): dx = dy * mask;
// the shared scale is treated as a constant (no gradient through amax), as TorchAO's MX QAT.
// Differences from TorchAO: format/e8m0.hpp (scale clamp) and the MXINT8 element it lacks.
#ifndef FQ_KERNELS_MX_FAKE_QUANTIZE_HPP_
#define FQ_KERNELS_MX_FAKE_QUANTIZE_HPP_

#include <cmath>    // fabs
#include <cstdint>  // int64_t, uint8_t, uint32_t, uint64_t
#include <limits>   // numeric_limits
#include <vector>   // vector

#include <fakequant/base/config.hpp>
#include <fakequant/base/error.hpp>
#include <fakequant/core/bit_writer.hpp>
#include <fakequant/core/group_layout.hpp>
#include <fakequant/core/mask.hpp>
#include <fakequant/core/tensor_view.hpp>
#include <fakequant/format/e8m0.hpp>
#include <fakequant/simd/arch.hpp>
#include <fakequant/simd/mx_fake_quantize_simd.hpp>

namespace fq {
namespace detail {

/// Collects mask bits and appends them 64 at a time (scalar kernels).
class MaskBits {
 public:
  explicit MaskBits(BitWriter* bw) noexcept : bw_(bw) {}
  FQ_INLINE void push(bool bit) noexcept {
    if (!bw_) return;
    word_ |= static_cast<std::uint64_t>(bit) << count_;
    if (++count_ == 64) flush();
  }
  void flush() noexcept {
    if (bw_ && count_) bw_->put(word_, count_);
    word_ = 0;
    count_ = 0;
  }

 private:
  BitWriter* bw_;
  std::uint64_t word_ = 0;
  int count_ = 0;
};

/// max |x[i]| over a run, as the bits of the float (sign cleared; NaN above Inf).
inline std::uint32_t abs_max_bits_scalar(const float* x, std::int64_t n) noexcept {
  std::uint32_t m = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    const std::uint32_t u = float_bits(x[i]) & 0x7FFFFFFFu;
    m = u > m ? u : m;
  }
  return m;
}

/// The scalar reference of simd::mx_blocks (see the file comment).
template <class E, class M>
void mx_blocks_scalar(const float* x, float* y, std::int64_t nblocks, std::int64_t B,
                      std::uint8_t* exps, bool compute, BitWriter* bw) noexcept {
  using T = MxElement<E>;
  MaskBits bits(bw);
  for (std::int64_t blk = 0; blk < nblocks; ++blk) {
    const float* xb = x + blk * B;
    float* yb = y + blk * B;
    if (compute)
      exps[blk] =
          e8m0_from_amax_bits<M::kMode>(abs_max_bits_scalar(xb, B), T::kEmax, T::kManBits, T::kMax);
    if (exps[blk] == kE8m0NaN) {  // the canonical NaN: x * NaN would carry either payload
      for (std::int64_t i = 0; i < B; ++i) {
        yb[i] = std::numeric_limits<float>::quiet_NaN();
        bits.push(false);
      }
      continue;
    }
    const float r = e8m0_reciprocal(exps[blk]), s = e8m0_to_float(exps[blk]);
    for (std::int64_t i = 0; i < B; ++i) {
      const float v = xb[i] * r;
      yb[i] = T::round(v) * s;
      bits.push(std::fabs(v) <= T::kMax);
    }
  }
  bits.flush();
}

/// The block layout of an MX or NVFP4 tensor (blocks along the last axis, B must divide it).
inline GroupLayout block_layout(const TensorView<const float>& x, std::int64_t block_size,
                                const char* where) {
  return make_group_layout(x.shape().data(), x.rank(), -1, block_size, GroupTail::kMustDivide,
                           where);
}

}  // namespace detail

/// Fake-quantizes x into y in MX blocks of `block_size` along the last axis (file comment).
/// @tparam E the element format (FloatE4M3, FloatE5M2, FloatE2M3, FloatE3M2, FloatE2M1,
///         MxInt8Element); M the E8M0 mode (E8m0Floor: the spec).
/// @param exponents the E8M0 codes, one per block (row-major [..., K / B]): written (resized)
///        when compute_exponents, else read (its size must equal the block count; codes as
///        given, 0xFF giving NaN blocks).
/// @param mask if not null, receives the STE mask. @param path Isa::kAuto or Isa::kScalar.
/// @return the block layout. y may be x itself (in place).
template <class E, class M = E8m0Floor, class Arch = DefaultArch>
GroupLayout mx_fake_quantize(TensorView<const float> x, TensorView<float> y,
                             std::int64_t block_size, std::vector<std::uint8_t>& exponents,
                             bool compute_exponents, Mask* mask = nullptr, Isa path = Isa::kAuto) {
  static_assert(is_mx_element<E>::value,
                "mx_fake_quantize: E must be an MX element format (fq::FloatE4M3, FloatE5M2, "
                "FloatE2M3, FloatE3M2, FloatE2M1 or MxInt8Element).");
  static_assert(is_e8m0_mode<M>::value,
                "mx_fake_quantize: M must be fq::E8m0Floor, E8m0Ceil, E8m0Even or E8m0Rceil.");
  constexpr const char* kWhere = "mx_fake_quantize";
  const bool simd = detail::use_simd_kernels<Arch>(path, kWhere);
  detail::check_contiguous_io(x, y, kWhere);
  const GroupLayout L = detail::block_layout(x, block_size, kWhere);
  const std::int64_t nblocks = L.groups();
  if (compute_exponents)
    exponents.resize(static_cast<std::size_t>(nblocks));
  else
    FQ_CHECK(
        static_cast<std::int64_t>(exponents.size()) == nblocks, ErrorCode::kParamCountMismatch,
        detail::msg(kWhere, ": ", exponents.size(), " scale exponents for ", nblocks, " blocks"));
  std::uint64_t* words =
      mask ? mask->prepare(x.rank(), x.shape(), detail::row_major_order()) : nullptr;
  detail::BitWriter writer(words, 0);
  detail::BitWriter* bw = mask ? &writer : nullptr;
  if (nblocks == 0 || L.group_size == 0) return L;
  bool done = false;
#if FQ_HAS_XSIMD
  if constexpr (kSimdArch<Arch>) {
    constexpr std::int64_t W = static_cast<std::int64_t>(xsimd::batch<float, Arch>::size);
    std::uint64_t* w = mask ? words : nullptr;
    if (simd && block_size == 32 && 32 % W == 0) {
      simd::mx_blocks_grouped<E, M, 32, Arch>(x.data(), y.data(), nblocks, exponents.data(),
                                              compute_exponents, w);
      return L;
    }
    if (simd && block_size == 16 && 16 % W == 0) {
      simd::mx_blocks_grouped<E, M, 16, Arch>(x.data(), y.data(), nblocks, exponents.data(),
                                              compute_exponents, w);
      return L;
    }
    if (simd && block_size % W == 0) {
      simd::mx_blocks<E, M, Arch>(x.data(), y.data(), nblocks, block_size, exponents.data(),
                                  compute_exponents, bw);
      done = true;
    }
  }
#endif
  (void)simd;
  if (!done)
    detail::mx_blocks_scalar<E, M>(x.data(), y.data(), nblocks, block_size, exponents.data(),
                                   compute_exponents, bw);
  if (bw) bw->flush();
  return L;
}

}  // namespace fq

#endif  // FQ_KERNELS_MX_FAKE_QUANTIZE_HPP_
