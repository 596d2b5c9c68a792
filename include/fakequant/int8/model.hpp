// SPDX-License-Identifier: MIT
// fakequant/int8/model.hpp: Int8Model, a whole sequential integer network — the input
// quantizer's qparams and range, the per-image input shape ([C, H, W] or [features]) and an
// ordered list of steps (fq::Int8Step):
//   Int8Conv2d     uint8 [C, H, W]  -> uint8 [O, OH, OW]                      (int8/conv2d.hpp)
//   Int8Linear     uint8 [features] -> uint8 [out], or float [out] (logits: the last step only)
//   Int8MaxPool2d  uint8 [C, H, W]  -> uint8 [C, OH, OW], qparams unchanged (int8/max_pool.hpp)
//   Int8Flatten    [d0, d1, ...] -> [d0·d1·...]: no work on contiguous NCHW memory
// A linear step takes a flat input: after a convolution or a pooling put a flatten first. There
// is no implicit flatten, so that a missing pooling is reported as a shape error instead of
// running on a reinterpreted tensor. fq::convert_sequential (convert/int8_model.hpp) builds one
// from QAT layers; it can also be assembled from steps converted by hand, or loaded from a
// model file (int8/model_file.hpp).
//
// Forward (Int8Model::run): the float images [n, input shape] are quantized with the input
// quantizer's qparams and range (fq::quantize_per_tensor, TorchNumerics: ties to even,
// x·f32(1/s) — the levels the tape's fq::ActQuant produces), then every step runs on uint8
// levels, alternating between two buffers the model keeps and reuses (so run is const but not
// reentrant: use one model per thread); the images go through in chunks of at most 256 KiB of
// activations per buffer (at least one image), so the buffers do not grow with n and, more to
// the point, stay in the L2 cache between steps. The output is
// float [n, output_numel()] when the last step is a float-output linear layer, else uint8 levels
// with output_qparams(). These outputs equal, bit for bit, the tape network's with every layer in
// integer arithmetic (use_integer_arithmetic, layers/integer_eval.hpp) and the layers converted one
// by one.
//
// Errors (FQ_CHECK, ErrorCode::kInvalidArgument unless noted; the message names the step index):
// when an Int8Model is constructed, a step whose input shape differs from the previous step's
// output shape (or, for step 0, from the input shape: kShapeMismatch), an int8 layer whose
// input qparams differ from the uint8 qparams before it (the input quantizer's for the first
// layer), a float output before the last step, no steps, a per-image tensor above 2^31
// elements (kOutOfMemory), bad input qparams (kInvalidScale, kInvalidZeroPoint) or range
// (kInvalidRange); in run, n < 0, a null pointer, an output pointer of the wrong type (float*
// for float logits, std::uint8_t* for levels), or so many images that their element count
// overflows (kOutOfMemory).
#ifndef FQ_INT8_MODEL_HPP_
#define FQ_INT8_MODEL_HPP_

#include <algorithm>  // max, min
#include <array>      // array
#include <cstdint>    // int64_t, uint8_t
#include <cstring>    // memcpy
#include <limits>     // numeric_limits
#include <string>     // string
#include <utility>    // move
#include <variant>    // variant, get_if
#include <vector>     // vector

#include <fakequant/base/error.hpp>
#include <fakequant/int8/conv2d.hpp>
#include <fakequant/int8/flatten.hpp>
#include <fakequant/int8/linear.hpp>
#include <fakequant/int8/max_pool.hpp>
#include <fakequant/int8/params.hpp>
#include <fakequant/kernels/quantize.hpp>
#include <fakequant/scheme/numerics.hpp>
#include <fakequant/simd/arch.hpp>
#include <fakequant/tape/tape.hpp>

namespace fq {

namespace detail {
/// The largest per-image tensor an Int8Model accepts (2^31 elements), so that sizes never
/// overflow (a corrupted model file cannot ask for more).
inline constexpr std::int64_t kMaxModelNumel = std::int64_t{1} << 31;
/// Int8Model::run processes the images in chunks whose activations take at most this many
/// bytes per buffer (256 KiB, or one image if larger), so that its memory does not grow with n
/// and each step reads what the previous one wrote from the L2 cache (two buffers: 512 KiB). On
/// the demo's network (10 images per chunk) that is about 1.2x faster than whole batches of 500
/// (bm_int8_model; the batch of 500 moved 12.5 MB through memory between conv and pool).
inline constexpr std::int64_t kRunChunkBytes = std::int64_t{1} << 18;
}  // namespace detail

/// One step of an Int8Model.
using Int8Step = std::variant<Int8Conv2d, Int8Linear, Int8MaxPool2d, Int8Flatten>;

namespace detail {
inline const char* step_name(const Int8Step& s) noexcept {
  if (std::holds_alternative<Int8Conv2d>(s)) return "Int8Conv2d";
  if (std::holds_alternative<Int8Linear>(s)) return "Int8Linear";
  if (std::holds_alternative<Int8MaxPool2d>(s)) return "Int8MaxPool2d";
  return "Int8Flatten";
}
/// The per-image shape a step takes.
inline Shape step_input_shape(const Int8Step& s) {
  if (const auto* c = std::get_if<Int8Conv2d>(&s))
    return {c->shape().in_channels, c->shape().in_h, c->shape().in_w};
  if (const auto* l = std::get_if<Int8Linear>(&s)) return {l->in_features()};
  if (const auto* p = std::get_if<Int8MaxPool2d>(&s)) return p->input_shape();
  return std::get<Int8Flatten>(s).input_shape();
}
/// The per-image shape a step gives.
inline Shape step_output_shape(const Int8Step& s) {
  if (const auto* c = std::get_if<Int8Conv2d>(&s))
    return {c->shape().out_channels, c->shape().out_h(), c->shape().out_w()};
  if (const auto* l = std::get_if<Int8Linear>(&s)) return {l->out_features()};
  if (const auto* p = std::get_if<Int8MaxPool2d>(&s)) return p->output_shape();
  return std::get<Int8Flatten>(s).output_shape();
}
/// The integer parameters of a conv or linear step; nullptr for max pool and flatten.
inline const Int8LayerParams* step_params(const Int8Step& s) noexcept {
  if (const auto* c = std::get_if<Int8Conv2d>(&s)) return &c->params();
  if (const auto* l = std::get_if<Int8Linear>(&s)) return &l->params();
  return nullptr;
}
/// The element count of a per-image shape, or -1 if it has rank 0 or an extent is not > 0,
/// -2 if the count exceeds kMaxModelNumel (computed without overflow).
inline std::int64_t bounded_numel(const Shape& s) noexcept {
  if (s.rank < 1) return -1;
  bool too_large = false;
  std::int64_t n = 1;
  for (int d = 0; d < s.rank; ++d) {
    if (s[d] <= 0) return -1;
    if (too_large || s[d] > kMaxModelNumel / n)
      too_large = true;
    else
      n *= s[d];
  }
  return too_large ? -2 : n;
}
}  // namespace detail

/// A whole sequential integer network: quantize the float input, then run the steps (file
/// comment). Built by convert_sequential, or from steps converted by hand (validated here).
class Int8Model {
 public:
  /// Validates the chain (file comment): `input_qparams` and `input_range` are those of the
  /// network's input quantizer, `input_shape` the shape of one input image or row.
  Int8Model(ActQParams input_qparams, Shape input_shape, std::vector<Int8Step> steps,
            QuantRange input_range = QuantRange{0, 255})
      : in_(input_qparams), range_(input_range), in_shape_(input_shape), steps_(std::move(steps)) {
    validate();
  }

  const std::vector<Int8Step>& steps() const noexcept { return steps_; }
  /// The input quantizer's scale and zero point, and its range.
  const ActQParams& input_qparams() const noexcept { return in_; }
  QuantRange input_range() const noexcept { return range_; }
  /// The shape of one input image ([C, H, W]) or row ([features]), and its element count.
  const Shape& input_shape() const noexcept { return in_shape_; }
  std::int64_t input_numel() const noexcept { return in_shape_.numel(); }
  /// The shape of one output (e.g. [classes]) and its element count.
  const Shape& output_shape() const noexcept { return out_shape_; }
  std::int64_t output_numel() const noexcept { return out_shape_.numel(); }
  /// True when the last step is a linear layer without output quantizer (float logits).
  bool float_output() const noexcept { return float_out_; }
  /// The qparams of the uint8 output levels (when !float_output()).
  const ActQParams& output_qparams() const noexcept { return out_; }
  /// The bytes of activations per buffer run may use (default detail::kRunChunkBytes, 256 KiB):
  /// run processes as many images at a time as fit, at least one; outputs do not depend on it.
  void set_run_chunk_bytes(std::int64_t bytes) {
    FQ_CHECK(bytes > 0, ErrorCode::kInvalidArgument,
             detail::msg("Int8Model::set_run_chunk_bytes: ", bytes, " must be > 0"));
    chunk_bytes_ = bytes;
  }
  std::int64_t run_chunk_bytes() const noexcept { return chunk_bytes_; }

  /// Float output: images [n, input shape] -> out [n, output_numel()] (float logits).
  /// Arch (both runs): the kernels' instruction set (fq::DefaultArch; simd/arch.hpp), a
  /// template parameter here, at the outermost call, since the steps are a variant.
  template <class Arch = DefaultArch>
  void run(const float* images, std::int64_t n, float* out) const {
    FQ_CHECK(float_out_, ErrorCode::kInvalidArgument,
             "Int8Model::run: the last step outputs uint8 levels; pass a std::uint8_t* output");
    if (!begin_run(images, n, out)) return;
    for_each_chunk(n, [&](std::int64_t i0, std::int64_t m) {
      const std::uint8_t* h =
          run_steps<Arch>(images + i0 * input_numel(), m, steps_.size() - 1, nullptr);
      std::get<Int8Linear>(steps_.back()).template run<Arch>(h, m, out + i0 * output_numel());
    });
  }
  /// uint8 output: images [n, input shape] -> levels [n, output_numel()] (output_qparams()).
  template <class Arch = DefaultArch>
  void run(const float* images, std::int64_t n, std::uint8_t* out) const {
    FQ_CHECK(!float_out_, ErrorCode::kInvalidArgument,
             "Int8Model::run: the last step has a float output (logits); pass a float* output");
    if (!begin_run(images, n, out)) return;
    for_each_chunk(n, [&](std::int64_t i0, std::int64_t m) {
      std::uint8_t* o = out + i0 * output_numel();
      const std::uint8_t* h = run_steps<Arch>(images + i0 * input_numel(), m, steps_.size(), o);
      if (h != o)  // only flattens after the quantized input: nothing wrote to `o`
        std::memcpy(o, h, static_cast<std::size_t>(m * output_numel()));
    });
  }

 private:
  void validate() {
    constexpr const char* kWhere = "Int8Model";
    detail::check_scale(in_.scale, kWhere);
    FQ_CHECK(
        range_.quant_min >= 0 && range_.quant_min <= range_.quant_max && range_.quant_max <= 255,
        ErrorCode::kInvalidRange,
        detail::msg(kWhere, ": the input range [", range_.quant_min, ", ", range_.quant_max,
                    "] is not a uint8 range"));
    detail::check_zero_point(in_.zero_point, range_, kWhere);
    const std::int64_t in_numel = detail::bounded_numel(in_shape_);
    FQ_CHECK(in_numel != -2, ErrorCode::kOutOfMemory,
             detail::msg(kWhere, ": the input shape ", in_shape_.str(),
                         " has more than 2^31 elements per image"));
    FQ_CHECK(in_numel > 0, ErrorCode::kInvalidArgument,
             detail::msg(kWhere, ": the input shape ", in_shape_.str(),
                         " must have rank >= 1 and extents > 0"));
    FQ_CHECK(!steps_.empty(), ErrorCode::kInvalidArgument,
             detail::msg(kWhere, ": a model needs at least one step"));
    Shape shape = in_shape_;
    ActQParams q = in_;
    max_numel_ = shape.numel();
    for (std::size_t i = 0; i < steps_.size(); ++i) {
      const Int8Step& s = steps_[i];
      const Shape want = detail::step_input_shape(s);
      const bool linear_on_image = std::holds_alternative<Int8Linear>(s) && shape.rank != 1;
      FQ_CHECK(want == shape, ErrorCode::kShapeMismatch,
               detail::msg(kWhere, ": step ", i, " (", detail::step_name(s), ") takes ", want.str(),
                           " per image, but ", previous(i), " gives ", shape.str(),
                           linear_on_image ? " (put an Int8Flatten before a linear layer)" : ""));
      if (const Int8LayerParams* p = detail::step_params(s)) {
        FQ_CHECK(p->in.scale == q.scale && p->in.zero_point == q.zero_point,
                 ErrorCode::kInvalidArgument,
                 detail::msg(kWhere, ": step ", i, " (", detail::step_name(s),
                             ") was converted for input qparams (scale ", p->in.scale,
                             ", zero point ", p->in.zero_point, "), but ", previous(i),
                             " gives (scale ", q.scale, ", zero point ", q.zero_point, ")"));
        FQ_CHECK(!p->float_out || (std::holds_alternative<Int8Linear>(s) && i + 1 == steps_.size()),
                 ErrorCode::kInvalidArgument,
                 detail::msg(kWhere, ": step ", i, " (", detail::step_name(s),
                             ") has a float output; only the last step, a linear layer, may "
                             "(the steps after it take uint8 levels)"));
        q = p->out;
      }
      shape = detail::step_output_shape(s);
      const std::int64_t numel = detail::bounded_numel(shape);
      FQ_CHECK(numel != -2, ErrorCode::kOutOfMemory,
               detail::msg(kWhere, ": step ", i, " (", detail::step_name(s), ") gives ",
                           shape.str(), ", more than 2^31 elements per image"));
      FQ_CHECK(numel > 0, ErrorCode::kInvalidArgument,
               detail::msg(kWhere, ": step ", i, " (", detail::step_name(s), ") gives ",
                           shape.str(), ", an empty tensor"));
      max_numel_ = std::max(max_numel_, numel);
    }
    out_shape_ = shape;
    out_ = q;
    const Int8LayerParams* last = detail::step_params(steps_.back());
    float_out_ = last != nullptr && last->float_out;
  }
  static std::string previous(std::size_t i) {
    return i == 0 ? std::string("the input") : detail::msg("step ", i - 1);
  }

  /// Checks n and the pointers; false when there is nothing to do (n == 0).
  template <class Out>
  bool begin_run(const float* images, std::int64_t n, const Out* out) const {
    FQ_CHECK(n >= 0, ErrorCode::kInvalidArgument,
             detail::msg("Int8Model::run: negative image count ", n));
    if (n == 0) return false;
    FQ_CHECK(images != nullptr && out != nullptr, ErrorCode::kInvalidArgument,
             "Int8Model::run: null input or output");
    FQ_CHECK(n <= std::numeric_limits<std::int64_t>::max() / max_numel_, ErrorCode::kOutOfMemory,
             detail::msg("Int8Model::run: ", n, " images of up to ", max_numel_,
                         " elements overflow a 64-bit element count"));
    return true;
  }

  /// Calls f(first image, image count) for chunks of at most kRunChunkBytes of buffer (at
  /// least one image each): the steps are per image, so chunking changes no output, and the
  /// buffers stay bounded whatever n is.
  template <class F>
  void for_each_chunk(std::int64_t n, F&& f) const {
    const std::int64_t per_chunk = std::max<std::int64_t>(1, chunk_bytes_ / max_numel_);
    for (std::int64_t i0 = 0; i0 < n; i0 += per_chunk) f(i0, std::min(per_chunk, n - i0));
  }

  /// Quantizes the images and runs steps [0, end); the step that writes last goes to `final_out`
  /// when given. Returns the levels after step end - 1.
  template <class Arch>
  const std::uint8_t* run_steps(const float* images, std::int64_t n, std::size_t end,
                                std::uint8_t* final_out) const {
    const auto size = static_cast<std::size_t>(n * max_numel_);
    if (buf_[0].size() < size) buf_[0].resize(size);
    if (buf_[1].size() < size) buf_[1].resize(size);
    const std::int64_t in_numel = input_numel();
    quantize_per_tensor<TorchNumerics, Arch>(
        TensorView<const float>(images, {n, in_numel}),
        TensorView<std::uint8_t>(buf_[0].data(), {n, in_numel}), in_.scale, in_.zero_point, range_);
    std::size_t last_writer = end;  // none
    for (std::size_t i = 0; i < end; ++i)
      if (!std::holds_alternative<Int8Flatten>(steps_[i])) last_writer = i;
    const std::uint8_t* cur = buf_[0].data();
    std::size_t next = 1;
    for (std::size_t i = 0; i < end; ++i) {
      const Int8Step& s = steps_[i];
      if (std::holds_alternative<Int8Flatten>(s)) continue;
      std::uint8_t* dst =
          (final_out != nullptr && i == last_writer) ? final_out : buf_[next].data();
      if (const auto* c = std::get_if<Int8Conv2d>(&s))
        c->template run<Arch>(cur, n, dst);
      else if (const auto* l = std::get_if<Int8Linear>(&s))
        l->template run<Arch>(cur, n, dst);
      else
        std::get<Int8MaxPool2d>(s).run(cur, n, dst);
      cur = dst;
      next = 1 - next;
    }
    return cur;
  }

  ActQParams in_;
  QuantRange range_;
  Shape in_shape_;
  std::vector<Int8Step> steps_;
  Shape out_shape_;
  ActQParams out_;
  bool float_out_ = false;
  std::int64_t max_numel_ = 0;
  std::int64_t chunk_bytes_ = detail::kRunChunkBytes;
  mutable std::array<std::vector<std::uint8_t>, 2> buf_;
};

}  // namespace fq

#endif  // FQ_INT8_MODEL_HPP_
