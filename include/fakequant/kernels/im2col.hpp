// SPDX-License-Identifier: MIT
// fakequant/kernels/im2col.hpp: the geometry of a 2-D convolution (Conv2dShape, the one type
// the int8 kernels, the integer layers and the tape's float conv2d share) and im2col, which
// unfolds the convolution windows of one NCHW image into rows — for uint8 levels and floats.
//
// For one image and one group of C channels (H x W each), kernel kh x kw, stride, padding
// (dilation 1), output positions p = oh * out_w + ow become rows of a [out_h * out_w, C*kh*kw]
// matrix with column (c * kh + i) * kw + j (the order of PyTorch's weight [Cout, C, kh, kw]):
//   col[p][(c*kh + i)*kw + j] = x[c][oh*sh - ph + i][ow*sw - pw + j],  or pad_value outside.
// pad_value is the input zero point for levels (padding contributes exactly real 0, x - z_x = 0)
// and 0 for floats. That is the layout Im2colLayout::kRowPerPosition (the int8 GEMM's A operand,
// row stride ldcol); Im2colLayout::kRowPerOffset writes the transpose, one row per kernel
// offset, col[(c*kh + i)*kw + j][p] (row stride ldcol >= out_h * out_w), the float conv2d's
// GEMM operand, whose storage order fixes the float summation order of its products.
#ifndef FQ_KERNELS_IM2COL_HPP_
#define FQ_KERNELS_IM2COL_HPP_

#include <algorithm>  // max, min
#include <cstdint>    // int64_t, uint8_t
#include <cstring>    // memcpy

#include <fakequant/base/checked.hpp>
#include <fakequant/base/error.hpp>

namespace fq {

/// The geometry of a 2-D convolution (NCHW, dilation 1).
struct Conv2dShape {
  std::int64_t batch = 1;
  std::int64_t in_channels = 1;
  std::int64_t in_h = 1;
  std::int64_t in_w = 1;
  std::int64_t out_channels = 1;
  std::int64_t kernel_h = 1;
  std::int64_t kernel_w = 1;
  std::int64_t stride_h = 1;
  std::int64_t stride_w = 1;
  std::int64_t pad_h = 0;
  std::int64_t pad_w = 0;
  std::int64_t groups = 1;

  std::int64_t out_h() const noexcept { return (in_h + 2 * pad_h - kernel_h) / stride_h + 1; }
  std::int64_t out_w() const noexcept { return (in_w + 2 * pad_w - kernel_w) / stride_w + 1; }
  /// GEMM K of one group: (in_channels / groups) * kernel_h * kernel_w.
  std::int64_t group_k() const noexcept { return in_channels / groups * kernel_h * kernel_w; }
};

namespace detail {
/// Validates a geometry: extents, kernel, stride and groups > 0, padding >= 0, groups dividing
/// both channel counts, a kernel within the padded input, and every size the kernels derive
/// from it (padded image, unfolded image, weight rows, one output image) within int64 —
/// kOutOfMemory with the operands otherwise, never a wrapped size.
inline void check_conv2d_shape(const Conv2dShape& s, const char* where) {
  FQ_CHECK(
      s.batch >= 0 && s.in_channels > 0 && s.in_h > 0 && s.in_w > 0 && s.out_channels > 0 &&
          s.kernel_h > 0 && s.kernel_w > 0 && s.stride_h > 0 && s.stride_w > 0 && s.pad_h >= 0 &&
          s.pad_w >= 0 && s.groups > 0,
      ErrorCode::kShapeMismatch,
      msg(where, ": extents, kernel, stride and groups must be > 0 and padding >= 0; got batch ",
          s.batch, ", channels ", s.in_channels, " -> ", s.out_channels, ", input ", s.in_h, "x",
          s.in_w, ", kernel ", s.kernel_h, "x", s.kernel_w, ", stride ", s.stride_h, "x",
          s.stride_w, ", padding ", s.pad_h, "x", s.pad_w, ", groups ", s.groups));
  FQ_CHECK(s.in_channels % s.groups == 0 && s.out_channels % s.groups == 0,
           ErrorCode::kShapeMismatch,
           msg(where, ": groups = ", s.groups, " must divide in_channels = ", s.in_channels,
               " and out_channels = ", s.out_channels));
  const std::int64_t ph = checked_add(s.in_h, checked_mul(2, s.pad_h, where, "the padded height"),
                                      where, "the padded height");
  const std::int64_t pw = checked_add(s.in_w, checked_mul(2, s.pad_w, where, "the padded width"),
                                      where, "the padded width");
  FQ_CHECK(ph >= s.kernel_h && pw >= s.kernel_w, ErrorCode::kShapeMismatch,
           msg(where, ": the kernel ", s.kernel_h, "x", s.kernel_w,
               " is larger than the padded input ", ph, "x", pw));
  const std::int64_t k =
      checked_mul(checked_mul(s.in_channels / s.groups, s.kernel_h, where, "the GEMM depth K"),
                  s.kernel_w, where, "the GEMM depth K");
  const std::int64_t p = checked_mul(s.out_h(), s.out_w(), where, "the output plane");
  // Rounded up as the kernels round them (positions to 16, K to 4).
  checked_mul(checked_add(p, 16, where, "the unfolded image"),
              checked_add(k, 4, where, "the unfolded image"), where, "the unfolded image");
  checked_mul(checked_mul(s.in_channels, ph, where, "the padded image"), pw, where,
              "the padded image");
  checked_mul(s.out_channels, checked_add(k, 4, where, "the weight rows"), where,
              "the weight rows");
  checked_mul(s.out_channels, p, where, "the output image");
  checked_mul(checked_mul(s.in_channels, s.in_h, where, "the input image"), s.in_w, where,
              "the input image");
}
}  // namespace detail

/// The layout of im2col's matrix (file comment).
enum class Im2colLayout { kRowPerPosition, kRowPerOffset };

namespace detail {
/// The output columns j whose input column j·stride − pad + q lies in [0, w): [*lo, *hi).
inline void im2col_valid_columns(std::int64_t q, std::int64_t stride, std::int64_t pad,
                                 std::int64_t w, std::int64_t ow, std::int64_t* lo,
                                 std::int64_t* hi) noexcept {
  // j·s − pad + q >= 0 <=> j >= ceil((pad − q) / s);  j·s − pad + q < w <=> j < ceil((w + pad − q)
  // / s)
  const auto ceil_div = [](std::int64_t a, std::int64_t b) { return a <= 0 ? 0 : (a + b - 1) / b; };
  *lo = std::min(ceil_div(pad - q, stride), ow);
  *hi = std::max(std::min(ceil_div(w + pad - q, stride), ow), *lo);
}
}  // namespace detail

/// Unfolds `channels` channels starting at x (one image, channel stride in_h * in_w) into col,
/// in `layout` with row stride ldcol (file comment). Shape validated by the caller.
template <class T>
void im2col(const T* x, std::int64_t channels, const Conv2dShape& s, T pad_value, T* col,
            std::int64_t ldcol, Im2colLayout layout = Im2colLayout::kRowPerPosition) noexcept {
  const std::int64_t oh_n = s.out_h(), ow_n = s.out_w(), hw = s.in_h * s.in_w;
  if (layout == Im2colLayout::kRowPerOffset && s.stride_h == 1 && s.stride_w == 1 &&
      ow_n == s.in_w) {
    // Stride 1, output as wide as the input ("same" padding): the rows of kernel offset (i, j)
    // are the image shifted by (i − pad_h, j − pad_w), so one memcpy per offset over the valid
    // rows, then the columns that wrapped around to a neighbouring row set to pad_value. The
    // row-by-row loop below spent more time per row than copying the demo's 14 values.
    for (std::int64_t c = 0; c < channels; ++c)
      for (std::int64_t i = 0; i < s.kernel_h; ++i)
        for (std::int64_t j = 0; j < s.kernel_w; ++j) {
          T* row = col + ((c * s.kernel_h + i) * s.kernel_w + j) * ldcol;
          std::int64_t j0, j1;
          detail::im2col_valid_columns(j, 1, s.pad_w, s.in_w, ow_n, &j0, &j1);
          // Valid output rows: 0 <= oh − pad_h + i < in_h.
          const std::int64_t h0 = std::min(std::max<std::int64_t>(s.pad_h - i, 0), oh_n);
          const std::int64_t h1 = std::max(std::min(s.in_h + s.pad_h - i, oh_n), h0);
          for (std::int64_t e = 0; e < h0 * ow_n; ++e) row[e] = pad_value;
          for (std::int64_t e = h1 * ow_n; e < oh_n * ow_n; ++e) row[e] = pad_value;
          if (h1 == h0) continue;
          // Output element e reads channel element e + shift; copy the part within [0, hw).
          const std::int64_t shift = (i - s.pad_h) * s.in_w + (j - s.pad_w);
          const std::int64_t e0 = std::max(h0 * ow_n, -shift), e1 = std::min(h1 * ow_n, hw - shift);
          if (e1 > e0)
            std::memcpy(row + e0, x + c * hw + e0 + shift,
                        static_cast<std::size_t>(e1 - e0) * sizeof(T));
          for (std::int64_t oh = h0; oh < h1; ++oh) {
            T* out = row + oh * ow_n;
            for (std::int64_t ow = 0; ow < j0; ++ow) out[ow] = pad_value;
            for (std::int64_t ow = j1; ow < ow_n; ++ow) out[ow] = pad_value;
          }
        }
    return;
  }
  if (layout == Im2colLayout::kRowPerOffset) {
    // Row by row of the output: the valid columns of each kernel offset are one range, so the
    // inner loop is a strided copy without bounds tests.
    for (std::int64_t c = 0; c < channels; ++c)
      for (std::int64_t i = 0; i < s.kernel_h; ++i)
        for (std::int64_t j = 0; j < s.kernel_w; ++j) {
          T* row = col + ((c * s.kernel_h + i) * s.kernel_w + j) * ldcol;
          std::int64_t j0, j1;
          detail::im2col_valid_columns(j, s.stride_w, s.pad_w, s.in_w, ow_n, &j0, &j1);
          for (std::int64_t oh = 0; oh < oh_n; ++oh) {
            const std::int64_t h = oh * s.stride_h - s.pad_h + i;
            T* out = row + oh * ow_n;
            if (h < 0 || h >= s.in_h) {
              for (std::int64_t ow = 0; ow < ow_n; ++ow) out[ow] = pad_value;
              continue;
            }
            const T* src = x + c * hw + h * s.in_w - s.pad_w + j;
            for (std::int64_t ow = 0; ow < j0; ++ow) out[ow] = pad_value;
            // Stride 1: one contiguous run, a memcpy (GCC -O2 does not vectorise the strided
            // loop, which was ~9x slower than a memcpy of its bytes: bm_train_ops).
            if (s.stride_w == 1 && j1 > j0)
              std::memcpy(out + j0, src + j0, static_cast<std::size_t>(j1 - j0) * sizeof(T));
            else
              for (std::int64_t ow = j0; ow < j1; ++ow) out[ow] = src[ow * s.stride_w];
            for (std::int64_t ow = j1; ow < ow_n; ++ow) out[ow] = pad_value;
          }
        }
    return;
  }
  for (std::int64_t oh = 0; oh < oh_n; ++oh)
    for (std::int64_t ow = 0; ow < ow_n; ++ow) {
      T* row = col + (oh * ow_n + ow) * ldcol;
      const std::int64_t h0 = oh * s.stride_h - s.pad_h, w0 = ow * s.stride_w - s.pad_w;
      if (h0 >= 0 && h0 + s.kernel_h <= s.in_h && w0 >= 0 && w0 + s.kernel_w <= s.in_w) {
        // The window lies inside the image (most positions): plain copies, no bounds tests.
        for (std::int64_t c = 0; c < channels; ++c)
          for (std::int64_t i = 0; i < s.kernel_h; ++i) {
            const T* src = x + c * hw + (h0 + i) * s.in_w + w0;
            for (std::int64_t j = 0; j < s.kernel_w; ++j) *row++ = src[j];
          }
        continue;
      }
      for (std::int64_t c = 0; c < channels; ++c)
        for (std::int64_t i = 0; i < s.kernel_h; ++i) {
          const std::int64_t h = h0 + i;
          const bool h_in = h >= 0 && h < s.in_h;
          const T* src = x + c * hw + (h_in ? h : 0) * s.in_w;
          for (std::int64_t j = 0; j < s.kernel_w; ++j) {
            const std::int64_t w = w0 + j;
            *row++ = h_in && w >= 0 && w < s.in_w ? src[w] : pad_value;
          }
        }
    }
}

}  // namespace fq

#endif  // FQ_KERNELS_IM2COL_HPP_
