// The t-SNE map of the Feature space tab (the gr.HTML's js_on_load). Gradio patches the HTML in
// place on every update (the dots' attributes are reset to their Base positions, while the slider
// keeps its handle where the user left it), so everything is found inside `element` at event time
// and a new map is shown at once at the handle's position: handle, dots and numbers always agree.
let playing = null;

const show = (root, t) => {  // t in [0, 1]: 0 = Base positions, 1 = after positions
  const groups = new Map();
  root.querySelectorAll('circle[data-t]').forEach(c => {
    const d = c.dataset;
    const x = (1 - t) * d.x0 + t * d.x1, y = (1 - t) * d.y0 + t * d.y1;
    c.setAttribute('cx', x.toFixed(2));
    c.setAttribute('cy', y.toFixed(2));
    if (!groups.has(d.pid)) groups.set(d.pid, []);
    groups.get(d.pid).push([x, y]);
  });
  let sum = 0, count = 0;
  groups.forEach(points => {
    const cx = points.reduce((s, p) => s + p[0], 0) / points.length;
    const cy = points.reduce((s, p) => s + p[1], 0) / points.length;
    points.forEach(p => { sum += Math.hypot(p[0] - cx, p[1] - cy); count += 1; });
  });
  const now = root.querySelector('.p2-tsne-now');
  if (now && count) now.textContent = (sum / count).toFixed(1);
};

// A new map (its data-map changes with every one drawn): stop any Play and show it where the handle is.
let seen = null;
const sync = () => {
  const root = element.querySelector('.p2-tsne');
  if (!root || root.dataset.map === seen) return;
  seen = root.dataset.map;
  if (playing) cancelAnimationFrame(playing);
  playing = null;
  const range = root.querySelector('.p2-tsne-range input');
  show(root, range ? range.value / 100 : 0);
};
new MutationObserver(sync).observe(element, {childList: true, subtree: true, attributes: true,
                                             attributeFilter: ['data-map']});
sync();

element.addEventListener('input', (ev) => {
  const range = ev.target.closest('.p2-tsne-range input');
  if (!range) return;
  if (playing) cancelAnimationFrame(playing);
  playing = null;
  show(range.closest('.p2-tsne'), range.value / 100);
});

element.addEventListener('click', (ev) => {
  if (!ev.target.closest('.p2-tsne-play')) return;
  const root = ev.target.closest('.p2-tsne');
  const range = root.querySelector('.p2-tsne-range input');
  if (playing) cancelAnimationFrame(playing);
  const start = performance.now(), duration = 1500;
  const frame = (now) => {
    if (!root.isConnected) { playing = null; return; }  // replaced by a new map meanwhile
    const u = Math.min(1, (now - start) / duration);
    const t = u < 0.5 ? 2 * u * u : 1 - 2 * (1 - u) * (1 - u);  // ease in and out
    range.value = Math.round(100 * t);
    show(root, range.value / 100);  // the dots where the handle is (its whole percent), never between
    playing = u < 1 ? requestAnimationFrame(frame) : null;
  };
  playing = requestAnimationFrame(frame);
});

element.addEventListener('mouseover', (ev) => {
  const dot = ev.target.closest('circle[data-t]');
  if (!dot) return;
  const thumb = element.querySelector(`.p2-tsne-thumbs img[data-i="${dot.dataset.t}"]`);
  const tip = element.querySelector('.p2-tsne-tip');
  if (!thumb || !tip) return;
  tip.querySelector('img').src = thumb.src;
  tip.querySelector('span').textContent = thumb.dataset.label;
  const box = element.getBoundingClientRect();
  tip.style.left = (ev.clientX - box.left + 14) + 'px';
  tip.style.top = (ev.clientY - box.top + 14) + 'px';
  tip.hidden = false;
  element.querySelectorAll(`circle[data-pid="${dot.dataset.pid}"]`).forEach(c => c.classList.add('p2-mate'));
  dot.classList.add('p2-on');
});

element.addEventListener('mouseout', (ev) => {
  const dot = ev.target.closest('circle[data-t]');
  if (!dot) return;
  element.querySelector('.p2-tsne-tip').hidden = true;
  element.querySelectorAll('circle.p2-on, circle.p2-mate').forEach(c => c.classList.remove('p2-on', 'p2-mate'));
});
