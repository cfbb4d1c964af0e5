#!/usr/bin/env bash
# The one GPU run of issue 11: every benchmark prints both sides of each ratio and the device name.
# Usage (repository root, CUDA machine, the package installed):  OUT=out/gpu bash benchmarks/gpu_suite.sh
# Each step has its own time limit, so one slow step does not cost the others; logs go to $OUT.
set -u
OUT=${OUT:-out/gpu}
mkdir -p "$OUT"
run() {  # name, seconds, command...
  local name=$1 limit=$2
  shift 2
  echo "=== $name (limit ${limit}s)" | tee -a "$OUT/summary.txt"
  timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
  echo "rc=$?" | tee -a "$OUT/summary.txt"
  tail -n 25 "$OUT/$name.log" | tee -a "$OUT/summary.txt"
}
nvidia-smi -L | tee "$OUT/summary.txt"
python -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0))" | tee -a "$OUT/summary.txt"
run sync_check 120 python benchmarks/sync_check.py
run synth_learned 240 python benchmarks/synth_learned.py --images 256 --warm-images 16 --workers 16 --json-out "$OUT/synth_learned.json"
run fit_step 150 python benchmarks/fit_step.py --json
run train_sr_step 150 python benchmarks/train_sr_step.py --compile
