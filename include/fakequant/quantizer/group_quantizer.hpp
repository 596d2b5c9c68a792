// SPDX-License-Identifier: MIT
// fakequant/quantizer/group_quantizer.hpp: GroupFakeQuantizer, a QScheme with a PerGroup or
// PerToken granularity plus its per-group scales and zero points, and the LLM presets
// (TorchAO's int4 weight groups, 8da4w per-token activations).
//
//   fq::Int4WeightGroup32Symmetric wq;          // = GroupFakeQuantizer<QScheme<Int4, Symmetric,
//   wq.forward(w, w_q, &mask);                  //     PerGroup<32>>>: scales [N, K / 32]
//   wq.backward(dy, mask, dx);                  // dx = dy * mask (STE, scale constant)
//
// Forward: per group, y = (clamp(round(x * f32(1/s)) + z, qmin, qmax) - z) * s and
// mask = qmin <= round(x * f32(1/s)) + z <= qmax; the scale rule (TorchAO's
// choose_qparams_affine, or its legacy per-token zero point), rounding (half to even), the
// tail rule and the NaN/Inf rule: kernels/group_fake_quantize.hpp. Gradient: the STE of
// TorchAO's QAT (scale and zero point constants: computed under no_grad), dx = dy * mask
// (MaskedSte) or dy (PassThroughSte); TorchAO's autograd computes ((dy * s) * mask) * f32(1/s),
// which may differ from dy * mask by an ulp.
// Scale modes: dynamic (default, as TorchAO's QAT: the scales are recomputed from x at every
// forward and kept, readable with scale()), or frozen: set_qparams() (validated) or freeze()
// (keeps the last forward's) fix them, and a forward on an x of another group layout is
// kShapeMismatch; unfreeze() returns to dynamic.
#ifndef FQ_QUANTIZER_GROUP_QUANTIZER_HPP_
#define FQ_QUANTIZER_GROUP_QUANTIZER_HPP_

#include <cstdint>      // int32_t, int64_t
#include <type_traits>  // is_same
#include <utility>      // forward
#include <vector>       // vector

#include <fakequant/base/error.hpp>
#include <fakequant/base/state.hpp>
#include <fakequant/core/checks.hpp>
#include <fakequant/core/group_layout.hpp>
#include <fakequant/core/mask.hpp>
#include <fakequant/core/tensor_view.hpp>
#include <fakequant/kernels/fake_quantize.hpp>
#include <fakequant/kernels/group_fake_quantize.hpp>
#include <fakequant/scheme/qscheme.hpp>

namespace fq {

/// The compile-time default of a GroupFakeQuantizer's dynamic qparams rule.
template <GroupZeroPoint Zero = GroupZeroPoint::kChooseQParamsAffine,
          GroupScaleEps Eps = GroupScaleEps::kSmallestNormal>
struct GroupQParams {
  static constexpr GroupQParamsRule value() noexcept { return GroupQParamsRule{Zero, Eps}; }
};
/// TorchAO's 8da4w activations: choose_qparams_affine ASYMMETRIC with eps = float32 epsilon.
using TorchAO8da4wActQParams =
    GroupQParams<GroupZeroPoint::kChooseQParamsAffine, GroupScaleEps::kFloat32Epsilon>;
/// TorchAO's 8da4w activations before April 2025 (_choose_qparams_per_token_asymmetric).
using TorchAOLegacyPerTokenQParams =
    GroupQParams<GroupZeroPoint::kPerTokenMinError, GroupScaleEps::kFloat32Epsilon>;

/// A QScheme with a PerGroup / PerToken granularity and its per-group qparams (file comment).
template <class Scheme, class QParams = GroupQParams<>>
class GroupFakeQuantizer {
  using G = typename Scheme::granularity;
  static_assert(G::kPerGroup,
                "GroupFakeQuantizer: the scheme's granularity must be fq::PerGroup<G, Axis, Tail> "
                "or fq::PerToken; per-tensor and per-channel schemes use fq::FakeQuantizer.");
  static_assert(!Scheme::range::kRuntime,
                "GroupFakeQuantizer: the scheme needs a compile-time IntRange (fq::Int4, ...).");
  static_assert(std::is_same<typename Scheme::zero_point_type, std::int32_t>::value,
                "GroupFakeQuantizer: group formats use an integer zero point (TorchAO's INT zero "
                "point domain); use fq::IntegerZeroPoint.");

 public:
  using scheme = Scheme;
  using zero_point_type = std::int32_t;
  static constexpr int kAxis = G::kAxis;
  static constexpr bool kRuntimeGroup = G::kGroupSize == kRuntimeGroupSize;

  /// A compile-time group size (or PerToken).
  GroupFakeQuantizer() : group_size_(G::kGroupSize) {
    static_assert(!kRuntimeGroup,
                  "GroupFakeQuantizer: a PerGroup<fq::kRuntimeGroupSize> scheme needs the group "
                  "size at construction: GroupFakeQuantizer<S>(group_size).");
  }
  /// A run-time group size (> 0), for PerGroup<fq::kRuntimeGroupSize>.
  explicit GroupFakeQuantizer(std::int64_t group_size) : group_size_(group_size) {
    static_assert(kRuntimeGroup,
                  "GroupFakeQuantizer: the group size is a constructor argument only for "
                  "PerGroup<fq::kRuntimeGroupSize>.");
    FQ_CHECK(group_size > 0, ErrorCode::kInvalidArgument,
             detail::msg("GroupFakeQuantizer: the group size must be > 0, got ", group_size));
  }

  static constexpr QuantRange range() noexcept { return Scheme::range::value(); }
  /// The group size (G; kWholeAxisGroup = -1 for PerToken).
  std::int64_t group_size() const noexcept { return group_size_; }
  /// The layout of the last forward or of set_qparams (groups() == 0 before either).
  const GroupLayout& layout() const noexcept { return layout_; }
  /// One scale / zero point per group, in layout order ([N, K / G] for a [N, K] weight).
  const std::vector<float>& scale() const noexcept { return scale_; }
  const std::vector<std::int32_t>& zero_point() const noexcept { return zero_point_; }
  bool dynamic() const noexcept { return dynamic_; }
  GroupQParamsRule rule() const noexcept { return rule_; }
  /// Changes the dynamic rule (zero point choice, eps) at run time.
  void set_rule(const GroupQParamsRule& r) noexcept { rule_ = r; }
  /// The zero point of a symmetric scheme (TorchAO: int((qmin + qmax + 1) / 2)).
  static std::int32_t symmetric_zero_point() noexcept {
    return detail::torchao_symmetric_zero(range());
  }

  /// The group layout of a tensor of this shape (kShapeMismatch if G does not divide the axis
  /// under GroupTail::kMustDivide).
  GroupLayout layout_of(const std::int64_t* shape, int rank) const {
    return detail::make_group_layout(shape, rank, kAxis, group_size_, G::kTail,
                                     "GroupFakeQuantizer");
  }

  /// Freezes the quantizer with these qparams for tensors of the layout `layout` (e.g.
  /// layout_of(shape)): count = layout.groups(), scales finite > 0 with a finite inverse,
  /// zero points in range, a symmetric scheme's zero point symmetric_zero_point().
  void set_qparams(const GroupLayout& layout, const std::vector<float>& scales,
                   const std::vector<std::int32_t>& zero_points) {
    constexpr const char* kWhere = "GroupFakeQuantizer::set_qparams";
    FQ_CHECK(static_cast<std::int64_t>(scales.size()) == layout.groups() &&
                 static_cast<std::int64_t>(zero_points.size()) == layout.groups(),
             ErrorCode::kParamCountMismatch,
             detail::msg(kWhere, ": ", scales.size(), " scales and ", zero_points.size(),
                         " zero points for ", layout.groups(), " groups"));
    check_qparams(scales.data(), zero_points.data(), layout.groups(), kWhere);
    layout_ = layout;
    has_layout_ = true;
    scale_ = scales;
    zero_point_ = zero_points;
    dynamic_ = false;
  }
  /// As above, for the layout of the last forward (kInvalidState before any forward).
  void set_qparams(const std::vector<float>& scales, const std::vector<std::int32_t>& zero_points) {
    FQ_CHECK(has_layout_, ErrorCode::kInvalidState,
             "GroupFakeQuantizer::set_qparams: no group layout yet; pass one (layout_of(shape)) "
             "or run a forward first");
    set_qparams(GroupLayout(layout_), scales, zero_points);
  }
  /// Keeps the last forward's qparams (kInvalidState before any forward; kInvalidScale if a
  /// group of that forward was not finite).
  void freeze() {
    FQ_CHECK(has_layout_, ErrorCode::kInvalidState,
             "GroupFakeQuantizer::freeze: no forward has computed the scales yet");
    check_qparams(scale_.data(), zero_point_.data(), layout_.groups(),
                  "GroupFakeQuantizer::freeze");
    dynamic_ = false;
  }
  /// Back to dynamic qparams (recomputed at every forward).
  void unfreeze() noexcept { dynamic_ = true; }

  /// The checkpoint state (base/state.hpp): the mode, the layout and the qparams of the last
  /// forward or the frozen ones (a dynamic quantizer recomputes them; they are saved so that
  /// freeze() after a resume keeps the same ones).
  template <class V>
  void visit_state(V& v) {
    v.kind("group_fake_quantizer");
    v.config("quant_min", range().quant_min);
    v.config("quant_max", range().quant_max);
    v.config("group_size", group_size_);
    v.state("dynamic", dynamic_);
    v.state("has_layout", has_layout_);
    detail::visit_group_layout_state(v, "layout", layout_);
    v.state_vector("scale", scale_, state_scale(), StateSize{});
    StateCheck z = state_in(range().quant_min, range().quant_max);
    if constexpr (Scheme::mapping::kSymmetric)
      z = state_in(symmetric_zero_point(), symmetric_zero_point());
    v.state_vector("zero_point", zero_point_, z, StateSize{0, StateSize{}.max, "scale"});
  }

  /// y = fake_quant(x) per group (y may be x); the STE mask to `mask` if not null.
  template <class Arch = DefaultArch>
  void forward(TensorView<const float> x, TensorView<float> y, Mask* mask = nullptr,
               Isa path = Isa::kAuto) {
    const GroupLayout L = layout_of(x.shape().data(), x.rank());
    if (dynamic_) {
      scale_.resize(static_cast<std::size_t>(L.groups()));
      zero_point_.resize(static_cast<std::size_t>(L.groups()));
      layout_ = L;
      has_layout_ = true;
      fake_quantize_per_group_dynamic<Scheme, Arch>(x, y, mask, L, range(), rule_, scale_.data(),
                                                    zero_point_.data(), path);
    } else {
      FQ_CHECK(L == layout_, ErrorCode::kShapeMismatch,
               detail::msg("GroupFakeQuantizer::forward: the input's group layout (", L.groups(),
                           " groups of ", L.group_size, ", axis extent ", L.axis_len,
                           ") differs from the frozen one (", layout_.groups(), " groups of ",
                           layout_.group_size, ", axis extent ", layout_.axis_len,
                           "); unfreeze() or set_qparams for this shape"));
      FQ_CHECK(static_cast<std::int64_t>(scale_.size()) == L.groups() &&
                   zero_point_.size() == scale_.size(),
               ErrorCode::kParamCountMismatch,
               detail::msg("GroupFakeQuantizer::forward: ", scale_.size(), " frozen scales for ",
                           L.groups(), " groups"));
      fake_quantize_per_group<Scheme, Arch>(x, y, mask, L, scale_.data(), zero_point_.data(),
                                            range(), path);
    }
  }

  /// dx = dy * mask (MaskedSte) or dy (PassThroughSte); dx may be dy.
  template <class Arch = DefaultArch>
  void backward(TensorView<const float> dy, const Mask& mask, TensorView<float> dx,
                Isa path = Isa::kAuto) const {
    fake_quantize_backward<typename Scheme::clamp_grad, Arch>(dy, mask, dx, path);
  }

 private:
  void check_qparams(const float* s, const std::int32_t* z, std::int64_t n,
                     const char* where) const {
    for (std::int64_t g = 0; g < n; ++g) {
      detail::check_scale(s[g], where);
      detail::check_zero_point(z[g], range(), where);
      if constexpr (Scheme::mapping::kSymmetric)
        FQ_CHECK(z[g] == symmetric_zero_point(), ErrorCode::kInvalidZeroPoint,
                 detail::msg(where, ": a symmetric scheme needs zero point ",
                             symmetric_zero_point(), ", got ", z[g], " (group ", g, ")"));
    }
  }

  std::int64_t group_size_;
  GroupLayout layout_{};
  bool has_layout_ = false;
  bool dynamic_ = true;
  GroupQParamsRule rule_ = QParams::value();
  std::vector<float> scale_;
  std::vector<std::int32_t> zero_point_;
};

// ---- Presets (TorchAO's QAT configurations) ----------------------------------------------

/// int4 [-8, 7] symmetric weights, groups of 32 / 64 / 128 along the last axis (K of [N, K]):
/// TorchAO's 8da4w weight (get_group_qparams_symmetric, eps = smallest normal).
using Int4WeightGroup32Symmetric = GroupFakeQuantizer<QScheme<Int4, Symmetric, PerGroup<32>>>;
using Int4WeightGroup64Symmetric = GroupFakeQuantizer<QScheme<Int4, Symmetric, PerGroup<64>>>;
using Int4WeightGroup128Symmetric = GroupFakeQuantizer<QScheme<Int4, Symmetric, PerGroup<128>>>;
/// uint4 [0, 15] affine weights, groups of 128, integer zero point (choose_qparams_affine
/// ASYMMETRIC; not TorchAO's tinygemm float-zero-point domain).
using Int4WeightGroup128Affine = GroupFakeQuantizer<QScheme<UInt4, Affine, PerGroup<128>>>;
/// int8 symmetric weights in groups of 32.
using Int8WeightGroup32Symmetric = GroupFakeQuantizer<QScheme<Int8, Symmetric, PerGroup<32>>>;
/// int2 [-2, 1] symmetric weights in groups of 32.
using Int2WeightGroup32Symmetric = GroupFakeQuantizer<QScheme<Int2, Symmetric, PerGroup<32>>>;
/// int4 symmetric weights with a run-time group size (constructor argument).
using Int4WeightGroupSymmetric =
    GroupFakeQuantizer<QScheme<Int4, Symmetric, PerGroup<kRuntimeGroupSize>>>;
/// int8 [-128, 127] asymmetric per-token activations: TorchAO's 8da4w activations.
using Int8ActPerTokenDynamic =
    GroupFakeQuantizer<QScheme<Int8, Affine, PerToken>, TorchAO8da4wActQParams>;
/// As Int8ActPerTokenDynamic with the legacy min-error zero point (TorchAO before 2025-04).
using Int8ActPerTokenDynamicLegacy =
    GroupFakeQuantizer<QScheme<Int8, Affine, PerToken>, TorchAOLegacyPerTokenQParams>;
/// int4 [-8, 7] asymmetric per-token activations.
using Int4ActPerTokenDynamic =
    GroupFakeQuantizer<QScheme<Int4, Affine, PerToken>, TorchAO8da4wActQParams>;
/// int8 symmetric per-token activations (choose_qparams_affine SYMMETRIC per row).
using Int8ActPerTokenSymmetricDynamic =
    GroupFakeQuantizer<QScheme<Int8, Symmetric, PerToken>, TorchAO8da4wActQParams>;

}  // namespace fq

#endif  // FQ_QUANTIZER_GROUP_QUANTIZER_HPP_
