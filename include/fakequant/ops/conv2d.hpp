// SPDX-License-Identifier: MIT
// fakequant/ops/conv2d.hpp: conv2d — 2-D convolution (NCHW) on a Tape, by im2col + Eigen GEMM.
//
// Forward: x [N, C, H, W], w [O, C/groups, KH, KW], b [O] (optional) ->
//   y [N, O, OH, OW], OH = (H + 2·pad_h − KH) / stride_h + 1 (likewise OW),
//   y[n, o, i, j] = b[o] + Σ_{c∈group(o), p, q} w[o, c, p, q] · x[n, c, i·s_h − pad_h + p, j·s_w −
//   pad_w + q] (zero outside the image). The geometry is the kernels' fq::Conv2dShape and the
//   unfolding their im2col (kernels/im2col.hpp, one row per kernel offset: cols [C·KH·KW,
//   N·OH·OW]); the batch is one GEMM per group: W_g [O/g, K] · cols_g [K, N·OH·OW].
// Gradient: dW_g += dY_g · cols_gᵀ; dcols_g = W_gᵀ · dY_g scattered back (col2im) into dx;
//   db[o] += Σ dy[:, o, :, :].
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
  // The buffers conv2d allocates: y [N, O, OH, OW], cols [N·OH·OW, C·KH·KW], yt [O, N·OH·OW].
  using fq::detail::checked_mul;
  const std::int64_t np = checked_mul(s.batch, s.out_h() * s.out_w(), op, "the output pixel count");
  checked_mul(s.group_k() * s.groups, np, op, "the unfolded input (im2col) size");
  checked_mul(s.out_channels, np, op, "the output size");
  return s;
}

namespace impl {
/// The adjoint of im2col: dx[n, c, y, x] += every dcols [C·KH·KW, N·OH·OW] entry im2col read
/// from it. The loop order fixes the summation order of each dx element.
inline void col2im_add(const float* dcols, const Conv2dShape& g, float* dx) {
  const std::int64_t oh = g.out_h(), ow = g.out_w(), p_n = oh * ow, np = g.batch * p_n;
  FQ_PARALLEL_FOR
  for (std::int64_t c = 0; c < g.in_channels; ++c)
    for (std::int64_t p = 0; p < g.kernel_h; ++p)
      for (std::int64_t q = 0; q < g.kernel_w; ++q) {
        const float* row = dcols + ((c * g.kernel_h + p) * g.kernel_w + q) * np;
        std::int64_t j0, j1;
        fq::detail::im2col_valid_columns(q, g.stride_w, g.pad_w, g.in_w, ow, &j0, &j1);
        for (std::int64_t n = 0; n < g.batch; ++n) {
          float* dxc = dx + (n * g.in_channels + c) * g.in_h * g.in_w;
          const float* in = row + n * p_n;
          for (std::int64_t i = 0; i < oh; ++i) {
            const std::int64_t yy = i * g.stride_h - g.pad_h + p;
            if (yy < 0 || yy >= g.in_h) continue;
            float* dr = dxc + yy * g.in_w - g.pad_w + q;
            const float* d = in + i * ow;
            for (std::int64_t j = j0; j < j1; ++j) dr[j * g.stride_w] += d[j];
          }
        }
      }
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
  const std::int64_t p_n = g.out_h() * g.out_w(), np = g.batch * p_n, k = g.group_k(),
                     og = g.out_channels / g.groups, cg = g.in_channels / g.groups;
  Var y = tape.variable({g.batch, g.out_channels, g.out_h(), g.out_w()}, need);
  if (y.numel() == 0) return y;

  using Mat = Eigen::Map<RowMatrixXf>;
  // cols [C·KH·KW, N·P]: group gi's K rows start at cols + gi·K·N·P, image n at column n·P.
  float* cols = tape.scratch<float>(static_cast<std::size_t>(g.groups * k * np));
  float* yt = tape.scratch<float>(static_cast<std::size_t>(g.out_channels * np));  // [O, N·P]
  const std::int64_t hw = g.in_h * g.in_w;
  FQ_PARALLEL_FOR
  for (std::int64_t t = 0; t < g.groups * g.batch; ++t) {
    const std::int64_t gi = t / g.batch, n = t % g.batch;
    im2col(x.value() + (n * g.in_channels + gi * cg) * hw, cg, g, 0.0f,
           cols + gi * k * np + n * p_n, np, Im2colLayout::kRowPerOffset);
  }
  for (std::int64_t gi = 0; gi < g.groups; ++gi)
    Mat(yt + gi * og * np, og, np).noalias() =
        Mat(w.value() + gi * og * k, og, k) * Mat(cols + gi * k * np, k, np);
  // [O, N·P] -> [N, O, P], adding the bias.
  FQ_PARALLEL_FOR
  for (std::int64_t n = 0; n < g.batch; ++n)
    for (std::int64_t o = 0; o < g.out_channels; ++o) {
      const float bias = has_bias ? b.value()[o] : 0.0f;
      const float* src = yt + o * np + n * p_n;
      float* dst = y.value() + (n * g.out_channels + o) * p_n;
      for (std::int64_t i = 0; i < p_n; ++i) dst[i] = src[i] + bias;
    }
  if (need)
    tape.push_backward([x, w, b, y, g, cols, yt, has_bias] {
      const std::int64_t p_n_ = g.out_h() * g.out_w(), np_ = g.batch * p_n_, k_ = g.group_k(),
                         og_ = g.out_channels / g.groups;
      float* dyt = yt;  // the forward's [O, N·P] buffer is free now: reuse it for dy
      FQ_PARALLEL_FOR
      for (std::int64_t n = 0; n < g.batch; ++n)
        for (std::int64_t o = 0; o < g.out_channels; ++o) {
          const float* src = y.grad() + (n * g.out_channels + o) * p_n_;
          float* dst = dyt + o * np_ + n * p_n_;
          for (std::int64_t i = 0; i < p_n_; ++i) dst[i] = src[i];
        }
      if (has_bias && b.requires_grad())
        b.grad_array() += Mat(dyt, g.out_channels, np_).rowwise().sum().array();
      for (std::int64_t gi = 0; gi < g.groups; ++gi) {
        const Mat dyg(dyt + gi * og_ * np_, og_, np_);
        Mat colg(cols + gi * k_ * np_, k_, np_);
        if (w.requires_grad())
          Mat(w.grad() + gi * og_ * k_, og_, k_).noalias() += dyg * colg.transpose();
        // cols of this group are not needed after dW: overwrite them with dcols.
        if (x.requires_grad())
          colg.noalias() = Mat(w.value() + gi * og_ * k_, og_, k_).transpose() * dyg;
      }
      if (x.requires_grad()) impl::col2im_add(cols, g, x.grad());
    });
  return y;
}

}  // namespace ops
}  // namespace fq

#endif  // FQ_OPS_CONV2D_HPP_
