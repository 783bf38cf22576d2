"""Draw a :class:`Pose` the way OpenPose / ControlNet's ``draw_bodypose`` does, without OpenCV.

Limbs are filled ellipses in ``COLORS[k]``, the whole canvas is then multiplied by 0.6, and the
joint dots go on top in full colour, in index order. The image is drawn ``supersample`` times
larger and box-filtered down, which is how the reference 64x128 renders were made (a large
render resized with area interpolation): thin limbs come out anti-aliased, not as jagged 1-px
lines.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

from .skeleton import COLORS, LIMBS, Pose, PoseError

# Sizes on the 64x128 reference canvas, fitted to ../shared/data/standard_pose_images.
STICK_HALF_WIDTH = 1.5  # semi-minor axis of a limb ellipse, in pixels
JOINT_RADIUS = 2.0
REFERENCE_SIZE = (64, 128)
DARKEN = 0.6


def _ellipse_polygon(p, q, half_width, n=48):
    """Polygon (n, 2) of the ellipse whose major axis runs from point p to point q."""
    centre = (p + q) / 2
    d = q - p
    half_length = math.hypot(*d) / 2
    angle = math.atan2(d[1], d[0])
    t = np.linspace(0, 2 * math.pi, n, endpoint=False)
    local = np.stack([half_length * np.cos(t), half_width * np.sin(t)], 1)
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    return local @ rot.T + centre


def line_scale(width, height):
    """How much thicker limbs and dots are on a ``width x height`` canvas than on 64x128."""
    return math.sqrt((width / REFERENCE_SIZE[0]) * (height / REFERENCE_SIZE[1]))


def render(pose, width=None, height=None, supersample=None):
    """Render ``pose`` as an OpenPose COCO-18 skeleton image.

    Parameters
    ----------
    pose : Pose
    width, height : int, optional
        Output size; defaults to the pose's canvas. The pose is stretched to it (each axis
        independently, like OpenPose's normalized coordinates); use ``pose.fit`` first to keep
        the aspect ratio.
    supersample : int, optional
        Drawing resolution factor before the box filter; chosen from the size by default.

    Returns
    -------
    PIL.Image.Image
        RGB, ``width x height``, black background, canonical palette (nose red).
    """
    if not isinstance(pose, Pose):
        raise PoseError(f"pose must be a pose2id.poses.Pose, got {type(pose).__name__}")
    width = pose.width if width is None else width
    height = pose.height if height is None else height
    for value, label in ((width, "width"), (height, "height")):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise PoseError(f"{label} must be a positive integer, got {value!r}")
    scale = line_scale(width, height)
    if supersample is None:
        # Enough resolution that a limb is several drawing pixels wide.
        supersample = max(2, math.ceil(4 / scale))
    s = int(supersample)
    if s < 1:
        raise PoseError(f"supersample must be a positive integer, got {supersample!r}")

    # Pixel centres are at i + 0.5 in pose coordinates and at integers in PIL's drawing grid.
    factor = np.array([width / pose.width, height / pose.height]) * s
    pts = pose.keypoints * factor - 0.5
    vis = pose.visible
    half_width = STICK_HALF_WIDTH * scale * s
    radius = JOINT_RADIUS * scale * s

    canvas = Image.new("RGB", (width * s, height * s))
    draw = ImageDraw.Draw(canvas)
    for k, (a, b) in enumerate(LIMBS):
        if vis[a] and vis[b]:
            poly = _ellipse_polygon(pts[a], pts[b], half_width)
            draw.polygon([tuple(v) for v in poly.tolist()], fill=COLORS[k])
    canvas = Image.fromarray((np.asarray(canvas) * DARKEN).astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    for i in np.flatnonzero(vis):
        x, y = pts[i]
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=COLORS[i])
    if s > 1:
        canvas = canvas.resize((width, height), Image.BOX)
    return canvas
