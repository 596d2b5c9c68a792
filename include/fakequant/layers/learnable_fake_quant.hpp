// SPDX-License-Identifier: MIT
// fakequant/layers/learnable_fake_quant.hpp: LearnableFakeQuant — an LSQ/LSQ+ quantizer
// (learnable/lsq.hpp) as a tape node whose scale and zero point are trainable parameters.
//
// Forward:  y = (clamp(rne(x / s) + z, qmin, qmax) − z)·s with the learned s, z (LsqQuantizer).
// Gradient: the backward recomputes the fused LSQ pass from x and dy (the mask is not used):
//           dx += dy·[not clipped];  d s_param += g·Σ dy·(∂y/∂s)·(∂s/∂s_param);
//           d z += g·Σ dy·(clipped ? −s : 0)   (g: the scheme's gradient scale).
// The parameter gradients accumulate into buffers exposed by visit_parameters for the
// optimizer (fq::optim::parameters_of; zeroed by its zero_grad), and only while learning is on
// (set_learning, a QatSchedule hook).
// While the observer is on, each forward first sets s and z from the tensor's min/max (as
// PyTorch's _LearnableFakeQuantize copies its observer's qparams): affine when the zero
// point is learned, symmetric otherwise. With fake quantization off, y = x and dx = dy.
// Data parallel (a SyncBatchStats scope alive, base/communicator.hpp): that min/max is the
// global batch's (min and max over ranks), so every rank starts from the same s and z.
// The node meets the quantizer protocol (quantizer/concept.hpp): forward(x, y, mask) and
// backward(x, dy, mask, dx) are the above on views (the switches are read at each call: do not
// toggle them between a forward and its backward), and forward(tape, x) is
// ops::fake_quant(tape, x, *this), so it records a backward whenever the tape records.
#ifndef FQ_LAYERS_LEARNABLE_FAKE_QUANT_HPP_
#define FQ_LAYERS_LEARNABLE_FAKE_QUANT_HPP_

#include <algorithm>    // max, min
#include <cmath>        // nearbyint, sqrt
#include <cstdint>      // int64_t
#include <type_traits>  // is_same
#include <vector>       // vector

#include <fakequant/base/communicator.hpp>
#include <fakequant/core/checks.hpp>
#include <fakequant/core/mask.hpp>
#include <fakequant/core/tensor_view.hpp>
#include <fakequant/learnable/lsq.hpp>
#include <fakequant/learnable/pact.hpp>
#include <fakequant/observer/aminmax.hpp>
#include <fakequant/ops/fake_quant.hpp>
#include <fakequant/scheme/range.hpp>
#include <fakequant/simd/arch.hpp>
#include <fakequant/tape/tape.hpp>

namespace fq {

/// @tparam Scheme an LsqScheme. @tparam Range the default range (IntRange): a default-
/// constructed node (as the layers hold their quantizers) uses it, learning the zero point
/// exactly when the range is unsigned.
///
/// The parameters never move once visit_parameters() has handed them out (an optimizer keeps
/// pointers into them): they are sized when the channel count is known and never
/// reallocated. A per-channel node constructed with its channel count is sized at once; a
/// default-constructed one takes the count from set_channel_count() or from the first tensor
/// it sees with the observer on, and until then visit_parameters() (so
/// fq::optim::parameters_of) is an error (kInvalidArgument) rather than a list that the first
/// forward would invalidate. A tensor
/// whose channel count differs from the sized one is kParamCountMismatch.
template <class Scheme, class Range = UInt8>
class LearnableFakeQuant {
  static_assert(is_range<Range>::value && !Range::kRuntime,
                "LearnableFakeQuant: Range must be an IntRange (e.g. fq::UInt8, fq::Int8); pass "
                "a run-time range to the constructor instead.");

 public:
  using quantizer_type = LsqQuantizer<Scheme>;
  static constexpr bool kPerChannel = quantizer_type::kPerChannel;
  static constexpr int kAxis = quantizer_type::kAxis;

  /// Per tensor: sized. Per channel: the channel count comes later (see the class comment).
  LearnableFakeQuant() : LearnableFakeQuant(Range::value(), 1, !Range::kSigned) {
    // A delegating constructor cannot also initialize a member.
    // NOLINTNEXTLINE(cppcoreguidelines-prefer-member-initializer)
    sized_ = !kPerChannel;
  }
  /// @param range [qmin, qmax]. @param channels 1 per tensor, else the extent of the axis
  /// (the parameters are sized now). @param learn_zero_point false for symmetric quantizers
  /// (z stays as set, 0 by default).
  explicit LearnableFakeQuant(QuantRange range, std::int64_t channels = 1,
                              bool learn_zero_point = true)
      : q_(range, channels, learn_zero_point),
        learn_zero_point_(learn_zero_point),
        scale_grad_(static_cast<std::size_t>(channels), 0.0f),
        zero_point_grad_(static_cast<std::size_t>(channels), 0.0f) {}

  /// Sizes a default-constructed per-channel node for `channels` channels, the extent of its
  /// axis (a layer knows its output channels at construction). A no-op if already sized for
  /// that count, and for a per-tensor node; another count once sized is kParamCountMismatch.
  void set_channel_count(std::int64_t channels) {
    if constexpr (kPerChannel) {
      if (!sized_) {
        resize(channels);
        return;
      }
      FQ_CHECK(channels == q_.channels(), ErrorCode::kParamCountMismatch,
               detail::msg("LearnableFakeQuant::set_channel_count: the parameters are sized for ",
                           q_.channels(), " channels, got ", channels));
    } else {
      (void)channels;
    }
  }

  /// y = LSQ(x) on the tape: ops::fake_quant(tape, x, *this) (file comment). Arch: the
  /// kernels' instruction set (fq::DefaultArch; simd/arch.hpp).
  template <class Arch = DefaultArch>
  Var forward(Tape& tape, const Var& x) {
    return ops::fake_quant<Arch>(tape, x, *this);
  }

  /// The protocol's forward: sizes a per-channel node on its first tensor, lets the observer
  /// set s and z, then y = LSQ(x) with the in-range mask, or y = x (all bits set) with fake
  /// quantization off.
  template <class Arch = DefaultArch>
  void forward(TensorView<const float> x, TensorView<float> y, Mask* mask) {
    if constexpr (kPerChannel) {
      const std::int64_t c = x.numel() > 0 ? x.size(kAxis) : q_.channels();
      if (!sized_ && x.numel() > 0) {  // first tensor: take its channel count
        FQ_CHECK(observer_ || c == q_.channels(), ErrorCode::kParamCountMismatch,
                 detail::msg("LearnableFakeQuant: the tensor has ", c,
                             " channels and the observer, which would initialise them, is off; "
                             "construct the node with the channel count"));
        resize(c);
      }
      FQ_CHECK(c == q_.channels(), ErrorCode::kParamCountMismatch,
               detail::msg("LearnableFakeQuant: ", q_.channels(),
                           " channels learned, the tensor has ", c));
    }
    if (observer_ && x.numel() > 0) init_from<Arch>(x);
    sync_grad_scale(x.numel());
    if (fake_quant_) {
      q_.template forward<Arch>(x, y, mask);
      return;
    }
    detail::check_output(x, y, "LearnableFakeQuant");
    copy(x, y);
    if (mask != nullptr) {
      (void)mask->prepare(x.rank(), x.shape(), detail::row_major_order());
      mask->set_all();
    }
  }

  /// The protocol's backward: dx (dy itself with fake quantization off) and, while learning,
  /// the parameter gradients added to the buffers visit_parameters reports.
  template <class Arch = DefaultArch>
  void backward(TensorView<const float> x, TensorView<const float> dy, const Mask& /*mask*/,
                TensorView<float> dx) {
    if (!fake_quant_) {
      detail::check_output(dy, dx, "LearnableFakeQuant");
      copy(dy, dx);
      return;
    }
    std::vector<float> y;
    q_.template forward_backward<Arch>(x, dy, detail::scratch_like(x, y), dx);
    if (learning_)
      for (std::size_t c = 0; c < scale_grad_.size(); ++c) {
        scale_grad_[c] += q_.scale_grad()[c] * grad_rescale_;
        zero_point_grad_[c] += q_.zero_point_grad()[c] * grad_rescale_;
      }
  }

  /// The learnable parameters: f(name, value, grad) for the raw scale parameters ("lsq.scale")
  /// and, if learned, the zero points ("lsq.zero_point"); they stay valid for the node's
  /// lifetime. kInvalidArgument for a per-channel node whose channel count is not known yet
  /// (see the class comment).
  template <class F>
  void visit_parameters(F&& f) {
    FQ_CHECK(sized_, ErrorCode::kInvalidArgument,
             "LearnableFakeQuant: this per-channel node does not know its channel count yet, so "
             "its parameters would be reallocated by the first forward; construct it with the "
             "count, call set_channel_count(), or run a first forward before building the "
             "optimizer");
    const auto n = static_cast<std::int64_t>(scale_grad_.size());
    f("lsq.scale", TensorView<float>::vector(q_.scale_param().data(), n),
      TensorView<float>::vector(scale_grad_.data(), n));
    if (learn_zero_point_)
      f("lsq.zero_point", TensorView<float>::vector(q_.zero_point().data(), n),
        TensorView<float>::vector(zero_point_grad_.data(), n));
  }

  /// Switches, as fq::FakeQuantize's, plus set_learning for fq::QatSchedule.
  void enable_observer(bool on = true) noexcept { observer_ = on; }
  void enable_fake_quant(bool on = true) noexcept { fake_quant_ = on; }
  void set_learning(bool on = true) noexcept { learning_ = on; }
  bool observer_enabled() const noexcept { return observer_; }
  bool fake_quant_enabled() const noexcept { return fake_quant_; }
  bool learning() const noexcept { return learning_; }
  /// True once the quantizer holds qparams from data (the observer's initialisation, a
  /// training pass) or set by hand (LsqQuantizer::has_qparams); convert refuses it otherwise.
  bool calibrated() const noexcept { return q_.has_qparams(); }

  quantizer_type& quantizer() noexcept { return q_; }
  const quantizer_type& quantizer() const noexcept { return q_; }

  /// The checkpoint state (base/state.hpp): the LSQ parameters and the three switches. Whether
  /// the channel count is known must match (a checkpoint of a sized per-channel node loads
  /// into one constructed with the count or given set_channel_count).
  template <class V>
  void visit_state(V& v) {
    v.kind("learnable_fake_quant");
    v.config("sized", sized_);
    v.child("lsq", q_);
    v.state("observer_enabled", observer_);
    v.state("fake_quant_enabled", fake_quant_);
    v.state("learning", learning_);
  }

 private:
  // Sizes the parameters for c channels: only while none were handed out (sized_ false).
  void resize(std::int64_t c) {
    q_ = quantizer_type(q_.range(), c, learn_zero_point_);
    scale_grad_.assign(static_cast<std::size_t>(c), 0.0f);
    zero_point_grad_.assign(static_cast<std::size_t>(c), 0.0f);
    sized_ = true;
  }

  // dst = src element by element, any strides (same shape, checked by the caller).
  static void copy(const TensorView<const float>& src, const TensorView<float>& dst) {
    std::int64_t index[kMaxRank] = {};
    for (std::int64_t i = 0; i < src.numel(); ++i) {
      *dst.at(index) = *src.at(index);
      for (int d = src.rank() - 1; d >= 0; --d) {
        if (++index[d] < src.size(d)) break;
        index[d] = 0;
      }
    }
  }

  // Data parallel (file comment): the rescaling of the next backward's parameter gradients
  // from this rank's element count to the global batch's; 1 without a scope or a numel-based
  // gradient scale (and then exactly the local gradients).
  void sync_grad_scale(std::int64_t numel) {
    grad_rescale_ = 1.0f;
    if constexpr (!std::is_same<typename Scheme::grad_scale, NoGradScale>::value) {
      Communicator* comm = batch_stats_communicator();
      if (comm == nullptr) return;
      std::int64_t total = numel;
      comm->all_reduce(&total, 1, ReduceOp::kSum);
      if (numel > 0 && total > 0)
        grad_rescale_ =
            static_cast<float>(std::sqrt(static_cast<double>(numel) / static_cast<double>(total)));
    }
  }

  // s, z from min/max: affine [min(mn,0), max(mx,0)] -> [qmin, qmax], or symmetric.
  template <class Arch>
  void init_from(const TensorView<const float>& x) {
    const std::size_t n = scale_grad_.size();
    std::vector<float> mn(n), mx(n);
    detail::aminmax<Arch>(x, kPerChannel ? kAxis : -1, mn.data(), mx.data(), "LearnableFakeQuant");
    detail::sync_batch_range(mn.data(), mx.data(), n);  // the global batch's (data parallel)
    const QuantRange r = q_.range();
    const auto levels = static_cast<float>(r.quant_max - r.quant_min);
    std::vector<float> scales(n), zero_points(n);
    for (std::size_t c = 0; c < n; ++c) {
      const float lo = std::min(mn[c], 0.0f), hi = std::max(mx[c], 0.0f);
      float s, z;
      if (learn_zero_point_) {
        s = (hi - lo) / levels;
        s = s > 0.0f ? s : 1.0f;
        z = std::min(std::max(static_cast<float>(r.quant_min) - std::nearbyint(lo / s),
                              static_cast<float>(r.quant_min)),
                     static_cast<float>(r.quant_max));
      } else {
        s = std::max(-lo, hi) / (levels / 2.0f);
        s = s > 0.0f ? s : 1.0f;
        z = q_.zero_point()[c];
      }
      scales[c] = s;
      zero_points[c] = z;
    }
    q_.set_qparams(scales.data(), zero_points.data(), static_cast<std::int64_t>(n));
  }

  quantizer_type q_;
  bool learn_zero_point_;
  float grad_rescale_ = 1.0f;  // sync_grad_scale
  bool observer_ = true, fake_quant_ = true, learning_ = true;
  bool sized_ = true;  ///< the channel count is fixed; visit_parameters may hand them out
  std::vector<float> scale_grad_, zero_point_grad_;
};

}  // namespace fq

#endif  // FQ_LAYERS_LEARNABLE_FAKE_QUANT_HPP_
