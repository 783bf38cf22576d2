"""IPG generation speed: the reference code's structure against IPGPipeline's fast path.

Full-size models (two SD-1.5 UNets, sd-vae-ft-mse, TransReID ViT-B, PoseGuider, IFR) with random
weights (speed does not depend on the values); 8 poses at 512x256, 20 DDIM steps, guidance 3.5.

* reference structure: float32, one call per pose, nothing cached (grey-image ReID, VAE encode
  and reference UNet pass on every call), one image decoded at a time. The official code also
  runs its reference UNet on the unconditional rows and their self-attention twice, so its real
  time is somewhat above this one.
* ours: float16 (or --dtype bfloat16), all poses in one batch, reference pass once on the
  conditional rows, unconditional tokens cached, SDPA attention.
* low memory: ours with ``enable_low_memory()`` (models visit the GPU one at a time, 2 poses per
  UNet call, one image per VAE decode); its peak memory is what must fit in 8 GB.

    python benchmarks/ipg_speed.py            # on a CUDA GPU
    python benchmarks/ipg_speed.py --tiny     # small models on the CPU: a smoke check, not a timing
"""

import argparse
import statistics
import time

import numpy as np
import torch
from diffusers import DDIMScheduler
from PIL import Image

from pose2id.configs import load_config
from pose2id.ipg import IPGPipeline, build, tiny_pipeline
from pose2id.poses import load_standard_poses


def random_pipeline(tiny, device, dtype):
    if tiny:
        return tiny_pipeline(seed=0).to(device, dtype)
    pipeline = IPGPipeline(
        vae=build("vae", device, dtype),
        reference_unet=build("reference_unet", device, dtype),
        denoising_unet=build("denoising_unet", device, dtype),
        pose_guider=build("pose_guider", device, dtype),
        ifr=build("ifr", device, dtype),
        reid=build("transreid", device, dtype),
        scheduler=DDIMScheduler(**load_config("scheduler_config")),
    )
    pipeline.progress = False
    return pipeline


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(fn, device, repeats):
    """Median wall time (s) over ``repeats`` runs after one warm-up, and peak GPU memory (GiB)."""
    fn()
    synchronize(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
    return statistics.median(times), peak


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="small random models on the CPU (smoke check)")
    parser.add_argument("--poses", type=int, default=8)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--guidance", type=float, default=3.5)
    parser.add_argument("--dtype", choices=["float16", "bfloat16"], default="float16")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-reference", action="store_true", help="time only our modes")
    args = parser.parse_args(argv)

    device = torch.device("cpu" if args.tiny or not torch.cuda.is_available() else "cuda")
    if device.type == "cpu" and not args.tiny:
        parser.error("no CUDA GPU: full-size timing needs one (use --tiny for a CPU smoke check)")
    fast_dtype = torch.float32 if device.type == "cpu" else getattr(torch, args.dtype)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False  # the reference runs plain float32

    poses = (load_standard_poses() * (args.poses // 8 + 1))[: args.poses]
    reference = Image.fromarray(np.random.default_rng(0).integers(0, 255, (512, 256, 3), dtype=np.uint8))
    call = dict(num_inference_steps=args.steps, guidance_scale=args.guidance)
    rows = []

    if not args.skip_reference:
        pipeline = random_pipeline(args.tiny, device, torch.float32)

        def reference_structure():
            for pose in poses:
                pipeline._negative_tokens = None  # the reference recomputes the grey-image ReID every call
                pipeline(reference, [pose], **call)

        rows.append(("reference structure (fp32, per pose)", *measure(reference_structure, device, args.repeats)))
        del pipeline
        if device.type == "cuda":
            torch.cuda.empty_cache()

    pipeline = random_pipeline(args.tiny, device, fast_dtype)
    rows.append((f"ours ({str(fast_dtype).split('.')[-1]}, batched, cached)", *measure(lambda: pipeline(reference, poses, **call), device, args.repeats)))
    pipeline.enable_low_memory()
    rows.append(("ours, enable_low_memory()", *measure(lambda: pipeline(reference, poses, **call), device, 1)))

    print(f"device: {torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu (smoke check, not a timing)'}")
    print(f"{len(poses)} poses, {args.steps} steps, guidance {args.guidance}, {'tiny' if args.tiny else 'full-size'} models")
    print(f"{'mode':44s} {'seconds':>9s} {'peak GiB':>9s}")
    for name, seconds, peak in rows:
        print(f"{name:44s} {seconds:9.2f} {peak:9.2f}")
    if not args.skip_reference:
        print(f"speed-up: {rows[0][1] / rows[1][1]:.1f}x")


if __name__ == "__main__":
    main()
