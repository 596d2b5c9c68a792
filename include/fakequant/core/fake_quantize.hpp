// SPDX-License-Identifier: MIT
// fakequant/core/fake_quantize.hpp: the scalar reference of fake quantization and its STE
// backward — argument checks, the run-plan driver and the scalar runs. The public entry points
// fq::fake_quantize_per_tensor / _per_channel / _backward are in kernels/fake_quantize.hpp,
// which hands this driver a runner with the SIMD kernels (detail::ScalarRuns here is the
// runner of the scalar reference alone).
//
// Forward (per element; s, z per tensor or per channel; see scheme/numerics.hpp for the exact
// operation order and the NaN/Inf rule):
//     q    = round(x * f32(1/s)) + z              int32 z (ties to even by default)
//     q    = round(fma(x, f32(1/s), z))           float z (TorchNumerics; TorchNumericsNoFma:
//                                                  round(f32(x * f32(1/s)) + z))
//     y    = (clamp(q, quant_min, quant_max) - z) * s     (never -0.0)
//     mask = quant_min <= q <= quant_max           (on the rounded level, as ATen)
// Backward (straight-through estimator):
//     MaskedSte       dx = dy * mask               (ATen's dY * mask, bit for bit: a NaN dy
//                                                  stays NaN, quieted, also where masked)
//     PassThroughSte  dx = dy
// With TorchNumerics (the default) the forward equals PyTorch 1.13's
// fake_quantize_per_tensor_affine(_cachemask) and fake_quantize_per_channel_affine bit for
// bit as dispatched on x86 (AVX2 / AVX-512), for float and double tensors, NaN, Inf, ties and
// the mask at the bounds, on every int32 range (ranges wider than float32's exact integers,
// e.g. [-2^24, 2^24] or qint32's, take an exact slower path for float tensors);
// TorchNumericsNoFma equals ATen's scalar kernel (ATEN_CPU_CAPABILITY=default), which rounds
// x * f32(1/s) before adding a float zero point.
// x and y may be the same view (in place). Empty tensors are a no-op (per channel, the
// parameter count and values are not checked then: there is nothing to quantize). Bad
// arguments are reported through fq::detail::fail (see error.hpp).
//
// A runner (the hooks the driver offers contiguous runs to) is a type with
//   using arch = <architecture tag>;   bool simd;   // simd: offer runs to the hooks at all
//   template <class N, class T> bool run(x, y, n, ElementParams<T>, BitWriter*, range) const;
//   template <class N, class T, class Z> bool run_varying(x, y, n, scale, zero_point, range,
//                                                         BitWriter*) const;
//   template <class N, class T, class Z> bool rows(x, x_row, y, y_row, rows, n, scale,
//                                                  zero_point, range, words) const;
//   template <class T> bool ste(dy, dx, n, BitReader&) const;
// each returning false to leave the run to the scalar reference. Only contiguous runs with
// int32 zero points are offered (float zero points and wide ranges are scalar only).
#ifndef FQ_CORE_FAKE_QUANTIZE_HPP_
#define FQ_CORE_FAKE_QUANTIZE_HPP_

#include <cmath>        // fabs
#include <cstdint>      // int32_t, int64_t, uint32_t
#include <cstring>      // memcpy
#include <limits>       // numeric_limits
#include <type_traits>  // is_same, remove_const
#include <utility>      // forward

#include <fakequant/core/checks.hpp>
#include <fakequant/core/fake_quantize_scalar.hpp>
#include <fakequant/core/mask.hpp>
#include <fakequant/core/run_plan.hpp>
#include <fakequant/core/tensor_view.hpp>
#include <fakequant/policy/clamp_grad.hpp>
#include <fakequant/scheme/numerics.hpp>

namespace fq {

namespace detail {

/// True for the element types fake quantization takes.
template <class T>
inline constexpr bool kFloatTensor =
    std::is_same<T, float>::value || std::is_same<T, double>::value;

template <class T>
constexpr void static_check_float() {
  static_assert(kFloatTensor<T>, "fake quantization takes float or double tensors.");
}

/// Whether every channel passes check_scale and check_zero_point: branch-free loops without
/// a division, which the compiler vectorises (the checks themselves run only to report a
/// failure). For a float s, "finite, > 0, finite f32(1/s)" is exactly 2^-128 < s <= max
/// (checked over every positive float); as the bits of positive floats are ordered like
/// unsigned integers (and negative ones, NaN and Inf fall outside), that is one unsigned
/// range test per scale, `bits - lo <= width` with wrap-around, folded into a running max. Not
/// inlined: inlined into a caller with a constant channel count, GCC 12 leaves these loops
/// scalar (3x slower at 256 channels). Arch: the caller's architecture tag (the loops are
/// vectorised for the TU's flags; see simd/arch.hpp).
template <class Arch, class Z>
[[gnu::noinline]] bool all_channel_params_valid(const float* scale, const Z* zero_point,
                                                std::int64_t count, const QuantRange& r) noexcept {
  constexpr float kMax = std::numeric_limits<float>::max();
  constexpr std::uint32_t kLoBits = 0x00200001u;   // the float after 2^-128 (0x00200000)
  constexpr std::uint32_t kMaxBits = 0x7f7fffffu;  // bits of kMax
  std::uint32_t worst = 0;
  for (std::int64_t c = 0; c < count; ++c) {
    std::uint32_t bits;
    std::memcpy(&bits, scale + c, sizeof bits);
    const std::uint32_t off = bits - kLoBits;
    worst = off > worst ? off : worst;
  }
  if (worst > kMaxBits - kLoBits) return false;
  if constexpr (std::is_floating_point<Z>::value) {
    int bad = 0;
    for (std::int64_t c = 0; c < count; ++c)
      bad |= static_cast<int>(!(std::fabs(zero_point[c]) <= kMax));
    return bad == 0;
  } else {
    constexpr std::int64_t kLo = std::numeric_limits<std::int32_t>::min();
    constexpr std::int64_t kHi = std::numeric_limits<std::int32_t>::max();
    if (r.quant_min < kLo || r.quant_max > kHi) return false;  // the exact checks decide
    // lo <= z <= hi as one unsigned test: z - lo <= hi - lo (wrapping in uint32).
    const auto lo = static_cast<std::uint32_t>(static_cast<std::int32_t>(r.quant_min));
    const auto width = static_cast<std::uint32_t>(static_cast<std::int32_t>(r.quant_max)) - lo;
    std::uint32_t zworst = 0;
    for (std::int64_t c = 0; c < count; ++c) {
      const std::uint32_t off = static_cast<std::uint32_t>(zero_point[c]) - lo;
      zworst = off > zworst ? off : zworst;
    }
    return zworst <= width;
  }
}

/// The prologue every forward shares: the mask is prepared for x's visiting order (also for
/// an empty x), the run plan of x and y is built, and body(plan, xs, ys, bw) walks it with the
/// innermost strides xs, ys and the mask's BitWriter (null without a mask), which is flushed
/// afterwards. `words` is the mask's first word, for kernels that write whole words.
template <class T, class Body>
void drive_forward(const TensorView<const T>& x, const TensorView<T>& y, Mask* mask, int axis,
                   Body&& body) {
  const DimOrder order = order_by_strides(x.rank(), x.strides());
  std::uint64_t* words = mask ? mask->prepare(x.rank(), x.shape(), order) : nullptr;
  if (x.numel() == 0) return;
  const auto plan =
      make_run_plan<2>(x.rank(), x.shape(), {&x.strides(), &y.strides()}, order, axis);
  const auto last = static_cast<std::size_t>(plan.nd - 1);
  const auto xs = static_cast<std::ptrdiff_t>(plan.stride[0][last]);
  const auto ys = static_cast<std::ptrdiff_t>(plan.stride[1][last]);
  BitWriter writer(words, 0);
  body(plan, xs, ys, words ? &writer : nullptr, words);
  if (words) writer.flush();  // a no-op when a rows kernel wrote the words itself
}

/// The forward over a float-exact range (or a double tensor). Per tensor: axis -1, one pair
/// scale[0], zero_point[0]. Contiguous runs with int32 zero points are offered to the runner.
template <class N, class Runner, class T, class Z>
void fake_quantize_runs(const TensorView<const T>& x, const TensorView<T>& y, Mask* mask, int axis,
                        const float* scale, const Z* zero_point, const QuantRange& range,
                        const Runner& runner) {
  using Arch = typename Runner::arch;
  constexpr bool kFloatZp = std::is_floating_point<Z>::value;
  drive_forward(
      x, y, mask, axis,
      [&](const auto& plan, std::ptrdiff_t xs, std::ptrdiff_t ys, BitWriter* bw,
          std::uint64_t* words) {
        const bool simd_ok = runner.simd && !kFloatZp && xs == 1 && ys == 1;
        // The channel loop right outside contiguous runs (weights [C, K]): one call for all rows.
        if (simd_ok && plan.nd == 2 && plan.axis == 0 &&
            runner.template rows<N>(x.data(), static_cast<std::ptrdiff_t>(plan.stride[0][0]),
                                    y.data(), static_cast<std::ptrdiff_t>(plan.stride[1][0]),
                                    plan.extent[0], plan.extent[1], scale, zero_point, range,
                                    words))
          return;
        for_each_run(plan, [&](const auto& off, std::int64_t n, std::int64_t ch, std::int64_t) {
          const T* xp = x.data() + off[0];
          T* yp = y.data() + off[1];
          if (ch < 0) {  // the run walks the channel axis
            if (!(simd_ok &&
                  runner.template run_varying<N>(xp, yp, n, scale, zero_point, range, bw)))
              fq_run_scalar_varying<Arch, N>(xp, xs, yp, ys, n, scale, zero_point, range, bw);
            return;
          }
          const auto p =
              make_element_params<N, T>(scale[ch], static_cast<double>(zero_point[ch]), range);
          if (!(simd_ok && runner.template run<N>(xp, yp, n, p, bw, range)))
            fq_run_scalar<Arch, N, kFloatZp>(xp, xs, yp, ys, n, p, bw);
        });
      });
}

/// The forward of float tensors on a range that is not float_exact_range: the exact scalar
/// path (fake_quant_element_wide) whatever the runner. Arguments as fake_quantize_runs.
template <class N, class Arch, class Z>
void fake_quantize_wide(const TensorView<const float>& x, const TensorView<float>& y, Mask* mask,
                        int axis, const float* scale, const Z* zero_point,
                        const QuantRange& range) {
  constexpr bool kFloatZp = std::is_floating_point<Z>::value;
  drive_forward(
      x, y, mask, axis,
      [&](const auto& plan, std::ptrdiff_t xs, std::ptrdiff_t ys, BitWriter* bw, std::uint64_t*) {
        for_each_run(plan, [&](const auto& off, std::int64_t n, std::int64_t ch, std::int64_t) {
          const float* xp = x.data() + off[0];
          float* yp = y.data() + off[1];
          if (ch < 0)
            fq_run_wide_varying<Arch, N>(xp, xs, yp, ys, n, scale, zero_point, range, bw);
          else
            fq_run_wide<Arch, N, kFloatZp>(
                xp, xs, yp, ys, n,
                make_wide_params<N>(scale[ch], static_cast<double>(zero_point[ch]), range), bw);
        });
      });
}

/// Chooses the exact wide path or the runs, once per call. (Not instantiated for other
/// element types, so that static_check_float's sentence is the only error.)
template <class N, class Runner, class T, class Z>
void fake_quantize_any_range(const TensorView<const T>& x, const TensorView<T>& y, Mask* mask,
                             int axis, const float* scale, const Z* zero_point,
                             const QuantRange& range, const Runner& runner) {
  if constexpr (std::is_same<T, float>::value) {
    if (!float_exact_range(range)) {
      fake_quantize_wide<N, typename Runner::arch>(x, y, mask, axis, scale, zero_point, range);
      return;
    }
  }
  if constexpr (kFloatTensor<T>)
    fake_quantize_runs<N>(x, y, mask, axis, scale, zero_point, range, runner);
}

/// The runner of the scalar reference: no hook takes a run.
template <class Arch>
struct ScalarRuns {
  using arch = Arch;
  bool simd = false;
  template <class N, class T>
  bool run(const T*, T*, std::int64_t, const ElementParams<T>&, BitWriter*,
           const QuantRange&) const noexcept {
    return false;
  }
  template <class N, class T, class Z>
  bool run_varying(const T*, T*, std::int64_t, const float*, const Z*, const QuantRange&,
                   BitWriter*) const noexcept {
    return false;
  }
  template <class N, class T, class Z>
  bool rows(const T*, std::ptrdiff_t, T*, std::ptrdiff_t, std::int64_t, std::int64_t, const float*,
            const Z*, const QuantRange&, std::uint64_t*) const noexcept {
    return false;
  }
  template <class T>
  bool ste(const T*, T*, std::int64_t, BitReader&) const noexcept {
    return false;
  }
};

/// fake_quantize_per_tensor (kernels/fake_quantize.hpp) with the checks, on `runner`.
template <class N, class Runner, class X, class Y, class Z>
void fake_quantize_per_tensor_driver(X&& x, Y&& y, Mask* mask, float scale, Z zero_point,
                                     QuantRange range, const Runner& runner) {
  using T = view_scalar_t<Y>;
  static_check_float<T>();
  static_assert(std::is_same<Z, std::int32_t>::value || std::is_same<Z, float>::value,
                "fake_quantize_per_tensor: zero_point must be std::int32_t or float.");
  constexpr const char* kWhere = "fake_quantize_per_tensor";
  const TensorView<const T> xv = as_view(std::forward<X>(x));
  const TensorView<T> yv = as_view(std::forward<Y>(y));
  check_fake_quant_range(range, kWhere);
  check_scale(scale, kWhere);
  check_zero_point(zero_point, range, kWhere);
  check_output(xv, yv, kWhere);
  fake_quantize_any_range<N>(xv, yv, mask, -1, &scale, &zero_point, range, runner);
}

/// fake_quantize_per_channel (kernels/fake_quantize.hpp) with the checks, on `runner`.
template <class N, class Runner, class X, class Y, class Z>
void fake_quantize_per_channel_driver(X&& x, Y&& y, Mask* mask, const float* scale,
                                      const Z* zero_point, std::int64_t count, int axis,
                                      QuantRange range, const Runner& runner) {
  using T = view_scalar_t<Y>;
  static_check_float<T>();
  static_assert(std::is_same<Z, std::int32_t>::value || std::is_same<Z, float>::value,
                "fake_quantize_per_channel: zero_point must be std::int32_t or float.");
  constexpr const char* kWhere = "fake_quantize_per_channel";
  const TensorView<const T> xv = as_view(std::forward<X>(x));
  const TensorView<T> yv = as_view(std::forward<Y>(y));
  check_fake_quant_range(range, kWhere);
  const int ax = normalize_axis(axis, xv.rank(), kWhere);
  if (xv.numel() == 0) {  // a no-op: nothing to quantize, so no parameter to check
    check_output(xv, yv, kWhere);
    if (mask) mask->prepare(xv.rank(), xv.shape(), order_by_strides(xv.rank(), xv.strides()));
    return;
  }
  FQ_CHECK(count == xv.size(ax), ErrorCode::kParamCountMismatch,
           msg(kWhere, ": ", count, " scale/zero-point pairs for ", xv.size(ax),
               " channels on axis ", axis));
  FQ_CHECK(count == 0 || (scale && zero_point), ErrorCode::kInvalidArgument,
           msg(kWhere, ": null scale or zero-point array"));
  if (!all_channel_params_valid<typename Runner::arch>(scale, zero_point, count, range)) {
    for (std::int64_t c = 0; c < count; ++c) {  // report the first bad one
      check_scale(scale[c], kWhere);
      check_zero_point(zero_point[c], range, kWhere);
    }
  }
  check_output(xv, yv, kWhere);
  fake_quantize_any_range<N>(xv, yv, mask, ax, scale, zero_point, range, runner);
}

/// fake_quantize_backward (kernels/fake_quantize.hpp) with the checks, on `runner`.
template <class ClampGrad, class Runner, class DY, class DX>
void fake_quantize_backward_driver(DY&& dy, const Mask& mask, DX&& dx, const Runner& runner) {
  static_assert(is_clamp_grad<ClampGrad>::value,
                "fake_quantize_backward: ClampGrad must be MaskedSte or PassThroughSte.");
  using T = view_scalar_t<DX>;
  static_check_float<T>();
  constexpr const char* kWhere = "fake_quantize_backward";
  const TensorView<const T> g = as_view(std::forward<DY>(dy));
  const TensorView<T> out = as_view(std::forward<DX>(dx));
  check_output(g, out, kWhere);
  FQ_CHECK(mask.written(), ErrorCode::kInvalidArgument,
           msg(kWhere, ": the mask was never written; pass the Mask a forward filled"));
  bool shape_ok = g.rank() == mask.rank();
  for (int d = 0; shape_ok && d < g.rank(); ++d)
    shape_ok = g.size(d) == mask.shape()[static_cast<std::size_t>(d)];
  FQ_CHECK(shape_ok, ErrorCode::kShapeMismatch,
           msg(kWhere, ": gradient shape ", shape_string(g.rank(), g.shape()),
               " differs from the shape the mask was written for ",
               shape_string(mask.rank(), mask.shape())));
  if (g.numel() == 0) return;
  const auto plan =
      make_run_plan<2>(g.rank(), g.shape(), {&g.strides(), &out.strides()}, mask.order(), -1);
  const auto last = static_cast<std::size_t>(plan.nd - 1);
  const auto gs = static_cast<std::ptrdiff_t>(plan.stride[0][last]);
  const auto os = static_cast<std::ptrdiff_t>(plan.stride[1][last]);
  const bool simd_ok = runner.simd && gs == 1 && os == 1;
  for_each_run(plan, [&](const auto& off, std::int64_t n, std::int64_t, std::int64_t bit) {
    const T* gp = g.data() + off[0];
    T* op = out.data() + off[1];
    if constexpr (ClampGrad::kPassThrough) {
      if (gp != op)
        for (std::int64_t i = 0; i < n; ++i) op[i * os] = gp[i * gs];
    } else if constexpr (kFloatTensor<T>) {  // (static_check_float reports other types)
      BitReader br(mask.words().data(), bit);
      if (!(simd_ok && runner.ste(gp, op, n, br)))
        ste_run_scalar<typename Runner::arch>(gp, gs, op, os, n, br);
    }
  });
}

}  // namespace detail
}  // namespace fq

#endif  // FQ_CORE_FAKE_QUANTIZE_HPP_
