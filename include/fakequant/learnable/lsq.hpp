// SPDX-License-Identifier: MIT
// fakequant/learnable/lsq.hpp: LSQ / LSQ+ — fake quantization with a learned scale and zero
// point: the fused forward+backward functions and the LsqQuantizer that owns the parameters.
//
// Forward    y  = (clamp(rne(x * f32(1/s)) + zf, qmin, qmax) - zf) * s
// Backward   dx = dy * [not clipped]
//            d s = g * sum(dy * ds-term),  d z = g * sum(dy * (clipped ? -s : 0))
// with the zero points zf/zb, the clipping rule and the ds-term of the numerics policy (see
// learnable/lsq_numerics.hpp: LsqTorch = PyTorch 1.13 bit for bit for y and dx; LsqPaper =
// clip before rounding, one zero point) and g the gradient scale (learnable/grad_scale.hpp).
// The sums run over the tensor (per tensor) or over every dimension but the axis (per
// channel). One pass over memory reads x and dy and writes y and dx, accumulating both sums:
// use it in the backward pass (the forward is recomputed: no mask is kept between passes).
// Only float32 tensors. Empty tensors write nothing and give zero gradients.
//
//   fq::LsqQuantizer<fq::LsqScheme<>> q(fq::QuantRange{0, 255});  // PyTorch defaults
//   q.set_scale(0.1f); q.set_zero_point(3.0f);
//   q.forward(x, y);                        // inference / forward only
//   q.forward_backward(x, dy, y, dx);       // y, dx; q.scale_grad(), q.zero_point_grad()
#ifndef FQ_LEARNABLE_LSQ_HPP_
#define FQ_LEARNABLE_LSQ_HPP_

#include <cmath>        // isfinite
#include <cstdint>      // int64_t
#include <type_traits>  // is_same
#include <utility>      // forward
#include <vector>       // vector

#include <fakequant/core/checks.hpp>
#include <fakequant/core/fake_quantize.hpp>
#include <fakequant/core/tensor_view.hpp>
#include <fakequant/core/run_plan.hpp>
#include <fakequant/learnable/grad_scale.hpp>
#include <fakequant/learnable/lsq_numerics.hpp>
#include <fakequant/learnable/lsq_simd.hpp>
#include <fakequant/learnable/scale_param.hpp>
#include <fakequant/policy/granularity.hpp>
#include <fakequant/observer/scale_restriction.hpp>

namespace fq {

/// Gradients of a per-tensor LSQ call, w.r.t. the scale and the (float) zero point given.
struct LsqGrad {
  float scale;
  float zero_point;
};

namespace detail {

/// Validates the four views of a fused call: same shapes; y may be x and dx may be dy
/// (in place), otherwise no overlap.
inline void check_lsq_views(const TensorView<const float>& x, const TensorView<const float>& dy,
                            const TensorView<float>& y, const TensorView<float>& dx,
                            const char* where) {
  check_output(x, y, where);
  check_output(dy, dx, where);
  check_output(x, dx, where);
  check_output(dy, y, where);
  FQ_CHECK(y.numel() == 0 || y.data() != dx.data(), ErrorCode::kInvalidLayout,
           msg(where, ": y and dx must be different tensors"));
  if (y.numel() > 0) check_output(TensorView<const float>(y), dx, where);
}

/// A learned zero point must be finite; NaN (e.g. after a diverged step) is named as such,
/// before any conversion to an integer.
inline void check_lsq_zero_point(float z, const char* where) {
  FQ_CHECK(!std::isnan(z), ErrorCode::kInvalidZeroPoint, msg(where, ": zero point is NaN"));
  FQ_CHECK(std::isfinite(z), ErrorCode::kInvalidZeroPoint,
           msg(where, ": zero point must be finite, got ", z));
}

/// LSQ computes in float32: the range must be float-exact (|q| <= 2^24, at most 2^24 levels).
inline void check_lsq_range(const QuantRange& r, const char* where) {
  check_range(r, where);
  FQ_CHECK(float_exact_range(r), ErrorCode::kInvalidRange,
           msg(where, ": range [", r.quant_min, ", ", r.quant_max,
               "] has more than 2^24 levels; LSQ computes in float32, where they are not exact"));
}

inline void check_grad_factor(float g, const char* where) {
  FQ_CHECK(std::isfinite(g), ErrorCode::kInvalidArgument,
           msg(where, ": grad_factor must be finite, got ", g));
}

/// Runs the fused kernel over x, dy, y, dx; `param(ch)` gives the LsqParams of a channel,
/// `sums(ch)` its accumulator; varying runs (along the axis) use the arrays directly.
template <class M>
void lsq_runs(const TensorView<const float>& x, const TensorView<const float>& dy,
              const TensorView<float>& y, const TensorView<float>& dx, int axis, KernelPath path,
              const std::vector<LsqParams>& param_vec, LsqSums* sums) {
  if (x.numel() == 0) return;
  const LsqParams* params = param_vec.data();
  const DimOrder order = order_by_strides(x.rank(), x.strides());
  const auto plan = make_run_plan<4>(
      x.rank(), x.shape(), {&x.strides(), &dy.strides(), &y.strides(), &dx.strides()}, order, axis);
  const auto last = static_cast<std::size_t>(plan.nd - 1);
  std::ptrdiff_t st[4];
  for (std::size_t k = 0; k < 4; ++k) st[k] = static_cast<std::ptrdiff_t>(plan.stride[k][last]);
  bool simd_ok = use_simd(path) && st[0] == 1 && st[1] == 1 && st[2] == 1 && st[3] == 1;
#if FQ_HAS_XSIMD
  simd_ok = simd_ok && simd::lsq_simd_supported<M, simd::DefaultArch>();
  // Runs along the axis (channels innermost): per-channel parameter arrays and float block
  // sums, flushed to double every kLsqBlock runs (each run adds one element per channel).
  const bool varying_simd = simd_ok && plan.axis == plan.nd - 1;
  const auto nc = static_cast<std::int64_t>(param_vec.size());
  std::vector<float> blk(varying_simd ? static_cast<std::size_t>(3 * nc) : 0, 0.0f);
  const LsqParamArrays arrays(varying_simd ? param_vec : std::vector<LsqParams>());
  std::int64_t pending = 0;
#endif
  for_each_run(plan, [&](const auto& off, std::int64_t n, std::int64_t ch, std::int64_t) {
    const float* xp = x.data() + off[0];
    const float* gp = dy.data() + off[1];
    float* yp = y.data() + off[2];
    float* dxp = dx.data() + off[3];
    if (ch < 0) {
#if FQ_HAS_XSIMD
      if constexpr (simd::lsq_simd_supported<M, simd::DefaultArch>()) {
        if (varying_simd) {
          simd::lsq_run_varying<M, simd::DefaultArch>(xp, gp, yp, dxp, n, arrays, params,
                                                      blk.data(), sums);
          if (++pending == simd::kLsqBlock) {
            simd::flush_lsq_block_sums(blk.data(), params, sums, nc);
            pending = 0;
          }
          return;
        }
      }
#endif
      lsq_run_scalar_varying<M>(xp, st[0], gp, st[1], yp, st[2], dxp, st[3], n, params, sums);
      return;
    }
    const auto c = static_cast<std::size_t>(ch);
#if FQ_HAS_XSIMD
    if constexpr (simd::lsq_simd_supported<M, simd::DefaultArch>()) {
      if (simd_ok) {
        simd::lsq_run<M, simd::DefaultArch>(xp, gp, yp, dxp, n, params[c], sums[c]);
        return;
      }
    }
#endif
    (void)simd_ok;
    lsq_run_scalar<M>(xp, st[0], gp, st[1], yp, st[2], dxp, st[3], n, params[c], sums[c]);
  });
#if FQ_HAS_XSIMD
  if (varying_simd) simd::flush_lsq_block_sums(blk.data(), params, sums, nc);
#endif
}

}  // namespace detail

/// Fused LSQ forward+backward, one scale and zero point for the tensor.
/// @tparam M LsqTorch (default) | LsqTorchNoFma | LsqPaper.
/// @param x, dy inputs (float; Eigen objects convert). @param y, dx outputs of x's shape;
/// y may be x, dx may be dy. @param scale > 0, finite (the effective scale).
/// @param zero_point finite float; rounded and clamped per M. @param grad_factor g.
/// @return d scale and d zero point (already multiplied by g).
template <class M = LsqTorch, class X, class DY, class Y, class DX>
LsqGrad lsq_per_tensor(X&& x, DY&& dy, Y&& y, DX&& dx, float scale, float zero_point,
                       QuantRange range, float grad_factor = 1.0f,
                       KernelPath path = KernelPath::kAuto) {
  static_assert(is_lsq_numerics<M>::value,
                "lsq_per_tensor: M must be LsqTorch, LsqTorchNoFma or LsqPaper.");
  static_assert(std::is_same<detail::view_scalar_t<Y>, float>::value &&
                    std::is_same<detail::view_scalar_t<DX>, float>::value,
                "learnable fake quantization takes float tensors.");
  constexpr const char* kWhere = "lsq_per_tensor";
  const TensorView<const float> xv = detail::as_view(std::forward<X>(x));
  const TensorView<const float> gv = detail::as_view(std::forward<DY>(dy));
  const TensorView<float> yv = detail::as_view(std::forward<Y>(y));
  const TensorView<float> dxv = detail::as_view(std::forward<DX>(dx));
  detail::check_lsq_range(range, kWhere);
  detail::check_scale(scale, kWhere);
  detail::check_lsq_zero_point(zero_point, kWhere);
  detail::check_grad_factor(grad_factor, kWhere);
  detail::check_lsq_views(xv, gv, yv, dxv, kWhere);
  const std::vector<detail::LsqParams> p{
      detail::make_lsq_params<M>(scale, zero_point, range, false)};
  detail::LsqSums sums;
  detail::lsq_runs<M>(xv, gv, yv, dxv, -1, path, p, &sums);
  const double g = static_cast<double>(grad_factor);
  return LsqGrad{detail::lsq_scale_grad(g, sums.ts), detail::lsq_zero_point_grad(g, sums.tz)};
}

/// Fused LSQ forward+backward, one scale and zero point per index along `axis`.
/// @param scale, zero_point arrays of `count` entries (count = x's extent on axis; for an
/// empty x any count, whose gradients are set to +0).
/// @param dscale, dzero_point outputs of `count` entries (overwritten, multiplied by g).
/// @param axis in [-rank, rank). Other parameters as lsq_per_tensor.
template <class M = LsqTorch, class X, class DY, class Y, class DX>
void lsq_per_channel(X&& x, DY&& dy, Y&& y, DX&& dx, const float* scale, const float* zero_point,
                     std::int64_t count, int axis, QuantRange range, float grad_factor,
                     float* dscale, float* dzero_point, KernelPath path = KernelPath::kAuto) {
  static_assert(is_lsq_numerics<M>::value,
                "lsq_per_channel: M must be LsqTorch, LsqTorchNoFma or LsqPaper.");
  static_assert(std::is_same<detail::view_scalar_t<Y>, float>::value &&
                    std::is_same<detail::view_scalar_t<DX>, float>::value,
                "learnable fake quantization takes float tensors.");
  constexpr const char* kWhere = "lsq_per_channel";
  const TensorView<const float> xv = detail::as_view(std::forward<X>(x));
  const TensorView<const float> gv = detail::as_view(std::forward<DY>(dy));
  const TensorView<float> yv = detail::as_view(std::forward<Y>(y));
  const TensorView<float> dxv = detail::as_view(std::forward<DX>(dx));
  detail::check_lsq_range(range, kWhere);
  const int ax = detail::normalize_axis(axis, xv.rank(), kWhere);
  FQ_CHECK(count == xv.size(ax) || (xv.numel() == 0 && count >= 0), ErrorCode::kParamCountMismatch,
           detail::msg(kWhere, ": ", count, " scale/zero-point pairs for ", xv.size(ax),
                       " channels on axis ", axis));
  FQ_CHECK(count == 0 || (scale && zero_point && dscale && dzero_point),
           ErrorCode::kInvalidArgument,
           detail::msg(kWhere, ": null scale, zero-point or gradient array"));
  detail::check_grad_factor(grad_factor, kWhere);
  if (xv.numel() == 0) {  // nothing to quantize: zero gradients, parameters not checked
    detail::check_lsq_views(xv, gv, yv, dxv, kWhere);
    for (std::int64_t c = 0; c < count; ++c) dscale[c] = dzero_point[c] = 0.0f;
    return;
  }
  for (std::int64_t c = 0; c < count; ++c) {
    detail::check_scale(scale[c], kWhere);
    detail::check_lsq_zero_point(zero_point[c], kWhere);
  }
  detail::check_lsq_views(xv, gv, yv, dxv, kWhere);
  const auto n = static_cast<std::size_t>(count);
  std::vector<detail::LsqParams> params(n);
  std::vector<detail::LsqSums> sums(n);
  for (std::size_t c = 0; c < n; ++c)
    params[c] = detail::make_lsq_params<M>(scale[c], zero_point[c], range, true);
  detail::lsq_runs<M>(xv, gv, yv, dxv, ax, path, params, sums.data());
  const double g = static_cast<double>(grad_factor);
  for (std::size_t c = 0; c < n; ++c) {
    dscale[c] = detail::lsq_scale_grad(g, sums[c].ts);
    dzero_point[c] = detail::lsq_zero_point_grad(g, sums[c].tz);
  }
}

/// A fixed-size view of a quantizer's parameter array: its elements are read and written
/// (by the user, the observer, an optimizer), but the array cannot be resized — the storage
/// is sized at construction and never moves, so pointers handed to an optimizer stay valid.
class ParamSpan {
 public:
  ParamSpan(float* data, std::size_t size) noexcept : data_(data), size_(size) {}
  float* data() const noexcept { return data_; }
  std::size_t size() const noexcept { return size_; }
  float& operator[](std::size_t i) const noexcept { return data_[i]; }
  float* begin() const noexcept { return data_; }
  float* end() const noexcept { return data_ + size_; }

 private:
  float* data_;
  std::size_t size_;
};

/// The compile-time configuration of an LsqQuantizer.
/// @tparam Numerics LsqTorch (default) | LsqTorchNoFma | LsqPaper.
/// @tparam GradScale TorchGradScale (default) | LsqPaperGradScale | NoGradScale.
/// @tparam ScaleParam LinearScale<> (default, floor 2^-23) | Log2Scale.
/// @tparam Restriction NoScaleRestriction (default) | PowerOfTwoRound | PowerOfTwoCeil.
/// @tparam Granularity PerTensor (default) | PerChannel<Axis>.
template <class Numerics = LsqTorch, class GradScale = TorchGradScale,
          class ScaleParam = LinearScale<>, class Restriction = NoScaleRestriction,
          class Granularity = PerTensor>
struct LsqScheme {
  static_assert(is_lsq_numerics<Numerics>::value,
                "LsqScheme: Numerics must be LsqTorch, LsqTorchNoFma or LsqPaper.");
  static_assert(is_grad_scale<GradScale>::value,
                "LsqScheme: GradScale must be TorchGradScale, LsqPaperGradScale or NoGradScale.");
  static_assert(is_scale_param<ScaleParam>::value,
                "LsqScheme: ScaleParam must be LinearScale<FloorExp> or Log2Scale.");
  static_assert(is_scale_restriction<Restriction>::value,
                "LsqScheme: Restriction must be NoScaleRestriction, PowerOfTwoRound or "
                "PowerOfTwoCeil.");
  static_assert(is_granularity<Granularity>::value,
                "LsqScheme: Granularity must be fq::PerTensor or fq::PerChannel<Axis>.");
  using numerics = Numerics;
  using grad_scale = GradScale;
  using scale_param = ScaleParam;
  using restriction = Restriction;
  using granularity = Granularity;
};

/// PyTorch's _LearnableFakeQuantize numerics with its grad scaling (use_grad_scaling=True).
using TorchLsq = LsqScheme<>;
/// The LSQ paper: clip before rounding, 1/sqrt(N Qp) per channel, log2-domain scale.
using PaperLsq = LsqScheme<LsqPaper, LsqPaperGradScale, Log2Scale>;

/// Learned scale(s) and zero point(s) with their gradients. The parameters are stored in the
/// domain of Scheme::scale_param (the scale itself, or its log2) and as float zero points;
/// forward_backward() overwrites the gradients w.r.t. those parameters (chain rule through
/// the parametrization and the restriction included), ready for the user's optimizer. The
/// arrays are sized at construction (the channel count) and never reallocated: an optimizer
/// may keep pointers into scale_param() and zero_point() for the quantizer's lifetime.
template <class Scheme>
class LsqQuantizer {
 public:
  using scheme = Scheme;
  using M = typename Scheme::numerics;
  using SP = typename Scheme::scale_param;
  using R = typename Scheme::restriction;
  static constexpr bool kPerChannel = Scheme::granularity::kPerChannel;
  static constexpr int kAxis = Scheme::granularity::kAxis;

  /// @param range [quant_min, quant_max]. @param channels 1 per tensor; the extent of the
  /// axis per channel. @param learn_zero_point false: the zero point stays fixed (symmetric
  /// schemes) and its gradient is 0. Initial scale 1, zero point 0.
  explicit LsqQuantizer(QuantRange range, std::int64_t channels = 1, bool learn_zero_point = true)
      : range_(range), learn_zero_point_(learn_zero_point) {
    detail::check_lsq_range(range_, "LsqQuantizer");
    FQ_CHECK(channels >= 1, ErrorCode::kInvalidArgument,
             detail::msg("LsqQuantizer: channel count must be >= 1, got ", channels));
    FQ_CHECK(kPerChannel || channels == 1, ErrorCode::kInvalidArgument,
             "LsqQuantizer: a PerTensor scheme has exactly one channel");
    const auto n = static_cast<std::size_t>(channels);
    scale_param_.assign(n, SP::from_scale(1.0f));
    zero_point_.assign(n, 0.0f);
    scale_grad_.assign(n, 0.0f);
    zero_point_grad_.assign(n, 0.0f);
  }

  std::int64_t channels() const noexcept { return static_cast<std::int64_t>(scale_param_.size()); }
  const QuantRange& range() const noexcept { return range_; }

  /// Sets every channel's scale (> 0, finite) and zero point.
  void set_scale(float s) {
    detail::check_scale(s, "LsqQuantizer::set_scale");
    for (auto& p : scale_param_) p = SP::from_scale(s);
  }
  void set_zero_point(float z) {
    detail::check_lsq_zero_point(z, "LsqQuantizer::set_zero_point");
    for (auto& v : zero_point_) v = z;
  }
  /// The raw parameters (the optimizer updates these; fixed size, see the class comment) and
  /// their last gradients.
  ParamSpan scale_param() noexcept { return {scale_param_.data(), scale_param_.size()}; }
  ParamSpan zero_point() noexcept { return {zero_point_.data(), zero_point_.size()}; }
  const std::vector<float>& scale_param() const noexcept { return scale_param_; }
  const std::vector<float>& zero_point() const noexcept { return zero_point_; }
  const std::vector<float>& scale_grad() const noexcept { return scale_grad_; }
  const std::vector<float>& zero_point_grad() const noexcept { return zero_point_grad_; }

  /// The effective scale of channel c: Restriction(ScaleParam(p)), always > 0.
  float scale(std::int64_t c = 0) const {
    check_channel(c);
    return R::apply(SP::to_scale(scale_param_[static_cast<std::size_t>(c)], "LsqQuantizer"));
  }
  /// The integer zero point the forward uses (clamp(rne(z))); a NaN or infinite learned zero
  /// point is kInvalidZeroPoint ("zero point is NaN").
  float forward_zero_point(std::int64_t c = 0) const {
    const float s = scale(c);
    const float z = zero_point_[static_cast<std::size_t>(c)];
    detail::check_lsq_zero_point(z, "LsqQuantizer");
    return detail::make_lsq_params<M>(s, z, range_, kPerChannel).zf;
  }

  /// Forward only: y = fake_quantize(x) with the effective scales and forward zero points.
  template <class X, class Y>
  void forward(X&& x, Y&& y, KernelPath path = KernelPath::kAuto) const {
    using N = typename M::forward_numerics;
    const std::size_t n = scale_param_.size();
    std::vector<float> s(n);
    std::vector<std::int32_t> z(n);
    for (std::size_t c = 0; c < n; ++c) {
      s[c] = scale(static_cast<std::int64_t>(c));
      z[c] = static_cast<std::int32_t>(forward_zero_point(static_cast<std::int64_t>(c)));
    }
    if constexpr (kPerChannel)
      fake_quantize_per_channel<N>(std::forward<X>(x), std::forward<Y>(y), nullptr, s.data(),
                                   z.data(), channels(), kAxis, range_, path);
    else
      fake_quantize_per_tensor<N>(std::forward<X>(x), std::forward<Y>(y), nullptr, s[0], z[0],
                                  range_, path);
  }

  /// Fused forward+backward: writes y and dx and overwrites scale_grad() and
  /// zero_point_grad() (w.r.t. the raw parameters).
  template <class X, class DY, class Y, class DX>
  void forward_backward(X&& x, DY&& dy, Y&& y, DX&& dx, KernelPath path = KernelPath::kAuto) {
    const TensorView<const float> xv = detail::as_view(std::forward<X>(x));
    const std::size_t n = scale_param_.size();
    std::vector<float> s_dom(n), s(n);
    for (std::size_t c = 0; c < n; ++c) {
      s_dom[c] = SP::to_scale(scale_param_[c], "LsqQuantizer");
      s[c] = R::apply(s_dom[c]);
    }
    const std::int64_t numel = xv.numel();
    const std::int64_t per_channel = numel / channels();
    const float g = Scheme::grad_scale::factor(numel, per_channel, range_);
    if constexpr (kPerChannel) {
      lsq_per_channel<M>(xv, std::forward<DY>(dy), std::forward<Y>(y), std::forward<DX>(dx),
                         s.data(), zero_point_.data(), channels(), kAxis, range_, g,
                         scale_grad_.data(), zero_point_grad_.data(), path);
    } else {
      const LsqGrad gr =
          lsq_per_tensor<M>(xv, std::forward<DY>(dy), std::forward<Y>(y), std::forward<DX>(dx),
                            s[0], zero_point_[0], range_, g, path);
      scale_grad_[0] = gr.scale;
      zero_point_grad_[0] = gr.zero_point;
    }
    for (std::size_t c = 0; c < n; ++c) {
      scale_grad_[c] *= R::grad(s_dom[c], s[c]) * SP::grad(scale_param_[c], s_dom[c]);
      if (!learn_zero_point_) zero_point_grad_[c] = 0.0f;
    }
  }

 private:
  void check_channel(std::int64_t c) const {
    FQ_CHECK(c >= 0 && c < channels(), ErrorCode::kInvalidArgument,
             detail::msg("LsqQuantizer: channel ", c, " is outside [0, ", channels(), ")"));
  }

  QuantRange range_;
  bool learn_zero_point_;
  std::vector<float> scale_param_;
  std::vector<float> zero_point_;
  std::vector<float> scale_grad_;
  std::vector<float> zero_point_grad_;
};

}  // namespace fq

#endif  // FQ_LEARNABLE_LSQ_HPP_
