// SPDX-License-Identifier: MIT
// fakequant/schedule/qat_schedule.hpp: QatSchedule — switches a set of quantizers and layers
// through the phases of quantization-aware training, as a pure function of the step number.
//
// For step t (0-based) and a QatScheduleConfig {warmup, fake_quant_start, observer_freeze,
// bn_freeze, learning_start}:
//   observer on    <=> warmup <= t < observer_freeze      (steps before warmup: plain FP32)
//   fake-quant on  <=> t >= fake_quant_start               (>= warmup)
//   BN frozen      <=> t >= bn_freeze                      (>= fake_quant_start)
//   learning on    <=> t >= learning_start                 (>= fake_quant_start)
// kNever (the default for the last three) means "not during training". Between warmup and
// fake_quant_start the observers calibrate on FP32 activations. A config that breaks an order
// above (e.g. observers frozen before they start) is an ErrorCode::kInvalidArgument at
// construction. set_step(t) applies the state of step t to everything registered, so a resumed
// run (set_step at the checkpoint's step) gets exactly the same switches.
//
// What can be registered (by reference: it must outlive the schedule):
//   add(q)        anything with enable_observer(bool), enable_fake_quant(bool) and/or
//                 set_learning(bool) (fq::FakeQuantize has the first two; learnable
//                 quantizers add set_learning); each hook present is called.
//   add(QatHooks) three optional callbacks, the adaptor for any other type.
//   add_bn(layer) a layer with freeze_bn_stats(bool) (PyTorch's name); or on_bn_freeze(f).
// BN hooks are called with the frozen state on the first set_step and whenever it changes.
#ifndef FQ_SCHEDULE_QAT_SCHEDULE_HPP_
#define FQ_SCHEDULE_QAT_SCHEDULE_HPP_

#include <cstdint>      // int64_t, uint64_t
#include <functional>   // function
#include <limits>       // numeric_limits
#include <type_traits>  // void_t, declval
#include <utility>      // move
#include <vector>       // vector

#include <fakequant/base/error.hpp>
#include <fakequant/base/state.hpp>

namespace fq {

/// A step that never comes.
inline constexpr std::int64_t kNever = std::numeric_limits<std::int64_t>::max();

/// The steps at which the QAT phases begin (see the file comment).
struct QatScheduleConfig {
  std::int64_t warmup = 0;                ///< FP32 steps before observers start
  std::int64_t fake_quant_start = 0;      ///< first step with fake quantization
  std::int64_t observer_freeze = kNever;  ///< first step with observers off again
  std::int64_t bn_freeze = kNever;        ///< first step with frozen BN statistics
  std::int64_t learning_start = kNever;   ///< first step learnable parameters learn
};

/// The switches of one step.
struct QatState {
  bool observer;
  bool fake_quant;
  bool bn_frozen;
  bool learning;
  bool operator==(const QatState& o) const noexcept {
    return observer == o.observer && fake_quant == o.fake_quant && bn_frozen == o.bn_frozen &&
           learning == o.learning;
  }
};

/// Callbacks for a quantizer that has none of the member hooks; empty ones are skipped.
struct QatHooks {
  std::function<void(bool)> enable_observer;
  std::function<void(bool)> enable_fake_quant;
  std::function<void(bool)> set_learning;
};

namespace detail {
template <class Q, class = void>
struct has_enable_observer : std::false_type {};
template <class Q>
struct has_enable_observer<Q, std::void_t<decltype(std::declval<Q&>().enable_observer(true))>>
    : std::true_type {};
template <class Q, class = void>
struct has_enable_fake_quant : std::false_type {};
template <class Q>
struct has_enable_fake_quant<Q, std::void_t<decltype(std::declval<Q&>().enable_fake_quant(true))>>
    : std::true_type {};
template <class Q, class = void>
struct has_set_learning : std::false_type {};
template <class Q>
struct has_set_learning<Q, std::void_t<decltype(std::declval<Q&>().set_learning(true))>>
    : std::true_type {};
template <class L, class = void>
struct has_freeze_bn_stats : std::false_type {};
template <class L>
struct has_freeze_bn_stats<L, std::void_t<decltype(std::declval<L&>().freeze_bn_stats(true))>>
    : std::true_type {};
}  // namespace detail

/// True if QatSchedule::add accepts a Q& (it has at least one of the three hooks).
template <class Q>
inline constexpr bool is_qat_switchable_v =
    detail::has_enable_observer<Q>::value || detail::has_enable_fake_quant<Q>::value ||
    detail::has_set_learning<Q>::value;

/// Drives quantizers and BN layers through the QAT phases (see the file comment).
class QatSchedule {
 public:
  explicit QatSchedule(const QatScheduleConfig& config) : cfg_(config) { validate(cfg_); }

  /// Registers a quantizer by reference; its hooks are called on every set_step.
  template <class Q>
  void add(Q& q) {
    static_assert(is_qat_switchable_v<Q>,
                  "QatSchedule::add: the quantizer needs enable_observer(bool), "
                  "enable_fake_quant(bool) and/or set_learning(bool); adapt other types with "
                  "fq::QatHooks.");
    QatHooks h;
    if constexpr (detail::has_enable_observer<Q>::value)
      h.enable_observer = [&q](bool on) { q.enable_observer(on); };
    if constexpr (detail::has_enable_fake_quant<Q>::value)
      h.enable_fake_quant = [&q](bool on) { q.enable_fake_quant(on); };
    if constexpr (detail::has_set_learning<Q>::value)
      h.set_learning = [&q](bool on) { q.set_learning(on); };
    hooks_.push_back(std::move(h));
  }
  /// Registers callbacks (any may be empty).
  void add(QatHooks hooks) { hooks_.push_back(std::move(hooks)); }

  /// Registers a layer's BN-statistics switch, freeze_bn_stats(bool).
  template <class L>
  void add_bn(L& layer) {
    static_assert(detail::has_freeze_bn_stats<L>::value,
                  "QatSchedule::add_bn: the layer needs freeze_bn_stats(bool); use on_bn_freeze "
                  "with a callback otherwise.");
    on_bn_freeze([&layer](bool frozen) { layer.freeze_bn_stats(frozen); });
  }
  /// Registers a callback told whether BN statistics are frozen.
  void on_bn_freeze(std::function<void(bool)> hook) {
    FQ_CHECK(static_cast<bool>(hook), ErrorCode::kInvalidArgument,
             "QatSchedule::on_bn_freeze: empty callback");
    bn_hooks_.push_back(std::move(hook));
  }

  /// The switches of step t (t >= 0); a pure function of the config.
  QatState state_at(std::int64_t t) const {
    FQ_CHECK(t >= 0, ErrorCode::kInvalidArgument,
             detail::msg("QatSchedule: step must be >= 0, got ", t));
    return QatState{t >= cfg_.warmup && t < cfg_.observer_freeze, t >= cfg_.fake_quant_start,
                    t >= cfg_.bn_freeze, t >= cfg_.learning_start};
  }

  /// Applies the state of step t to everything registered and makes t the current step.
  void set_step(std::int64_t t) {
    const QatState s = state_at(t);
    for (const auto& h : hooks_) {
      if (h.enable_observer) h.enable_observer(s.observer);
      if (h.enable_fake_quant) h.enable_fake_quant(s.fake_quant);
      if (h.set_learning) h.set_learning(s.learning);
    }
    if (!applied_ || s.bn_frozen != bn_frozen_)
      for (const auto& f : bn_hooks_) f(s.bn_frozen);
    bn_frozen_ = s.bn_frozen;
    applied_ = true;
    step_ = t;
  }
  /// Applies the next step: 0 on the first call, then current_step() + 1. Call it at the
  /// start of every training step.
  void advance() { set_step(applied_ ? step_ + 1 : 0); }

  /// The step last applied (-1 before the first).
  std::int64_t current_step() const noexcept { return applied_ ? step_ : -1; }
  const QatScheduleConfig& config() const noexcept { return cfg_; }

  /// The checkpoint state (base/state.hpp): the position (step, whether one was applied, the
  /// BN state last applied); the config and the number of registered hooks must match. The
  /// registered objects' switches are their own state: loading theirs and this one resumes
  /// exactly where set_step left them.
  template <class V>
  void visit_state(V& v) {
    v.kind("qat_schedule");
    const std::int64_t cfg[] = {cfg_.warmup, cfg_.fake_quant_start, cfg_.observer_freeze,
                                cfg_.bn_freeze, cfg_.learning_start};
    v.config_array("config", cfg, 5);
    v.config("quantizer_hooks", static_cast<std::uint64_t>(hooks_.size()));
    v.config("bn_hooks", static_cast<std::uint64_t>(bn_hooks_.size()));
    v.state("step", step_, state_non_negative());
    v.state("applied", applied_);
    v.state("bn_frozen", bn_frozen_);
  }

 private:
  static void validate(const QatScheduleConfig& c) {
    constexpr const char* kWhere = "QatSchedule";
    FQ_CHECK(c.warmup >= 0, ErrorCode::kInvalidArgument,
             detail::msg(kWhere, ": warmup must be >= 0, got ", c.warmup));
    FQ_CHECK(c.fake_quant_start >= c.warmup, ErrorCode::kInvalidArgument,
             detail::msg(kWhere, ": fake_quant_start (", c.fake_quant_start,
                         ") is before the end of the FP32 warm-up (", c.warmup, ")"));
    FQ_CHECK(c.observer_freeze > c.warmup, ErrorCode::kInvalidArgument,
             detail::msg(kWhere, ": observer_freeze (", c.observer_freeze,
                         ") must come after the observers start at the end of the warm-up (",
                         c.warmup, ")"));
    FQ_CHECK(c.bn_freeze >= c.fake_quant_start, ErrorCode::kInvalidArgument,
             detail::msg(kWhere, ": bn_freeze (", c.bn_freeze,
                         ") is before fake quantization starts (", c.fake_quant_start, ")"));
    FQ_CHECK(c.learning_start >= c.fake_quant_start, ErrorCode::kInvalidArgument,
             detail::msg(kWhere, ": learning_start (", c.learning_start,
                         ") is before fake quantization starts (", c.fake_quant_start, ")"));
  }

  QatScheduleConfig cfg_;
  std::vector<QatHooks> hooks_;
  std::vector<std::function<void(bool)>> bn_hooks_;
  std::int64_t step_ = 0;
  bool applied_ = false;
  bool bn_frozen_ = false;
};

}  // namespace fq

#endif  // FQ_SCHEDULE_QAT_SCHEDULE_HPP_
