// SPDX-License-Identifier: MIT
// fakequant/convert/onnx.hpp: fq::export_onnx(model, path) and fq::onnx_model_bytes(model) write
// an fq::Int8Model (int8/model.hpp) as an ONNX model in QDQ form (ModelProto, IR version 7,
// default-domain opset 13, producer "fakequant"), for ONNX Runtime and other QDQ consumers.
//
// Mapping (s: scale, z: zero point; activations uint8 as in the integer model: a signed
// activation quantizer's levels and zero point are already shifted by 128, same real values):
//   input     float [N, input shape], N symbolic (options.batch_dim); a Clip to the real
//             values of [quant_min, quant_max] if the input range is narrower than [0, 255];
//             QuantizeLinear(s_x, z_x uint8) -> DequantizeLinear(s_x, z_x)
//   Int8Conv2d   Conv(x, DQ(q_w), DQ(q_b)): group, kernel_shape, strides, pads [ph, pw, ph, pw],
//             dilations 1; q_w int8 [O, C/groups, kh, kw] dequantized per channel (axis 0,
//             scales s_w[o], int8 zero points 0); q_b int32 [O] dequantized per channel (axis 0,
//             scales f32(s_x·s_w[o]), int32 zero points 0)
//   Int8Linear   Gemm(x, DQ(q_w), bias, transB = 1), q_w int8 [out, in] as above; bias DQ(q_b)
//             as above, or, for the float-output (logits) layer, the float real_bias b[o], which
//             is what Int8Linear adds there (y = fma(f32(s_x·s_w[o]), acc, b[o]))
//   clamp     with lo = max(out_min, z_y) for a fused ReLU (else out_min) and hi = out_max:
//             nothing if [lo, hi] covers [0, 255]; Relu if lo = z_y and hi = 255; else
//             Clip(f32(lo − z_y)·s_y, f32(hi − z_y)·s_y) — ReLU6 and narrow output ranges as the
//             real values the clamping levels stand for (Q of them gives lo and hi back exactly)
//   then      QuantizeLinear(s_y, z_y uint8) -> DequantizeLinear(s_y, z_y); none after the
//             float-output layer, whose Gemm gives the graph output
//   Int8MaxPool2d  MaxPool(kernel_shape [k, k], strides [s, s], no padding), then Q -> DQ with
//             the unchanged qparams (exact: the max of grid values is on the grid)
//   Int8Flatten    Flatten(axis 1), then Q -> DQ likewise (so that a runtime can keep the
//             tensor uint8 between DQ and the next Conv or Gemm)
//   output    float [N, output shape]: the logits, or the real values of the last uint8 levels
// Every level, scale and zero point is copied from the Int8Model unchanged. Tensors: weights as
// raw_data (little-endian), biases, zero points and scales as packed int32_data / float_data.
//
// Arithmetic, the one known difference: ONNX Runtime requantizes in float — after its QDQ
// fusion (its default session) as QLinearConv / QGemm-style kernels, integer accumulators times
// the float scale product f32(s_x·s_w/s_y); unfused, as the Conv / Gemm of dequantized values
// summed in float, divided by s_y — rounded half to even, and quantizes the input as round(x /
// s_x); Int8Model requantizes with a fixed-point multiplier (kernels/fixed_point.hpp) and quantizes
// as x · f32(1/s_x). So at a rounding midpoint a level can differ by 1, and a logit downstream by
// |q_w| of its steps s_x·s_w[o] per level. A float logit is s_x·s_w[o]·acc + b[o] in both, up to
// float rounding. (Measured in tests/convert/onnx_export.test.cpp and tests/onnx/demo_vs_ort.sh,
// docs/convert.md.)
//
// Every fq::Int8Step kind has a mapping (a new kind is a compile error here until it gets one).
// Errors (FQ_CHECK, naming the step): a weight, activation or bias scale (f32(s_x·s_w[o])) that
// is not a positive normal float (kInvalidScale); a zero point outside [0, 255] or a clamp
// [lo, hi] not within [0, 255] with lo <= hi (kInvalidArgument); a float-output layer with a
// fused activation, empty or equal input and output names, an empty batch dimension name
// (kInvalidArgument); a model above 2 GiB, protobuf's limit (kOutOfMemory); a path that cannot
// be written (kIoError). Nothing is written to `path` on any other error.
#ifndef FQ_CONVERT_ONNX_HPP_
#define FQ_CONVERT_ONNX_HPP_

#include <algorithm>  // max
#include <cmath>      // isnormal
#include <cstddef>    // size_t
#include <cstdint>    // fixed-width integers
#include <string>     // string
#include <utility>    // move
#include <variant>    // get_if, holds_alternative
#include <vector>     // vector

#include <fakequant/base/error.hpp>
#include <fakequant/base/version.hpp>
#include <fakequant/convert/protobuf.hpp>
#include <fakequant/int8/file_io.hpp>
#include <fakequant/int8/model.hpp>
#include <fakequant/int8/params.hpp>

namespace fq {

/// Names in the exported graph.
struct OnnxExportOptions {
  std::string input_name = "input";
  std::string output_name = "output";
  std::string batch_dim = "N";  ///< the symbolic batch dimension of the input and output
  std::string graph_name = "fakequant_int8";
};

/// The IR version and opset the exporter writes.
inline constexpr std::int64_t kOnnxIrVersion = 7;
inline constexpr std::int64_t kOnnxOpset = 13;

namespace detail {

// Field numbers of onnx.proto (onnx/onnx.proto, IR version 7).
namespace onnx_field {
constexpr int kModelIrVersion = 1, kModelProducerName = 2, kModelProducerVersion = 3,
              kModelDocString = 6, kModelGraph = 7, kModelOpsetImport = 8;
constexpr int kOpsetDomain = 1, kOpsetVersion = 2;
constexpr int kGraphNode = 1, kGraphName = 2, kGraphInitializer = 5, kGraphInput = 11,
              kGraphOutput = 12;
constexpr int kNodeInput = 1, kNodeOutput = 2, kNodeName = 3, kNodeOpType = 4, kNodeAttribute = 5;
constexpr int kAttrName = 1, kAttrI = 3, kAttrInts = 8, kAttrType = 20;
constexpr int kAttrTypeInt = 2, kAttrTypeInts = 7;  // AttributeProto.AttributeType
constexpr int kTensorDims = 1, kTensorDataType = 2, kTensorFloatData = 4, kTensorInt32Data = 5,
              kTensorName = 8, kTensorRawData = 9;
constexpr int kValueInfoName = 1, kValueInfoType = 2;
constexpr int kTypeTensor = 1, kTensorTypeElemType = 1, kTensorTypeShape = 2, kShapeDim = 1,
              kDimValue = 1, kDimParam = 2;
}  // namespace onnx_field

/// TensorProto.DataType.
enum class OnnxType : std::int32_t { kFloat = 1, kUint8 = 2, kInt8 = 3, kInt32 = 6 };

/// One node attribute: an int, or a list of ints.
struct OnnxAttr {
  std::string name;
  std::vector<std::int64_t> ints;
  bool is_list = true;
};
inline OnnxAttr onnx_int(std::string name, std::int64_t v) { return {std::move(name), {v}, false}; }
inline OnnxAttr onnx_ints(std::string name, std::vector<std::int64_t> v) {
  return {std::move(name), std::move(v), true};
}

/// Builds the GraphProto: nodes are kept until the end, so that the last output can be renamed
/// to the graph output; initializers are serialized at once.
class OnnxGraph {
 public:
  struct Node {
    std::string op;
    std::vector<std::string> inputs;
    std::string output;
    std::vector<OnnxAttr> attrs;
  };

  /// Adds a node with one output named `name`; returns that name.
  std::string node(const std::string& op, std::vector<std::string> inputs, const std::string& name,
                   std::vector<OnnxAttr> attrs = {}) {
    nodes_.push_back({op, std::move(inputs), name, std::move(attrs)});
    return name;
  }
  /// Initializer with float_data (packed); an empty `dims` is a scalar.
  std::string floats(const std::string& name, const std::vector<std::int64_t>& dims,
                     const std::vector<float>& v) {
    ProtoWriter t = tensor_head(name, dims, OnnxType::kFloat);
    t.packed_floats(onnx_field::kTensorFloatData, v.data(), v.size());
    return add_initializer(name, t);
  }
  /// Initializer of uint8, int8 or int32 values, stored in int32_data (packed varints).
  template <class Int>
  std::string ints(const std::string& name, const std::vector<std::int64_t>& dims, OnnxType type,
                   const std::vector<Int>& v) {
    ProtoWriter t = tensor_head(name, dims, type);
    std::vector<std::int32_t> wide(v.begin(), v.end());
    t.packed_varints(onnx_field::kTensorInt32Data, wide.data(), wide.size());
    return add_initializer(name, t);
  }
  /// int8 initializer stored as raw_data (the weights: one byte each).
  std::string int8_raw(const std::string& name, const std::vector<std::int64_t>& dims,
                       const std::vector<std::int8_t>& v) {
    ProtoWriter t = tensor_head(name, dims, OnnxType::kInt8);
    t.bytes(onnx_field::kTensorRawData, v.data(), v.size());
    return add_initializer(name, t);
  }

  /// The GraphProto, the last node's output renamed to `output`.
  ProtoWriter finish(const OnnxExportOptions& o, const std::vector<std::int64_t>& in_shape,
                     const std::vector<std::int64_t>& out_shape) {
    namespace f = onnx_field;
    FQ_CHECK(!nodes_.empty(), ErrorCode::kInvalidArgument, "export_onnx: empty graph");
    nodes_.back().output = o.output_name;
    ProtoWriter g;
    for (const Node& n : nodes_) {
      ProtoWriter w;
      for (const std::string& in : n.inputs) w.string(f::kNodeInput, in);
      w.string(f::kNodeOutput, n.output);
      w.string(f::kNodeName, n.output + "_" + n.op);
      w.string(f::kNodeOpType, n.op);
      for (const OnnxAttr& a : n.attrs) {
        ProtoWriter aw;
        aw.string(f::kAttrName, a.name);
        if (a.is_list)
          aw.packed_varints(f::kAttrInts, a.ints.data(), a.ints.size());
        else
          aw.int64(f::kAttrI, a.ints[0]);
        aw.int64(f::kAttrType, a.is_list ? f::kAttrTypeInts : f::kAttrTypeInt);
        w.message(f::kNodeAttribute, aw);
      }
      g.message(f::kGraphNode, w);
    }
    g.string(f::kGraphName, o.graph_name);
    g.buffer().insert(g.buffer().end(), init_.buffer().begin(), init_.buffer().end());
    g.message(f::kGraphInput, value_info(o.input_name, in_shape, o.batch_dim));
    g.message(f::kGraphOutput, value_info(o.output_name, out_shape, o.batch_dim));
    return g;
  }

 private:
  static ProtoWriter tensor_head(const std::string& name, const std::vector<std::int64_t>& dims,
                                 OnnxType type) {
    ProtoWriter t;
    for (std::int64_t d : dims) t.int64(onnx_field::kTensorDims, d);
    t.int64(onnx_field::kTensorDataType, static_cast<std::int64_t>(type));
    t.string(onnx_field::kTensorName, name);
    return t;
  }
  std::string add_initializer(const std::string& name, const ProtoWriter& t) {
    init_.message(onnx_field::kGraphInitializer, t);
    return name;
  }
  /// A float tensor [batch_dim, dims...].
  static ProtoWriter value_info(const std::string& name, const std::vector<std::int64_t>& dims,
                                const std::string& batch_dim) {
    namespace f = onnx_field;
    ProtoWriter shape, tensor, type, vi;
    ProtoWriter batch;
    batch.string(f::kDimParam, batch_dim);
    shape.message(f::kShapeDim, batch);
    for (std::int64_t d : dims) {
      ProtoWriter dim;
      dim.int64(f::kDimValue, d);
      shape.message(f::kShapeDim, dim);
    }
    tensor.int64(f::kTensorTypeElemType, static_cast<std::int64_t>(OnnxType::kFloat));
    tensor.message(f::kTensorTypeShape, shape);
    type.message(f::kTypeTensor, tensor);
    vi.string(f::kValueInfoName, name);
    vi.message(f::kValueInfoType, type);
    return vi;
  }

  std::vector<Node> nodes_;
  ProtoWriter init_;
};

inline void check_onnx_scale(float s, const std::string& where) {
  FQ_CHECK(std::isnormal(s) && s > 0.0f, ErrorCode::kInvalidScale,
           msg("export_onnx: ", where, " is ", s, "; ONNX needs a positive normal float scale"));
}
inline void check_onnx_qparams(const ActQParams& q, const std::string& where) {
  check_onnx_scale(q.scale, where + " scale");
  FQ_CHECK(q.zero_point >= 0 && q.zero_point <= 255, ErrorCode::kInvalidArgument,
           msg("export_onnx: ", where, " zero point ", q.zero_point, " is not uint8"));
}

/// Emits Q -> DQ of `x` with per-tensor uint8 qparams `q`; returns the DQ output.
inline std::string onnx_qdq(OnnxGraph& g, const std::string& x, const ActQParams& q,
                            const std::string& p) {
  const std::string s = g.floats(p + ".scale", {}, {q.scale});
  const std::string z =
      g.ints(p + ".zero_point", {}, OnnxType::kUint8, std::vector<std::int32_t>{q.zero_point});
  const std::string xq = g.node("QuantizeLinear", {x, s, z}, p + ".q");
  return g.node("DequantizeLinear", {xq, s, z}, p + ".dq");
}

/// Emits a conv or linear step (file comment): its weights, bias, op, clamp and output Q -> DQ.
inline std::string onnx_layer(OnnxGraph& g, const std::string& x, const Int8LayerParams& p,
                              const Int8Conv2d* conv, const std::string& name) {
  const auto out = static_cast<std::int64_t>(p.bias.size());
  const auto o_count = static_cast<std::size_t>(out);
  for (std::size_t o = 0; o < o_count; ++o)
    check_onnx_scale(p.weight_scale[o], name + " weight scale " + std::to_string(o));
  std::vector<std::int64_t> wdims{out, static_cast<std::int64_t>(p.weight.size()) / out};
  if (conv != nullptr) {
    const Conv2dShape& s = conv->shape();
    wdims = {out, s.in_channels / s.groups, s.kernel_h, s.kernel_w};
  }
  const std::string wq = g.int8_raw(name + ".weight_q", wdims, p.weight);
  const std::string ws = g.floats(name + ".weight_scale", {out}, p.weight_scale);
  const std::string wz = g.ints(name + ".weight_zero_point", {out}, OnnxType::kInt8,
                                std::vector<std::int32_t>(o_count, 0));
  const std::string w =
      g.node("DequantizeLinear", {wq, ws, wz}, name + ".weight", {onnx_int("axis", 0)});
  std::string b;
  if (p.float_out) {
    FQ_CHECK(!p.relu, ErrorCode::kInvalidArgument,
             msg("export_onnx: ", name, " has a float output and a fused activation"));
    b = g.floats(name + ".bias", {out}, p.real_bias);
  } else {
    std::vector<float> bs(o_count);
    for (std::size_t o = 0; o < o_count; ++o) {
      bs[o] = p.in.scale * p.weight_scale[o];  // the accumulator's unit, as ORT expects it
      check_onnx_scale(bs[o], name + " bias scale (s_x * s_w) " + std::to_string(o));
    }
    const std::string bq = g.ints(name + ".bias_q", {out}, OnnxType::kInt32, p.bias);
    const std::string bsn = g.floats(name + ".bias_scale", {out}, bs);
    const std::string bz = g.ints(name + ".bias_zero_point", {out}, OnnxType::kInt32,
                                  std::vector<std::int32_t>(o_count, 0));
    b = g.node("DequantizeLinear", {bq, bsn, bz}, name + ".bias", {onnx_int("axis", 0)});
  }
  std::string y;
  if (conv != nullptr) {
    const Conv2dShape& s = conv->shape();
    y = g.node("Conv", {x, w, b}, name + ".conv",
               {onnx_ints("kernel_shape", {s.kernel_h, s.kernel_w}),
                onnx_ints("strides", {s.stride_h, s.stride_w}),
                onnx_ints("pads", {s.pad_h, s.pad_w, s.pad_h, s.pad_w}),
                onnx_ints("dilations", {1, 1}), onnx_int("group", s.groups)});
  } else {
    y = g.node("Gemm", {x, w, b}, name + ".gemm", {onnx_int("transB", 1)});
  }
  if (p.float_out) return y;
  check_onnx_qparams(p.out, name + " output");
  const std::int32_t z = p.out.zero_point;
  const std::int32_t lo = p.relu ? std::max(p.out_min, z) : p.out_min, hi = p.out_max;
  FQ_CHECK(
      lo >= 0 && lo <= hi && hi <= 255, ErrorCode::kInvalidArgument,
      msg("export_onnx: ", name, " clamps its output to [", lo, ", ", hi, "], not a uint8 range"));
  if (lo == z && hi == 255 && z > 0) {
    y = g.node("Relu", {y}, name + ".relu");
  } else if (lo > 0 || hi < 255) {
    const std::string mn =
        g.floats(name + ".clip_min", {}, {static_cast<float>(lo - z) * p.out.scale});
    const std::string mx =
        g.floats(name + ".clip_max", {}, {static_cast<float>(hi - z) * p.out.scale});
    y = g.node("Clip", {y, mn, mx}, name + ".clip");
  }
  return onnx_qdq(g, y, p.out, name + ".out");
}

}  // namespace detail

static_assert(std::variant_size_v<Int8Step> == 4,
              "export_onnx: a new Int8Step kind needs its ONNX mapping (convert/onnx.hpp)");

/// The ONNX ModelProto bytes of `model` (file comment).
inline std::vector<std::uint8_t> onnx_model_bytes(const Int8Model& model,
                                                  const OnnxExportOptions& options = {}) {
  namespace f = detail::onnx_field;
  FQ_CHECK(!options.input_name.empty() && !options.output_name.empty() &&
               options.input_name != options.output_name && !options.batch_dim.empty(),
           ErrorCode::kInvalidArgument,
           detail::msg("export_onnx: the input and output names (\"", options.input_name, "\", \"",
                       options.output_name,
                       "\") must be distinct and non-empty, and "
                       "the batch dimension named"));
  detail::OnnxGraph g;
  const ActQParams& in = model.input_qparams();
  detail::check_onnx_qparams(in, "the input");
  std::string x = options.input_name;
  const QuantRange r = model.input_range();
  if (r.quant_min > 0 || r.quant_max < 255) {  // the input quantizer's narrower range
    const std::string mn = g.floats("input.clip_min", {},
                                    {static_cast<float>(r.quant_min - in.zero_point) * in.scale});
    const std::string mx = g.floats("input.clip_max", {},
                                    {static_cast<float>(r.quant_max - in.zero_point) * in.scale});
    x = g.node("Clip", {x, mn, mx}, "input.clip");
  }
  x = detail::onnx_qdq(g, x, in, "input");
  ActQParams q = in;
  for (std::size_t i = 0; i < model.steps().size(); ++i) {
    const Int8Step& s = model.steps()[i];
    const std::string name = "step" + std::to_string(i);
    if (const auto* c = std::get_if<Int8Conv2d>(&s)) {
      x = detail::onnx_layer(g, x, c->params(), c, name);
      q = c->params().out;
    } else if (const auto* l = std::get_if<Int8Linear>(&s)) {
      x = detail::onnx_layer(g, x, l->params(), nullptr, name);
      q = l->params().out;
    } else if (const auto* mp = std::get_if<Int8MaxPool2d>(&s)) {
      x = g.node("MaxPool", {x}, std::string(name).append(".maxpool"),
                 {detail::onnx_ints("kernel_shape", {mp->kernel(), mp->kernel()}),
                  detail::onnx_ints("strides", {mp->stride(), mp->stride()})});
      x = detail::onnx_qdq(g, x, q, name);
    } else {
      x = g.node("Flatten", {x}, std::string(name).append(".flatten"),
                 {detail::onnx_int("axis", 1)});
      x = detail::onnx_qdq(g, x, q, name);
    }
  }
  const Shape& is = model.input_shape();
  const Shape& os = model.output_shape();
  const std::vector<std::int64_t> in_dims(is.dims.begin(), is.dims.begin() + is.rank);
  const std::vector<std::int64_t> out_dims(os.dims.begin(), os.dims.begin() + os.rank);
  const detail::ProtoWriter graph = g.finish(options, in_dims, out_dims);

  detail::ProtoWriter m;
  m.int64(f::kModelIrVersion, kOnnxIrVersion);
  m.string(f::kModelProducerName, "fakequant");
  m.string(f::kModelProducerVersion, std::to_string(FQ_VERSION_MAJOR) + "." +
                                         std::to_string(FQ_VERSION_MINOR) + "." +
                                         std::to_string(FQ_VERSION_PATCH));
  m.string(f::kModelDocString, "fq::Int8Model in QDQ form (fakequant/convert/onnx.hpp)");
  m.message(f::kModelGraph, graph);
  detail::ProtoWriter opset;
  opset.string(f::kOpsetDomain, "");
  opset.int64(f::kOpsetVersion, kOnnxOpset);
  m.message(f::kModelOpsetImport, opset);
  FQ_CHECK(m.size() < (std::size_t{1} << 31), ErrorCode::kOutOfMemory,
           detail::msg("export_onnx: the model takes ", m.size(),
                       " bytes; a protobuf message holds at most 2 GiB"));
  return std::move(m.buffer());
}

/// Writes `model` to `path` as ONNX (file comment); kIoError if the path cannot be written.
inline void export_onnx(const Int8Model& model, const std::string& path,
                        const OnnxExportOptions& options = {}) {
  const std::vector<std::uint8_t> bytes = onnx_model_bytes(model, options);
  detail::write_file_bytes(path, bytes, "export_onnx");
}

}  // namespace fq

#endif  // FQ_CONVERT_ONNX_HPP_
