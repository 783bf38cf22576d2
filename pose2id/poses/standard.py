"""The 8 standard poses of Pose2ID's IPG, as used for the paper's generated gallery features.

Keypoints are in the 64x128 frame of the original renders (``IPG/standard_poses/*.jpg`` in the
reference code); they were fitted to those images (``../shared/data/standard_poses_18kp.json``).
Pose 6 has no right wrist. The data lives in this module rather than in a data file so that an
installed package always carries it; ``standard_poses/`` at the top of the repository holds the
same poses as OpenPose JSON files with PNG previews, written by :func:`write_standard_poses`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .openpose_json import format_openpose
from .rendering import render
from .skeleton import Pose, PoseError, pose_from_openpose

STANDARD_SIZE = (64, 128)

# Pose i + 1: 18 (x, y) in COCO-18 order, None = joint absent.
_STANDARD_KEYPOINTS = (
    (
        (34.375, 10.375), (31.375, 24.125), (14.625, 24.375), (2.875, 41.375), (1.625, 58.625), (48.625, 24.375),
        (57.875, 42.375), (59.375, 59.625), (20.375, 62.125), (27.625, 90.625), (27.375, 117.625), (40.625, 63.625),
        (36.625, 91.125), (25.875, 111.375), (30.375, 7.625), (38.375, 8.625), (23.375, 9.625), (43.625, 10.625),
    ),
    (
        (41.125, 18.375), (33.875, 29.625), (21.375, 29.625), (9.375, 45.625), (13.375, 64.625), (46.875, 30.375),
        (49.625, 48.375), (55.625, 64.625), (22.625, 66.625), (16.625, 89.375), (15.875, 113.625), (40.625, 67.125),
        (45.875, 91.375), (55.375, 119.625), (38.625, 15.625), (43.375, 16.375), (32.375, 16.375), (45.375, 18.625),
    ),
    (
        (45.625, 18.375), (28.625, 26.375), (23.375, 26.375), (13.625, 48.375), (13.625, 66.375), (33.125, 26.375),
        (36.125, 46.625), (36.375, 46.375), (31.875, 64.625), (48.625, 85.375), (51.875, 115.375), (40.125, 63.375),
        (39.125, 90.625), (3.625, 108.375), (44.875, 14.375), (46.375, 15.625), (36.375, 12.375), (37.375, 13.625),
    ),
    (
        (32.125, 20.125), (17.625, 30.625), (25.125, 30.625), (30.125, 52.375), (40.375, 68.375), (10.375, 29.125),
        (8.625, 51.875), (11.125, 64.625), (25.625, 69.625), (37.375, 97.375), (49.375, 121.375), (12.375, 69.875),
        (13.375, 99.625), (5.125, 123.375), (31.875, 17.875), (32.375, 17.375), (27.625, 17.625), (19.375, 16.375),
    ),
    (
        (21.375, 12.625), (32.375, 26.375), (49.875, 24.625), (60.625, 42.125), (54.625, 62.625), (15.375, 27.375),
        (11.375, 46.625), (5.375, 61.625), (46.625, 66.625), (50.375, 94.625), (56.875, 121.375), (24.375, 67.375),
        (22.875, 97.375), (23.625, 121.625), (31.625, 9.875), (20.375, 10.375), (38.625, 10.625), (21.375, 11.375),
    ),
    (
        (18.375, 15.875), (32.125, 24.625), (42.125, 26.375), (49.125, 49.625), None, (23.375, 22.125),
        (19.875, 40.875), (13.375, 63.375), (42.375, 62.375), (18.625, 88.375), (21.875, 114.375), (30.625, 64.875),
        (40.625, 89.625), (54.625, 115.625), (19.375, 12.375), (20.625, 12.375), (37.625, 13.625), (25.375, 12.625),
    ),
    (
        (18.875, 6.875), (27.125, 25.375), (15.375, 25.375), (11.375, 40.375), (0.375, 48.375), (39.625, 26.375),
        (50.125, 45.625), (58.625, 62.625), (18.125, 65.375), (25.125, 91.375), (53.375, 103.375), (32.125, 65.125),
        (18.875, 92.125), (15.625, 119.625), (17.625, 4.625), (23.625, 5.625), (16.375, 7.625), (32.625, 9.625),
    ),
    (
        (20.125, 13.625), (30.625, 28.375), (17.875, 28.375), (16.625, 44.375), (14.625, 60.625), (43.625, 28.375),
        (49.375, 47.375), (49.375, 64.625), (24.125, 64.625), (19.625, 88.125), (16.875, 117.625), (41.875, 65.625),
        (48.625, 90.875), (52.625, 114.625), (21.375, 11.625), (23.375, 11.375), (24.625, 13.625), (33.625, 13.375),
    ),
)


def load_standard_poses(folder=None):
    """The 8 standard poses, in order, named ``"1"`` .. ``"8"``, on a 64x128 canvas.

    Parameters
    ----------
    folder : str or Path, optional
        Read the poses from the ``*.json`` files of this folder (sorted by name) instead of the
        copy inside the package, e.g. an edited ``standard_poses/``.

    Returns
    -------
    list of Pose
    """
    if folder is not None:
        folder = Path(folder)
        if not folder.is_dir():
            raise PoseError(f"folder {str(folder)!r} is not a directory")
        files = sorted(folder.glob("*.json"), key=lambda p: (len(p.stem), p.stem))
        if not files:
            raise PoseError(f"folder {str(folder)!r} contains no .json pose files")
        return [pose_from_openpose(path, name=path.stem) for path in files]
    poses = []
    for i, joints in enumerate(_STANDARD_KEYPOINTS):
        visible = np.array([p is not None for p in joints])
        keypoints = np.array([p if p is not None else (0.0, 0.0) for p in joints], dtype=np.float64)
        poses.append(Pose(keypoints, visible, *STANDARD_SIZE, name=str(i + 1)))
    return poses


def write_standard_poses(folder):
    """Write ``1.json`` .. ``8.json`` (OpenPose JSON) and ``1.png`` .. ``8.png`` (64x128 renders)
    into ``folder`` (created if needed). Returns the list of written paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for pose in load_standard_poses():
        json_path = folder / f"{pose.name}.json"
        json_path.write_text(format_openpose(pose.to_openpose()))
        png_path = folder / f"{pose.name}.png"
        render(pose).save(png_path)
        written += [json_path, png_path]
    return written
