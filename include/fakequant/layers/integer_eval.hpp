// SPDX-License-Identifier: MIT
// fakequant/layers/integer_eval.hpp: evaluates a QAT layer with the deployed integer model's
// arithmetic, on the tape's float tensors — the fake-quant simulation made exact.
//
// The float simulation computes a layer's pre-activation with a float32 GEMM of fake-quantized
// values; the integer model sums exactly in int32 and rounds the bias to the accumulator's
// unit, so their output levels can differ by 1 LSB near rounding midpoints (docs/convert.md).
// In integer arithmetic (use_integer_arithmetic) the layer instead
//   1. reads the input levels x_q = rne(x / s_x) + z_x, checking that x lies exactly on the
//      input grid (x == f32((x_q − z_x) · s_x), what a fake quantizer or a previous layer in
//      integer arithmetic produced);
//   2. runs the Int8Linear or Int8Conv2d that convert would deploy (int8/linear.hpp,
//      int8/conv2d.hpp: the one integer epilogue), built from the layer's current parameters;
//   3. returns the output quantizer's float value of the levels y_q, f32((y_q − z_y) · s_y), or
//      a float-output layer's float outputs as they are.
// So its outputs are the deployed layer's bit for bit, and a network evaluated this way has the
// deployed model's accuracy inside the user's own float graph (pooling, flatten and other glue
// stay as they are). Evaluation only: no gradient is recorded (use a NoGradGuard).
//
// The integer layer is built once and cached (IntegerCache). The cache keeps a byte snapshot of
// everything the layer was built from — weights, bias, batch-norm statistics, the quantizers'
// scales, zero points and ranges, the input qparams and extents — and each forward compares the
// current values with it (memcmp, O(parameters), far cheaper than the layer itself); any
// difference rebuilds the integer layer first, so it never goes stale silently.
#ifndef FQ_LAYERS_INTEGER_EVAL_HPP_
#define FQ_LAYERS_INTEGER_EVAL_HPP_

#include <cmath>        // nearbyint
#include <cstddef>      // size_t
#include <cstdint>      // int64_t, uint8_t, uint64_t
#include <cstring>      // memcmp, memcpy
#include <optional>     // optional
#include <type_traits>  // is_arithmetic, is_trivially_copyable
#include <vector>       // vector

#include <fakequant/base/checked.hpp>
#include <fakequant/base/error.hpp>
#include <fakequant/int8/conv2d.hpp>
#include <fakequant/int8/linear.hpp>
#include <fakequant/int8/params.hpp>
#include <fakequant/tape/tape.hpp>

namespace fq {
namespace detail {

/// The bytes an integer layer was built from (file comment). A layer passes its sources to
/// matches() before each use and to take() after each build, through a callback
/// `sources(SourceSnapshot&)` that calls add() for each; every source is stored with its size,
/// so sources that change length are a difference too.
class SourceSnapshot {
 public:
  template <class Sources>
  bool matches(Sources&& sources) {
    recording_ = false;
    pos_ = 0;
    equal_ = taken_;
    sources(*this);
    return equal_ && pos_ == bytes_.size();
  }
  template <class Sources>
  void take(Sources&& sources) {
    recording_ = true;
    bytes_.clear();
    sources(*this);
    recording_ = false;
    taken_ = true;
  }
  void clear() noexcept {
    bytes_.clear();
    taken_ = false;
  }

  /// A source: the elements of a vector.
  template <class T, class A>
  void add(const std::vector<T, A>& v) {
    static_assert(std::is_trivially_copyable<T>::value,
                  "SourceSnapshot::add: the elements must be trivially copyable.");
    add_bytes(v.data(), v.size() * sizeof(T));
  }
  /// A source: one scalar (by value: a temporary such as a quantizer's range() is fine).
  template <class T>
  void add_value(T v) {
    static_assert(std::is_trivially_copyable<T>::value && std::is_arithmetic<T>::value,
                  "SourceSnapshot::add_value: an arithmetic value (no struct padding).");
    add_bytes(&v, sizeof(T));
  }

 private:
  void add_bytes(const void* p, std::size_t n) {
    const std::uint64_t size = n;
    piece(&size, sizeof size);
    if (n > 0) piece(p, n);
  }
  void piece(const void* p, std::size_t n) {
    if (recording_) {
      const std::size_t at = bytes_.size();
      bytes_.resize(at + n);
      std::memcpy(bytes_.data() + at, p, n);
      return;
    }
    if (equal_ && n <= bytes_.size() - pos_)
      equal_ = std::memcmp(bytes_.data() + pos_, p, n) == 0;
    else
      equal_ = false;
    pos_ += n;
  }

  std::vector<unsigned char> bytes_;
  std::size_t pos_ = 0;
  bool recording_ = false, equal_ = false, taken_ = false;
};

/// A layer's cached integer layer (file comment) and how often it was built.
template <class Int8Layer>
struct IntegerCache {
  std::optional<Int8Layer> layer;
  SourceSnapshot sources;
  std::uint64_t builds = 0;

  /// The cached layer, rebuilt first by build() if `sources` differ from the snapshot.
  template <class Sources, class Build>
  const Int8Layer& get(Sources&& sources_of, Build&& build) {
    if (!layer || !sources.matches(sources_of)) {
      layer.reset();
      sources.clear();
      layer.emplace(build());  // may throw (e.g. an uncalibrated quantizer): nothing is cached
      sources.take(sources_of);
      ++builds;
    }
    return *layer;
  }
  void clear() noexcept {
    layer.reset();
    sources.clear();
  }
};

/// Refuses a recording tape: integer arithmetic has no gradient.
inline void check_integer_eval(const Var& x, const char* where) {
  FQ_CHECK(!x.tape()->recording(), ErrorCode::kInvalidArgument,
           msg(where, ": integer arithmetic is for evaluation; record no gradient (NoGradGuard)"));
}

/// The uint8 levels of x on the grid of `in`; an error names the first element off the grid.
inline std::vector<std::uint8_t> input_levels(const Var& x, ActQParams in, const char* where) {
  std::vector<std::uint8_t> q(static_cast<std::size_t>(x.numel()));
  const float z = static_cast<float>(in.zero_point);
  for (std::size_t i = 0; i < q.size(); ++i) {
    const float v = x.value()[i];
    const double level = std::nearbyint(static_cast<double>(v) / in.scale) + in.zero_point;
    const bool on_grid =
        level >= 0.0 && level <= 255.0 && (static_cast<float>(level) - z) * in.scale == v;
    FQ_CHECK(on_grid, ErrorCode::kInvalidArgument,
             msg(where, ": input element ", i, " = ", v, " is not on the grid of scale ", in.scale,
                 " and zero point ", in.zero_point,
                 " (give the qparams of the quantizer that produced the input)"));
    q[i] = static_cast<std::uint8_t>(level);
  }
  return q;
}

/// The output quantizer's float values of levels y_q: f32((y_q − z_y) · s_y).
inline void output_values(const std::vector<std::uint8_t>& levels, ActQParams out, float* y) {
  const float z = static_cast<float>(out.zero_point);
  for (std::size_t i = 0; i < levels.size(); ++i)
    y[i] = (static_cast<float>(levels[i]) - z) * out.scale;
}

/// x [m, in] -> [m, out] by the integer layer l (file comment); Arch: its kernels' instruction
/// set (simd/arch.hpp).
template <class Arch>
Var integer_forward(Tape& tape, const Var& x, const Int8Linear& l) {
  constexpr const char* kWhere = "integer arithmetic (linear)";
  check_integer_eval(x, kWhere);
  FQ_CHECK(x.shape().rank == 2 && x.size(1) == l.in_features(), ErrorCode::kShapeMismatch,
           msg(kWhere, ": input shape ", x.shape().str(), " does not match ", l.in_features(),
               " in-features"));
  const std::int64_t m = x.size(0), out = l.out_features();
  const std::vector<std::uint8_t> xq = input_levels(x, l.input_qparams(), kWhere);
  Var y = tape.variable({m, out}, false);
  if (m == 0) return y;
  if (l.float_output()) {
    l.template run<Arch>(xq.data(), m, y.value());
  } else {
    std::vector<std::uint8_t> yq(
        static_cast<std::size_t>(checked_mul(m, out, kWhere, "the output size")));
    l.template run<Arch>(xq.data(), m, yq.data());
    output_values(yq, l.output_qparams(), y.value());
  }
  return y;
}

/// x [n, C, H, W] -> [n, O, OH, OW] by the integer convolution c (file comment).
template <class Arch>
Var integer_forward(Tape& tape, const Var& x, const Int8Conv2d& c) {
  constexpr const char* kWhere = "integer arithmetic (conv2d)";
  check_integer_eval(x, kWhere);
  const Conv2dShape& s = c.shape();
  FQ_CHECK(x.shape().rank == 4 && x.size(1) == s.in_channels && x.size(2) == s.in_h &&
               x.size(3) == s.in_w,
           ErrorCode::kShapeMismatch,
           msg(kWhere, ": input shape ", x.shape().str(), " does not match [n, ", s.in_channels,
               ", ", s.in_h, ", ", s.in_w, "]"));
  const std::int64_t n = x.size(0);
  const std::vector<std::uint8_t> xq = input_levels(x, c.input_qparams(), kWhere);
  std::vector<std::uint8_t> yq(
      static_cast<std::size_t>(checked_mul(n, c.out_numel(), kWhere, "the output size")));
  c.template run<Arch>(xq.data(), n, yq.data());
  Var y = tape.variable({n, s.out_channels, s.out_h(), s.out_w()}, false);
  output_values(yq, c.output_qparams(), y.value());
  return y;
}

}  // namespace detail
}  // namespace fq

#endif  // FQ_LAYERS_INTEGER_EVAL_HPP_
