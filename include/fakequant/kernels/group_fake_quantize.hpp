// SPDX-License-Identifier: MIT
// fakequant/kernels/group_fake_quantize.hpp: group-wise (block-wise) and per-token integer fake
// quantization of a contiguous tensor — the scalar reference, the qparams rule and the
// dispatch to the SIMD kernels (simd/group_fake_quantize_simd.hpp, simd/fake_quantize_simd.hpp).
//
// Groups: core/group_layout.hpp (G consecutive elements along an axis; per token: the whole
// last axis). For each group with min m and max M of its elements (TorchAO's
// choose_qparams_affine, torchao/quantization/quant_primitives.py, all in float32):
//   m- = min(m, 0), M+ = max(M, 0)
//   Symmetric:  s = max(-m-, M+) / ((qmax - qmin) / 2),  s = max(s, eps)
//               z = (qmin + qmax + 1) / 2 truncated (0 for signed ranges, 2^(b-1) unsigned)
//   Affine (GroupZeroPoint::kChooseQParamsAffine):
//               s = (M+ - m-) / (qmax - qmin),  s = max(s, eps)
//               z = clamp(qmin - round(m- / s), qmin, qmax)          (a division, as TorchAO)
//   Affine (GroupZeroPoint::kPerTokenMinError: TorchAO's legacy
//   _choose_qparams_per_token_asymmetric, the 8da4w QAT activations before April 2025):
//               s as above; d_lo = m- / s, d_hi = M+ / s
//               z = round(clamp(qmin + qmax + d_lo + d_hi > 0 ? qmin - d_lo : qmax - d_hi,
//                               qmin, qmax))                           (clamp, then round)
// round is half to even (torch.round). eps: kSmallestNormal (1.17549435e-38, choose_qparams_
// affine's default for float32) or kFloat32Epsilon (1.1920929e-7, the 8da4w activations).
// Element formula (TorchAO's _fake_quantize_affine; the per-tensor kernels' formula, shared):
//   q = round(x * f32(1/s)) + z;  y = (clamp(q, qmin, qmax) - z) * s;  mask = qmin <= q <= qmax
// (the mask on the rounded, unclamped level: the gradient torch.clamp passes in TorchAO's
// autograd graph; TorchAO's _fake_quantize_affine_cachemask tests the clamped level instead,
// which is always in range).
// Non-finite inputs: a group holding a NaN or an infinity gets a non-finite scale in TorchAO
// (amin/amax propagate NaN; inf / 7.5 = inf) and every output of the group is NaN (x * 0 * inf,
// or NaN * ...). fq does the same, made explicit: the group's scale is NaN (a NaN present) or
// +inf, its zero point the symmetric one, every y of the group a quiet NaN, every mask bit 0.
// The failure stays visible and local (a NaN loss that an AMP-style step skip handles), where
// an exception would stop training on one bad activation row; frozen quantizers refuse such
// scales (set_qparams, freeze: kInvalidScale).
#ifndef FQ_KERNELS_GROUP_FAKE_QUANTIZE_HPP_
#define FQ_KERNELS_GROUP_FAKE_QUANTIZE_HPP_

#include <algorithm>  // min, max
#include <cmath>      // isfinite, isnan, nearbyint
#include <cstdint>    // int32_t, int64_t, uint64_t
#include <limits>     // numeric_limits
#include <vector>     // vector

#include <fakequant/base/config.hpp>
#include <fakequant/base/error.hpp>
#include <fakequant/core/bit_writer.hpp>
#include <fakequant/core/checks.hpp>
#include <fakequant/core/fake_quantize_scalar.hpp>
#include <fakequant/core/group_layout.hpp>
#include <fakequant/core/mask.hpp>
#include <fakequant/core/tensor_view.hpp>
#include <fakequant/scheme/numerics.hpp>
#include <fakequant/scheme/qscheme.hpp>
#include <fakequant/scheme/range.hpp>
#include <fakequant/simd/arch.hpp>
#include <fakequant/simd/fake_quantize_simd.hpp>
#include <fakequant/simd/group_fake_quantize_simd.hpp>

namespace fq {

/// How an affine group's zero point is chosen (file comment).
enum class GroupZeroPoint {
  kChooseQParamsAffine,  ///< TorchAO choose_qparams_affine: qmin - round(m- / s), clamped
  kPerTokenMinError,     ///< TorchAO _choose_qparams_per_token_asymmetric (legacy 8da4w)
};
/// The floor of a dynamic scale.
enum class GroupScaleEps {
  kSmallestNormal,  ///< 1.17549435e-38: choose_qparams_affine's default for float32 input
  kFloat32Epsilon,  ///< 1.1920929e-7: the 8da4w activation config, the legacy per-token rule
};
/// The run-time rule of a dynamic scale and zero point.
struct GroupQParamsRule {
  GroupZeroPoint zero_point = GroupZeroPoint::kChooseQParamsAffine;
  GroupScaleEps eps = GroupScaleEps::kSmallestNormal;
  float eps_value() const noexcept {
    return eps == GroupScaleEps::kSmallestNormal ? std::numeric_limits<float>::min()
                                                 : std::numeric_limits<float>::epsilon();
  }
};

namespace detail {

/// min, max and NaN presence of a contiguous group: the scalar reference.
inline void group_minmax_scalar(const float* x, std::int64_t n, float& mn, float& mx,
                                bool& has_nan) noexcept {
  float lo = std::numeric_limits<float>::infinity(), hi = -lo;
  bool nan = false;
  for (std::int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    nan = nan || std::isnan(v);
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  mn = lo;
  mx = hi;
  has_nan = nan;
}

/// The (scale, zero point) of a group from its min, max and NaN flag (file comment).
/// `sym_zero`: the symmetric zero point. Returns false for a non-finite group.
template <bool Symmetric>
inline bool group_qparams(float mn, float mx, bool has_nan, const QuantRange& r,
                          const GroupQParamsRule& rule, std::int32_t sym_zero, float& scale,
                          std::int32_t& zero) noexcept {
  if (has_nan || !std::isfinite(mn) || !std::isfinite(mx)) {
    scale =
        has_nan ? std::numeric_limits<float>::quiet_NaN() : std::numeric_limits<float>::infinity();
    zero = sym_zero;
    return false;
  }
  const float qmin = static_cast<float>(r.quant_min), qmax = static_cast<float>(r.quant_max);
  const float lo = mn < 0.0f ? mn : 0.0f;  // +0 for -0: the sign of zero never matters below
  const float hi = mx > 0.0f ? mx : 0.0f;
  const float eps = rule.eps_value();
  if constexpr (Symmetric) {
    const float amax = std::max(-lo, hi);
    const float half = static_cast<float>(static_cast<double>(r.quant_max - r.quant_min) / 2);
    scale = std::max(amax / half, eps);
    zero = sym_zero;
  } else {
    scale = std::max((hi - lo) / static_cast<float>(r.quant_max - r.quant_min), eps);
    float z;
    if (rule.zero_point == GroupZeroPoint::kChooseQParamsAffine) {
      z = std::min(std::max(qmin - std::nearbyint(lo / scale), qmin), qmax);
    } else {
      const float d_lo = lo / scale, d_hi = hi / scale;
      const float from_min = qmin + d_lo, from_max = qmax + d_hi;
      const float zf = from_min + from_max > 0.0f ? qmin - d_lo : qmax - d_hi;
      z = std::nearbyint(std::min(std::max(zf, qmin), qmax));
    }
    zero = static_cast<std::int32_t>(z);
  }
  return true;
}

/// The symmetric zero point TorchAO uses: int((qmax + qmin + 1) / 2).
inline std::int32_t torchao_symmetric_zero(const QuantRange& r) noexcept {
  return static_cast<std::int32_t>(static_cast<double>(r.quant_max + r.quant_min + 1) / 2);
}

/// Checks common to the entry points: x contiguous (y too, if given), L the layout of x, and
/// a float-exact range.
inline void check_group_io(const TensorView<const float>& x, const TensorView<float>* y,
                           const GroupLayout& L, const QuantRange& r, const char* where) {
  if (y)
    check_contiguous_io(x, *y, where);
  else
    FQ_CHECK(x.is_contiguous(), ErrorCode::kInvalidLayout,
             msg(where,
                 ": group formats take contiguous row-major tensors; copy a strided view "
                 "first"));
  FQ_CHECK(
      L.numel() == x.numel(), ErrorCode::kShapeMismatch,
      msg(where, ": the group layout covers ", L.numel(), " elements, the tensor has ", x.numel()));
  FQ_CHECK(float_exact_range(r), ErrorCode::kInvalidRange,
           msg(where, ": group formats take ranges of at most 2^24 levels, got [", r.quant_min,
               ", ", r.quant_max, "]"));
}

/// True if every scale lies in [smallest normal, FLT_MAX] (so check_scale passes: 1 / s is
/// finite) and every zero point in the range: a branch-free, vectorizable pass instead of a
/// division per group. False means "run check_scale / check_zero_point", which may still
/// accept a subnormal scale with a finite inverse.
inline bool group_qparams_plainly_valid(const float* scale, const std::int32_t* zero,
                                        std::int64_t n, const QuantRange& r) noexcept {
  const float lo = std::numeric_limits<float>::min(), hi = std::numeric_limits<float>::max();
  unsigned ok = 1;
  for (std::int64_t g = 0; g < n; ++g) {
    const std::int64_t z = zero[g];
    ok &= static_cast<unsigned>((scale[g] >= lo) & (scale[g] <= hi) & (z >= r.quant_min) &
                                (z <= r.quant_max));
  }
  return ok != 0;
}

/// The fake quant of one contiguous group with fixed parameters: the scalar reference.
template <class N, class Arch>
inline void group_run(const float* x, float* y, std::int64_t n, float scale, std::int32_t zero,
                      const QuantRange& r, BitWriter* bw) noexcept {
  if (!std::isfinite(scale)) {  // a non-finite group (file comment)
    for (std::int64_t i = 0; i < n; ++i) y[i] = std::numeric_limits<float>::quiet_NaN();
    if (bw)
      for (std::int64_t i = 0; i < n; i += 64)
        bw->put(0, static_cast<int>(std::min<std::int64_t>(64, n - i)));
    return;
  }
  const auto p = make_element_params<N, float>(scale, static_cast<double>(zero), r);
  fq_run_scalar<Arch, N, false>(x, 1, y, 1, n, p, bw);
}

/// The rows of a layout whose groups do not lie along the last axis (inner > 1): row (o, k)
/// holds `inner` elements, element i of it using group (o * gpa + k / G) * inner + i.
template <class N, class Arch>
void group_rows_varying(const float* x, float* y, const GroupLayout& L, const float* scale,
                        const std::int32_t* zero, const QuantRange& r, BitWriter* bw, bool simd) {
  for (std::int64_t o = 0; o < L.outer; ++o)
    for (std::int64_t k = 0; k < L.axis_len; ++k) {
      const std::int64_t off = (o * L.axis_len + k) * L.inner;
      const std::int64_t g0 = (o * L.groups_per_axis + k / L.group_size) * L.inner;
      bool any_bad = false;
      for (std::int64_t i = 0; i < L.inner; ++i) any_bad = any_bad || !std::isfinite(scale[g0 + i]);
      if (any_bad) {  // element by element: non-finite groups give NaN and mask 0
        for (std::int64_t i = 0; i < L.inner; ++i)
          group_run<N, Arch>(x + off + i, y + off + i, 1, scale[g0 + i], zero[g0 + i], r, bw);
        continue;
      }
#if FQ_HAS_XSIMD
      if constexpr (kSimdArch<Arch>) {
        if (simd) {
          simd::fq_run_varying<N, Arch>(x + off, y + off, L.inner, scale + g0, zero + g0, r, bw);
          continue;
        }
      }
#endif
      (void)simd;
      fq_run_scalar_varying<Arch, N>(x + off, 1, y + off, 1, L.inner, scale + g0, zero + g0, r, bw);
    }
}

/// The min/max of every group of a layout with inner > 1 (scalar; one pass over x).
template <bool Symmetric>
void group_qparams_strided(const float* x, const GroupLayout& L, const QuantRange& r,
                           const GroupQParamsRule& rule, std::int32_t sym_zero, float* scale,
                           std::int32_t* zero) {
  const auto ng = static_cast<std::size_t>(L.groups());
  std::vector<float> lo(ng, std::numeric_limits<float>::infinity()), hi(ng, -lo[0]);
  std::vector<unsigned char> nan(ng, 0);
  for (std::int64_t o = 0; o < L.outer; ++o)
    for (std::int64_t k = 0; k < L.axis_len; ++k) {
      const float* row = x + (o * L.axis_len + k) * L.inner;
      const auto g0 =
          static_cast<std::size_t>((o * L.groups_per_axis + k / L.group_size) * L.inner);
      for (std::int64_t i = 0; i < L.inner; ++i) {
        const float v = row[i];
        const auto g = g0 + static_cast<std::size_t>(i);
        nan[g] = static_cast<unsigned char>(nan[g] | std::isnan(v));
        lo[g] = std::min(lo[g], v);
        hi[g] = std::max(hi[g], v);
      }
    }
  for (std::size_t g = 0; g < ng; ++g)
    group_qparams<Symmetric>(lo[g], hi[g], nan[g] != 0, r, rule, sym_zero, scale[g], zero[g]);
}

template <class Arch>
void group_minmax_dispatch(const float* x, std::int64_t n, float& mn, float& mx, bool& nan,
                           bool simd) noexcept {
#if FQ_HAS_XSIMD
  if constexpr (kSimdArch<Arch>) {
    if (simd) {
      simd::group_minmax<Arch>(x, n, mn, mx, nan);
      return;
    }
  }
#endif
  (void)simd;
  group_minmax_scalar(x, n, mn, mx, nan);
}

/// The driver of the three entry points: with `out_scale` the qparams are chosen from x and
/// written there (then read back); else read from `scale`/`zero`. Then, if y, the fake quant.
template <class Scheme, class Arch>
void group_driver(TensorView<const float> x, TensorView<float>* y, Mask* mask, const GroupLayout& L,
                  const QuantRange& r, const GroupQParamsRule& rule, float* out_scale,
                  std::int32_t* out_zero, const float* scale, const std::int32_t* zero, bool simd) {
  const bool choose = out_scale != nullptr;
  if (choose) scale = out_scale, zero = out_zero;
  using N = typename Scheme::numerics;
  constexpr bool kSym = Scheme::mapping::kSymmetric;
  const std::int32_t sym_zero = torchao_symmetric_zero(r);
  std::uint64_t* words = nullptr;
  if (y && mask) words = mask->prepare(x.rank(), x.shape(), row_major_order());
  BitWriter writer(words, 0);
  BitWriter* bw = words ? &writer : nullptr;
  const float* xp = x.data();
  float* yp = y ? y->data() : nullptr;
  if (L.numel() == 0) return;
  if (L.inner == 1) {  // groups are contiguous runs: qparams and fake quant fused per group
    auto qparams = [&](float mn, float mx, bool nan, float& s, std::int32_t& z) {
      group_qparams<kSym>(mn, mx, nan, r, rule, sym_zero, s, z);
    };
#if FQ_HAS_XSIMD
    if constexpr (kSimdArch<Arch>) {
      if (simd && yp) {
        // Without `choose` the kernel only reads scale / zero (const_cast: never written).
        float* s = const_cast<float*>(scale);  // NOLINT(cppcoreguidelines-pro-type-const-cast)
        std::int32_t* z =
            const_cast<std::int32_t*>(zero);  // NOLINT(cppcoreguidelines-pro-type-const-cast)
        const std::int64_t G = L.group_size;
        // The blocks write whole mask words from bit 0; group_rows appends the rest.
        const std::int64_t done =
            simd::group_blocks<N, kSym, Arch>(xp, yp, L.outer, L.axis_len, G, r, s, z, choose,
                                              rule.zero_point == GroupZeroPoint::kPerTokenMinError,
                                              rule.eps_value(), sym_zero, qparams, words);
        BitWriter rest(words, words ? done * G : 0);
        BitWriter* rw = words ? &rest : nullptr;
        if (done > 0)  // the rest: fewer than W groups, all full
          simd::group_rows<N, Arch>(xp + done * G, yp + done * G, 1, (L.groups() - done) * G, G, r,
                                    s + done, z + done, choose, qparams, rw);
        else
          simd::group_rows<N, Arch>(xp, yp, L.outer, L.axis_len, G, r, s, z, choose, qparams, rw);
        if (rw) rw->flush();
        return;
      }
    }
#endif
    for (std::int64_t o = 0; o < L.outer; ++o)
      for (std::int64_t j = 0; j < L.groups_per_axis; ++j) {
        const std::int64_t g = o * L.groups_per_axis + j;
        const std::int64_t off = o * L.axis_len + j * L.group_size;
        const std::int64_t n = L.group_len(j);
        if (choose) {
          float mn, mx;
          bool nan;
          group_minmax_dispatch<Arch>(xp + off, n, mn, mx, nan, simd);
          qparams(mn, mx, nan, out_scale[g], out_zero[g]);
        }
        if (yp) group_run<N, Arch>(xp + off, yp + off, n, scale[g], zero[g], r, bw);
      }
  } else {
    if (choose) group_qparams_strided<kSym>(xp, L, r, rule, sym_zero, out_scale, out_zero);
    if (yp) group_rows_varying<N, Arch>(xp, yp, L, scale, zero, r, bw, simd);
  }
  if (bw) bw->flush();
}

}  // namespace detail

/// The dynamic (scale, zero point) of every group of x (file comment), written to
/// scale[L.groups()] and zero_point[L.groups()]. Scheme: its mapping (Symmetric / Affine).
/// @param L the layout of x (detail::make_group_layout). @param path Isa::kAuto or kScalar.
template <class Scheme, class Arch = DefaultArch>
void choose_group_qparams(TensorView<const float> x, const GroupLayout& L, QuantRange range,
                          const GroupQParamsRule& rule, float* scale, std::int32_t* zero_point,
                          Isa path = Isa::kAuto) {
  constexpr const char* kWhere = "choose_group_qparams";
  const bool simd = detail::use_simd_kernels<Arch>(path, kWhere);
  detail::check_group_io(x, nullptr, L, range, kWhere);
  detail::group_driver<Scheme, Arch>(x, nullptr, nullptr, L, range, rule, scale, zero_point,
                                     nullptr, nullptr, simd);
}

/// Fake-quantizes x into y (may be x) with the given per-group scales and zero points (each
/// L.groups() entries: scales finite > 0 with a finite inverse, zero points in range).
/// Scheme: numerics (rounding, scale application, overflow). mask: row-major bits, if not null.
template <class Scheme, class Arch = DefaultArch>
void fake_quantize_per_group(TensorView<const float> x, TensorView<float> y, Mask* mask,
                             const GroupLayout& L, const float* scale,
                             const std::int32_t* zero_point, QuantRange range,
                             Isa path = Isa::kAuto) {
  constexpr const char* kWhere = "fake_quantize_per_group";
  const bool simd = detail::use_simd_kernels<Arch>(path, kWhere);
  detail::check_group_io(x, &y, L, range, kWhere);
  if (!detail::group_qparams_plainly_valid(scale, zero_point, L.groups(), range))
    for (std::int64_t g = 0; g < L.groups(); ++g) {  // the exact checks, and their errors
      detail::check_scale(scale[g], kWhere);
      detail::check_zero_point(zero_point[g], range, kWhere);
    }
  detail::group_driver<Scheme, Arch>(x, &y, mask, L, range, GroupQParamsRule{}, nullptr, nullptr,
                                     scale, zero_point, simd);
}

/// Dynamic fake quant: the qparams of every group from x (choose_group_qparams), written to
/// scale / zero_point, and the fake quant with them, in one pass over x when the groups lie
/// along the last axis.
template <class Scheme, class Arch = DefaultArch>
void fake_quantize_per_group_dynamic(TensorView<const float> x, TensorView<float> y, Mask* mask,
                                     const GroupLayout& L, QuantRange range,
                                     const GroupQParamsRule& rule, float* scale,
                                     std::int32_t* zero_point, Isa path = Isa::kAuto) {
  constexpr const char* kWhere = "fake_quantize_per_group_dynamic";
  const bool simd = detail::use_simd_kernels<Arch>(path, kWhere);
  detail::check_group_io(x, &y, L, range, kWhere);
  detail::group_driver<Scheme, Arch>(x, &y, mask, L, range, rule, scale, zero_point, nullptr,
                                     nullptr, simd);
}

}  // namespace fq

#endif  // FQ_KERNELS_GROUP_FAKE_QUANTIZE_HPP_
