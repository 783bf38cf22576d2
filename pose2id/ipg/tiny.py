"""A small random-weight IPG pipeline (the fixture's sizes) for tests and the app's test mode."""

import torch
from diffusers import AutoencoderKL, DDIMScheduler

from pose2id.configs import load_config
from pose2id.ipg.components import build_unet
from pose2id.ipg.models import IFR, PoseGuider
from pose2id.ipg.pipeline import IPGPipeline
from pose2id.reid import TransReID, TransReIDConfig


def tiny_pipeline(seed=0, width=128, height=256):
    """Random-weight :class:`IPGPipeline` that runs 20 steps for a few poses on CPU in seconds.

    The images are noise-like; every stage of the real pipeline runs (ReID, IFR, reference
    attention, PoseGuider, DDIM with guidance, VAE). The default output is half the official
    size (128 x 256) because CPU attention cost grows with the square of the pixel count.
    """
    config = load_config("tiny")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        pipeline = IPGPipeline(
            vae=AutoencoderKL.from_config(config["vae"]),
            reference_unet=build_unet(config["unet"], reference=True),
            denoising_unet=build_unet(config["unet"]),
            pose_guider=PoseGuider(**config["pose_guider"]),
            ifr=IFR(**config["ifr"]),
            reid=TransReID(TransReIDConfig(**config["transreid"])),
            scheduler=DDIMScheduler(**load_config("scheduler_config")),
            width=width,
            height=height,
        )
    for model in pipeline.models.values():
        model.eval()
    pipeline.progress = False
    return pipeline
