// SPDX-License-Identifier: MIT
// fakequant/core/checks.hpp: validation of fake-quant arguments, shared by every entry point.
#ifndef FQ_CORE_CHECKS_HPP_
#define FQ_CORE_CHECKS_HPP_

#include <cmath>        // isfinite
#include <cstdint>      // int64_t, intptr_t
#include <type_traits>  // is_floating_point

#include <fakequant/base/error.hpp>
#include <fakequant/core/tensor_view.hpp>
#include <fakequant/scheme/range.hpp>

namespace fq {
namespace detail {

/// A scale must be finite, > 0, and have a finite float32 inverse.
inline void check_scale(float scale, const char* where) {
  FQ_CHECK(std::isfinite(scale) && scale > 0.0f && std::isfinite(1.0f / scale),
           ErrorCode::kInvalidScale,
           msg(where, ": scale must be finite and > 0 with a finite float32 inverse, got ", scale));
}

/// An integer zero point must lie in the range; a float one must be finite (NaN is named as
/// such: a zero point that became NaN, e.g. a learned one, is reported before any use).
template <class Z>
inline void check_zero_point(Z z, const QuantRange& r, const char* where) {
  if constexpr (std::is_floating_point<Z>::value) {
    FQ_CHECK(!std::isnan(z), ErrorCode::kInvalidZeroPoint, msg(where, ": zero point is NaN"));
    FQ_CHECK(std::isfinite(z), ErrorCode::kInvalidZeroPoint,
             msg(where, ": float zero point must be finite, got ", z));
  } else {
    FQ_CHECK(z >= r.quant_min && z <= r.quant_max, ErrorCode::kInvalidZeroPoint,
             msg(where, ": zero point ", z, " is outside [", r.quant_min, ", ", r.quant_max, "]"));
  }
}

/// A channel axis in [-rank, rank), returned non-negative.
inline int normalize_axis(int axis, int rank, const char* where) {
  FQ_CHECK(axis >= -rank && axis < rank, ErrorCode::kInvalidAxis,
           msg(where, ": axis ", axis, " is out of range for a rank-", rank, " tensor"));
  return axis < 0 ? axis + rank : axis;
}

/// The lowest and highest element offsets a view touches (numel > 0).
template <class T>
inline void offset_span(const TensorView<T>& v, std::int64_t& lo, std::int64_t& hi) noexcept {
  lo = hi = 0;
  for (int d = 0; d < v.rank(); ++d) {
    const std::int64_t reach = (v.size(d) - 1) * v.stride(d);
    (reach < 0 ? lo : hi) += reach;
  }
}

/// `out` must match `in` in shape, must not overlap itself, and may alias `in` only exactly
/// (in-place), not partially.
/// Whether the address spans of `a` and `b` (first to last element, in bytes) are disjoint.
template <class A, class B>
inline bool spans_disjoint(const TensorView<A>& a, const TensorView<B>& b) noexcept {
  std::int64_t alo, ahi, blo, bhi;
  offset_span(a, alo, ahi);
  offset_span(b, blo, bhi);
  // Byte addresses as integers: comparing pointers into unrelated arrays is unspecified.
  const auto ab = reinterpret_cast<std::intptr_t>(a.data());
  const auto bb = reinterpret_cast<std::intptr_t>(b.data());
  const auto asz = static_cast<std::intptr_t>(sizeof(A)),
             bsz = static_cast<std::intptr_t>(sizeof(B));
  return ab + (ahi + 1) * asz <= bb + blo * bsz || bb + (bhi + 1) * bsz <= ab + alo * asz;
}

template <class A, class B>
inline void check_output(const TensorView<A>& in, const TensorView<B>& out, const char* where) {
  FQ_CHECK(
      same_shape(in, out), ErrorCode::kShapeMismatch,
      msg(where, ": input and output shapes differ (", shape_str(in), " vs ", shape_str(out), ")"));
  if (out.numel() == 0) return;
  check_no_self_overlap(out, where);  // tensor_view.hpp: stride 0, interleaved strides
  FQ_CHECK(in.data() != nullptr && out.data() != nullptr, ErrorCode::kInvalidArgument,
           msg(where, ": null data pointer for a non-empty tensor"));
  const bool identical =
      static_cast<const void*>(in.data()) == static_cast<const void*>(out.data()) &&
      in.strides() == out.strides();
  if (identical) return;
  FQ_CHECK(spans_disjoint(in, out), ErrorCode::kInvalidLayout,
           msg(where, ": output partially overlaps the input; use the same view for in-place"));
}

}  // namespace detail
}  // namespace fq

#endif  // FQ_CORE_CHECKS_HPP_
