"""IPG: identity-guided pedestrian generation (Pose2ID) on stock diffusers.

    >>> from pose2id.ipg import IPGPipeline
    >>> pipe = IPGPipeline.from_official(device="cuda", dtype=torch.float16)
    >>> images = pipe(photo, load_standard_poses()).images
"""

from pose2id.ipg.components import build, convert_official
from pose2id.ipg.models import IFR, PoseGuider
from pose2id.ipg.pipeline import IPGPipeline, IPGPipelineOutput
from pose2id.ipg.tiny import tiny_pipeline
from pose2id.ipg.weights import MissingWeightsError

__all__ = ["build", "convert_official", "IFR", "PoseGuider", "IPGPipeline", "IPGPipelineOutput", "MissingWeightsError", "tiny_pipeline"]
