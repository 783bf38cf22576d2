"""Feature extraction throughput (images/s) through ``pose2id.features.extract``.

CPU part: the handcrafted features (stripe colour/texture histograms) of Market-1501-sized JPEGs
(64x128), decoded and described in DataLoader worker processes against the same extraction with
0 workers (everything in this process), same images, same run; the ratio is printed and the
two outputs are checked to agree.

GPU part (only when CUDA is available): TransReID ViT-B/16 + JPM at full size with random
weights and a 6-camera embedding, float16 against float32 batches, both with camera ids and
DataLoader workers; target >= 1,500 images/s in float16 on an H100-class GPU (Market-1501 and
its generated sets, 23,100 + 184,800 images, in under 3 minutes). The pure model throughput
(no decoding) is printed too, to tell decoding-bound from model-bound.

    python benchmarks/extract_speed.py                      # 2,000 images, default workers
    python benchmarks/extract_speed.py --images 4000 --workers 3 --repeats 3
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pose2id.features import HandcraftedExtractor, default_num_workers, extract  # noqa: E402

MARKET_TOTAL = 23_100 + 184_800  # query + gallery with their 8-pose generated sets


def make_images(folder, n, seed=0):
    """n Market-named 64x128 JPEGs with smooth colour regions (closer to photos than white noise)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        small = rng.integers(0, 255, (8, 4, 3), dtype=np.uint8)
        image = Image.fromarray(small).resize((64, 128), Image.BILINEAR)
        noise = rng.integers(-12, 12, (128, 64, 3))
        array = np.clip(np.asarray(image, dtype=np.int64) + noise, 0, 255).astype(np.uint8)
        path = folder / f"{i % 1500 + 1:04d}_c{i % 6 + 1}s1_{i:06d}_00.jpg"
        Image.fromarray(array).save(path, quality=90)
        paths.append(path)
    return paths


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def cpu_part(paths, workers, repeats, batch_size):
    extractor = HandcraftedExtractor()
    n = len(paths)
    best = {0: float("inf"), workers: float("inf")}
    outputs = {}
    for _ in range(repeats):  # interleaved, so both see the same machine load
        for w in (0, workers):
            seconds, outputs[w] = timed(
                lambda w=w: extract(extractor, paths, cache_dir=False, batch_size=batch_size, num_workers=w)
            )
            best[w] = min(best[w], seconds)
    diff = float(np.abs(outputs[0] - outputs[workers]).max())
    base, ours = n / best[0], n / best[workers]
    print(f"handcrafted, {n} images 64x128, batch {batch_size}, best of {repeats}:")
    print(f"  0 workers (baseline): {base:8.0f} images/s")
    print(f"  {workers} workers:          {ours:8.0f} images/s   ratio {ours / base:.2f}x   max |diff| {diff:.1e}")
    print(f"  Market-1501 + generated sets ({MARKET_TOTAL} images) at this rate: {MARKET_TOTAL / ours / 60:.1f} min")


def gpu_part(folder, n, workers, batch_size):
    import torch
    from safetensors.torch import save_file

    from pose2id.features import TransReIDExtractor
    from pose2id.reid import TransReID, TransReIDConfig

    if not torch.cuda.is_available():
        print("GPU part skipped: no CUDA device (torch.cuda.is_available() is False)")
        return
    torch.manual_seed(0)
    model = TransReID(TransReIDConfig(), camera_num=6)
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.02)
    weights = folder / "transreid_random.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, weights)
    paths = make_images(folder / "gpu", n, seed=1)
    camids = [int(p.name.split("_")[1][1]) - 1 for p in paths]
    print(f"TransReID ViT-B/16 JPM, random weights, 6 cameras, {n} images, batch {batch_size}, "
          f"{workers} workers, {torch.cuda.get_device_name()}:")
    results = {}
    for precision in ("float32", "float16"):
        ex = TransReIDExtractor(weights, device="cuda", precision=precision)
        extract(ex, paths[: 2 * batch_size], cache_dir=False, batch_size=batch_size, camids=camids[: 2 * batch_size],
                num_workers=0)  # warm-up: kernels, allocator
        torch.cuda.synchronize()
        seconds, results[precision] = timed(
            lambda: extract(ex, paths, cache_dir=False, batch_size=batch_size, camids=camids, num_workers=workers)
        )
        x = torch.zeros(batch_size, 256, 128, 3, dtype=torch.uint8)
        ids = camids[:batch_size]
        ex.forward(x, ids)
        torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(10):
            ex.forward(x, ids)
        torch.cuda.synchronize()
        model_rate = 10 * batch_size / (time.perf_counter() - start)
        print(f"  {precision}: extract {n / seconds:8.0f} images/s   model alone {model_rate:8.0f} images/s")
        results[precision + "_rate"] = n / seconds
    scale = float(np.abs(results["float32"]).max())
    diff = float(np.abs(results["float16"] - results["float32"]).max())
    print(f"  float16 / float32: {results['float16_rate'] / results['float32_rate']:.2f}x   "
          f"max |diff| {diff:.2e} (features up to {scale:.2f})")
    rate = results["float16_rate"]
    print(f"  target >= 1500 images/s in float16: {'met' if rate >= 1500 else 'NOT met'} ({rate:.0f}); "
          f"Market-1501 + generated sets in {MARKET_TOTAL / rate / 60:.1f} min")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000, help="images for the CPU part (default 2000)")
    parser.add_argument("--gpu-images", type=int, default=8192, help="images for the GPU part (default 8192)")
    parser.add_argument("--workers", type=int, default=None,
                        help=f"DataLoader workers (default {default_num_workers()} on this machine)")
    parser.add_argument("--repeats", type=int, default=3, help="CPU runs of each kind; the best counts (default 3)")
    parser.add_argument("--batch-size", type=int, default=64, help="CPU batch size (default 64)")
    parser.add_argument("--gpu-batch-size", type=int, default=256, help="GPU batch size (default 256)")
    args = parser.parse_args()
    workers = default_num_workers() if args.workers is None else args.workers
    if workers < 1:
        parser.error("--workers must be at least 1 (0 workers is the baseline it is compared with)")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        paths = make_images(folder / "cpu", args.images)
        cpu_part(paths, workers, args.repeats, args.batch_size)
        gpu_part(folder, args.gpu_images, workers, args.gpu_batch_size)


if __name__ == "__main__":
    main()
