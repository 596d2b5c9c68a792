// SPDX-License-Identifier: MIT
// fakequant/int8/model_file.hpp: save and load integer models — a whole
// fq::Int8Model (save_int8_model(path, model), load_int8_sequential) or a list of layers
// (save_int8_model(path, layers), load_int8_model). This build writes version 3 and reads
// versions 1 to 3: version 2 files hold a list of layers; version 1 files also lack the
// output range, which is then [0, 255].
//
// File layout, all integers little-endian, floats IEEE-754 binary32:
//   magic     8 bytes  "FQINT8\0\1"
//   version   u32      3
//   count     u32      number of steps (layers in versions 1 and 2)
//   model     (version 3 only) the input record:
//     flags   u32      bit 0: the file holds a whole Int8Model and the fields below are its
//                      input; 0: a list of layers (the fields below are zeros)
//     input   f32 scale, i32 zero point, i32 range lo, i32 range hi: the input quantizer
//     shape   u32 rank (1 to 4), then 4 × i64 extents of one input (zeros past the rank)
//   per step:
//     kind    u32      1 = Int8Linear, 2 = Int8Conv2d, 3 = Int8MaxPool2d, 4 = Int8Flatten (3 and
//                      4: version 3)
//     flags   u32      linear and conv: bit 0 fused ReLU, bit 1 float output (linear only);
//                      max pool and flatten: 0
//     shape   12 × i64 linear: in_features, out_features, then zeros; conv: the fields of
//                      Conv2dShape in declaration order (batch, in_channels, in_h, in_w,
//                      out_channels, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, groups);
//                      max pool: channels, in_h, in_w, kernel, stride, then zeros; flatten: the
//                      input's rank, then its 4 extents (zeros past the rank), then zeros
//     linear and conv only:
//     in      f32 scale, i32 zero point;   out  f32 scale, i32 zero point
//     range   i32 lo, i32 hi: the output levels' clamp (version >= 2; a fused ReLU6 lowers hi)
//     arrays  each a u64 element count then the elements: weight levels (i8), weight scales
//             (f32), bias (i32), real bias (f32), multipliers (i32 mantissa, i32 shift)
//   crc32     u32      CRC-32 (IEEE 802.3, as zlib's) of every byte before it
// A truncated file, a wrong magic or version, an inconsistent count or shape (extents up to
// 2^24, tensors up to 2^31 elements), an unknown kind or flag, or a checksum mismatch is an
// ErrorCode::kInvalidArgument naming what is wrong; nothing is read past the end and nothing
// is allocated beyond what the file holds. Sizes derived from fields that are each within
// bounds are bounded too: every layer is built by Int8Linear's or Int8Conv2d's constructor,
// which refuses a buffer of one image above 2^31 bytes (packed weights, activations, padded and
// unfolded input; int8/layer_checks.hpp) with ErrorCode::kOutOfMemory, and Int8Model::run works
// in bounded chunks. A path that cannot be opened or read, a directory or anything else that
// is not a regular file (a character device such as /dev/zero, a pipe) is ErrorCode::kIoError;
// a file above kMaxModelFileBytes (4 GiB) is ErrorCode::kOutOfMemory, refused before reading.
// (The byte-level reading and writing, with those limits: int8/file_io.hpp.) A whole model is
// validated as Int8Model's constructor does (shapes and qparams chain, the float output last).
// load_int8_model reads a whole model's layers only if it has no max pool or flatten step;
// load_int8_sequential needs a whole-model file. Saving a model whose input, or a flatten
// step's input, has a rank above 4 (the format's, whatever fq::Shape allows) is
// ErrorCode::kInvalidArgument.
#ifndef FQ_INT8_MODEL_FILE_HPP_
#define FQ_INT8_MODEL_FILE_HPP_

#include <array>             // array
#include <cstdint>           // fixed-width integers
#include <cstring>           // memcmp, memcpy
#include <initializer_list>  // initializer_list
#include <string>            // string
#include <utility>           // move
#include <variant>           // variant, visit
#include <vector>            // vector

#include <fakequant/base/error.hpp>
#include <fakequant/int8/conv2d.hpp>
#include <fakequant/int8/file_io.hpp>
#include <fakequant/int8/linear.hpp>
#include <fakequant/int8/model.hpp>
#include <fakequant/int8/params.hpp>

namespace fq {

/// One layer of a converted model.
using Int8Layer = std::variant<Int8Linear, Int8Conv2d>;

inline constexpr std::uint32_t kModelFileVersion = 3;

namespace detail {
inline constexpr std::array<char, 8> kModelMagic = {'F', 'Q', 'I', 'N', 'T', '8', '\0', '\1'};
/// The rank of the shapes a model file records (the model input, a flatten step's input):
/// fixed by the format, whatever the rank limit of fq::Shape.
inline constexpr int kFileMaxRank = 4;
/// Refuses to save a shape the format cannot hold.
inline void check_file_rank(const Shape& s, const char* fn, const char* what) {
  FQ_CHECK(s.rank <= kFileMaxRank, ErrorCode::kInvalidArgument,
           msg(fn, ": ", what, " ", s.str(), " has rank ", s.rank,
               "; the model file holds ranks up to ", kFileMaxRank));
}
/// The largest extent a model file may give (a corrupted file cannot ask for more).
inline constexpr std::int64_t kMaxFileExtent = std::int64_t{1} << 24;

inline void write_layer_params(ByteWriter& w, const Int8LayerParams& p) {
  w.put(p.in.scale);
  w.put(p.in.zero_point);
  w.put(p.out.scale);
  w.put(p.out.zero_point);
  w.put(p.out_min);
  w.put(p.out_max);
  w.put_array(p.weight);
  w.put_array(p.weight_scale);
  w.put_array(p.bias);
  w.put_array(p.real_bias);
  w.put<std::uint64_t>(p.multiplier.size());
  for (const QuantizedMultiplier& m : p.multiplier) {
    w.put(m.multiplier);
    w.put<std::int32_t>(m.shift);
  }
}

inline Int8LayerParams read_layer_params(ByteReader& r, std::uint32_t version, std::uint32_t flags,
                                         std::int64_t out, std::int64_t weights) {
  const std::string& where = r.where();
  Int8LayerParams p;
  p.relu = (flags & 1u) != 0;
  p.float_out = (flags & 2u) != 0;
  p.in.scale = r.get<float>("input scale");
  p.in.zero_point = r.get<std::int32_t>("input zero point");
  p.out.scale = r.get<float>("output scale");
  p.out.zero_point = r.get<std::int32_t>("output zero point");
  if (version >= 2) {
    p.out_min = r.get<std::int32_t>("output range");
    p.out_max = r.get<std::int32_t>("output range");
  }
  FQ_CHECK(0 <= p.out_min && p.out_min <= p.out_max && p.out_max <= 255 &&
               (p.float_out || (p.out.zero_point >= p.out_min && p.out.zero_point <= p.out_max)),
           ErrorCode::kInvalidArgument,
           msg(where, ": an output range or zero point is out of range (corrupted file?)"));
  const auto o = static_cast<std::uint64_t>(out);
  p.weight = r.get_array<std::int8_t>("weights", static_cast<std::uint64_t>(weights));
  p.weight_scale = r.get_array<float>("weight scales", o);
  p.bias = r.get_array<std::int32_t>("bias", o);
  p.real_bias = r.get_array<float>("real bias", o);
  const auto nm = r.get<std::uint64_t>("multipliers");
  FQ_CHECK(nm == (p.float_out ? 0 : o), ErrorCode::kInvalidArgument,
           msg(where, ": ", nm, " multipliers for ", o, " channels"));
  for (std::uint64_t i = 0; i < nm; ++i) {
    QuantizedMultiplier m;
    m.multiplier = r.get<std::int32_t>("multiplier");
    m.shift = r.get<std::int32_t>("shift");
    FQ_CHECK(m.shift >= -31 && m.shift <= 31 && m.multiplier >= 0, ErrorCode::kInvalidArgument,
             msg(where, ": a multiplier is out of range (corrupted file?)"));
    p.multiplier.push_back(m);
  }
  for (float s : p.weight_scale) check_scale(s, where.c_str());
  check_scale(p.in.scale, where.c_str());
  if (!p.float_out) check_scale(p.out.scale, where.c_str());
  return p;
}

/// The product of `dims`, or -1 if one is not in (0, kMaxFileExtent] or the product exceeds
/// kMaxModelNumel (computed without overflow).
inline std::int64_t bounded_product(std::initializer_list<std::int64_t> dims) noexcept {
  std::int64_t n = 1;
  for (std::int64_t d : dims) {
    if (d <= 0 || d > kMaxFileExtent || d > kMaxModelNumel / n) return -1;
    n *= d;
  }
  return n;
}

using StepShape = std::array<std::int64_t, 12>;

// Step records (kind, flags, shape, parameters), by step type.
inline void write_step(ByteWriter& w, const Int8Linear& l) {
  StepShape shape{};
  shape[0] = l.in_features();
  shape[1] = l.out_features();
  const Int8LayerParams& p = l.params();
  w.put<std::uint32_t>(1);
  w.put(static_cast<std::uint32_t>((p.relu ? 1u : 0u) | (p.float_out ? 2u : 0u)));
  for (std::int64_t e : shape) w.put(e);
  write_layer_params(w, p);
}
inline void write_step(ByteWriter& w, const Int8Conv2d& c) {
  const Conv2dShape& s = c.shape();
  const StepShape shape = {s.batch,        s.in_channels, s.in_h,     s.in_w,
                           s.out_channels, s.kernel_h,    s.kernel_w, s.stride_h,
                           s.stride_w,     s.pad_h,       s.pad_w,    s.groups};
  const Int8LayerParams& p = c.params();
  w.put<std::uint32_t>(2);
  w.put(static_cast<std::uint32_t>(p.relu ? 1u : 0u));
  for (std::int64_t e : shape) w.put(e);
  write_layer_params(w, p);
}
inline void write_step(ByteWriter& w, const Int8MaxPool2d& m) {
  StepShape shape{};
  shape[0] = m.channels();
  shape[1] = m.in_h();
  shape[2] = m.in_w();
  shape[3] = m.kernel();
  shape[4] = m.stride();
  w.put<std::uint32_t>(3);
  w.put<std::uint32_t>(0);
  for (std::int64_t e : shape) w.put(e);
}
inline void write_step(ByteWriter& w, const Int8Flatten& f) {
  StepShape shape{};
  const Shape& in = f.input_shape();
  check_file_rank(in, "save_int8_model", "a flatten step's input");
  shape[0] = in.rank;
  for (int d = 0; d < in.rank; ++d) shape[static_cast<std::size_t>(d) + 1] = in[d];
  w.put<std::uint32_t>(4);
  w.put<std::uint32_t>(0);
  for (std::int64_t e : shape) w.put(e);
}

/// Writes magic, version, count and the input record, then write_steps(w), then the CRC.
template <class WriteSteps>
void write_model_file(const std::string& path, const char* fn, std::size_t count,
                      const Int8Model* model, WriteSteps&& write_steps) {
  FQ_CHECK(count <= 0xFFFFFFFFu, ErrorCode::kInvalidArgument,
           msg(fn, ": ", count, " steps do not fit the file's u32 count"));
  ByteWriter w;
  for (char c : kModelMagic) w.put(c);
  w.put(kModelFileVersion);
  w.put(static_cast<std::uint32_t>(count));
  w.put<std::uint32_t>(model != nullptr ? 1u : 0u);
  const ActQParams in = model != nullptr ? model->input_qparams() : ActQParams{0.0f, 0};
  const QuantRange range = model != nullptr ? model->input_range() : QuantRange{0, 0};
  const Shape shape = model != nullptr ? model->input_shape() : Shape{};
  check_file_rank(shape, fn, "the model input");
  w.put(in.scale);
  w.put(in.zero_point);
  w.put(static_cast<std::int32_t>(range.quant_min));
  w.put(static_cast<std::int32_t>(range.quant_max));
  w.put(static_cast<std::uint32_t>(shape.rank));
  for (int d = 0; d < kFileMaxRank; ++d) w.put<std::int64_t>(d < shape.rank ? shape[d] : 0);
  write_steps(w);
  w.put(crc32(w.bytes().data(), w.bytes().size()));
  write_file_bytes(path, w.bytes(), fn);
}

/// What a model file holds: its steps and, for a whole model (version 3), the input.
struct ModelFileContents {
  std::uint32_t version = 0;
  bool whole_model = false;
  ActQParams in;
  QuantRange range{0, 255};
  Shape shape;
  std::vector<Int8Step> steps;
};

/// One step record; `i` is its index (for the messages).
inline Int8Step read_step(ByteReader& r, std::uint32_t version, std::uint32_t i) {
  const std::string& where = r.where();
  const auto kind = r.get<std::uint32_t>("step kind");
  const auto flags = r.get<std::uint32_t>("step flags");
  StepShape s{};
  for (auto& e : s) e = r.get<std::int64_t>("step shape");
  const std::uint32_t max_kind = version >= 3 ? 4 : 2;
  FQ_CHECK(kind >= 1 && kind <= max_kind, ErrorCode::kInvalidArgument,
           msg(where, ": step ", i, " has unknown kind ", kind));
  const std::uint32_t allowed_flags = kind == 1 ? 3u : kind == 2 ? 1u : 0u;
  FQ_CHECK((flags & ~allowed_flags) == 0, ErrorCode::kInvalidArgument,
           msg(where, ": step ", i, " has unknown flags ", flags));
  const std::string bad_shape = msg(where, ": step ", i, " has a bad shape");
  if (kind == 1) {
    FQ_CHECK(bounded_product({s[0]}) > 0 && bounded_product({s[1]}) > 0,
             ErrorCode::kInvalidArgument, bad_shape);
    return Int8Linear(read_layer_params(r, version, flags, s[1], s[0] * s[1]), s[0]);
  }
  if (kind == 2) {
    const Conv2dShape cs{s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7], s[8], s[9], s[10], s[11]};
    bool extents_ok = true;
    for (std::int64_t e : s) extents_ok = extents_ok && e >= 0 && e <= kMaxFileExtent;
    FQ_CHECK(extents_ok, ErrorCode::kInvalidArgument, bad_shape);
    check_conv2d_shape(cs, msg(where, ": step ", i).c_str());
    const std::int64_t weights =
        bounded_product({cs.out_channels, cs.in_channels / cs.groups, cs.kernel_h, cs.kernel_w});
    FQ_CHECK(weights > 0 && bounded_product({cs.in_channels, cs.in_h, cs.in_w}) > 0 &&
                 bounded_product({cs.out_channels, cs.out_h(), cs.out_w()}) > 0,
             ErrorCode::kInvalidArgument, bad_shape);
    return Int8Conv2d(read_layer_params(r, version, flags, cs.out_channels, weights), cs);
  }
  if (kind == 3) {
    FQ_CHECK(bounded_product({s[0], s[1], s[2]}) > 0 && bounded_product({s[3], s[4]}) > 0,
             ErrorCode::kInvalidArgument, bad_shape);
    return Int8MaxPool2d(s[0], s[1], s[2], s[3], s[4]);
  }
  bool ok = s[0] >= 1 && s[0] <= kFileMaxRank;
  Shape in;
  for (int d = 0; ok && d < static_cast<int>(s[0]); ++d) {
    const std::int64_t e = s[static_cast<std::size_t>(d) + 1];
    ok = e > 0 && e <= kMaxFileExtent;
    in.dims[static_cast<std::size_t>(d)] = e;
    in.rank = d + 1;
  }
  FQ_CHECK(ok && bounded_numel(in) > 0, ErrorCode::kInvalidArgument, bad_shape);
  return Int8Flatten(in);
}

/// Reads and checks a model file of any version (file comment).
inline ModelFileContents read_model_file(const std::string& path, const char* fn) {
  const std::string where = msg(fn, "(", path, ")");
  const std::vector<std::uint8_t> bytes = read_file_bytes(path, where);
  FQ_CHECK(bytes.size() >= kModelMagic.size() + 12, ErrorCode::kInvalidArgument,
           msg(where, ": truncated file (", bytes.size(), " bytes)"));
  FQ_CHECK(std::memcmp(bytes.data(), kModelMagic.data(), kModelMagic.size()) == 0,
           ErrorCode::kInvalidArgument, msg(where, ": not a fakequant int8 model file"));
  std::uint32_t stored;
  std::memcpy(&stored, bytes.data() + bytes.size() - 4, 4);
  FQ_CHECK(crc32(bytes.data(), bytes.size() - 4) == stored, ErrorCode::kInvalidArgument,
           msg(where, ": checksum mismatch (the file is corrupted or truncated)"));
  ByteReader r(bytes.data() + kModelMagic.size(), bytes.size() - kModelMagic.size() - 4, where);
  ModelFileContents c;
  c.version = r.get<std::uint32_t>("version");
  FQ_CHECK(
      c.version >= 1 && c.version <= kModelFileVersion, ErrorCode::kInvalidArgument,
      msg(where, ": version ", c.version, ", this build reads versions 1 to ", kModelFileVersion));
  const auto count = r.get<std::uint32_t>("step count");
  if (c.version >= 3) {
    const auto flags = r.get<std::uint32_t>("model flags");
    FQ_CHECK(flags <= 1u, ErrorCode::kInvalidArgument, msg(where, ": unknown model flags ", flags));
    c.whole_model = flags == 1u;
    c.in.scale = r.get<float>("model input scale");
    c.in.zero_point = r.get<std::int32_t>("model input zero point");
    c.range.quant_min = r.get<std::int32_t>("model input range");
    c.range.quant_max = r.get<std::int32_t>("model input range");
    const auto rank = r.get<std::uint32_t>("model input rank");
    std::array<std::int64_t, kFileMaxRank> dims{};
    for (auto& e : dims) e = r.get<std::int64_t>("model input shape");
    if (c.whole_model) {
      bool ok = rank >= 1 && rank <= static_cast<std::uint32_t>(kFileMaxRank);
      for (std::uint32_t d = 0; ok && d < rank; ++d) ok = dims[d] > 0 && dims[d] <= kMaxFileExtent;
      FQ_CHECK(ok, ErrorCode::kInvalidArgument, msg(where, ": the model input has a bad shape"));
      c.shape.rank = static_cast<int>(rank);
      for (std::uint32_t d = 0; d < rank; ++d) c.shape.dims[d] = dims[d];
    }
  }
  for (std::uint32_t i = 0; i < count; ++i) c.steps.push_back(read_step(r, c.version, i));
  return c;
}
}  // namespace detail

/// Writes the layers to `path` (format above; a list of layers, no input record).
inline void save_int8_model(const std::string& path, const std::vector<Int8Layer>& layers) {
  detail::write_model_file(path, "save_int8_model", layers.size(), nullptr,
                           [&](detail::ByteWriter& w) {
                             for (const Int8Layer& l : layers)
                               std::visit([&w](const auto& s) { detail::write_step(w, s); }, l);
                           });
}

/// Writes a whole model to `path` (format above): its input and every step.
inline void save_int8_model(const std::string& path, const Int8Model& model) {
  detail::write_model_file(path, "save_int8_model", model.steps().size(), &model,
                           [&](detail::ByteWriter& w) {
                             for (const Int8Step& s : model.steps())
                               std::visit([&w](const auto& st) { detail::write_step(w, st); }, s);
                           });
}

/// Reads the layers of a file written by save_int8_model (any version); see the file comment
/// for the errors. A whole model's file is read if all its steps are linear or conv layers.
inline std::vector<Int8Layer> load_int8_model(const std::string& path) {
  detail::ModelFileContents c = detail::read_model_file(path, "load_int8_model");
  std::vector<Int8Layer> layers;
  for (std::size_t i = 0; i < c.steps.size(); ++i) {
    Int8Step& s = c.steps[i];
    if (auto* l = std::get_if<Int8Linear>(&s)) {
      layers.emplace_back(std::move(*l));
    } else if (auto* conv = std::get_if<Int8Conv2d>(&s)) {
      layers.emplace_back(std::move(*conv));
    } else {
      detail::fail(
          ErrorCode::kInvalidArgument,
          detail::msg("load_int8_model(", path, "): step ", i, " is an ", detail::step_name(s),
                      "; the file holds a whole model: read it with load_int8_sequential"));
    }
  }
  return layers;
}

/// Reads a whole Int8Model written by save_int8_model(path, model), validated as its
/// constructor does; see the file comment for the errors.
inline Int8Model load_int8_sequential(const std::string& path) {
  detail::ModelFileContents c = detail::read_model_file(path, "load_int8_sequential");
  FQ_CHECK(c.whole_model, ErrorCode::kInvalidArgument,
           detail::msg("load_int8_sequential(", path, "): the file (version ", c.version,
                       ") holds a list of layers, not a whole model: read it with "
                       "load_int8_model"));
  return Int8Model(c.in, c.shape, std::move(c.steps), c.range);
}

}  // namespace fq

#endif  // FQ_INT8_MODEL_FILE_HPP_
