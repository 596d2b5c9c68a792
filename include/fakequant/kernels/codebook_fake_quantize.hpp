// SPDX-License-Identifier: MIT
// fakequant/kernels/codebook_fake_quantize.hpp: codebook (non-uniform) fake quantization of a
// contiguous tensor — block-wise absmax scaling along the last axis (NF4: blocks of 64, as
// QLoRA / bitsandbytes), or one fixed per-tensor scale — the public entry points; they choose
// between the scalar reference and the SIMD kernels of Arch (simd/arch.hpp), bit-identical.
//
// Forward, per block b of G consecutive elements of a row (core/group_layout.hpp, axis -1):
//     s_b   = max |x| over the block's finite elements (dynamic), or the given scale
//     y     = L[#{ i : x * f32(1/s_b) > t[i] }] * s_b      (format/codebook.hpp)
//     mask  = L[0] * s_b <= x <= L[n-1] * s_b               (0 for NaN and +-Inf)
// NaN -> NaN (quieted); +-Inf clamp to the end levels; an all-zero block (s_b = 0) gives +-0.
// Backward (straight-through estimator, the quantizer's): dx = dy * mask.
// Differences from bitsandbytes (kQuantizeBlockwise + kDequantizeBlockwise, NF4): the same
// x * (1.0f / absmax) and `>` decision tree; its absmax also ignores NaN (fmaxf) but not Inf
// (an Inf makes the whole block NaN there); an all-zero block decodes to -0 there (0 * inf =
// NaN takes code 0 = -1.0, times absmax 0), +0 here; bitsandbytes blocks the flattened tensor,
// fq blocks each row of the last axis (the same blocks when G divides the last extent).
#ifndef FQ_KERNELS_CODEBOOK_FAKE_QUANTIZE_HPP_
#define FQ_KERNELS_CODEBOOK_FAKE_QUANTIZE_HPP_

#include <cmath>        // isfinite
#include <cstdint>      // int64_t, uint64_t
#include <type_traits>  // conditional_t

#include <fakequant/base/config.hpp>
#include <fakequant/base/error.hpp>
#include <fakequant/core/bit_writer.hpp>
#include <fakequant/core/group_layout.hpp>
#include <fakequant/core/mask.hpp>
#include <fakequant/core/tensor_view.hpp>
#include <fakequant/format/codebook.hpp>
#include <fakequant/simd/arch.hpp>
#include <fakequant/simd/codebook_fake_quantize_simd.hpp>

namespace fq {
namespace detail {

/// Runs blocks with the SIMD kernels of Arch (simd) or the scalar reference.
template <class Arch>
class CodebookRunner {
 public:
  CodebookRunner(const Codebook& book, bool simd)
      : book_(book),
        simd_(simd && kSimdArch<Arch>)
#if FQ_HAS_XSIMD
        ,
        kernel_(book)
#endif
  {
  }

  /// One block: s = its finite absmax if `dynamic` (else the given scale), then the fake
  /// quant of x[0, n) into y.
  void block(const float* x, float* y, std::int64_t n, float& s, bool dynamic,
             BitWriter* bw) const noexcept {
#if FQ_HAS_XSIMD
    if constexpr (kSimdArch<Arch>) {
      if (simd_) {
        kernel_.block(x, y, n, s, dynamic, bw);
        return;
      }
    }
#endif
    if (dynamic) s = finite_absmax(x, n);
    run(x, y, n, codebook_scale(book_, s), bw);
  }

  void run(const float* x, float* y, std::int64_t n, const CodebookScale& p,
           BitWriter* bw) const noexcept {
#if FQ_HAS_XSIMD
    if constexpr (kSimdArch<Arch>) {
      if (simd_) {
        kernel_.run(x, y, n, p, bw);
        return;
      }
    }
#endif
    for (std::int64_t i = 0; i < n; ++i) {
      bool in = false;
      y[i] = codebook_fake_quant(book_, x[i], p, in);
      if (bw) bw->put_bit(in);
    }
  }

 private:
  const Codebook& book_;
  bool simd_ = false;
#if FQ_HAS_XSIMD
  struct None {
    explicit None(const Codebook&) noexcept {}
  };
  std::conditional_t<kSimdArch<Arch>, simd::CodebookKernel<Arch>, None> kernel_;
#endif
};

inline void check_codebook_scale(float s, std::int64_t block, const char* where) {
  FQ_CHECK(std::isfinite(s) && s > 0.0f, ErrorCode::kInvalidScale,
           msg(where, ": block ", block, " has scale (amax) ", s,
               "; a zero or negative block amax (or NaN/Inf) is not a valid scale"));
}

}  // namespace detail

/// The block layout of x for codebook quantization: blocks of `block_size` along the last
/// axis (rank >= 1), `tail` as in core/group_layout.hpp.
template <class T>
GroupLayout codebook_block_layout(const TensorView<T>& x, std::int64_t block_size, GroupTail tail,
                                  const char* where = "codebook_block_layout") {
  return detail::make_group_layout(x.shape().data(), x.rank(), -1, block_size, tail, where);
}

/// Block-wise codebook fake quantization (file comment) of contiguous x into y (y may be x).
/// @param layout codebook_block_layout(x, ...); must match x.
/// @param scales layout.groups() floats: written with each block's absmax when `dynamic`,
///   else read (each must be finite and > 0: kInvalidScale).
/// @param mask if not null, receives the STE mask. @param path Isa::kAuto or Isa::kScalar.
template <class Arch = DefaultArch>
void codebook_fake_quantize_blocks(TensorView<const float> x, TensorView<float> y, Mask* mask,
                                   const Codebook& book, const GroupLayout& layout, float* scales,
                                   bool dynamic, Isa path = Isa::kAuto) {
  constexpr const char* kWhere = "codebook_fake_quantize_blocks";
  detail::check_contiguous_io(x, y, kWhere);
  FQ_CHECK(layout.numel() == x.numel() && layout.inner == 1, ErrorCode::kShapeMismatch,
           detail::msg(kWhere, ": the block layout (", layout.numel(),
                       " elements, blocks along the last axis) does not match x (", x.numel(),
                       " elements)"));
  const std::int64_t groups = layout.groups();
  if (!dynamic)
    for (std::int64_t g = 0; g < groups; ++g) detail::check_codebook_scale(scales[g], g, kWhere);
  const detail::CodebookRunner<Arch> runner(book, detail::use_simd_kernels<Arch>(path, kWhere));
  std::uint64_t* words =
      mask ? mask->prepare(x.rank(), x.shape(), detail::row_major_order()) : nullptr;
  detail::BitWriter bw(words, 0);
  detail::BitWriter* pbw = mask ? &bw : nullptr;
  const float* xp = x.data();
  float* yp = y.data();
  for (std::int64_t o = 0; o < layout.outer; ++o) {
    for (std::int64_t j = 0; j < layout.groups_per_axis; ++j) {
      const std::int64_t off = o * layout.axis_len + j * layout.group_size;
      const std::int64_t len = layout.group_len(j);
      const std::int64_t g = o * layout.groups_per_axis + j;
      runner.block(xp + off, yp + off, len, scales[g], dynamic, pbw);
    }
  }
  if (mask) bw.flush();
}

/// Codebook fake quantization of contiguous x into y (y may be x) with one scale (finite,
/// > 0): y = L[nearest(x * f32(1/scale))] * scale; mask as the file comment.
template <class Arch = DefaultArch>
void codebook_fake_quantize_per_tensor(TensorView<const float> x, TensorView<float> y, Mask* mask,
                                       const Codebook& book, float scale, Isa path = Isa::kAuto) {
  constexpr const char* kWhere = "codebook_fake_quantize_per_tensor";
  detail::check_contiguous_io(x, y, kWhere);
  detail::check_codebook_scale(scale, 0, kWhere);
  const detail::CodebookRunner<Arch> runner(book, detail::use_simd_kernels<Arch>(path, kWhere));
  std::uint64_t* words =
      mask ? mask->prepare(x.rank(), x.shape(), detail::row_major_order()) : nullptr;
  detail::BitWriter bw(words, 0);
  runner.run(x.data(), y.data(), x.numel(), detail::codebook_scale(book, scale),
             mask ? &bw : nullptr);
  if (mask) bw.flush();
}

}  // namespace fq

#endif  // FQ_KERNELS_CODEBOOK_FAKE_QUANTIZE_HPP_
