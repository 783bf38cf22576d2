"""OpenPose COCO-18 poses for IPG: the skeleton type, its renderer, OpenPose JSON, the 8 standard
poses, and pose estimation from a photo.

    >>> from pose2id.poses import load_standard_poses, render
    >>> pose = load_standard_poses()[0]            # 64x128 canvas
    >>> image = render(pose.fit(256, 512))         # PIL RGB, nose red
    >>> pose.mirror().to_openpose()["people"][0]["pose_keypoints_2d"][:3]

Nothing here imports torch; ``mediapipe`` is imported only by :func:`pose_from_image`.
"""

from .estimate import NoPersonFound, PoseEstimatorUnavailable, pose_from_image
from .openpose_json import format_openpose
from .rendering import render
from .skeleton import (
    BODY_MIN_JOINTS,
    COLORS,
    KEYPOINT_NAMES,
    LIMBS,
    MIRROR_INDEX,
    NUM_KEYPOINTS,
    Pose,
    PoseError,
    pose_from_openpose,
)
from .standard import load_standard_poses, write_standard_poses

__all__ = [
    "BODY_MIN_JOINTS",
    "COLORS",
    "KEYPOINT_NAMES",
    "LIMBS",
    "MIRROR_INDEX",
    "NUM_KEYPOINTS",
    "NoPersonFound",
    "Pose",
    "PoseError",
    "PoseEstimatorUnavailable",
    "format_openpose",
    "load_standard_poses",
    "pose_from_image",
    "pose_from_openpose",
    "render",
    "write_standard_poses",
]
