#!/usr/bin/env bash
# scripts/demo.sh: the README's main job. Installs missing Debian packages (the compilers,
# Eigen, xsimd, zlib and the Fashion-MNIST data set), builds the examples and runs the
# Fashion-MNIST QAT demo: FP32 training, then PTQ and QAT at W8A8 and W4A8, in one table.
# Arguments are passed to the demo (e.g. --epochs 4 --json out.json --svg out.svg).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=deps.sh
source "$root/scripts/deps.sh"
fq_install_deps "${FQ_BUILD_DEPS[@]}" "${FQ_DEMO_DEPS[@]}"
build=${FQ_DEMO_BUILD_DIR:-$root/build-demo}
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DFQ_NATIVE_ARCH=ON -DFQ_BUILD_TESTS=OFF \
  -DFQ_BUILD_EXAMPLES=ON >/dev/null
cmake --build "$build" -j "$(nproc)" --target fashion_mnist_qat >/dev/null
"$build/examples/fashion_mnist_qat" --threads "$(nproc)" "$@"
