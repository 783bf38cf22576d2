"""The Pose type: validation, transforms, nearest-joint lookup, and the 8 standard poses."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pose2id.poses import (
    BODY_MIN_JOINTS,
    COLORS,
    KEYPOINT_NAMES,
    LIMBS,
    Pose,
    PoseError,
    load_standard_poses,
    render,
    write_standard_poses,
)

ROOT = Path(__file__).resolve().parents[1]


def _pose(**kw):
    return load_standard_poses()[0] if not kw else Pose(load_standard_poses()[0].keypoints, **kw)


def test_constants_follow_openpose_coco18():
    assert len(KEYPOINT_NAMES) == 18 and KEYPOINT_NAMES[0] == "nose" and KEYPOINT_NAMES[17] == "l_ear"
    assert len(LIMBS) == 17 and LIMBS[0] == (1, 2) and LIMBS[12] == (1, 0)
    assert len(COLORS) == 18 and COLORS[0] == (255, 0, 0)


# -- validation -----------------------------------------------------------------------------


def test_wrong_number_of_keypoints():
    with pytest.raises(PoseError, match="expected 18 keypoints, got 17"):
        Pose(np.full((17, 2), 5.0))
    with pytest.raises(PoseError, match="expected 18 keypoints, got 17"):
        Pose([5.0] * 34)
    with pytest.raises(PoseError, match=r"shape \(18, 2\)"):
        Pose(np.full((18, 3), 5.0))


def test_nan_keypoint_is_rejected_unless_the_joint_is_missing():
    kp = np.full((18, 2), 5.0)
    kp[3] = np.nan
    with pytest.raises(PoseError, match=r"keypoints\[3\] \(r_elbow\).*visible\[3\] = False"):
        Pose(kp)
    vis = np.ones(18, bool)
    vis[3] = False
    pose = Pose(kp, vis)
    assert not pose.visible[3] and np.isfinite(pose.keypoints).all()


def test_out_of_canvas_keypoint_is_rejected():
    kp = np.full((18, 2), 5.0)
    kp[10] = (70.0, 50.0)
    with pytest.raises(PoseError, match=r"joint 10 \(r_ankle\) at \(70, 50\) is outside the 64x128 canvas"):
        Pose(kp)
    Pose(kp, width=80)  # fine on a wider canvas
    kp[10] = (64.0, 128.0)  # the far border belongs to the canvas
    Pose(kp)


@pytest.mark.parametrize("bad", [[["a", "b"]] * 18, [[None, 1.0]] * 18, "nose", [[1, 2]] * 17 + [[1]]])
def test_non_numeric_keypoints(bad):
    with pytest.raises(PoseError, match="keypoints"):
        Pose(bad)


@pytest.mark.parametrize("width", [0, -3, 10.5, "64", None, float("nan")])
def test_bad_canvas_size(width):
    with pytest.raises(PoseError, match="width must be a positive integer"):
        Pose(np.full((18, 2), 0.5), width=width)


def test_bad_visibility():
    with pytest.raises(PoseError, match=r"visible must have shape \(18,\)"):
        Pose(np.full((18, 2), 5.0), visible=[True] * 17)
    with pytest.raises(PoseError, match="visible must hold booleans"):
        Pose(np.full((18, 2), 5.0), visible=[2] * 18)


def test_pose_is_immutable():
    pose = _pose()
    with pytest.raises(ValueError):
        pose.keypoints[0, 0] = 1.0
    with pytest.raises(ValueError):
        pose.visible[0] = False


def test_pose_error_is_a_value_error():
    assert issubclass(PoseError, ValueError)


# -- transforms -----------------------------------------------------------------------------


def test_scale_scales_joints_and_canvas():
    pose = _pose()
    big = pose.scale(2)
    assert (big.width, big.height) == (128, 256)
    np.testing.assert_allclose(big.keypoints, pose.keypoints * 2)
    wide = pose.scale(2, 1)
    assert (wide.width, wide.height) == (128, 128)
    np.testing.assert_allclose(wide.keypoints[:, 1], pose.keypoints[:, 1])
    with pytest.raises(PoseError, match="sx must be a positive number"):
        pose.scale(0)


def test_fit_canvas_mode_letterboxes():
    pose = _pose()
    np.testing.assert_allclose(pose.fit(256, 512).keypoints, pose.keypoints * 4)
    square = pose.fit(256, 256)  # height limits: scale 2, centred horizontally
    np.testing.assert_allclose(square.keypoints, pose.keypoints * 2 + [64, 0])
    assert (square.width, square.height) == (256, 256)


def test_fit_skeleton_mode_fills_the_canvas():
    small = _pose().scale(0.25).fit(400, 800, mode="canvas")  # any pose, then its bounding box
    fitted = small.fit(64, 128, mode="skeleton", margin=0.1)
    pts = fitted.keypoints[fitted.visible]
    lo, hi = pts.min(0), pts.max(0)
    # the longer relative side touches the margins; the box is centred
    assert np.isclose(lo[1], 12.8) or np.isclose(lo[0], 6.4)
    np.testing.assert_allclose((lo + hi) / 2, [32, 64], atol=1e-9)
    with pytest.raises(PoseError, match="mode must be"):
        small.fit(64, 128, mode="stretch")


def test_mirror_flips_x_and_swaps_sides():
    pose = _pose()
    m = pose.mirror()
    # the mirrored right shoulder is where the left shoulder was, reflected
    assert m.keypoints[2, 0] == pytest.approx(64 - pose.keypoints[5, 0])
    assert m.keypoints[2, 1] == pytest.approx(pose.keypoints[5, 1])
    assert m.keypoints[0, 0] == pytest.approx(64 - pose.keypoints[0, 0])
    assert m.mirror() == pose
    six = load_standard_poses()[5]  # no right wrist -> the mirror has no left wrist
    assert not six.mirror().visible[7] and six.mirror().visible[4]


def test_mirror_keeps_colours_on_the_same_body_side():
    """Flipping the image would put the right-side colours on the figure's left. mirror() relabels
    the joints instead: for a person facing the viewer the right arm stays on the image's left."""
    pose = load_standard_poses()[0]  # facing the viewer: r_wrist at x 1.6, l_wrist at x 59.4
    flipped = np.asarray(render(pose))[:, ::-1].astype(int)
    mirrored = np.asarray(render(pose.mirror())).astype(int)
    x, y = np.floor(pose.mirror().keypoints[4]).astype(int)  # r_wrist of the mirrored pose
    assert x < 32
    assert tuple(mirrored[y, x]) == COLORS[4]  # r_wrist colour where a right wrist should be
    assert tuple(flipped[y, x]) == COLORS[7]  # a plain flip shows the l_wrist colour there


def test_translate():
    pose = _pose()
    moved = pose.translate(1.5, -2)
    np.testing.assert_allclose(moved.keypoints, pose.keypoints + [1.5, -2])
    with pytest.raises(PoseError, match="outside the 64x128 canvas"):
        pose.translate(10, 0)  # the left wrist (x 59.4) would leave the canvas


def test_with_joint():
    pose = _pose()
    moved = pose.with_joint(4, 10, 20)
    assert tuple(moved.keypoints[4]) == (10, 20) and tuple(pose.keypoints[4]) != (10, 20)
    hidden = pose.with_joint("l_ear", 0, 0, visible=False)
    assert not hidden.visible[17]
    with pytest.raises(PoseError, match="joint index"):
        pose.with_joint(18, 1, 1)
    with pytest.raises(PoseError, match="unknown joint name"):
        pose.with_joint("left_knee", 1, 1)
    with pytest.raises(PoseError, match="outside"):
        pose.with_joint(4, 100, 20)
    with pytest.raises(PoseError, match="x must be a number"):
        pose.with_joint(4, "10", 20)


def test_nearest_joint():
    pose = _pose()
    x, y = pose.keypoints[9]
    assert pose.nearest_joint(x + 1, y - 1) == 9
    assert pose.nearest_joint(x + 30, y, max_distance=2) is None
    assert pose.with_joint(9, 0, 0, visible=False).nearest_joint(x, y) != 9
    empty = Pose(np.zeros((18, 2)), visible=[False] * 18)
    assert empty.nearest_joint(1, 1) is None


def test_check_body_needs_the_neck_and_three_more_joints():
    pose = load_standard_poses()[0]
    assert pose.check_body() is pose
    few = Pose(pose.keypoints, visible=[i in (1, 2, 5, 8) for i in range(18)])  # neck, shoulders, r_hip
    assert few.check_body() is few  # the minimum: BODY_MIN_JOINTS joints, the neck among them
    three = few.with_joint(8, 0, 0, visible=False)
    with pytest.raises(PoseError, match=r"only 3 visible joints \(neck, r_shoulder, l_shoulder\).*neck and at least 3 more"):
        three.check_body()
    headless = pose.with_joint("neck", 0, 0, visible=False)
    with pytest.raises(PoseError, match="no neck"):
        headless.check_body()
    with pytest.raises(PoseError, match="no visible joint"):
        Pose(np.zeros((18, 2)), visible=[False] * 18).check_body()
    assert BODY_MIN_JOINTS == 4


# -- standard poses -------------------------------------------------------------------------


def test_load_standard_poses_matches_the_reference_keypoints(shared_dir):
    data = json.loads((shared_dir / "data" / "standard_poses_18kp.json").read_text())
    poses = load_standard_poses()
    assert [p.name for p in poses] == [str(i) for i in range(1, 9)]
    for pose in poses:
        assert (pose.width, pose.height) == (64, 128)
        ref = data["poses"][pose.name]
        for i, joint in enumerate(ref):
            if joint is None:
                assert not pose.visible[i]
            else:
                assert pose.visible[i] and tuple(pose.keypoints[i]) == tuple(joint)
    assert sum(p.visible.sum() for p in poses) == 8 * 18 - 1  # pose 6 has no right wrist


def test_committed_standard_poses_folder_is_what_the_package_writes(tmp_path):
    folder = ROOT / "standard_poses"
    files = sorted(p.name for p in folder.iterdir())
    assert files == sorted([f"{i}.json" for i in range(1, 9)] + [f"{i}.png" for i in range(1, 9)])
    written = write_standard_poses(tmp_path)
    assert len(written) == 16
    for path in written:
        committed = folder / path.name
        if path.suffix == ".json":
            assert committed.read_text() == path.read_text(), f"{committed} is out of date"
        else:
            a = np.asarray(Image.open(committed).convert("RGB"))
            b = np.asarray(Image.open(path).convert("RGB"))
            assert np.array_equal(a, b), f"{committed} is out of date"
    assert load_standard_poses(folder) == load_standard_poses()


def test_load_standard_poses_from_a_bad_folder(tmp_path):
    with pytest.raises(PoseError, match="no .json pose files"):
        load_standard_poses(tmp_path)
    with pytest.raises(PoseError, match="not a directory"):
        load_standard_poses(tmp_path / "missing")


def test_importing_poses_pulls_in_no_heavy_dependencies():
    code = (
        "import sys, pose2id.poses as p; p.render(p.load_standard_poses()[0]); "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'cv2', 'mediapipe', 'torch', 'diffusers'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
