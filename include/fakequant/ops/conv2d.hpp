// SPDX-License-Identifier: MIT
// fakequant/ops/conv2d.hpp: conv2d — 2-D convolution (NCHW) on a Tape, by im2col + Eigen GEMM.
//
// Forward: x [N, C, H, W], w [O, C/groups, KH, KW], b [O] (optional) ->
//   y [N, O, OH, OW], OH = (H + 2·pad_h − KH) / stride_h + 1 (likewise OW),
//   y[n, o, i, j] = b[o] + Σ_{c∈group(o), p, q} w[o, c, p, q] · x[n, c, i·s_h − pad_h + p, j·s_w −
//   pad_w + q] (zero outside the image). The geometry is the kernels' fq::Conv2dShape and the
//   unfolding their im2col (kernels/im2col.hpp, one row per kernel offset: cols_n [C·KH·KW, P],
//   P = OH·OW); image by image, one GEMM per group W_g [O/g, K] · cols_n,g [K, P] into y's
//   [O, P] block of the image (the bias added after: the GEMM's sum, then one rounding).
// Gradient: dW_g += Σ_n dY_n,g · cols_n,gᵀ; dcols_n,g = W_gᵀ · dY_n,g scattered back (col2im)
//   into dx_n; db[o] += Σ dy[:, o, :, :]. cols_n is unfolded again in the backward (cheaper than
//   keeping the batch's: it stays in cache). The batch runs in chunks of images
//   (impl::kConvChunks) with partial dW and db summed in chunk order: the same bits for any
//   thread count.
#ifndef FQ_OPS_CONV2D_HPP_
#define FQ_OPS_CONV2D_HPP_

#include <cstdint>  // int64_t

#include <fakequant/base/checked.hpp>
#include <fakequant/base/config.hpp>
#include <fakequant/kernels/im2col.hpp>
#include <fakequant/tape/tape.hpp>

namespace fq {
namespace ops {

/// Stride, zero padding and groups of a convolution.
struct Conv2dOptions {
  std::int64_t stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0, groups = 1;
  static Conv2dOptions make(std::int64_t stride, std::int64_t pad, std::int64_t groups = 1) {
    return {stride, stride, pad, pad, groups};
  }
};

/// The geometry of conv2d(x, w, opt), batch included, checked: bad options are
/// kInvalidArgument, mismatched shapes kShapeMismatch, sizes beyond int64 (of one image:
/// fq::detail::check_conv2d_shape; of the batch's unfolded input and output) kOutOfMemory.
inline Conv2dShape conv2d_shape(const Shape& x, const Shape& w, const Conv2dOptions& opt,
                                const char* op) {
  FQ_CHECK(x.rank == 4 && w.rank == 4, ErrorCode::kShapeMismatch,
           fq::detail::msg(op, ": x ", x.str(), " and w ", w.str(), " must be NCHW and OIHW"));
  FQ_CHECK(
      opt.stride_h > 0 && opt.stride_w > 0 && opt.pad_h >= 0 && opt.pad_w >= 0 && opt.groups > 0,
      ErrorCode::kInvalidArgument,
      fq::detail::msg(op, ": strides and groups must be > 0, padding >= 0; got stride [",
                      opt.stride_h, ", ", opt.stride_w, "], padding [", opt.pad_h, ", ", opt.pad_w,
                      "], groups ", opt.groups));
  FQ_CHECK(x[1] % opt.groups == 0 && w[0] % opt.groups == 0 && w[1] == x[1] / opt.groups,
           ErrorCode::kShapeMismatch,
           fq::detail::msg(op, ": with ", opt.groups, " groups, x ", x.str(), " needs w [O, ",
                           x[1] / opt.groups, ", KH, KW] with O divisible by the groups; got ",
                           w.str()));
  const Conv2dShape s{x[0], x[1],         x[2],         x[3],      w[0],      w[2],
                      w[3], opt.stride_h, opt.stride_w, opt.pad_h, opt.pad_w, opt.groups};
  fq::detail::check_conv2d_shape(s, op);
  // Bounds on the buffers: y [N, O, OH, OW] and the batch's unfolded input (conv2d itself
  // unfolds a chunk of images at a time).
  using fq::detail::checked_mul;
  const std::int64_t np = checked_mul(s.batch, s.out_h() * s.out_w(), op, "the output pixel count");
  checked_mul(s.group_k() * s.groups, np, op, "the unfolded input (im2col) size");
  checked_mul(s.out_channels, np, op, "the output size");
  return s;
}

namespace impl {
/// conv2d works on the batch in this many chunks of consecutive images (fewer for a smaller
/// batch), one thread each: every chunk has its own unfolding scratch and its own partial dW
/// and db, added in chunk order at the end, so the result does not depend on the thread count.
constexpr std::int64_t kConvChunks = 16;

/// True when im2col would copy the image unchanged (1×1 kernel, stride 1, no padding): the
/// image is its own unfolded matrix [C, H·W].
inline bool conv_is_pointwise(const Conv2dShape& g) noexcept {
  return g.kernel_h == 1 && g.kernel_w == 1 && g.stride_h == 1 && g.stride_w == 1 && g.pad_h == 0 &&
         g.pad_w == 0;
}

/// The adjoint of im2col for one image: dx[c, y, x] += every dcols [C·KH·KW, OH·OW] entry
/// (row stride ld) that im2col read from it. The loop order fixes the summation order of each
/// dx element: kernel offsets (c, p, q) in order, then output rows.
inline void col2im_add(const float* dcols, std::int64_t ld, const Conv2dShape& g, float* dx) {
  const std::int64_t oh = g.out_h(), ow = g.out_w();
  for (std::int64_t c = 0; c < g.in_channels; ++c)
    for (std::int64_t p = 0; p < g.kernel_h; ++p)
      for (std::int64_t q = 0; q < g.kernel_w; ++q) {
        const float* row = dcols + ((c * g.kernel_h + p) * g.kernel_w + q) * ld;
        std::int64_t j0, j1;
        fq::detail::im2col_valid_columns(q, g.stride_w, g.pad_w, g.in_w, ow, &j0, &j1);
        float* dxc = dx + c * g.in_h * g.in_w;
        for (std::int64_t i = 0; i < oh; ++i) {
          const std::int64_t yy = i * g.stride_h - g.pad_h + p;
          if (yy < 0 || yy >= g.in_h) continue;
          // Output column j reads input column j·stride − pad + q, valid for j in [j0, j1).
          const std::int64_t x0 = yy * g.in_w + j0 * g.stride_w - g.pad_w + q;
          const float* d = row + i * ow;
          if (g.stride_w == 1) {  // contiguous: the compiler's vector loop
            float* dr = dxc + x0;
            for (std::int64_t j = 0; j < j1 - j0; ++j) dr[j] += d[j0 + j];
          } else {
            for (std::int64_t j = j0; j < j1; ++j) dxc[x0 + (j - j0) * g.stride_w] += d[j];
          }
        }
      }
}

/// The unfolded matrix [C·KH·KW, OH·OW] of image n of x: im2col into cols, or the image itself
/// when the convolution is pointwise.
inline const float* conv_unfold(const float* x, std::int64_t n, const Conv2dShape& g, float* cols) {
  const float* xn = x + n * g.in_channels * g.in_h * g.in_w;
  if (conv_is_pointwise(g)) return xn;
  im2col(xn, g.in_channels, g, 0.0f, cols, g.out_h() * g.out_w(), Im2colLayout::kRowPerOffset);
  return cols;
}

/// The first image of chunk c of `chunks` over a batch of n images.
inline std::int64_t conv_chunk_begin(std::int64_t c, std::int64_t chunks, std::int64_t n) noexcept {
  return c * n / chunks;
}
}  // namespace impl

/// 2-D convolution; see the file comment. Pass a default-constructed Var for no bias.
inline Var conv2d(Tape& tape, const Var& x, const Var& w, const Var& b = Var(),
                  const Conv2dOptions& opt = {}) {
  const bool has_bias = b.value() != nullptr;
  fq::detail::check_tape(tape, {&x, &w}, "conv2d");
  if (has_bias) fq::detail::check_tape(tape, {&b}, "conv2d");
  const Conv2dShape g = conv2d_shape(x.shape(), w.shape(), opt, "conv2d");
  FQ_CHECK(!has_bias || b.numel() == g.out_channels, ErrorCode::kShapeMismatch,
           fq::detail::msg("conv2d: bias ", b.shape().str(), " must have ", g.out_channels,
                           " elements"));
  const bool need = has_bias ? fq::detail::needs_grad(tape, {&x, &w, &b})
                             : fq::detail::needs_grad(tape, {&x, &w});
  Var y = tape.variable({g.batch, g.out_channels, g.out_h(), g.out_w()}, need);
  if (y.numel() == 0) return y;

  using Mat = Eigen::Map<RowMatrixXf>;
  using CMat = Eigen::Map<const RowMatrixXf>;
  // Per chunk of images, in the arena: the unfolded image [C·KH·KW, P] (none when pointwise);
  // for the backward also its gradient (same size), a partial dW [O, K] and a partial db [O].
  // An image's unfolding is small (the demo's second conv: 225 KB), so it is produced and
  // consumed while in cache, and each image's GEMM writes its NCHW output in place.
  const std::int64_t p_n = g.out_h() * g.out_w(), k = g.group_k(), og = g.out_channels / g.groups,
                     chunks = std::min(g.batch, impl::kConvChunks),
                     cols_n = impl::conv_is_pointwise(g) ? 0 : g.groups * k * p_n,
                     per_chunk = cols_n + (need ? cols_n + g.out_channels * (k + 1) : 0);
  float* const scratch = tape.scratch<float>(static_cast<std::size_t>(chunks * per_chunk));
  const float* const xv = x.value();
  const float* const wv = w.value();
  const float* const bv = b.value();
  float* const yv = y.value();
  FQ_PARALLEL_FOR
  for (std::int64_t c = 0; c < chunks; ++c)
    for (std::int64_t n = impl::conv_chunk_begin(c, chunks, g.batch);
         n < impl::conv_chunk_begin(c + 1, chunks, g.batch); ++n) {
      const float* cn = impl::conv_unfold(xv, n, g, scratch + c * per_chunk);
      float* yn = yv + n * g.out_channels * p_n;
      for (std::int64_t gi = 0; gi < g.groups; ++gi)
        Mat(yn + gi * og * p_n, og, p_n).noalias() =
            CMat(wv + gi * og * k, og, k) * CMat(cn + gi * k * p_n, k, p_n);
      if (has_bias)
        for (std::int64_t o = 0; o < g.out_channels; ++o)
          for (std::int64_t i = 0; i < p_n; ++i) yn[o * p_n + i] += bv[o];
    }
  if (need)
    tape.push_backward([x, w, b, y, g, scratch, chunks, cols_n, per_chunk, has_bias] {
      const std::int64_t p_n_ = g.out_h() * g.out_w(), k_ = g.group_k(), o_n = g.out_channels,
                         og_ = o_n / g.groups, cg_ = g.in_channels / g.groups, hw = g.in_h * g.in_w;
      const bool wg = w.requires_grad(), xg = x.requires_grad(), bg = has_bias && b.requires_grad();
      FQ_PARALLEL_FOR
      for (std::int64_t c = 0; c < chunks; ++c) {
        float* const cols = scratch + c * per_chunk;
        float* const dcols = cols + cols_n;
        float* const dw = dcols + cols_n;
        float* const db = dw + o_n * k_;
        std::fill_n(dw, o_n * (k_ + 1), 0.0f);  // dw and db
        for (std::int64_t n = impl::conv_chunk_begin(c, chunks, g.batch);
             n < impl::conv_chunk_begin(c + 1, chunks, g.batch); ++n) {
          const float* dyn = y.grad() + n * o_n * p_n_;
          if (bg)
            Eigen::Map<Eigen::ArrayXf>(db, o_n) += CMat(dyn, o_n, p_n_).rowwise().sum().array();
          if (wg) {
            const float* cn = impl::conv_unfold(x.value(), n, g, cols);
            for (std::int64_t gi = 0; gi < g.groups; ++gi)
              Mat(dw + gi * og_ * k_, og_, k_).noalias() +=
                  CMat(dyn + gi * og_ * p_n_, og_, p_n_) *
                  CMat(cn + gi * k_ * p_n_, k_, p_n_).transpose();
          }
          if (!xg) continue;
          float* dxn = x.grad() + n * g.in_channels * hw;
          for (std::int64_t gi = 0; gi < g.groups; ++gi) {
            const auto dcols_g = CMat(w.value() + gi * og_ * k_, og_, k_).transpose() *
                                 CMat(dyn + gi * og_ * p_n_, og_, p_n_);
            if (cols_n == 0)  // pointwise: the unfolding is x itself, k_ = cg_ and p_n_ = hw
              Mat(dxn + gi * cg_ * hw, cg_, hw).noalias() += dcols_g;
            else
              Mat(dcols + gi * k_ * p_n_, k_, p_n_).noalias() = dcols_g;
          }
          if (cols_n != 0) impl::col2im_add(dcols, p_n_, g, dxn);
        }
      }
      // The chunks' partial sums, in chunk order.
      for (std::int64_t c = 0; c < chunks; ++c) {
        const float* dw = scratch + c * per_chunk + 2 * cols_n;
        if (wg) w.grad_array() += Eigen::Map<const Eigen::ArrayXf>(dw, o_n * k_);
        if (bg) b.grad_array() += Eigen::Map<const Eigen::ArrayXf>(dw + o_n * k_, o_n);
      }
    });
  return y;
}

}  // namespace ops
}  // namespace fq

#endif  // FQ_OPS_CONV2D_HPP_
