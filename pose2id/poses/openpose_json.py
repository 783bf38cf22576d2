"""OpenPose JSON, the format ControlNet tools and OpenPose editors exchange.

This module reads and writes the format as plain arrays; :class:`~pose2id.poses.skeleton.Pose`
builds on it (:meth:`Pose.from_openpose`, :meth:`Pose.to_openpose`). Written as::

    {"canvas_width": 64, "canvas_height": 128,
     "people": [{"pose_keypoints_2d": [x0, y0, c0, x1, y1, c1, ...]}]}   # 18 triples

A missing joint is ``0, 0, 0``. Reading also accepts the variants found in the wild:

- several people: the first one is read (``person=`` picks another);
- ``face_keypoints_2d`` / ``hand_*_keypoints_2d`` and other extra keys: ignored;
- 25-point BODY_25 keypoints: mapped to COCO-18 (MidHip and the feet are dropped);
- coordinates normalized to ``[0, 1]`` (all visible joints within ``[0, 1]``): scaled by the canvas;
- no canvas size: pixel coordinates get the smallest canvas from the origin that holds every
  joint; normalized ones get the 64x128 IPG canvas;
- a list of such objects (one per frame): the first one is read;
- joints up to 1 px outside the canvas (editor rounding) are moved onto its border.

A person without a single visible joint (all ``0, 0, 0``, or NaN everywhere) is refused: there is
no pose in it. Anything else raises :class:`PoseError` saying which field is wrong and what was expected.
"""

from __future__ import annotations

import json
import math
import numbers
from pathlib import Path

import numpy as np

from .keypoints import KEYPOINT_NAMES, NUM_KEYPOINTS, PoseError

# COCO-18 joint i comes from BODY_25 joint BODY25_TO_COCO18[i].
BODY25_TO_COCO18 = (0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18)
DEFAULT_NORMALIZED_CANVAS = (64, 128)
_BORDER_TOLERANCE = 1.0


def _error(source, problem):
    """A :class:`PoseError` about the JSON from ``source`` (a file path, or a label such as
    ``"JSON text"``) with its fields set."""
    if isinstance(source, Path):
        return PoseError(problem, argument="pose", file=source)
    return PoseError(problem, argument="pose", label=source)


def _load(obj):
    """dict | JSON text | bytes | path -> parsed JSON value, with a source label for messages."""
    if isinstance(obj, (dict, list)):
        return obj, "pose"
    if isinstance(obj, (bytes, bytearray)):
        try:
            obj = obj.decode("utf-8")
        except UnicodeDecodeError:
            raise PoseError("OpenPose JSON bytes are not UTF-8 text") from None
    if isinstance(obj, str) and obj.lstrip().startswith(("{", "[")):
        text, source = obj, "JSON text"
    elif isinstance(obj, (str, Path)):
        path = Path(obj)
        if not path.is_file():
            raise PoseError(f"{str(obj)[:200]!r} is neither JSON text nor an existing .json file")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise _error(path, "not a text file (expected OpenPose JSON)") from None
        source = path
    else:
        raise PoseError(f"expected an OpenPose JSON dict, JSON text or a path, got {type(obj).__name__}")
    try:
        return json.loads(text), source
    except json.JSONDecodeError as err:
        raise _error(source, f"not valid JSON: {err.msg} at line {err.lineno}, column {err.colno}") from None


def _canvas_value(data, key, source):
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) \
            or value < 1 or value != int(value):
        raise _error(source, f"{key} must be a positive whole number of pixels, got {value!r}")
    return int(value)


def read_openpose(obj, person=0):
    """Read one person from OpenPose JSON (see the module docstring for the variants accepted).

    Parameters
    ----------
    obj : dict, list, str, bytes or Path
        The parsed JSON, JSON text, or a path to a ``.json`` file.
    person : int
        Which entry of ``people`` to read.

    Returns
    -------
    keypoints : (18, 2) float64 array
        ``(x, y)`` pixel coordinates on the canvas; 0 for missing joints.
    visible : (18,) bool array
    width, height : int
        The canvas size.
    """
    data, source = _load(obj)
    if isinstance(data, list):
        if not data or not isinstance(data[0], dict):
            raise _error(source, "expected an object with a 'people' list (or a list of such objects)")
        data = data[0]
    if not isinstance(data, dict):
        raise _error(source, f"expected a JSON object with a 'people' list, got {type(data).__name__}")
    people = data.get("people")
    if not isinstance(people, list):
        raise _error(source, 'missing \'people\' list (OpenPose JSON has {"people": [{"pose_keypoints_2d": [...]}]})')
    if not people:
        raise _error(source, "'people' is empty, so there is no pose to read")
    if not isinstance(person, numbers.Integral) or not 0 <= person < len(people):
        raise _error(source, f"person={person!r} but 'people' has {len(people)} entries")
    entry = people[person]
    where = f"people[{person}]"
    if not isinstance(entry, dict) or "pose_keypoints_2d" not in entry:
        raise _error(source, f"{where} has no 'pose_keypoints_2d' list")
    flat = entry["pose_keypoints_2d"]
    if not isinstance(flat, list):
        raise _error(source, f"{where}.pose_keypoints_2d must be a list of numbers, got {type(flat).__name__}")
    for j, value in enumerate(flat):
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise _error(source, f"{where}.pose_keypoints_2d[{j}] is {value!r}; expected a number")
    if len(flat) == 3 * NUM_KEYPOINTS:
        triples = np.array(flat, dtype=np.float64).reshape(NUM_KEYPOINTS, 3)
    elif len(flat) == 75:
        triples = np.array(flat, dtype=np.float64).reshape(25, 3)[list(BODY25_TO_COCO18)]
    else:
        raise _error(
            source,
            f"{where}.pose_keypoints_2d has {len(flat)} values; expected 54 (COCO-18: 18 joints "
            f"x (x, y, confidence)) or 75 (BODY_25)"
        )

    # Missing joints: confidence 0 (OpenPose) or non-finite coordinates.
    visible = (triples[:, 2] > 0) & np.isfinite(triples[:, :2]).all(1)
    if not visible.any():
        # e.g. a detector's placeholder for a person it did not find: nothing to draw or generate
        why = "every keypoint is 0, 0, 0" if not triples.any() else "every joint has confidence 0 or no numeric x, y"
        raise _error(source, f"no visible joint{f' in {where}' if person else ''} ({why}), so there is no pose to draw")
    keypoints = np.where(visible[:, None], triples[:, :2], 0.0)
    width = _canvas_value(data, "canvas_width", source)
    height = _canvas_value(data, "canvas_height", source)
    if (width is None) != (height is None):
        raise _error(source, "has only one of canvas_width and canvas_height; give both or neither")

    pts = keypoints[visible]
    normalized = pts.min() >= 0 and pts.max() <= 1.0 and (width is None or max(width, height) > 2)
    if normalized:
        if width is None:
            width, height = DEFAULT_NORMALIZED_CANVAS
        keypoints = keypoints * [width, height]
    elif width is None:
        width = max(1, math.ceil(pts[:, 0].max()))
        height = max(1, math.ceil(pts[:, 1].max()))

    for i in np.flatnonzero(visible):
        x, y = keypoints[i]
        if not (-_BORDER_TOLERANCE <= x <= width + _BORDER_TOLERANCE
                and -_BORDER_TOLERANCE <= y <= height + _BORDER_TOLERANCE):
            raise _error(
                source,
                f"{where} joint {i} ({KEYPOINT_NAMES[i]}) at ({x:g}, {y:g}) is outside the "
                f"{width}x{height} canvas"
            )
    keypoints = np.where(visible[:, None], np.clip(keypoints, 0, [width, height]), keypoints)
    return keypoints, visible, width, height


def openpose_dict(keypoints, visible, width, height):
    """OpenPose JSON dict of one person: confidence 1 for visible joints, ``0, 0, 0`` for missing ones.

    Parameters
    ----------
    keypoints : (18, 2) array of float
    visible : (18,) array of bool
    width, height : int
        The canvas size.

    Returns
    -------
    dict
        ``{"canvas_width", "canvas_height", "people": [{"pose_keypoints_2d": [54 floats]}]}``
    """
    flat = []
    for (x, y), v in zip(np.asarray(keypoints).tolist(), np.asarray(visible).tolist()):
        flat += [x, y, 1.0] if v else [0.0, 0.0, 0.0]
    return {"canvas_width": width, "canvas_height": height, "people": [{"pose_keypoints_2d": flat}]}


def format_openpose(data):
    """OpenPose JSON dict -> text with one ``x, y, confidence`` triple per line (diff-friendly)."""
    lines = ["{"]
    for key in ("canvas_width", "canvas_height"):
        lines.append(f"  {json.dumps(key)}: {json.dumps(data[key])},")
    lines.append('  "people": [')
    for p, person in enumerate(data["people"]):
        flat = person["pose_keypoints_2d"]
        triples = [", ".join(json.dumps(float(v)) for v in flat[j:j + 3]) for j in range(0, len(flat), 3)]
        lines.append("    {")
        lines.append('      "pose_keypoints_2d": [')
        lines.append(",\n".join(f"        {t}" for t in triples))
        lines.append("      ]")
        lines.append("    }" + ("," if p < len(data["people"]) - 1 else ""))
    lines.append("  ]")
    lines.append("}")
    return "\n".join(lines) + "\n"
