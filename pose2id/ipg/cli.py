"""``python -m pose2id download`` and ``python -m pose2id generate``."""

import json
import math
import os
import random
import sys
import warnings
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from pose2id.cli import in_option_terms
from pose2id.ipg import weights

# A pedestrian crop needs a few hundred pixels; the pipeline resizes to 256x512 anyway.
MAX_REFERENCE_PIXELS = 40_000_000
# Seeds as in the app's Generate tab (pose2id.demo.generate.MAX_SEED / RANDOM_SEED).
MAX_SEED = 2**31 - 1
RANDOM_SEED = -1


def register(subparsers):
    """Add the ``download`` and ``generate`` sub-commands to an argparse subparsers object."""
    p = subparsers.add_parser(
        "download", help="fetch the Pose2ID weights and the VAE into the Hugging Face cache",
        description="Download the five Pose2ID weight files and the Stable-Diffusion VAE that `generate` needs "
                    "(several GB, needs internet) into the Hugging Face cache. Files already there are kept.",
    )
    p.add_argument("--ckpt-repo", default=weights.POSE2ID_REPO, help="Hub id of the Pose2ID weights")
    p.add_argument("--vae", default=weights.VAE_REPO, help="Hub id of the VAE")
    p.set_defaults(func=download)

    p = subparsers.add_parser(
        "generate", help="generate a person in new poses from one reference photo (IPG)",
        description="Draw the person of a reference photo in new poses with the IPG generator and write one PNG "
                    "per pose and a contact sheet. Needs the official weights (`python -m pose2id download`) "
                    "and a CUDA GPU, or --cpu.",
    )
    p.add_argument("--ref", required=True, help="reference photo of the person")
    p.add_argument("--poses", default="standard", help="'standard' (the 8 standard poses) or an OpenPose JSON file")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--steps", type=int, default=20, help="DDIM steps (default 20)")
    p.add_argument("--guidance", type=float, default=3.5, help="classifier-free guidance scale (default 3.5)")
    p.add_argument("--seed", type=int, default=42,
                   help=f"initial-noise seed, 0 to {MAX_SEED}; {RANDOM_SEED} draws a random one (default 42)")
    p.add_argument("--cpu", action="store_true", help="allow running on the CPU (slow: minutes per image)")
    p.add_argument("--low-memory", action="store_true",
                   help="for small GPUs: models visit the GPU one at a time, 2 poses per UNet call (slower)")
    p.add_argument("--ckpt-dir", default=None, help="folder with the Pose2ID .pth files (default: Hub cache)")
    p.add_argument("--vae", default=weights.VAE_REPO, help="folder or Hub id of the VAE")
    p.set_defaults(func=generate)


def download(args):
    from huggingface_hub.errors import LocalEntryNotFoundError

    for option, repo, example in (("--ckpt-repo", args.ckpt_repo, weights.POSE2ID_REPO),
                                  ("--vae", args.vae, weights.VAE_REPO)):
        if weights.looks_like_path(repo):
            raise ValueError(f"{option} {repo}: not a Hugging Face Hub id (such as {example}); download fetches "
                             "from the Hub, and generate reads weights from a folder with --ckpt-dir and --vae")
    try:
        paths = weights.download(args.ckpt_repo, args.vae)
    except LocalEntryNotFoundError:
        raise RuntimeError(cannot_download(args.ckpt_repo, args.vae)) from None
    for name, path in paths.items():
        print(f"{name}: {path}")
    return 0


def cannot_download(ckpt_repo, vae):
    """Why ``download`` failed without the internet, and the files it would have fetched."""
    from huggingface_hub import constants

    wanted = [(ckpt_repo, name) for name in weights.POSE2ID_FILES.values()] + [(vae, name) for name in weights.VAE_FILES]
    missing = [(repo, name) for repo, name in wanted if weights.fetch(repo, name, local_files_only=True) is None]
    if constants.HF_HUB_OFFLINE:
        reason = (f"HF_HUB_OFFLINE={os.environ.get('HF_HUB_OFFLINE', '1')} is set, so nothing is downloaded "
                  "(unset it, or set HF_HUB_OFFLINE=0)")
    else:
        reason = "https://huggingface.co could not be reached"
    files = "\n".join(f"  - {repo}/{name}" for repo, name in missing)
    return (f"downloading the weights needs internet access, and {reason}.\n"
            f"It would fetch {len(missing)} of {len(wanted)} file(s) (several GB) into {weights.hub_cache_dir()}:\n"
            f"{files}")


def read_reference(path):
    """The reference photo as RGB; ValueError naming the file if it is missing, unreadable or huge."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"--ref {path}: no such file")
    limit = f"{MAX_REFERENCE_PIXELS / 1e6:.0f} megapixels"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path)
    except Image.DecompressionBombError:
        raise ValueError(f"--ref {path}: far more than {limit}; crop it to the person (a few hundred pixels "
                         "is enough)") from None
    except (UnidentifiedImageError, OSError, SyntaxError):
        raise ValueError(f"--ref {path}: not a readable image; give a JPEG, PNG or WebP photo") from None
    with image:
        width, height = image.size
        if width * height > MAX_REFERENCE_PIXELS:
            raise ValueError(f"--ref {path}: {width}x{height} is {width * height / 1e6:.0f} megapixels, more than "
                             f"{limit}; crop it to the person (a few hundred pixels is enough)")
        try:
            return image.convert("RGB")
        except (OSError, SyntaxError, ValueError) as error:
            raise ValueError(f"--ref {path}: the image is damaged and cannot be decoded ({error})") from None


def load_poses(spec):
    """'standard' -> the 8 standard poses; a .json path -> the OpenPose pose(s) it holds
    (one object, or a list of them), each enough of a body to draw (``Pose.check_body``)."""
    from pose2id.poses import Pose, PoseError, load_standard_poses

    if spec == "standard":
        return load_standard_poses()
    path = Path(spec)
    if not path.is_file():
        raise ValueError(f"--poses must be 'standard' or an OpenPose JSON file, got {spec!r}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ValueError(f"--poses {path}: not a text file (expected OpenPose JSON)") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"--poses {path}: not valid JSON ({error.msg} at line {error.lineno}, "
                         f"column {error.colno})") from None
    items = data if isinstance(data, list) else [data]
    if not items:
        raise ValueError(f"--poses {path}: an empty list; expected one OpenPose pose or a list of them")
    poses = []
    for i, item in enumerate(items):
        where = f"--poses {path}" + (f", pose {i + 1} of {len(items)}" if isinstance(data, list) else "")
        try:
            poses.append(Pose.from_openpose(item, name=f"{path.stem}_{i}").check_body())
        except PoseError as error:
            raise ValueError(in_option_terms(error, where, ("pose",))) from None
    return poses


def check_inputs(args):
    """(reference image, poses) after every check that needs no model, all problems reported at once:
    a user fixes the inputs before fetching or loading several GB of weights."""
    reference = poses = None
    problems = []
    try:
        reference = read_reference(args.ref)
    except ValueError as error:
        problems.append(str(error))
    try:
        poses = load_poses(args.poses)
    except ValueError as error:
        problems.append(str(error))
    if args.steps < 1:
        problems.append(f"--steps must be a positive integer, got {args.steps}")
    if not math.isfinite(args.guidance):
        problems.append(f"--guidance must be a finite number, got {args.guidance}")
    if args.seed != RANDOM_SEED and not 0 <= args.seed <= MAX_SEED:
        problems.append(f"--seed must be a whole number from 0 to {MAX_SEED}, or {RANDOM_SEED} for a random seed, "
                        f"got {args.seed}")
    if Path(args.out).exists() and not Path(args.out).is_dir():
        problems.append(f"--out {args.out}: exists and is not a folder")
    for option, kind, source in (("--ckpt-dir", "ckpt_dir", args.ckpt_dir), ("--vae", "vae", args.vae)):
        try:
            if source:
                weights.local_folder(source, kind)
        except weights.NoSuchFolderError as error:
            problems.append(f"{option} {source}: {error.detail}")
    if len(problems) > 1:
        raise ValueError(f"{len(problems)} problems with the inputs:\n" + "\n".join(f"  - {p}" for p in problems))
    if problems:
        raise ValueError(problems[0])
    return reference, poses


def load_pipeline(args):
    """The official pipeline, for ``generate`` (tests swap in the tiny one)."""
    import torch

    from pose2id.ipg import IPGPipeline

    on_cpu = not torch.cuda.is_available()
    if on_cpu and not args.cpu:
        raise RuntimeError("generate needs a CUDA GPU (two Stable-Diffusion-size UNets) and CUDA is not available "
                           "on this machine; pass --cpu to run on the CPU anyway (several minutes per image)")
    if on_cpu:
        print("note: running on the CPU in float32: expect several minutes per image", file=sys.stderr)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "running IPG on the CPU")  # said above, without a source line
        pipeline = IPGPipeline.from_official(ckpt_dir=args.ckpt_dir, vae=args.vae, device="cpu" if on_cpu else None,
                                             allow_cpu=args.cpu)
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

    reference, poses = check_inputs(args)
    seed = random.randint(0, MAX_SEED) if args.seed == RANDOM_SEED else args.seed
    pipeline = load_pipeline(args)
    if args.seed == RANDOM_SEED:
        print(f"random seed: {seed}", file=sys.stderr)
    generator = torch.Generator("cpu").manual_seed(seed)
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
