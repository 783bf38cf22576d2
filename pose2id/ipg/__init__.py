"""IPG: identity-guided pedestrian generation (Pose2ID) on stock diffusers.

    >>> from pose2id.ipg import IPGPipeline
    >>> pipe = IPGPipeline.from_official(device="cuda", dtype=torch.float16)
    >>> images = pipe(photo, load_standard_poses()).images
    >>> pipe.save_pretrained("ipg")              # once; then
    >>> pipe = IPGPipeline.from_pretrained("ipg", torch_dtype=torch.float16).to("cuda")

Per-image noise: ``pose_generator(seed, name, pose)`` is a torch.Generator seeded from the
three together (:func:`seed_for`), so an image does not change when other poses or
references join the batch.
"""

import hashlib
from importlib import import_module

# Imported on first use: diffusers and torch take seconds to import, and ``pose2id.ipg.weights``
# (file checks, Hub ids) and the CLI parser need neither.
_EXPORTS = {
    "build": "pose2id.ipg.components",
    "convert_official": "pose2id.ipg.components",
    "IFR": "pose2id.ipg.models",
    "PoseGuider": "pose2id.ipg.models",
    "ReIDModel": "pose2id.ipg.models",
    "ReferenceUNet2DConditionModel": "pose2id.ipg.models",
    "IPGPipeline": "pose2id.ipg.pipeline",
    "IPGPipelineOutput": "pose2id.ipg.pipeline",
    "tiny_pipeline": "pose2id.ipg.tiny",
    "MissingWeightsError": "pose2id.ipg.weights",
}

__all__ = sorted(_EXPORTS) + ["pose_generator", "seed_for"]


def seed_for(seed, name, pose):
    """A seed for one generated image: SHA-256 of (seed, image name, pose), the same in every
    process, machine and Python version (unlike ``hash()``).

    Parameters
    ----------
    seed : int, the seed the user chose.
    name : str, the reference image's name (e.g. "0002_c1s1_000451_03.jpg"; "" for a lone photo).
    pose : str or int, the pose's name or number (e.g. "3" or 3 give the same seed).

    Returns
    -------
    int in [0, 2**63).
    """
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    text = f"{seed}\x00{name}\x00{pose}".encode("utf-8")
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "big") >> 1


def pose_generator(seed, name, pose, device="cpu"):
    """``torch.Generator(device).manual_seed(seed_for(seed, name, pose))``: the initial noise of
    one image, for the list ``generator=`` of :class:`IPGPipeline`."""
    import torch

    return torch.Generator(device).manual_seed(seed_for(seed, name, pose))


def __getattr__(name):
    if name in _EXPORTS:
        value = getattr(import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'pose2id.ipg' has no attribute {name!r}")


def __dir__():
    return __all__
