"""IPG: identity-guided pedestrian generation (Pose2ID) on stock diffusers.

    >>> from pose2id.ipg import IPGPipeline
    >>> pipe = IPGPipeline.from_official(device="cuda", dtype=torch.float16)
    >>> images = pipe(photo, load_standard_poses()).images
"""

from importlib import import_module

# Imported on first use: diffusers and torch take seconds to import, and ``pose2id.ipg.weights``
# (file checks, Hub ids) and the CLI parser need neither.
_EXPORTS = {
    "build": "pose2id.ipg.components",
    "convert_official": "pose2id.ipg.components",
    "IFR": "pose2id.ipg.models",
    "PoseGuider": "pose2id.ipg.models",
    "IPGPipeline": "pose2id.ipg.pipeline",
    "IPGPipelineOutput": "pose2id.ipg.pipeline",
    "tiny_pipeline": "pose2id.ipg.tiny",
    "MissingWeightsError": "pose2id.ipg.weights",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        value = getattr(import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'pose2id.ipg' has no attribute {name!r}")


def __dir__():
    return __all__
