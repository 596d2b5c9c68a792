#!/usr/bin/env bash
# scripts/consumer_tests.sh [REPO_ROOT] [BUILD_ROOT]: checks that downstream CMake projects
# can use fakequant the three usual ways (tests/cmake/*), and the installed package itself.
#
#   1. configures, builds and installs fakequant (tests/examples off) to BUILD_ROOT/prefix;
#   2. checks the installed tree (headers, Config and ConfigVersion files, fakequant.pc) and
#      compiles a program with the flags of `pkg-config --cflags fakequant` alone;
#   3. builds and runs tests/cmake/find_package against that prefix, and
#      tests/cmake/add_subdirectory and tests/cmake/fetch_content against REPO_ROOT;
#   4. checks that find_package(fakequant 1.0) rejects version 0.x (SameMajorVersion).
#
# REPO_ROOT defaults to this script's parent directory, BUILD_ROOT to REPO_ROOT/build-consumers.
# Prints one line per check and "consumer: N passed, M failed"; exits non-zero if M > 0.
# Each failed check's log is printed (tail) and kept in BUILD_ROOT/logs. Honours the usual
# CMake environment (CXX, CMAKE_GENERATOR, ...). No network access.
set -euo pipefail

repo=$(cd "${1:-$(dirname "${BASH_SOURCE[0]}")/..}" && pwd)
build_root=${2:-$repo/build-consumers}
mkdir -p "$build_root"
build_root=$(cd "$build_root" && pwd)
jobs=(-j2)

prefix=$build_root/prefix
logs=$build_root/logs
# Start clean so the script is re-runnable; remove only what this script creates.
for d in pkg prefix logs pkg_config find_package add_subdirectory fetch_content version_mismatch; do
  rm -rf "${build_root:?}/$d"
done
mkdir -p "$logs"

passed=0
failed=0

# check NAME DESCRIPTION FUNCTION [ARGS...]: runs FUNCTION under `set -e` in a subshell,
# logging to $logs/NAME.log, and prints "consumer: DESCRIPTION ... ok|FAILED".
check() {
  local name=$1 desc=$2
  shift 2
  local log=$logs/$name.log rc
  set +e
  ( set -e; "$@" ) >"$log" 2>&1
  rc=$?
  set -e
  if [[ $rc -eq 0 ]]; then
    passed=$((passed + 1))
    echo "consumer: $desc ... ok"
  else
    failed=$((failed + 1))
    echo "consumer: $desc ... FAILED (exit $rc, log: $log)"
    tail -n 40 "$log" | sed 's/^/    | /'
  fi
}

install_package() {
  cmake -S "$repo" -B "$build_root/pkg" -DFQ_BUILD_TESTS=OFF -DFQ_BUILD_EXAMPLES=OFF \
    -DCMAKE_INSTALL_PREFIX="$prefix"
  cmake --build "$build_root/pkg" "${jobs[@]}"
  cmake --install "$build_root/pkg"
}

installed_file() {
  if [[ ! -f "$prefix/$1" ]]; then
    echo "missing: $prefix/$1"
    return 1
  fi
}

# build_and_run NAME [CMAKE ARGS...]: configures tests/cmake/NAME, builds it, runs fq_consumer.
build_and_run() {
  local name=$1
  shift
  local b=$build_root/$name
  cmake -S "$repo/tests/cmake/$name" -B "$b" "$@"
  cmake --build "$b" "${jobs[@]}"
  local exe
  exe=$(find "$b" -maxdepth 2 -type f -name fq_consumer -perm -u+x | head -n 1)
  [[ -n $exe ]] || { echo "fq_consumer not found under $b"; return 1; }
  "$exe"
  # fakequant's own test binaries must not have been built.
  if find "$b" -type f \( -name fq_tests -o -name fq_no_exceptions \) | grep -q .; then
    echo "fakequant's own tests were built in $b"
    return 1
  fi
}

find_package_consumer() {
  build_and_run find_package -DCMAKE_PREFIX_PATH="$prefix" \
    -DCMAKE_FIND_PACKAGE_NO_PACKAGE_REGISTRY=ON -DCMAKE_FIND_PACKAGE_NO_SYSTEM_PACKAGE_REGISTRY=ON
  # It must have found the package just installed, not another copy.
  local dir
  dir=$(sed -n 's/^fakequant_DIR:[A-Z]*=//p' "$build_root/find_package/CMakeCache.txt")
  [[ $dir == "$prefix"/* ]] || { echo "found fakequant in '$dir', not under $prefix"; return 1; }
}

# A plain compiler invocation with the flags of the installed fakequant.pc.
pkg_config_consumer() {
  local out=$build_root/pkg_config
  mkdir -p "$out"
  local flags
  flags=$(PKG_CONFIG_PATH="$prefix/share/pkgconfig" pkg-config --cflags fakequant)
  echo "pkg-config --cflags fakequant: $flags"
  [[ $flags == *"-I$prefix/include"* ]] || { echo "include path missing"; return 1; }
  # shellcheck disable=SC2086
  ${CXX:-c++} -std=c++17 $flags -DFQ_CONSUMER_HOW='"pkg-config"' \
    "$repo/tests/cmake/consumer_main.cpp" -o "$out/fq_consumer"
  "$out/fq_consumer"
}

# find_package(fakequant 1.0) must fail: 0.x is not compatible with 1.0 (SameMajorVersion).
version_mismatch() {
  local src=$build_root/version_mismatch/src
  mkdir -p "$src"
  cat >"$src/CMakeLists.txt" <<'EOF'
cmake_minimum_required(VERSION 3.16)
project(fakequant_consumer_version_mismatch LANGUAGES NONE)
find_package(fakequant 1.0 REQUIRED)
message(STATUS "unexpectedly accepted fakequant ${fakequant_VERSION} from ${fakequant_DIR}")
EOF
  local out rc=0
  out=$(cmake -S "$src" -B "$build_root/version_mismatch/build" -DCMAKE_PREFIX_PATH="$prefix" \
    -DCMAKE_FIND_PACKAGE_NO_PACKAGE_REGISTRY=ON \
    -DCMAKE_FIND_PACKAGE_NO_SYSTEM_PACKAGE_REGISTRY=ON 2>&1) || rc=$?
  echo "$out"
  if [[ $rc -eq 0 ]]; then
    echo "find_package(fakequant 1.0) succeeded; expected a version mismatch"
    return 1
  fi
  # Fail for the right reason: the installed config was found and its version refused.
  if ! grep -q 'compatible with requested version "1.0"' <<<"$out" ||
    ! grep -q "$prefix/share/cmake/fakequant/fakequantConfig.cmake, version: 0\." <<<"$out"; then
    echo "configure failed, but not because the installed 0.x version was refused"
    return 1
  fi
}

check install "install fakequant to $prefix" install_package
check installed_header "installed include/fakequant/fakequant.hpp" \
  installed_file include/fakequant/fakequant.hpp
check installed_config "installed share/cmake/fakequant/fakequantConfig.cmake" \
  installed_file share/cmake/fakequant/fakequantConfig.cmake
check installed_config_version "installed share/cmake/fakequant/fakequantConfigVersion.cmake" \
  installed_file share/cmake/fakequant/fakequantConfigVersion.cmake
check installed_pkg_config "installed share/pkgconfig/fakequant.pc" \
  installed_file share/pkgconfig/fakequant.pc
check pkg_config "pkg-config consumer (no CMake) builds and runs" pkg_config_consumer
check find_package "find_package(fakequant 0.1) consumer builds and runs" find_package_consumer
check add_subdirectory "add_subdirectory consumer builds and runs" \
  build_and_run add_subdirectory -DFAKEQUANT_SOURCE_DIR="$repo"
check fetch_content "FetchContent consumer builds and runs" \
  build_and_run fetch_content -DFAKEQUANT_SOURCE_DIR="$repo"
check version_mismatch "find_package(fakequant 1.0) is rejected (SameMajorVersion)" \
  version_mismatch

echo "consumer: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
