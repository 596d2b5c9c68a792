#!/usr/bin/python3
# SPDX-License-Identifier: MIT
# benchmarks/torch_fashion_mnist_qat.py: the PyTorch 1.13 eager-mode peer of the Fashion-MNIST
# demo (examples/fashion_mnist_qat.cpp), for timing the two on the same machine (issue 17).
#
#   /usr/bin/python3 benchmarks/torch_fashion_mnist_qat.py [--epochs N] [--qat-epochs N]
#       [--batch N] [--lr X] [--qat-lr X] [--threads N] [--train-subset N] [--test-subset N]
#       [--seed N] [--data DIR] [--engine onednn|x86|fbgemm|qnnpack] [--json PATH]
#
# Run it with Debian's python3-torch (1.13), not a pip wheel: the numbers are compared with a
# build on the same machine. benchmarks/compare_with_torch.sh runs both programs.
#
# What it mirrors of the demo (same flags, same defaults):
# - data: the IDX .gz files of /usr/share/datasets/fashion-mnist, the first N images of each
#   split (--train-subset/--test-subset, 0: all), pixels/255 normalised with the demo's constants
#   (mean 0.2860, std 0.3530);
# - network: QuantStub -> conv 1->32 3x3 pad 1 (no bias) + BN + ReLU -> max-pool 2 ->
#   conv 32->64 (no bias) + BN + ReLU -> max-pool 2 -> flatten -> linear 3136->128 + ReLU ->
#   linear 128->10 -> DeQuantStub; PyTorch's default init (the demo's too: U(+-1/sqrt(fan_in)));
# - training: Adam (lr 2e-3, betas 0.9/0.999, eps 1e-8, no weight decay), cosine annealing per
#   step to 0 over all steps of the phase, softmax cross-entropy, a new random order each epoch,
#   n // batch steps (the last partial batch dropped);
# - PTQ then QAT W8A8: conv+BN+ReLU and linear+ReLU fused (fuse_modules_qat), prepare_qat with
#   the engine's default QAT qconfig (per-channel symmetric int8 weights, per-tensor affine uint8
#   activations), observers calibrated on the first 32 training batches in eval mode, then QAT at
#   --qat-lr with fake quantization from step 0, BN statistics frozen from half the steps and
#   observers from three quarters;
# - INT8: convert() of the QAT model, run on the engine's int8 kernels over the test set;
# - timing: an epoch's seconds are the training steps only (batch gathering, forward, backward,
#   optimizer, train accuracy), not the test evaluation; img/s = steps * batch / seconds; INT8
#   img/s = test images / seconds of the evaluation in batches of 500 (including the argmax), on
#   --threads threads; the FP32 inference img/s on 1 thread, as the demo's.
# What differs is listed in docs/benchmarks.md ("Training and inference against PyTorch").
import argparse
import copy
import gzip
import json
import math
import os
import struct
import sys
import time

import torch
import torch.nn as nn
import torch.nn.intrinsic.qat as nniqat
import torch.ao.quantization as tq

MEAN, STD = 0.2860, 0.3530  # the demo's constants (fashion_mnist_data.hpp)


def parse():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--qat-epochs", type=int, default=1)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--qat-lr", type=float, default=1e-4)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--train-subset", type=int, default=0)
    p.add_argument("--test-subset", type=int, default=0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--engine", default="",
                   help="quantized engine; default: the first of x86, fbgemm, onednn that exists")
    p.add_argument("--json", default="")
    return p.parse_args()


def load(d, prefix, limit):
    """The `prefix` split's first `limit` images (0: all), normalised as the demo does."""
    with gzip.open(os.path.join(d, prefix + "-images-idx3-ubyte.gz"), "rb") as f:
        img = f.read()
    with gzip.open(os.path.join(d, prefix + "-labels-idx1-ubyte.gz"), "rb") as f:
        lab = f.read()
    magic, n, rows, cols = struct.unpack(">IIII", img[:16])
    if magic != 2051 or rows != 28 or cols != 28 or struct.unpack(">II", lab[:8]) != (2049, n):
        sys.exit(f"{d}/{prefix}-*: not the expected IDX files")
    n = min(limit, n) if limit > 0 else n
    x = torch.frombuffer(bytearray(img[16:16 + n * 784]), dtype=torch.uint8)
    x = ((x.float() / 255.0 - MEAN) / STD).reshape(n, 1, 28, 28).contiguous()
    y = torch.frombuffer(bytearray(lab[8:8 + n]), dtype=torch.uint8).long()
    return x, y


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.quant = tq.QuantStub()
        self.c1 = nn.Conv2d(1, 32, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(32)  # momentum 0.1, eps 1e-5 as QConvBn2d's defaults
        self.relu1 = nn.ReLU()
        self.pool1 = nn.MaxPool2d(2)
        self.c2 = nn.Conv2d(32, 64, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(64)
        self.relu2 = nn.ReLU()
        self.pool2 = nn.MaxPool2d(2)
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(64 * 7 * 7, 128)
        self.relu3 = nn.ReLU()
        self.fc2 = nn.Linear(128, 10)
        self.dequant = tq.DeQuantStub()

    def forward(self, x):
        x = self.quant(x)
        x = self.pool1(self.relu1(self.bn1(self.c1(x))))
        x = self.pool2(self.relu2(self.bn2(self.c2(x))))
        x = self.relu3(self.fc1(self.flatten(x)))
        return self.dequant(self.fc2(x))


def evaluate(model, x, y, batch=500):
    """Test accuracy and images/s, in batches of 500 as the demo's evaluations."""
    model.eval()
    correct = 0
    t0 = time.perf_counter()
    with torch.no_grad():
        for s in range(0, x.shape[0], batch):
            correct += int((model(x[s:s + batch]).argmax(1) == y[s:s + batch]).sum())
    secs = time.perf_counter() - t0
    return correct / x.shape[0], x.shape[0] / secs


def train(name, model, data, a, epochs, lr, gen, qat_hooks=None):
    """`epochs` epochs as the demo's train(); returns (test accuracy, [(secs, img/s) per epoch])."""
    xtr, ytr, xte, yte = data
    opt = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.9, 0.999), eps=1e-8)
    steps = xtr.shape[0] // a.batch
    total = steps * epochs
    # The demo's closed-form cosine (lr_at(step)), step 0 at the base rate.
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda t: 0.5 * (1.0 + math.cos(math.pi * min(t, total) / total)))
    loss_fn = nn.CrossEntropyLoss()
    times, acc, step = [], 0.0, 0
    for e in range(epochs):
        model.train()
        order = torch.randperm(xtr.shape[0], generator=gen)
        t0 = time.perf_counter()
        loss_sum, correct = 0.0, 0
        for s in range(steps):
            if qat_hooks:
                qat_hooks(model, step)
            idx = order[s * a.batch:(s + 1) * a.batch]
            xb, yb = xtr[idx], ytr[idx]
            logits = model(xb)
            loss = loss_fn(logits, yb)
            opt.zero_grad(set_to_none=False)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            loss_sum += loss.item()
            correct += int((logits.detach().argmax(1) == yb).sum())
        secs = time.perf_counter() - t0
        acc, _ = evaluate(model, xte, yte)
        ips = steps * a.batch / secs
        times.append((secs, ips))
        print(f"{name:<9} epoch {e + 1}/{epochs}  loss {loss_sum / steps:.4f}  "
              f"train acc {correct / (steps * a.batch):.4f}  test acc {acc:.4f}  "
              f"{ips:6.0f} img/s  {secs:6.2f} s/epoch", flush=True)
    return acc, times


def pick_engine(want):
    have = torch.backends.quantized.supported_engines
    if want:
        if want not in have:
            sys.exit(f"engine {want!r} not in this torch's {have}")
        return want
    # x86 (1.13's name for fbgemm+oneDNN) or fbgemm if built; Debian's 1.13 has only onednn.
    for e in ("x86", "fbgemm", "onednn"):
        if e in have:
            return e
    sys.exit(f"no x86 quantized engine in {have}")


def main():
    a = parse()
    torch.set_num_threads(a.threads)
    torch.set_num_interop_threads(1)
    torch.manual_seed(a.seed)
    gen = torch.Generator().manual_seed(a.seed)
    engine = pick_engine(a.engine)
    torch.backends.quantized.engine = engine
    xtr, ytr = load(a.data, "train", a.train_subset)
    xte, yte = load(a.data, "t10k", a.test_subset)
    data = (xtr, ytr, xte, yte)
    print(f"PyTorch {torch.__version__} eager, engine {engine}: {xtr.shape[0]} training, "
          f"{xte.shape[0]} test images; batch {a.batch}, {torch.get_num_threads()} thread(s), "
          f"seed {a.seed}")
    if xtr.shape[0] < a.batch:
        sys.exit("the training subset is smaller than one batch")

    fp32 = Net()
    acc_fp32, fp32_times = train("FP32", fp32, data, a, a.epochs, a.lr, gen)
    torch.set_num_threads(1)  # the demo's FP32 inference figure is on 1 thread
    _, fp32_ips = evaluate(fp32, xte, yte)
    torch.set_num_threads(a.threads)

    # PTQ: fuse, prepare for QAT, calibrate observers on 32 training batches in eval mode.
    qat = copy.deepcopy(fp32).train()
    qat = tq.fuse_modules_qat(qat, [["c1", "bn1", "relu1"], ["c2", "bn2", "relu2"],
                                    ["fc1", "relu3"]])
    qat.qconfig = tq.get_default_qat_qconfig(engine)
    tq.prepare_qat(qat, inplace=True)
    qat.eval()
    qat.apply(tq.disable_fake_quant)
    qat.apply(tq.enable_observer)
    with torch.no_grad():
        for b in range(min(32, xtr.shape[0] // a.batch)):
            qat(xtr[b * a.batch:(b + 1) * a.batch])
    qat.apply(tq.disable_observer)
    qat.apply(tq.enable_fake_quant)
    acc_ptq, _ = evaluate(qat, xte, yte)
    print(f"PTQ W8A8 test acc {acc_ptq:.4f}")

    steps = xtr.shape[0] // a.batch * a.qat_epochs
    bn_freeze, obs_freeze = steps // 2, steps * 3 // 4

    def qat_hooks(m, t):  # the demo's QatSchedule: observers on until 3/4, BN frozen from 1/2
        if t == 0:
            m.apply(tq.enable_observer)
            m.apply(nniqat.update_bn_stats)
        if t == bn_freeze:
            m.apply(nniqat.freeze_bn_stats)
        if t == obs_freeze:
            m.apply(tq.disable_observer)

    acc_qat, qat_times = train("QAT W8A8", qat, data, a, a.qat_epochs, a.qat_lr, gen, qat_hooks)

    qat.eval()
    int8 = tq.convert(qat, inplace=False)
    int8.eval()
    acc_int8, int8_ips = evaluate(int8, xte, yte)
    print(f"INT8 ({engine}) test acc {acc_int8:.4f}  {int8_ips:6.0f} img/s")

    med = lambda v: sorted(v)[len(v) // 2]
    res = {
        "program": "pytorch", "torch": torch.__version__, "engine": engine,
        "threads": a.threads, "batch": a.batch, "train_images": int(xtr.shape[0]),
        "test_images": int(xte.shape[0]),
        "fp32_epoch_s": [t[0] for t in fp32_times], "fp32_ips": [t[1] for t in fp32_times],
        "qat_epoch_s": [t[0] for t in qat_times], "qat_ips": [t[1] for t in qat_times],
        "int8_ips": int8_ips, "fp32_infer_ips_1thread": fp32_ips,
        "acc_fp32": acc_fp32, "acc_ptq_w8a8": acc_ptq, "acc_qat_w8a8": acc_qat,
        "acc_int8": acc_int8,
    }
    print(f"\n| PyTorch {torch.__version__} ({engine}) | value |\n|---|---|")
    print(f"| FP32 epoch (median) | {med(res['fp32_epoch_s']):.2f} s, "
          f"{med(res['fp32_ips']):.0f} img/s |")
    print(f"| QAT W8A8 epoch (median) | {med(res['qat_epoch_s']):.2f} s, "
          f"{med(res['qat_ips']):.0f} img/s |")
    print(f"| INT8 inference | {int8_ips:.0f} img/s |")
    print(f"| FP32 inference, 1 thread | {fp32_ips:.0f} img/s |")
    print(f"| accuracy FP32 / PTQ / QAT / INT8 | {acc_fp32:.4f} / {acc_ptq:.4f} / "
          f"{acc_qat:.4f} / {acc_int8:.4f} |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()
