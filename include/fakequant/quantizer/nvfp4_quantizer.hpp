// SPDX-License-Identifier: MIT
// fakequant/quantizer/nvfp4_quantizer.hpp: NvFp4FakeQuantizer, NVIDIA's NVFP4 as a fake
// quantizer (E2M1 elements, blocks of 16 along the last axis, an FP8 E4M3 scale per block and,
// two-level, an FP32 per-tensor scale), and the presets NvFp4 and NvFp4SingleLevel.
//
//   fq::NvFp4 q;                        // two-level, every scale dynamic
//   q.set_per_tensor_amax(calib_amax);  // optional: pts = amax / 2688 from calibration
//   q.forward(x, y, &mask);             // y = round_E2M1(x / (pts * s8)) * (pts * s8)
//   q.backward(dy, mask, dx);           // dx = dy * mask (STE)
// Forward: TorchAO's _nvfp4_quantize step by step (kernels/nvfp4_fake_quantize.hpp, which
// states the order of operations and the one difference: an all-zero tensor gives 0, not NaN).
// Gradient: dx = dy where |x / total| <= 6, else 0 (and 0 at NaN); the scales are constants.
// Scale modes: the block scales are dynamic (computed from x at every forward, kept:
// block_scales()) or frozen (set_scales() validates and freezes; freeze() keeps the last
// forward's; unfreeze() returns to dynamic). The per-tensor scale (two-level only) is dynamic
// (x's amax / 2688 at every forward) unless set by set_per_tensor_scale() /
// set_per_tensor_amax() (kept until clear_per_tensor_scale()) or frozen with the block scales.
// A frozen quantizer refuses an x with another block layout (kShapeMismatch).
#ifndef FQ_QUANTIZER_NVFP4_QUANTIZER_HPP_
#define FQ_QUANTIZER_NVFP4_QUANTIZER_HPP_

#include <cmath>    // isfinite
#include <cstdint>  // int64_t
#include <limits>   // numeric_limits
#include <vector>   // vector

#include <fakequant/base/error.hpp>
#include <fakequant/base/state.hpp>
#include <fakequant/core/group_layout.hpp>
#include <fakequant/core/mask.hpp>
#include <fakequant/core/tensor_view.hpp>
#include <fakequant/format/minifloat.hpp>
#include <fakequant/kernels/fake_quantize.hpp>
#include <fakequant/kernels/nvfp4_fake_quantize.hpp>
#include <fakequant/simd/arch.hpp>

namespace fq {

/// How many scale levels NVFP4 uses.
enum class NvFp4Scaling {
  kTwoLevel,     ///< FP32 per-tensor scale times the E4M3 block scale (NVIDIA's recipe)
  kSingleLevel,  ///< the E4M3 block scale alone (TorchAO with per_tensor_scale=None)
};

/// NVFP4 fake quantizer (see the file comment).
template <NvFp4Scaling Scaling = NvFp4Scaling::kTwoLevel>
class NvFp4FakeQuantizer {
 public:
  static constexpr bool kTwoLevel = Scaling == NvFp4Scaling::kTwoLevel;
  static constexpr int kBlockSize = kNvFp4BlockSize;
  static constexpr bool kRoundsToNearest = true;

  NvFp4FakeQuantizer() { st_.two_level = kTwoLevel; }

  /// True while the block scales are recomputed at every forward.
  bool dynamic() const noexcept { return st_.dynamic_blocks; }
  /// True while the per-tensor scale is recomputed at every forward (two-level, not set).
  bool dynamic_per_tensor_scale() const noexcept { return kTwoLevel && st_.dynamic_pts; }
  /// The per-tensor scale of the last forward or the set one (1 for single-level).
  float per_tensor_scale() const noexcept { return st_.pts; }
  /// The E4M3 block scales (row-major [..., K / 16]) of the last forward or the frozen ones.
  const std::vector<float>& block_scales() const noexcept { return st_.block_scales; }
  /// The block layout of the last forward or of the frozen scales.
  const GroupLayout& layout() const noexcept { return layout_; }

  /// Sets the per-tensor scale (two-level only): finite and >= FLT_MIN (kInvalidScale).
  void set_per_tensor_scale(float pts) {
    static_assert(kTwoLevel,
                  "NvFp4FakeQuantizer: a single-level quantizer has no per-tensor scale.");
    check_pts(pts, "NvFp4FakeQuantizer::set_per_tensor_scale");
    user_pts_ = pts;
    pts_set_ = true;
    if (st_.dynamic_blocks) {  // a frozen quantizer keeps its frozen pts until unfreeze()
      st_.pts = pts;
      st_.dynamic_pts = false;
    }
  }
  /// Sets the per-tensor scale from a calibrated amax: amax / 2688 (TorchAO's
  /// per_tensor_amax_to_scale); amax must be finite and > 0 (kInvalidScale).
  void set_per_tensor_amax(float amax) {
    FQ_CHECK(std::isfinite(amax) && amax > 0.0f, ErrorCode::kInvalidScale,
             detail::msg("NvFp4FakeQuantizer::set_per_tensor_amax: the amax must be finite and "
                         "> 0, got ",
                         amax));
    set_per_tensor_scale(nvfp4_per_tensor_scale(amax));
  }
  /// Back to a per-tensor scale computed from x at every forward.
  void clear_per_tensor_scale() noexcept {
    pts_set_ = false;
    if (st_.dynamic_blocks) st_.dynamic_pts = true;
  }

  /// Freezes block scales for tensors of `shape` (one per block of 16, row-major): each a
  /// positive E4M3 value (finite, > 0, <= 448, exactly representable; kInvalidScale), count =
  /// block count (kParamCountMismatch). Two-level: `per_tensor_scale` as set_per_tensor_scale;
  /// single-level: it must be 1.
  void set_scales(const std::vector<std::int64_t>& shape, const std::vector<float>& block_scales,
                  float per_tensor_scale = 1.0f) {
    constexpr const char* kWhere = "NvFp4FakeQuantizer::set_scales";
    FQ_CHECK(!shape.empty() && shape.size() <= static_cast<std::size_t>(kMaxRank),
             ErrorCode::kInvalidLayout,
             detail::msg(kWhere, ": the shape must have 1 to ", kMaxRank, " dimensions"));
    for (std::int64_t d : shape)
      FQ_CHECK(d >= 0, ErrorCode::kShapeMismatch, detail::msg(kWhere, ": negative extent ", d));
    const GroupLayout L = detail::make_group_layout(shape.data(), static_cast<int>(shape.size()),
                                                    -1, kBlockSize, GroupTail::kMustDivide, kWhere);
    FQ_CHECK(static_cast<std::int64_t>(block_scales.size()) == L.groups(),
             ErrorCode::kParamCountMismatch,
             detail::msg(kWhere, ": ", block_scales.size(), " block scales for ", L.groups(),
                         " blocks"));
    for (std::size_t i = 0; i < block_scales.size(); ++i)
      check_block_scale(block_scales[i], i, kWhere);
    if constexpr (kTwoLevel)
      check_pts(per_tensor_scale, kWhere);
    else
      FQ_CHECK(per_tensor_scale == 1.0f, ErrorCode::kInvalidArgument,
               detail::msg(kWhere, ": a single-level quantizer has no per-tensor scale; got ",
                           per_tensor_scale, " (pass 1)"));
    st_.block_scales = block_scales;
    st_.pts = kTwoLevel ? per_tensor_scale : 1.0f;
    st_.dynamic_pts = false;
    st_.dynamic_blocks = false;
    layout_ = L;
  }
  /// Keeps the last forward's block and per-tensor scales (kInvalidState before any forward;
  /// kNonFiniteInput if one is NaN, from NaN/Inf input).
  void freeze() {
    FQ_CHECK(has_forward_ || !st_.dynamic_blocks, ErrorCode::kInvalidState,
             "NvFp4FakeQuantizer::freeze: no forward has computed scales yet");
    bool finite = std::isfinite(st_.pts);
    for (float s : st_.block_scales) finite = finite && std::isfinite(s);
    FQ_CHECK(finite, ErrorCode::kNonFiniteInput,
             "NvFp4FakeQuantizer::freeze: the last forward's scales are NaN (NaN or Inf input); "
             "freeze after a finite batch or use set_scales()");
    st_.dynamic_blocks = false;
    st_.dynamic_pts = false;
  }
  /// Back to dynamic block scales; the per-tensor scale becomes the one set by
  /// set_per_tensor_scale / set_per_tensor_amax if any, else dynamic.
  void unfreeze() noexcept {
    st_.dynamic_blocks = true;
    st_.dynamic_pts = !pts_set_;
    if (pts_set_) st_.pts = user_pts_;
  }

  /// The checkpoint state (base/state.hpp): the modes, the per-tensor scale in use and the one
  /// the user set, the layout and the E4M3 block scales of the last forward or the frozen ones
  /// (a checkpoint right after a forward of NaN/Inf input, whose scales are NaN, is refused).
  template <class V>
  void visit_state(V& v) {
    v.kind("nvfp4_fake_quantizer");
    v.config("two_level", kTwoLevel);
    v.config("block_size", kBlockSize);
    const StateCheck pts =
        state_in(std::numeric_limits<float>::min(), std::numeric_limits<float>::max());
    v.state("dynamic_blocks", st_.dynamic_blocks);
    v.state("dynamic_per_tensor_scale", st_.dynamic_pts);
    v.state("per_tensor_scale", st_.pts, pts);
    v.state("user_per_tensor_scale", user_pts_, pts);
    v.state("per_tensor_scale_set", pts_set_);
    v.state("has_forward", has_forward_);
    detail::visit_group_layout_state(v, "layout", layout_);
    StateCheck block = state_in(0.0, 448.0);  // positive E4M3 values
    block.scale = true;
    v.state_vector("block_scales", st_.block_scales, block, StateSize{});
  }

  /// y = NVFP4 fake quantization of x; mask receives the STE mask if not null. y may be x.
  template <class Arch = DefaultArch>
  void forward(TensorView<const float> x, TensorView<float> y, Mask* mask = nullptr,
               Isa path = Isa::kAuto) {
    if (!st_.dynamic_blocks) {
      const GroupLayout L = detail::block_layout(x, kBlockSize, "NvFp4FakeQuantizer::forward");
      FQ_CHECK(
          L == layout_, ErrorCode::kShapeMismatch,
          detail::msg("NvFp4FakeQuantizer::forward: the frozen scales are for ", layout_.groups(),
                      " blocks of ", layout_.axis_len, "-element rows; x has ", L.groups(),
                      " blocks of ", L.axis_len, "-element rows"));
    }
    layout_ = nvfp4_fake_quantize<Arch>(x, y, st_, mask, path, kBlockSize);
    has_forward_ = true;
  }

  /// dx = dy * mask (STE). dx may be dy.
  template <class Arch = DefaultArch>
  void backward(TensorView<const float> dy, const Mask& mask, TensorView<float> dx,
                Isa path = Isa::kAuto) const {
    fake_quantize_backward<MaskedSte, Arch>(dy, mask, dx, path);
  }

 private:
  static void check_pts(float pts, const char* where) {
    FQ_CHECK(std::isfinite(pts) && pts >= std::numeric_limits<float>::min(),
             ErrorCode::kInvalidScale,
             detail::msg(where,
                         ": the per-tensor scale must be finite and >= FLT_MIN (a smaller "
                         "one lets pts * block_scale underflow to 0), got ",
                         pts));
  }
  static void check_block_scale(float s, std::size_t i, const char* where) {
    const bool ok = std::isfinite(s) && s > 0.0f && round_to_format<FloatE4M3, FpSaturate>(s) == s;
    FQ_CHECK(ok, ErrorCode::kInvalidScale,
             detail::msg(where, ": block scale ", i, " = ", s,
                         " is not a positive FP8 E4M3 value (finite, > 0, <= 448, representable)"));
  }

  NvFp4State st_;
  GroupLayout layout_;
  float user_pts_ = 1.0f;  ///< the per-tensor scale set by the user (pts_set_)
  bool pts_set_ = false;
  bool has_forward_ = false;
};

/// NVFP4 with the two-level scale (TorchAO's NVFP4 with a per-tensor scale, NVIDIA's recipe).
using NvFp4 = NvFp4FakeQuantizer<NvFp4Scaling::kTwoLevel>;
/// NVFP4 with E4M3 block scales only.
using NvFp4SingleLevel = NvFp4FakeQuantizer<NvFp4Scaling::kSingleLevel>;

}  // namespace fq

#endif  // FQ_QUANTIZER_NVFP4_QUANTIZER_HPP_
