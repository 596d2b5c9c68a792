#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Writes tests/golden/group_golden_data.hpp: golden vectors of TorchAO's group-wise and
per-token fake quantization, computed with PyTorch 1.13.

Run with Debian's python3-torch:  /usr/bin/python3 tests/golden/gen_group_golden.py
The output is committed, so the tests never need torch. TorchAO is not installed here: its
reference formulas are re-implemented below in torch ops, line for line, each function naming
the TorchAO function it mirrors (torchao/quantization/quant_primitives.py and
torchao/quantization/qat/utils.py, pytorch/ao at 36027d8, 2026-08; the legacy per-token rule
from pytorch/ao before commit 0045d88, 2025-04). Values are stored as IEEE bit patterns.

Cases (x, y, per-group scale and zero point, mask = TorchAO's autograd gradient != 0 for a
ones upstream gradient, i.e. where torch.clamp passes it):
  * int4 symmetric, groups of 32 and 128 along K of [N, K] weights (get_group_qparams_symmetric
    -> choose_qparams_affine SYMMETRIC, eps = float32 smallest normal)
  * uint4 [0, 15] affine, groups of 128 (choose_qparams_affine ASYMMETRIC, integer zero point)
  * int8 asymmetric per token on [B, T, C] activations: choose_qparams_affine with eps = float32
    epsilon (8da4w today) and the legacy _choose_qparams_per_token_asymmetric
  * int4 asymmetric per token, int8 symmetric per token
Adversarial groups in each: exact ties x = (k + 0.5) * s with s a power of two, an all-zero
group, groups with one nonzero value, a large dynamic range (1e-30 .. 1e30), subnormals,
and (weights) one group with a NaN and one with an infinity.
"""
import os
import struct

import torch

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "group_golden_data.hpp")
torch.manual_seed(20261206)

F32_EPS = torch.finfo(torch.float32).eps
F32_TINY = torch.finfo(torch.float32).tiny  # smallest normal


class _Round(torch.autograd.Function):
    """torchao.quantization.quant_primitives._Round: torch.round with a straight-through grad."""

    @staticmethod
    def forward(ctx, x):
        return torch.round(x)

    @staticmethod
    def backward(ctx, gy):
        return gy


def get_reduction_params(block_size, input_size):
    """torchao quant_primitives._get_reduction_params."""
    shape_for_reduction, reduction_dims, cur_dim = [], [], 0
    for i in range(len(block_size)):
        if block_size[i] != input_size[i] and block_size[i] > 1:
            assert input_size[i] % block_size[i] == 0
            shape_for_reduction.append(input_size[i] // block_size[i])
            shape_for_reduction.append(block_size[i])
            reduction_dims.append(cur_dim + 1)
            cur_dim += 2
        else:
            shape_for_reduction.append(input_size[i])
            if block_size[i] != 1:
                reduction_dims.append(cur_dim)
            cur_dim += 1
    return shape_for_reduction, reduction_dims


@torch.no_grad()
def choose_qparams_affine(x, mapping, block_size, qmin, qmax, eps):
    """torchao quant_primitives._choose_qparams_affine (SYMMETRIC / ASYMMETRIC, float32)."""
    shape_for_reduction, reduction_dims = get_reduction_params(block_size, x.size())
    x = x.view(shape_for_reduction)
    min_val = torch.amin(x, dim=reduction_dims, keepdim=False)
    max_val = torch.amax(x, dim=reduction_dims, keepdim=False)
    min_val_neg = torch.min(min_val, torch.zeros_like(min_val))
    max_val_pos = torch.max(max_val, torch.zeros_like(max_val))
    if mapping == "SYMMETRIC":
        max_val_pos = torch.max(-min_val_neg, max_val_pos)
        scale = max_val_pos / (float(qmax - qmin) / 2)
        zero_point = torch.full_like(scale, int((qmax + qmin + 1) / 2))
        scale = torch.clamp(scale, min=eps)
    else:
        scale = (max_val_pos - min_val_neg) / float(qmax - qmin)
        scale = torch.clamp(scale, min=eps)
        zero_point = qmin - _Round.apply(min_val_neg / scale)
        zero_point = torch.clamp(zero_point, qmin, qmax)
    return scale.to(torch.float32), zero_point


@torch.no_grad()
def choose_qparams_per_token_asymmetric(x, qmin, qmax):
    """torchao qat/utils._choose_qparams_per_token_asymmetric (legacy; there qmin, qmax =
    -128, 127: generalised here to the range, as fq does)."""
    min_val = torch.amin(x, dim=-1, keepdim=True)
    max_val = torch.amax(x, dim=-1, keepdim=True)
    min_val_neg = torch.min(min_val, torch.zeros_like(min_val))
    max_val_pos = torch.max(max_val, torch.zeros_like(max_val))
    eps = torch.finfo(torch.float32).eps
    scale = (max_val_pos - min_val_neg) / float(qmax - qmin)
    scale = scale.clamp(min=eps)
    descaled_min = min_val_neg / scale
    descaled_max = max_val_pos / scale
    zero_point_from_min_error = qmin + descaled_min
    zero_point_from_max_error = qmax + descaled_max
    zero_point = torch.where(zero_point_from_min_error + zero_point_from_max_error > 0,
                             qmin - descaled_min, qmax - descaled_max)
    zero_point = torch.clamp(zero_point, qmin, qmax).round()
    return scale.to(torch.float32), zero_point.to(torch.float32)


def fake_quantize_affine(x, block_size, scale, zero_point, qmin, qmax):
    """torchao quant_primitives._fake_quantize_affine (INT zero-point domain):
    _quantize_affine_no_dtype_cast followed by _dequantize_affine_no_dtype_check."""
    shape_for_reduction, reduction_dims = get_reduction_params(block_size, x.size())
    original_shape = x.shape
    xr = x.view(shape_for_reduction)
    shape_after_reduction = list(shape_for_reduction)
    for i in reduction_dims:
        shape_after_reduction[i] = 1
    s = scale.view(shape_after_reduction)
    z = zero_point.view(shape_after_reduction)
    q = torch.clamp(_Round.apply(xr * (1.0 / s)) + z, qmin, qmax)
    dq = (q - z.to(torch.float32)) * s
    return dq.view(original_shape)


def run(x, block_size, qmin, qmax, mapping, eps, legacy=False):
    if legacy:
        scale, zp = choose_qparams_per_token_asymmetric(x, qmin, qmax)
    else:
        scale, zp = choose_qparams_affine(x, mapping, block_size, qmin, qmax, eps)
    xg = x.clone().requires_grad_(True)
    y = fake_quantize_affine(xg, block_size, scale, zp, qmin, qmax)
    y.backward(torch.ones_like(y))
    mask = (xg.grad != 0).to(torch.uint8)
    zp_int = [int(v) if v == v else 0 for v in zp.reshape(-1).tolist()]
    return y.detach(), scale.reshape(-1), zp_int, mask


def f32_bits(t):
    return [struct.unpack("<I", struct.pack("<f", v))[0] for v in t.reshape(-1).tolist()]


def adversarial_weight(n, k, g, qmax_half, rng_scale=1.0):
    """[n, k] random normal weights whose first groups are adversarial."""
    w = torch.randn(n, k) * rng_scale
    groups = w.view(n, k // g, g)
    s = 2.0 ** -3  # exact ties: group amax = qmax_half * s (s exact), x = (j + 0.5) * s
    ties = (torch.arange(g) % 14 - 7 + 0.5) * s
    ties[0] = qmax_half * s
    groups[0, 0] = ties
    groups[0, 1] = 0.0  # all zero
    groups[0, 2] = 0.0
    groups[0, 2, 5] = 3.25  # one nonzero value
    groups[0, 3] = 0.0
    groups[0, 3, g - 1] = -1e-3  # one negative value
    big = torch.logspace(-30, 30, g)
    big[::2] *= -1
    groups[1, 0] = big  # large dynamic range
    groups[1, 1] = torch.full((g,), 1e-39) * torch.arange(g)  # subnormals
    if n > 2:
        groups[2, 0] = groups[2, 0] * 1e6
    return w


cases = []


def add(name, kind, x, group, qmin, qmax, mapping, eps, legacy=False, nonfinite=False):
    if group == -1:
        block = [1] * (x.dim() - 1) + [x.shape[-1]]
    else:
        block = [1] * (x.dim() - 1) + [group]
    if nonfinite:  # a NaN group and an infinite group (fq: all NaN, mask 0)
        xf = x.view(-1, group if group != -1 else x.shape[-1])
        xf[-1, 3] = float("nan")
        xf[-2, 0] = float("inf")
    y, scale, zp, mask = run(x, block, qmin, qmax, mapping, eps, legacy)
    cases.append(dict(name=name, kind=kind, shape=list(x.shape), group=group, qmin=qmin,
                      qmax=qmax, x=f32_bits(x), y=f32_bits(y), scale=f32_bits(scale), zp=zp,
                      mask=mask.reshape(-1).tolist()))


# int4 symmetric weights, G = 32 and 128 (get_group_qparams_symmetric: eps smallest normal)
add("int4 sym G32 [16,256]", "int4_sym", adversarial_weight(16, 256, 32, 7.5), 32, -8, 7,
    "SYMMETRIC", F32_TINY, nonfinite=True)
add("int4 sym G128 [8,512]", "int4_sym", adversarial_weight(8, 512, 128, 7.5, 0.02), 128, -8, 7,
    "SYMMETRIC", F32_TINY)
# uint4 affine G = 128 (choose_qparams_affine ASYMMETRIC)
w = adversarial_weight(8, 512, 128, 7.5, 0.05)
w[3] = w[3].abs() + 0.01  # all-positive groups: zero point qmin
w[4] = -w[4].abs() - 0.01  # all-negative groups: zero point qmax
add("uint4 affine G128 [8,512]", "uint4_affine", w, 128, 0, 15, "ASYMMETRIC", F32_TINY,
    nonfinite=True)


def activations(b, t, c):
    a = torch.randn(b, t, c) * 3.0
    a[0, 0] = 0.0  # all-zero token
    a[0, 1] = 0.0
    a[0, 1, 7] = 2.5  # one nonzero value
    a[0, 2] = torch.randn(c).abs() + 1.0  # positive only
    a[0, 3] = -torch.randn(c).abs() - 1.0  # negative only
    a[0, 4] = torch.logspace(-20, 20, c) * torch.sign(torch.randn(c))
    a[0, 5] = (torch.arange(c) % 255 - 127.5) * 2.0 ** -4  # ties on a power-of-two scale
    a[1, 0] = torch.randn(c) * 1e-8  # scale below eps
    a[1, 1] = torch.randn(c) + 40.0  # far from zero: zero point clamps
    return a


# int8 asymmetric per token (8da4w): today's choose_qparams_affine and the legacy rule
add("int8 per-token affine [2,8,96]", "int8_tok", activations(2, 8, 96), -1, -128, 127,
    "ASYMMETRIC", F32_EPS)
add("int8 per-token legacy [2,8,96]", "int8_tok_legacy", activations(2, 8, 96), -1, -128, 127,
    "ASYMMETRIC", F32_EPS, legacy=True)
add("int4 per-token affine [2,8,64]", "int4_tok", activations(2, 8, 64), -1, -8, 7, "ASYMMETRIC",
    F32_EPS)
add("int8 per-token symmetric [2,8,96]", "int8_tok_sym", activations(2, 8, 96), -1, -128, 127,
    "SYMMETRIC", F32_EPS)


def arr(ctype, name, values, fmt):
    return f"inline const {ctype} {name}[] = {{{', '.join(fmt(v) for v in values)}}};\n"


hex32 = lambda v: f"0x{v:08x}u"
out = ["// SPDX-License-Identifier: MIT\n",
       f"// Generated by tests/golden/gen_group_golden.py with PyTorch {torch.__version__}; "
       "do not edit.\n",
       "#ifndef FQ_TESTS_GOLDEN_GROUP_GOLDEN_DATA_HPP_\n#define FQ_TESTS_GOLDEN_GROUP_GOLDEN_DATA_HPP_\n\n",
       "#include <cstdint>\n\nnamespace fq_group_golden {\n\n// clang-format off\n",
       "struct GroupCase {\n  const char* name;\n  const char* kind;\n  int rank;\n"
       "  std::int64_t shape[3];\n  std::int64_t group;  // -1: per token\n"
       "  std::int64_t n, groups;\n  std::int64_t quant_min, quant_max;\n"
       "  const std::uint32_t* x_bits;\n  const std::uint32_t* y_bits;\n"
       "  const std::uint32_t* scale_bits;\n  const std::int32_t* zero_point;\n"
       "  const std::uint8_t* mask;\n};\n\n"]
for i, c in enumerate(cases):
    out.append(arr("std::uint32_t", f"g{i}_x", c["x"], hex32))
    out.append(arr("std::uint32_t", f"g{i}_y", c["y"], hex32))
    out.append(arr("std::uint32_t", f"g{i}_s", c["scale"], hex32))
    out.append(arr("std::int32_t", f"g{i}_z", c["zp"], str))
    out.append(arr("std::uint8_t", f"g{i}_m", c["mask"], str))
out.append("\ninline const GroupCase kGroupCases[] = {\n")
for i, c in enumerate(cases):
    shape = c["shape"] + [1] * (3 - len(c["shape"]))
    out.append(f'  {{"{c["name"]}", "{c["kind"]}", {len(c["shape"])}, '
               f'{{{shape[0]}, {shape[1]}, {shape[2]}}}, {c["group"]}, {len(c["x"])}, '
               f'{len(c["scale"])}, {c["qmin"]}, {c["qmax"]}, g{i}_x, g{i}_y, g{i}_s, g{i}_z, '
               f'g{i}_m}},\n')
out.append("};\n// clang-format on\n\n}  // namespace fq_group_golden\n\n#endif  // FQ_TESTS_GOLDEN_GROUP_GOLDEN_DATA_HPP_\n")
with open(OUT, "w") as f:
    f.write("".join(out))
print(f"wrote {OUT}: {len(cases)} cases")
