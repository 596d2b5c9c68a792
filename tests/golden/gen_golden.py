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
"""
import os
import struct
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


def mask_of(fn, x):
    x = x.clone().requires_grad_(True)
    y = fn(x)
    y.backward(torch.ones_like(y))
    return y.detach(), (x.grad != 0).to(torch.uint8).reshape(-1).tolist()


out = []
per_tensor = []
per_channel = []
observers = []

# ---------------------------------------------------------------- per-tensor
def per_tensor_case(name, x, scale, zp, qmin, qmax):
    idx = len(per_tensor)
    fn = lambda t: torch.fake_quantize_per_tensor_affine(t, scale, zp, qmin, qmax)
    y, mask = mask_of(fn, x)
    if x.dtype == torch.float32:
        out.append(arr("std::uint32_t", f"pt{idx}_x", f32_bits(x), hex32))
        out.append(arr("std::uint32_t", f"pt{idx}_y", f32_bits(y), hex32))
        bits = 32
    else:
        out.append(arr("std::uint64_t", f"pt{idx}_x", f64_bits(x), hex64))
        out.append(arr("std::uint64_t", f"pt{idx}_y", f64_bits(y), hex64))
        bits = 64
    out.append(arr("std::uint8_t", f"pt{idx}_m", mask, str))
    # scale as the exact float32 value ATen uses (it narrows the double argument).
    s32 = struct.unpack("<f", struct.pack("<f", scale))[0]
    per_tensor.append(
        f'{{"{name}", {bits}, {x.numel()}, pt{idx}_x, pt{idx}_y, pt{idx}_m, {s32!r}, {zp}, '
        f"{qmin}, {qmax}}}")


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
def per_channel_case(name, shape, axis, qmin, qmax, float_zp):
    idx = len(per_channel)
    ch = shape[axis]
    x = torch.randn(*shape) * 2
    scale = (torch.rand(ch) * 0.2 + 0.01).to(torch.float32)
    if float_zp:
        zp = (torch.rand(ch) * (qmax - qmin) + qmin).to(torch.float32)
        zp[0] = 3.0
        zp[-1] = 0.5
    else:
        zp = torch.randint(qmin, qmax + 1, (ch,), dtype=torch.int32)
    fn = lambda t: torch.fake_quantize_per_channel_affine(t, scale, zp, axis, qmin, qmax)
    y, mask = mask_of(fn, x)
    out.append(arr("std::uint32_t", f"pc{idx}_x", f32_bits(x), hex32))
    out.append(arr("std::uint32_t", f"pc{idx}_y", f32_bits(y), hex32))
    out.append(arr("std::uint8_t", f"pc{idx}_m", mask, str))
    out.append(arr("std::uint32_t", f"pc{idx}_s", f32_bits(scale), hex32))
    if float_zp:
        out.append(arr("std::uint32_t", f"pc{idx}_zf", f32_bits(zp), hex32))
        zi, zf = "nullptr", f"pc{idx}_zf"
    else:
        out.append(arr("std::int32_t", f"pc{idx}_zi", zp.tolist(), str))
        zi, zf = f"pc{idx}_zi", "nullptr"
    dims = ", ".join(str(d) for d in list(shape) + [1] * (4 - len(shape)))
    per_channel.append(
        f'{{"{name}", {len(shape)}, {{{dims}}}, {x.numel()}, pc{idx}_x, pc{idx}_y, pc{idx}_m, '
        f"pc{idx}_s, {ch}, {axis}, {str(float_zp).lower()}, {zi}, {zf}, {qmin}, {qmax}}}")


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
