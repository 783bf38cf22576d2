// The skeleton editor in the page (pose2id/demo/editor.py): draw, drag, select, remove and add joints.
// __NAMES__, __LIMBS__ and __COLORS__ are filled in from pose2id.poses when the module is imported.
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
