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


def from_value(value):
    """The :class:`Pose` in an editor value; raises PoseError when it is not a valid pose."""
    if not isinstance(value, str) or not value.strip():
        raise PoseError("the editor holds no pose; reset it to a standard pose")
    if len(value.encode("utf-8", "replace")) > MAX_JSON_BYTES:
        raise PoseError(f"the editor value is larger than {MAX_JSON_BYTES // 1024} KB, like a pose file may not be; "
                        "a pose is a few KB")
    return Pose.from_openpose(value)


def reset(name):
    """Editor value and status after "Reset to standard pose ``name``"."""
    try:
        pose = standard_pose(name)
    except ValueError as error:
        return gr.update(), warn(str(error))
    return to_value(pose), status(f"Editor reset to standard pose {pose.name}.", "ok")


def mirror(value):
    """Editor value and status after a horizontal mirror (left and right joints swap)."""
    try:
        pose = from_value(value)
    except PoseError as error:
        return gr.update(), warn(f"Cannot mirror: {error}")
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
        pose = Pose.from_openpose(text).check_body()
    except UnicodeDecodeError:
        return gr.update(), warn(f"Cannot import {path.name}: it is not a UTF-8 text (JSON) file. Your pose is unchanged.")
    except (PoseError, OSError) as error:
        reason = str(error).removeprefix("JSON text: ")
        return gr.update(), warn(f"Cannot import {path.name}: {reason}. Your pose is unchanged.")
    pose = pose.fit(64, 128) if (pose.width, pose.height) != (64, 128) else pose
    return to_value(pose), status(f"Imported {path.name} ({int(pose.visible.sum())} joints).", "ok")


def export_json(value):
    """(path of a pose.json download or None, status) for the editor's current pose."""
    try:
        pose = from_value(value)
    except PoseError as error:
        return gr.update(), warn(f"Cannot export: {error}")
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

CSS_TEMPLATE = """
.p2-editor { display: flex; gap: 12px; align-items: flex-start; flex-wrap: wrap; }
.p2-canvas { height: min(52vh, 512px); aspect-ratio: 1 / 2; background: #000; border-radius: 6px;
             touch-action: none; cursor: grab; }
.p2-side { display: flex; flex-direction: column; gap: 8px; min-width: 170px; flex: 1; }
.p2-info { font-size: 0.95em; min-height: 3em; }
.p2-side button { padding: 6px 10px; border-radius: 6px; border: 1px solid var(--border-color-primary);
                  background: var(--button-secondary-background-fill); color: var(--body-text-color); cursor: pointer; }
.p2-side button:disabled { opacity: 0.5; cursor: default; }
.p2-side select { padding: 5px; border-radius: 6px; background: var(--input-background-fill); color: var(--body-text-color); }
.p2-add-row { display: flex; gap: 6px; }
"""

_JS = """
const NAMES = __NAMES__;
const LIMBS = __LIMBS__;
const COLORS = __COLORS__;
let pose = null, selected = null, dragging = null;

function parse() {
  try {
    const obj = JSON.parse(props.value);
    const kp = obj.people[0].pose_keypoints_2d;
    const pts = [];
    for (let i = 0; i < 18; i++) pts.push([kp[3 * i], kp[3 * i + 1], kp[3 * i + 2] > 0]);
    pose = { w: obj.canvas_width, h: obj.canvas_height, pts: pts };
  } catch (e) { pose = null; }
}
function serialize() {
  const kp = [];
  for (const p of pose.pts) kp.push(p[2] ? p[0] : 0, p[2] ? p[1] : 0, p[2] ? 1 : 0);
  return JSON.stringify({ canvas_width: pose.w, canvas_height: pose.h, people: [{ pose_keypoints_2d: kp }] });
}
function commit() {
  props.value = serialize();
  draw();
  trigger('change');
  requestAnimationFrame(draw);
}
function rgb(c, f) { return `rgb(${Math.round(c[0] * f)},${Math.round(c[1] * f)},${Math.round(c[2] * f)})`; }
function draw() {
  const canvas = element.querySelector('.p2-canvas');
  if (!canvas) return;
  const ctx = canvas.getContext('2d');
  ctx.fillStyle = '#000'; ctx.fillRect(0, 0, canvas.width, canvas.height);
  const info = element.querySelector('.p2-info');
  if (!pose) { if (info) info.textContent = 'No valid pose: reset to a standard pose.'; return; }
  canvas.dataset.pose = serialize();
  const sx = canvas.width / pose.w, sy = canvas.height / pose.h;
  ctx.lineCap = 'round';
  LIMBS.forEach(([a, b], k) => {
    const p = pose.pts[a], q = pose.pts[b];
    if (!p[2] || !q[2]) return;
    ctx.strokeStyle = rgb(COLORS[k], 0.6); ctx.lineWidth = 10;
    ctx.beginPath(); ctx.moveTo(p[0] * sx, p[1] * sy); ctx.lineTo(q[0] * sx, q[1] * sy); ctx.stroke();
  });
  pose.pts.forEach((p, i) => {
    if (!p[2]) return;
    ctx.fillStyle = rgb(COLORS[i], 1);
    ctx.beginPath(); ctx.arc(p[0] * sx, p[1] * sy, i === selected ? 9 : 7, 0, 2 * Math.PI); ctx.fill();
    if (i === selected) { ctx.strokeStyle = '#fff'; ctx.lineWidth = 3; ctx.stroke(); }
  });
  if (info) {
    info.textContent = selected === null ? 'Drag a joint to move it; click one to select it.'
      : `Selected: ${NAMES[selected]} at (${pose.pts[selected][0].toFixed(1)}, ${pose.pts[selected][1].toFixed(1)})`;
  }
  const remove = element.querySelector('.p2-remove');
  if (remove) remove.disabled = selected === null;
  const missing = element.querySelector('.p2-missing');
  if (missing) {
    const hidden = pose.pts.map((p, i) => p[2] ? null : i).filter(i => i !== null);
    missing.innerHTML = hidden.length ? hidden.map(i => `<option value="${i}">${NAMES[i]}</option>`).join('')
      : '<option value="">(all 18 joints shown)</option>';
    element.querySelector('.p2-add').disabled = hidden.length === 0;
  }
}
function toPose(ev) {
  const canvas = element.querySelector('.p2-canvas');
  const r = canvas.getBoundingClientRect();
  return [(ev.clientX - r.left) / r.width * pose.w, (ev.clientY - r.top) / r.height * pose.h];
}
function nearest(x, y) {
  let best = null, bestD = Infinity;
  const tol = pose.w * 0.09;
  pose.pts.forEach((p, i) => {
    if (!p[2]) return;
    const d = Math.hypot(p[0] - x, p[1] - y);
    if (d < bestD && d <= tol) { best = i; bestD = d; }
  });
  return best;
}
element.addEventListener('pointerdown', (ev) => {
  if (!ev.target.classList.contains('p2-canvas') || !pose) return;
  const [x, y] = toPose(ev);
  const i = nearest(x, y);
  selected = i; dragging = i;
  if (i !== null) ev.target.setPointerCapture(ev.pointerId);
  draw();
});
element.addEventListener('pointermove', (ev) => {
  if (dragging === null || !pose) return;
  const [x, y] = toPose(ev);
  pose.pts[dragging][0] = Math.min(Math.max(x, 0), pose.w);
  pose.pts[dragging][1] = Math.min(Math.max(y, 0), pose.h);
  draw();
});
function endDrag() { if (dragging !== null) { dragging = null; commit(); } }
element.addEventListener('pointerup', endDrag);
element.addEventListener('pointercancel', endDrag);
element.addEventListener('click', (ev) => {
  if (!pose) return;
  if (ev.target.classList.contains('p2-remove') && selected !== null) {
    pose.pts[selected][2] = false; selected = null; commit();
  } else if (ev.target.classList.contains('p2-add')) {
    const i = parseInt(element.querySelector('.p2-missing').value);
    if (isNaN(i)) return;
    // a new joint starts next to the neck (or the centre), where it is easy to find and drag
    const anchor = pose.pts[1][2] ? pose.pts[1] : [pose.w / 2, pose.h / 2];
    pose.pts[i] = [Math.min(anchor[0] + pose.w * 0.15, pose.w), Math.min(anchor[1] + pose.h * 0.05, pose.h), true];
    selected = i; commit();
  }
});
watch('value', () => { parse(); if (selected !== null && (!pose || !pose.pts[selected][2])) selected = null; draw(); });
parse();
draw();
"""

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
