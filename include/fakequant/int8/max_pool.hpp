// SPDX-License-Identifier: MIT
// fakequant/int8/max_pool.hpp: Int8MaxPool2d, the max-pooling step of an integer model —
// uint8 NCHW [n, C, H, W] -> [n, C, OH, OW], OH = (H − k) / s + 1 (no padding), by
// max_pool2d_u8 (kernels/max_pool.hpp): the max of the levels, exact (a per-tensor quantizer is
// monotone), so the qparams pass through unchanged.
#ifndef FQ_INT8_MAX_POOL_HPP_
#define FQ_INT8_MAX_POOL_HPP_

#include <cstdint>  // int64_t, uint8_t

#include <fakequant/base/error.hpp>
#include <fakequant/kernels/max_pool.hpp>
#include <fakequant/tape/tape.hpp>

namespace fq {

/// Max pooling of uint8 NCHW levels, [C, H, W] -> [C, OH, OW] per image, OH = (H − k) / s + 1
/// (no padding, as fq::ops::max_pool2d). The output keeps the input's qparams.
class Int8MaxPool2d {
 public:
  Int8MaxPool2d(std::int64_t channels, std::int64_t in_h, std::int64_t in_w, std::int64_t kernel,
                std::int64_t stride)
      : channels_(channels), in_h_(in_h), in_w_(in_w), kernel_(kernel), stride_(stride) {
    FQ_CHECK(
        channels > 0 && in_h > 0 && in_w > 0 && kernel > 0 && stride > 0,
        ErrorCode::kInvalidArgument,
        detail::msg("Int8MaxPool2d: window ", kernel, " and stride ", stride, " on an input [",
                    channels, ", ", in_h, ", ", in_w, "]: extents, window and stride must be > 0"));
    FQ_CHECK(kernel <= in_h && kernel <= in_w, ErrorCode::kShapeMismatch,
             detail::msg("Int8MaxPool2d: window ", kernel, " does not fit the input [", channels,
                         ", ", in_h, ", ", in_w, "]"));
  }

  std::int64_t channels() const noexcept { return channels_; }
  std::int64_t in_h() const noexcept { return in_h_; }
  std::int64_t in_w() const noexcept { return in_w_; }
  std::int64_t kernel() const noexcept { return kernel_; }
  std::int64_t stride() const noexcept { return stride_; }
  std::int64_t out_h() const noexcept { return (in_h_ - kernel_) / stride_ + 1; }
  std::int64_t out_w() const noexcept { return (in_w_ - kernel_) / stride_ + 1; }
  /// [C, H, W] and [C, OH, OW] of one image.
  Shape input_shape() const { return {channels_, in_h_, in_w_}; }
  Shape output_shape() const { return {channels_, out_h(), out_w()}; }

  /// uint8 NCHW [n, C, H, W] -> [n, C, OH, OW].
  void run(const std::uint8_t* x, std::int64_t n, std::uint8_t* y) const {
    FQ_CHECK(n >= 0, ErrorCode::kInvalidArgument,
             detail::msg("Int8MaxPool2d::run: negative image count ", n));
    if (n == 0) return;
    FQ_CHECK(x != nullptr && y != nullptr, ErrorCode::kInvalidArgument,
             "Int8MaxPool2d::run: null input or output");
    max_pool2d_u8(x, n * channels_, in_h_, in_w_, kernel_, stride_, y);
  }

 private:
  std::int64_t channels_, in_h_, in_w_, kernel_, stride_;
};

}  // namespace fq

#endif  // FQ_INT8_MAX_POOL_HPP_
