#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Writes tests/golden/torch_golden_data.hpp: golden vectors from PyTorch 1.13.

Run with Debian's python3-torch:  /usr/bin/python3 tests/golden/gen_golden.py
The output is committed, so the tests never need torch. Values are stored as IEEE bit
patterns (hex), so they survive any printing or parsing rounding.

Cases:
  * fake_quantize_per_tensor_affine on float32 and float64: ties, bounds, NaN/Inf, random
    data over many (scale, zero point, range) choices; the mask is the STE gradient of a
    ones upstream gradient (x.grad != 0), i.e. ATen's cachemask.
  * fake_quantize_per_channel_affine (float32) on several ranks and axes, int32 and float
    zero points.
  * torch.ao.quantization observers (MinMax, MovingAverage, and their per-channel forms):
    min/max state and calculate_qparams() after each of three batches.
  * Added for issue 12: float zero points at points chosen so that x * f32(1/s) + z lies
    within a few ulps of a .5 boundary (interior and at the clip edges), where ATen's fused
    (AVX2 / AVX-512) and unfused (default capability) kernels round to different levels;
    signs of zero (float zero point +-0.0 and x * f32(1/s) in [-0.5, 0)); ranges beyond
    float32's exact integers, up to int32's, per tensor (float32, float64) and per channel.

Every fake-quant case is evaluated three times: here (this machine's default ATen dispatch,
AVX2: fq::TorchNumerics), and in child processes with ATEN_CPU_CAPABILITY=default (ATen's
scalar kernel: fq::TorchNumericsNoFma; stored as the *_y0/*_m0 arrays) and
ATEN_CPU_CAPABILITY=avx512 (checked to equal the AVX2 results, not stored). float64 cases
store no default-capability results: that kernel sends +Inf to quant_min, the vectorized
ones to quant_max, and fakequant follows the vectorized dispatch.
"""
import os
import pickle
import struct
import subprocess
import sys

import torch
from torch.ao.quantization import observer as obs

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "torch_golden_data.hpp")
torch.manual_seed(20261124)


def f32_bits(t):
    return [struct.unpack("<I", struct.pack("<f", v))[0] for v in t.reshape(-1).tolist()]


def f64_bits(t):
    return [struct.unpack("<Q", struct.pack("<d", v))[0] for v in t.reshape(-1).tolist()]


def arr(ctype, name, values, fmt):
    body = ", ".join(fmt(v) for v in values) if values else ""
    return f"inline const {ctype} {name}[] = {{{body}}};\n"


hex32 = lambda v: f"0x{v:08x}u"
hex64 = lambda v: f"0x{v:016x}ull"


def evaluate(c):
    """Runs one fake-quant case dict with torch: (y values, mask list)."""
    if c["kind"] == "pt":
        dtype = torch.float32 if c["bits"] == 32 else torch.float64
        x = torch.tensor(c["x"], dtype=dtype).requires_grad_(True)
        y = torch.fake_quantize_per_tensor_affine(x, c["scale"], c["zp"], c["qmin"], c["qmax"])
    else:
        x = torch.tensor(c["x"], dtype=torch.float32).reshape(c["shape"]).requires_grad_(True)
        scale = torch.tensor(c["scale"], dtype=torch.float32)
        if c["float_zp"]:
            zp = torch.tensor(c["zp"], dtype=torch.float32)
        else:
            zp = torch.tensor(c["zp"], dtype=torch.int32)
        y = torch.fake_quantize_per_channel_affine(x, scale, zp, c["axis"], c["qmin"], c["qmax"])
    y.backward(torch.ones_like(y))
    return (y.detach().reshape(-1).tolist(),
            (x.grad != 0).to(torch.uint8).reshape(-1).tolist())


if len(sys.argv) == 3 and sys.argv[1] == "--eval":  # child: another ATEN_CPU_CAPABILITY
    with open(sys.argv[2], "rb") as f:
        fq_cases = pickle.load(f)
    with open(sys.argv[2], "wb") as f:
        pickle.dump([evaluate(c) for c in fq_cases], f)
    sys.exit(0)


out = []
per_tensor = []
per_channel = []
observers = []

fq_cases = []  # per-tensor and per-channel specs, evaluated after all are made


# ---------------------------------------------------------------- per-tensor
def per_tensor_case(name, x, scale, zp, qmin, qmax):
    bits = 32 if x.dtype == torch.float32 else 64
    # scale as the exact float32 value ATen uses (it narrows the double argument).
    s32 = struct.unpack("<f", struct.pack("<f", scale))[0]
    fq_cases.append(dict(kind="pt", name=name, bits=bits, x=x.reshape(-1).tolist(), scale=s32,
                         zp=int(zp), qmin=int(qmin), qmax=int(qmax)))


ranges = [(0, 255), (-128, 127), (0, 127), (-64, 63), (-8, 7), (0, 15), (-2, 1), (-32768, 32767)]
for dtype in (torch.float32, torch.float64):
    tag = "f32" if dtype == torch.float32 else "f64"
    per_tensor_case(f"P1 ties {tag}", torch.tensor([.5, 1.5, 2.5, -.5, -1.5, -2.5], dtype=dtype),
                    1.0, 0, -128, 127)
    per_tensor_case(f"P3 bounds {tag}", torch.tensor([-129, -128.5, 127.4, 127.5], dtype=dtype),
                    1.0, 0, -128, 127)
    per_tensor_case(f"P5 nonfinite {tag}",
                    torch.tensor([float("nan"), float("inf"), -float("inf"), 1e30, -1e30],
                                 dtype=dtype), 0.5, 10, 0, 255)
    per_tensor_case(f"P4 0.1 {tag}", torch.tensor([0.1, 0.2, 0.3, -0.1], dtype=dtype),
                    0.1, 0, -128, 127)
    for k, (qmin, qmax) in enumerate(ranges):
        for scale in (0.05, 0.1, 0.0123, 3.0):
            zp = max(qmin, min(qmax, (qmin + qmax) // 2 + k - 3))
            x = torch.randn(97, dtype=torch.float64) * scale * (qmax - qmin) / 5
            per_tensor_case(f"random {tag} [{qmin},{qmax}] s={scale} z={zp}", x.to(dtype),
                            scale, zp, qmin, qmax)
    # Points at and one float ulp around level midpoints: the tie rule and x*f32(1/s).
    s = 0.1
    mids = torch.arange(-20, 20, dtype=torch.float64) + 0.5
    base = (mids * s).to(dtype)
    nxt = torch.nextafter(base, torch.full_like(base, float("inf")))
    prv = torch.nextafter(base, torch.full_like(base, -float("inf")))
    per_tensor_case(f"midpoints {tag}", torch.cat([base, nxt, prv]), s, 3, -128, 127)

# ---------------------------------------------------------------- per-channel
def per_channel_spec(name, x, scale, zp, axis, qmin, qmax, float_zp):
    fq_cases.append(dict(kind="pc", name=name, shape=list(x.shape), x=x.reshape(-1).tolist(),
                         scale=[float(v) for v in scale.tolist()],
                         zp=[float(v) if float_zp else int(v) for v in zp.tolist()],
                         axis=axis, qmin=int(qmin), qmax=int(qmax), float_zp=float_zp))


def per_channel_case(name, shape, axis, qmin, qmax, float_zp):
    ch = shape[axis]
    x = torch.randn(*shape) * 2
    scale = (torch.rand(ch) * 0.2 + 0.01).to(torch.float32)
    if float_zp:
        zp = (torch.rand(ch) * (qmax - qmin) + qmin).to(torch.float32)
        zp[0] = 3.0
        zp[-1] = 0.5
    else:
        zp = torch.randint(qmin, qmax + 1, (ch,), dtype=torch.int32)
    per_channel_spec(name, x, scale, zp, axis, qmin, qmax, float_zp)


for float_zp in (False, True):
    for shape, axis in (([4, 5], 0), ([3, 4, 5], 1), ([2, 3, 4, 6], 1), ([2, 3, 4, 6], 3),
                        ([2, 6, 3], 2), ([5, 7], 1)):
        for qmin, qmax in ((-128, 127), (0, 255), (-8, 7)):
            per_channel_case(f"shape {shape} axis {axis} [{qmin},{qmax}] float_zp={float_zp}",
                             shape, axis, qmin, qmax, float_zp)

# ---------------------------------------------------------------- observers
def observer_case(kind, dtype, qscheme, shape, ch_axis=0, reduce_range=False, custom=None,
                  c=0.01):
    idx = len(observers)
    cls = getattr(obs, kind)
    kw = dict(dtype=dtype, qscheme=qscheme, reduce_range=reduce_range)
    if custom:
        kw.update(quant_min=custom[0], quant_max=custom[1])
    if "PerChannel" in kind:
        kw["ch_axis"] = ch_axis
    if "MovingAverage" in kind:
        kw["averaging_constant"] = c
    o = cls(**kw)
    steps = []
    for k in range(3):
        x = torch.randn(*shape) * (1 + k) + (0.5 * k - 0.3)
        if k == 1 and "symmetric" in str(qscheme):
            x = x.abs() + 0.1  # all-positive data
        o(x)
        s, z = o.calculate_qparams()
        s = s.reshape(-1).to(torch.float32)
        z = z.reshape(-1)
        mn = o.min_val.reshape(-1).to(torch.float32)
        mx = o.max_val.reshape(-1).to(torch.float32)
        tag = f"ob{idx}_{k}"
        out.append(arr("std::uint32_t", f"{tag}_x", f32_bits(x), hex32))
        out.append(arr("std::uint32_t", f"{tag}_mn", f32_bits(mn), hex32))
        out.append(arr("std::uint32_t", f"{tag}_mx", f32_bits(mx), hex32))
        out.append(arr("std::uint32_t", f"{tag}_s", f32_bits(s), hex32))
        out.append(arr("std::int32_t", f"{tag}_z", [int(v) for v in z.tolist()], str))
        steps.append(f"{{{x.numel()}, {tag}_x, {s.numel()}, {tag}_mn, {tag}_mx, {tag}_s, {tag}_z}}")
    qmin, qmax = o.quant_min, o.quant_max
    if reduce_range and not custom:  # the range calculate_qparams really used
        qmin, qmax = (0, 127) if dtype == torch.quint8 else (-64, 63)
    dims = ", ".join(str(d) for d in list(shape) + [1] * (4 - len(shape)))
    name = f"{kind} {dtype} {qscheme} rr={reduce_range} custom={custom} shape={shape}"
    dt = str(dtype).replace("torch.", "")
    qs = str(qscheme).replace("torch.", "")
    observers.append(
        f'{{"{name}", "{kind}", "{qs}", "{dt}", {qmin}, {qmax}, {str(bool(custom)).lower()}, '
        f"{c!r}, {ch_axis}, {len(shape)}, {{{dims}}}, 3, {{{', '.join(steps)}}}}}")


for kind in ("MinMaxObserver", "MovingAverageMinMaxObserver"):
    for dtype, qs, rr, custom in ((torch.quint8, torch.per_tensor_affine, False, None),
                                  (torch.quint8, torch.per_tensor_affine, True, None),
                                  (torch.qint8, torch.per_tensor_affine, False, None),
                                  (torch.qint8, torch.per_tensor_symmetric, False, None),
                                  (torch.quint8, torch.per_tensor_symmetric, False, None),
                                  (torch.qint8, torch.per_tensor_symmetric, True, None),
                                  (torch.quint8, torch.per_tensor_affine, False, (0, 127)),
                                  (torch.quint8, torch.per_tensor_symmetric, False, (0, 15))):
        observer_case(kind, dtype, qs, [6, 7], reduce_range=rr, custom=custom)
for kind in ("PerChannelMinMaxObserver", "MovingAveragePerChannelMinMaxObserver"):
    for dtype, qs in ((torch.quint8, torch.per_channel_affine),
                      (torch.qint8, torch.per_channel_affine),
                      (torch.qint8, torch.per_channel_symmetric)):
        for shape, axis in (([4, 6], 0), ([2, 3, 4], 1), ([3, 5], 1)):
            observer_case(kind, dtype, qs, shape, ch_axis=axis)

# ---------------------------------------------------------------- issue 12 additions
f32 = lambda v: struct.unpack("<f", struct.pack("<f", v))[0]


def around(v, ulps):
    """float32 values from v - ulps to v + ulps ulps (v a float32 tensor of one element)."""
    vals = []
    for step in range(-ulps, ulps + 1):
        w = v.clone()
        direction = torch.tensor([float("inf") if step > 0 else -float("inf")])
        for _ in range(abs(step)):
            w = torch.nextafter(w, direction)
        vals.append(w.item())
    return vals


def straddle_x(s, z, levels, ulps=6):
    """x near the points where x * f32(1/s) + z = level + 0.5 for each level."""
    xs = []
    for k in levels:
        b = torch.tensor([(k + 0.5 - z) * s], dtype=torch.float32)
        xs += around(b, ulps)
    return xs


# Float zero points, fused against unfused: one channel per (scale, zero point), x chosen
# around .5 boundaries inside the range and at both clip edges (mask and dx differ there).
for qmin, qmax in ((-128, 127), (0, 255), (-8, 7), (-32768, 32767)):
    chans = [(0.1, 3.3), (0.037, -4.25), (0.0123, 0.5), (0.3, 1.7), (1e-3, -2.9), (0.77, 0.1)]
    rows = []
    for s_, z_ in chans:
        s_, z_ = f32(s_), f32(z_)
        levels = [qmin - 1, qmin, qmin + 1, -3, -1, 0, 1, 2, qmax - 1, qmax, qmax + 1]
        rows.append(straddle_x(s_, z_, [lv - round(z_) for lv in levels] + levels))
    n = min(len(r) for r in rows)
    x = torch.tensor([r[:n] for r in rows], dtype=torch.float32)
    scale = torch.tensor([f32(c[0]) for c in chans], dtype=torch.float32)
    zp = torch.tensor([f32(c[1]) for c in chans], dtype=torch.float32)
    per_channel_spec(f"float zp straddle [{qmin},{qmax}]", x, scale, zp, 0, qmin, qmax, True)
    # the same along the innermost axis (a run walks the channels) and one channel alone
    per_channel_spec(f"float zp straddle [{qmin},{qmax}] axis 1", x.t().contiguous(), scale, zp,
                     1, qmin, qmax, True)
    per_channel_spec(f"float zp straddle [{qmin},{qmax}] one channel", x[:1], scale[:1], zp[:1],
                     0, qmin, qmax, True)

# Signs of zero: x * f32(1/s) in [-0.5, 0), x = -0.0, with float zero points +0.0 and -0.0 and
# an int zero point 0; per tensor (float, double) with int zero point 0.
zero_x = [-0.0, 0.0, -1e-30, -0.01, -0.049, -0.05, -0.0500001, 0.01, -0.3, 0.3, -0.5]
zx = torch.tensor([zero_x, zero_x, zero_x], dtype=torch.float32)
per_channel_spec("signs of zero float zp", zx, torch.tensor([0.1, 1.0, 0.1]),
                 torch.tensor([0.0, -0.0, 0.5]), 0, -128, 127, True)
per_channel_spec("signs of zero float zp [0,255]", zx, torch.tensor([0.1, 1.0, 0.1]),
                 torch.tensor([0.0, -0.0, 0.0]), 0, 0, 255, True)
per_channel_spec("signs of zero int zp", zx, torch.tensor([0.1, 1.0, 0.1]),
                 torch.tensor([0, 0, 0], dtype=torch.int32), 0, -128, 127, False)
for dtype in (torch.float32, torch.float64):
    per_tensor_case(f"signs of zero {dtype}", torch.tensor(zero_x, dtype=dtype), 0.1, 0, -128, 127)
    per_tensor_case(f"signs of zero [0,255] {dtype}", torch.tensor(zero_x, dtype=dtype), 0.1, 0,
                    0, 255)

# Ranges beyond float32's exact integers (level count > 2^24, up to int32).
wide = [(-2**24, 2**24), (-2**31, 2**31 - 1), (0, 2**31 - 1), (-2**31, 0), (-2**25 + 1, 2**25 - 1),
        (-2**24 - 3, 2**24 - 5), (-100, 2**24 + 7)]
for qmin, qmax in wide:
    span = qmax - qmin
    for scale in (1.0, 0.37, 1e-3, 3.0):
        for zp in (qmin, qmax, 0 if qmin <= 0 <= qmax else qmin, qmin + span // 3 + 1):
            # levels near both ends and across the range, in x units; NaN and infinities
            lv = [qmin - 2, qmin - 1, qmin, qmin + 1, qmin + 3, qmax - 3, qmax - 1, qmax, qmax + 1,
                  qmax + 2, 2**24 - 1, 2**24 + 1, -(2**24) - 1, 2**25 + 3, 0, 1, -1]
            xs = [(k - zp) * scale for k in lv] + [(k - zp + 0.5) * scale for k in lv[:6]]
            xs += (torch.rand(40, dtype=torch.float64) * 1.2 - 0.1).mul(span).add(qmin - zp)\
                .mul(scale).tolist()
            xs += [float("nan"), float("inf"), -float("inf"), 3e38, -3e38]
            for dtype in (torch.float32, torch.float64):
                per_tensor_case(f"wide [{qmin},{qmax}] s={scale} z={zp} {dtype}",
                                torch.tensor(xs, dtype=dtype), scale, zp, qmin, qmax)
    # per channel: int and float zero points, one channel per scale
    rows, zi = [], []
    for k, scale in enumerate((1.0, 0.37, 1e-3)):
        zp = (qmin, qmax, qmin + span // 3 + 1)[k]
        zi.append(zp)
        rows.append(((torch.rand(48, dtype=torch.float64) * 1.2 - 0.1) * span + (qmin - zp))
                    .mul(scale).tolist() + [(qmax - zp) * scale, (qmin - zp) * scale])
    x = torch.tensor(rows, dtype=torch.float32)
    sc = torch.tensor([1.0, 0.37, 1e-3], dtype=torch.float32)
    per_channel_spec(f"wide [{qmin},{qmax}] int zp", x, sc, torch.tensor(zi, dtype=torch.int32),
                     0, qmin, qmax, False)
    per_channel_spec(f"wide [{qmin},{qmax}] float zp", x, sc,
                     torch.tensor([float(v) + 0.25 for v in zi], dtype=torch.float32), 0, qmin,
                     qmax, True)

# ---------------------------------------------------------------- evaluation
main_results = [evaluate(c) for c in fq_cases]


def eval_child(capability):
    tmp = OUT + f".{capability}.tmp.pkl"
    with open(tmp, "wb") as f:
        pickle.dump(fq_cases, f)
    env = dict(os.environ, ATEN_CPU_CAPABILITY=capability)
    subprocess.run([sys.executable, os.path.abspath(__file__), "--eval", tmp], env=env, check=True)
    with open(tmp, "rb") as f:
        res = pickle.load(f)
    os.remove(tmp)
    return res


def same(a, b):
    return [struct.pack("<d", v) for v in a] == [struct.pack("<d", v) for v in b]


default_results = eval_child("default")
avx512_results = eval_child("avx512")
n_diff = {"default": 0, "avx512": 0}
for c, r, r0, r5 in zip(fq_cases, main_results, default_results, avx512_results):
    if not (same(r[0], r5[0]) and r[1] == r5[1]):
        n_diff["avx512"] += 1
        print(f"note: AVX-512 differs from AVX2 in {c['name']}", file=sys.stderr)
    if not (same(r[0], r0[0]) and r[1] == r0[1]):
        n_diff["default"] += 1
assert n_diff["avx512"] == 0, "the AVX-512 and AVX2 kernels differ: store both"
straddles = sum(1 for c, r, r0 in zip(fq_cases, main_results, default_results)
                for a, b in zip(r[0], r0[0]) if c.get("float_zp") and struct.pack("<d", a) !=
                struct.pack("<d", b))
assert straddles >= 20, f"only {straddles} fused/unfused straddles"
print(f"default capability differs in {n_diff['default']} cases; {straddles} float-zero-point "
      f"values differ between fused and unfused", file=sys.stderr)

for idx, (c, r, r0) in enumerate(zip(fq_cases, main_results, default_results)):
    tag = "pt" if c["kind"] == "pt" else "pc"
    if c["kind"] == "pt":
        bits = c["bits"]
        if bits == 32:
            conv = lambda v: f32_bits(torch.tensor(v, dtype=torch.float32))
            ctype, fmt = "std::uint32_t", hex32
        else:
            conv = lambda v: f64_bits(torch.tensor(v, dtype=torch.float64))
            ctype, fmt = "std::uint64_t", hex64
        out.append(arr(ctype, f"pt{idx}_x", conv(c["x"]), fmt))
        out.append(arr(ctype, f"pt{idx}_y", conv(r[0]), fmt))
        out.append(arr("std::uint8_t", f"pt{idx}_m", r[1], str))
        y0 = m0 = "nullptr"
        if bits == 32:
            out.append(arr(ctype, f"pt{idx}_y0", conv(r0[0]), fmt))
            out.append(arr("std::uint8_t", f"pt{idx}_m0", r0[1], str))
            y0, m0 = f"pt{idx}_y0", f"pt{idx}_m0"
        per_tensor.append(
            f'{{"{c["name"]}", {bits}, {len(c["x"])}, pt{idx}_x, pt{idx}_y, pt{idx}_m, {y0}, {m0}, '
            f'{c["scale"]!r}, {c["zp"]}, {c["qmin"]}, {c["qmax"]}}}')
    else:
        conv = lambda v: f32_bits(torch.tensor(v, dtype=torch.float32))
        out.append(arr("std::uint32_t", f"pc{idx}_x", conv(c["x"]), hex32))
        out.append(arr("std::uint32_t", f"pc{idx}_y", conv(r[0]), hex32))
        out.append(arr("std::uint8_t", f"pc{idx}_m", r[1], str))
        out.append(arr("std::uint32_t", f"pc{idx}_y0", conv(r0[0]), hex32))
        out.append(arr("std::uint8_t", f"pc{idx}_m0", r0[1], str))
        out.append(arr("std::uint32_t", f"pc{idx}_s", conv(c["scale"]), hex32))
        if c["float_zp"]:
            out.append(arr("std::uint32_t", f"pc{idx}_zf", conv(c["zp"]), hex32))
            zi, zf = "nullptr", f"pc{idx}_zf"
        else:
            out.append(arr("std::int32_t", f"pc{idx}_zi", c["zp"], str))
            zi, zf = f"pc{idx}_zi", "nullptr"
        shape = c["shape"]
        n = 1
        for d in shape:
            n *= d
        dims = ", ".join(str(d) for d in list(shape) + [1] * (4 - len(shape)))
        per_channel.append(
            f'{{"{c["name"]}", {len(shape)}, {{{dims}}}, {n}, pc{idx}_x, pc{idx}_y, pc{idx}_m, '
            f'pc{idx}_y0, pc{idx}_m0, pc{idx}_s, {shape[c["axis"]]}, {c["axis"]}, '
            f'{str(c["float_zp"]).lower()}, {zi}, {zf}, {c["qmin"]}, {c["qmax"]}}}')

HEADER = """// SPDX-License-Identifier: MIT
// Generated by tests/golden/gen_golden.py with PyTorch {ver}; do not edit.
#ifndef FQ_TESTS_GOLDEN_TORCH_GOLDEN_DATA_HPP_
#define FQ_TESTS_GOLDEN_TORCH_GOLDEN_DATA_HPP_

#include <cstdint>

namespace fq_golden {{

struct PerTensorCase {{
  const char* name;
  int dtype_bits;  // 32: float, 64: double
  std::int64_t n;
  const void* x_bits;
  const void* y_bits;
  const std::uint8_t* mask;
  const void* y0_bits;        // ATEN_CPU_CAPABILITY=default (float32 cases only, else null)
  const std::uint8_t* mask0;  // its mask
  double scale;
  std::int64_t zero_point;
  std::int64_t quant_min, quant_max;
}};

struct PerChannelCase {{
  const char* name;
  int rank;
  std::int64_t shape[4];
  std::int64_t n;
  const std::uint32_t* x_bits;
  const std::uint32_t* y_bits;
  const std::uint8_t* mask;
  const std::uint32_t* y0_bits;  // ATEN_CPU_CAPABILITY=default (ATen's scalar kernel)
  const std::uint8_t* mask0;     // its mask
  const std::uint32_t* scale_bits;
  std::int64_t channels;
  int axis;
  bool zero_point_is_float;
  const std::int32_t* zero_point_int;
  const std::uint32_t* zero_point_float_bits;
  std::int64_t quant_min, quant_max;
}};

struct ObserverStep {{
  std::int64_t n;
  const std::uint32_t* x_bits;
  std::int64_t channels;
  const std::uint32_t* min_bits;
  const std::uint32_t* max_bits;
  const std::uint32_t* scale_bits;
  const std::int32_t* zero_point;
}};

struct ObserverCase {{
  const char* name;
  const char* observer;
  const char* qscheme;
  const char* dtype;
  std::int64_t quant_min, quant_max;
  bool has_custom_range;
  double averaging_constant;
  int ch_axis;
  int rank;
  std::int64_t shape[4];
  int steps;
  ObserverStep step[3];
}};

"""

with open(OUT, "w") as f:
    f.write(HEADER.format(ver=torch.__version__))
    f.write("// clang-format off\n")
    f.writelines(out)
    f.write("\ninline const PerTensorCase kPerTensorCases[] = {\n  " + ",\n  ".join(per_tensor)
            + "};\n")
    f.write("inline const PerChannelCase kPerChannelCases[] = {\n  " + ",\n  ".join(per_channel)
            + "};\n")
    f.write("inline const ObserverCase kObserverCases[] = {\n  " + ",\n  ".join(observers)
            + "};\n")
    f.write("// clang-format on\n\n}  // namespace fq_golden\n\n"
            "#endif  // FQ_TESTS_GOLDEN_TORCH_GOLDEN_DATA_HPP_\n")
print(f"wrote {OUT}: {len(per_tensor)} per-tensor, {len(per_channel)} per-channel, "
      f"{len(observers)} observer cases", file=sys.stderr)
