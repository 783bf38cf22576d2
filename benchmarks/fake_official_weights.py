"""Write random weights in the official Pose2ID file layout, from the checkpoint manifests.

Every key and shape of the five official files (``../shared/data/checkpoint_manifests``) gets a
random tensor, saved under the official file name (``denoising_unet.pth``, ..., ``IFR.pth``,
``transformer_20.pth``) as a plain state dict, plus a random sd-vae-ft-mse folder (``vae/``). The
real loading code then runs end to end at full size without the 7 GB download:

    python -m benchmarks.fake_official_weights /tmp/pose2id-random
    python -m pose2id generate --ckpt-dir /tmp/pose2id-random --vae /tmp/pose2id-random/vae \\
        --ref photo.jpg --poses standard --out /tmp/out --cpu --steps 2

The images are noise; what this checks is that the official files' names, keys and shapes load
strictly and flow through the full-size pipeline. ``--dtype float16`` halves the 7 GB on disk.
"""

import argparse
import json
import time
from pathlib import Path

import torch

from pose2id.ipg import build
from pose2id.ipg.weights import POSE2ID_FILES

ROOT = Path(__file__).resolve().parents[1]


def random_state_dict(manifest, dtype, generator):
    """{key: tensor of the manifest's shape}; BatchNorm counters are int64 scalars as in the file."""
    state = {}
    for key, shape in manifest.items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(0, dtype=torch.int64)
        else:
            state[key] = (torch.randn(shape, generator=generator) * 0.02).to(dtype)
    return state


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="folder to write (created)")
    parser.add_argument("--manifests", type=Path, default=ROOT.parent / "shared" / "data" / "checkpoint_manifests")
    parser.add_argument("--dtype", choices=["float32", "float16"], default="float32")
    args = parser.parse_args(argv)
    dtype = getattr(torch, args.dtype)
    generator = torch.Generator().manual_seed(0)
    args.out.mkdir(parents=True, exist_ok=True)
    for component, filename in POSE2ID_FILES.items():
        start = time.perf_counter()
        manifest = json.loads((args.manifests / f"{component}.json").read_text())
        torch.save(random_state_dict(manifest, dtype, generator), args.out / filename)
        size = (args.out / filename).stat().st_size / 2**20
        print(f"{filename}: {len(manifest)} tensors, {size:.0f} MiB, {time.perf_counter() - start:.1f} s")
    build("vae", dtype=dtype).save_pretrained(args.out / "vae")
    print(f"vae/: random sd-vae-ft-mse ({args.out / 'vae'})")


if __name__ == "__main__":
    main()
