"""render() against the original 64x128 standard-pose renders, and its behaviour at other sizes."""

import json

import numpy as np
import pytest
from PIL import Image

from pose2id.poses import COLORS, LIMBS, Pose, PoseError, load_standard_poses, render
from pose2id.poses import rendering as render_module

DARK_PALETTE = np.array(COLORS, dtype=float) * 0.6


@pytest.fixture(scope="module")
def references(shared_dir):
    """The 8 reference renders as RGB float arrays (128, 64, 3); the files are stored BGR."""
    folder = shared_dir / "data" / "standard_pose_images"
    return [np.asarray(Image.open(folder / f"{i}.jpg").convert("RGB"))[..., ::-1].astype(float) for i in range(1, 9)]


@pytest.fixture(scope="module")
def reference_poses(shared_dir):
    data = json.loads((shared_dir / "data" / "standard_poses_18kp.json").read_text())
    poses = []
    for name in sorted(data["poses"], key=int):
        joints = data["poses"][name]
        visible = [p is not None for p in joints]
        poses.append(Pose([p or (0, 0) for p in joints], visible, *data["image_size"], name=name))
    return poses


def _limb_colour_index(image, pose, a, b):
    """Palette index (of the darkened limb colours) nearest to the median colour of the middle
    part of limb a-b; the middle avoids the joint dots at the ends."""
    t = np.linspace(0.3, 0.7, 9)[:, None]
    pts = np.floor(pose.keypoints[a] * (1 - t) + pose.keypoints[b] * t).astype(int)
    colour = np.median(image[pts[:, 1], pts[:, 0]], axis=0)
    return int(np.argmin(np.abs(DARK_PALETTE - colour).sum(1)))


def compare(poses, references):
    """(mean abs diff over the image, mean abs diff over skeleton pixels, limbs whose colour
    matches the reference, limbs compared) for each pose."""
    rows = []
    for pose, ref in zip(poses, references):
        mine = np.asarray(render(pose)).astype(float)
        diff = np.abs(mine - ref)
        skeleton = (ref.max(2) > 40) | (mine.max(2) > 40)
        same = total = 0
        for a, b in LIMBS:
            if pose.visible[a] and pose.visible[b]:
                total += 1
                same += _limb_colour_index(mine, pose, a, b) == _limb_colour_index(ref, pose, a, b)
        rows.append((diff.mean(), diff[skeleton].mean(), same, total))
    return rows


# Thresholds: JPEG noise around 1-3 px coloured lines leaves a mean abs diff of ~4-5 (of 255) over the
# image and ~24-27 over skeleton pixels, with >=97% of limbs matching. A BGR palette, no x0.6
# darkening, limbs in reverse order or shifted by one, or 2x thicker limbs or dots all give
# >= 30 over skeleton pixels; the wrong palettes and orders also fail the limb colours (<50%).
MAX_IMAGE_DIFF = 5.5
MAX_SKELETON_DIFF = 29.0
MIN_LIMBS_MATCHING = 0.9


def test_render_matches_the_reference_images(reference_poses, references):
    rows = compare(reference_poses, references)
    for pose, (image_diff, skeleton_diff, same, total) in zip(reference_poses, rows):
        assert image_diff < MAX_IMAGE_DIFF, f"pose {pose.name}: mean abs diff {image_diff:.2f}"
        assert skeleton_diff < MAX_SKELETON_DIFF, f"pose {pose.name}: skeleton-pixel diff {skeleton_diff:.2f}"
    same = sum(r[2] for r in rows)
    total = sum(r[3] for r in rows)
    assert same >= MIN_LIMBS_MATCHING * total, f"only {same}/{total} limb colours match the reference"


@pytest.mark.parametrize(
    "mistake",
    ["bgr_palette", "no_darkening", "limbs_reversed", "limbs_shifted", "thick_limbs", "big_dots"],
)
def test_the_comparison_catches_rendering_mistakes(monkeypatch, reference_poses, references, mistake):
    if mistake == "bgr_palette":
        monkeypatch.setattr(render_module, "COLORS", tuple(c[::-1] for c in COLORS))
    elif mistake == "no_darkening":
        monkeypatch.setattr(render_module, "DARKEN", 1.0)
    elif mistake == "limbs_reversed":
        monkeypatch.setattr(render_module, "LIMBS", LIMBS[::-1])
    elif mistake == "limbs_shifted":
        monkeypatch.setattr(render_module, "LIMBS", LIMBS[1:] + LIMBS[:1])
    elif mistake == "thick_limbs":
        monkeypatch.setattr(render_module, "STICK_HALF_WIDTH", 2 * render_module.STICK_HALF_WIDTH)
    elif mistake == "big_dots":
        monkeypatch.setattr(render_module, "JOINT_RADIUS", 2 * render_module.JOINT_RADIUS)
    rows = compare(reference_poses, references)
    worst_skeleton = min(r[1] for r in rows)
    same = sum(r[2] for r in rows)
    total = sum(r[3] for r in rows)
    assert worst_skeleton > MAX_SKELETON_DIFF or same < MIN_LIMBS_MATCHING * total


def test_render_is_rgb_black_with_a_red_nose():
    pose = load_standard_poses()[0]
    image = render(pose)
    assert image.mode == "RGB" and image.size == (64, 128)
    px = np.asarray(image)
    x, y = np.floor(pose.keypoints[0]).astype(int)
    r, g, b = px[y, x]
    assert r > 200 and g < 60 and b < 60  # the nose dot, full colour
    assert px[0, :8].max() == 0 and px[-1, -8:].max() == 0  # background


def test_render_draws_dots_over_darkened_limbs():
    pose = Pose(np.tile([[32.0, 64.0]], (18, 1)), visible=[False] * 18).with_joint(1, 32, 20).with_joint(8, 32, 100)
    px = np.asarray(render(pose)).astype(int)
    assert tuple(px[60, 31]) == tuple(int(c * 0.6) for c in COLORS[6])  # neck-r_hip limb, darkened
    assert tuple(px[99, 31]) == COLORS[8]  # r_hip dot, full colour, on top of the limb
    assert px[60, 20].max() == 0


def test_render_skips_missing_joints_and_their_limbs():
    full = load_standard_poses()[0]
    no_wrist = full.with_joint("r_wrist", 0, 0, visible=False)
    a = np.asarray(render(full)).astype(int)
    b = np.asarray(render(no_wrist)).astype(int)
    x, y = np.floor(full.keypoints[4]).astype(int)
    assert a[y, x].max() > 150 and b[y, x].max() == 0
    mid = np.floor((full.keypoints[3] + full.keypoints[4]) / 2).astype(int)  # r_elbow - r_wrist limb
    assert a[mid[1], mid[0]].max() > 50 and b[mid[1], mid[0]].max() == 0


def test_render_scales_line_width_with_canvas():
    pose = load_standard_poses()[1]
    small = np.asarray(render(pose)).astype(float) / 255
    large = np.asarray(render(pose.fit(256, 512))).astype(float) / 255
    # Same drawing, 4x larger: the inked fraction of the canvas stays about the same ...
    assert large.mean() == pytest.approx(small.mean(), rel=0.15)
    # ... and downsizing the large render gives back the small one.
    down = np.asarray(render(pose.fit(256, 512)).resize((64, 128), Image.BOX)).astype(float) / 255
    assert np.abs(down - small).mean() < 0.02


def test_render_size_arguments():
    pose = load_standard_poses()[2]
    assert render(pose, 128, 256).size == (128, 256)
    assert render(pose.fit(256, 512)).size == (256, 512)
    with pytest.raises(PoseError, match="width"):
        render(pose, 0, 10)
    with pytest.raises(PoseError, match="Pose"):
        render({"people": []})
