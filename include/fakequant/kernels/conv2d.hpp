// SPDX-License-Identifier: MIT
// fakequant/kernels/conv2d.hpp: the int8 2-D convolution (inference), im2col + int8 GEMM.
//
//   y[b][o][p] = clamp(requant(sum_{c,i,j} (x[b][c][h][w] - z_x) * W[o][c][i][j] + bias[o],
//                              M[o]) + z_y, lo, hi)
// NCHW uint8 input and output, weights int8 [Cout, Cin/groups, kh, kw] (per-channel
// symmetric), stride, zero padding in real terms (padded with z_x), groups >= 1, dilation 1.
// Requantization as linear.hpp (RequantParams; per output channel o).
// Paths (all bit-identical, tests/kernels/conv2d.test.cpp checks each against a direct
// reference): on AVX-512 VNNI with the standard roundings, conv2d_avx512.hpp computes each
// image and group channel-major with the requantization fused in the register tile; on AMX
// the same kernel runs when a group's K = Cin/groups * kh * kw is below 64 (an AMX K step is
// 64 bytes, so such a K would leave most of every tile product zero padding: the demo's first
// layer has K = 9; a judgement, not measured, as no AMX machine was at hand), otherwise each group
// of each image is unfolded (im2col.hpp) into a per-thread buffer and multiplied with that group's
// packed weights, the epilogue writing NCHW (strided by output plane). The batch overload runs n
// images of the packed one-image geometry in one call, so per-call set-up (epilogue constants,
// buffers) is paid once per batch.
#ifndef FQ_KERNELS_CONV2D_HPP_
#define FQ_KERNELS_CONV2D_HPP_

#include <algorithm>    // max
#include <cstdint>      // int8_t, int32_t, int64_t, uint8_t
#include <type_traits>  // is_same
#include <vector>       // vector

#include <fakequant/kernels/conv2d_avx512.hpp>
#include <fakequant/kernels/im2col.hpp>
#include <fakequant/kernels/linear.hpp>
#include <fakequant/kernels/packed_weights.hpp>

namespace fq {

/// On AMX, a convolution whose group K is below this runs the channel-major VNNI kernel.
inline constexpr std::int64_t kAmxMinConvK = 64;

/// Conv2d weights [Cout, Cin/groups, kh, kw] (contiguous int8), packed per group for the
/// GEMM, plus a copy as [Cout, K4] rows (K = Cin/groups * kh * kw rounded up to 4 with zeros)
/// for the channel-major AVX-512 path.
class PackedConv2dWeights {
 public:
  PackedConv2dWeights(const std::int8_t* w, const Conv2dShape& s) : shape_(s) {
    detail::check_conv2d_shape(s, "PackedConv2dWeights");
    const std::int64_t cog = s.out_channels / s.groups, kg = s.group_k();
    for (std::int64_t g = 0; g < s.groups; ++g) groups_.emplace_back(w + g * cog * kg, cog, kg, kg);
    k4_ = (kg + 3) / 4 * 4;
    rows_.assign(static_cast<std::size_t>(s.out_channels * k4_), 0);
    for (std::int64_t o = 0; o < s.out_channels; ++o)
      for (std::int64_t k = 0; k < kg; ++k)
        rows_[static_cast<std::size_t>(o * k4_ + k)] = w[o * kg + k];
  }
  const Conv2dShape& shape() const noexcept { return shape_; }
  const PackedWeights& group(std::int64_t g) const noexcept {
    return groups_[static_cast<std::size_t>(g)];
  }
  /// Weight rows [Cout, row_stride()], zero past K.
  const std::int8_t* rows() const noexcept { return rows_.data(); }
  std::int64_t row_stride() const noexcept { return k4_; }

 private:
  Conv2dShape shape_;
  std::vector<PackedWeights> groups_;
  std::int64_t k4_ = 0;
  std::vector<std::int8_t, detail::Align64Allocator<std::int8_t>> rows_;
};

namespace detail {
#if FQ_KERNELS_X86
/// The AVX-512 VNNI path of conv2d_u8 (see conv2d_avx512.hpp); arguments checked. Arch: the
/// caller's architecture tag (the set-up loops are compiled with its flags, simd/arch.hpp).
template <class Arch, bool kSingle>
void conv2d_u8_vnni(const std::uint8_t* x, std::int32_t x_zero_point, const PackedConv2dWeights& w,
                    const RequantParams& rp, std::uint8_t* y, std::int64_t images) {
  const Conv2dShape& s = w.shape();
  const std::int64_t cig = s.in_channels / s.groups, cog = s.out_channels / s.groups;
  const Col4Geometry geo{cig,        s.in_h,  s.in_w,  s.kernel_h, s.kernel_w, s.stride_h,
                         s.stride_w, s.pad_h, s.pad_w, s.out_h(),  s.out_w()};
  const std::int64_t n = s.out_channels, np = (n + 7) / 8 * 8, p = geo.p(), hw = s.in_h * s.in_w;
  // Per-channel epilogue constants; the zero-point compensation -z_x * sum_k W[o][k] is
  // folded into the bias (as gemm_requant's vector epilogue).
  thread_local std::vector<std::int32_t> comp, mult, shift;
  thread_local std::vector<std::int64_t> consts;
  comp.resize(static_cast<std::size_t>(n));
  mult.resize(static_cast<std::size_t>(n));
  shift.resize(static_cast<std::size_t>(n));
  consts.resize(static_cast<std::size_t>(4 * np));
  for (std::int64_t o = 0; o < n; ++o) {
    const auto i = static_cast<std::size_t>(o);
    comp[i] = -x_zero_point * w.group(o / cog).col_sums()[o % cog];
    const QuantizedMultiplier qm = rp.multipliers[rp.multiplier_count == 1 ? 0 : o];
    mult[i] = qm.multiplier;
    shift[i] = qm.shift;
  }
  prepare_requant_row<Arch, kSingle>(rp.bias, comp.data(), mult.data(), shift.data(), n,
                                     consts.data());
  const std::int32_t lo = rp.relu ? std::max(rp.out_min, rp.out_zero_point) : rp.out_min;
  thread_local std::vector<std::uint8_t, Align64Allocator<std::uint8_t>> padded, col4;
  const std::int64_t padded_size = cig * geo.padded_h() * geo.padded_w();
  const std::int64_t col4_size = geo.k_groups() * geo.p16() * 4;
  if (padded.size() < static_cast<std::size_t>(padded_size))
    padded.resize(static_cast<std::size_t>(padded_size));
  if (col4.size() < static_cast<std::size_t>(col4_size))
    col4.resize(static_cast<std::size_t>(col4_size));
  for (std::int64_t b = 0; b < images; ++b)
    for (std::int64_t g = 0; g < s.groups; ++g) {
      pad_image_u8(x + (b * s.in_channels + g * cig) * hw, geo,
                   static_cast<std::uint8_t>(x_zero_point), padded.data());
      im2col4_u8(padded.data(), geo, col4.data());
      const std::int64_t o0 = g * cog;
      const ConvEpilogue e{consts.data() + o0,
                           consts.data() + np + o0,
                           consts.data() + 2 * np + o0,
                           consts.data() + 3 * np + o0,
                           rp.out_zero_point,
                           lo,
                           rp.out_max};
      conv_group_vnni<kSingle>(col4.data(), geo, w.rows() + o0 * w.row_stride(), w.row_stride(),
                               cog, e, y + (b * s.out_channels + o0) * p);
    }
}
#endif
}  // namespace detail

/// The int8 convolution of `images` images: x uint8 [images, Cin, H, W] -> y uint8
/// [images, Cout, out_h, out_w], both contiguous NCHW; w packed for the geometry of one image
/// (its batch field is not used). Arch: as gemm_requant (simd/arch.hpp); leave the default.
template <class Rounding = SingleRounding<RoundHalfEven>, class Arch = DefaultArch>
void conv2d_u8(const std::uint8_t* x, std::int32_t x_zero_point, const PackedConv2dWeights& w,
               const RequantParams& rp, std::uint8_t* y, std::int64_t images,
               Isa isa = Isa::kAuto) {
  static_assert(is_requant_rounding<Rounding>::value,
                "conv2d_u8: Rounding must be DoubleRounding or SingleRounding<R>.");
  constexpr const char* kWhere = "conv2d_u8";
  const Conv2dShape& s = w.shape();
  detail::check_requant_params(rp, s.out_channels, kWhere);
  FQ_CHECK(x_zero_point >= 0 && x_zero_point <= 255, ErrorCode::kInvalidZeroPoint,
           detail::msg(kWhere, ": input zero point ", x_zero_point, " is outside [0, 255]"));
  FQ_CHECK(images >= 0, ErrorCode::kShapeMismatch,
           detail::msg(kWhere, ": negative image count ", images));
  FQ_CHECK(images == 0 || (x != nullptr && y != nullptr), ErrorCode::kInvalidArgument,
           detail::msg(kWhere, ": null input or output"));
  const std::int64_t cig = s.in_channels / s.groups, cog = s.out_channels / s.groups;
  const std::int64_t p = s.out_h() * s.out_w(), kg = s.group_k(), hw = s.in_h * s.in_w;
  FQ_CHECK(kg <= kMaxGemmK, ErrorCode::kInvalidArgument,
           detail::msg(kWhere, ": K = ", kg, " exceeds ", kMaxGemmK,
                       ", the largest K whose int32 accumulator cannot overflow"));
  // One image of each fits int64 (check_conv2d_shape); the batch must too.
  const std::int64_t x_bytes =
      detail::checked_mul(images, s.in_channels * hw, kWhere, "the input size");
  const std::int64_t y_bytes =
      detail::checked_mul(images, s.out_channels * p, kWhere, "the output size");
  FQ_CHECK(!detail::byte_ranges_overlap(x, x_bytes, y, y_bytes), ErrorCode::kInvalidLayout,
           detail::msg(kWhere, ": the output overlaps the input (", x_bytes, " and ", y_bytes,
                       " bytes); use separate memory"));
  if (images == 0) return;
  const Isa path = resolve_isa(isa, kWhere);
#if FQ_KERNELS_X86
  if constexpr (detail::kVectorRounding<Rounding>) {
    if (path == Isa::kAvx512Vnni || (path == Isa::kAmx && kg < kAmxMinConvK)) {
      detail::conv2d_u8_vnni<Arch, !std::is_same<Rounding, DoubleRounding>::value>(
          x, x_zero_point, w, rp, y, images);
      return;
    }
  }
#endif
  thread_local std::vector<std::uint8_t> col;
  if (col.size() < static_cast<std::size_t>(p * kg)) col.resize(static_cast<std::size_t>(p * kg));
  for (std::int64_t b = 0; b < images; ++b)
    for (std::int64_t g = 0; g < s.groups; ++g) {
      im2col<std::uint8_t>(x + (b * s.in_channels + g * cig) * hw, cig, s,
                           static_cast<std::uint8_t>(x_zero_point), col.data(), kg);
      std::uint8_t* yo = y + (b * s.out_channels + g * cog) * p;
      detail::run_requant<Rounding, Arch>(col.data(), p, kg, w.group(g), x_zero_point, rp,
                                          GemmOutput<std::uint8_t>{yo, 1, p, g * cog}, path);
    }
}

/// The int8 convolution of w.shape().batch images (see the overload above).
template <class Rounding = SingleRounding<RoundHalfEven>, class Arch = DefaultArch>
void conv2d_u8(const std::uint8_t* x, std::int32_t x_zero_point, const PackedConv2dWeights& w,
               const RequantParams& rp, std::uint8_t* y, Isa isa = Isa::kAuto) {
  conv2d_u8<Rounding, Arch>(x, x_zero_point, w, rp, y, w.shape().batch, isa);
}

}  // namespace fq

#endif  // FQ_KERNELS_CONV2D_HPP_
