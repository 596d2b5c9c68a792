#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Writes tests/optim/optim_golden_data.hpp: optimizer golden trajectories from PyTorch 1.13.

Run with Debian's python3-torch:  /usr/bin/python3 tests/optim/gen_golden_optim.py
The output is committed, so the tests never need torch. float32 values are stored as IEEE bit
patterns and doubles as hexadecimal floating literals, so no printing rounding intervenes.

Cases:
  * torch.optim.SGD / Adam / AdamW on two float32 parameters (5 and 3 elements) with fixed
    gradients per step, each option combination; the second parameter is in a group without
    weight decay where a case says so; the learning rate may change between steps.
  * torch.nn.utils.clip_grad_norm_: returned total norm and clipped gradients.
  * StepLR, CosineAnnealingLR, and LinearLR + CosineAnnealingLR (SequentialLR) closed forms.
"""
import math
import os
import struct

import torch
from torch.optim import lr_scheduler as lrs

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "optim_golden_data.hpp")
torch.manual_seed(20261124)
SIZES = (5, 3)
STEPS = 6


def f32_bits(t):
    return [struct.unpack("<I", struct.pack("<f", v))[0] for v in t.reshape(-1).tolist()]


def u32s(values):
    return "{" + ", ".join(f"0x{v:08x}u" for v in values) + "}"


def dbl(v):
    return float(v).hex() if math.isfinite(v) else repr(v)


def dbls(values):
    return "{" + ", ".join(dbl(v) for v in values) + "}"


P0 = [torch.randn(n) for n in SIZES]
GRADS = [[torch.randn(n) * (1.0 + 0.5 * s) for n in SIZES] for s in range(STEPS)]

optim_cases = []


def optim_case(name, kind, lrs_per_step, second_decays=True, **kw):
    params = [p.clone().requires_grad_(True) for p in P0]
    groups = [{"params": [params[0]]}, {"params": [params[1]]}]
    if not second_decays:
        groups[1]["weight_decay"] = 0.0
    cls = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[kind]
    opt = cls(groups, lr=lrs_per_step[0], **kw)
    want = []
    for s in range(STEPS):
        for g in opt.param_groups:
            g["lr"] = lrs_per_step[s]
        for p, gr in zip(params, GRADS[s]):
            p.grad = gr.clone()
        opt.step()
        want += f32_bits(torch.cat([p.detach().reshape(-1) for p in params]))
    opt_kind = {"sgd": 0, "adam": 1, "adamw": 2}[kind]
    optim_cases.append(dict(name=name, kind=opt_kind, lrs=lrs_per_step, second_decays=second_decays,
                            momentum=kw.get("momentum", 0.0), dampening=kw.get("dampening", 0.0),
                            nesterov=kw.get("nesterov", False),
                            weight_decay=kw.get("weight_decay", 1e-2 if kind == "adamw" else 0.0),
                            beta1=kw.get("betas", (0.9, 0.999))[0],
                            beta2=kw.get("betas", (0.9, 0.999))[1], eps=kw.get("eps", 1e-8),
                            want=want))


const = lambda lr: [lr] * STEPS
varying = [0.1, 0.1, 0.05, 0.05, 0.2, 0.01]
optim_case("sgd plain", "sgd", const(0.1))
optim_case("sgd momentum", "sgd", const(0.1), momentum=0.9)
optim_case("sgd momentum dampening", "sgd", const(0.05), momentum=0.8, dampening=0.3)
optim_case("sgd nesterov", "sgd", const(0.1), momentum=0.9, nesterov=True)
optim_case("sgd weight decay", "sgd", const(0.1), weight_decay=0.05)
optim_case("sgd momentum weight decay, bias exempt", "sgd", const(0.1), second_decays=False,
           momentum=0.9, weight_decay=0.05)
optim_case("sgd nesterov weight decay, varying lr", "sgd", varying, momentum=0.7, nesterov=True,
           weight_decay=0.01)
optim_case("adam defaults", "adam", const(1e-3))
optim_case("adam lr 0.1", "adam", const(0.1))
optim_case("adam l2 weight decay, bias exempt", "adam", const(0.05), second_decays=False,
           weight_decay=0.1)
optim_case("adam betas eps", "adam", const(0.02), betas=(0.5, 0.9), eps=1e-3)
optim_case("adam beta1 0, varying lr", "adam", varying, betas=(0.0, 0.99), weight_decay=0.01)
optim_case("adamw defaults", "adamw", const(1e-3))
optim_case("adamw weight decay 0.1, bias exempt", "adamw", const(0.05), second_decays=False,
           weight_decay=0.1)
optim_case("adamw betas eps, varying lr", "adamw", varying, betas=(0.8, 0.95), eps=1e-4,
           weight_decay=0.3)

# ---------------------------------------------------------------- clip_grad_norm_
clip_cases = []


def clip_case(name, max_norm, scale):
    params = [torch.zeros(n, requires_grad=True) for n in SIZES]
    grads = [g * scale for g in GRADS[2]]
    for p, g in zip(params, grads):
        p.grad = g.clone()
    total = torch.nn.utils.clip_grad_norm_(params, max_norm, error_if_nonfinite=True)
    clip_cases.append(dict(name=name, max_norm=max_norm,
                           grads=f32_bits(torch.cat(grads)), total=f32_bits(total)[0],
                           want=f32_bits(torch.cat([p.grad.reshape(-1) for p in params]))))


clip_case("clips", 1.0, 1.0)
clip_case("clips hard", 0.01, 3.0)
clip_case("no clip", 100.0, 1.0)
clip_case("tiny gradients", 1.0, 1e-4)
clip_case("max_norm 0", 0.0, 1.0)

# ---------------------------------------------------------------- LR schedules
sched_cases = []
EPOCHS = 40


def closed_form(sched, t):
    sched.last_epoch = t
    return sched._get_closed_form_lr()[0]


def sched_case(name, kind, base, a, b, warmup=0, start_factor=1.0 / 3.0):
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=base)
    if kind == 0:
        s = lrs.StepLR(opt, step_size=a, gamma=b)
        lr = [closed_form(s, t) for t in range(EPOCHS)]
    else:
        cos = lrs.CosineAnnealingLR(opt, T_max=a, eta_min=b)
        lr = []
        if warmup:
            lin = lrs.LinearLR(opt, start_factor=start_factor, end_factor=1.0, total_iters=warmup)
        for t in range(EPOCHS):
            lr.append(closed_form(lin, t) if t < warmup else closed_form(cos, t - warmup))
    sched_cases.append(dict(name=name, kind=kind, base=base, a=a, b=b, warmup=warmup,
                            start_factor=start_factor, lr=lr))


sched_case("step 0.1/3/0.5", 0, 0.1, 3, 0.5)
sched_case("step 0.05/7/0.1", 0, 0.05, 7, 0.1)
sched_case("cosine 0.1/10", 1, 0.1, 10, 0.0)
sched_case("cosine 0.01/25 eta_min 1e-4", 1, 0.01, 25, 1e-4)
sched_case("cosine warm-up 5 default factor", 1, 0.1, 20, 1e-3, warmup=5)
sched_case("cosine warm-up 8 factor 0.1", 1, 0.3, 30, 0.0, warmup=8, start_factor=0.1)

# ---------------------------------------------------------------- write
n_total = sum(SIZES)
lines = [
    "// SPDX-License-Identifier: MIT",
    f"// Generated by tests/optim/gen_golden_optim.py with PyTorch {torch.__version__}; do not edit.",
    "#ifndef FQ_TESTS_OPTIM_OPTIM_GOLDEN_DATA_HPP_",
    "#define FQ_TESTS_OPTIM_OPTIM_GOLDEN_DATA_HPP_",
    "",
    "#include <cstddef>",
    "#include <cstdint>",
    "",
    "namespace fq_optim_golden {",
    "",
    "// clang-format off",
    f"inline constexpr std::size_t kSizes[2] = {{{SIZES[0]}, {SIZES[1]}}};",
    f"inline constexpr std::size_t kTotal = {n_total};",
    f"inline constexpr int kSteps = {STEPS};",
    "/// Initial values of both parameters, back to back.",
    f"inline const std::uint32_t kInit[{n_total}] = {u32s(f32_bits(torch.cat(P0)))};",
    "/// Gradients of both parameters at each step.",
    f"inline const std::uint32_t kGrads[{STEPS}][{n_total}] = {{"
    + ", ".join(u32s(f32_bits(torch.cat(g))) for g in GRADS) + "};",
    "",
    "struct OptimCase {",
    "  const char* name;",
    "  int kind;  // 0: SGD, 1: Adam, 2: AdamW",
    f"  double lr[{STEPS}];  // learning rate of each step",
    "  bool second_decays;  // false: the second parameter is exempt from weight decay",
    "  double momentum, dampening;",
    "  bool nesterov;",
    "  double weight_decay, beta1, beta2, eps;",
    f"  std::uint32_t want[{STEPS}][{n_total}];  // both parameters after each step",
    "};",
    "",
    "inline const OptimCase kOptimCases[] = {",
]
for c in optim_cases:
    want = ", ".join(u32s(c["want"][s * n_total:(s + 1) * n_total]) for s in range(STEPS))
    lines.append(
        f'    {{"{c["name"]}", {c["kind"]}, {dbls(c["lrs"])}, {str(c["second_decays"]).lower()}, '
        f'{dbl(c["momentum"])}, {dbl(c["dampening"])}, {str(c["nesterov"]).lower()}, '
        f'{dbl(c["weight_decay"])}, {dbl(c["beta1"])}, {dbl(c["beta2"])}, {dbl(c["eps"])}, '
        f'{{{want}}}}},')
lines += ["};", "",
          "struct ClipCase {",
          "  const char* name;",
          "  double max_norm;",
          f"  std::uint32_t grads[{n_total}];",
          "  std::uint32_t total;  // the returned norm",
          f"  std::uint32_t want[{n_total}];  // gradients after clipping",
          "};", "",
          "inline const ClipCase kClipCases[] = {"]
for c in clip_cases:
    lines.append(f'    {{"{c["name"]}", {dbl(c["max_norm"])}, {u32s(c["grads"])}, '
                 f'0x{c["total"]:08x}u, {u32s(c["want"])}}},')
lines += ["};", "",
          "struct ScheduleCase {",
          "  const char* name;",
          "  int kind;  // 0: StepLR(step_size = a, gamma = b); 1: cosine(t_max = a, eta_min = b)",
          "  double base_lr;",
          "  std::int64_t a;",
          "  double b;",
          "  std::int64_t warmup;",
          "  double start_factor;",
          f"  double lr[{EPOCHS}];  // at t = 0, 1, ...",
          "};", "",
          f"inline constexpr int kScheduleSteps = {EPOCHS};",
          "inline const ScheduleCase kScheduleCases[] = {"]
for c in sched_cases:
    lines.append(f'    {{"{c["name"]}", {c["kind"]}, {dbl(c["base"])}, {c["a"]}, {dbl(c["b"])}, '
                 f'{c["warmup"]}, {dbl(c["start_factor"])}, {dbls(c["lr"])}}},')
lines += ["};", "// clang-format on", "", "}  // namespace fq_optim_golden", "",
          "#endif  // FQ_TESTS_OPTIM_OPTIM_GOLDEN_DATA_HPP_", ""]
with open(OUT, "w") as f:
    f.write("\n".join(lines))
print(f"wrote {OUT}: {len(optim_cases)} optimizer, {len(clip_cases)} clip, "
      f"{len(sched_cases)} schedule cases")
