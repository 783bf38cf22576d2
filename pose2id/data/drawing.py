"""Drawing primitives of SynthPed: identities, cameras, skeletons and the renderer.

Shared by :mod:`pose2id.data.synthped` (which draws the benchmark's images) and
:mod:`pose2id.data.oracle` (which redraws an identity in the standard poses), so neither
imports the other. Everything here is deterministic given its ``rng`` (np.random.Generator).
"""

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

WIDTH, HEIGHT = 64, 128
_SS = 2  # drawn at twice the size, then downsampled: cheap anti-aliasing

# Clothing colours, weighted like a street crowd: many dark and neutral clothes, few bright ones.
CLOTHING_COLOURS = {
    "black": ((28, 28, 30), 3),
    "charcoal": ((62, 62, 66), 3),
    "grey": ((128, 128, 128), 3),
    "white": ((225, 225, 220), 3),
    "navy": ((30, 40, 90), 3),
    "blue": ((50, 90, 170), 2),
    "denim": ((70, 95, 135), 3),
    "red": ((170, 35, 40), 2),
    "green": ((45, 110, 60), 1.5),
    "olive": ((95, 100, 55), 1.5),
    "khaki": ((175, 155, 110), 2),
    "brown": ((100, 65, 40), 2),
    "yellow": ((215, 185, 50), 1),
    "pink": ((220, 140, 160), 1),
    "purple": ((100, 60, 130), 1),
    "orange": ((215, 110, 40), 1),
    "teal": ((40, 125, 125), 1),
}
SKIN_TONES = ((245, 210, 185), (225, 180, 150), (195, 145, 110), (150, 100, 70), (105, 70, 50))
HAIR_COLOURS = {"black": (25, 20, 18), "dark brown": (60, 40, 25), "brown": (110, 75, 45), "blond": (200, 170, 110), "grey": (160, 160, 160)}


@dataclass(frozen=True)
class Identity:
    """Appearance attributes of one synthetic person. Colours are RGB tuples (0-255)."""

    pid: int
    upper_colour: tuple
    upper_colour_name: str
    upper_pattern: str  # "plain", "stripes", "checks"
    pattern_colour: tuple
    sleeves: str  # "short", "long"
    lower_colour: tuple
    lower_colour_name: str
    lower_style: str  # "trousers", "shorts", "skirt"
    shoe_colour: tuple
    skin: tuple
    hair_colour: tuple
    hair_colour_name: str
    hair: str  # "short", "long"
    bag: str  # "none", "backpack", "handbag"
    bag_colour: tuple
    build: float  # body width factor
    height: float  # body height factor

    def describe(self):
        """A one-line human description, e.g. for the app."""
        top = f"{self.upper_colour_name} {self.upper_pattern} top ({self.sleeves} sleeves)"
        bottom = f"{self.lower_colour_name} {self.lower_style}"
        hair = f"{self.hair} {self.hair_colour_name} hair"
        bag = "no bag" if self.bag == "none" else f"a {self.bag}"
        return f"{top}, {bottom}, {hair}, {bag}"


def _pick_colour(rng, exclude=None):
    names = [n for n in CLOTHING_COLOURS if n != exclude]
    weights = np.array([CLOTHING_COLOURS[n][1] for n in names], dtype=float)
    name = names[rng.choice(len(names), p=weights / weights.sum())]
    base = np.array(CLOTHING_COLOURS[name][0], dtype=float)
    colour = np.clip(base + rng.normal(0, 12, 3), 0, 255)
    return tuple(int(c) for c in colour), name


def sample_identity(rng, pid):
    """Draw one identity's attributes from ``rng`` (np.random.Generator)."""
    upper, upper_name = _pick_colour(rng)
    lower, lower_name = _pick_colour(rng)
    pattern = rng.choice(["plain", "stripes", "checks"], p=[0.6, 0.25, 0.15])
    pattern_colour, _ = _pick_colour(rng, exclude=upper_name)
    lower_style = rng.choice(["trousers", "shorts", "skirt"], p=[0.7, 0.18, 0.12])
    hair_name = rng.choice(list(HAIR_COLOURS), p=[0.45, 0.25, 0.12, 0.1, 0.08])
    shoe, _ = _pick_colour(rng)
    bag_colour, _ = _pick_colour(rng)
    return Identity(
        pid=pid,
        upper_colour=upper,
        upper_colour_name=upper_name,
        upper_pattern=str(pattern),
        pattern_colour=pattern_colour,
        sleeves=str(rng.choice(["short", "long"], p=[0.45, 0.55])),
        lower_colour=lower,
        lower_colour_name=lower_name,
        lower_style=str(lower_style),
        shoe_colour=shoe,
        skin=SKIN_TONES[rng.integers(len(SKIN_TONES))],
        hair_colour=HAIR_COLOURS[hair_name],
        hair_colour_name=str(hair_name),
        hair=str(rng.choice(["short", "long"], p=[0.65, 0.35])),
        bag=str(rng.choice(["none", "backpack", "handbag"], p=[0.5, 0.3, 0.2])),
        bag_colour=bag_colour,
        build=float(rng.uniform(0.85, 1.2)),
        height=float(rng.uniform(0.88, 1.0)),
    )


@dataclass(frozen=True)
class Camera:
    """How one synthetic camera sees people. ``gain`` multiplies RGB; ``view`` = P(front, back, side)."""

    camid: int
    gain: tuple
    brightness: float
    haze: float
    haze_colour: tuple
    blur: float
    noise: float
    background: tuple
    background_style: str  # "street", "wall", "grass", "indoor"
    scale: tuple  # (min, max) person height as a fraction of the frame
    occlusion: float  # probability of an occluder in front of the person
    view: tuple
    flicker: float = 0.1  # per-image brightness variation
    background_jitter: float = 10.0  # per-image background colour variation


def make_cameras(rng, count=6):
    """``count`` cameras with clearly different colour casts, light and viewpoints."""
    styles = ["street", "wall", "grass", "indoor", "street", "wall", "indoor", "grass"]
    backgrounds = [(122, 120, 116), (136, 130, 122), (116, 122, 110), (130, 130, 136), (112, 112, 114), (140, 136, 128),
                   (126, 120, 114), (118, 124, 114)]
    cameras = []
    for c in range(count):
        gain = np.clip(1.0 + rng.normal(0, 0.08, 3), 0.8, 1.2)
        view = rng.dirichlet([2.0, 2.0, 1.2])
        cameras.append(
            Camera(
                camid=c,
                gain=tuple(float(g) for g in gain),
                brightness=float(rng.uniform(0.75, 1.2)),
                haze=float(rng.uniform(0.0, 0.2)),
                haze_colour=tuple(int(v) for v in rng.integers(120, 230, 3)),
                blur=float(rng.choice([0.0, 0.3, 0.6, 0.9])),
                noise=float(rng.uniform(2, 6)),
                background=backgrounds[c % len(backgrounds)],
                background_style=styles[c % len(styles)],
                scale=(float(rng.uniform(0.8, 0.88)), float(rng.uniform(0.92, 1.0))),
                occlusion=float(rng.uniform(0.03, 0.15)),
                view=tuple(float(v) for v in view),
            )
        )
    return cameras


# Neutral studio camera: what the oracle generator renders with (IPG images have no camera).
NEUTRAL_CAMERA = Camera(
    camid=-1, gain=(1.0, 1.0, 1.0), brightness=1.0, haze=0.0, haze_colour=(128, 128, 128), blur=0.0, noise=0.0,
    background=(200, 200, 200), background_style="plain", scale=(0.95, 0.95), occlusion=0.0, view=(1.0, 0.0, 0.0),
    flicker=0.0, background_jitter=0.0,
)

# COCO-18 indices
NOSE, NECK, R_SHO, R_ELB, R_WRI, L_SHO, L_ELB, L_WRI = 0, 1, 2, 3, 4, 5, 6, 7
R_HIP, R_KNEE, R_ANK, L_HIP, L_KNEE, L_ANK, R_EYE, L_EYE, R_EAR, L_EAR = 8, 9, 10, 11, 12, 13, 14, 15, 16, 17
# For a missing joint: (parent, grandparent) to extrapolate from along the limb.
_EXTRAPOLATE = {R_WRI: (R_ELB, R_SHO), L_WRI: (L_ELB, L_SHO), R_ANK: (R_KNEE, R_HIP), L_ANK: (L_KNEE, L_HIP),
                R_ELB: (R_SHO, NECK), L_ELB: (L_SHO, NECK), R_KNEE: (R_HIP, NECK), L_KNEE: (L_HIP, NECK)}


def standard_skeletons():
    """The 8 standard poses as ((8, 18, 2) float keypoints on 64x128, (8, 18) bool visible)."""
    from pose2id.poses import load_standard_poses

    poses = load_standard_poses()
    return pose_arrays(poses)


def pose_arrays(poses):
    """list of Pose -> ((P, 18, 2) keypoints rescaled to the 64x128 frame, (P, 18) visible)."""
    keypoints = np.stack([np.asarray(p.keypoints, dtype=float) for p in poses])
    visible = np.stack([np.asarray(p.visible, dtype=bool) for p in poses])
    scale = np.array([[WIDTH / p.width, HEIGHT / p.height] for p in poses])[:, None, :]
    return keypoints * scale, visible


def complete_skeleton(keypoints, visible):
    """Fill joints that are missing so a full body can be drawn. (18, 2) -> (18, 2)."""
    kp = np.array(keypoints, dtype=float)
    ok = np.asarray(visible, dtype=bool) & np.isfinite(kp).all(axis=1)
    for joint in (R_ELB, L_ELB, R_KNEE, L_KNEE, R_WRI, L_WRI, R_ANK, L_ANK):
        if not ok[joint]:
            parent, grand = _EXTRAPOLATE[joint]
            kp[joint] = kp[parent] + 0.9 * (kp[parent] - kp[grand]) if ok[parent] and ok[grand] else kp[parent] + (0, 18)
            ok[joint] = True
    head = [j for j in (NOSE, R_EYE, L_EYE, R_EAR, L_EAR) if ok[j]]
    for joint in (NOSE, R_EYE, L_EYE, R_EAR, L_EAR):
        if not ok[joint]:
            kp[joint] = kp[head].mean(axis=0) if head else kp[NECK] - (0, 12)
    return kp


def view_of(keypoints):
    """"front", "back" or "side" from where the right shoulder is relative to the left one."""
    dx = keypoints[L_SHO, 0] - keypoints[R_SHO, 0]
    width = np.linalg.norm(keypoints[L_SHO] - keypoints[R_SHO])
    torso = np.linalg.norm((keypoints[R_HIP] + keypoints[L_HIP]) / 2 - keypoints[NECK])
    if width < 0.27 * torso:
        return "side"
    return "front" if dx > 0 else "back"


@lru_cache(maxsize=16)
def _pattern_mask(pattern, period, size):
    """L-mode mask of where the second colour of a striped/checked fabric is."""
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    on = (yy // period) % 2 == 1 if pattern == "stripes" else ((yy // period) + (xx // period)) % 2 == 1
    return Image.fromarray((on * 255).astype(np.uint8))


@lru_cache(maxsize=32)
def _fabric(base, second, pattern, period, size):
    """PIL RGB: the garment fabric over the whole canvas. Cached (the 8 poses of one generated set,
    and the images of one identity, share it): callers paste it and must not draw on it."""
    image = Image.new("RGB", size, tuple(base))
    if pattern in ("stripes", "checks"):
        image.paste(tuple(second), (0, 0), _pattern_mask(pattern, period, size))
    return image


def _limb(draw, a, b, width, fill):
    draw.line([tuple(a), tuple(b)], fill=fill, width=max(1, int(round(width))))
    r = width / 2
    for p in (a, b):
        draw.ellipse([p[0] - r, p[1] - r, p[0] + r, p[1] + r], fill=fill)


def _offset_polygon(points, amount):
    """Push polygon vertices away from the centroid by ``amount`` pixels."""
    points = np.asarray(points, dtype=float)
    centre = points.mean(axis=0)
    direction = points - centre
    norm = np.maximum(np.linalg.norm(direction, axis=1, keepdims=True), 1e-6)
    return points + direction / norm * amount


def _background(rng, camera, size):
    """PIL RGB background for one image of ``camera``."""
    w, h = size
    base = np.clip(np.array(camera.background, dtype=float) + rng.normal(0, 1, 3) * camera.background_jitter, 0, 255)
    image = Image.new("RGB", size, tuple(int(v) for v in base))
    if camera.background_style == "plain":
        return image
    draw = ImageDraw.Draw(image)
    if camera.background_style in ("street", "grass"):
        # ground in the lower part
        horizon = int(h * rng.uniform(0.45, 0.7))
        draw.rectangle([0, horizon, w, h], fill=tuple(int(v) for v in base * rng.uniform(0.6, 0.9)))
    elif camera.background_style == "wall":
        period = int(rng.integers(10, 30)) * _SS
        darker = tuple(int(v) for v in base * 0.88)
        for x in range(period, w, 2 * period):
            draw.rectangle([x, 0, x + period - 1, h], fill=darker)
    else:  # indoor: light falling off towards the ceiling
        bands = 4
        for k in range(bands):
            shade = tuple(int(min(255, v)) for v in base * (0.75 + 0.4 * k / (bands - 1)))
            draw.rectangle([0, k * h // bands, w, (k + 1) * h // bands], fill=shade)
    # a few scene objects (windows, signs, bins): muted, like most of a street scene
    for _ in range(rng.integers(0, 3)):
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        x1, y1 = x0 + int(rng.integers(4, 16)) * _SS, y0 + int(rng.integers(6, 30)) * _SS
        colour = np.clip(base + rng.normal(0, 35, 3), 0, 255)
        draw.rectangle([x0, y0, x1, y1], fill=tuple(int(v) for v in colour))
    return image


def render_person(identity, keypoints, camera, rng, view=None):
    """Draw ``identity`` in the pose ``keypoints`` as seen by ``camera``.

    Parameters
    ----------
    identity : Identity.
    keypoints : (18, 2) float, complete (see :func:`complete_skeleton`), 64x128 frame, already
        placed (scaled/translated) where the person should stand.
    camera : Camera; its background, occlusion and photometric effects are applied.
    rng : np.random.Generator for per-image randomness.
    view : "front" / "back" / "side"; default from the skeleton.

    Returns
    -------
    PIL.Image RGB, 64x128.
    """
    size = (WIDTH * _SS, HEIGHT * _SS)
    kp = keypoints * _SS
    view = view or view_of(keypoints)
    s = _SS * identity.height
    build = identity.build

    canvas = _background(rng, camera, size)
    draw = ImageDraw.Draw(canvas)
    skin, hair, upper, lower = identity.skin, identity.hair_colour, identity.upper_colour, identity.lower_colour

    head_centre = (kp[NOSE] + (kp[R_EAR] + kp[L_EAR]) / 2) / 2 - (0, 1.0 * s)
    head_r = 6.8 * s
    neck_top = head_centre + (0, head_r * 0.8)

    def draw_hair_back():
        if identity.hair == "long":
            hx = head_r * 1.05
            poly = [head_centre + (-hx, 0), head_centre + (hx, 0), kp[NECK] + (hx, 8 * s), kp[NECK] + (-hx, 8 * s)]
            draw.polygon([tuple(p) for p in poly], fill=hair)

    def draw_bag_behind():
        if identity.bag == "backpack" and view in ("front", "side"):
            centre = (kp[NECK] + (kp[R_HIP] + kp[L_HIP]) / 2) / 2
            shift = (-5 * s, 0) if view == "side" else (0, 0)
            box = [centre[0] - 7 * s * build + shift[0], centre[1] - 11 * s, centre[0] + 7 * s * build + shift[0], centre[1] + 8 * s]
            draw.rectangle(box, fill=identity.bag_colour)

    # Behind the body: hair falling on the back and the backpack seen from the front/side.
    if view == "front":
        draw_hair_back()
    draw_bag_behind()

    # Legs: trousers cover to the ankle, shorts to mid-thigh, skirt is a trapezoid.
    leg_w, shin_w = 9.0 * s * build, 7.0 * s * build
    for hip, knee, ankle in ((R_HIP, R_KNEE, R_ANK), (L_HIP, L_KNEE, L_ANK)):
        if identity.lower_style == "trousers":
            _limb(draw, kp[hip], kp[knee], leg_w, lower)
            _limb(draw, kp[knee], kp[ankle], shin_w, lower)
        else:
            _limb(draw, kp[hip], kp[knee], leg_w * 0.85, skin)
            _limb(draw, kp[knee], kp[ankle], shin_w * 0.85, skin)
            if identity.lower_style == "shorts":
                mid = kp[hip] + 0.55 * (kp[knee] - kp[hip])
                _limb(draw, kp[hip], mid, leg_w * 1.05, lower)
        r = 3.2 * s
        a = kp[ankle]
        draw.ellipse([a[0] - r * 1.2, a[1] - r * 0.6, a[0] + r * 1.2, a[1] + r * 0.9], fill=identity.shoe_colour)
    hips = [kp[R_HIP], kp[L_HIP]]
    if identity.lower_style == "skirt":
        knees = [kp[R_KNEE], kp[L_KNEE]]
        spread = 5 * s * build
        poly = [hips[0] - (spread * 0.6, 0), hips[1] + (spread * 0.6, 0), knees[1] + (spread, 0), knees[0] - (spread, 0)]
        if poly[1][0] < poly[0][0]:
            poly = [hips[1] - (spread * 0.6, 0), hips[0] + (spread * 0.6, 0), knees[0] + (spread, 0), knees[1] - (spread, 0)]
        draw.polygon([tuple(p) for p in poly], fill=lower)

    # Upper garment: torso and sleeves drawn into a mask, filled with the patterned fabric.
    mask = Image.new("L", size, 0)
    mdraw = ImageDraw.Draw(mask)
    torso = np.array([kp[R_SHO], kp[L_SHO], kp[L_HIP], kp[R_HIP]])
    min_half = 7.5 * s * build
    centre_x = torso[:, 0].mean()
    half = np.abs(torso[:, 0] - centre_x)
    torso[:, 0] = centre_x + np.sign(torso[:, 0] - centre_x + 1e-6) * np.maximum(half, min_half)
    torso = _offset_polygon(torso, 2.5 * s * build)
    mdraw.polygon([tuple(p) for p in torso], fill=255)
    arm_w, fore_w = 6.5 * s * build, 5.5 * s * build
    sleeve_parts = []
    for sho, elb, wri in ((R_SHO, R_ELB, R_WRI), (L_SHO, L_ELB, L_WRI)):
        # bare arms first (skin), sleeves cover them through the mask
        _limb(draw, kp[sho], kp[elb], arm_w * 0.9, skin)
        _limb(draw, kp[elb], kp[wri], fore_w * 0.9, skin)
        r = 2.3 * s
        draw.ellipse([kp[wri][0] - r, kp[wri][1] - r, kp[wri][0] + r, kp[wri][1] + r], fill=skin)
        if identity.sleeves == "long":
            sleeve_parts.append((kp[sho], kp[elb], arm_w))
            sleeve_parts.append((kp[elb], kp[wri] + 0.15 * (kp[elb] - kp[wri]), fore_w))
        else:
            sleeve_parts.append((kp[sho], kp[sho] + 0.6 * (kp[elb] - kp[sho]), arm_w * 1.1))
    for a, b, w in sleeve_parts:
        _limb(mdraw, a, b, w, 255)
    period = int(round(3 * s))
    fabric = _fabric(tuple(upper), tuple(identity.pattern_colour), identity.upper_pattern, max(period, 2), size)
    canvas.paste(fabric, (0, 0), mask)
    draw = ImageDraw.Draw(canvas)

    # Neck and head
    _limb(draw, kp[NECK], neck_top, 3.5 * s, skin)
    c, r = head_centre, head_r
    draw.ellipse([c[0] - r, c[1] - r, c[0] + r, c[1] + r], fill=hair)
    if view == "front":
        fr = r * 0.82
        draw.ellipse([c[0] - fr, c[1] - fr + 2.0 * s, c[0] + fr, c[1] + fr + 1.2 * s], fill=skin)
    elif view == "side":
        facing = np.sign(kp[NOSE][0] - (kp[R_EAR][0] + kp[L_EAR][0]) / 2) or 1.0
        fr = r * 0.7
        fc = c + (facing * r * 0.35, 1.5 * s)
        draw.ellipse([fc[0] - fr, fc[1] - fr, fc[0] + fr, fc[1] + fr], fill=skin)
    if view == "back":
        draw_hair_back()
        if identity.bag == "backpack":
            centre = (kp[NECK] + (kp[R_HIP] + kp[L_HIP]) / 2) / 2
            box = [centre[0] - 7 * s * build, centre[1] - 10 * s, centre[0] + 7 * s * build, centre[1] + 9 * s]
            draw.rectangle(box, fill=identity.bag_colour)
    elif identity.bag == "backpack" and view == "front":
        for sho in (R_SHO, L_SHO):
            _limb(draw, kp[sho], kp[sho] + (0, 14 * s), 1.6 * s, identity.bag_colour)
    if identity.bag == "handbag":
        w = kp[R_WRI] if view != "back" else kp[L_WRI]
        draw.rectangle([w[0] - 4 * s, w[1], w[0] + 4 * s, w[1] + 8 * s], fill=identity.bag_colour)

    if camera.occlusion > 0 and rng.random() < camera.occlusion:
        _occlude(draw, rng, size)

    image = canvas.reduce(_SS)
    return _apply_camera(image, camera, rng)


def _occlude(draw, rng, size):
    """Something between camera and person: a car/bench at the bottom or a pole/person at a side."""
    w, h = size
    colour = tuple(int(v) for v in rng.integers(20, 235, 3))
    kind = rng.integers(3)
    if kind == 0:
        top = int(h * rng.uniform(0.62, 0.8))
        draw.rectangle([0, top, w, h], fill=colour)
    elif kind == 1:
        x = int(w * rng.uniform(0.0, 0.3))
        draw.rectangle([0, 0, x + int(w * 0.18), h], fill=colour)
    else:
        x = int(w * rng.uniform(0.7, 1.0))
        draw.rectangle([x - int(w * 0.18), 0, w, h], fill=colour)


def _apply_camera(image, camera, rng):
    """Colour cast, brightness, haze, blur and sensor noise of ``camera``."""
    if camera.blur > 0:
        image = image.filter(ImageFilter.GaussianBlur(camera.blur))
    x = np.asarray(image, dtype=np.float32)
    gain = np.array(camera.gain, dtype=np.float32) * np.float32(camera.brightness * (1 + rng.uniform(-1, 1) * camera.flicker))
    x = x * gain
    if camera.haze > 0:
        x = x * np.float32(1 - camera.haze) + np.float32(camera.haze) * np.array(camera.haze_colour, dtype=np.float32)
    if camera.noise > 0:
        x = x + rng.standard_normal(x.shape, dtype=np.float32) * np.float32(camera.noise)
    return Image.fromarray(np.clip(x, 0, 255).astype(np.uint8))


def place_skeleton(keypoints, rng, scale_range, jitter=1.6, mirror=False):
    """Jitter, mirror, scale and shift a 64x128 skeleton to where a camera sees the person.

    keypoints : (18, 2). Returns (18, 2).
    """
    kp = np.array(keypoints, dtype=float)
    if mirror:
        kp[:, 0] = WIDTH - kp[:, 0]
        for a, b in ((R_SHO, L_SHO), (R_ELB, L_ELB), (R_WRI, L_WRI), (R_HIP, L_HIP), (R_KNEE, L_KNEE),
                     (R_ANK, L_ANK), (R_EYE, L_EYE), (R_EAR, L_EAR)):
            kp[[a, b]] = kp[[b, a]]
    kp = kp + rng.normal(0, jitter, kp.shape)
    scale = rng.uniform(*scale_range)
    anchor = np.array([WIDTH / 2, HEIGHT - 4.0])
    kp = anchor + (kp - anchor) * scale
    kp = kp + (rng.uniform(-5, 5), rng.uniform(-3, 2))
    return kp


@dataclass(frozen=True)
class SynthPedConfig:
    """Size of the benchmark. The defaults give about 1,100 query+gallery images."""

    num_identities: int = 80
    num_train_identities: int = 40
    num_cameras: int = 6
    num_distractors: int = 80
    num_junk: int = 20
    oracle_fidelity: float = 0.35


def build_world(seed, config):
    """Identities and cameras of SynthPed (cheap: no images). Returns (identities dict, distractor
    identities list, cameras list)."""
    rng = np.random.default_rng([seed, 0])
    cameras = make_cameras(rng, config.num_cameras)
    total = config.num_identities + config.num_train_identities
    identities = {pid: sample_identity(rng, pid) for pid in range(1, total + 1)}
    distractors = [sample_identity(rng, 0) for _ in range(config.num_distractors)]
    return identities, distractors, cameras
