// SPDX-License-Identifier: MIT
// fakequant/int8/conv2d.hpp: Int8Conv2d, the integer convolution — uint8 NCHW [n, C, H, W] ->
// uint8 NCHW [n, O, OH, OW] on the int8 kernels (kernels/conv2d.hpp), for the geometry of one
// image (fq::Conv2dShape) and the parameters of int8/params.hpp:
//   y_q = clamp(requant(Σ (x_q − z_x)·q_w + q_b, M) + z_y, lo, hi), padding with z_x (real 0).
// The one implementation of this epilogue: convert deploys it, and a QAT convolution in integer
// arithmetic (layers/integer_eval.hpp) runs the very same object.
// Construction validates the geometry, the parameter arrays and every per-image buffer size
// (int8/layer_checks.hpp) and packs the weights once; K per group is at most kMaxGemmK.
#ifndef FQ_INT8_CONV2D_HPP_
#define FQ_INT8_CONV2D_HPP_

#include <cstdint>  // int64_t, uint8_t
#include <utility>  // move

#include <fakequant/base/error.hpp>
#include <fakequant/int8/layer_checks.hpp>
#include <fakequant/int8/params.hpp>
#include <fakequant/kernels/conv2d.hpp>
#include <fakequant/kernels/gemm.hpp>
#include <fakequant/kernels/im2col.hpp>
#include <fakequant/simd/arch.hpp>

namespace fq {

namespace detail {
/// Validates a convolution's shape, buffer sizes and parameters (file comment).
inline const Conv2dShape& checked_int8_conv2d(const Int8LayerParams& p, const Conv2dShape& s) {
  constexpr const char* kWhere = "Int8Conv2d";
  check_conv2d_shape(s, kWhere);  // extents > 0, groups divide, no int64 overflow
  const std::int64_t cig = s.in_channels / s.groups, cog = s.out_channels / s.groups;
  const std::int64_t kg = s.group_k();
  FQ_CHECK(kg <= kMaxGemmK, ErrorCode::kInvalidArgument,
           msg(kWhere, ": K = ", kg, " exceeds ", kMaxGemmK,
               ", the largest K whose int32 accumulator cannot overflow"));
  check_layer_buffer({s.in_channels, s.in_h, s.in_w}, kWhere, "the input");
  check_layer_buffer({s.out_channels, s.out_h(), s.out_w()}, kWhere, "the output");
  check_layer_buffer({cig, s.in_h + 2 * s.pad_h, s.in_w + 2 * s.pad_w}, kWhere, "the padded input");
  const std::int64_t positions = s.out_h() * s.out_w();  // <= the output's size, checked above
  check_layer_buffer({round_up(positions, 16), round_up(kg, kGroupK)}, kWhere,
                     "the unfolded (im2col) input");
  check_layer_buffer({s.groups, round_up(cog, kPanelCols), round_up(kg, kGroupK)}, kWhere,
                     "the packed weights");
  check_layer_arrays(p, s.out_channels, s.out_channels * kg, kWhere);
  FQ_CHECK(!p.float_out, ErrorCode::kInvalidArgument,
           msg(kWhere,
               ": a convolution has uint8 output levels; its parameters say float output "
               "(the layer needs an output quantizer)"));
  return s;
}
}  // namespace detail

/// An int8 convolution (file comment).
class Int8Conv2d {
 public:
  /// Validates the shape, sizes and parameters first (file comment); `one_image` is the
  /// geometry of one image (its batch field is not used).
  Int8Conv2d(Int8LayerParams p, const Conv2dShape& one_image)
      : p_(std::move(p)), packed_(p_.weight.data(), detail::checked_int8_conv2d(p_, one_image)) {}

  const Conv2dShape& shape() const noexcept { return packed_.shape(); }
  const ActQParams& input_qparams() const noexcept { return p_.in; }
  const ActQParams& output_qparams() const noexcept { return p_.out; }
  std::int64_t in_numel() const noexcept {
    return shape().in_channels * shape().in_h * shape().in_w;
  }
  std::int64_t out_numel() const noexcept {
    return shape().out_channels * shape().out_h() * shape().out_w();
  }
  const Int8LayerParams& params() const noexcept { return p_; }

  /// uint8 NCHW [n, C, H, W] -> [n, O, OH, OW]. Arch: the kernels' instruction set
  /// (fq::DefaultArch; simd/arch.hpp).
  template <class Arch = DefaultArch>
  void run(const std::uint8_t* x, std::int64_t n, std::uint8_t* y) const {
    conv2d_u8<SingleRounding<RoundHalfEven>, Arch>(x, p_.in.zero_point, packed_, p_.requant(), y,
                                                   n);  // the packed shape: one image
  }

 private:
  Int8LayerParams p_;
  PackedConv2dWeights packed_;
};

}  // namespace fq

#endif  // FQ_INT8_CONV2D_HPP_
