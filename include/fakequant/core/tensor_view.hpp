// SPDX-License-Identifier: MIT
// fakequant/core/tensor_view.hpp: a non-owning strided view (pointer + shape + strides).
//
// fakequant never owns user memory: every op takes TensorView<const T> inputs and
// TensorView<T> outputs. Strides are in elements and may be any value for inputs; an output
// must not overlap itself: no two indices may map to the same element (a zero stride on a
// dimension of size > 1, or strides that interleave). Ops check this with
// detail::check_no_self_overlap, a sufficient test that refuses what it cannot prove.
// Construction checks the size arithmetic: the element count must fit int64 (the product of
// the non-zero extents, so every partial product does too), and for a non-empty view the
// farthest element must lie within kMaxBytes of the first, so no offset computation wraps
// (ErrorCode::kOutOfMemory otherwise).
// Eigen dense objects with direct access (Matrix, Map, Ref, blocks) convert implicitly: a
// matrix becomes a rank-2 view {rows, cols} with Eigen's strides, whatever its storage order.
#ifndef FQ_CORE_TENSOR_VIEW_HPP_
#define FQ_CORE_TENSOR_VIEW_HPP_

#include <array>             // array
#include <cstddef>           // ptrdiff_t
#include <cstdint>           // int64_t
#include <initializer_list>  // initializer_list
#include <limits>            // numeric_limits
#include <string>            // string
#include <type_traits>       // enable_if, is_base_of, remove_reference
#include <utility>           // declval, forward

#include <Eigen/Core>

#include <fakequant/base/checked.hpp>
#include <fakequant/base/error.hpp>

namespace fq {

/// A fixed-capacity list of extents or strides.
using Dims = std::array<std::int64_t, kMaxRank>;

namespace detail {
template <class D>
using is_eigen_direct =
    std::integral_constant<bool, std::is_base_of<Eigen::DenseBase<D>, D>::value &&
                                     ((int(Eigen::internal::traits<D>::Flags) &
                                       Eigen::DirectAccessBit) != 0)>;
}  // namespace detail

/// A non-owning view of a strided tensor of rank 0..kMaxRank.
/// @tparam T element type, possibly const (float or double for the fake-quant ops).
template <class T>
class TensorView {
 public:
  using value_type = T;

  /// An empty rank-1 view (numel 0).
  TensorView() noexcept : data_(nullptr), rank_(1) {
    shape_.fill(0);
    strides_.fill(0);
    strides_[0] = 1;
  }

  /// A contiguous row-major (C order) view of `data` with the given shape.
  TensorView(T* data, std::initializer_list<std::int64_t> shape) : data_(data) {
    set_shape(shape.begin(), static_cast<int>(shape.size()));
    set_row_major_strides();
    check_reach();
  }

  /// A strided view; `shape` and `strides` (in elements) have `rank` entries.
  TensorView(T* data, int rank, const std::int64_t* shape, const std::int64_t* strides)
      : data_(data) {
    set_shape(shape, rank);
    for (int d = 0; d < rank_; ++d) strides_[static_cast<std::size_t>(d)] = strides[d];
    check_reach();
  }

  /// A strided view from initializer lists of equal length.
  TensorView(T* data, std::initializer_list<std::int64_t> shape,
             std::initializer_list<std::int64_t> strides)
      : data_(data) {
    FQ_CHECK(shape.size() == strides.size(), ErrorCode::kInvalidLayout,
             "TensorView: shape and strides must have the same length");
    set_shape(shape.begin(), static_cast<int>(shape.size()));
    int d = 0;
    for (std::int64_t s : strides) strides_[static_cast<std::size_t>(d++)] = s;
    check_reach();
  }

  /// A contiguous rank-1 view of n elements.
  static TensorView vector(T* data, std::int64_t n) { return TensorView(data, {n}); }

  /// Any Eigen dense object with direct access: rank 2, shape {rows, cols}.
  template <class Derived, class D = std::remove_const_t<std::remove_reference_t<Derived>>,
            class = std::enable_if_t<detail::is_eigen_direct<D>::value>>
  TensorView(Derived&& m) : data_(m.data()), rank_(2) {  // NOLINT(google-explicit-constructor)
    using Scalar = typename D::Scalar;
    static_assert(std::is_same<std::remove_const_t<T>, Scalar>::value,
                  "TensorView: the Eigen object's scalar type must match the view's element "
                  "type (float or double).");
    shape_.fill(1);
    strides_.fill(0);
    shape_[0] = m.rows();
    shape_[1] = m.cols();
    const std::int64_t inner = m.innerStride(), outer = m.outerStride();
    strides_[0] = D::IsRowMajor ? outer : inner;
    strides_[1] = D::IsRowMajor ? inner : outer;
  }

  /// Conversion to a view of const elements.
  operator TensorView<const T>() const {  // NOLINT(google-explicit-constructor)
    return TensorView<const T>(data_, rank_, shape_.data(), strides_.data());
  }

  T* data() const noexcept { return data_; }
  int rank() const noexcept { return rank_; }
  std::int64_t size(int d) const noexcept { return shape_[static_cast<std::size_t>(d)]; }
  std::int64_t stride(int d) const noexcept { return strides_[static_cast<std::size_t>(d)]; }
  const Dims& shape() const noexcept { return shape_; }
  const Dims& strides() const noexcept { return strides_; }

  /// Number of elements (1 for rank 0).
  std::int64_t numel() const noexcept {
    std::int64_t n = 1;
    for (int d = 0; d < rank_; ++d) n *= shape_[static_cast<std::size_t>(d)];
    return n;
  }
  bool empty() const noexcept { return numel() == 0; }

  /// True if the elements are dense in row-major order.
  bool is_contiguous() const noexcept {
    std::int64_t expect = 1;
    for (int d = rank_ - 1; d >= 0; --d) {
      const auto i = static_cast<std::size_t>(d);
      if (shape_[i] != 1 && strides_[i] != expect) return false;
      expect *= shape_[i];
    }
    return true;
  }

  /// Pointer to the element at a multi-index of `rank()` entries.
  T* at(const std::int64_t* index) const noexcept {
    std::ptrdiff_t off = 0;
    for (int d = 0; d < rank_; ++d)
      off += static_cast<std::ptrdiff_t>(index[d] * strides_[static_cast<std::size_t>(d)]);
    return data_ + off;
  }

 private:
  void set_shape(const std::int64_t* shape, int rank) {
    FQ_CHECK(rank >= 0 && rank <= kMaxRank, ErrorCode::kInvalidLayout,
             detail::msg("TensorView: rank ", rank, " is outside [0, ", kMaxRank, "]"));
    rank_ = rank;
    shape_.fill(1);
    strides_.fill(0);
    for (int d = 0; d < rank; ++d) {
      FQ_CHECK(shape[d] >= 0, ErrorCode::kInvalidLayout,
               detail::msg("TensorView: extent ", shape[d], " of dimension ", d, " is negative"));
      shape_[static_cast<std::size_t>(d)] = shape[d];
    }
    detail::checked_numel(shape_.data(), rank_, "TensorView");
  }
  /// The farthest element of a non-empty view, sum (extent - 1) * |stride| elements from the
  /// first, must be addressable: within kMaxBytes.
  void check_reach() const {
    if (numel() == 0) return;
    constexpr const char* kWhere = "TensorView";
    std::int64_t reach = 0;
    for (int d = 0; d < rank_; ++d) {
      const auto i = static_cast<std::size_t>(d);
      FQ_CHECK(
          strides_[i] != std::numeric_limits<std::int64_t>::min(), ErrorCode::kOutOfMemory,
          detail::msg(kWhere, ": stride ", strides_[i], " of dimension ", d, " is out of range"));
      const std::int64_t st = strides_[i] < 0 ? -strides_[i] : strides_[i];
      reach = detail::checked_add(
          reach, detail::checked_mul(shape_[i] - 1, st, kWhere, "the reach of the strides"), kWhere,
          "the reach of the strides");
    }
    detail::checked_bytes(reach, sizeof(T), kWhere);  // kMaxBytes leaves room for the last one
  }
  void set_row_major_strides() noexcept {
    std::int64_t s = 1;
    for (int d = rank_ - 1; d >= 0; --d) {
      strides_[static_cast<std::size_t>(d)] = s;
      s *= shape_[static_cast<std::size_t>(d)];
    }
  }

  T* data_;
  int rank_;
  Dims shape_;
  Dims strides_;
};

/// Deduction guide for Eigen objects: TensorView(x) views x's scalars.
template <class Derived, class D = std::remove_reference_t<Derived>,
          class = std::enable_if_t<detail::is_eigen_direct<std::remove_const_t<D>>::value>>
TensorView(Derived&&) -> TensorView<std::conditional_t<
    std::is_const<D>::value ||
        !(int(Eigen::internal::traits<std::remove_const_t<D>>::Flags) & Eigen::LvalueBit),
    const typename std::remove_const_t<D>::Scalar, typename std::remove_const_t<D>::Scalar>>;

/// True if the two views have the same rank and extents.
template <class A, class B>
bool same_shape(const TensorView<A>& a, const TensorView<B>& b) noexcept {
  if (a.rank() != b.rank()) return false;
  for (int d = 0; d < a.rank(); ++d)
    if (a.size(d) != b.size(d)) return false;
  return true;
}

namespace detail {

/// The first `rank` extents of a shape as "[2, 3]" (for messages).
inline std::string shape_string(int rank, const Dims& shape) {
  return extents_string(shape.data(), rank);
}
/// A view's shape as "[2, 3]" (for messages).
template <class T>
std::string shape_str(const TensorView<T>& v) {
  return extents_string(v.shape().data(), v.rank());
}
/// A view's strides as "[3, 1]" (for messages).
template <class T>
std::string strides_str(const TensorView<T>& v) {
  return extents_string(v.strides().data(), v.rank());
}

/// True if no two indices of v map to the same element, by the usual sufficient test: with the
/// dimensions of extent > 1 sorted by |stride|, each |stride| exceeds the farthest offset the
/// smaller ones reach. O(rank^2) for rank <= kMaxRank; false for what it cannot prove.
template <class T>
bool provably_non_overlapping(const TensorView<T>& v) noexcept {
  std::int64_t st[kMaxRank], ex[kMaxRank];
  int n = 0;
  for (int d = 0; d < v.rank(); ++d) {
    if (v.size(d) == 0) return true;  // no element at all
    if (v.size(d) == 1) continue;     // a single index: its stride is never used
    const std::int64_t s = v.stride(d) < 0 ? -v.stride(d) : v.stride(d);
    int i = n++;  // insertion sort by |stride|
    for (; i > 0 && st[i - 1] > s; --i) {
      st[i] = st[i - 1];
      ex[i] = ex[i - 1];
    }
    st[i] = s;
    ex[i] = v.size(d);
  }
  // Offsets of the dimensions below i lie in [0, reach]; a construction-checked view's reach
  // fits int64.
  std::int64_t reach = 0;
  for (int i = 0; i < n; ++i) {
    if (st[i] <= reach) return false;
    reach += (ex[i] - 1) * st[i];
  }
  return true;
}

/// An output view must not overlap itself (see the file comment): ErrorCode::kInvalidLayout.
template <class T>
void check_no_self_overlap(const TensorView<T>& v, const char* where) {
  FQ_CHECK(provably_non_overlapping(v), ErrorCode::kInvalidLayout,
           msg(where, ": the output of shape ", shape_str(v), " with strides ", strides_str(v),
               " overlaps itself (two indices reach the same element)"));
}

/// A view of an argument that is a TensorView or an Eigen object with direct access.
template <class T>
TensorView<T> as_view(TensorView<T> v) noexcept {
  return v;
}
template <class E, class = std::enable_if_t<
                       is_eigen_direct<std::remove_const_t<std::remove_reference_t<E>>>::value>>
auto as_view(E&& e) {
  return TensorView(std::forward<E>(e));
}
template <class X>
using view_scalar_t =
    std::remove_const_t<typename decltype(as_view(std::declval<X>()))::value_type>;
}  // namespace detail
}  // namespace fq

#endif  // FQ_CORE_TENSOR_VIEW_HPP_
