// SPDX-License-Identifier: MIT
// fakequant/convert/onnx_graph.hpp: the ONNX side of the exporter (convert/onnx.hpp) — its
// options, the onnx.proto field numbers it writes, and detail::OnnxGraph, which collects nodes
// and initializers and serializes a GraphProto with the protobuf writer (convert/protobuf.hpp).
// Only what the exporter needs: float, uint8, int8 and int32 tensors, int and int-list
// attributes, float tensor inputs and outputs with a symbolic batch dimension.
#ifndef FQ_CONVERT_ONNX_GRAPH_HPP_
#define FQ_CONVERT_ONNX_GRAPH_HPP_

#include <cstddef>  // size_t
#include <cstdint>  // fixed-width integers
#include <string>   // string
#include <utility>  // move
#include <vector>   // vector

#include <fakequant/base/error.hpp>
#include <fakequant/convert/protobuf.hpp>

namespace fq {

/// What the exported graph holds for the weights (convert/onnx.hpp).
enum class OnnxForm {
  kQdq,        ///< int8 weight and int32 bias initializers, each under a DequantizeLinear
  kFakeQuant,  ///< float weights (the fake-quantized values) under QuantizeLinear and
               ///< DequantizeLinear, float biases: the QAT model's fake-quant pairs
};

/// The form and the names of the exported graph.
struct OnnxExportOptions {
  OnnxForm form = OnnxForm::kQdq;
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

}  // namespace detail
}  // namespace fq

#endif  // FQ_CONVERT_ONNX_GRAPH_HPP_
