// SPDX-License-Identifier: MIT
// fakequant/testing/harness.hpp: the testing kit's shared machinery (internal) — the layout
// of the tensors it generates, grid look-ups, and calls into a quantizer that record an
// exception as a failure instead of ending the test.
//
// The kit's tensors are contiguous, row-major float buffers. With a channel axis a and C
// channels, element i (row-major) belongs to channel (i / inner) % C, inner being the product
// of the extents after a.
#ifndef FQ_TESTING_HARNESS_HPP_
#define FQ_TESTING_HARNESS_HPP_

#include <algorithm>    // upper_bound, lower_bound
#include <cmath>        // fabs
#include <cstdint>      // int64_t
#include <exception>    // exception
#include <limits>       // numeric_limits
#include <optional>     // optional
#include <string>       // string
#include <type_traits>  // is_same
#include <utility>      // forward
#include <vector>       // vector

#include <fakequant/base/config.hpp>
#include <fakequant/core/mask.hpp>
#include <fakequant/core/tensor_view.hpp>
#include <fakequant/quantizer/concept.hpp>
#include <fakequant/testing/grid.hpp>
#include <fakequant/testing/result.hpp>

namespace fq {
namespace testing {
namespace detail {

/// Shape and channel structure of the tensors a check generates.
struct Layout {
  std::vector<std::int64_t> shape;
  int axis = -1;              ///< channel axis, -1 per tensor
  std::int64_t channels = 1;  ///< extent on the axis (1 per tensor)
  std::int64_t inner = 1;     ///< product of the extents after the axis
  std::int64_t numel = 0;

  std::int64_t channel_of(std::int64_t i) const noexcept {
    return axis < 0 ? 0 : (i / inner) % channels;
  }
  TensorView<float> view(float* data) const {
    return TensorView<float>(data, static_cast<int>(shape.size()), shape.data(), strides().data());
  }
  TensorView<const float> cview(const float* data) const {
    return TensorView<const float>(data, static_cast<int>(shape.size()), shape.data(),
                                   strides().data());
  }
  std::vector<std::int64_t> strides() const {
    std::vector<std::int64_t> st(shape.size(), 1);
    for (std::size_t d = shape.size(); d-- > 1;) st[d - 1] = st[d] * shape[d];
    return st;
  }
};

/// The channel axis: the option if given, else the grid's, else Q::kAxis if Q::kPerChannel.
template <class Q>
int resolve_axis(const std::optional<int>& option, const Grid& grid) {
  if (option) return *option;
  if (!grid.empty()) return grid.axis;
  if constexpr (::fq::detail::has_channel_axis<Q>::value) return Q::kPerChannel ? Q::kAxis : -1;
  return -1;
}

/// Builds the layout: `shape` if given, else rank max(2, axis + 1) with about 64 elements per
/// channel. Returns false (and records a "setup" failure) if it contradicts the grid.
inline bool make_layout(const std::vector<std::int64_t>& shape, int axis, const Grid& grid,
                        Layout& out, CheckResult& r) {
  out.axis = axis;
  const std::int64_t channels = axis >= 0 ? grid.channels() : 1;
  if (!shape.empty()) {
    out.shape = shape;
  } else {
    const int rank = axis + 1 > 2 ? axis + 1 : 2;
    out.shape.assign(static_cast<std::size_t>(rank), 2);
    const int last = axis == rank - 1 ? rank - 2 : rank - 1;
    const std::int64_t per_channel = std::int64_t{64} >> (rank - 2);
    out.shape[static_cast<std::size_t>(last)] = per_channel > 0 ? per_channel : 1;
    if (axis >= 0) out.shape[static_cast<std::size_t>(axis)] = channels;
  }
  if (out.shape.size() > static_cast<std::size_t>(kMaxRank) ||
      (axis >= 0 && static_cast<std::size_t>(axis) >= out.shape.size())) {
    r.add_failure("setup", -1, 0, 0.0, 0.0, 0.0,
                  say("the channel axis ", axis, " does not fit a rank-", out.shape.size(),
                      " shape (at most rank ", kMaxRank, ")"));
    return false;
  }
  out.numel = 1;
  for (std::int64_t e : out.shape) out.numel *= e;
  out.channels = axis >= 0 ? out.shape[static_cast<std::size_t>(axis)] : 1;
  out.inner = 1;
  if (axis >= 0)
    for (std::size_t d = static_cast<std::size_t>(axis) + 1; d < out.shape.size(); ++d)
      out.inner *= out.shape[d];
  if (!grid.empty() && grid.channels() != 1 && grid.channels() != out.channels) {
    r.add_failure("setup", -1, 0, 0.0, static_cast<double>(grid.channels()),
                  static_cast<double>(out.channels),
                  say("the grid has ", grid.channels(), " channels but the tensor has ",
                      out.channels, " on axis ", axis));
    return false;
  }
  if (out.numel == 0) {
    r.add_failure("setup", -1, 0, 0.0, 0.0, 0.0, "the shape has no elements");
    return false;
  }
  return true;
}

/// prev = largest level <= v, next = smallest level >= v (clamped to the ends).
inline void bracket(const std::vector<double>& lv, double v, double& prev, double& next) {
  auto it = std::lower_bound(lv.begin(), lv.end(), v);
  if (it == lv.end()) {
    prev = next = lv.back();
    return;
  }
  if (*it == v || it == lv.begin()) {
    prev = next = *it;
    return;
  }
  next = *it;
  prev = *(it - 1);
}

/// The width of the grid cell containing v (the outermost cell's width beyond the ends; 1 for
/// a one-level grid).
inline double cell_width(const std::vector<double>& lv, double v) {
  if (lv.size() < 2) return 1.0;
  auto it = std::upper_bound(lv.begin(), lv.end(), v);
  if (it == lv.begin()) ++it;
  if (it == lv.end()) --it;
  return *it - *(it - 1);
}

/// True if y is a level of lv within `ulps` float ulps.
inline bool on_levels(const std::vector<double>& lv, double y, int ulps) {
  auto it = std::lower_bound(lv.begin(), lv.end(), y);
  const double tol =
      ulps * std::fabs(y) * static_cast<double>(std::numeric_limits<float>::epsilon());
  if (it != lv.end() && std::fabs(*it - y) <= tol) return true;
  return it != lv.begin() && std::fabs(*(it - 1) - y) <= tol;
}

/// Runs f(); with exceptions enabled, a thrown exception becomes an "exception" failure.
template <class F>
bool guarded(CheckResult& r, const char* what, F&& f) {
#if FQ_HAS_EXCEPTIONS
  try {
    f();
  } catch (const std::exception& e) {
    r.add_failure("exception", -1, 0, 0.0, 0.0, 0.0, say(what, " threw: ", e.what()));
    return false;
  }
#else
  (void)r;
  (void)what;
  f();
#endif
  return true;
}

template <class Q>
void call_forward(Q& q, TensorView<const float> x, TensorView<float> y, Mask* mask) {
  q.forward(x, y, mask);
}

template <class Q>
void call_backward(Q& q, TensorView<const float> x, TensorView<const float> dy, const Mask& mask,
                   TensorView<float> dx) {
  if constexpr (::fq::detail::has_backward_x_dy<Q>::value)
    q.backward(x, dy, mask, dx);
  else
    q.backward(dy, mask, dx);
}

}  // namespace detail
}  // namespace testing
}  // namespace fq

#endif  // FQ_TESTING_HARNESS_HPP_
