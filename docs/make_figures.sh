#!/usr/bin/env bash
# Regenerate the pictures of the README and the docs from the bundled examples, with the real CLI:
#   docs/img/what-it-does.png    HQ | real LQ (a known D) | learned LQ (bank) | best preset, with insets
#   docs/img/report-transfer.png a screenshot of the eval transfer report
#   docs/img/report-shards.png   a screenshot of a shard folder's report
# CPU: about 5-10 minutes on 2 cores, almost all of it the eval transfer fit (600 steps of
# recipes/cpu.toml). An existing OUT/transfer/report.json is reused. Needs Chromium for the shots.
#   PATH="$PWD/.venv/bin:$PATH" bash docs/make_figures.sh [OUT]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
out="${1:-out/figures}"
img="docs/img"
mkdir -p "$out" "$img"

if [ ! -f "$out/transfer/report.json" ]; then
  redeg eval transfer examples/brick.png examples/coffee.png examples/grass.png examples/gravel.png \
      examples/rocket.jpg examples/chelsea.png -f examples/astronaut.png -f examples/camera.png \
      -d strong-combo --presets benchmarks/fidelity_suite.toml -r recipes/cpu.toml -o "$out/transfer"
fi
redeg report "$out/transfer" -o "$out/transfer.html" --quiet
python - "$out/transfer" "$img/what-it-does.png" <<'PY'
import sys
from pathlib import Path
from redegkit.report.transfer import comparison_figure
Path(sys.argv[2]).write_bytes(comparison_figure(sys.argv[1], rows=2))
print("wrote", sys.argv[2])
PY

redeg synthesize --preset realesrgan --crop 256 --scale 4 --seed 0 --workers 2 --overwrite --quiet \
    examples "$out/realesrgan"
redeg shards info "$out/realesrgan" --html "$out/shards.html" --json > /dev/null

python tools/browser_check.py "$out/transfer.html" --screenshot "$img/report-transfer.png" \
    --width 1200 --height 900 --max-height 1700 > /dev/null
python tools/browser_check.py "$out/shards.html" --screenshot "$img/report-shards.png" \
    --width 1200 --height 900 --max-height 1700 > /dev/null
echo "wrote $img/report-transfer.png $img/report-shards.png"
