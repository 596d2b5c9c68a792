# scripts/deps.sh: sourced by the README's commands; installs missing Debian packages.
# fq_install_deps PKG...: installs those of PKG that are not installed (apt-get, as root or
# through sudo). Nothing is downloaded from anywhere but the distribution's archive.
fq_install_deps() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "fakequant: installing ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# The packages every build needs.
FQ_BUILD_DEPS=(cmake make g++ libeigen3-dev libxsimd-dev)
# The Fashion-MNIST demo's: zlib for the .gz files, OpenMP for Eigen's threads, the data set.
FQ_DEMO_DEPS=(zlib1g-dev libgomp1 dataset-fashion-mnist)
# The LibTorch interop example's (optional: examples/libtorch_interop.cpp is built when found).
FQ_TORCH_DEPS=(libtorch-dev)
