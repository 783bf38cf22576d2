"""`python -m pose2id convert`: the authors' Pose2ID files -> one ``save_pretrained`` folder.

    python -m pose2id convert --ckpt-dir OFFICIAL --vae VAE --out ipg-pose2id
    >>> IPGPipeline.from_pretrained("ipg-pose2id", torch_dtype=torch.float16).to("cuda")

The five ``.pth`` files (denoising_unet, reference_unet, pose_guider, IFR, transformer_20) and
the sd-vae-ft-mse VAE are read once, strictly, exactly as :meth:`IPGPipeline.from_official`
reads them, and written as safetensors with a ``model_index.json``; the folder then loads
without the official files (and without pickle).
"""

import sys
from pathlib import Path

from pose2id.ipg import weights


def register(subparsers):
    """Add the ``convert`` sub-command."""
    p = subparsers.add_parser(
        "convert", help="turn the official Pose2ID weights into a diffusers pipeline folder (save_pretrained)",
        description="Read the authors' five Pose2ID .pth files and the VAE once and write them as a diffusers "
                    "pipeline folder (safetensors + model_index.json) that `IPGPipeline.from_pretrained(DIR)` "
                    "and `generate --model DIR` load.",
    )
    p.add_argument("--ckpt-dir", default=None,
                   help="folder with the Pose2ID .pth files (default: the Hub's yuanc3/Pose2ID, cached or downloaded)")
    p.add_argument("--vae", default=weights.VAE_REPO, help=f"folder or Hub id of the VAE (default {weights.VAE_REPO})")
    p.add_argument("--base-model", default=weights.SD15_REPO,
                   help="folder or Hub id whose unet/config.json describes the UNets (default: SD-1.5, shipped)")
    p.add_argument("--out", required=True, help="folder to write (created; must be empty if it exists)")
    p.add_argument("--dtype", choices=("float32", "float16", "bfloat16"), default="float32",
                   help="dtype of the written weights (default float32, as the official files are read)")
    p.set_defaults(func=convert)


def convert(args):
    """Write the pipeline folder; returns 0. ValueError / MissingWeightsError name the option at fault."""
    import torch

    from pose2id.ipg.pipeline import IPGPipeline

    out = Path(args.out).expanduser()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"--out {out}: {'not a folder' if not out.is_dir() else 'not empty'}; "
                         "give a new or empty folder")
    for option, source, kind in (("--ckpt-dir", args.ckpt_dir, "ckpt_dir"), ("--vae", args.vae, "vae"),
                                 ("--base-model", args.base_model, "base_model")):
        if source:
            try:
                weights.local_folder(source, kind)
            except weights.NoSuchFolderError as error:
                raise ValueError(f"{option} {source}: {error.detail}") from None
    components = weights.load_official_components(args.ckpt_dir, args.base_model, args.vae, device="cpu",
                                                  dtype=getattr(torch, args.dtype))
    pipeline = IPGPipeline(**components)
    pipeline.save_pretrained(out, safe_serialization=True)
    print(f"wrote the IPG pipeline to {out}: IPGPipeline.from_pretrained({str(out)!r}) or generate --model {out}",
          file=sys.stderr)
    return 0
