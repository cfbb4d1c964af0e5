#!/usr/bin/env bash
# The whole ReDegNet pipeline on the bundled examples, with tiny CPU settings (about two minutes).
#   face pairs -> fit-degradation -> bake -> bank info/preview -> synthesize --bank -> train-sr -> upscale
# Real runs use `redeg pseudo-hq photos/ pairs/` (needs GFPGAN weights) instead of the demo pairs,
# and recipes/paper.toml + recipes/f2n-esrgan.toml on a GPU instead of recipes/smoke.toml.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
recipes="$here/../recipes"
out="${1:-out/pipeline}"
mkdir -p "$out"
rm -rf "$out/pairs" "$out/fit" "$out/sr" "$out/restored"   # this demo's own folders: start fresh

echo "== 1. face pairs (demo: real detection + alignment, known LQ degradation)"
python "$here/make_demo_pairs.py" "$out/pairs"

echo "== 2. fit the degradation (smoke recipe: tiny networks; 300 steps, about a minute on a CPU)"
redeg fit-degradation --pairs "$out/pairs" --natural "$here" --recipe "$recipes/smoke.toml" \
    --out "$out/fit" --steps "${FIT_STEPS:-300}"
redeg report "$out/fit" -o "$out/fit.html"                 # curves and previews, in a browser

echo "== 3. bake the bank"
redeg bake --model "$out/fit/last.pt" --pairs "$out/pairs" -o "$out/emb.pt"
redeg bank info "$out/emb.pt" --html "$out/bank.html" --image "$here/chelsea.png"
redeg bank preview "$out/emb.pt" --image "$here/chelsea.png" -o "$out/bank_preview.png" --n 4 --size 128

echo "== 4. synthesize learned pairs (30% through realesrgan, hybrid)"
redeg synthesize --bank "$out/emb.pt" --mix-preset realesrgan:0.3 --crop 128 --scale 4 \
    --overwrite "$here" "$out/shards"
redeg shards info "$out/shards" --html "$out/shards.html"

echo "== 5. train a tiny F2N-ESRGAN on the shards, then upscale"
redeg train-sr --shards "$out/shards" --recipe "$recipes/smoke.toml" --out "$out/sr"
redeg report "$out/sr" -o "$out/sr.html"
redeg upscale "$here/chelsea.png" "$out/restored" --model "$out/sr/net_g_ema.pt" --tile 128

echo
echo "done: bank $out/emb.pt, shards $out/shards, SR model $out/sr, restored image in $out/restored"
echo "reports: $out/fit.html $out/bank.html $out/shards.html $out/sr.html"
