#!/usr/bin/env bash
# redegkit quickstart on the bundled example images (CPU: three to five minutes on 2 cores).
# 1. Classical synthesis into WebDataset shards, and a look at what was written.
# 2. The learned ReDegNet pipeline with tiny networks (examples/full_pipeline.sh).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-out/quickstart}"

redeg synthesize --preset realesrgan --crop 256 --scale 4 --seed 0 --workers 2 \
    --overwrite "$here" "$out/realesrgan"
redeg shards info "$out/realesrgan" --html "$out/realesrgan.html"   # counts, parameters, samples
redeg shards preview "$out/realesrgan" -o "$out/realesrgan_sheet.png" --n 6
# for other trainers: paired folders (+ a dataset.yml to paste), and back into shards
redeg export "$out/realesrgan" "$out/realesrgan_folders" --format folders --overwrite --quiet
redeg shards pack "$out/realesrgan_folders/hq" "$out/realesrgan_folders/lq" "$out/realesrgan_packed" \
    --overwrite --quiet

cat <<MSG

Classical shards are in $out/realesrgan (KEY.hq.png, KEY.lq.png, KEY.json per sample).
Contact sheet: $out/realesrgan_sheet.png
Read them in PyTorch:

  from redegkit.io.shards import paired_dataset
  ds = paired_dataset("$out/realesrgan", crop=128, scale=4, shuffle=100)
  lq, hq = next(iter(ds))   # [3,32,32], [3,128,128] in [-1, 1]
MSG
python - "$out/realesrgan" <<'PY'
import sys
from redegkit.io.shards import paired_dataset
ds = paired_dataset(sys.argv[1], crop=128, scale=4, shuffle=100)
n, (lq, hq) = sum(1 for _ in ds), next(iter(ds))
print(f"read back {n} pairs with paired_dataset: lq {tuple(lq.shape)}, hq {tuple(hq.shape)}, "
      f"range [{float(min(lq.min(), hq.min())):.2f}, {float(max(lq.max(), hq.max())):.2f}]")
PY

bash "$here/full_pipeline.sh" "$out/pipeline"

cat <<MSG

Reports to open in a browser (each one self-contained HTML file):
  $out/realesrgan.html          classical shards: counts, size histograms, parameters, samples
  $out/pipeline/fit.html        the fit: loss and validation curves, previews
  $out/pipeline/bank.html       the bank: clusters (PCA), a preview per cluster centre, provenance
  $out/pipeline/shards.html     the learned shards
  $out/pipeline/sr.html         the SR training run
MSG
