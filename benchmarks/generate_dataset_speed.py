"""``generate --dataset`` throughput: references/s, images/s and peak GPU memory per batch size.

Full-size models with random weights (speed does not depend on the values), a made-up
Market-1501 style folder of noise photos, 8 standard poses at 512x256, 20 DDIM steps, guidance
3.5, float16; the whole path of ``generate --dataset`` (plan, reference reading, per-image
generators, pipeline, atomic JPEG writes). Each batch size writes to its own output folder. The
ratio is against batch size 1, measured in the same run. The target: Market-1501's 23,100
references in at most 4 hours on one H100-class GPU (>= 1.6 references/s).

    python -m benchmarks.generate_dataset_speed                  # on a CUDA GPU
    python -m benchmarks.generate_dataset_speed --batch-sizes 1 4 8 --references 64
    python -m benchmarks.generate_dataset_speed --tiny           # CPU smoke check, not a timing
"""

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from benchmarks.ipg_speed import random_pipeline
from pose2id.data import open_dataset
from pose2id.ipg import dataset_generation as gen
from pose2id.poses import load_standard_poses

MARKET_REFERENCES = 23_100
TARGET_REFS_PER_S = 1.6


def fake_market(root, references):
    """``references`` noise photos: half in query/, half in bounding_box_test/, Market names."""
    rng = np.random.default_rng(0)
    for split in ("query", "bounding_box_test"):
        (root / split).mkdir(parents=True)
    for i in range(references):
        split, cam = ("query", 1) if i % 2 == 0 else ("bounding_box_test", 2)
        pixels = rng.integers(0, 256, (128, 64, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / split / f"{i // 2 + 1:04d}_c{cam}s1_{i:06d}_00.jpg")
    return root


def measure(pipeline, dataset, poses, names, out, batch_size, steps, device):
    plan = gen.plan_dataset(dataset, names, out=out)
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    # warm-up on one batch (kernels, allocator), then the rest timed
    gen.generate_dataset(pipeline, plan, poses, jobs=plan.jobs[:batch_size], steps=steps, batch_size=batch_size,
                         progress=False, report_unreadable=False)
    summary = gen.generate_dataset(pipeline, plan, poses, jobs=plan.jobs[batch_size:], steps=steps,
                                   batch_size=batch_size, progress=False, report_unreadable=False)
    if device.type == "cuda":
        torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")
    return summary.references / summary.seconds, summary.done / summary.seconds, peak


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--references", type=int, default=48, help="made-up references per batch size")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--tiny", action="store_true", help="small models on the CPU (a smoke check)")
    args = parser.parse_args()

    device = torch.device("cpu" if args.tiny or not torch.cuda.is_available() else "cuda")
    if device.type == "cpu" and not args.tiny:
        raise SystemExit("no CUDA GPU: the timing needs one (use --tiny for a CPU smoke check)")
    dtype = torch.float32 if device.type == "cpu" else torch.float16
    pipeline = random_pipeline(args.tiny, device, dtype)
    pipeline.set_progress_bar_config(disable=True)
    poses = load_standard_poses()
    names = [pose.name for pose in poses]
    references = 4 if args.tiny else args.references
    steps = 2 if args.tiny else args.steps
    with tempfile.TemporaryDirectory() as tmp:
        dataset = open_dataset(str(fake_market(Path(tmp) / "market", references)))
        print(f"{device} {dtype}, {len(poses)} poses, {pipeline.width}x{pipeline.height}, {steps} steps, "
              f"{references} references per batch size")
        print("| batch | references/s | images/s | peak GiB | vs batch 1 | Market-1501 (23,100 refs) |")
        print("|---:|---:|---:|---:|---:|---:|")
        baseline = None
        for batch_size in args.batch_sizes:
            try:
                refs, images, peak = measure(pipeline, dataset, poses, names, Path(tmp) / f"out{batch_size}",
                                             batch_size, steps, device)
            except RuntimeError as error:  # out of memory: the larger batch sizes cannot be used
                print(f"| {batch_size} | - | - | - | - | {str(error)[:60]} |")
                if device.type == "cuda":
                    torch.cuda.empty_cache()
                continue
            baseline = baseline or refs
            hours = MARKET_REFERENCES / refs / 3600
            print(f"| {batch_size} | {refs:.2f} | {images:.2f} | {peak:.1f} | {refs / baseline:.2f}x | "
                  f"{hours:.1f} h{'' if refs >= TARGET_REFS_PER_S else ' (below target)'} |")


if __name__ == "__main__":
    main()
