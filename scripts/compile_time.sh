#!/usr/bin/env bash
# scripts/compile_time.sh BEFORE AFTER: what a user's translation unit costs to compile, for two
# checkouts of fakequant (e.g. `git worktree add /tmp/before <commit>`), compared in one run.
# Three TUs: the README's example (fakequant.hpp), an empty TU including fakequant/fakequant.hpp
# and one including fakequant/all.hpp; g++ -std=c++17 -O2 -c, N rounds (default 5) of
# (before, after) interleaved so that machine noise hits both alike, medians reported. Also the
# preprocessed non-blank line counts: fakequant's own lines and all lines (std, Eigen, xsimd).
set -euo pipefail
before=$1; after=$2; n=${N:-5}; cxx=${CXX:-g++}
tmp=$(mktemp -d)
awk '/^```cpp/{f=1;next} /^```/{if(f){exit}} f' "$after/README.md" > "$tmp/readme.cpp"
printf '#include <fakequant/fakequant.hpp>\nint main() {}\n' > "$tmp/light.cpp"
printf '#include <fakequant/all.hpp>\nint main() {}\n' > "$tmp/all.cpp"
for tu in readme light all; do
  declare -a tb=() ta=()
  for i in $(seq "$n"); do
    for side in before after; do
      root=${!side}
      s=$(date +%s.%N); $cxx -std=c++17 -O2 -I"$root/include" -I/usr/include/eigen3 -DFQ_HAS_XSIMD=1 -c "$tmp/$tu.cpp" -o "$tmp/o.o"; e=$(date +%s.%N)
      t=$(echo "$e - $s" | bc); if [ $side = before ]; then tb+=("$t"); else ta+=("$t"); fi
    done
  done
  mb=$(printf '%s\n' "${tb[@]}" | sort -n | sed -n "$(( (n + 1) / 2 ))p")
  ma=$(printf '%s\n' "${ta[@]}" | sort -n | sed -n "$(( (n + 1) / 2 ))p")
  lines() { $cxx -std=c++17 -I"$1/include" -I/usr/include/eigen3 -DFQ_HAS_XSIMD=1 -E "$tmp/$tu.cpp" | awk '/^# [0-9]+ "/{f=($3 ~ /include\/fakequant/)} !/^#/ && NF && f' | wc -l; }
  tot() { $cxx -std=c++17 -I"$1/include" -I/usr/include/eigen3 -DFQ_HAS_XSIMD=1 -E "$tmp/$tu.cpp" | grep -v '^#' | grep -c .; }
  printf '%-7s before %6.2fs after %6.2fs ratio %.2f | fakequant lines %5d -> %5d | all lines %6d -> %6d\n' \
    "$tu" "$mb" "$ma" "$(echo "$ma / $mb" | bc -l)" "$(lines "$before")" "$(lines "$after")" "$(tot "$before")" "$(tot "$after")"
done
rm -rf "$tmp"
