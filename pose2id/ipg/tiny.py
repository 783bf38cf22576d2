"""A small random-weight IPG pipeline (the fixture's sizes) for tests and the app's test mode."""

import torch
from diffusers import AutoencoderKL, DDIMScheduler

from pose2id.configs import load_config
from pose2id.ipg.components import build_unet
from pose2id.ipg.models import IFR, PoseGuider, ReIDModel
from pose2id.ipg.pipeline import IPGPipeline


def tiny_pipeline(seed=0, width=128, height=256):
    """Random-weight :class:`IPGPipeline` that runs 20 steps for a few poses on CPU in seconds.

    The images are noise-like; every stage of the real pipeline runs (ReID, IFR, reference
    attention, PoseGuider, DDIM with guidance, VAE). The default output is half the official
    size (128 x 256) because CPU attention cost grows with the square of the pixel count.
    Like any IPGPipeline it can be written with ``save_pretrained(DIR)`` and read back with
    ``IPGPipeline.from_pretrained(DIR)`` (a few MB).
    """
    config = load_config("tiny")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        pose_guider = PoseGuider(**config["pose_guider"])
        # diffusers starts conv_out at zero (the trained weights replace it), and the default
        # init shrinks the signal conv by conv: redrawn (as in the public fixture) so that the
        # poses visibly shape the tiny pipeline's images.
        for conv in pose_guider.modules():
            if isinstance(conv, torch.nn.Conv2d):
                fan_in = conv.weight[0].numel()
                torch.nn.init.normal_(conv.weight, std=(1.0 if conv is pose_guider.conv_out else 2.0) / fan_in**0.5)
        pipeline = IPGPipeline(
            vae=AutoencoderKL.from_config(config["vae"]),
            reference_unet=build_unet(config["unet"], reference=True),
            denoising_unet=build_unet(config["unet"]),
            pose_guider=pose_guider,
            ifr=IFR(**config["ifr"]),
            reid=ReIDModel(**config["transreid"]),
            scheduler=DDIMScheduler(**load_config("scheduler_config")),
            width=width,
            height=height,
        )
    for model in pipeline.models.values():
        model.eval()
    pipeline.progress = False
    return pipeline
