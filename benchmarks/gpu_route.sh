#!/usr/bin/env bash
# The GPU route in one command, for a lent GPU machine (see README, "Training on a lent GPU").
# It runs in the repository root of a copy of the working tree, with data/gpu-pack carried over
# (`kdassert pack`), and writes what comes back into $OUT (default: ./out-gpu-route):
#
#   run tool:  command  "bash benchmarks/gpu_route.sh"
#              carry    ["data/gpu-pack"]
#              timeout  600
#   dry run:   "bash benchmarks/gpu_route.sh --dry-run"   (pack, models, one timed step each)
#
# Extra arguments go to `kdassert gpu-route` (e.g. --minutes 7). Check the size of what would be
# carried first, on this side: python benchmarks/gpu_route_check.py
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
OUT="${OUT:-$PWD/out-gpu-route}"
python3 - <<'PY'
import platform, torch, transformers
cuda = torch.cuda.is_available()
print(f"python {platform.python_version()}, torch {torch.__version__}, transformers "
      f"{transformers.__version__}, device {torch.cuda.get_device_name(0) if cuda else 'cpu'}", flush=True)
PY
exec python3 -m distillation gpu-route --pack data/gpu-pack --out "$OUT" --minutes "${MINUTES:-8}" "$@"
