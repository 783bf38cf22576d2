"""``python -m pose2id download`` and ``python -m pose2id generate``."""

import json
import math
import os
import random
import sys
import warnings
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from pose2id._options import in_option_terms, positive_int
from pose2id.ipg import weights
from pose2id.ipg.dataset_generation import SPLITS

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
        "generate", help="generate a person in new poses (IPG): one photo (--ref) or a whole dataset (--dataset)",
        description="Draw the person of a reference photo in new poses with the IPG generator. With --ref: one "
                    "PNG per pose and a contact sheet in --out. With --dataset: every query and gallery image "
                    "in every pose, in the layout eval reads (query_gen/pose1..poseP/NAME, "
                    "bounding_box_test_gen/pose1..poseP/NAME), resumable, sharded over the processes of "
                    "accelerate launch / torchrun and over --shard K/N. Needs the official weights "
                    "(`python -m pose2id download`) or --model, and a CUDA GPU, or --cpu.",
    )
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--ref", help="reference photo of the person")
    source.add_argument("--dataset", metavar="SPEC",
                        help="a dataset as eval --dataset takes it (a Market-1501 style folder, 'market1501:PATH', "
                             "'msmt17:PATH', ...): generate for all its query and gallery images")
    p.add_argument("--poses", default="standard",
                   help="'standard' (the 8 standard poses), an OpenPose JSON file, or a folder of pose files "
                        "(OpenPose .json and/or rendered skeleton .png/.jpg, in name order)")
    p.add_argument("--out", default=None,
                   help="output folder (needed with --ref); with --dataset the root of the *_gen folders "
                        "(default: next to the dataset's split folders, where eval reads them)")
    p.add_argument("--splits", nargs="+", choices=SPLITS, default=list(SPLITS),
                   help="with --dataset: which splits (default: query gallery)")
    p.add_argument("--all-identities", action="store_true",
                   help="with --dataset: also the distractors (pid 0); by default only real identities "
                        "(pid > 0) get images, as in the authors' published sets")
    p.add_argument("--batch-size", type=positive_int("--batch-size"), default=None,
                   help="with --dataset: references per pipeline call, each with all its poses (default: 1 on "
                        "the CPU, one per 12 GB of GPU memory up to 8)")
    p.add_argument("--shard", default=None, metavar="K/N",
                   help="with --dataset: do part K of N (K from 1 to N), e.g. a SLURM array task's share; "
                        "combines with accelerate/torchrun processes")
    p.add_argument("--steps", type=int, default=20, help="DDIM steps (default 20)")
    p.add_argument("--guidance", type=float, default=3.5, help="classifier-free guidance scale (default 3.5)")
    p.add_argument("--seed", type=int, default=42,
                   help=f"initial-noise seed, 0 to {MAX_SEED}; {RANDOM_SEED} draws a random one (--ref only) "
                        "(default 42). Each image's noise comes from (seed, image name, pose name): adding a pose or "
                        "changing the batch does not change the other images")
    p.add_argument("--cpu", action="store_true", help="allow running on the CPU (slow: minutes per image)")
    p.add_argument("--low-memory", action="store_true",
                   help="for small GPUs: models visit the GPU one at a time, 2 poses per UNet call (slower)")
    p.add_argument("--offload", choices=OFFLOAD_MODES, default=None,
                   help="how weights wait off the GPU: model (a network at a time, what --low-memory uses), "
                        "group (a few layers at a time, copied while the previous ones compute) or sequential "
                        "(a layer at a time, least memory, slowest); nothing to offload on the CPU")
    p.add_argument("--model", default=None,
                   help="a saved pipeline: a folder written by save_pretrained / `convert`, or a Hub id "
                        "(default: the official .pth weights, --ckpt-dir and --vae)")
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
    (one object, or a list of them), each enough of a body to draw (``Pose.check_body``); a folder
    -> its pose files (:func:`pose2id.ipg.dataset_generation.read_pose_folder`)."""
    from pose2id.poses import Pose, PoseError, load_standard_poses

    if spec == "standard":
        return load_standard_poses()
    path = Path(spec)
    if path.is_dir():
        return load_named_poses(spec)[1]
    if not path.is_file():
        raise ValueError(f"--poses must be 'standard', an OpenPose JSON file or a folder of pose files, got {spec!r}")
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


def load_named_poses(spec):
    """(names, poses) for ``--poses``: the names key each image's seed and name its output."""
    from pose2id.ipg.dataset_generation import read_pose_folder

    if Path(spec).is_dir():
        try:
            return read_pose_folder(spec)
        except ValueError as error:
            raise ValueError(in_option_terms(error, "--poses", ("folder",))) from None
    poses = load_poses(spec)
    return [getattr(pose, "name", None) or str(i + 1) for i, pose in enumerate(poses)], poses


def _option_problems(args, random_seed_ok=True):
    """Problems with the numeric options and the weight sources (no model is loaded)."""
    problems = []
    if args.steps < 1:
        problems.append(f"--steps must be a positive integer, got {args.steps}")
    if not math.isfinite(args.guidance):
        problems.append(f"--guidance must be a finite number, got {args.guidance}")
    if not (0 <= args.seed <= MAX_SEED or (random_seed_ok and args.seed == RANDOM_SEED)):
        random = f", or {RANDOM_SEED} for a random seed" if random_seed_ok else ""
        why = "" if random_seed_ok else " (a fixed seed, so that a resumed run draws the same images)"
        problems.append(f"--seed must be a whole number from 0 to {MAX_SEED}{random}{why}, got {args.seed}")
    if args.out is not None and Path(args.out).exists() and not Path(args.out).is_dir():
        problems.append(f"--out {args.out}: exists and is not a folder")
    if getattr(args, "model", None):
        if weights.looks_like_path(args.model) and not Path(args.model).expanduser().is_dir():
            problems.append(f"--model {args.model}: no such folder (it should hold a saved pipeline: "
                            "model_index.json and one folder per model)")
    else:
        for option, kind, source in (("--ckpt-dir", "ckpt_dir", args.ckpt_dir), ("--vae", "vae", args.vae)):
            try:
                if source:
                    weights.local_folder(source, kind)
            except weights.NoSuchFolderError as error:
                problems.append(f"{option} {source}: {error.detail}")
    return problems


def _raise_problems(problems):
    if len(problems) > 1:
        raise ValueError(f"{len(problems)} problems with the inputs:\n" + "\n".join(f"  - {p}" for p in problems))
    if problems:
        raise ValueError(problems[0])


def check_inputs(args):
    """(reference image, pose names, poses) after every check that needs no model, all problems
    reported at once: a user fixes the inputs before fetching or loading several GB of weights."""
    reference = poses = names = None
    problems = []
    try:
        reference = read_reference(args.ref)
    except ValueError as error:
        problems.append(str(error))
    try:
        names, poses = load_named_poses(args.poses)
    except ValueError as error:
        problems.append(str(error))
    if args.out is None:
        problems.append("--out is needed with --ref: the folder the images go to")
    problems += _option_problems(args)
    for option in ("--shard", "--batch-size"):
        if getattr(args, option[2:].replace("-", "_"), None) is not None:
            problems.append(f"{option} goes with --dataset, not --ref")
    _raise_problems(problems)
    return reference, names, poses


def check_dataset_inputs(args):
    """(plan, poses, shard) for ``generate --dataset`` after every check that needs no model:
    the dataset opens and has references, the poses are valid, the output folders can be
    written, ``--shard`` is K/N; all problems at once."""
    from pose2id.data import open_dataset
    from pose2id.ipg import dataset_generation as gen

    problems = []
    names = poses = plan = None
    shard = (0, 1)
    try:
        names, poses = load_named_poses(args.poses)
    except ValueError as error:
        problems.append(str(error))
    if args.shard is not None:
        try:
            shard = gen.parse_shard(args.shard)
        except ValueError as error:
            problems.append(in_option_terms(error, "--shard", ("shard",)))
    problems += _option_problems(args, random_seed_ok=False)
    if args.out is None and args.dataset.lower().endswith(".zip"):
        # next to its split folders would be inside the zip's extracted copy in the pose2id cache,
        # which is thrown away when the zip changes: the images would be lost unseen
        problems.append(f"--dataset {args.dataset}: a zip has no folder to write the generated images next to "
                        "(its extracted copy in the pose2id cache is replaced whenever the zip changes); extract "
                        "it and give the folder, or give --out ROOT")
    try:
        dataset = open_dataset(args.dataset)
        plan = gen.plan_dataset(dataset, names or ["1"], splits=args.splits, out=args.out,
                                all_identities=args.all_identities)
    except ValueError as error:
        problems.append(in_option_terms(error, "--dataset", ("spec", "zip_path", "root", "dataset")))
    if plan is not None and names is not None and not problems:
        try:
            gen.check_writable(plan)
        except OSError as error:
            problems.append(f"{'--out' if args.out is not None else '--dataset'}: {error}")
    _raise_problems(problems)
    return plan, poses, shard


def load_pipeline(args, device=None):
    """The pipeline for ``generate``: ``--model`` (a saved pipeline folder or Hub id) or the
    official weights, on ``device`` (default: CUDA, or the CPU with --cpu)."""
    import torch

    from pose2id.ipg import IPGPipeline

    if device is None:
        on_cpu = not torch.cuda.is_available()
        if on_cpu and not args.cpu:
            raise RuntimeError("generate needs a CUDA GPU (two Stable-Diffusion-size UNets) and CUDA is not "
                               "available on this machine; pass --cpu to run on the CPU anyway (several minutes "
                               "per image)")
        device = torch.device("cpu" if on_cpu else "cuda")
    device = torch.device(device)
    on_cpu = device.type == "cpu"
    if on_cpu:
        print("note: running on the CPU in float32: expect several minutes per image", file=sys.stderr)
    if getattr(args, "model", None):
        source = str(Path(args.model).expanduser()) if weights.looks_like_path(args.model) else args.model
        try:
            pipeline = IPGPipeline.from_pretrained(source)
        except (OSError, ValueError) as error:
            raise RuntimeError(f"--model {args.model}: cannot be loaded as a saved IPG pipeline ({error})") from None
        pipeline.to(device, torch.float32 if on_cpu else torch.float16)
    else:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "running IPG on the CPU")  # said above, without a source line
            pipeline = IPGPipeline.from_official(ckpt_dir=args.ckpt_dir, vae=args.vae, device=device,
                                                 allow_cpu=args.cpu)
    return apply_memory_options(pipeline, getattr(args, "offload", None), args.low_memory)


OFFLOAD_MODES = ("model", "group", "sequential")


def apply_memory_options(pipeline, offload=None, low_memory=False):
    """Apply ``--offload`` and ``--low-memory`` to a pipeline already on its device; returns it.

    Parameters
    ----------
    pipeline : IPGPipeline
    offload : {None, "model", "group", "sequential"}
        The offload mode (None: ``"model"`` with ``low_memory``, else none). On a CPU pipeline
        nothing is offloaded.
    low_memory : bool
        Also decode one image at a time and run 2 poses per UNet call (``enable_low_memory``).
    """
    if offload is not None and offload not in OFFLOAD_MODES:
        raise ValueError(f"offload: {offload!r} is not one of {', '.join(OFFLOAD_MODES)}")
    device = pipeline.execution_device
    if offload is not None and device.type != "cpu":
        if offload == "group":
            pipeline.enable_group_offload(device, use_stream=device.type == "cuda")
        elif offload == "sequential":
            pipeline.enable_sequential_cpu_offload(device=device)
        else:
            pipeline.enable_model_cpu_offload(device=device)
    return pipeline.enable_low_memory() if low_memory else pipeline


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
    if args.dataset is not None:
        return generate_for_dataset(args)
    import torch

    from pose2id.ipg import pose_generator

    reference, names, poses = check_inputs(args)
    seed = random.randint(0, MAX_SEED) if args.seed == RANDOM_SEED else args.seed
    pipeline = load_pipeline(args)
    if args.seed == RANDOM_SEED:
        print(f"random seed: {seed}", file=sys.stderr)
    # one generator per pose, from (seed, pose name) as in the app (a lone photo's name is ""): a
    # pose's image does not depend on which other poses are drawn with it
    generators = [pose_generator(seed, "", name) for name in names]
    try:
        images = pipeline(
            reference, poses, num_inference_steps=args.steps, guidance_scale=args.guidance, generator=generators
        ).images
    except torch.OutOfMemoryError:
        if pipeline.low_memory:
            raise RuntimeError("out of GPU memory even with --low-memory: the denoising UNet alone needs about "
                               "1.7 GB in float16, plus room to run it") from None
        raise RuntimeError("out of GPU memory: run again with --low-memory (models visit the GPU one at a time; "
                           "slower)") from None
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, image in zip(names, images):
        image.save(out / f"pose_{name}.png")
    contact_sheet(reference, pipeline.render_poses(poses), images).save(out / "contact_sheet.png")
    print(f"wrote {len(images)} images and contact_sheet.png to {out}")
    return 0


def process_state(cpu):
    """(rank, world size, device) of this process from accelerate's ``PartialState``: set by
    ``accelerate launch`` or ``torchrun``, (0, 1, the default device) in a plain run."""
    from accelerate import PartialState

    state = PartialState(cpu=cpu)
    return state.process_index, state.num_processes, state.device


def generate_for_dataset(args):
    """``generate --dataset``: this process's share of every missing (reference, pose) image."""
    import torch

    from pose2id.ipg import dataset_generation as gen

    plan, poses, shard = check_dataset_inputs(args)
    if not args.cpu and not torch.cuda.is_available():
        raise RuntimeError("generate needs a CUDA GPU (two Stable-Diffusion-size UNets) and CUDA is not available "
                           "on this machine; pass --cpu to run on the CPU anyway (several minutes per image)")
    rank, world, device = process_state(cpu=args.cpu)
    jobs = gen.worker_jobs(plan.jobs, shard, (rank, world))
    worker = shard[0] * world + rank
    tag = f"[worker {worker + 1}/{shard[1] * world}]" if shard[1] * world > 1 else ""
    pipeline = load_pipeline(args, device=device)
    pipeline.set_progress_bar_config(disable=True)
    batch_size = args.batch_size or gen.default_batch_size(device)
    where = ", ".join(str(d) for d in dict.fromkeys(plan.gen_dirs.values()))
    print(f"{tag} {len(jobs)} of {len(plan.jobs)} references x {len(poses)} poses -> {where} "
          f"(batch size {batch_size}, seed {args.seed})".strip(), file=sys.stderr)
    summary = gen.generate_dataset(pipeline, plan, poses, jobs=jobs, seed=args.seed, steps=args.steps,
                                   guidance=args.guidance, batch_size=batch_size, describe=tag,
                                   report_unreadable=worker == 0)
    rate = f", {summary.done / summary.seconds:.2f} images/s" if summary.done and summary.seconds > 0 else ""
    print(f"{tag} {summary.line()} ({summary.seconds:.0f} s{rate})".strip())
    if plan.distractors and worker == 0:
        print(f"{plan.distractors} distractor(s) (pid 0) left out; --all-identities includes them")
    return 0
