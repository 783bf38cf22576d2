"""Build Pose2ID's networks at official size and map official state dicts onto them.

    >>> unet = build("denoising_unet", device="meta")
    >>> unet.load_state_dict(convert_official("denoising_unet", sd), strict=True, assign=True)
"""

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from torch import nn

from pose2id.configs import load_config
from pose2id.ipg.models import IFR, PoseGuider, ReferenceUNet2DConditionModel, strip_reference_head  # noqa: F401
from pose2id.reid.transreid import TransReID, TransReIDConfig
from pose2id.reid.transreid import convert_official as convert_transreid

COMPONENTS = ("denoising_unet", "reference_unet", "pose_guider", "ifr", "transreid")


def build_unet(config, reference=False):
    """Stock ``UNet2DConditionModel`` from a config dict; ``reference=True`` gives a
    :class:`ReferenceUNet2DConditionModel` (no output head)."""
    config = {k: v for k, v in config.items() if k != "_class_name"}
    return (ReferenceUNet2DConditionModel if reference else UNet2DConditionModel).from_config(config)


def _build_module(component):
    if component == "denoising_unet":
        return build_unet(load_config("sd15_unet"))
    if component == "reference_unet":
        return build_unet(load_config("sd15_unet"), reference=True)
    if component == "pose_guider":
        return PoseGuider(**load_config("pose_guider"))
    if component == "ifr":
        return IFR(**load_config("ifr"))
    if component == "transreid":
        return TransReID(TransReIDConfig())
    if component == "vae":
        return AutoencoderKL.from_config(load_config("sd_vae_ft_mse"))
    raise ValueError(f"component must be one of {COMPONENTS + ('vae',)}, got {component!r}")


def build(component, device="cpu", dtype=torch.float32):
    """The official-size module for ``component`` (random init; ``device="meta"`` allocates nothing).

    component : "denoising_unet", "reference_unet", "pose_guider", "ifr", "transreid" (or "vae",
        sd-vae-ft-mse's architecture).
    """
    with torch.device(device):
        module = _build_module(component)
    # nn.Module.to: diffusers' own .to() warns about dtype casts meant for from_pretrained.
    return nn.Module.to(module, dtype=dtype).eval()


def convert_official(component, state_dict):
    """Official Pose2ID state dict of ``component`` -> one ``build(component)`` loads strictly.

    The UNets, PoseGuider and IFR already use the module's names (a ``module.`` prefix from
    DataParallel training is stripped); TransReID drops the keys that do not affect its features
    (see :func:`pose2id.reid.transreid.convert_official`).
    """
    if component not in COMPONENTS:
        raise ValueError(f"component must be one of {COMPONENTS}, got {component!r}")
    if component == "transreid":
        return convert_transreid(state_dict, TransReIDConfig())
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in state_dict.items()}


def load_strict(module, state_dict, source="state dict"):
    """``module.load_state_dict(strict=True)`` with an error that names missing/unexpected keys."""
    result = module.load_state_dict(state_dict, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise ValueError(
            f"{source} does not fit {type(module).__name__}: missing {len(result.missing_keys)} keys "
            f"{result.missing_keys[:6]}, unexpected {len(result.unexpected_keys)} keys {result.unexpected_keys[:6]}"
        )
    return module
