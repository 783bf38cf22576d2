"""The COCO-18 keypoint definitions every pose module shares: joint names, limbs, palette, the
left/right mirror map, the smallest drawable body, and :class:`PoseError`.

It imports nothing from pose2id but the package's :class:`~pose2id.ArgumentError`, so
:mod:`.skeleton` and :mod:`.openpose_json` both build on it.
"""

from pose2id import ArgumentError

KEYPOINT_NAMES = (
    "nose", "neck",
    "r_shoulder", "r_elbow", "r_wrist",
    "l_shoulder", "l_elbow", "l_wrist",
    "r_hip", "r_knee", "r_ankle",
    "l_hip", "l_knee", "l_ankle",
    "r_eye", "l_eye", "r_ear", "l_ear",
)
NUM_KEYPOINTS = len(KEYPOINT_NAMES)

# 0-based joint pairs; limb k is drawn in COLORS[k]. The order matters: later limbs cover earlier ones.
LIMBS = (
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10),
    (1, 11), (11, 12), (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17),
)

# Canonical RGB palette (nose red). The colours tell IPG which way the person faces.
COLORS = (
    (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0),
    (0, 255, 0), (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255),
    (0, 0, 255), (85, 0, 255), (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85),
)

# Joint index -> index of the same joint on the other side of the body (identity for nose, neck).
MIRROR_INDEX = (0, 1, 5, 6, 7, 2, 3, 4, 11, 12, 13, 8, 9, 10, 15, 14, 17, 16)


# Every limb of the skeleton starts at the neck or hangs from one that does (LIMBS), so without the
# neck a pose falls apart into loose pieces; three joints more give at least a head, an arm or a leg.
BODY_MIN_JOINTS = 4


class PoseError(ArgumentError):
    """A pose, or a file meant to hold one, is not a valid 18-keypoint skeleton.

    ``PoseError(message)``; errors about OpenPose JSON also carry the fields of
    :class:`pose2id.ArgumentError` (``problem``, ``file`` or ``label``, ``argument="pose"``).
    """
