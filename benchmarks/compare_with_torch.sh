#!/usr/bin/env bash
# benchmarks/compare_with_torch.sh: times the Fashion-MNIST demo (examples/fashion_mnist_qat.cpp)
# against its PyTorch 1.13 eager peer (benchmarks/torch_fashion_mnist_qat.py) on this machine,
# same flags, one pinned core, and prints the ratios fakequant/PyTorch of the FP32 epoch time,
# the QAT W8A8 epoch time and the INT8 images/s (medians over the repetitions) (issue 17).
#
#   benchmarks/compare_with_torch.sh [OUTDIR]
#
# Environment: REPS (3), CPU (the core to pin to, 1), TRAIN (20000), BATCH (128), EPOCHS (1),
# QAT_EPOCHS (1), TEST (test images, 0: all 10,000; less only for a smoke test), BUILD (build-torchpeer), TORCH_BLAS_DIR (a directory holding another
# libblas.so.3, e.g. OpenBLAS's, put first on PyTorch's LD_LIBRARY_PATH as a second PyTorch
# run: Debian's python3-torch calls whatever libblas.so.3 the system provides, by default the
# reference BLAS).
# The demo also runs its W4A8 phase (it has no flag to skip it); only its FP32, QAT W8A8 and
# INT8 lines are read. Each run is wrapped in /usr/bin/time to record the CPU share it got
# (user+sys over wall): on a shared machine a share well below 100% means the figures are low.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${1:-$root/build-torchpeer/compare}
reps=${REPS:-3} cpu=${CPU:-1} train=${TRAIN:-20000} batch=${BATCH:-128}
epochs=${EPOCHS:-1} qat_epochs=${QAT_EPOCHS:-1} build=${BUILD:-$root/build-torchpeer}
mkdir -p "$out"

if [[ -z ${SUMMARY_ONLY:-} ]]; then
# The demo as scripts/demo.sh builds it: Release, -march=native (niced, one job: shared machine).
nice -n 10 cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DFQ_NATIVE_ARCH=ON \
  -DFQ_BUILD_TESTS=OFF -DFQ_BUILD_EXAMPLES=ON >/dev/null
nice -n 10 cmake --build "$build" -j 1 --target fashion_mnist_qat >/dev/null
fi

flags=(--threads 1 --batch "$batch" --train-subset "$train" --test-subset "${TEST:-0}"
  --epochs "$epochs" --qat-epochs "$qat_epochs")
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
timed() {  # timed LOG CMD...: runs CMD pinned to $cpu, stdout to LOG, CPU share to LOG.time
  local log=$1
  shift
  /usr/bin/time -f '%e %U %S' -o "$log.time" taskset -c "$cpu" "$@" >"$log"
}
# SUMMARY_ONLY=1: no build and no runs, only the table of the logs already in OUTDIR.
[[ -n ${SUMMARY_ONLY:-} ]] && reps_to_run=0 || reps_to_run=$reps
# FIRST: the number of the first repetition (to add repetitions to an OUTDIR; the table reads
# repetitions 1..FIRST+REPS-1).
first=${FIRST:-1}
for r in $(seq "$first" $((first + reps_to_run - 1))); do
  echo "rep $r: $(uptime)" | tee "$out/load.$r"
  timed "$out/fq.$r.log" "$build/examples/fashion_mnist_qat" "${flags[@]}"
  timed "$out/torch.$r.log" /usr/bin/python3 "$root/benchmarks/torch_fashion_mnist_qat.py" \
    "${flags[@]}" --json "$out/torch.$r.json"
  if [[ -n ${TORCH_BLAS_DIR:-} ]]; then
    LD_LIBRARY_PATH=$TORCH_BLAS_DIR timed "$out/torchblas.$r.log" /usr/bin/python3 \
      "$root/benchmarks/torch_fashion_mnist_qat.py" "${flags[@]}" --json "$out/torchblas.$r.json"
  fi
  echo "rep $r done: $(uptime)" | tee -a "$out/load.$r"
done

/usr/bin/python3 - "$out" $((first + reps - 1)) "$train" "$batch" <<'EOF'
import json, re, statistics, sys
out, reps, train, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
imgs = train // batch * batch  # images per epoch: the last partial batch is dropped

def share(log):
    wall, user, sys_ = map(float, open(log + ".time").read().split()[-3:])
    return (user + sys_) / wall

def demo(r):
    log = f"{out}/fq.{r}.log"
    t = open(log).read()
    fp32 = [float(m) for m in re.findall(r"(?m)^FP32\s+epoch .*?(\d+) img/s", t)]
    qat = [float(m) for m in re.findall(r"(?m)^QAT W8A8\s+epoch .*?(\d+) img/s", t)]
    int8 = float(re.search(r"(?m)^INT8 deployed\s+test acc \S+\s+(\d+) img/s", t).group(1))
    acc = {k: float(re.search(rf"(?m)^\| {k}\s*\|\s*([\d.]+)%", t).group(1)) / 100
           for k in ("FP32", "QAT W8A8", "INT8")}
    return dict(fp32_s=statistics.median(imgs / x for x in fp32), fp32_ips=statistics.median(fp32),
                qat_s=statistics.median(imgs / x for x in qat), qat_ips=statistics.median(qat),
                int8_ips=int8, acc=acc, cpu_share=share(log))

def torch_run(tag, r):
    try:
        j = json.load(open(f"{out}/{tag}.{r}.json"))
    except FileNotFoundError:
        return None
    return dict(fp32_s=statistics.median(j["fp32_epoch_s"]), fp32_ips=statistics.median(j["fp32_ips"]),
                qat_s=statistics.median(j["qat_epoch_s"]), qat_ips=statistics.median(j["qat_ips"]),
                int8_ips=j["int8_ips"], engine=j["engine"],
                acc={"FP32": j["acc_fp32"], "QAT W8A8": j["acc_qat_w8a8"], "INT8": j["acc_int8"]},
                cpu_share=share(f"{out}/{tag}.{r}.log"))

runs = {"fakequant": [demo(r) for r in range(1, reps + 1)]}
for tag, name in (("torch", "PyTorch"), ("torchblas", "PyTorch+TORCH_BLAS_DIR")):
    v = [torch_run(tag, r) for r in range(1, reps + 1)]
    if all(v):
        runs[name] = v
med = lambda name, k: statistics.median(x[k] for x in runs[name])
print(f"\n{reps} repetition(s), 1 thread, batch {batch}, {train} training images "
      f"({imgs} per epoch), medians:")
print("| program | FP32 epoch s (img/s) | QAT W8A8 epoch s (img/s) | INT8 img/s | CPU share |")
print("|---|---|---|---|---|")
for name in runs:
    print(f"| {name} | {med(name,'fp32_s'):.2f} ({med(name,'fp32_ips'):.0f}) | "
          f"{med(name,'qat_s'):.2f} ({med(name,'qat_ips'):.0f}) | {med(name,'int8_ips'):.0f} | "
          f"{min(x['cpu_share'] for x in runs[name]):.0%}-{max(x['cpu_share'] for x in runs[name]):.0%} |")
summary = {"reps": reps, "batch": batch, "train": train, "runs": runs, "ratios": {}}
for name in runs:
    if name == "fakequant":
        continue
    rat = {"fp32_epoch_time": med("fakequant", "fp32_s") / med(name, "fp32_s"),
           "qat_epoch_time": med("fakequant", "qat_s") / med(name, "qat_s"),
           "int8_ips": med("fakequant", "int8_ips") / med(name, "int8_ips")}
    summary["ratios"][name] = rat
    print(f"fakequant/{name}: FP32 epoch time {rat['fp32_epoch_time']:.2f}x (target <= 0.7), "
          f"QAT epoch time {rat['qat_epoch_time']:.2f}x (target <= 0.7), "
          f"INT8 img/s {rat['int8_ips']:.2f}x (target >= 1)")
    per = [(f["fp32_s"] / t["fp32_s"], f["qat_s"] / t["qat_s"], f["int8_ips"] / t["int8_ips"])
           for f, t in zip(runs["fakequant"], runs[name])]
    print("  per repetition (FP32, QAT, INT8): " +
          "; ".join(f"{a:.2f} {b:.2f} {c:.2f}" for a, b, c in per))
for name in runs:
    a = runs[name][0]["acc"]
    print(f"{name} accuracies (rep 1): " + ", ".join(f"{k} {v:.4f}" for k, v in a.items()))
json.dump(summary, open(f"{out}/summary.json", "w"), indent=1)
EOF
