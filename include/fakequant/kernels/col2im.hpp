// SPDX-License-Identifier: MIT
// fakequant/kernels/col2im.hpp: col2im_add, the adjoint of the float im2col in
// Im2colLayout::kRowPerOffset (kernels/im2col.hpp): the backward of conv2d's unfolding.
//
//   dx[c, y, x] += Σ_{(p, q), (i, j) : i·s_h − pad_h + p = y, j·s_w − pad_w + q = x}
//                  dcols[(c·KH + p)·KW + q, i·OW + j]
// for one image, dcols [C·KH·KW, OH·OW] with row stride ld. Each dx element receives its terms
// in ascending kernel offset (p, q) — one term per offset at most — so the sum has one order,
// the scalar reference's (offset by offset, output row by output row), on every path.
// Paths: the scalar loop (ScalarArch; any stride), and for stride_w = 1 an xsimd kernel that
// walks dx instead: a vector of dx row y holds its running sum in a register while the terms of
// every offset are added, each a plain load of the dcols row shifted by q − pad_w with the
// lanes outside [0, OW) left unchanged by a select (not + 0: −0 + +0 would be +0). The scalar
// loop's rows are OW floats (14 in the demo's second conv) added into dx 9 times over; the
// kernel reads and writes each dx vector once. Bit-identical (tests/kernels/col2im.test.cpp).
#ifndef FQ_KERNELS_COL2IM_HPP_
#define FQ_KERNELS_COL2IM_HPP_

#include <algorithm>  // max, min
#include <cstdint>    // int64_t

#include <fakequant/base/checked.hpp>
#include <fakequant/base/error.hpp>
#include <fakequant/kernels/im2col.hpp>
#include <fakequant/simd/arch.hpp>

namespace fq {

namespace detail {
/// The scalar reference of col2im_add (file comment): kernel offsets (c, p, q) in order, then
/// output rows, then columns.
inline void col2im_add_scalar(const float* dcols, std::int64_t ld, const Conv2dShape& g,
                              float* dx) noexcept {
  const std::int64_t oh = g.out_h(), ow = g.out_w();
  for (std::int64_t c = 0; c < g.in_channels; ++c)
    for (std::int64_t p = 0; p < g.kernel_h; ++p)
      for (std::int64_t q = 0; q < g.kernel_w; ++q) {
        const float* row = dcols + ((c * g.kernel_h + p) * g.kernel_w + q) * ld;
        std::int64_t j0, j1;
        im2col_valid_columns(q, g.stride_w, g.pad_w, g.in_w, ow, &j0, &j1);
        float* dxc = dx + c * g.in_h * g.in_w;
        for (std::int64_t i = 0; i < oh; ++i) {
          const std::int64_t yy = i * g.stride_h - g.pad_h + p;
          if (yy < 0 || yy >= g.in_h) continue;
          // Output column j reads input column j·stride − pad + q, valid for j in [j0, j1).
          const std::int64_t x0 = yy * g.in_w + j0 * g.stride_w - g.pad_w + q;
          const float* d = row + i * ow;
          if (g.stride_w == 1) {  // contiguous: the compiler's vector loop (the same adds)
            float* dr = dxc + x0;
            for (std::int64_t j = 0; j < j1 - j0; ++j) dr[j] += d[j0 + j];
          } else {
            for (std::int64_t j = j0; j < j1; ++j) dxc[x0 + (j - j0) * g.stride_w] += d[j];
          }
        }
      }
}

#if FQ_HAS_XSIMD
/// The xsimd kernel of col2im_add for stride_w = 1 (file comment). Loads stay inside dcols
/// (up to the last row's OH·OW-th float) and dx's C·H·W floats: vectors that would cross
/// either edge go through a scalar copy (the first and last few).
template <class Arch>
void col2im_add_rows(const float* dcols, std::int64_t ld, const Conv2dShape& g, float* dx) {
  using B = xsimd::batch<float, Arch>;
  constexpr std::int64_t kW = static_cast<std::int64_t>(B::size);
  const std::int64_t oh = g.out_h(), ow = g.out_w(), kk = g.kernel_h * g.kernel_w;
  const std::int64_t readable = (g.in_channels * kk - 1) * ld + oh * ow;  // dcols' floats
  float* const dx_end = dx + g.in_channels * g.in_h * g.in_w;
  alignas(64) float lane[B::size], tmp[B::size];
  for (std::int64_t l = 0; l < kW; ++l) lane[l] = static_cast<float>(l);
  const B iota = B::load_aligned(lane);
  for (std::int64_t c = 0; c < g.in_channels; ++c)
    for (std::int64_t y = 0; y < g.in_h; ++y) {
      float* const dxr = dx + (c * g.in_h + y) * g.in_w;
      for (std::int64_t x0 = 0; x0 < g.in_w; x0 += kW) {
        const std::int64_t n = std::min(kW, g.in_w - x0);  // dx lanes of this vector
        float* const out = dxr + x0;
        // Lanes past n belong to the next rows (of this channel or the next): loaded and
        // stored back unchanged, before their own turn; past dx's end the vector goes through
        // tmp.
        const bool whole = dx_end - out >= kW;
        B acc;
        if (whole) {
          acc = B::load_unaligned(out);
        } else {
          std::fill_n(tmp, kW, 0.0f);
          std::copy_n(out, n, tmp);
          acc = B::load_aligned(tmp);
        }
        for (std::int64_t p = 0; p < g.kernel_h; ++p) {
          const std::int64_t t = y + g.pad_h - p;  // = i · stride_h
          if (t < 0 || t % g.stride_h != 0 || t / g.stride_h >= oh) continue;
          const std::int64_t i = t / g.stride_h;
          for (std::int64_t q = 0; q < g.kernel_w; ++q) {
            // Lane l takes dcols column j = x0 + l + pad_w − q, valid for 0 <= j < OW, l < n.
            const std::int64_t j = x0 + g.pad_w - q;
            const std::int64_t l0 = std::max<std::int64_t>(0, -j), l1 = std::min(n, ow - j);
            if (l0 >= l1) continue;
            const std::int64_t at = (c * kk + p * g.kernel_w + q) * ld + i * ow + j;
            B v;
            if (at >= 0 && readable - at >= kW) {
              v = B::load_unaligned(dcols + at);
            } else {  // valid lanes are inside: at + l0 >= 0, at + l1 <= readable
              std::fill_n(tmp, kW, 0.0f);
              for (std::int64_t l = l0; l < l1; ++l) tmp[l] = dcols[at + l];
              v = B::load_aligned(tmp);
            }
            const auto valid =
                (iota >= B(static_cast<float>(l0))) & (iota < B(static_cast<float>(l1)));
            acc = xsimd::select(valid, acc + v, acc);
          }
        }
        if (whole) {
          acc.store_unaligned(out);
        } else {
          acc.store_aligned(tmp);
          std::copy_n(tmp, n, out);
        }
      }
    }
}
#endif
}  // namespace detail

namespace detail {
/// col2im_add without its checks (conv2d's backward, on a geometry conv2d_shape checked).
template <class Arch>
void col2im_add_unchecked(const float* dcols, std::int64_t ld, const Conv2dShape& g, float* dx) {
#if FQ_HAS_XSIMD
  if constexpr (kSimdArch<Arch>) {
    if (g.stride_w == 1) {
      col2im_add_rows<Arch>(dcols, ld, g, dx);
      return;
    }
  }
#endif
  col2im_add_scalar(dcols, ld, g, dx);
}
}  // namespace detail

/// dx (one image, C·H·W floats) += the adjoint of im2col (Im2colLayout::kRowPerOffset) of dcols
/// [C·KH·KW, OH·OW], row stride ld >= OH·OW (file comment). Arch: the instruction set (the
/// scalar loop for ScalarArch or stride_w != 1). A bad geometry (detail::check_conv2d_shape), a
/// row stride below OH·OW or null buffers are fq::Error; so is a dcols beyond int64 elements.
template <class Arch = DefaultArch>
void col2im_add(const float* dcols, std::int64_t ld, const Conv2dShape& g, float* dx) {
  constexpr const char* kWhere = "col2im_add";
  detail::check_conv2d_shape(g, kWhere);
  const std::int64_t p = g.out_h() * g.out_w();  // within int64: checked above
  FQ_CHECK(ld >= p, ErrorCode::kInvalidArgument,
           detail::msg(kWhere, ": the row stride ", ld, " is below OH·OW = ", p));
  const std::int64_t rows = detail::checked_mul(
      detail::checked_mul(g.in_channels, g.kernel_h, kWhere, "the unfolded rows"), g.kernel_w,
      kWhere, "the unfolded rows");
  detail::checked_add(detail::checked_mul(rows - 1, ld, kWhere, "dcols"), p, kWhere, "dcols");
  FQ_CHECK(dcols != nullptr && dx != nullptr, ErrorCode::kInvalidArgument,
           detail::msg(kWhere, ": dcols or dx is null"));
  detail::col2im_add_unchecked<Arch>(dcols, ld, g, dx);
}

}  // namespace fq

#endif  // FQ_KERNELS_COL2IM_HPP_
