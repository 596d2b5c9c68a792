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
// options.form = OnnxForm::kFakeQuant writes the same graph as the QAT model's fake-quant pairs
// (the form TensorRT's explicit quantization and other re-quantizing tools read): each weight is
// the float initializer of its fake-quantized values f32(q_w·s_w[o]) under QuantizeLinear ->
// DequantizeLinear (axis 0; QuantizeLinear gives q_w back exactly: q_w·s_w / s_w rounds to q_w),
// and each bias the float b[o] the simulation adds; activations, clamps and the rest as above.
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
#include <fakequant/convert/onnx_graph.hpp>
#include <fakequant/convert/protobuf.hpp>
#include <fakequant/int8/file_io.hpp>
#include <fakequant/int8/model.hpp>
#include <fakequant/int8/params.hpp>

namespace fq {

namespace detail {

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
                              const Int8Conv2d* conv, const std::string& name, OnnxForm form) {
  const auto out = static_cast<std::int64_t>(p.bias.size());
  const auto o_count = static_cast<std::size_t>(out);
  for (std::size_t o = 0; o < o_count; ++o)
    check_onnx_scale(p.weight_scale[o], name + " weight scale " + std::to_string(o));
  std::vector<std::int64_t> wdims{out, static_cast<std::int64_t>(p.weight.size()) / out};
  if (conv != nullptr) {
    const Conv2dShape& s = conv->shape();
    wdims = {out, s.in_channels / s.groups, s.kernel_h, s.kernel_w};
  }
  const std::string ws = g.floats(name + ".weight_scale", {out}, p.weight_scale);
  const std::string wz = g.ints(name + ".weight_zero_point", {out}, OnnxType::kInt8,
                                std::vector<std::int32_t>(o_count, 0));
  std::string wq;
  if (form == OnnxForm::kQdq) {
    wq = g.int8_raw(name + ".weight_q", wdims, p.weight);
  } else {  // the fake-quantized weights q_w·s_w[o]; QuantizeLinear gives q_w back exactly
    const std::size_t per_out = p.weight.size() / o_count;
    std::vector<float> wf(p.weight.size());
    for (std::size_t i = 0; i < wf.size(); ++i)
      wf[i] = static_cast<float>(p.weight[i]) * p.weight_scale[i / per_out];
    const std::string wfn = g.floats(name + ".weight_float", wdims, wf);
    wq = g.node("QuantizeLinear", {wfn, ws, wz}, name + ".weight_q", {onnx_int("axis", 0)});
  }
  const std::string w =
      g.node("DequantizeLinear", {wq, ws, wz}, name + ".weight", {onnx_int("axis", 0)});
  std::string b;
  if (form == OnnxForm::kFakeQuant && !p.float_out) {
    b = g.floats(name + ".bias", {out}, p.real_bias);  // the simulation adds the float bias
  } else if (p.float_out) {
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
      x = detail::onnx_layer(g, x, c->params(), c, name, options.form);
      q = c->params().out;
    } else if (const auto* l = std::get_if<Int8Linear>(&s)) {
      x = detail::onnx_layer(g, x, l->params(), nullptr, name, options.form);
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
  m.string(f::kModelDocString,
           options.form == OnnxForm::kQdq
               ? "fq::Int8Model in QDQ form (fakequant/convert/onnx.hpp)"
               : "fq::Int8Model as fake-quant pairs (fakequant/convert/onnx.hpp)");
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
