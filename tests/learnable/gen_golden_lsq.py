#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Writes tests/learnable/lsq_golden_data.hpp: LSQ golden vectors from PyTorch 1.13.

Run with Debian's python3-torch:  /usr/bin/python3 tests/learnable/gen_golden_lsq.py
The output is committed, so the tests never need torch. Values are IEEE float32 bit patterns.

Cases: torch._fake_quantize_learnable_per_tensor_affine and _per_channel_affine with a random
upstream gradient dy: y, dx (bit for bit) and d scale, d zero point (float sums) over ties,
bounds, half-integer and out-of-range zero points, non-finite inputs, points one ulp around
rounding boundaries, several ranges, scales and grad_factor values; the pins P7-P9 of
peer-numerics.md; 16-bit ranges over many channels; one element per tensor or per channel (each
gradient a single summand, compared bit for bit); signs of zero. Every case is evaluated twice: with this machine's default ATen CPU
kernel (AVX2, fused x*inv+zb: fq::LsqTorch) and in a child process with
ATEN_CPU_CAPABILITY=default (rounded twice: fq::LsqTorchNoFma).
"""
import os
import pickle
import struct
import subprocess
import sys

import torch

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lsq_golden_data.hpp")


def f32_bits(values):
    return [struct.unpack("<I", struct.pack("<f", v))[0] for v in values]


def run_case(c):
    """Evaluates one case dict with torch; returns (y, dx, ds, dz) as float lists."""
    x = torch.tensor(c["x"], dtype=torch.float32).reshape(c["shape"]).requires_grad_(True)
    dy = torch.tensor(c["dy"], dtype=torch.float32).reshape(c["shape"])
    s = torch.tensor(c["s"], dtype=torch.float32).requires_grad_(True)
    z = torch.tensor(c["z"], dtype=torch.float32).requires_grad_(True)
    if c["axis"] is None:
        y = torch._fake_quantize_learnable_per_tensor_affine(x, s, z, c["qmin"], c["qmax"],
                                                             c["g"])
    else:
        y = torch._fake_quantize_learnable_per_channel_affine(x, s, z, c["axis"], c["qmin"],
                                                              c["qmax"], c["g"])
    y.backward(dy)
    return (y.detach().reshape(-1).tolist(), x.grad.reshape(-1).tolist(),
            s.grad.reshape(-1).tolist(), z.grad.reshape(-1).tolist())


if len(sys.argv) == 3 and sys.argv[1] == "--eval":  # child: ATEN_CPU_CAPABILITY=default
    with open(sys.argv[2], "rb") as f:
        cases = pickle.load(f)
    with open(sys.argv[2], "wb") as f:
        pickle.dump([run_case(c) for c in cases], f)
    sys.exit(0)

torch.manual_seed(20261124)
f32 = lambda v: struct.unpack("<f", struct.pack("<f", v))[0]
cases = []


def add(name, x, s, z, qmin, qmax, g=1.0, axis=None, shape=None, dy=None):
    x = [f32(v) for v in x]
    shape = shape or [len(x)]
    if dy is None:
        dy = (torch.randn(len(x)) + 0.25).tolist()
        dy[0] = 1.0
    s = [f32(v) for v in (s if isinstance(s, list) else [s])]
    z = [f32(v) for v in (z if isinstance(z, list) else [z])]
    cases.append(dict(name=name, x=x, dy=[f32(v) for v in dy], s=s, z=z, qmin=qmin, qmax=qmax,
                      g=g, axis=axis, shape=shape))


# ---- pins (peer-numerics.md), dy = 1 as there
add("P7", [.46], .1, 2.5, -8, 7, dy=[1.0])
add("P8", [float.fromhex("0x1.a80002p+4")], 1.0, 100.0, 0, 126, dy=[1.0])
add("P9", [-3, -.26, -.2, 0, .13, .5, 1, 1.26, 1.3, 5], .1, 2.0, -8, 7, dy=[1.0] * 10)
add("paper vs torch bounds", [7.3, 7.5, -8.5, -8.4, 6.5, 7.49], 1.0, 0.0, -8, 7)
# ---- ties, bounds, zero points
for z in (0.0, 2.5, -2.7, 3.0, -0.5, 0.5, 1.5, 10.0, -130.0):
    for qmin, qmax in ((-128, 127), (-8, 7), (0, 255), (0, 15)):
        xs = [(k + 0.5) * 0.25 for k in range(-40, 40, 3)] + [qmin * 0.25 - 0.125, qmax * 0.25 + 0.1]
        add(f"ties z={z} [{qmin},{qmax}]", xs, 0.25, z, qmin, qmax, g=0.5)
add("nonfinite", [float("nan"), float("inf"), -float("inf"), 1e30, -1e30, 3e38, 1e-40, -0.0],
    0.5, 10.0, 0, 255)
# ---- random data over scales, ranges and grad factors
ranges = [(0, 255), (-128, 127), (0, 127), (-64, 63), (-8, 7), (0, 15), (-2, 1)]
for k, (qmin, qmax) in enumerate(ranges):
    for scale in (0.05, 0.1, 0.0123, 3.0):
        n = 97
        z = (qmin + qmax) / 2 + (k - 3) * 1.3
        x = (torch.randn(n, dtype=torch.float64) * scale * (qmax - qmin) / 4).tolist()
        g = (1.0, 0.5, 1.0 / (n * qmax) ** 0.5 if qmax > 0 else 1.0)[k % 3]
        add(f"random [{qmin},{qmax}] s={scale} z={z:.2f} g={g:.4g}", x, scale, z, qmin, qmax, g=g)
# ---- one ulp around rounding boundaries (where fma and two roundings differ)
for s, z, qmin, qmax in ((0.1, 3.0, -128, 127), (0.037, -4.0, -128, 127), (0.3, 0.7, -128, 127),
                         (0.1, 3.0, -8, 7), (0.037, -4.0, -8, 7), (0.0123, 1.0, -8, 7)):
    xs = []
    for k in range(-12, 12):
        b = torch.tensor([(k + 0.5 - round(z)) * s], dtype=torch.float32)
        for step in range(-4, 5):
            v = b.clone()
            direction = torch.tensor([float("inf") if step > 0 else -float("inf")])
            for _ in range(abs(step)):
                v = torch.nextafter(v, direction)
            xs.append(v.item())
    add(f"boundaries s={s} z={z} [{qmin},{qmax}]", xs, s, z, qmin, qmax)

# ---- per-channel
for shape, axis in (([4, 5], 0), ([3, 4, 5], 1), ([2, 3, 4, 6], 1), ([2, 3, 4, 6], 3),
                    ([2, 6, 3], 2), ([5, 7], 1), ([16, 9], 0)):
    for j, (qmin, qmax) in enumerate(((-128, 127), (0, 255), (-8, 7))):
        ch = shape[axis]
        n = 1
        for d in shape:
            n *= d
        scale = (torch.rand(ch) * 0.2 + 0.01).tolist()
        z = (torch.rand(ch) * (qmax - qmin) + qmin).tolist()
        z[0] = 2.5
        if ch > 1:
            z[1] = float(qmax) + 3.0
        x = (torch.randn(n) * 2).tolist()
        for i in range(0, n, 7):  # exact ties of channel 0's grid (on any axis: approximate)
            x[i] = (round(x[i] / scale[0]) + 0.5) * scale[0]
        g = (1.0, 0.25, 1.0 / (n * qmax) ** 0.5)[j]
        add(f"pc shape {shape} axis {axis} [{qmin},{qmax}] g={g:.4g}", x, scale, z, qmin, qmax,
            g=g, axis=axis, shape=shape)

# ---- issue 12: 16-bit ranges over many channels (where |x/s| is large and one ulp of it
# matters: the in-range summand must be ATen's per element), one element per channel (each
# d scale / d zero point is one summand: compared bit for bit), signs of zero
for qmin, qmax in ((-32768, 32767), (0, 65535)):
    for shape, axis in (([64, 40], 0), ([40, 64], 1), ([8, 16, 12], 1)):
        ch = shape[axis]
        n = 1
        for d in shape:
            n *= d
        scale = (torch.rand(ch) * 0.01 + 1e-4).tolist()
        z = (torch.rand(ch) * 200 - 100 + (0 if qmin < 0 else 30000)).tolist()
        span = (qmax - qmin) * 0.55
        x = []
        flat = (torch.rand(n) * 2 - 1).tolist()
        inner = 1
        for d in shape[axis + 1:]:
            inner *= d
        for i in range(n):
            c = (i // inner) % ch
            center = (qmin + qmax) / 2 - z[c]
            x.append((center + flat[i] * span) * scale[c])
        g = 1.0 / (n * qmax) ** 0.5
        add(f"16-bit pc {shape} axis {axis} [{qmin},{qmax}]", x, scale, z, qmin, qmax, g=g,
            axis=axis, shape=shape)
    for g in (1.0, 0.37):
        ch = 256
        scale = (torch.rand(ch) * 0.01 + 1e-4).tolist()
        z = (torch.rand(ch) * 200 - 100 + (0 if qmin < 0 else 30000)).tolist()
        x = [((torch.rand(1).item() * 1.1 - 0.05) * (qmax - qmin) + qmin - z[c]) * scale[c]
             for c in range(ch)]
        add(f"one element per channel [{qmin},{qmax}] g={g}", x, scale, z, qmin, qmax, g=g,
            axis=0, shape=[ch, 1])
for k in range(24):  # one element per tensor: d scale and d zero point are single summands
    qmin, qmax = ((-32768, 32767), (0, 65535), (-128, 127), (0, 255))[k % 4]
    s_ = torch.rand(1).item() * 0.01 + 1e-4
    z_ = (qmin + qmax) / 2 + torch.randn(1).item() * 50
    x_ = ((torch.rand(1).item() * 1.2 - 0.1) * (qmax - qmin) + qmin - z_) * s_
    add(f"one element {k} [{qmin},{qmax}]", [x_], s_, z_, qmin, qmax, g=(1.0, 0.3, 1e-3)[k % 3])
add("no element clipped: d z is +0", [0.1, 0.2, -0.3, 0.05], 0.1, 0.0, -128, 127)
add("no element clipped, per channel", [0.1, 0.2, -0.3, 0.5, 0.6, 0.7], [0.1, 0.2], [0.0, 1.0],
    -128, 127, axis=0, shape=[2, 3])
add("all clipped, zero dy", [100.0, -100.0, 50.0], 0.1, 0.0, -8, 7, dy=[0.0, -0.0, 0.0])
add("zero dy in range", [0.1, -0.2, 0.3], 0.1, 0.0, -8, 7, dy=[-0.0, -0.0, -0.0])

main = [run_case(c) for c in cases]
tmp = OUT + ".tmp.pkl"
with open(tmp, "wb") as f:
    pickle.dump(cases, f)
env = dict(os.environ, ATEN_CPU_CAPABILITY="default")
subprocess.run([sys.executable, os.path.abspath(__file__), "--eval", tmp], env=env, check=True)
with open(tmp, "rb") as f:
    nofma = pickle.load(f)
os.remove(tmp)

hex32 = lambda v: f"0x{v:08x}u"
out, entries = [], []
for i, (c, r, r0) in enumerate(zip(cases, main, nofma)):
    def arr(tag, vals, i=i):
        out.append(f"inline const std::uint32_t lsq{i}_{tag}[] = "
                   f"{{{', '.join(hex32(b) for b in f32_bits(vals))}}};\n")
        return f"lsq{i}_{tag}"
    names = [arr("x", c["x"]), arr("dy", c["dy"]), arr("s", c["s"]), arr("z", c["z"]),
             arr("y", r[0]), arr("dx", r[1]), arr("ds", r[2]), arr("dz", r[3]),
             arr("y0", r0[0]), arr("dx0", r0[1]), arr("ds0", r0[2]), arr("dz0", r0[3])]
    shape = list(c["shape"]) + [1] * (4 - len(c["shape"]))
    axis = -1 if c["axis"] is None else c["axis"]
    g_bits = f32_bits([c["g"]])[0]
    entries.append(f'{{"{c["name"]}", {len(c["shape"])}, {{{", ".join(map(str, shape))}}}, '
                   f'{len(c["x"])}, {axis}, {len(c["s"])}, {c["qmin"]}, {c["qmax"]}, '
                   f'{hex32(g_bits)}, {", ".join(names)}}}')

with open(OUT, "w") as f:
    f.write(f"""// SPDX-License-Identifier: MIT
// Generated by tests/learnable/gen_golden_lsq.py with PyTorch {torch.__version__}; do not edit.
#ifndef FQ_TESTS_LEARNABLE_LSQ_GOLDEN_DATA_HPP_
#define FQ_TESTS_LEARNABLE_LSQ_GOLDEN_DATA_HPP_

#include <cstdint>

namespace fq_golden_lsq {{

/// One call; all values are float32 bit patterns. axis -1: per tensor. The *0 arrays are the
/// results of ATEN_CPU_CAPABILITY=default (no fused multiply-add).
struct LsqCase {{
  const char* name;
  int rank;
  std::int64_t shape[4];
  std::int64_t n;
  int axis;
  std::int64_t channels;
  std::int64_t quant_min, quant_max;
  std::uint32_t grad_factor;
  const std::uint32_t *x, *dy, *scale, *zero_point;
  const std::uint32_t *y, *dx, *dscale, *dzero_point;
  const std::uint32_t *y0, *dx0, *dscale0, *dzero_point0;
}};

// clang-format off
""")
    f.writelines(out)
    f.write("\ninline const LsqCase kLsqCases[] = {\n  " + ",\n  ".join(entries) + "};\n")
    f.write("// clang-format on\n\n}  // namespace fq_golden_lsq\n\n"
            "#endif  // FQ_TESTS_LEARNABLE_LSQ_GOLDEN_DATA_HPP_\n")
print(f"wrote {OUT}: {len(cases)} cases", file=sys.stderr)
