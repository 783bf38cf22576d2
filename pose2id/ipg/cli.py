"""``python -m pose2id download`` and ``python -m pose2id generate``."""

import json
from pathlib import Path

from PIL import Image

from pose2id.ipg import weights


def register(subparsers):
    """Add the ``download`` and ``generate`` sub-commands to an argparse subparsers object."""
    p = subparsers.add_parser("download", help="fetch the Pose2ID weights and the VAE into the Hugging Face cache")
    p.add_argument("--ckpt-repo", default=weights.POSE2ID_REPO, help="Hub id of the Pose2ID weights")
    p.add_argument("--vae", default=weights.VAE_REPO, help="Hub id of the VAE")
    p.set_defaults(func=download)

    p = subparsers.add_parser("generate", help="generate a person in new poses from one reference photo (IPG)")
    p.add_argument("--ref", required=True, help="reference photo of the person")
    p.add_argument("--poses", default="standard", help="'standard' (the 8 standard poses) or an OpenPose JSON file")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--steps", type=int, default=20, help="DDIM steps (default 20)")
    p.add_argument("--guidance", type=float, default=3.5, help="classifier-free guidance scale (default 3.5)")
    p.add_argument("--seed", type=int, default=42, help="initial-noise seed")
    p.add_argument("--cpu", action="store_true", help="allow running on the CPU (slow: minutes per image)")
    p.add_argument("--low-memory", action="store_true",
                   help="for small GPUs: models visit the GPU one at a time, 2 poses per UNet call (slower)")
    p.add_argument("--ckpt-dir", default=None, help="folder with the Pose2ID .pth files (default: Hub cache)")
    p.add_argument("--vae", default=weights.VAE_REPO, help="folder or Hub id of the VAE")
    p.set_defaults(func=generate)


def download(args):
    paths = weights.download(args.ckpt_repo, args.vae)
    for name, path in paths.items():
        print(f"{name}: {path}")
    return 0


def load_poses(spec):
    """'standard' -> the 8 standard poses; a .json path -> the OpenPose pose(s) it holds."""
    from pose2id.poses import Pose, load_standard_poses

    if spec == "standard":
        return load_standard_poses()
    path = Path(spec)
    if not path.is_file():
        raise ValueError(f"--poses must be 'standard' or an OpenPose JSON file, got {spec!r}")
    data = json.loads(path.read_text())
    items = data if isinstance(data, list) else [data]
    return [Pose.from_openpose(item, name=f"{path.stem}_{i}") for i, item in enumerate(items)]


def load_pipeline(args):
    """The official pipeline, for ``generate`` (tests swap in the tiny one)."""
    import torch

    from pose2id.ipg import IPGPipeline

    device = "cpu" if args.cpu and not torch.cuda.is_available() else None
    pipeline = IPGPipeline.from_official(ckpt_dir=args.ckpt_dir, vae=args.vae, device=device, allow_cpu=args.cpu)
    return pipeline.enable_low_memory() if args.low_memory else pipeline


def contact_sheet(reference, pose_images, images, height=256):
    """One image: the reference, then each pose render above its generated image."""
    def fit(image):
        return image.convert("RGB").resize((max(1, round(image.width * height / image.height)), height), Image.LANCZOS)

    columns = [(fit(reference), None)] + [(fit(p), fit(g)) for p, g in zip(pose_images, images)]
    width = sum(top.width for top, _ in columns)
    sheet = Image.new("RGB", (width, 2 * height), "white")
    x = 0
    for top, bottom in columns:
        sheet.paste(top, (x, 0))
        if bottom is not None:
            sheet.paste(bottom, (x, height))
        x += top.width
    return sheet


def generate(args):
    import torch

    ref_path = Path(args.ref)
    if not ref_path.is_file():
        raise ValueError(f"--ref: no such image {args.ref!r}")
    reference = Image.open(ref_path).convert("RGB")
    poses = load_poses(args.poses)
    pipeline = load_pipeline(args)
    generator = torch.Generator("cpu").manual_seed(args.seed)
    try:
        images = pipeline(
            reference, poses, num_inference_steps=args.steps, guidance_scale=args.guidance, generator=generator
        ).images
    except torch.OutOfMemoryError:
        if pipeline.low_memory:
            raise RuntimeError("out of GPU memory even with --low-memory: the denoising UNet alone needs about "
                               "1.7 GB in float16, plus room to run it") from None
        raise RuntimeError("out of GPU memory: run again with --low-memory (models visit the GPU one at a time; "
                           "slower)") from None
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for i, (pose, image) in enumerate(zip(poses, images)):
        name = getattr(pose, "name", None) or str(i + 1)
        image.save(out / f"pose_{name}.png")
    contact_sheet(reference, pipeline.render_poses(poses), images).save(out / "contact_sheet.png")
    print(f"wrote {len(images)} images and contact_sheet.png to {out}")
    return 0
