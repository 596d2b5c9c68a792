// SPDX-License-Identifier: MIT
// fakequant/ops/conv2d.hpp: conv2d — 2-D convolution (NCHW) on a Tape, by im2col + GEMM.
//
// Forward: x [N, C, H, W], w [O, C/groups, KH, KW], b [O] (optional) ->
//   y [N, O, OH, OW], OH = (H + 2·pad_h − KH) / stride_h + 1 (likewise OW),
//   y[n, o, i, j] = b[o] + Σ_{c∈group(o), p, q} w[o, c, p, q] · x[n, c, i·s_h − pad_h + p, j·s_w −
//   pad_w + q] (zero outside the image). The geometry is the kernels' fq::Conv2dShape and the
//   unfolding their im2col (kernels/im2col.hpp, one row per kernel offset: cols_n [C·KH·KW, P],
//   P = OH·OW; its adjoint: kernels/col2im.hpp); image by image, one GEMM per group
//   W_g [O/g, K] · cols_n,g [K, P] into y's [O, P] block of the image (the bias added after:
//   the GEMM's sum, then one rounding). The products with the weights (forward, and Wᵀ·dY) run
//   on fq::sgemm where Arch has FMA (the weights packed once per batch; each output one fused
//   chain in K order, kernels/sgemm.hpp), else on Eigen; dW on Eigen.
// Gradient: dW_g += Σ_n dY_n,g · cols_n,gᵀ; dcols_n,g = W_gᵀ · dY_n,g scattered back (col2im)
//   into dx_n; db[o] += Σ dy[:, o, :, :]. cols_n is unfolded again in the backward (cheaper than
//   keeping the batch's: it stays in cache). The batch runs in chunks of images
//   (impl::kConvChunks) with partial dW and db summed in chunk order: the same bits for any
//   thread count. dx and dW are stored, not added, when this op is their first writer
//   (tape/grad_state.hpp). conv2d_divided is conv2d followed by a division per output channel, done
//   on each image's output while in cache.
#ifndef FQ_OPS_CONV2D_HPP_
#define FQ_OPS_CONV2D_HPP_

#include <algorithm>  // fill_n, max, min
#include <cstdint>    // int64_t

#include <fakequant/base/checked.hpp>
#include <fakequant/base/config.hpp>
#include <fakequant/kernels/col2im.hpp>
#include <fakequant/kernels/im2col.hpp>
#include <fakequant/kernels/sgemm.hpp>
#include <fakequant/simd/ordered_reduce.hpp>
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
/// fq::detail::check_conv2d_shape; of the batch's output) kOutOfMemory. (conv2d unfolds an image
/// at a time: impl::conv_scratch bounds its scratch.)
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
  using fq::detail::checked_mul;
  const std::int64_t np = checked_mul(s.batch, s.out_h() * s.out_w(), op, "the output pixel count");
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

/// The unfolded matrix [C·KH·KW, OH·OW] of image n of x: im2col into cols, or the image itself
/// when the convolution is pointwise.
inline const float* conv_unfold(const float* x, std::int64_t n, const Conv2dShape& g, float* cols) {
  const float* xn = x + n * g.in_channels * g.in_h * g.in_w;
  if (conv_is_pointwise(g)) return xn;
  im2col(xn, g.in_channels, g, 0.0f, cols, g.out_h() * g.out_w(), Im2colLayout::kRowPerOffset);
  return cols;
}

/// C [m, n] (row stride n) = (accumulate ? C : 0) + A · B on Eigen, B [kd, n] row-major (row
/// stride n), A the weights of a group, wg [og, kg] row-major: A = wg (m = og, kd = kg) or
/// A = wgᵀ (transposed: m = kg, kd = og). The product with the weights where Arch has no FMA
/// (with it: fq::sgemm_packed on the weights packed by conv_pack_weights).
inline void conv_weight_product_eigen(std::int64_t m, std::int64_t n, std::int64_t kd,
                                      const float* wg, bool transposed, const float* b, float* c,
                                      bool accumulate) {
  using CMat = Eigen::Map<const RowMatrixXf>;
  const CMat bm(b, kd, n);
  Eigen::Map<RowMatrixXf> cm(c, m, n);
  if (transposed) {
    const CMat wm(wg, kd, m);
    if (accumulate)
      cm.noalias() += wm.transpose() * bm;
    else
      cm.noalias() = wm.transpose() * bm;
  } else {
    const CMat wm(wg, m, kd);
    if (accumulate)
      cm.noalias() += wm * bm;
    else
      cm.noalias() = wm * bm;
  }
}

/// Packs every group's weights (or their transposes) for fq::sgemm_packed: group gi at
/// packed + gi · sgemm_packed_a_size<Arch>(m, kd). Nothing without kSgemmSimd<Arch>.
template <class Arch>
void conv_pack_weights(const float* w, const Conv2dShape& g, bool transposed, float* packed) {
  if constexpr (kSgemmSimd<Arch>) {
    const std::int64_t og = g.out_channels / g.groups, kg = g.group_k(), m = transposed ? kg : og,
                       kd = transposed ? og : kg, size = sgemm_packed_a_size<Arch>(m, kd);
    for (std::int64_t gi = 0; gi < g.groups; ++gi) {
      const float* wg = w + gi * og * kg;
      sgemm_pack_a<Arch>(m, kd, transposed ? SgemmOperand{wg, 1, kg} : SgemmOperand{wg, kg, 1},
                         packed + gi * size);
    }
  } else {
    (void)w, (void)g, (void)transposed, (void)packed;
  }
}

/// Where conv2d's arena scratch keeps what, in floats. Per chunk of images: the unfolded image
/// [C·KH·KW, P] (none when pointwise), the GEMM's packing workspace, and for the backward the
/// unfolding's gradient, a partial dW [O, K], a partial db [O] and (conv2d_divided) the
/// image's dy / d [O, P] and a partial dd [O]. After the chunks: the weights
/// packed for the forward's product and (x needing a gradient) their transposes for the
/// backward's (kSgemmSimd<Arch> only).
struct ConvScratch {
  std::int64_t chunks = 0, cols = 0, workspace = 0, per_chunk = 0, packed_w = 0, packed_wt = 0;
  std::int64_t dy = 0;     // conv2d_divided, per chunk: an image's dy / d [O, P], a partial dd [O]
  std::int64_t total = 0;  // chunks · per_chunk + packed_w + packed_wt
};
/// The sizes for geometry g (checked by conv2d_shape), each and their total within int64 or
/// kOutOfMemory naming `op` (a chunk needs about two unfolded images: a single image that fits
/// int64 does not make that fit).
template <class Arch>
ConvScratch conv_scratch(const Conv2dShape& g, bool need, bool dx_needed, bool divided,
                         const char* op) {
  const std::int64_t p_n = g.out_h() * g.out_w(), k = g.group_k(), og = g.out_channels / g.groups;
  constexpr const char* kWhat = "the convolution's scratch";
  auto mul = [&](std::int64_t a, std::int64_t b) {
    return fq::detail::checked_mul(a, b, op, kWhat);
  };
  auto add = [&](std::int64_t a, std::int64_t b) {
    return fq::detail::checked_add(a, b, op, kWhat);
  };
  ConvScratch s;
  s.chunks = std::min(g.batch, kConvChunks);
  s.cols = conv_is_pointwise(g) ? 0 : mul(mul(g.groups, k), p_n);
  if constexpr (kSgemmSimd<Arch>) {
    s.workspace = std::max(sgemm_workspace_size<Arch>(p_n, k), sgemm_workspace_size<Arch>(p_n, og));
    s.packed_w = mul(g.groups, sgemm_packed_a_size<Arch>(og, k));
    s.packed_wt = dx_needed ? mul(g.groups, sgemm_packed_a_size<Arch>(k, og)) : 0;
  }
  s.dy = need && divided ? mul(g.out_channels, add(p_n, 1)) : 0;
  const std::int64_t backward = need ? add(s.cols, mul(g.out_channels, add(k, 1))) : 0;
  s.per_chunk = add(add(add(s.cols, s.workspace), backward), s.dy);
  s.total = add(add(mul(s.chunks, s.per_chunk), s.packed_w), s.packed_wt);
  return s;
}

/// The first image of chunk c of `chunks` over a batch of n images.
inline std::int64_t conv_chunk_begin(std::int64_t c, std::int64_t chunks, std::int64_t n) noexcept {
  return c * n / chunks;
}
}  // namespace impl

namespace impl {
/// conv2d (d null) and conv2d_divided.
template <class Arch>
Var conv2d(Tape& tape, const Var& x, const Var& w, const Var& b, const Var& d,
           const Conv2dOptions& opt, const char* op) {
  const bool has_bias = b.value() != nullptr, divided = d.value() != nullptr;
  fq::detail::check_tape(tape, {&x, &w}, op);
  if (has_bias) fq::detail::check_tape(tape, {&b}, op);
  if (divided) fq::detail::check_tape(tape, {&d}, op);
  const Conv2dShape g = conv2d_shape(x.shape(), w.shape(), opt, op);
  FQ_CHECK(
      !has_bias || b.numel() == g.out_channels, ErrorCode::kShapeMismatch,
      fq::detail::msg(op, ": bias ", b.shape().str(), " must have ", g.out_channels, " elements"));
  FQ_CHECK(
      !divided || d.numel() == g.out_channels, ErrorCode::kParamCountMismatch,
      fq::detail::msg(op, ": ", d.numel(), " divisors for ", g.out_channels, " output channels"));
  const bool need = fq::detail::needs_grad(tape, {&x, &w}) ||
                    (has_bias && fq::detail::needs_grad(tape, {&b})) ||
                    (divided && fq::detail::needs_grad(tape, {&d}));
  // The arena scratch (ConvScratch), sized before anything is allocated. An image's unfolding
  // is small (the demo's second conv: 225 KB), so it is produced and consumed while in cache,
  // and each image's GEMM writes its NCHW output in place.
  const ConvScratch sc = conv_scratch<Arch>(g, need, need && x.requires_grad(), divided, op);
  Var y = tape.variable({g.batch, g.out_channels, g.out_h(), g.out_w()}, need);
  if (y.numel() == 0) return y;
  const std::int64_t p_n = g.out_h() * g.out_w(), k = g.group_k(), og = g.out_channels / g.groups;
  const std::int64_t chunks = sc.chunks, cols_n = sc.cols, per_chunk = sc.per_chunk;
  float* const scratch = tape.scratch<float>(static_cast<std::size_t>(sc.total));
  float* const packed_w = scratch + chunks * per_chunk;
  const float* const xv = x.value();
  const float* const wv = w.value();
  const float* const bv = b.value();
  const float* const dv = d.value();
  float* const yv = y.value();
  conv_pack_weights<Arch>(wv, g, false, packed_w);
  const std::int64_t pw_g = sc.packed_w / g.groups;
  FQ_PARALLEL_FOR
  for (std::int64_t c = 0; c < chunks; ++c)
    for (std::int64_t n = conv_chunk_begin(c, chunks, g.batch);
         n < conv_chunk_begin(c + 1, chunks, g.batch); ++n) {
      float* const cols = scratch + c * per_chunk;
      const float* cn = conv_unfold(xv, n, g, cols);
      float* yn = yv + n * g.out_channels * p_n;
      for (std::int64_t gi = 0; gi < g.groups; ++gi) {
        const float* cg = cn + gi * k * p_n;
        float* yg = yn + gi * og * p_n;
        if constexpr (kSgemmSimd<Arch>)
          sgemm_packed<Arch>(og, p_n, k, packed_w + gi * pw_g, SgemmOperand{cg, p_n, 1}, yg, p_n,
                             false, cols + cols_n);
        else
          conv_weight_product_eigen(og, p_n, k, wv + gi * og * k, false, cg, yg, false);
      }
      if (has_bias)
        for (std::int64_t o = 0; o < g.out_channels; ++o)
          for (std::int64_t i = 0; i < p_n; ++i) yn[o * p_n + i] += bv[o];
      if (divided)  // while in cache; as scale_channels(·, d, 1, true): times 1 / d
        for (std::int64_t o = 0; o < g.out_channels; ++o) {
          const float inv = 1.0f / dv[o];
          for (std::int64_t i = 0; i < p_n; ++i) yn[o * p_n + i] *= inv;
        }
    }
  if (need)
    tape.push_backward([x, w, b, d, y, g, scratch, sc, has_bias, divided] {
      using Mat = Eigen::Map<RowMatrixXf>;
      using CMat = Eigen::Map<const RowMatrixXf>;
      const std::int64_t p_n_ = g.out_h() * g.out_w(), k_ = g.group_k(), o_n = g.out_channels,
                         og_ = o_n / g.groups, cg_ = g.in_channels / g.groups, hw = g.in_h * g.in_w;
      const bool wg = w.requires_grad(), xg = x.requires_grad(), bg = has_bias && b.requires_grad(),
                 dg = divided && d.requires_grad();
      const std::int64_t pwt_g = sc.packed_wt / g.groups;
      const bool pointwise = conv_is_pointwise(g);
      float* const packed_wt = scratch + sc.chunks * sc.per_chunk + sc.packed_w;
      if (xg) conv_pack_weights<Arch>(w.value(), g, true, packed_wt);
      // dx is written image by image: as its first writer (tape/grad_state.hpp) this op stores
      // the pointwise product and zeroes an image's dx just before col2im adds into it.
      const GradWrite dx_all = x.claim_grad();
      const float* const dy_all = y.grad();
      FQ_PARALLEL_FOR
      for (std::int64_t c = 0; c < sc.chunks; ++c) {
        float* const cols = scratch + c * sc.per_chunk;
        float* const ws = cols + sc.cols;
        float* const dcols = ws + sc.workspace;
        float* const dw = dcols + sc.cols;
        float* const db = dw + o_n * k_;
        float* const dyd = db + o_n;  // divided: this image's dy / d
        float* const dd = dyd + o_n * p_n_;
        std::fill_n(dw, o_n * (k_ + 1), 0.0f);  // dw and db
        if (divided) std::fill_n(dd, o_n, 0.0f);
        for (std::int64_t n = conv_chunk_begin(c, sc.chunks, g.batch);
             n < conv_chunk_begin(c + 1, sc.chunks, g.batch); ++n) {
          const float* dyn = dy_all + n * o_n * p_n_;
          if (divided) {  // y = c / d: dc = dy / d, dd = −Σ dy · c / d² = −Σ dy · y / d
            const float* yn = y.value() + n * o_n * p_n_;
            for (std::int64_t o = 0; o < o_n; ++o) {
              const float dvo = d.value()[o], inv = 1.0f / dvo;
              const float* dr = dyn + o * p_n_;
              if (dg) {
                dd[o] -= simd::ordered_dot<Arch>(dr, yn + o * p_n_, p_n_) / dvo;
              }
              for (std::int64_t i = 0; i < p_n_; ++i) dyd[o * p_n_ + i] = dr[i] * inv;
            }
            dyn = dyd;
          }
          if (bg)  // a plane's sum in an order fixed by its size (simd/ordered_reduce.hpp)
            for (std::int64_t o = 0; o < o_n; ++o)
              db[o] += simd::ordered_sum<Arch>(dyn + o * p_n_, p_n_);
          if (wg) {  // Eigen: its transposed-B packing is as fast as fq::sgemm's here
            const float* cn = conv_unfold(x.value(), n, g, cols);
            for (std::int64_t gi = 0; gi < g.groups; ++gi)
              Mat(dw + gi * og_ * k_, og_, k_).noalias() +=
                  CMat(dyn + gi * og_ * p_n_, og_, p_n_) *
                  CMat(cn + gi * k_ * p_n_, k_, p_n_).transpose();
          }
          if (!xg) continue;
          // dcols_g = W_gᵀ · dY_g; pointwise: the unfolding is x itself (k_ = cg_, p_n_ = hw),
          // so the product adds to dx directly.
          float* dxn = dx_all.data + n * g.in_channels * hw;
          const bool add_to_dx = pointwise && !dx_all.overwrite;
          for (std::int64_t gi = 0; gi < g.groups; ++gi) {
            const float* dyg = dyn + gi * og_ * p_n_;
            float* out = pointwise ? dxn + gi * cg_ * hw : dcols + gi * k_ * p_n_;
            if constexpr (kSgemmSimd<Arch>)
              sgemm_packed<Arch>(k_, p_n_, og_, packed_wt + gi * pwt_g, SgemmOperand{dyg, p_n_, 1},
                                 out, p_n_, add_to_dx, ws);
            else
              conv_weight_product_eigen(k_, p_n_, og_, w.value() + gi * og_ * k_, true, dyg, out,
                                        add_to_dx);
          }
          if (!pointwise) {
            if (dx_all.overwrite) std::fill_n(dxn, g.in_channels * hw, 0.0f);
            fq::detail::col2im_add_unchecked<Arch>(dcols, p_n_, g, dxn);
          }
        }
      }
      // The chunks' partial sums, in chunk order; dw is stored by its first writer.
      const GradWrite dw_all = w.claim_grad();
      for (std::int64_t c = 0; c < sc.chunks; ++c) {
        const float* dw = scratch + c * sc.per_chunk + 2 * sc.cols + sc.workspace;
        if (wg && c == 0 && dw_all.overwrite)
          Eigen::Map<Eigen::ArrayXf>(dw_all.data, o_n * k_) =
              Eigen::Map<const Eigen::ArrayXf>(dw, o_n * k_);
        else if (wg)
          Eigen::Map<Eigen::ArrayXf>(dw_all.data, o_n * k_) +=
              Eigen::Map<const Eigen::ArrayXf>(dw, o_n * k_);
        if (bg) b.grad_array() += Eigen::Map<const Eigen::ArrayXf>(dw + o_n * k_, o_n);
        if (dg)
          d.grad_array() += Eigen::Map<const Eigen::ArrayXf>(dw + o_n * (k_ + 1) + o_n * p_n_, o_n);
      }
    });
  return y;
}
}  // namespace impl

/// 2-D convolution; see the file comment. Pass a default-constructed Var for no bias. Arch: the
/// instruction set of the products with the weights (fq::sgemm where it has FMA; simd/arch.hpp).
template <class Arch = DefaultArch>
Var conv2d(Tape& tape, const Var& x, const Var& w, const Var& b = Var(),
           const Conv2dOptions& opt = {}) {
  return impl::conv2d<Arch>(tape, x, w, b, Var(), opt, "conv2d");
}

/// conv2d(x, w, b) divided per output channel by d [O]: y[n, o] = conv2d(x, w, b)[n, o] · (1 /
/// d[o]), the bits of scale_channels(conv2d(x, w, b), d, 1, /*divide=*/true) without the extra
/// pass over y (QConvBn2d's z = conv(x, W·f) / f). Gradient: with c = conv2d(x, w, b), dc =
/// dy / d (then conv2d's gradient), dd[o] = −Σ dy · c / d[o]² computed as −Σ dy · y / d[o].
template <class Arch = DefaultArch>
Var conv2d_divided(Tape& tape, const Var& x, const Var& w, const Var& d,
                   const Conv2dOptions& opt = {}) {
  return impl::conv2d<Arch>(tape, x, w, Var(), d, opt, "conv2d_divided");
}

}  // namespace ops
}  // namespace fq

#endif  // FQ_OPS_CONV2D_HPP_
