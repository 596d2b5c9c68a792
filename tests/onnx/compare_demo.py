#!/usr/bin/python3
# SPDX-License-Identifier: MIT
# tests/onnx/compare_demo.py: compares a runtime's logits for the Fashion-MNIST demo's exported
# model (examples/fashion_mnist_qat.cpp --onnx, --onnx-io) with the integer model's.
#
#   compare_demo.py PREFIX RUNTIME_LOGITS.f32 [MODEL.onnx] [--min-top1 F] [--min-within F]
#
# PREFIX.int8-logits.f32 [n, 10] and PREFIX.logit-steps.f32 [10] come from the demo; a logit is
# s_x·s_w[o]·acc + b[o], so its quantization step is s_x·s_w[o]. Prints the top-1 agreement, how
# many logits are within float rounding and within one step, and the largest difference in
# steps. Passes (exit 0) when the top-1 classes agree on at least --min-top1 of the images
# (default 0.999) and at least --min-within of the images (default 1: all) have every logit
# within one step. (One hidden activation a level off — a rounding midpoint landed on the other
# side — moves a logit by |q_w| steps, up to 127: see convert/onnx.hpp.) With MODEL.onnx and the
# onnx package, also runs onnx.checker.check_model(full_check=True) on it.
import sys

import numpy as np


def main():
    args = sys.argv[1:]
    opts = {"--min-top1": 0.999, "--min-within": 1.0}
    for k in opts:
        if k in args:
            i = args.index(k)
            opts[k] = float(args[i + 1])
            del args[i:i + 2]
    min_top1, min_within = opts["--min-top1"], opts["--min-within"]
    prefix, theirs_path = args[0], args[1]
    ours = np.fromfile(prefix + ".int8-logits.f32", dtype=np.float32).reshape(-1, 10)
    steps = np.fromfile(prefix + ".logit-steps.f32", dtype=np.float32)
    theirs = np.fromfile(theirs_path, dtype=np.float32)
    if theirs.size != ours.size:
        print(f"compare_demo: {theirs.size} runtime logits, expected {ours.size}")
        return 1
    theirs = theirs.reshape(-1, 10)
    if len(args) > 2:
        try:
            import onnx
            onnx.checker.check_model(onnx.load(args[2]), full_check=True)
            print(f"{args[2]}: onnx {onnx.__version__} checker OK")
        except ImportError:
            print("note: no onnx package, the checker did not run")
    d = np.abs(theirs.astype(np.float64) - ours) / steps
    top1 = float(np.mean(theirs.argmax(1) == ours.argmax(1)))
    exact = np.abs(theirs.astype(np.float64) - ours) <= 1e-5 * (1 + np.abs(ours))
    within = d <= 1 + 1e-6
    images_exact = int(np.all(exact, axis=1).sum())
    images_within = float(np.mean(np.all(within, axis=1)))
    print(f"{theirs_path}: {ours.shape[0]} images; top-1 agrees on {top1 * 100:.2f}%; "
          f"{images_exact} images with all logits equal up to float rounding; "
          f"logits within one step: {int(within.sum())} of {within.size} "
          f"({images_within * 100:.2f}% of the images with all 10); "
          f"largest difference {d.max():.3g} steps")
    ok = top1 >= min_top1 and images_within >= min_within
    if not ok:
        print(f"compare_demo: FAILED (top-1 agreement must be >= {min_top1}, and every logit "
              f"within one step on >= {min_within} of the images)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
