#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Writes tests/golden/transformer_golden_data.hpp: golden vectors of the transformer tape ops
(ops/norm.hpp, ops/activation.hpp, ops/softmax.hpp, ops/distill.hpp), computed with PyTorch 1.13.

Run with Debian's python3-torch:  /usr/bin/python3 tests/golden/gen_transformer_golden.py
The output is committed, so the tests never need torch. Values are stored as IEEE bit patterns.

Each case holds float32 inputs, an upstream gradient dy (1 for the scalar losses), and two sets
of results: the op evaluated by PyTorch in float64 on the same float32 inputs, rounded to
float32 ("ref": PyTorch's formula, exactly), and by PyTorch in float32 ("torch32": what a float32
PyTorch model computes). The C++ test requires the first within a tight tolerance and the second
within it too, or at least as close to "ref" as PyTorch's float32 result is (PyTorch's float32
layer_norm and log_softmax lose accuracy on rows offset by 1e4 or scaled by 80, where
fakequant's double statistics and ordered subtractions do not).

Cases: layer_norm with and without gamma / beta (F.layer_norm), rms_norm (PyTorch 2.4's
F.rms_norm, written in torch ops: F.rms_norm does not exist in 1.13), gelu approximate='none'
and 'tanh' for |x| up to 10, silu down to x = -100, softmax and log_softmax along several
axes, kd_kl_div (T^2 * F.kl_div(F.log_softmax(s/T), F.softmax(t/T), reduction='batchmean'))
and distillation_loss (alpha * kd + (1 - alpha) * F.cross_entropy). Adversarial rows: x * 80,
1e4 offsets (with a spread of 1 and of 0.01), a constant row (variance 0), an all-zero row for
rms_norm, -inf entries for softmax and the teacher.
"""
import math
import os
import struct

import torch
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "transformer_golden_data.hpp")
torch.manual_seed(20261206)

OPS = ["kLayerNorm", "kRmsNorm", "kGelu", "kGeluTanh", "kSilu", "kSoftmax", "kLogSoftmax",
       "kKdKlDiv", "kDistill"]


def rms_norm(x, weight, eps):
    """PyTorch 2.4 torch.nn.functional.rms_norm (the composite: x * rsqrt(mean(x^2) + eps) * w)."""
    y = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
    return y * weight if weight is not None else y


def run(op, args, dtype):
    """Evaluates a case in `dtype`; returns (y, {input name: gradient})."""
    t = {k: (v.to(dtype).clone().requires_grad_(k in args["diff"]) if torch.is_tensor(v) and
             v.is_floating_point() else v) for k, v in args.items() if k != "diff"}
    x = t["x"]
    if op == "kLayerNorm":
        y = F.layer_norm(x, (x.shape[-1],), t.get("gamma"), t.get("beta"), args["eps"])
    elif op == "kRmsNorm":
        y = rms_norm(x, t.get("gamma"), args["eps"])
    elif op == "kGelu":
        y = F.gelu(x, approximate="none")
    elif op == "kGeluTanh":
        y = F.gelu(x, approximate="tanh")
    elif op == "kSilu":
        y = F.silu(x)
    elif op == "kSoftmax":
        y = F.softmax(x, dim=args["axis"])
    elif op == "kLogSoftmax":
        y = F.log_softmax(x, dim=args["axis"])
    else:
        temp, teacher = args["temperature"], t["teacher"].detach()
        kd = temp * temp * F.kl_div(F.log_softmax(x / temp, dim=1), F.softmax(teacher / temp, dim=1),
                                    reduction="batchmean")
        if op == "kKdKlDiv":
            y = kd
        else:
            alpha = args["alpha"]
            y = alpha * kd + (1 - alpha) * F.cross_entropy(x, args["labels"].long())
    dy = args["dy"].to(dtype)
    y.backward(dy.reshape(y.shape))
    grads = {k: t[k].grad for k in args["diff"]}
    return y.detach(), grads


CASES = []


def case(name, op, x, diff=("x",), dy=None, **kw):
    args = dict(x=x, diff=list(diff), **kw)
    if dy is None:
        n_out = 1 if op in ("kKdKlDiv", "kDistill") else x.numel()
        dy = torch.ones(1) if n_out == 1 else torch.randn(n_out)
    args["dy"] = dy.float()
    ref_y, ref_g = run(op, args, torch.float64)
    y32, g32 = run(op, args, torch.float32)
    CASES.append(dict(name=name, op=op, args=args, ref_y=ref_y.float(), y32=y32,
                      ref_g={k: v.float() for k, v in ref_g.items()}, g32=g32))


def rows_ln(n_rows, d):
    """Random rows followed by the adversarial ones."""
    x = torch.randn(n_rows, d)
    x[n_rows - 4] = torch.randn(d) * 80
    x[n_rows - 3] = 1e4 + torch.randn(d)
    x[n_rows - 2] = 3.7
    x[n_rows - 1] = 1e4 + 0.01 * torch.randn(d)
    return x


# layer_norm
d = 37
x = rows_ln(7, d)
case("layer_norm affine [7, 37]", "kLayerNorm", x, ("x", "gamma", "beta"),
     gamma=1 + 0.1 * torch.randn(d), beta=0.1 * torch.randn(d), eps=1e-5)
x = rows_ln(6, 24).reshape(2, 3, 24)
case("layer_norm plain [2, 3, 24]", "kLayerNorm", x, eps=1e-5)
x = torch.randn(3, 20) * 2 + 1
case("layer_norm gamma only, eps 1e-3", "kLayerNorm", x, ("x", "gamma"),
     gamma=1 + 0.2 * torch.randn(20), eps=1e-3)
case("layer_norm beta only", "kLayerNorm", x, ("x", "beta"), beta=torch.randn(20), eps=1e-5)
x = torch.randn(4, 256)
x[3] = x[3] * 80 + 1e3
case("layer_norm affine [4, 256]", "kLayerNorm", x, ("x", "gamma", "beta"),
     gamma=1 + 0.1 * torch.randn(256), beta=0.1 * torch.randn(256), eps=1e-5)

# rms_norm
x = torch.randn(6, 37)
x[3] = torch.randn(37) * 80
x[4] = 1e4 + torch.randn(37)
x[5] = 0.0
case("rms_norm affine [6, 37]", "kRmsNorm", x, ("x", "gamma"), gamma=1 + 0.1 * torch.randn(37),
     eps=1e-6)
x = torch.randn(2, 3, 24) * 1e-3
case("rms_norm plain tiny [2, 3, 24], eps 1e-5", "kRmsNorm", x, eps=1e-5)

# gelu, silu
special = torch.tensor([0.0, -0.0, 1e-3, -1e-3, 1e-20, -5.9, -6.0, -3.0, -4.5, 4.5, 9.99, -9.99])
x = torch.cat([torch.linspace(-10, 10, 161), torch.randn(40) * 3, special])
case("gelu none", "kGelu", x)
case("gelu tanh", "kGeluTanh", x)
special = torch.tensor([-100.0, -90.0, -88.8, -88.0, -87.0, -50.0, -30.0, -17.0, 30.0, 50.0,
                        88.0, 100.0, 0.0, 1e-20])
x = torch.cat([torch.linspace(-20, 20, 81), torch.randn(40) * 3, special])
case("silu", "kSilu", x)

# softmax, log_softmax
x = torch.randn(7, 33) * 3
x[1] = torch.randn(33) * 80
x[2] = 1e4 + torch.randn(33) * 3
x[3] = -1e4 + torch.randn(33)
x[4] = 2.5
x[5, 3] = -math.inf
x[5, 17] = -math.inf
x[6] = torch.randn(33)
x[6, 5] = 80.0  # one dominant logit: the others underflow towards 0
for op, nm in (("kSoftmax", "softmax"), ("kLogSoftmax", "log_softmax")):
    case(nm + " last axis [7, 33] adversarial rows", op, x, axis=-1)
    xs = torch.randn(3, 5, 7) * 2
    for axis in (0, 1, 2, -2):
        case("%s [3, 5, 7] axis %d" % (nm, axis), op, xs, axis=axis)
    x4 = torch.randn(2, 3, 4, 5) * 2
    case(nm + " [2, 3, 4, 5] axis 1", op, x4, axis=1)
    xb = torch.randn(4, 6, 5)
    xb[1] = 1e4 + torch.randn(6, 5) * 3
    xb[2] = xb[2] * 80
    case(nm + " [4, 6, 5] axis 1 adversarial blocks", op, xb, axis=1)

# distillation
s = torch.randn(8, 10) * 2
t = torch.randn(8, 10) * 3
t2 = t.clone()
t2[0, 3] = -math.inf
t2[1] = torch.randn(10) * 80
s2 = s.clone()
s2[2] = torch.randn(10) * 80
labels = torch.randint(0, 10, (8,), dtype=torch.int32)
for temp in (1.0, 4.0):
    case("kd_kl_div T %g" % temp, "kKdKlDiv", s, teacher=t, temperature=temp)
case("kd_kl_div T 2 adversarial", "kKdKlDiv", s2, teacher=t2, temperature=2.0)
for temp, alpha in ((2.0, 0.5), (4.0, 0.9), (1.0, 0.0), (3.0, 1.0)):
    case("distillation_loss T %g alpha %g" % (temp, alpha), "kDistill", s2 if alpha == 0.9 else s,
         teacher=t2 if alpha == 0.9 else t, labels=labels, temperature=temp, alpha=alpha)


def bits(v):
    return struct.unpack("<I", struct.pack("<f", float(v)))[0]


def arr(lines, name, values, ctype="std::uint32_t"):
    if values is None:
        return "nullptr"
    vals = values.detach().reshape(-1).tolist()
    if ctype == "std::int32_t":
        body = ", ".join("%d" % int(v) for v in vals)
    else:
        body = ", ".join("0x%08xu" % bits(v) for v in vals)
    lines.append("inline const %s %s[] = {%s};" % (ctype, name, body))
    return name


lines = []
rows = []
for i, c in enumerate(CASES):
    a = c["args"]
    p = "c%d_" % i
    x = a["x"]
    shape = list(x.shape) + [0] * (4 - x.dim())
    refs = {k: arr(lines, p + k, a.get(k)) for k in ("x", "gamma", "beta", "teacher", "dy")}
    labels_name = arr(lines, p + "labels", a.get("labels"), "std::int32_t")
    out = {}
    for tag, y, g in (("ref", c["ref_y"], c["ref_g"]), ("t32", c["y32"], c["g32"])):
        out[tag] = [arr(lines, p + tag + "_y", y)] + [
            arr(lines, p + tag + "_d" + k, g.get(k)) for k in ("x", "gamma", "beta")]
    rows.append("    {\"%s\", Op::%s, %d, {%s}, %d, %sf, %sf, %sf, %s, %s, %s, %s, %s, %s, %d, %s, %s}," % (
        c["name"], c["op"], x.dim(), ", ".join(str(v) for v in shape), a.get("axis", -1),
        repr(float(a.get("eps", 0.0))), repr(float(a.get("temperature", 0.0))),
        repr(float(a.get("alpha", 0.0))), refs["x"], refs["gamma"], refs["beta"], refs["teacher"],
        labels_name, refs["dy"], c["ref_y"].numel(), "{" + ", ".join(out["ref"]) + "}",
        "{" + ", ".join(out["t32"]) + "}"))

with open(OUT, "w") as f:
    f.write("""// SPDX-License-Identifier: MIT
// Generated by tests/golden/gen_transformer_golden.py with PyTorch %s; do not edit.
#ifndef FQ_TESTS_GOLDEN_TRANSFORMER_GOLDEN_DATA_HPP_
#define FQ_TESTS_GOLDEN_TRANSFORMER_GOLDEN_DATA_HPP_

#include <cstdint>

namespace fq_transformer_golden {

// clang-format off
enum class Op { %s };

/// y and the gradients of x, gamma, beta (nullptr: not differentiated) as IEEE bits.
struct Result {
  const std::uint32_t* y;
  const std::uint32_t* dx;
  const std::uint32_t* dgamma;
  const std::uint32_t* dbeta;
};

struct Case {
  const char* name;
  Op op;
  int rank;
  std::int64_t shape[4];
  int axis;           // softmax, log_softmax
  float eps;          // layer_norm, rms_norm
  float temperature;  // kd_kl_div, distillation_loss
  float alpha;        // distillation_loss
  const std::uint32_t* x;        // the student logits for the losses
  const std::uint32_t* gamma;    // nullptr: none
  const std::uint32_t* beta;     // nullptr: none
  const std::uint32_t* teacher;  // the losses
  const std::int32_t* labels;    // distillation_loss
  const std::uint32_t* dy;       // upstream gradient (numel of y)
  std::int64_t y_numel;
  Result ref;    // PyTorch in float64 on the float32 inputs, rounded to float32
  Result t32;    // PyTorch in float32
};

%s

inline const Case kCases[] = {
%s
};
// clang-format on

}  // namespace fq_transformer_golden

#endif  // FQ_TESTS_GOLDEN_TRANSFORMER_GOLDEN_DATA_HPP_
""" % (torch.__version__, ", ".join(OPS), "\n".join(lines), "\n".join(rows)))
print("wrote", OUT, len(CASES), "cases")
