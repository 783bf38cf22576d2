"""The OpenPose COCO-18 skeleton: the :class:`Pose` type, with the keypoint names, limbs and palette
of :mod:`.keypoints` (re-exported here).

Coordinates are continuous pixel coordinates: pixel ``(i, j)`` of a ``width x height`` canvas
spans ``[i, i+1) x [j, j+1)``, so its centre is ``(i + 0.5, j + 0.5)`` and a visible joint
lies in ``[0, width] x [0, height]``. Scaling a pose is then a plain multiplication.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from .keypoints import (
    BODY_MIN_JOINTS,
    COLORS,
    KEYPOINT_NAMES,
    LIMBS,
    MIRROR_INDEX,
    NUM_KEYPOINTS,
    PoseError,
)
from .openpose_json import openpose_dict, read_openpose

__all__ = [
    "BODY_MIN_JOINTS",
    "COLORS",
    "KEYPOINT_NAMES",
    "LIMBS",
    "MIRROR_INDEX",
    "NUM_KEYPOINTS",
    "Pose",
    "PoseError",
    "pose_from_openpose",
]


def _joint(i):
    return f"joint {i} ({KEYPOINT_NAMES[i]})"


def _canvas_size(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise PoseError(f"{name} must be a positive integer number of pixels, got {value!r}")
    if value != int(value) or value < 1:
        raise PoseError(f"{name} must be a positive integer number of pixels, got {value!r}")
    return int(value)


class Pose:
    """An 18-keypoint OpenPose COCO-18 skeleton on a ``width x height`` canvas.

    Parameters
    ----------
    keypoints : (18, 2) array-like of float
        ``(x, y)`` in continuous pixel coordinates (a pixel centre is ``i + 0.5``).
    visible : (18,) array-like of bool, optional
        Which joints exist. Invisible joints are neither drawn nor written to OpenPose JSON
        (confidence 0); their coordinates are kept (NaN is allowed there and stored as 0).
        Default: all visible.
    width, height : int
        Canvas size in pixels. Every visible joint must lie in ``[0, width] x [0, height]``.
    name : str, optional
        A label, e.g. ``"3"`` for the third standard pose.

    Poses are immutable: the transforms return new poses. Two poses are equal when canvas,
    name, visibility and the coordinates of the visible joints are equal.
    """

    __slots__ = ("_keypoints", "_visible", "width", "height", "name")

    def __init__(self, keypoints, visible=None, width=64, height=128, name=None):
        width = _canvas_size(width, "width")
        height = _canvas_size(height, "height")
        try:
            kp = np.asarray(keypoints)
        except ValueError:
            raise PoseError("keypoints must be 18 (x, y) pairs of numbers; got a ragged sequence") from None
        if kp.dtype.kind not in "iuf":
            raise PoseError(f"keypoints must be numbers, got values of type {kp.dtype} (e.g. {kp.ravel()[:1].tolist()})")
        kp = kp.astype(np.float64)
        if kp.ndim == 1 and kp.size == 2 * NUM_KEYPOINTS:
            kp = kp.reshape(NUM_KEYPOINTS, 2)
        if kp.ndim == 1 and kp.size % 2 == 0:
            raise PoseError(f"expected {NUM_KEYPOINTS} keypoints, got {kp.size // 2} (a flat list of {kp.size} numbers)")
        if kp.ndim != 2 or kp.shape[1] != 2:
            raise PoseError(f"keypoints must have shape (18, 2), got shape {kp.shape}")
        if kp.shape[0] != NUM_KEYPOINTS:
            raise PoseError(f"expected {NUM_KEYPOINTS} keypoints, got {kp.shape[0]}")

        if visible is None:
            vis = np.ones(NUM_KEYPOINTS, dtype=bool)
        else:
            vis = np.asarray(visible)
            if vis.shape != (NUM_KEYPOINTS,):
                raise PoseError(f"visible must have shape (18,), got shape {vis.shape}")
            if vis.dtype != bool:
                if not np.issubdtype(vis.dtype, np.number) or not np.isin(vis, (0, 1)).all():
                    raise PoseError("visible must hold booleans (True for a joint that exists)")
                vis = vis.astype(bool)

        for i in np.flatnonzero(vis):
            x, y = kp[i]
            if not (math.isfinite(x) and math.isfinite(y)):
                raise PoseError(
                    f"keypoints[{i}] ({KEYPOINT_NAMES[i]}) is ({x}, {y}); coordinates must be finite "
                    f"(mark a missing joint with visible[{i}] = False)"
                )
            if not (0.0 <= x <= width and 0.0 <= y <= height):
                raise PoseError(
                    f"{_joint(i)} at ({x:g}, {y:g}) is outside the {width}x{height} canvas "
                    f"(x must be in [0, {width}], y in [0, {height}])"
                )
        kp[~vis] = np.nan_to_num(kp[~vis], nan=0.0, posinf=0.0, neginf=0.0)
        kp.setflags(write=False)
        vis = vis.copy()
        vis.setflags(write=False)
        self._keypoints = kp
        self._visible = vis
        self.width = width
        self.height = height
        self.name = None if name is None else str(name)

    @property
    def keypoints(self):
        """(18, 2) float64 read-only array of ``(x, y)`` pixel coordinates."""
        return self._keypoints

    @property
    def visible(self):
        """(18,) bool read-only array."""
        return self._visible

    def __repr__(self):
        label = "" if self.name is None else f"name={self.name!r}, "
        return f"Pose({label}{int(self._visible.sum())}/18 visible, canvas {self.width}x{self.height})"

    def __eq__(self, other):
        if not isinstance(other, Pose):
            return NotImplemented
        return (
            self.width == other.width
            and self.height == other.height
            and self.name == other.name
            and np.array_equal(self._visible, other._visible)
            and np.array_equal(self._keypoints[self._visible], other._keypoints[other._visible])
        )

    __hash__ = None

    def _replace(self, keypoints=None, visible=None, width=None, height=None):
        return Pose(
            self._keypoints if keypoints is None else keypoints,
            self._visible if visible is None else visible,
            self.width if width is None else width,
            self.height if height is None else height,
            name=self.name,
        )

    # -- transforms -------------------------------------------------------------------------

    def scale(self, sx, sy=None):
        """Scale the pose together with its canvas by ``(sx, sy)`` (``sy`` defaults to ``sx``).

        The new canvas is ``round(width * sx) x round(height * sy)``; joints are scaled by the
        exact ratio of the new to the old canvas so that they stay on it.
        """
        sy = sx if sy is None else sy
        for value, label in ((sx, "sx"), (sy, "sy")):
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (math.isfinite(value) and value > 0):
                raise PoseError(f"{label} must be a positive number, got {value!r}")
        new_w = max(1, round(self.width * sx))
        new_h = max(1, round(self.height * sy))
        factor = np.array([new_w / self.width, new_h / self.height])
        return self._replace(keypoints=self._keypoints * factor, width=new_w, height=new_h)

    def fit(self, width, height, mode="canvas", margin=0.05):
        """Scale uniformly and centre this pose onto a ``width x height`` canvas.

        ``mode="canvas"`` letterboxes the whole source canvas (framing kept, e.g. 64x128 ->
        256x512 is an exact 4x). ``mode="skeleton"`` fits the bounding box of the visible
        joints, leaving ``margin`` (a fraction of the target size) free on each side; use it
        for a pose taken from a photo in which the person is small.
        """
        width = _canvas_size(width, "width")
        height = _canvas_size(height, "height")
        if mode == "canvas":
            x0, y0, x1, y1 = 0.0, 0.0, float(self.width), float(self.height)
            avail_w, avail_h = float(width), float(height)
        elif mode == "skeleton":
            if not 0 <= margin < 0.5:
                raise PoseError(f"margin must be in [0, 0.5), got {margin!r}")
            if not self._visible.any():
                raise PoseError("cannot fit the skeleton of a pose with no visible joints")
            pts = self._keypoints[self._visible]
            (x0, y0), (x1, y1) = pts.min(0), pts.max(0)
            avail_w, avail_h = width * (1 - 2 * margin), height * (1 - 2 * margin)
        else:
            raise PoseError(f"mode must be 'canvas' or 'skeleton', got {mode!r}")
        box_w, box_h = max(x1 - x0, 1e-9), max(y1 - y0, 1e-9)
        s = min(avail_w / box_w, avail_h / box_h)
        offset = np.array([(width - s * (x0 + x1)) / 2, (height - s * (y0 + y1)) / 2])
        kp = self._keypoints * s + offset
        # Float round-off must not push a joint that sat on the border off the new canvas.
        kp = np.where(self._visible[:, None], np.clip(kp, 0, [width, height]), kp)
        return self._replace(keypoints=kp, width=width, height=height)

    def mirror(self):
        """Flip horizontally; left and right joints swap so limb colours keep their meaning."""
        kp = self._keypoints.copy()
        kp[:, 0] = self.width - kp[:, 0]
        index = list(MIRROR_INDEX)
        return self._replace(keypoints=kp[index], visible=self._visible[index])

    def translate(self, dx, dy):
        """Shift every joint by ``(dx, dy)`` pixels; raises :class:`PoseError` if a visible
        joint would leave the canvas."""
        for value, label in ((dx, "dx"), (dy, "dy")):
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
                raise PoseError(f"{label} must be a finite number, got {value!r}")
        return self._replace(keypoints=self._keypoints + np.array([dx, dy], dtype=np.float64))

    def with_joint(self, i, x, y, visible=True):
        """A copy with joint ``i`` moved to ``(x, y)`` (and shown or hidden)."""
        i = _joint_index(i)
        for value, label in ((x, "x"), (y, "y")):
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise PoseError(f"{label} must be a number, got {value!r}")
        kp = self._keypoints.copy()
        kp[i] = (x, y)
        vis = self._visible.copy()
        vis[i] = bool(visible)
        return self._replace(keypoints=kp, visible=vis)

    def nearest_joint(self, x, y, max_distance=None):
        """Index of the visible joint closest to ``(x, y)``, or ``None`` if there is none
        within ``max_distance`` pixels (no limit by default). Ties go to the lower index."""
        if not self._visible.any():
            return None
        d = np.hypot(self._keypoints[:, 0] - x, self._keypoints[:, 1] - y)
        d[~self._visible] = np.inf
        i = int(np.argmin(d))
        if max_distance is not None and d[i] > max_distance:
            return None
        return i

    def check_body(self):
        """This pose, if it is enough of a body to draw a person in: the neck and at least
        ``BODY_MIN_JOINTS - 1`` (3) more visible joints, not all on one point. Otherwise raises :class:`PoseError` saying
        what is missing."""
        count = int(self._visible.sum())
        if count == 0:
            raise PoseError("the pose has no visible joint, so there is no one to draw")
        if not self._visible[1]:
            raise PoseError("the pose has no neck: every limb of the skeleton hangs from it, so without it the "
                            "pose is loose pieces; add the neck back")
        if count < BODY_MIN_JOINTS:
            names = ", ".join(KEYPOINT_NAMES[i] for i in np.flatnonzero(self._visible))
            raise PoseError(f"the pose has only {count} visible joint{'s' if count > 1 else ''} ({names}); a person "
                            f"needs the neck and at least {BODY_MIN_JOINTS - 1} more (e.g. the shoulders and a hip)")
        spread = np.ptp(np.asarray(self.keypoints, dtype=float)[self._visible], axis=0)
        if np.all(spread < 1.0):  # within one pixel of the canvas: drawn as a blob, not a body
            raise PoseError(f"the pose's {count} visible joints all sit on one point, so there is no body to draw; "
                            "spread them out (a standard pose is a good start)")
        return self

    # -- OpenPose JSON ------------------------------------------------------------------------

    @classmethod
    def from_openpose(cls, obj, name=None, person=0):
        """Read a pose from OpenPose JSON: a dict, a JSON string, or a path to a ``.json`` file.

        See :mod:`pose2id.poses.openpose_json` for the variants accepted; ``person`` picks an
        entry of ``people``.
        """
        keypoints, visible, width, height = read_openpose(obj, person=person)
        return cls(keypoints, visible, width, height, name=name)

    def to_openpose(self):
        """OpenPose JSON dict: ``{"canvas_width", "canvas_height", "people": [{"pose_keypoints_2d": [54 floats]}]}``
        with confidence 1 for visible joints and ``0, 0, 0`` for missing ones."""
        return openpose_dict(self._keypoints, self._visible, self.width, self.height)


def pose_from_openpose(obj, name=None, person=0):
    """Read one person from OpenPose JSON (see :mod:`pose2id.poses.openpose_json` for the variants
    accepted).

    Parameters
    ----------
    obj : dict, str or Path
        The parsed JSON, JSON text, or a path to a ``.json`` file.
    name : str, optional
        Name of the returned pose.
    person : int
        Which entry of ``people`` to read.

    Returns
    -------
    Pose
    """
    return Pose.from_openpose(obj, name=name, person=person)


def _joint_index(i):
    if isinstance(i, str):
        if i not in KEYPOINT_NAMES:
            raise PoseError(f"unknown joint name {i!r}; expected one of {', '.join(KEYPOINT_NAMES)}")
        return KEYPOINT_NAMES.index(i)
    if isinstance(i, bool) or not isinstance(i, numbers.Integral) or not 0 <= i < NUM_KEYPOINTS:
        raise PoseError(f"joint index must be an integer in [0, 17] or a joint name, got {i!r}")
    return int(i)
