#!/usr/bin/env bash
# Run ON the lent GPU machine, with .gpu/ carried (benchmarks/gpu_prepare.sh): random weights in the official file layout, then the CLI end to end (load + 8 poses, 20 steps).
set -uo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/wheels/*.whl || exit 1
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
t0=$(date +%s%N)
python3 -m benchmarks.fake_official_weights /tmp/w --dtype float16 --manifests .gpu/manifests 2>&1 | grep -v Warn
t1=$(date +%s%N); echo "fake weights written in $(( (t1 - t0) / 1000000 )) ms"
for mode in default low; do
  extra=""; [ $mode = low ] && extra="--low-memory"
  s=$(date +%s%N)
  python3 -m pose2id generate --ckpt-dir /tmp/w --vae /tmp/w/vae --ref assets/examples/rgb2.jpg --poses standard \
      --out /tmp/gen_$mode $extra 2>&1 | grep -v Warn | tail -5
  rc=${PIPESTATUS[0]}; e=$(date +%s%N)
  echo "CLI generate ($mode): exit $rc, $(( (e - s) / 1000000 )) ms wall including process start and loading"
  cp /tmp/gen_$mode/contact_sheet.png $OUT/contact_sheet_$mode.png 2>/dev/null
done
python3 - <<'PY' 2>&1 | grep -v Warn
import time, torch
from pose2id.ipg import IPGPipeline
from pose2id.poses import load_standard_poses
from PIL import Image
t = time.perf_counter()
pipe = IPGPipeline.from_official("/tmp/w", vae="/tmp/w/vae", device="cuda", dtype=torch.float16)
torch.cuda.synchronize(); print(f"from_official on cuda: {time.perf_counter() - t:.1f} s")
ref = Image.open("assets/examples/rgb2.jpg")
for i in range(3):
    torch.cuda.synchronize(); t = time.perf_counter()
    out = pipe(ref, load_standard_poses(), num_inference_steps=20, guidance_scale=3.5, generator=torch.Generator().manual_seed(0), output_type="np")
    torch.cuda.synchronize(); print(f"call {i}: {time.perf_counter() - t:.2f} s, images {out.images.shape}, finite {bool(__import__('numpy').isfinite(out.images).all())}")
print(f"peak allocated {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB")
PY
