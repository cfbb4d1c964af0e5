#!/usr/bin/env bash
# The one GPU run of issue 11: every benchmark prints both sides of each ratio and the device name.
#
# Usage, from the repository root of a CUDA machine:
#   OUT=out/gpu bash benchmarks/gpu_suite.sh                 # all steps, about 6-7 minutes at most
#   STEPS="fit_step train_sr_step" OUT=… bash benchmarks/gpu_suite.sh   # a rerun of some steps only
#   TINY=1 OUT=/tmp/g bash benchmarks/gpu_suite.sh           # smoke test of the script on a CPU
#
# The package need not be installed: the repository root goes on PYTHONPATH. Python packages the
# machine lacks travel as wheels in .whl/ (made by `bash benchmarks/device_wheels.sh` on a machine
# with PyPI; WHEELS=DIR names another folder); when it holds wheels they are installed into
# /tmp/site first (no index, no deps), and /tmp/site goes on PYTHONPATH.
# On the device tool: run(command="OUT=$OUT bash benchmarks/gpu_suite.sh", carry=[".whl"], timeout_s=540).
# Each step has its own time limit (the sum, 480 s, fits one 10-minute device command with time to
# spare), so one slow step does not cost the others; logs and JSON go to $OUT.
set -u
OUT=${OUT:-out/gpu}
PY=${PYTHON:-python3}
STEPS=${STEPS:-"sync_check synth_learned fit_step train_sr_step"}
TINY=${TINY:-}
WHEELS=${WHEELS:-.whl}
mkdir -p "$OUT"
: >"$OUT/summary.txt"
if [ -d "$WHEELS" ] && ls "$WHEELS"/*.whl >/dev/null 2>&1; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$WHEELS"/*.whl \
    || { echo "installing $WHEELS/ failed" | tee -a "$OUT/summary.txt"; exit 1; }
  export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
run() {  # name, seconds, command...
  local name=$1 limit=$2
  shift 2
  case " $STEPS " in *" $name "*) ;; *) return 0 ;; esac
  echo "=== $name (limit ${limit}s): $*" | tee -a "$OUT/summary.txt"
  local t0=$SECONDS
  timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
  echo "rc=$? after $((SECONDS - t0)) s" | tee -a "$OUT/summary.txt"
  tail -n 25 "$OUT/$name.log" | tee -a "$OUT/summary.txt"
}
{ nvidia-smi -L 2>/dev/null || echo "nvidia-smi: not found"; } | tee -a "$OUT/summary.txt"
"$PY" -c "import torch, redegkit, pydantic; print('python', __import__('sys').version.split()[0], 'torch', torch.__version__,
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no CUDA', 'redegkit', redegkit.__file__)" \
  2>&1 | tee -a "$OUT/summary.txt"
if [ -n "$TINY" ]; then  # CPU smoke test: the same steps on tiny networks
  run sync_check 60 "$PY" benchmarks/sync_check.py
  run synth_learned 150 "$PY" benchmarks/synth_learned.py --tiny --images 8 --warm-images 2 --workers 2 \
    --json-out "$OUT/synth_learned.json"
  run fit_step 100 "$PY" benchmarks/fit_step.py --tiny --json
  run train_sr_step 100 "$PY" benchmarks/train_sr_step.py --tiny
else
  # the host path (benchmarks/synth_host.py) is CPU-measurable and measured elsewhere; on this
  # machine it would cost minutes of device time, so it is left out here.
  run sync_check 60 "$PY" benchmarks/sync_check.py
  run synth_learned 180 "$PY" benchmarks/synth_learned.py --images 256 --warm-images 16 --workers 16 \
    --json-out "$OUT/synth_learned.json"
  run fit_step 110 "$PY" benchmarks/fit_step.py --json
  run train_sr_step 130 "$PY" benchmarks/train_sr_step.py --compile
fi
echo "=== done" | tee -a "$OUT/summary.txt"
