"""The skeleton editor: a ``gr.HTML`` canvas where joints are dragged, and its Python actions.

The component's value is the pose as an OpenPose JSON string (the format the editor imports and
exports), so the pose the user made travels with every event and is never rebuilt from scratch.
The browser part draws the skeleton in the OpenPose palette, lets the user drag joints, select
one, hide it ("remove") or bring a hidden one back ("add"); Python does the rest (mirror, reset,
import/export, pose from a photo) through :mod:`pose2id.poses`.
"""

import json
from functools import lru_cache
from pathlib import Path

import gradio as gr

from pose2id.demo.inputs import InputError, open_photo
from pose2id.demo.messages import status, warn
from pose2id.poses import COLORS, KEYPOINT_NAMES, LIMBS, Pose, PoseError, load_standard_poses

MAX_JSON_BYTES = 1024 * 1024


@lru_cache(maxsize=1)
def standard_poses():
    """The 8 standard poses (64x128 canvas), loaded once."""
    return tuple(load_standard_poses())


def standard_pose(name):
    """Standard pose ``name`` ("1".."8")."""
    for pose in standard_poses():
        if pose.name == str(name):
            return pose
    raise ValueError(f"name must be one of {[p.name for p in standard_poses()]}, got {name!r}")


def to_value(pose):
    """The editor value (OpenPose JSON string) of a :class:`Pose`."""
    return json.dumps(pose.to_openpose())


def pose_from_text(text):
    """The :class:`Pose` in OpenPose JSON ``text`` from a visitor (the editor's value, an imported
    file's contents). Only JSON text is read: :meth:`Pose.from_openpose` would take other text as
    the path of a file on the server and read it (any file, ``/dev/zero`` without end)."""
    if not text.lstrip().startswith(("{", "[")):
        raise PoseError("not OpenPose JSON text (which starts with '{' or '[')")
    return Pose.from_openpose(text)


def from_value(value):
    """The :class:`Pose` in an editor value; raises PoseError when it is not a valid pose."""
    if not isinstance(value, str) or not value.strip():
        raise PoseError("the editor holds no pose; reset it to a standard pose")
    if len(value.encode("utf-8", "replace")) > MAX_JSON_BYTES:
        raise PoseError(f"the editor value is larger than {MAX_JSON_BYTES // 1024} KB, like a pose file may not be; "
                        "a pose is a few KB")
    return pose_from_text(value)


def _editor_pose(value, action):
    """(pose, None) for the editor value ``value``, or (None, warning status) saying why ``action``
    ("mirror", "export") cannot be done with it."""
    try:
        return from_value(value), None
    except PoseError as error:
        return None, warn(f"Cannot {action}: {error}")


def reset(name):
    """Editor value and status after "Reset to standard pose ``name``"."""
    try:
        pose = standard_pose(name)
    except ValueError as error:
        return gr.update(), warn(str(error))
    return to_value(pose), status(f"Editor reset to standard pose {pose.name}.", "ok")


def mirror(value):
    """Editor value and status after a horizontal mirror (left and right joints swap)."""
    pose, refusal = _editor_pose(value, "mirror")
    if refusal is not None:
        return gr.update(), refusal
    return to_value(pose.mirror()), status("Pose mirrored.", "ok")


def import_json(path):
    """Editor value and status from an uploaded OpenPose JSON file; a bad file, or one whose pose
    is not enough of a body to generate from (:meth:`Pose.check_body`), leaves the editor as it was."""
    if path is None:
        return gr.update(), status("Choose an OpenPose JSON file to import.", "info")
    path = Path(path)
    try:
        if path.stat().st_size > MAX_JSON_BYTES:
            raise PoseError(f"{path.name} is larger than {MAX_JSON_BYTES // 1024} KB; a pose file is a few KB")
        text = path.read_text(encoding="utf-8")
        pose = pose_from_text(text).check_body()
    except UnicodeDecodeError:
        return gr.update(), warn(f"Cannot import {path.name}: it is not a UTF-8 text (JSON) file. Your pose is unchanged.")
    except (PoseError, OSError) as error:
        reason = str(error).removeprefix("JSON text: ")
        return gr.update(), warn(f"Cannot import {path.name}: {reason}. Your pose is unchanged.")
    pose = pose.fit(64, 128) if (pose.width, pose.height) != (64, 128) else pose
    return to_value(pose), status(f"Imported {path.name} ({int(pose.visible.sum())} joints).", "ok")


def export_json(value):
    """(path of a pose.json download or None, status) for the editor's current pose."""
    pose, refusal = _editor_pose(value, "export")
    if refusal is not None:
        return gr.update(), refusal
    from pose2id.demo import scratch

    path = scratch.folder("pose") / "pose.json"
    path.write_text(json.dumps(pose.to_openpose(), indent=1))
    return gr.update(value=str(path), visible=True), status("pose.json is ready to download below.", "ok")


def from_photo(photo_path):
    """Editor value and status from BlazePose on the reference photo (needs mediapipe)."""
    from pose2id.poses import NoPersonFound, PoseEstimatorUnavailable, pose_from_image

    try:
        image = open_photo(photo_path)
        pose = pose_from_image(image)
    except InputError as error:
        return gr.update(), warn(f"Pose from photo: {error}")
    except NoPersonFound as error:
        return gr.update(), warn(f"Pose from photo: {error}. Your pose is unchanged.")
    except PoseEstimatorUnavailable as error:
        return gr.update(), warn(str(error))
    try:
        pose.check_body()
    except PoseError as error:
        return gr.update(), warn(f"Pose from photo: too little of the person was found: {error}. Your pose is unchanged.")
    return to_value(pose.fit(64, 128)), status(f"Pose taken from the photo ({int(pose.visible.sum())} joints found).", "ok")


HTML_TEMPLATE = """
<div class="p2-editor">
  <canvas class="p2-canvas" width="256" height="512" aria-label="skeleton editor: drag the joints"></canvas>
  <div class="p2-side">
    <div class="p2-info">Drag a joint to move it; click one to select it.</div>
    <button type="button" class="p2-remove" disabled>Remove selected joint</button>
    <div class="p2-add-row">
      <select class="p2-missing" aria-label="hidden joints"></select>
      <button type="button" class="p2-add">Add joint</button>
    </div>
  </div>
</div>
"""

_STATIC = Path(__file__).resolve().parent / "static"
# the editor's look and its behaviour in the page, read once at start-up
CSS_TEMPLATE = (_STATIC / "editor.css").read_text(encoding="utf-8")
_JS = (_STATIC / "editor.js").read_text(encoding="utf-8")

JS_ON_LOAD = (
    _JS.replace("__NAMES__", json.dumps(list(KEYPOINT_NAMES)))
    .replace("__LIMBS__", json.dumps([list(limb) for limb in LIMBS]))
    .replace("__COLORS__", json.dumps([list(c) for c in COLORS]))
)


def skeleton_editor(**kwargs):
    """The editor component, starting on standard pose 1."""
    return gr.HTML(
        value=to_value(standard_pose("1")),
        html_template=HTML_TEMPLATE,
        css_template=CSS_TEMPLATE,
        js_on_load=JS_ON_LOAD,
        **kwargs,
    )
