// SPDX-License-Identifier: MIT
// fakequant/core/group_layout.hpp: where the groups (blocks) of a group-wise or block format
// lie in a contiguous row-major tensor, and the input/output checks the group and block
// quantizers share.
//
// A tensor of shape [d0, ..., d(r-1)] grouped along axis a with group size G is viewed as
// [outer, axis_len, inner] (outer = d0*...*d(a-1), axis_len = d(a), inner = the rest). A group
// is G consecutive indices along the axis at fixed (outer, inner) indices; there are
// groups_per_axis = ceil(axis_len / G) of them per (outer, inner), and the group index of
// element (o, k, i) is  (o * groups_per_axis + k / G) * inner + i  — so for a [N, K] weight
// grouped along K (inner = 1) the scales are the row-major [N, K / G] array TorchAO uses.
// G = kWholeAxisGroup (-1) is the whole axis (per token). With GroupTail::kMustDivide, G must
// divide axis_len (fq::Error kShapeMismatch otherwise); with kShortLast the last group of each
// row holds axis_len mod G elements.
#ifndef FQ_CORE_GROUP_LAYOUT_HPP_
#define FQ_CORE_GROUP_LAYOUT_HPP_

#include <cstdint>  // int64_t

#include <fakequant/base/checked.hpp>
#include <fakequant/base/error.hpp>
#include <fakequant/base/state.hpp>
#include <fakequant/core/checks.hpp>
#include <fakequant/core/tensor_view.hpp>
#include <fakequant/policy/granularity.hpp>

namespace fq {

/// The groups of a contiguous tensor along one axis (see the file comment).
struct GroupLayout {
  std::int64_t outer = 0;            ///< product of the extents before the axis
  std::int64_t axis_len = 0;         ///< extent of the axis
  std::int64_t inner = 0;            ///< product of the extents after the axis (1: last axis)
  std::int64_t group_size = 0;       ///< G (axis_len for a whole-axis group)
  std::int64_t groups_per_axis = 0;  ///< ceil(axis_len / G)

  /// Number of groups (scales) in the tensor.
  std::int64_t groups() const noexcept { return outer * groups_per_axis * inner; }
  std::int64_t numel() const noexcept { return outer * axis_len * inner; }
  /// Number of elements of group j along the axis (G, or the short rest for the last).
  std::int64_t group_len(std::int64_t j_along_axis) const noexcept {
    const std::int64_t begin = j_along_axis * group_size;
    return axis_len - begin < group_size ? axis_len - begin : group_size;
  }
  /// The group of element (o, k, i).
  std::int64_t group_of(std::int64_t o, std::int64_t k, std::int64_t i) const noexcept {
    return (o * groups_per_axis + k / group_size) * inner + i;
  }
  /// The group of the element at row-major offset `flat`.
  std::int64_t group_of_flat(std::int64_t flat) const noexcept {
    const std::int64_t i = flat % inner;
    const std::int64_t k = (flat / inner) % axis_len;
    const std::int64_t o = flat / (inner * axis_len);
    return group_of(o, k, i);
  }
  bool operator==(const GroupLayout& b) const noexcept {
    return outer == b.outer && axis_len == b.axis_len && inner == b.inner &&
           group_size == b.group_size && groups_per_axis == b.groups_per_axis;
  }
  bool operator!=(const GroupLayout& b) const noexcept { return !(*this == b); }
};

namespace detail {

/// Reports a layout to a checkpoint (base/state.hpp) as five int64 under `name`, each in
/// [0, 2^31). A frozen quantizer compares a loaded layout with its input's before it uses its
/// scales, and checks their count against it, so one that is no real layout fails there.
template <class V>
void visit_group_layout_state(V& v, const char* name, GroupLayout& L) {
  std::int64_t a[5] = {L.outer, L.axis_len, L.inner, L.group_size, L.groups_per_axis};
  v.state_span(name, a, 5, state_in(0.0, 2147483647.0));
  L.outer = a[0];
  L.axis_len = a[1];
  L.inner = a[2];
  L.group_size = a[3];
  L.groups_per_axis = a[4];
}

/// Whether L could come from make_group_layout (one restored from a checkpoint might not),
/// and then its group and element counts, computed without overflow.
inline bool layout_counts(const GroupLayout& L, std::int64_t* groups,
                          std::int64_t* numel) noexcept {
  if (L.outer < 0 || L.axis_len < 0 || L.inner < 0 || L.group_size <= 0) return false;
  if (L.groups_per_axis != (L.axis_len + L.group_size - 1) / L.group_size) return false;
  std::int64_t g = 0, n = 0;
  return !mul_overflows(L.outer, L.groups_per_axis, &g) && !mul_overflows(g, L.inner, groups) &&
         !mul_overflows(L.outer, L.axis_len, &n) && !mul_overflows(n, L.inner, numel);
}

/// The layout of `shape` (rank >= 1) grouped along `axis` (negative: from the end) with
/// `group_size` (> 0, or kWholeAxisGroup) and `tail`; errors name `where`.
inline GroupLayout make_group_layout(const std::int64_t* shape, int rank, int axis,
                                     std::int64_t group_size, GroupTail tail, const char* where) {
  FQ_CHECK(rank >= 1, ErrorCode::kInvalidLayout,
           msg(where, ": a group-wise format needs a tensor of rank >= 1"));
  const int a = normalize_axis(axis, rank, where);
  FQ_CHECK(group_size > 0 || group_size == kWholeAxisGroup, ErrorCode::kInvalidArgument,
           msg(where, ": the group size must be > 0, got ", group_size));
  GroupLayout L;
  L.outer = checked_numel(shape, a, where);
  L.axis_len = shape[a];
  L.inner = checked_numel(shape + a + 1, rank - a - 1, where);
  L.group_size = group_size == kWholeAxisGroup ? (L.axis_len > 0 ? L.axis_len : 1) : group_size;
  if (tail == GroupTail::kMustDivide && L.axis_len % L.group_size != 0) {
    Dims d{};
    for (int i = 0; i < rank; ++i) d[static_cast<std::size_t>(i)] = shape[i];
    FQ_CHECK(false, ErrorCode::kShapeMismatch,
             msg(where, ": the group size ", L.group_size, " does not divide the extent ",
                 L.axis_len, " of axis ", a, " (shape ", shape_string(rank, d),
                 "); pad the axis, pick a divisor, or use fq::GroupTail::kShortLast"));
  }
  L.groups_per_axis = (L.axis_len + L.group_size - 1) / L.group_size;
  (void)checked_mul(checked_mul(L.outer, L.groups_per_axis, where, "the group count"), L.inner,
                    where, "the group count");
  return L;
}

/// x and y: the same shape, both contiguous row-major, y either x itself or disjoint from it.
template <class X, class Y>
inline void check_contiguous_io(const TensorView<X>& x, const TensorView<Y>& y, const char* where) {
  check_output(x, y, where);
  FQ_CHECK(x.is_contiguous() && y.is_contiguous(), ErrorCode::kInvalidLayout,
           msg(where, ": group and block formats take contiguous row-major tensors (strides ",
               strides_str(x), " and ", strides_str(y), "); copy a strided view first"));
}

}  // namespace detail
}  // namespace fq

#endif  // FQ_CORE_GROUP_LAYOUT_HPP_
