# scripts/deps.sh: sourced by the README's commands; installs missing Debian packages.
# fq_install_deps PKG...: installs those of PKG that are not installed (apt-get, as root or
# through sudo). Nothing is downloaded from anywhere but the distribution's archive, except by
# fq_install_onnx_runtime (npm's registry).
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
# The ONNX export's consumers (tests/convert/onnx_export.test.cpp, tests/onnx/): the onnx
# package's decoder and checker (run with /usr/bin/python3).
FQ_ONNX_DEPS=(python3-onnx)
# Data-parallel training on MPI (fakequant/distributed/mpi.hpp, its tests and the demo's
# --distributed): Open MPI's mpirun and headers.
FQ_MPI_DEPS=(openmpi-bin libopenmpi-dev)

# fq_install_onnx_runtime DIR: ONNX Runtime's npm package onnxruntime-node (version
# FQ_ORT_NODE_VERSION, default the one the tests were written with) into DIR/node_modules, with
# Debian's nodejs and npm if node or npm is missing. --ignore-scripts: the package ships its CPU
# binaries; its install script only fetches CUDA ones. Cached: nothing to do if DIR holds it. A
# failed install is reported, not fatal: the ONNX Runtime tests then print a visible skip.
fq_install_onnx_runtime() {
  local dir=$1 version=${FQ_ORT_NODE_VERSION:-1.31.1}
  [ -f "$dir/node_modules/onnxruntime-node/package.json" ] && return 0
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    fq_install_deps nodejs npm
  fi
  mkdir -p "$dir"
  echo "fakequant: installing onnxruntime-node@$version into $dir (npm)"
  (cd "$dir" && npm install --ignore-scripts --no-audit --no-fund --silent \
    "onnxruntime-node@$version" >/dev/null) ||
    echo "fakequant: npm install onnxruntime-node failed; the ONNX Runtime tests will be skipped"
}
