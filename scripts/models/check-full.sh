#!/usr/bin/env bash
# Full-size correctness check: writes the six seed models at full size
# (224x224, ImageNet widths; ~1.1 GB in all) and compares the plan's reference
# executor with tract-onnx on each, fp32 and fp16, in a release build.
#
#   scripts/models/check-full.sh [OUT_DIR] [BATCH]     (default target/models, 1)
#
# Needs: pip install -r scripts/models/requirements.txt
# Takes a few minutes on 2 cores (the reference executor is deliberately plain).
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-target/models}
batch=${2:-1}
models=(alexnet mobilenet_v2 resnet50 vgg19 resnext50 densenet121)
missing=()
for m in "${models[@]}"; do [ -f "$out/$m.onnx" ] || missing+=("$m"); done
if ((${#missing[@]})); then
  python3 scripts/models/export.py "$out" "${missing[@]}"
fi
status=0
for m in "${models[@]}"; do
  cargo run --release -q -p netml-infer --example compare -- \
    "$out/$m.onnx" --batch "$batch" --precision both || status=1
done
exit $status
