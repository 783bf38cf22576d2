"""Shipped model configs (JSON): SD-1.5 UNet, sd-vae-ft-mse, DDIM scheduler, PoseGuider, IFR."""

import json
from pathlib import Path

CONFIG_DIR = Path(__file__).resolve().parent


def load_config(name):
    """``load_config("sd15_unet")`` -> dict read from ``pose2id/configs/sd15_unet.json``."""
    return json.loads((CONFIG_DIR / f"{name}.json").read_text())
