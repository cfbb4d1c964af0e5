#!/usr/bin/env bash
# redegkit quickstart on the bundled example images (CPU, about a minute).
# Classical synthesis into WebDataset shards, then a look at what was written.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-out/quickstart}"

redeg synthesize --preset realesrgan --crop 256 --scale 4 --seed 0 --workers 2 \
    --overwrite "$here" "$out/realesrgan"
redeg shards info "$out/realesrgan"
redeg shards preview "$out/realesrgan" -o "$out/realesrgan_sheet.png" --n 6

cat <<MSG

Shards are in $out/realesrgan (KEY.hq.png, KEY.lq.png, KEY.json per sample).
Contact sheet: $out/realesrgan_sheet.png
Read them in PyTorch:

  from redegkit.io.shards import paired_dataset
  ds = paired_dataset("$out/realesrgan", crop=128, scale=4, shuffle=100)
  lq, hq = next(iter(ds))   # [3,32,32], [3,128,128] in [-1, 1]
MSG
