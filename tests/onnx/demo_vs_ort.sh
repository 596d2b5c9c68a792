#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# tests/onnx/demo_vs_ort.sh: the Fashion-MNIST demo's integer model exported as ONNX and run by
# ONNX Runtime, compared with the integer model on the test images (ctest
# example.fashion_mnist_qat.onnx; a short training run unless the demo arguments say otherwise).
#
#   demo_vs_ort.sh DEMO TESTS_DIR ORT_DIR OUT_DIR [demo arguments...]
#
# DEMO: the fashion_mnist_qat binary; TESTS_DIR: tests/ of the source tree; ORT_DIR: the folder
# holding node_modules/onnxruntime-node. Runs DEMO --onnx --onnx-io, then run_ort.js with ORT's
# graph optimizations on (QDQ fused into integer kernels) and off (float), then compare_demo.py.
# Without node, onnxruntime-node or numpy it prints "skipped, missing tool: ..." and exits 0.
set -euo pipefail
demo=$1 tests=$2 ort=$3 out=$4
shift 4
python=${FQ_PYTHON:-/usr/bin/python3}
if ! command -v node >/dev/null 2>&1 || [ ! -f "$ort/node_modules/onnxruntime-node/package.json" ]; then
  echo "skipped, missing tool: node or $ort/node_modules/onnxruntime-node (npm install --ignore-scripts onnxruntime-node)"
  exit 0
fi
if ! "$python" -c 'import numpy' >/dev/null 2>&1; then
  echo "skipped, missing tool: $python cannot import numpy (Debian: python3-numpy)"
  exit 0
fi
mkdir -p "$out"
"$demo" "$@" --onnx "$out/fmnist.onnx" --onnx-io "$out/fmnist"
# ORT's default session (QDQ fused: QLinearConv and friends, integer accumulators, a float
# requantization scale): top-1 on >= 99.9% of the images and every logit within one step.
# Unfused (every node in float: Conv on dequantized values, QuantizeLinear as round(v / s)):
# on a few images in a thousand a float sum puts a hidden activation on the other side of a
# rounding midpoint, and that image's logits move by |q_w| steps per level (ORT's two modes
# then disagree with each other just as much, while the fused mode stays within 0.1 step of
# Int8Model); so top-1 on >= 99.9%, and every logit within one step on >= 99.5% of the images.
compare() {  # level, compare_demo.py options
  local level=$1
  shift
  node "$tests/onnx/run_ort.js" "$ort" "$out/fmnist.onnx" "$out/fmnist.images.f32" 1,28,28 \
    "$out/fmnist.ort-$level.f32" "$level"
  "$python" "$tests/onnx/compare_demo.py" "$out/fmnist" "$out/fmnist.ort-$level.f32" \
    "$out/fmnist.onnx" "$@"
}
compare all --min-top1 0.999 --min-within 1
compare disabled --min-top1 0.999 --min-within 0.995
echo "demo_vs_ort: OK"
