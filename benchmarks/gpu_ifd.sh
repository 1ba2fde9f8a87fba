#!/usr/bin/env bash
# IFD on one GPU with the Gemma 3 270M architecture and random weights (benchmarks/gpu_ifd.py), in two steps:
#
#   bash benchmarks/gpu_ifd.sh prepare        # here: config + tokenizer files (~33 MB) into build/gpu_ifd/model-files
#   bash benchmarks/gpu_ifd.sh run [ARGS...]  # on the GPU machine, with build/gpu_ifd/model-files carried along:
#                                             # writes $OUT/gpu_ifd.json (OUT defaults to benchmarks/results)
#
# The GPU machine needs torch and transformers (>= 4.56, for from_pretrained(dtype=...)) and no network. ARGS go
# to gpu_ifd.py (--n 30000 records by default; a check on the CPU: `run --device cpu --n 40 --n-check 4`).
set -euo pipefail
cd "$(dirname "$0")/.."
FILES=build/gpu_ifd/model-files
PY="${PYTHON:-python3}"
case "${1:-run}" in
  prepare)
    src="${VAD_MODEL_DIR:-build/cache/models}/gemma3-270m"
    mkdir -p "$FILES"
    cp "$src/config.json" "$src/tokenizer.json" "$src/tokenizer_config.json" "$FILES/"
    if [ -f "$src/generation_config.json" ]; then cp "$src/generation_config.json" "$FILES/"; fi
    du -sh "$FILES"
    ;;
  run)
    shift || true
    out="${OUT:-benchmarks/results}"
    mkdir -p "$out"
    "$PY" -c "import torch, transformers; print('torch', torch.__version__, '| transformers', transformers.__version__, '| cuda', torch.cuda.is_available())"
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || true
    PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" "$PY" benchmarks/gpu_ifd.py --files "$FILES" --out "$out/gpu_ifd.json" "$@"
    ;;
  *)
    echo "usage: $0 prepare | run [gpu_ifd.py args]" >&2
    exit 2
    ;;
esac
