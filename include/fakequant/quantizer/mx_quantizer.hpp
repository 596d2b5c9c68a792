// SPDX-License-Identifier: MIT
// fakequant/quantizer/mx_quantizer.hpp: MxFakeQuantizer, the OCP Microscaling (MX v1.0) block
// formats as a fake quantizer, and the presets MxFp8E4M3, MxFp8E5M2, MxFp6E2M3, MxFp6E3M2,
// MxFp4, MxInt8.
//
//   fq::MxFp4 q;                      // E2M1 elements, blocks of 32 along the last axis
//   q.forward(w, w_q, &mask);         // y = round_E2M1(x / X) * X per block, X = 2^(b - 127)
//   q.backward(dy, mask, dx);         // dx = dy * mask (STE)
// Forward: per block of BlockSize consecutive elements along the last axis (which BlockSize
// must divide: kShapeMismatch), the E8M0 scale X from the block amax (ScaleMode; E8m0Floor is
// the spec's floor(log2 amax) - emax_elem; format/e8m0.hpp), elements cast with round to nearest
// even and saturated to the element's largest normal (the spec), y = P * X
// (kernels/mx_fake_quantize.hpp). A NaN or Inf in a block makes its scale NaN and the whole
// block NaN (spec, TorchAO).
// Gradient: the straight-through estimator through the element cast: dx = dy where
// |x / X| <= elem_max, 0 elsewhere and at NaN; the shared scale is a constant (no gradient
// through the amax), as TorchAO's MX QAT.
// Differences from TorchAO's MX (format/e8m0.hpp): the exponent clamp [-127, 127] (never NaN
// from a finite amax), X = 2^-127 exactly for b = 0 both ways, MXINT8 (TorchAO has none).
// Scale modes: dynamic (default, as the spec and TorchAO): the exponents are computed from x at
// every forward and kept (scale_exponents(), scales()). Frozen: set_scale_exponents() /
// set_scales() validate and freeze, freeze() keeps the last forward's; a frozen quantizer
// refuses an x with another block layout (kShapeMismatch); unfreeze() goes back to dynamic.
#ifndef FQ_QUANTIZER_MX_QUANTIZER_HPP_
#define FQ_QUANTIZER_MX_QUANTIZER_HPP_

#include <cstdint>  // int64_t, uint8_t, uint32_t
#include <vector>   // vector

#include <fakequant/base/error.hpp>
#include <fakequant/base/state.hpp>
#include <fakequant/core/group_layout.hpp>
#include <fakequant/core/mask.hpp>
#include <fakequant/core/tensor_view.hpp>
#include <fakequant/format/e8m0.hpp>
#include <fakequant/format/minifloat.hpp>
#include <fakequant/kernels/fake_quantize.hpp>
#include <fakequant/kernels/mx_fake_quantize.hpp>
#include <fakequant/simd/arch.hpp>

namespace fq {

/// An MX block format: Elem elements (MxElement), BlockSize per E8M0 scale, ScaleMode the
/// exponent rule (see the file comment).
template <class Elem, int BlockSize = 32, class ScaleMode = E8m0Floor>
class MxFakeQuantizer {
  static_assert(is_mx_element<Elem>::value,
                "MxFakeQuantizer: Elem must be fq::FloatE4M3, FloatE5M2, FloatE2M3, FloatE3M2, "
                "FloatE2M1 or MxInt8Element.");
  static_assert(BlockSize > 0, "MxFakeQuantizer: BlockSize must be > 0 (the spec uses 32).");
  static_assert(is_e8m0_mode<ScaleMode>::value,
                "MxFakeQuantizer: ScaleMode must be fq::E8m0Floor, E8m0Ceil, E8m0Even or "
                "E8m0Rceil.");

 public:
  using element = Elem;
  using scale_mode = ScaleMode;
  static constexpr int kBlockSize = BlockSize;
  static constexpr bool kRoundsToNearest = true;
  /// The element's largest magnitude (6 for MXFP4) and emax_elem.
  static constexpr float kElemMax = MxElement<Elem>::kMax;
  static constexpr int kElemEmax = MxElement<Elem>::kEmax;

  MxFakeQuantizer() = default;

  /// True while the exponents are recomputed at every forward.
  bool dynamic() const noexcept { return !frozen_; }
  /// The E8M0 codes of the last forward (dynamic) or the frozen ones, row-major [..., K / B].
  const std::vector<std::uint8_t>& scale_exponents() const noexcept { return exps_; }
  /// The scales 2^(b - 127) (NaN for 0xFF), in the order of scale_exponents().
  std::vector<float> scales() const {
    std::vector<float> s(exps_.size());
    for (std::size_t i = 0; i < s.size(); ++i) s[i] = e8m0_to_float(exps_[i]);
    return s;
  }
  /// The block layout of the last forward or of the frozen scales (groups() == 0 if none).
  const GroupLayout& layout() const noexcept { return layout_; }

  /// Freezes E8M0 codes for tensors of `shape` (one per block, row-major): each in [0, 254]
  /// (0xFF, NaN, is refused: kInvalidScale); count = block count (kParamCountMismatch).
  void set_scale_exponents(const std::vector<std::int64_t>& shape,
                           const std::vector<std::uint8_t>& exps) {
    constexpr const char* kWhere = "MxFakeQuantizer::set_scale_exponents";
    const GroupLayout L = layout_of(shape, kWhere);
    FQ_CHECK(static_cast<std::int64_t>(exps.size()) == L.groups(), ErrorCode::kParamCountMismatch,
             detail::msg(kWhere, ": ", exps.size(), " exponents for ", L.groups(), " blocks"));
    for (std::size_t i = 0; i < exps.size(); ++i)
      FQ_CHECK(exps[i] != kE8m0NaN, ErrorCode::kInvalidScale,
               detail::msg(kWhere, ": exponent ", i, " is 0xFF, the E8M0 NaN; codes are 0..254"));
    exps_ = exps;
    layout_ = L;
    frozen_ = true;
  }
  /// Freezes scales given as floats: each must be a power of two 2^k, k in [-127, 127]
  /// (kInvalidScale otherwise: zero, negative, NaN, Inf, not a power of two).
  void set_scales(const std::vector<std::int64_t>& shape, const std::vector<float>& scales) {
    constexpr const char* kWhere = "MxFakeQuantizer::set_scales";
    std::vector<std::uint8_t> e(scales.size());
    for (std::size_t i = 0; i < scales.size(); ++i) {
      const std::uint32_t u = detail::float_bits(scales[i]);
      const bool normal_pow2 = (u & 0x807FFFFFu) == 0 && u != 0 && (u >> 23) != 0xFF;
      FQ_CHECK(normal_pow2 || u == 0x00400000u, ErrorCode::kInvalidScale,
               detail::msg(kWhere, ": scale ", i, " = ", scales[i],
                           " is not a power of two 2^k with k in [-127, 127]"));
      e[i] = u == 0x00400000u ? std::uint8_t{0} : static_cast<std::uint8_t>(u >> 23);
    }
    set_scale_exponents(shape, e);
  }
  /// Keeps the last forward's exponents (kInvalidState before any forward; kNonFiniteInput if
  /// a block was NaN/Inf, i.e. has the NaN scale).
  void freeze() {
    FQ_CHECK(has_forward_ || frozen_, ErrorCode::kInvalidState,
             "MxFakeQuantizer::freeze: no forward has computed scales yet");
    for (std::uint8_t b : exps_)
      FQ_CHECK(b != kE8m0NaN, ErrorCode::kNonFiniteInput,
               "MxFakeQuantizer::freeze: the last forward had a block holding NaN or Inf "
               "(scale 0xFF); freeze after a finite batch or set_scale_exponents()");
    frozen_ = true;
  }
  /// Back to dynamic exponents.
  void unfreeze() noexcept { frozen_ = false; }

  /// The checkpoint state (base/state.hpp): the mode, the layout and the E8M0 codes of the
  /// last forward or the frozen ones (codes 0..254: a checkpoint right after a forward of
  /// NaN/Inf input, whose code is 0xFF, is refused).
  template <class V>
  void visit_state(V& v) {
    v.kind("mx_fake_quantizer");
    v.config("block_size", BlockSize);
    v.config("elem_max", kElemMax);
    v.state("frozen", frozen_);
    v.state("has_forward", has_forward_);
    detail::visit_group_layout_state(v, "layout", layout_);
    v.state_vector("scale_exponents", exps_, state_in(0, 254), StateSize{});
  }

  /// y = MX fake quantization of x (file comment); mask receives the STE mask if not null.
  /// y may be x. @param path Isa::kAuto or Isa::kScalar (simd/arch.hpp).
  template <class Arch = DefaultArch>
  void forward(TensorView<const float> x, TensorView<float> y, Mask* mask = nullptr,
               Isa path = Isa::kAuto) {
    if (frozen_) {
      const GroupLayout L = detail::block_layout(x, BlockSize, "MxFakeQuantizer::forward");
      FQ_CHECK(L == layout_, ErrorCode::kShapeMismatch,
               detail::msg("MxFakeQuantizer::forward: the frozen scales are for ", layout_.groups(),
                           " blocks of ", layout_.axis_len, "-element rows; x has ", L.groups(),
                           " blocks of ", L.axis_len, "-element rows"));
      FQ_CHECK(static_cast<std::int64_t>(exps_.size()) == L.groups(),
               ErrorCode::kParamCountMismatch,
               detail::msg("MxFakeQuantizer::forward: ", exps_.size(), " frozen exponents for ",
                           L.groups(), " blocks"));
    }
    layout_ = mx_fake_quantize<Elem, ScaleMode, Arch>(x, y, BlockSize, exps_, !frozen_, mask, path);
    has_forward_ = true;
  }

  /// dx = dy * mask (STE). dx may be dy.
  template <class Arch = DefaultArch>
  void backward(TensorView<const float> dy, const Mask& mask, TensorView<float> dx,
                Isa path = Isa::kAuto) const {
    fake_quantize_backward<MaskedSte, Arch>(dy, mask, dx, path);
  }

 private:
  static GroupLayout layout_of(const std::vector<std::int64_t>& shape, const char* where) {
    FQ_CHECK(!shape.empty() && shape.size() <= static_cast<std::size_t>(kMaxRank),
             ErrorCode::kInvalidLayout,
             detail::msg(where, ": the shape must have 1 to ", kMaxRank, " dimensions"));
    for (std::int64_t d : shape)
      FQ_CHECK(d >= 0, ErrorCode::kShapeMismatch, detail::msg(where, ": negative extent ", d));
    return detail::make_group_layout(shape.data(), static_cast<int>(shape.size()), -1, BlockSize,
                                     GroupTail::kMustDivide, where);
  }

  std::vector<std::uint8_t> exps_;
  GroupLayout layout_;
  bool frozen_ = false;
  bool has_forward_ = false;
};

/// MXFP8 with E4M3 elements (emax 8, max 448).
using MxFp8E4M3 = MxFakeQuantizer<FloatE4M3>;
/// MXFP8 with E5M2 elements (emax 15, max 57344).
using MxFp8E5M2 = MxFakeQuantizer<FloatE5M2>;
/// MXFP6 with E2M3 elements (emax 2, max 7.5).
using MxFp6E2M3 = MxFakeQuantizer<FloatE2M3>;
/// MXFP6 with E3M2 elements (emax 4, max 28).
using MxFp6E3M2 = MxFakeQuantizer<FloatE3M2>;
/// MXFP4 with E2M1 elements (emax 2, max 6).
using MxFp4 = MxFakeQuantizer<FloatE2M1>;
/// MXINT8: int8 elements times 2^-6 (emax 0, max 127/64).
using MxInt8 = MxFakeQuantizer<MxInt8Element>;

}  // namespace fq

#endif  // FQ_QUANTIZER_MX_QUANTIZER_HPP_
