#!/usr/bin/env bash
# scripts/test.sh: builds and passes every test — the README's test command, and .ci/run's.
#   1. GCC, C++17, -march=native (AVX-512 kernels here), Release: unit tests, compile-fail
#      tests, header self-containment, examples and benchmarks compiled, examples run.
#   2. GCC, ASan + UBSan, baseline x86-64 (SSE2 kernels): the same unit tests.
#   3. Clang, C++20, scalar path only (FQ_USE_XSIMD=OFF), Release: the same unit tests.
#   4. Packaging: find_package, add_subdirectory and FetchContent consumers, pkg-config.
# Build 1 compiles each public header alone (self-containment: the same for every compiler)
# and compiles and runs the docs' code blocks (doc_snippet.*). Each test binary is built from a
# few unity sources (FQ_UNITY_TESTS), which share the instantiations of their test files.
# Builds 1 and 3 also compile every header in one TU as C++17, C++20 and C++23 and with
# -fno-exceptions, with and without xsimd (ctests std_check.*, tests/std_check/), and build 1
# runs clang-tidy (.clang-tidy) on it (ctest lint.clang_tidy).
# The ONNX export is checked by the onnx package (python3-onnx) and by ONNX Runtime (npm
# onnxruntime-node, installed into $out/onnx-node with --ignore-scripts; node and npm from Debian
# if missing).
# The API reference (Doxygen) is built without warnings as the ctest docs.doxygen.
# The MPI data-parallel tests (mpi.*: 2 ranks under Open MPI's mpirun) run in build 1 only.
# The LibTorch interop example is built and run when libtorch-dev is installed; FQ_TORCH=1
# installs it (about 210 MB to download, so not by default).
# Installs missing Debian packages first. FQ_JOBS sets the build parallelism.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=deps.sh
source "$root/scripts/deps.sh"
fq_install_deps "${FQ_BUILD_DEPS[@]}" "${FQ_DEMO_DEPS[@]}" "${FQ_ONNX_DEPS[@]}" "${FQ_MPI_DEPS[@]}" \
  clang clang-tidy \
  catch2 libbenchmark-dev pkgconf doxygen
if [ "${FQ_TORCH:-0}" = 1 ]; then fq_install_deps "${FQ_TORCH_DEPS[@]}"; fi
jobs=${FQ_JOBS:-$(nproc)}
out=${FQ_TEST_BUILD_DIR:-$root/build-test}
passed=0
failed=0

run_config() {  # name, cmake args...
  local name=$1
  shift
  echo "=== fakequant test build: $name"
  cmake -S "$root" -B "$out/$name" -DFQ_WERROR=ON "-DFQ_ONNX_NODE_DIR=$out/onnx-node" "$@" \
    >"$out/$name.configure.log" 2>&1 ||
    { cat "$out/$name.configure.log"; return 1; }
  if ! cmake --build "$out/$name" -j "$jobs" >"$out/$name.build.log" 2>&1; then
    grep -E -A8 'error|Error' "$out/$name.build.log" | head -n 80
    return 1
  fi
  local log="$out/$name.ctest.log"
  (cd "$out/$name" && ctest -j "$jobs" --output-on-failure --timeout 600) >"$log" 2>&1 || true
  tail -n 15 "$log"
  local line total nfail
  line=$(grep -E '^[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -n1)
  if [ -z "$line" ]; then
    echo "fakequant: no ctest summary for $name"; failed=$((failed + 1)); return 0
  fi
  nfail=$(sed -E 's/.* ([0-9]+) tests? failed.*/\1/' <<<"$line")
  total=$(sed -E 's/.* out of ([0-9]+).*/\1/' <<<"$line")
  passed=$((passed + total - nfail))
  failed=$((failed + nfail))
  [ "$nfail" -eq 0 ] || grep -A40 "The following tests FAILED" "$log" || true
}

mkdir -p "$out"
# ONNX Runtime for the ONNX export's tests, cached in the build folder (all three builds use it).
fq_install_onnx_runtime "$out/onnx-node"
run_config release -DCMAKE_BUILD_TYPE=Release -DFQ_NATIVE_ARCH=ON -DFQ_BUILD_BENCHMARKS=ON \
  -DFQ_CLANG_TIDY=ON -DFQ_UNITY_TESTS=ON || failed=$((failed + 1))
# The sanitizers leave out what roughly doubles the compile time for little here: ASan's
# use-after-scope, and UBSan's pointer checks (null, object-size, pointer-overflow, nonnull,
# vptr) that ASan's shadow memory or the absence of polymorphism already cover. Kept: ASan's
# heap, stack and global checks; UBSan's integer, shift, bounds, alignment, bool/enum checks.
ubsan=shift,integer-divide-by-zero,unreachable,vla-bound,return,signed-integer-overflow,bounds
ubsan+=,alignment,bool,enum,builtin
run_config sanitize -DCMAKE_BUILD_TYPE=Debug \
  "-DCMAKE_CXX_FLAGS=-O1 -fno-sanitize-address-use-after-scope" \
  "-DFQ_SANITIZE=address,$ubsan" -DFQ_BUILD_EXAMPLES=OFF -DFQ_HEADER_CHECK=OFF \
  -DFQ_DOC_SNIPPETS=OFF -DFQ_UNITY_TESTS=ON -DFQ_MPI_TESTS=OFF || failed=$((failed + 1))
run_config clang-cxx20-scalar -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_CXX_STANDARD=20 \
  -DCMAKE_BUILD_TYPE=Release -DFQ_USE_XSIMD=OFF -DFQ_BUILD_EXAMPLES=OFF -DFQ_HEADER_CHECK=OFF \
  -DFQ_DOC_SNIPPETS=OFF -DFQ_UNITY_TESTS=ON -DFQ_MPI_TESTS=OFF || failed=$((failed + 1))

if [ -x "$root/scripts/consumer_tests.sh" ] || [ -f "$root/scripts/consumer_tests.sh" ]; then
  echo "=== fakequant packaging consumers"
  clog="$out/consumers.log"
  bash "$root/scripts/consumer_tests.sh" "$root" "$out/consumers" >"$clog" 2>&1 || true
  tail -n 12 "$clog"
  cline=$(grep -E '^consumer: [0-9]+ passed, [0-9]+ failed' "$clog" | tail -n1 || true)
  if [ -n "$cline" ]; then
    passed=$((passed + $(sed -E 's/consumer: ([0-9]+) passed.*/\1/' <<<"$cline")))
    failed=$((failed + $(sed -E 's/.* ([0-9]+) failed.*/\1/' <<<"$cline")))
  else
    echo "fakequant: consumer tests printed no summary"; failed=$((failed + 1))
  fi
fi

echo "fakequant: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
