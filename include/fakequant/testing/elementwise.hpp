// SPDX-License-Identifier: MIT
// fakequant/testing/elementwise.hpp: helpers to write a custom element-wise quantizer that
// meets the quantizer protocol (quantizer/concept.hpp) in a few lines.
//
//   elementwise_forward(x, y, mask, f):   y[i] = f(x[i], index).value, and mask bit i =
//                                         f(x[i], index).pass (the STE passes the gradient)
//   elementwise_backward(dy, mask, dx):   dx[i] = mask[i] ? dy[i] : 0   (masked STE)
// `index` is the element's multi-index (x.rank() entries), from which a per-channel
// quantizer takes its channel. The mask is written in row-major order of the logical
// indices, so dy/dx may have any strides. These are plain loops: reference speed, not
// kernel speed. x and y may be the same view.
#ifndef FQ_TESTING_ELEMENTWISE_HPP_
#define FQ_TESTING_ELEMENTWISE_HPP_

#include <cstdint>  // int64_t, uint64_t
#include <utility>  // forward

#include <fakequant/core/checks.hpp>
#include <fakequant/core/mask.hpp>
#include <fakequant/core/run_plan.hpp>
#include <fakequant/core/tensor_view.hpp>

namespace fq {
namespace testing {

/// What an element function returns: the output value and whether the gradient passes.
struct Quantized {
  float value;
  bool pass;
};

namespace detail {
/// Calls f(linear, index) for every element of `shape` in row-major order.
template <class F>
void for_each_index(int rank, const Dims& shape, F&& f) {
  std::int64_t n = 1;
  for (int d = 0; d < rank; ++d) n *= shape[static_cast<std::size_t>(d)];
  std::int64_t index[kMaxRank] = {};
  for (std::int64_t i = 0; i < n; ++i) {
    f(i, static_cast<const std::int64_t*>(index));
    for (int d = rank - 1; d >= 0; --d) {
      if (++index[d] < shape[static_cast<std::size_t>(d)]) break;
      index[d] = 0;
    }
  }
}
}  // namespace detail

/// y = f(x) element by element, with the STE mask; f(float x, const std::int64_t* index)
/// returns a Quantized.
template <class F>
void elementwise_forward(TensorView<const float> x, TensorView<float> y, Mask* mask, F&& f) {
  ::fq::detail::check_output(x, y, "elementwise_forward");
  std::uint64_t* words =
      mask ? mask->prepare(x.rank(), x.shape(), ::fq::detail::row_major_order()) : nullptr;
  if (words)
    for (std::int64_t w = 0; w < (x.numel() + 63) / 64; ++w) words[w] = 0;
  detail::for_each_index(x.rank(), x.shape(), [&](std::int64_t i, const std::int64_t* index) {
    const Quantized q = f(*x.at(index), index);
    *y.at(index) = q.value;
    if (words && q.pass) words[i >> 6] |= std::uint64_t{1} << (i & 63);
  });
}

/// The masked straight-through backward: dx = dy where the mask is set, else 0.
inline void elementwise_backward(TensorView<const float> dy, const Mask& mask,
                                 TensorView<float> dx) {
  ::fq::detail::check_output(dy, dx, "elementwise_backward");
  FQ_CHECK(dy.rank() == mask.rank() && dy.numel() == mask.numel(), ErrorCode::kShapeMismatch,
           "elementwise_backward: gradient shape differs from the shape the mask was written for");
  detail::for_each_index(dy.rank(), dy.shape(), [&](std::int64_t, const std::int64_t* index) {
    *dx.at(index) = mask.test(index) ? *dy.at(index) : 0.0f;
  });
}

}  // namespace testing
}  // namespace fq

#endif  // FQ_TESTING_ELEMENTWISE_HPP_
