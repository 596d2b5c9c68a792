// SPDX-License-Identifier: MIT
// fakequant/kernels/nvfp4_fake_quantize.hpp: NVFP4 fake quantization — E2M1 elements in blocks
// of 16 along the last axis, an FP8 E4M3 block scale and (two-level) an FP32 per-tensor scale:
// the scalar reference and the dispatch to the SIMD kernels (simd/mx_fake_quantize_simd.hpp).
//
// TorchAO's order of operations (torchao/prototype/mx_formats/nvfp4_tensor.py, _nvfp4_quantize
// and per_tensor_amax_to_scale), every step one float32 operation:
//   pts       = tensor_amax / 2688            (2688 = 448 * 6; dynamic, or given)
//   bs        = block_amax / 6
//   two-level:    s = bs / pts;   single-level: s = bs
//   s8        = round_E4M3(clamp(s, 2^-6, 448))   (2^-6 = E4M3's smallest normal, TorchAO's
//                                                  E4M3_EPS; NaN stays NaN)
//   total     = pts * s8 (two-level) or s8 (single-level)
//   d_i       = x_i / total                    (a division, as TorchAO)
//   P_i       = round_E2M1(clamp(d_i, -6, 6))  round to nearest even; round_to_format's
//                                              saturation is that clamp (NaN stays NaN)
//   y_i       = P_i * total                    (TorchAO's dequantization: data * (pts * s8))
//   mask_i    = |d_i| <= 6                     (false for NaN)
// A NaN total (NaN block scale or per-tensor scale) makes the block the default quiet NaN
// (+qNaN, a fixed bit pattern; TorchAO's NaN there carries an operand-order-dependent payload).
// Gradient: dx = dy * mask; the block and per-tensor scales are constants (no gradient through
// the amax). TorchAO's autograd, run through _nvfp4_quantize, would also differentiate
// through amax / 6 (its _Float8Round is straight-through): a difference in the backward only.
// Where this differs from TorchAO: a dynamic per-tensor scale that is below FLT_MIN (an
// all-zero tensor, or amax < 2688 * 2^-126) is replaced by 1, so y = 0 there instead of
// TorchAO's 0 / 0 = NaN; otherwise bit-exact. A NaN or Inf anywhere makes pts non-finite and
// the whole output NaN in the dynamic two-level mode (as TorchAO); per block otherwise.
#ifndef FQ_KERNELS_NVFP4_FAKE_QUANTIZE_HPP_
#define FQ_KERNELS_NVFP4_FAKE_QUANTIZE_HPP_

#include <cmath>    // fabs, isnan
#include <cstdint>  // int64_t, uint32_t, uint64_t
#include <limits>   // numeric_limits
#include <vector>   // vector

#include <fakequant/base/config.hpp>
#include <fakequant/base/error.hpp>
#include <fakequant/core/bit_writer.hpp>
#include <fakequant/core/group_layout.hpp>
#include <fakequant/core/mask.hpp>
#include <fakequant/core/tensor_view.hpp>
#include <fakequant/format/minifloat.hpp>
#include <fakequant/kernels/mx_fake_quantize.hpp>
#include <fakequant/simd/arch.hpp>
#include <fakequant/simd/mx_fake_quantize_simd.hpp>

namespace fq {

/// NVFP4's constants: E2M1 max, E4M3 max, E4M3's smallest normal (TorchAO's E4M3_EPS).
inline constexpr float kNvFp4ElemMax = 6.0f;
inline constexpr float kNvFp4ScaleMax = 448.0f;
inline constexpr float kNvFp4ScaleMin = 0.015625f;
inline constexpr int kNvFp4BlockSize = 16;

/// TorchAO's per_tensor_amax_to_scale: amax / (448 * 6).
inline float nvfp4_per_tensor_scale(float amax) noexcept { return amax / 2688.0f; }

/// The E4M3 block scale of a block with amax `amax`: round_E4M3(clamp(amax / 6 [/ pts])).
inline float nvfp4_block_scale(float amax, float pts, bool two_level) noexcept {
  float s = amax / kNvFp4ElemMax;
  if (two_level) s = s / pts;
  if (!std::isnan(s))
    s = s < kNvFp4ScaleMin ? kNvFp4ScaleMin : (s > kNvFp4ScaleMax ? kNvFp4ScaleMax : s);
  return round_to_format<FloatE4M3, FpSaturate>(s);
}

namespace detail {

/// The dynamic per-tensor scale of x (file comment: below FLT_MIN -> 1).
inline float nvfp4_dynamic_pts(std::uint32_t amax_bits) noexcept {
  const float pts = nvfp4_per_tensor_scale(bits_float(amax_bits));
  return pts < std::numeric_limits<float>::min() ? 1.0f : pts;  // NaN stays NaN
}

/// The scalar reference of the NVFP4 blocks (file comment).
inline void nvfp4_blocks_scalar(const float* x, float* y, std::int64_t nblocks, std::int64_t B,
                                float* bscales, bool compute, float pts, bool two_level,
                                BitWriter* bw) noexcept {
  MaskBits bits(bw);
  for (std::int64_t blk = 0; blk < nblocks; ++blk) {
    const float* xb = x + blk * B;
    float* yb = y + blk * B;
    if (compute)
      bscales[blk] = nvfp4_block_scale(bits_float(abs_max_bits_scalar(xb, B)), pts, two_level);
    const float total = two_level ? pts * bscales[blk] : bscales[blk];
    if (std::isnan(total)) {  // the canonical NaN: P * NaN would carry either payload
      for (std::int64_t i = 0; i < B; ++i) {
        yb[i] = std::numeric_limits<float>::quiet_NaN();
        bits.push(false);
      }
      continue;
    }
    for (std::int64_t i = 0; i < B; ++i) {
      const float d = xb[i] / total;
      yb[i] = round_to_format<FloatE2M1, FpSaturate>(d) * total;
      bits.push(std::fabs(d) <= kNvFp4ElemMax);
    }
  }
  bits.flush();
}

}  // namespace detail

/// What nvfp4_fake_quantize computes and keeps.
struct NvFp4State {
  bool two_level = true;            ///< pts * E4M3 block scale (true) or the block scale alone
  bool dynamic_pts = true;          ///< two-level: pts from x's amax at this call (else `pts`)
  bool dynamic_blocks = true;       ///< block scales from x at this call (else `block_scales`)
  float pts = 1.0f;                 ///< the per-tensor scale used (written when dynamic_pts)
  std::vector<float> block_scales;  ///< E4M3 values, row-major [..., K / 16]
};

/// Fake-quantizes x into y in NVFP4 (file comment), with blocks of `block_size` (16 for NVFP4)
/// along the last axis. Reads and writes `st` (scales) as its flags say. y may be x itself.
/// @return the block layout.
template <class Arch = DefaultArch>
GroupLayout nvfp4_fake_quantize(TensorView<const float> x, TensorView<float> y, NvFp4State& st,
                                Mask* mask = nullptr, Isa path = Isa::kAuto,
                                std::int64_t block_size = kNvFp4BlockSize) {
  constexpr const char* kWhere = "nvfp4_fake_quantize";
  const bool simd = detail::use_simd_kernels<Arch>(path, kWhere);
  detail::check_contiguous_io(x, y, kWhere);
  const GroupLayout L = detail::block_layout(x, block_size, kWhere);
  const std::int64_t nblocks = L.groups();
  if (st.dynamic_blocks)
    st.block_scales.resize(static_cast<std::size_t>(nblocks));
  else
    FQ_CHECK(static_cast<std::int64_t>(st.block_scales.size()) == nblocks,
             ErrorCode::kParamCountMismatch,
             detail::msg(kWhere, ": ", st.block_scales.size(), " block scales for ", nblocks,
                         " blocks"));
  std::uint64_t* words =
      mask ? mask->prepare(x.rank(), x.shape(), detail::row_major_order()) : nullptr;
  detail::BitWriter writer(words, 0);
  detail::BitWriter* bw = mask ? &writer : nullptr;
  const std::int64_t n = x.numel();
  bool use_simd = false;
#if FQ_HAS_XSIMD
  if constexpr (kSimdArch<Arch>)
    use_simd = simd && block_size % static_cast<std::int64_t>(xsimd::batch<float, Arch>::size) == 0;
#endif
  (void)simd;
  if (!st.two_level) {
    st.pts = 1.0f;
  } else if (st.dynamic_pts) {
    std::uint32_t amax_bits = 0;
#if FQ_HAS_XSIMD
    if constexpr (kSimdArch<Arch>)
      if (use_simd) amax_bits = simd::abs_max_bits<Arch>(x.data(), n);
#endif
    if (!use_simd) amax_bits = detail::abs_max_bits_scalar(x.data(), n);
    st.pts = detail::nvfp4_dynamic_pts(amax_bits);
  }
  if (nblocks == 0 || n == 0) return L;
  if (!use_simd) {
    detail::nvfp4_blocks_scalar(x.data(), y.data(), nblocks, block_size, st.block_scales.data(),
                                st.dynamic_blocks, st.pts, st.two_level, bw);
  }
#if FQ_HAS_XSIMD
  if constexpr (kSimdArch<Arch>) {
    if (use_simd) {
      // The block's total scale (computing and keeping the block scale when dynamic).
      auto total_of = [&](std::int64_t blk, std::int64_t B) {
        const float* xb = x.data() + blk * B;
        float& bs = st.block_scales[static_cast<std::size_t>(blk)];
        if (st.dynamic_blocks)
          bs = nvfp4_block_scale(detail::bits_float(simd::abs_max_bits_block<Arch>(xb, B)), st.pts,
                                 st.two_level);
        return st.two_level ? st.pts * bs : bs;
      };
      if (block_size == 16 && 16 % xsimd::batch<float, Arch>::size == 0) {
        // NVFP4's 16: a batch width of blocks at a time (scales computed lane-wise), then
        // unrolled blocks, 4 per mask word assembled in a register.
        const std::int64_t grouped = simd::nvfp4_blocks_grouped<16, Arch>(
            x.data(), y.data(), nblocks, st.block_scales.data(), st.dynamic_blocks, st.pts,
            st.two_level, words);
        for (std::int64_t blk = grouped; blk < nblocks; blk += 4) {
          std::uint64_t word = 0;
          for (std::int64_t j = 0; j < 4 && blk + j < nblocks; ++j) {
            const float total = total_of(blk + j, 16);
            word |= simd::nvfp4_block_fixed<16, Arch>(x.data() + (blk + j) * 16,
                                                      y.data() + (blk + j) * 16, total)
                    << (16 * j);
          }
          if (words) words[blk / 4] = word;
        }
        return L;
      }
      for (std::int64_t blk = 0; blk < nblocks; ++blk) {
        const float total = total_of(blk, block_size);
        simd::nvfp4_block<Arch>(x.data() + blk * block_size, y.data() + blk * block_size,
                                block_size, total, bw);
      }
    }
  }
#endif
  if (bw) bw->flush();
  return L;
}

}  // namespace fq

#endif  // FQ_KERNELS_NVFP4_FAKE_QUANTIZE_HPP_
