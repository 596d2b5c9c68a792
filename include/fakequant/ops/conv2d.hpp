// SPDX-License-Identifier: MIT
// fakequant/ops/conv2d.hpp: conv2d — 2-D convolution (NCHW) on a Tape, by im2col + Eigen GEMM.
//
// Forward: x [N, C, H, W], w [O, C/groups, KH, KW], b [O] (optional) ->
//   y [N, O, OH, OW], OH = (H + 2·pad_h − KH) / stride_h + 1 (likewise OW),
//   y[n, o, i, j] = b[o] + Σ_{c∈group(o), p, q} w[o, c, p, q] · x[n, c, i·s_h − pad_h + p, j·s_w −
//   pad_w + q] (zero outside the image). The batch is one GEMM per group: W_g [O/g, K] · cols_g [K,
//   N·OH·OW].
// Gradient: dW_g += dY_g · cols_gᵀ; dcols_g = W_gᵀ · dY_g scattered back (col2im) into dx;
//   db[o] += Σ dy[:, o, :, :].
#ifndef FQ_OPS_CONV2D_HPP_
#define FQ_OPS_CONV2D_HPP_

#include <algorithm>  // max, min
#include <cstdint>    // int64_t

#include <fakequant/base/config.hpp>
#include <fakequant/base/checked.hpp>
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

/// The geometry of one convolution, checked.
struct Conv2dGeometry {
  std::int64_t n, c, h, w, o, kh, kw, oh, ow, groups;
  std::int64_t cg() const { return c / groups; }     // input channels per group
  std::int64_t og() const { return o / groups; }     // output channels per group
  std::int64_t k() const { return cg() * kh * kw; }  // GEMM depth per group
  std::int64_t p() const { return oh * ow; }         // output pixels per image

  static Conv2dGeometry make(const Shape& x, const Shape& w, const Conv2dOptions& opt,
                             const char* op) {
    FQ_CHECK(x.rank == 4 && w.rank == 4, ErrorCode::kShapeMismatch,
             fq::detail::msg(op, ": x ", x.str(), " and w ", w.str(), " must be NCHW and OIHW"));
    FQ_CHECK(
        opt.stride_h > 0 && opt.stride_w > 0 && opt.pad_h >= 0 && opt.pad_w >= 0 && opt.groups > 0,
        ErrorCode::kInvalidArgument,
        fq::detail::msg(op, ": strides and groups must be > 0, padding >= 0; got stride [",
                        opt.stride_h, ", ", opt.stride_w, "], padding [", opt.pad_h, ", ",
                        opt.pad_w, "], groups ", opt.groups));
    Conv2dGeometry g{x[0], x[1], x[2], x[3], w[0], w[2], w[3], 0, 0, opt.groups};
    FQ_CHECK(
        g.c % g.groups == 0 && g.o % g.groups == 0 && w[1] == g.c / g.groups,
        ErrorCode::kShapeMismatch,
        fq::detail::msg(op, ": with ", g.groups, " groups, x ", x.str(), " needs w [O, ",
                        g.c / g.groups, ", KH, KW] with O divisible by the groups; got ", w.str()));
    using fq::detail::checked_add;
    using fq::detail::checked_mul;
    const std::int64_t hh = checked_add(g.h, checked_mul(2, opt.pad_h, op, "the padded height"), op,
                                        "the padded height") -
                            g.kh;
    const std::int64_t ww = checked_add(g.w, checked_mul(2, opt.pad_w, op, "the padded width"), op,
                                        "the padded width") -
                            g.kw;
    FQ_CHECK(hh >= 0 && ww >= 0, ErrorCode::kShapeMismatch,
             fq::detail::msg(op, ": kernel ", w.str(), " larger than the padded input ", x.str()));
    g.oh = hh / opt.stride_h + 1;
    g.ow = ww / opt.stride_w + 1;
    // The buffers conv2d allocates: y [N, O, OH, OW], cols [C·KH·KW, N·OH·OW], yt [O, N·OH·OW].
    const std::int64_t np = checked_mul(g.n, checked_mul(g.oh, g.ow, op, "the output plane"), op,
                                        "the output pixel count");
    checked_mul(
        checked_mul(checked_mul(g.c, g.kh, op, "the unfolded rows"), g.kw, op, "the unfolded rows"),
        np, op, "the unfolded input (im2col) size");
    checked_mul(g.o, np, op, "the output size");
    return g;
  }
};

namespace impl {
/// cols[(c·KH + p)·KW + q, n·P + i·OW + j] = x[n, c, i·s − pad + p, j·s − pad + q] or `pad_value`.
/// The output columns j whose input column j·s − pad + q lies in [0, w): [lo, hi).
inline void valid_columns(std::int64_t q, std::int64_t s, std::int64_t pad, std::int64_t w,
                          std::int64_t ow, std::int64_t* lo, std::int64_t* hi) {
  // j·s − pad + q >= 0  <=>  j >= ceil((pad − q) / s);   j·s − pad + q < w  <=>  j < ceil((w + pad
  // − q) / s)
  const auto ceil_div = [](std::int64_t a, std::int64_t b) { return a <= 0 ? 0 : (a + b - 1) / b; };
  *lo = std::min(ceil_div(pad - q, s), ow);
  *hi = std::max(std::min(ceil_div(w + pad - q, s), ow), *lo);
}

template <class T>
void im2col(const T* x, const Conv2dGeometry& g, const Conv2dOptions& opt, T* cols, T pad_value) {
  const std::int64_t np = g.n * g.p();
  FQ_PARALLEL_FOR
  for (std::int64_t c = 0; c < g.c; ++c)
    for (std::int64_t p = 0; p < g.kh; ++p)
      for (std::int64_t q = 0; q < g.kw; ++q) {
        T* row = cols + ((c * g.kh + p) * g.kw + q) * np;
        std::int64_t j0, j1;
        valid_columns(q, opt.stride_w, opt.pad_w, g.w, g.ow, &j0, &j1);
        for (std::int64_t n = 0; n < g.n; ++n) {
          const T* xc = x + (n * g.c + c) * g.h * g.w;
          T* out = row + n * g.p();
          for (std::int64_t i = 0; i < g.oh; ++i) {
            const std::int64_t yy = i * opt.stride_h - opt.pad_h + p;
            T* o = out + i * g.ow;
            if (yy < 0 || yy >= g.h) {
              for (std::int64_t j = 0; j < g.ow; ++j) o[j] = pad_value;
              continue;
            }
            const T* xr = xc + yy * g.w - opt.pad_w + q;
            for (std::int64_t j = 0; j < j0; ++j) o[j] = pad_value;
            for (std::int64_t j = j0; j < j1; ++j) o[j] = xr[j * opt.stride_w];
            for (std::int64_t j = j1; j < g.ow; ++j) o[j] = pad_value;
          }
        }
      }
}
/// The adjoint of im2col: dx[n, c, y, x] += every dcols entry im2col read from it.
inline void col2im_add(const float* dcols, const Conv2dGeometry& g, const Conv2dOptions& opt,
                       float* dx) {
  const std::int64_t np = g.n * g.p();
  FQ_PARALLEL_FOR
  for (std::int64_t c = 0; c < g.c; ++c)
    for (std::int64_t p = 0; p < g.kh; ++p)
      for (std::int64_t q = 0; q < g.kw; ++q) {
        const float* row = dcols + ((c * g.kh + p) * g.kw + q) * np;
        std::int64_t j0, j1;
        valid_columns(q, opt.stride_w, opt.pad_w, g.w, g.ow, &j0, &j1);
        for (std::int64_t n = 0; n < g.n; ++n) {
          float* dxc = dx + (n * g.c + c) * g.h * g.w;
          const float* in = row + n * g.p();
          for (std::int64_t i = 0; i < g.oh; ++i) {
            const std::int64_t yy = i * opt.stride_h - opt.pad_h + p;
            if (yy < 0 || yy >= g.h) continue;
            float* dr = dxc + yy * g.w - opt.pad_w + q;
            const float* d = in + i * g.ow;
            for (std::int64_t j = j0; j < j1; ++j) dr[j * opt.stride_w] += d[j];
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
  const Conv2dGeometry g = Conv2dGeometry::make(x.shape(), w.shape(), opt, "conv2d");
  FQ_CHECK(!has_bias || b.numel() == g.o, ErrorCode::kShapeMismatch,
           fq::detail::msg("conv2d: bias ", b.shape().str(), " must have ", g.o, " elements"));
  const bool need = has_bias ? fq::detail::needs_grad(tape, {&x, &w, &b})
                             : fq::detail::needs_grad(tape, {&x, &w});
  Var y = tape.variable({g.n, g.o, g.oh, g.ow}, need);
  if (y.numel() == 0) return y;

  using Mat = Eigen::Map<RowMatrixXf>;
  const std::int64_t np = g.n * g.p(), k = g.k(), og = g.og();
  float* cols = tape.scratch<float>(static_cast<std::size_t>(g.c * g.kh * g.kw * np));
  float* yt = tape.scratch<float>(static_cast<std::size_t>(g.o * np));  // [O, N·P]
  impl::im2col(x.value(), g, opt, cols, 0.0f);
  for (std::int64_t gi = 0; gi < g.groups; ++gi)
    Mat(yt + gi * og * np, og, np).noalias() =
        Mat(w.value() + gi * og * k, og, k) * Mat(cols + gi * k * np, k, np);
  // [O, N·P] -> [N, O, P], adding the bias.
  FQ_PARALLEL_FOR
  for (std::int64_t n = 0; n < g.n; ++n)
    for (std::int64_t o = 0; o < g.o; ++o) {
      const float bias = has_bias ? b.value()[o] : 0.0f;
      const float* src = yt + o * np + n * g.p();
      float* dst = y.value() + (n * g.o + o) * g.p();
      for (std::int64_t i = 0; i < g.p(); ++i) dst[i] = src[i] + bias;
    }
  if (need)
    tape.push_backward([x, w, b, y, g, opt, cols, yt, has_bias] {
      const std::int64_t np_ = g.n * g.p(), k_ = g.k(), og_ = g.og();
      float* dyt = yt;  // the forward's [O, N·P] buffer is free now: reuse it for dy
      FQ_PARALLEL_FOR
      for (std::int64_t n = 0; n < g.n; ++n)
        for (std::int64_t o = 0; o < g.o; ++o) {
          const float* src = y.grad() + (n * g.o + o) * g.p();
          float* dst = dyt + o * np_ + n * g.p();
          for (std::int64_t i = 0; i < g.p(); ++i) dst[i] = src[i];
        }
      if (has_bias && b.requires_grad())
        b.grad_array() += Mat(dyt, g.o, np_).rowwise().sum().array();
      for (std::int64_t gi = 0; gi < g.groups; ++gi) {
        const Mat dyg(dyt + gi * og_ * np_, og_, np_);
        Mat colg(cols + gi * k_ * np_, k_, np_);
        if (w.requires_grad())
          Mat(w.grad() + gi * og_ * k_, og_, k_).noalias() += dyg * colg.transpose();
        // cols of this group are not needed after dW: overwrite them with dcols.
        if (x.requires_grad())
          colg.noalias() = Mat(w.value() + gi * og_ * k_, og_, k_).transpose() * dyg;
      }
      if (x.requires_grad()) impl::col2im_add(cols, g, opt, x.grad());
    });
  return y;
}

}  // namespace ops
}  // namespace fq

#endif  // FQ_OPS_CONV2D_HPP_
