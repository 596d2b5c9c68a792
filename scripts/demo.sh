#!/usr/bin/env bash
# scripts/demo.sh: the README's main job. Installs missing Debian packages, builds the
# examples and runs the main one (until the Fashion-MNIST QAT demo lands: quantize_schemes,
# which fake-quantizes a tensor with several schemes and prints an error table).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=deps.sh
source "$root/scripts/deps.sh"
fq_install_deps "${FQ_BUILD_DEPS[@]}"
build=${FQ_DEMO_BUILD_DIR:-$root/build-demo}
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DFQ_NATIVE_ARCH=ON -DFQ_BUILD_TESTS=OFF \
  -DFQ_BUILD_EXAMPLES=ON >/dev/null
cmake --build "$build" -j "$(nproc)" --target quantize_schemes >/dev/null
"$build/examples/quantize_schemes" "$@"
