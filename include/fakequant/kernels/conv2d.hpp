// SPDX-License-Identifier: MIT
// fakequant/kernels/conv2d.hpp: the int8 2-D convolution (inference) via im2col + int8 GEMM.
//
//   y[b][o][p] = clamp(requant(sum_{c,i,j} (x[b][c][h][w] - z_x) * W[o][c][i][j] + bias[o],
//                              M[o]) + z_y, lo, hi)
// NCHW uint8 input and output, weights int8 [Cout, Cin/groups, kh, kw] (per-channel
// symmetric), stride, zero padding in real terms (padded with z_x), groups >= 1, dilation 1.
// Requantization as linear.hpp (RequantParams; per output channel o). Each group of each
// image is unfolded (im2col.hpp) into a per-thread buffer and multiplied with that group's
// packed weights; the epilogue writes the NCHW output directly (strided by output plane).
#ifndef FQ_KERNELS_CONV2D_HPP_
#define FQ_KERNELS_CONV2D_HPP_

#include <cstdint>  // int8_t, int32_t, int64_t, uint8_t
#include <vector>   // vector

#include <fakequant/kernels/im2col.hpp>
#include <fakequant/kernels/linear.hpp>
#include <fakequant/kernels/packed_weights.hpp>

namespace fq {

namespace detail {
inline void check_conv2d_shape(const Conv2dShape& s, const char* where) {
  FQ_CHECK(s.batch >= 0 && s.in_channels > 0 && s.in_h > 0 && s.in_w > 0 && s.out_channels > 0 &&
               s.kernel_h > 0 && s.kernel_w > 0 && s.stride_h > 0 && s.stride_w > 0 &&
               s.pad_h >= 0 && s.pad_w >= 0 && s.groups > 0,
           ErrorCode::kShapeMismatch,
           msg(where, ": extents, kernel, stride and groups must be > 0 and padding >= 0"));
  FQ_CHECK(s.in_channels % s.groups == 0 && s.out_channels % s.groups == 0,
           ErrorCode::kShapeMismatch,
           msg(where, ": groups = ", s.groups, " must divide in_channels = ", s.in_channels,
               " and out_channels = ", s.out_channels));
  FQ_CHECK(s.in_h + 2 * s.pad_h >= s.kernel_h && s.in_w + 2 * s.pad_w >= s.kernel_w,
           ErrorCode::kShapeMismatch, msg(where, ": the kernel is larger than the padded input"));
}
}  // namespace detail

/// Conv2d weights [Cout, Cin/groups, kh, kw] (contiguous int8), packed per group.
class PackedConv2dWeights {
 public:
  PackedConv2dWeights(const std::int8_t* w, const Conv2dShape& s) : shape_(s) {
    detail::check_conv2d_shape(s, "PackedConv2dWeights");
    const std::int64_t cog = s.out_channels / s.groups, kg = s.group_k();
    for (std::int64_t g = 0; g < s.groups; ++g) groups_.emplace_back(w + g * cog * kg, cog, kg, kg);
  }
  const Conv2dShape& shape() const noexcept { return shape_; }
  const PackedWeights& group(std::int64_t g) const noexcept {
    return groups_[static_cast<std::size_t>(g)];
  }

 private:
  Conv2dShape shape_;
  std::vector<PackedWeights> groups_;
};

/// The int8 convolution: x uint8 [batch, Cin, H, W] -> y uint8 [batch, Cout, out_h, out_w],
/// both contiguous NCHW; w packed for the same shape.
template <class Rounding = SingleRounding<RoundHalfEven>>
void conv2d_u8(const std::uint8_t* x, std::int32_t x_zero_point, const PackedConv2dWeights& w,
               const RequantParams& rp, std::uint8_t* y, Isa isa = Isa::kAuto) {
  static_assert(is_requant_rounding<Rounding>::value,
                "conv2d_u8: Rounding must be DoubleRounding or SingleRounding<R>.");
  constexpr const char* kWhere = "conv2d_u8";
  const Conv2dShape& s = w.shape();
  detail::check_requant_params(rp, s.out_channels, kWhere);
  FQ_CHECK(x_zero_point >= 0 && x_zero_point <= 255, ErrorCode::kInvalidZeroPoint,
           detail::msg(kWhere, ": input zero point ", x_zero_point, " is outside [0, 255]"));
  FQ_CHECK(s.batch == 0 || (x != nullptr && y != nullptr), ErrorCode::kInvalidArgument,
           detail::msg(kWhere, ": null input or output"));
  const std::int64_t cig = s.in_channels / s.groups, cog = s.out_channels / s.groups;
  const std::int64_t p = s.out_h() * s.out_w(), kg = s.group_k(), hw = s.in_h * s.in_w;
  thread_local std::vector<std::uint8_t> col;
  if (col.size() < static_cast<std::size_t>(p * kg)) col.resize(static_cast<std::size_t>(p * kg));
  for (std::int64_t b = 0; b < s.batch; ++b)
    for (std::int64_t g = 0; g < s.groups; ++g) {
      im2col_u8(x + (b * s.in_channels + g * cig) * hw, cig, s,
                static_cast<std::uint8_t>(x_zero_point), col.data(), kg);
      std::uint8_t* yo = y + (b * s.out_channels + g * cog) * p;
      detail::run_requant<Rounding>(col.data(), p, kg, w.group(g), x_zero_point, rp,
                                    GemmOutput<std::uint8_t>{yo, 1, p, g * cog}, isa);
    }
}

}  // namespace fq

#endif  // FQ_KERNELS_CONV2D_HPP_
