#!/usr/bin/python3
# SPDX-License-Identifier: MIT
# tests/onnx/check_onnx.py: checks a model written by fq::export_onnx (convert/onnx.hpp) with the
# onnx package's own protobuf decoder and checker (Debian: python3-onnx; run with /usr/bin/python3).
#
#   check_onnx.py MODEL.onnx EXPECTED.json    the model against what the C++ test expects
#   check_onnx.py --probe PROBE.pb EXPECTED.json  one TensorProto, field by field
#
# MODEL: onnx.checker.check_model(full_check=True) (with shape inference), then the header
# (IR version, opset, producer), the graph input and output (names, element type, shapes with
# the symbolic batch dimension), and every Conv / Gemm in graph order against EXPECTED's layers:
# the int8 weight levels, per-channel weight scales (float32, bit for bit), int8 zero points 0
# and axis 0; the int32 bias with scales s_x*s_w[o] and zero points 0 (or the float bias of a
# float-output layer); for EXPECTED's "form": "fake_quant" (fq::OnnxForm::kFakeQuant), the float
# weights under QuantizeLinear -> DequantizeLinear, which must be the levels times the scales
# and quantize back to the levels, and every bias float; the clamp (Relu / Clip values) and the output QuantizeLinear's scale and
# uint8 zero point; and the input QuantizeLinear. Then onnx.reference, if this onnx has it (1.13+),
# runs the model; without it that part is skipped with a message.
# Exit status 0 when everything matches; 1 with the mismatches printed otherwise.
import json
import sys

import numpy as np
import onnx
from onnx import numpy_helper

errors = []


def expect(cond, what):
    if not cond:
        errors.append(what)
    return cond


def same(a, b, what, dtype):
    a = np.asarray(a)
    b = np.asarray(b, dtype=dtype)
    if not expect(a.dtype == np.dtype(dtype), f"{what}: dtype {a.dtype}, expected {np.dtype(dtype)}"):
        return
    if not expect(a.shape == b.shape, f"{what}: shape {a.shape}, expected {b.shape}"):
        return
    bad = np.flatnonzero(a.view(np.uint8 if a.itemsize == 1 else f"u{a.itemsize}").ravel() !=
                         b.view(np.uint8 if b.itemsize == 1 else f"u{b.itemsize}").ravel())
    expect(bad.size == 0, f"{what}: {bad.size} of {a.size} elements differ (first at {bad[:1]}: "
           f"{a.ravel()[bad[:1]]} vs {b.ravel()[bad[:1]]})")


def check_probe(path, exp):
    t = onnx.TensorProto()
    with open(path, "rb") as f:
        t.ParseFromString(f.read())
    expect(t.name == exp["name"], f"probe name {t.name!r}, expected {exp['name']!r}")
    expect(list(t.dims) == exp["dims"], f"probe dims {list(t.dims)}, expected {exp['dims']}")
    expect(t.data_type == exp["data_type"], f"probe data_type {t.data_type}")
    expect(list(t.int32_data) == exp["int32_data"],
           f"probe int32_data {list(t.int32_data)}, expected {exp['int32_data']}")
    got = np.array(t.float_data, dtype=np.float32)
    want = np.array(exp["float_data_bits"], dtype=np.uint32).view(np.float32)
    same(got, want, "probe float_data", np.float32)
    expect(t.raw_data == bytes(exp["raw_data"]), f"probe raw_data {list(t.raw_data)}")
    expect(t.doc_string == exp["doc_string"], f"probe doc_string {t.doc_string!r}")


def check_model(path, exp):
    m = onnx.load(path)
    onnx.checker.check_model(m, full_check=True)
    expect(m.ir_version == exp["ir_version"], f"ir_version {m.ir_version}")
    expect(m.producer_name == "fakequant", f"producer_name {m.producer_name!r}")
    ops = [(o.domain, o.version) for o in m.opset_import]
    expect(ops == [("", exp["opset"])], f"opset_import {ops}")
    g = m.graph
    init = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    producer = {n.output[0]: n for n in g.node}

    def io(vi, want, what):
        expect(vi.name == want["name"], f"{what} name {vi.name!r}, expected {want['name']!r}")
        tt = vi.type.tensor_type
        expect(tt.elem_type == onnx.TensorProto.FLOAT, f"{what} element type {tt.elem_type}")
        dims = [d.dim_param if d.HasField("dim_param") else d.dim_value for d in tt.shape.dim]
        expect(dims == want["dims"], f"{what} dims {dims}, expected {want['dims']}")

    expect(len(g.input) == 1 and len(g.output) == 1, "one graph input and one output")
    io(g.input[0], exp["input"], "input")
    io(g.output[0], exp["output"], "output")

    def dq_of(name, what, axis):
        """The (levels, scale, zero point) initializers of the DequantizeLinear giving `name`."""
        n = producer.get(name)
        if not expect(n is not None and n.op_type == "DequantizeLinear", f"{what}: not a DQ"):
            return None
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
        expect(attrs.get("axis", 1) == axis if axis is not None else "axis" not in attrs,
               f"{what}: axis {attrs.get('axis')}, expected {axis}")
        return [init.get(i) for i in n.input]

    # The input quantizer: the first QuantizeLinear, fed by the input (or its Clip).
    q0 = next(n for n in g.node if n.op_type == "QuantizeLinear")
    same(init[q0.input[1]], exp["input_qparams"]["scale"], "input scale", np.float32)
    same(init[q0.input[2]], exp["input_qparams"]["zero_point"], "input zero point", np.uint8)

    fake_quant = exp.get("form") == "fake_quant"  # fq::OnnxForm::kFakeQuant
    layers = [n for n in g.node if n.op_type in ("Conv", "Gemm")]
    expect(len(layers) == len(exp["layers"]),
           f"{len(layers)} Conv/Gemm nodes, expected {len(exp['layers'])}")
    consumers = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    for k, (n, L) in enumerate(zip(layers, exp["layers"])):
        w = f"layer {k} ({n.op_type})"
        expect(n.op_type == L["op"], f"{w}: expected {L['op']}")
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
        for key, v in L["attrs"].items():
            expect(attrs.get(key) == v, f"{w}: attribute {key} = {attrs.get(key)}, expected {v}")
        levels = np.array(L["weight"], dtype=np.int8).reshape(L["weight_dims"])
        wq = dq_of(n.input[1], w + " weight", 0)
        if wq and fake_quant:  # float weights -> QuantizeLinear -> DequantizeLinear
            q = producer.get(producer[n.input[1]].input[0])
            if expect(q is not None and q.op_type == "QuantizeLinear", f"{w} weight: not Q -> DQ"):
                qa = {a.name: onnx.helper.get_attribute_value(a) for a in q.attribute}
                expect(qa.get("axis") == 0, f"{w} weight QuantizeLinear axis {qa.get('axis')}")
                expect(list(q.input[1:]) == list(producer[n.input[1]].input[1:]),
                       f"{w} weight: Q and DQ with other qparams")
                wf = init.get(q.input[0])
                ws = np.asarray(L["weight_scale"], dtype=np.float32).reshape(
                    [-1] + [1] * (levels.ndim - 1))
                if expect(wf is not None and wf.dtype == np.float32, f"{w}: no float weights"):
                    # On the grid: the levels times the scales, and Q gives the levels back.
                    same(wf, (levels.astype(np.float32) * ws).astype(np.float32),
                         w + " fake-quantized weights", np.float32)
                    same(np.rint(wf / ws).astype(np.int8), levels, w + " weight levels", np.int8)
                wq[0] = levels
        if wq:
            same(wq[0], levels, w + " weight levels", np.int8)
            same(wq[1], L["weight_scale"], w + " weight scales", np.float32)
            same(wq[2], np.zeros(len(L["weight_scale"])), w + " weight zero points", np.int8)
        if L["float_out"] or fake_quant:
            same(init.get(n.input[2]), L["real_bias"], w + " float bias", np.float32)
        if L["float_out"]:
            expect(n.output[0] == exp["output"]["name"], f"{w}: the float output is not the graph's")
            continue
        if fake_quant:
            bq = None
        else:
            bq = dq_of(n.input[2], w + " bias", 0)
        if bq:
            same(bq[0], L["bias"], w + " int32 bias", np.int32)
            same(bq[1], L["bias_scale"], w + " bias scales", np.float32)
            same(bq[2], np.zeros(len(L["bias"])), w + " bias zero points", np.int32)
        nxt = consumers[n.output[0]]
        expect(len(nxt) == 1, f"{w}: {len(nxt)} consumers")
        nxt = nxt[0]
        if L["clamp"] == "relu":
            expect(nxt.op_type == "Relu", f"{w}: {nxt.op_type} after it, expected Relu")
            nxt = consumers[nxt.output[0]][0]
        elif L["clamp"] is not None:
            if expect(nxt.op_type == "Clip", f"{w}: {nxt.op_type} after it, expected Clip"):
                same(init[nxt.input[1]], L["clamp"][0], w + " clip min", np.float32)
                same(init[nxt.input[2]], L["clamp"][1], w + " clip max", np.float32)
                nxt = consumers[nxt.output[0]][0]
        if expect(nxt.op_type == "QuantizeLinear", f"{w}: {nxt.op_type}, expected QuantizeLinear"):
            same(init[nxt.input[1]], L["out_scale"], w + " output scale", np.float32)
            same(init[nxt.input[2]], L["out_zero_point"], w + " output zero point", np.uint8)
    counts = {}
    for n in g.node:
        counts[n.op_type] = counts.get(n.op_type, 0) + 1
    for op, c in exp.get("op_counts", {}).items():
        expect(counts.get(op, 0) == c, f"{counts.get(op, 0)} {op} nodes, expected {c}")

    import importlib.util
    if importlib.util.find_spec("onnx.reference") is None:  # onnx >= 1.13
        print(f"note: onnx.reference is not in onnx {onnx.__version__} (Debian's python3-onnx): "
              "not run here (ONNX Runtime runs the models)")
        return
    from onnx.reference import ReferenceEvaluator
    x = np.zeros([2] + [d for d in exp["input"]["dims"][1:]], dtype=np.float32)
    y = ReferenceEvaluator(m).run(None, {exp["input"]["name"]: x})[0]
    expect(list(y.shape) == [2] + exp["output"]["dims"][1:], f"reference output shape {y.shape}")


def main():
    if sys.argv[1] == "--probe":
        path, expfile = sys.argv[2], sys.argv[3]
        with open(expfile) as f:
            check_probe(path, json.load(f))
    else:
        path, expfile = sys.argv[1], sys.argv[2]
        with open(expfile) as f:
            check_model(path, json.load(f))
    for e in errors:
        print(f"{path}: {e}")
    print(f"{path}: {'OK' if not errors else f'{len(errors)} mismatches'} (onnx {onnx.__version__})")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
