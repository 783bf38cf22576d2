#!/usr/bin/env bash
# Run ON the lent GPU machine, from the repository root, with .gpu/ carried (made by
# benchmarks/gpu_prepare.sh): the GPU correctness check, then the speed benchmark. Everything is
# also written to $OUT (the device tool brings it back). Extra arguments go to ipg_speed. The whole
# run is bounded to fit one 10-minute device command: each "done:" row is printed as it finishes,
# so a compile that runs long still leaves the eager rows.
set -uo pipefail
OUT=${OUT:-/tmp/pose2id-gpu}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/wheels/*.whl || exit 1
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm --format=csv | tee "$OUT/env.txt"
python3 -c "import torch, diffusers; print('torch', torch.__version__, 'diffusers', diffusers.__version__)" | tee -a "$OUT/env.txt"
timeout 120 python3 -m benchmarks.ipg_gpu_check --fixtures .gpu/fixtures 2>&1 | tee "$OUT/gpu_check.txt"
check=${PIPESTATUS[0]}
timeout 420 python3 -m benchmarks.ipg_speed --compile "$@" 2>&1 | tee "$OUT/ipg_speed.txt"
speed=${PIPESTATUS[0]}
echo "gpu check exit $check, speed benchmark exit $speed"
[ "$check" = 0 ] && [ "$speed" = 0 ]
