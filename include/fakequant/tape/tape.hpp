// SPDX-License-Identifier: MIT
// fakequant/tape/tape.hpp: Tape and Var — a minimal reverse-mode automatic differentiation
// tape (after Stan Math): a linear stack of backward closures walked in reverse, with values,
// gradients and closures in an Arena.
//
//   fq::Tape tape;                              // explicit: no global or thread-local tape
//   fq::Var x = tape.constant(data, {64, 784}); // input, no gradient
//   fq::Var w = tape.leaf(w_ptr, dw_ptr, {10, 784});   // parameter: views of the layer's memory
//   fq::Var loss = fq::ops::softmax_cross_entropy(tape, fq::ops::linear(tape, x, w, b), labels);
//   tape.backward(loss);                        // d loss / d w accumulated (+=) into dw_ptr
//   tape.clear();                               // ready for the next step; memory is reused
//
// An op computes its output in its forward call and pushes one closure that, given the
// output's gradient, accumulates (+=) the gradients of its inputs — or, when it writes an
// input's whole gradient and is the first to write it, stores (=) it: a gradient the tape
// allocates gets its zeros only when first read or added to (tape/grad_state.hpp, the
// first-writer protocol; Var::claim_grad). Only variables that
// require a gradient (grad() != nullptr) receive one; when no input requires one, or
// recording is off (NoGradGuard), no closure is pushed and the output has no gradient.
// One call registers a user's own kernel: fq::custom_op (tape/custom_op.hpp).
//
// Misuse is detected cheaply (O(1) per op, O(nesting depth) at worst), and reported as
// ErrorCode::kInvalidState:
//   - a variable whose memory the tape freed — created before clear(), or inside a Scope that
//     has ended — passed to an op, custom_op or backward(): each arena variable carries the
//     generation it was created in, and the tape knows which generations are alive (clear()
//     starts a new one; a Scope pushes one and pops it at its end). Leaves and constants view
//     the caller's memory and stay valid across clear();
//   - backward() over closures that already ran (backward twice without clear(), which
//     would accumulate the gradients again): every closure runs at most once.
#ifndef FQ_TAPE_TAPE_HPP_
#define FQ_TAPE_TAPE_HPP_

#include <algorithm>         // any_of, max
#include <array>             // array
#include <cmath>             // isfinite
#include <cstdint>           // int64_t
#include <initializer_list>  // initializer_list
#include <memory>            // unique_ptr
#include <new>               // placement new
#include <string>            // string, to_string
#include <type_traits>       // decay_t, is_trivially_destructible
#include <utility>           // forward
#include <vector>            // vector

#include <Eigen/Core>

#include <fakequant/base/aligned.hpp>
#include <fakequant/base/checked.hpp>
#include <fakequant/base/error.hpp>
#include <fakequant/core/mask.hpp>
#include <fakequant/core/tensor_view.hpp>
#include <fakequant/tape/arena.hpp>
#include <fakequant/tape/grad_state.hpp>

namespace fq {

/// Extents of a dense row-major tensor of rank 0..fq::kMaxRank (NCHW for images).
struct Shape {
  static constexpr int kMaxRank = fq::kMaxRank;
  std::array<std::int64_t, kMaxRank> dims{};
  int rank = 0;

  Shape() = default;
  Shape(std::initializer_list<std::int64_t> d) {  // NOLINT(google-explicit-constructor)
    FQ_CHECK(d.size() <= kMaxRank, ErrorCode::kInvalidLayout,
             detail::msg("Shape: rank ", d.size(), " exceeds ", kMaxRank));
    for (std::int64_t e : d) {
      FQ_CHECK(e >= 0, ErrorCode::kShapeMismatch,
               detail::msg("Shape: extents must be >= 0, got ", e));
      dims[static_cast<std::size_t>(rank++)] = e;
    }
    detail::checked_numel(dims.data(), rank, "Shape");  // so numel() cannot overflow
  }
  std::int64_t operator[](int d) const { return dims[static_cast<std::size_t>(d)]; }
  std::int64_t numel() const noexcept {
    std::int64_t n = 1;
    for (int d = 0; d < rank; ++d) n *= dims[static_cast<std::size_t>(d)];
    return n;
  }
  friend bool operator==(const Shape& a, const Shape& b) noexcept {
    if (a.rank != b.rank) return false;
    for (int d = 0; d < a.rank; ++d)
      if (a.dims[static_cast<std::size_t>(d)] != b.dims[static_cast<std::size_t>(d)]) return false;
    return true;
  }
  friend bool operator!=(const Shape& a, const Shape& b) noexcept { return !(a == b); }
  std::string str() const {
    std::string s = "[";
    for (int d = 0; d < rank; ++d) s += (d ? ", " : "") + std::to_string((*this)[d]);
    return s + "]";
  }
};

class Tape;

/// Row-major float matrix maps: the ops' view of a Var as [shape[0], numel / shape[0]].
using RowMatrixXf = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using ArrayMap = Eigen::Map<Eigen::ArrayXf>;

/// A variable on a tape: a value, an optional gradient of the same shape, and its tape. A
/// cheap handle (copy freely); the memory belongs to the tape's arena or, for leaves and
/// constants, to the caller. An arena variable is valid until the tape is cleared (or its
/// Scope ends); ops refuse it afterwards (file comment).
class Var {
 public:
  Var() = default;
  /// A variable of arena memory (e.g. Tape::scratch) in the tape's current generation.
  Var(Tape* tape, float* value, float* grad, Shape shape) noexcept;

  Tape* tape() const noexcept { return tape_; }
  float* value() const noexcept { return value_; }
  /// The gradient, or nullptr when this variable does not require one. A tape gradient that
  /// no op has written yet is zero-filled by this call (tape/grad_state.hpp).
  float* grad() const noexcept {
    if (state_ != nullptr && !state_->live()) state_->materialize();
    return grad_;
  }
  /// For an op whose backward writes every element of this gradient (tape/grad_state.hpp):
  /// the gradient, and whether the op is its first writer and must store (=) rather than add.
  /// Call once, outside parallel regions, before touching the gradient. Null data when this
  /// variable does not require a gradient.
  GradWrite claim_grad() const noexcept { return {grad_, state_ != nullptr && state_->claim()}; }
  /// Whether both are views of one tape gradient (e.g. one a reshape of the other): an op that
  /// claims one must not let the other add into it meanwhile.
  bool shares_grad(const Var& o) const noexcept { return state_ != nullptr && state_ == o.state_; }
  /// claim_grad() for an op that adds into the gradients of `others` while it writes this one:
  /// when one of them shares this gradient, no claim (the op adds). Null data without one.
  GradWrite claim_grad_unshared(std::initializer_list<const Var*> others) const noexcept {
    if (grad_ == nullptr) return {};
    for (const Var* o : others)
      if (shares_grad(*o)) return {grad(), false};
    return claim_grad();
  }
  bool requires_grad() const noexcept { return grad_ != nullptr; }
  const Shape& shape() const noexcept { return shape_; }
  std::int64_t numel() const noexcept { return shape_.numel(); }
  std::int64_t size(int d) const { return shape_[d]; }

  /// The value as a [shape[0], numel / shape[0]] row-major matrix (a vector is one row).
  Eigen::Map<RowMatrixXf> mat() const { return {value_, rows(), cols()}; }
  Eigen::Map<RowMatrixXf> grad_mat() const { return {grad(), rows(), cols()}; }
  ArrayMap array() const { return {value_, numel()}; }
  ArrayMap grad_array() const { return {grad(), numel()}; }
  /// Strided views for the fake-quant kernels (rank 0 is seen as rank 1).
  TensorView<const float> cview() const { return make_view<const float>(value_); }
  TensorView<float> view() const { return make_view<float>(value_); }
  TensorView<float> grad_view() const { return make_view<float>(grad()); }

  /// The same memory seen with another shape of equal size (no copy, no tape node: the
  /// gradient is shared too). E.g. flatten [N,C,H,W] to [N, C*H*W].
  Var reshape(Shape s) const {
    FQ_CHECK(s.numel() == numel(), ErrorCode::kShapeMismatch,
             detail::msg("Var::reshape: ", shape_.str(), " has ", numel(), " elements, ", s.str(),
                         " has ", s.numel()));
    Var r(tape_, value_, grad_, s, generation_);
    r.state_ = state_;
    return r;
  }
  /// The tape generation this variable's memory belongs to (0: the caller's memory).
  std::uint64_t generation() const noexcept { return generation_; }

 private:
  std::int64_t rows() const { return shape_.rank <= 1 ? 1 : shape_[0]; }
  std::int64_t cols() const {
    return shape_.rank <= 1 ? numel() : numel() / std::max<std::int64_t>(shape_[0], 1);
  }
  template <class T>
  TensorView<T> make_view(T* p) const {
    const auto st = strides();
    if (shape_.rank == 0) return TensorView<T>(p, {1});
    return TensorView<T>(p, shape_.rank, shape_.dims.data(), st.data());
  }
  std::array<std::int64_t, Shape::kMaxRank> strides() const {
    std::array<std::int64_t, Shape::kMaxRank> st{};
    std::int64_t s = 1;
    for (int d = shape_.rank - 1; d >= 0; --d) {
      st[static_cast<std::size_t>(d)] = s;
      s *= shape_[d];
    }
    return st;
  }

  friend class Tape;
  Var(Tape* tape, float* value, float* grad, Shape shape, std::uint64_t generation) noexcept
      : tape_(tape), value_(value), grad_(grad), shape_(shape), generation_(generation) {}

  Tape* tape_ = nullptr;
  float* value_ = nullptr;
  float* grad_ = nullptr;
  Shape shape_;
  std::uint64_t generation_ = 0;
  detail::GradState* state_ = nullptr;  // null: the caller's memory, always live
};

/// The tape: see the file comment. Not thread-safe; use one tape per thread.
class Tape {
 public:
  explicit Tape(std::size_t arena_block_bytes = std::size_t{4} << 20) : arena_(arena_block_bytes) {
    live_.reserve(8);
    live_.push_back(next_generation_++);
  }
  Tape(const Tape&) = delete;
  Tape& operator=(const Tape&) = delete;
  ~Tape() { destroy_nodes(0); }

  /// A new variable with uninitialised value and (if recording and `requires_grad`) a
  /// gradient that reads as zeros, both in the arena. The zeros are written on the gradient's
  /// first use, or never if an op writes it whole first (tape/grad_state.hpp).
  Var variable(Shape shape, bool requires_grad = true) {
    const auto n = static_cast<std::size_t>(shape.numel());
    float* v = arena_.allocate_array<float>(n);
    Var r(this, v, nullptr, shape, generation());
    if (requires_grad && recording_) {
      r.grad_ = arena_.allocate_array<float>(n);
      r.state_ = new (arena_.allocate(sizeof(detail::GradState))) detail::GradState(r.grad_, n);
    }
    return r;
  }
  /// A parameter: views of memory the caller owns. Gradients are accumulated into `grad`
  /// (pass nullptr for a frozen parameter); the caller zeroes it between steps.
  Var leaf(float* value, float* grad, Shape shape) {
    FQ_CHECK(value != nullptr || shape.numel() == 0, ErrorCode::kInvalidArgument,
             "Tape::leaf: value is null");
    return Var(this, value, recording_ ? grad : nullptr, shape, 0);
  }
  /// An input that needs no gradient (data, labels as floats).
  Var constant(const float* value, Shape shape) {
    FQ_CHECK(value != nullptr || shape.numel() == 0, ErrorCode::kInvalidArgument,
             "Tape::constant: value is null");
    // Ops never write through a value they did not create, so the const_cast is safe.
    // NOLINTNEXTLINE(cppcoreguidelines-pro-type-const-cast)
    return Var(this, const_cast<float*>(value), nullptr, shape, 0);
  }

  /// Scratch memory valid until clear() (or the enclosing Scope ends).
  template <class T>
  T* scratch(std::size_t n) {
    return arena_.allocate_array<T>(n);
  }
  /// n floats of working memory shared by every op, valid until the next workspace() call: for
  /// memory an op needs only during its forward call or its backward closure (ops run one at
  /// a time), such as a GEMM's packed panels. Kept across steps and grown when too small, so a
  /// step allocates nothing once the largest request has been seen. 64-byte aligned.
  float* workspace(std::size_t n) {
    if (workspace_.size() < n) {
      workspace_.clear();  // nothing to copy over
      workspace_.resize(n);
    }
    return workspace_.data();
  }
  /// A fake-quant mask valid until clear(); reused across steps (no allocation in steady state).
  Mask& scratch_mask() {
    if (masks_used_ == masks_.size()) masks_.push_back(std::make_unique<Mask>());
    return *masks_[masks_used_++];
  }

  /// Pushes a backward closure (run once, in reverse order, by backward()). The closure lives
  /// in the arena; it is destroyed by clear().
  template <class F>
  void push_backward(F&& f) {
    if (!recording_) return;
    using Fn = std::decay_t<F>;
    static_assert(alignof(Fn) <= Arena::kAlign, "push_backward: closure over-aligned");
    Fn* p = new (arena_.allocate(sizeof(Fn))) Fn(std::forward<F>(f));
    Node node;
    node.self = p;
    node.run = [](void* s) { (*static_cast<Fn*>(s))(); };
    node.destroy = std::is_trivially_destructible<Fn>::value ? nullptr : +[](void* s) {
      static_cast<Fn*>(s)->~Fn();
    };
    nodes_.push_back(node);
  }

  /// Seeds d loss / d loss = 1 and runs every closure pushed since `first_node`, in reverse.
  /// `loss` must be a scalar with a gradient, and finite.
  void backward(const Var& loss) { backward_from(loss, 0); }

  /// Destroys the closures and frees the arena for reuse; leaves keep their gradients. The
  /// arena variables created so far become invalid (ops refuse them).
  void clear() {
    destroy_nodes(0);
    arena_.reset();
    masks_used_ = 0;
    live_.resize(1);  // a Scope still open when clear() runs ends with it
    live_[0] = next_generation_++;
  }

  /// The generation new arena variables get (see the file comment).
  std::uint64_t generation() const noexcept { return live_.back(); }
  /// Whether a variable of generation `g` is still valid on this tape (0: caller's memory).
  bool is_live(std::uint64_t g) const noexcept {
    if (g == 0) return true;
    for (std::size_t i = live_.size(); i-- > 0;)
      if (live_[i] == g) return true;
    return false;
  }

  /// Whether ops push closures and allocate gradients (off inside a NoGradGuard).
  bool recording() const noexcept { return recording_; }
  void set_recording(bool on) noexcept { recording_ = on; }

  std::size_t node_count() const noexcept { return nodes_.size(); }
  const Arena& arena() const noexcept { return arena_; }

  /// A nested scope (as Stan's nested autodiff): variables and closures created inside it are
  /// freed when it ends, and backward() inside it runs only its own closures. Gradients it
  /// accumulated into leaves and outer variables remain.
  class Scope {
   public:
    explicit Scope(Tape& t)
        : t_(t),
          nodes_(t.nodes_.size()),
          mark_(t.arena_.mark()),
          masks_(t.masks_used_),
          depth_(t.live_.size()),
          generation_(t.next_generation_++) {
      t.live_.push_back(generation_);
    }
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;
    ~Scope() {
      // A clear() inside the scope already freed everything (and ended the scope's generation).
      if (t_.live_.size() <= depth_ || t_.live_[depth_] != generation_) return;
      t_.destroy_nodes(nodes_);
      t_.arena_.rewind(mark_);
      t_.masks_used_ = masks_;
      t_.live_.resize(depth_);
    }
    void backward(const Var& loss) { t_.backward_from(loss, nodes_); }

   private:
    Tape& t_;
    std::size_t nodes_;
    Arena::Mark mark_;
    std::size_t masks_;
    std::size_t depth_;
    std::uint64_t generation_;
  };

 private:
  struct Node {
    void* self;
    void (*run)(void*);
    void (*destroy)(void*);
  };

  void backward_from(const Var& loss, std::size_t first) {
    FQ_CHECK(loss.tape() == this, ErrorCode::kInvalidArgument,
             "Tape::backward: the loss belongs to another tape");
    FQ_CHECK(is_live(loss.generation()), ErrorCode::kInvalidState,
             "Tape::backward: the loss was freed by Tape::clear() or the end of its Tape::Scope; "
             "compute the loss again in this step");
    FQ_CHECK(first >= ran_end_, ErrorCode::kInvalidState,
             detail::msg("Tape::backward: called twice — ", ran_end_ - first,
                         " of the closures it would run already ran, and running them again would "
                         "accumulate the gradients twice; call Tape::clear() and record the step "
                         "again"));
    FQ_CHECK(
        loss.numel() == 1, ErrorCode::kShapeMismatch,
        detail::msg("Tape::backward: the loss must be a scalar, got shape ", loss.shape().str()));
    FQ_CHECK(loss.requires_grad(), ErrorCode::kInvalidArgument,
             "Tape::backward: the loss does not depend on anything that requires a gradient");
    FQ_CHECK(std::isfinite(loss.value()[0]), ErrorCode::kNonFiniteInput,
             detail::msg("Tape::backward: the loss is ", loss.value()[0],
                         " (diverged training? lower the learning rate)"));
    loss.grad()[0] = 1.0f;
    ran_end_ = nodes_.size();  // marked first: a closure that throws does not run again either
    for (std::size_t i = nodes_.size(); i-- > first;) nodes_[i].run(nodes_[i].self);
  }
  void destroy_nodes(std::size_t first) noexcept {
    for (std::size_t i = nodes_.size(); i-- > first;)
      if (nodes_[i].destroy) nodes_[i].destroy(nodes_[i].self);
    nodes_.resize(first);
    if (ran_end_ > first) ran_end_ = first;
  }

  Arena arena_;
  std::vector<Node> nodes_;
  std::vector<std::unique_ptr<Mask>> masks_;
  std::size_t masks_used_ = 0;
  std::vector<float, detail::Align64Allocator<float>> workspace_;
  bool recording_ = true;
  // Every closure at an index >= ran_end_ has not run yet (backward runs a suffix of nodes_).
  std::size_t ran_end_ = 0;
  // The generations whose arena variables are valid: the step's, then one per open Scope.
  std::vector<std::uint64_t> live_;
  std::uint64_t next_generation_ = 1;
};

inline Var::Var(Tape* tape, float* value, float* grad, Shape shape) noexcept
    : tape_(tape),
      value_(value),
      grad_(grad),
      shape_(shape),
      generation_(tape ? tape->generation() : 0) {}

/// Turns recording off for its lifetime (evaluation: no closures, no gradients).
class NoGradGuard {
 public:
  explicit NoGradGuard(Tape& t) : t_(t), was_(t.recording()) { t.set_recording(false); }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;
  ~NoGradGuard() { t_.set_recording(was_); }

 private:
  Tape& t_;
  bool was_;
};

/// Elements [offset, offset + n) of a gradient (+)= e, an Eigen array expression of n floats:
/// stored when `g` is the first writer (Var::claim_grad), else added.
template <class Expr>
void write_grad(GradWrite g, std::int64_t offset, std::int64_t n, const Expr& e) {
  Eigen::Map<Eigen::ArrayXf> dst(g.data + offset, n);
  if (g.overwrite)
    dst = e;
  else
    dst += e;
}

namespace detail {
/// Checks that a variable lives on `tape` and that its memory was not freed (file comment).
inline void check_var(const Tape& tape, const Var& v, const char* op) {
  FQ_CHECK(v.tape() == &tape, ErrorCode::kInvalidArgument,
           detail::msg(op, ": a variable belongs to another tape (or is default-constructed)"));
  FQ_CHECK(tape.is_live(v.generation()), ErrorCode::kInvalidState,
           detail::msg(op, ": a variable ", v.shape().str(),
                       " was freed by Tape::clear() or the end of its Tape::Scope; use the "
                       "variables of the current step only"));
}
/// Checks every variable of an op (check_var).
inline void check_tape(const Tape& tape, std::initializer_list<const Var*> vars, const char* op) {
  for (const Var* v : vars) check_var(tape, *v, op);
}
/// Whether an op with these inputs must record a backward closure.
inline bool needs_grad(const Tape& tape, std::initializer_list<const Var*> vars) {
  return tape.recording() &&
         std::any_of(vars.begin(), vars.end(), [](const Var* v) { return v->requires_grad(); });
}
}  // namespace detail

}  // namespace fq

#endif  // FQ_TAPE_TAPE_HPP_
