"""Pose from a photo (BlazePose via mediapipe) on the shared pedestrian crops, and bad images."""

import importlib.util
import sys

import numpy as np
import pytest
from PIL import Image

from pose2id.poses import NoPersonFound, Pose, PoseError, PoseEstimatorUnavailable, pose_from_image
from pose2id.poses import estimate

needs_mediapipe = pytest.mark.skipif(
    importlib.util.find_spec("mediapipe") is None, reason="pose from a photo needs the optional mediapipe==0.10.14"
)

PEDESTRIANS = ["ir1", "ir2", "ir3", "ir4", "ir5", "rgb1", "rgb2", "rgb3", "rgb4", "rgb5"]


def _mean_y(pose, joints):
    joints = [j for j in joints if pose.visible[j]]
    return None if not joints else pose.keypoints[joints, 1].mean()


def implausibility(pose, image_size):
    """Why ``pose`` is not a plausible upright pedestrian skeleton for a crop of ``image_size``,
    or None. Plausible: on the image's canvas, head above shoulders above hips above ankles
    (those that are visible; shoulders and hips must be), spanning at least 40% of the height."""
    if (pose.width, pose.height) != image_size:
        return f"canvas {pose.width}x{pose.height} != image {image_size}"
    head = _mean_y(pose, [0, 14, 15, 16, 17])
    shoulders = _mean_y(pose, [2, 5])
    hips = _mean_y(pose, [8, 11])
    ankles = _mean_y(pose, [10, 13])
    if shoulders is None or hips is None:
        return "no visible shoulders or hips"
    levels = [y for y in (head, shoulders, hips, ankles) if y is not None]
    if levels != sorted(levels) or len(set(levels)) != len(levels):
        return f"body parts out of order top to bottom: head {head}, shoulders {shoulders}, hips {hips}, ankles {ankles}"
    ys = pose.keypoints[pose.visible, 1]
    if ys.max() - ys.min() < 0.4 * pose.height:
        return f"skeleton spans only {ys.max() - ys.min():.0f} of {pose.height} px"
    return None


@pytest.fixture(scope="module")
def pedestrian_results(shared_dir):
    results = {}
    for name in PEDESTRIANS:
        image = Image.open(shared_dir / "data" / "pedestrians" / f"{name}.jpg")
        try:
            pose = pose_from_image(image)
            results[name] = implausibility(pose, image.size) or pose
        except NoPersonFound as err:
            results[name] = err
    return results


@needs_mediapipe
def test_most_pedestrians_get_a_plausible_skeleton_and_the_rest_a_clear_no_person(pedestrian_results):
    plausible = [n for n, r in pedestrian_results.items() if isinstance(r, Pose)]
    for name, result in pedestrian_results.items():
        if isinstance(result, NoPersonFound):
            assert "no person found" in str(result) or "no joint was visible" in str(result)
        else:
            assert isinstance(result, Pose), f"{name}: implausible skeleton: {result}"
    assert len(plausible) >= 8, f"plausible skeletons only for {plausible}"


@needs_mediapipe
def test_pose_is_on_the_image_canvas_in_its_pixels(shared_dir):
    path = shared_dir / "data" / "pedestrians" / "ir3.jpg"  # 199x602, far from square
    image = Image.open(path)
    from_path = pose_from_image(path)
    assert (from_path.width, from_path.height) == image.size
    from_array = pose_from_image(np.asarray(image))
    np.testing.assert_allclose(from_array.keypoints, from_path.keypoints)
    # Twice the resolution: the same skeleton, twice the coordinates (within a few pixels).
    big = pose_from_image(image.resize((image.width * 2, image.height * 2), Image.LANCZOS))
    both = big.visible & from_path.visible
    assert both.sum() >= 12
    assert np.median(np.abs(big.keypoints[both] / 2 - from_path.keypoints[both])) < 0.02 * image.height


@needs_mediapipe
@pytest.mark.parametrize(
    "image",
    [
        Image.new("RGB", (64, 128), (120, 130, 140)),
        np.zeros((128, 64, 3), np.uint8),
        np.random.default_rng(0).integers(0, 256, (128, 64, 3), dtype=np.uint8),
        np.tile(np.linspace(0, 255, 64, dtype=np.uint8)[None, :, None], (128, 1, 3)),
    ],
    ids=["flat_colour", "black", "noise", "gradient"],
)
def test_an_image_without_a_person(image):
    with pytest.raises(NoPersonFound, match="no person found"):
        pose_from_image(image)


def test_an_empty_image():
    with pytest.raises(NoPersonFound, match=r"the image is empty \(0x0 pixels\)"):
        pose_from_image(np.zeros((0, 0, 3), np.uint8))
    with pytest.raises(NoPersonFound, match="empty"):
        pose_from_image(Image.new("RGB", (0, 0)))


def test_things_that_are_not_images(tmp_path):
    text = tmp_path / "notes.jpg"
    text.write_text("not a picture")
    with pytest.raises(PoseError, match="could not read .*notes.jpg as an image"):
        pose_from_image(text)
    with pytest.raises(PoseError, match="image file not found"):
        pose_from_image(tmp_path / "missing.jpg")
    with pytest.raises(PoseError, match="image must be a PIL image"):
        pose_from_image({"people": []})
    with pytest.raises(PoseError, match=r"shape \(H, W\), \(H, W, 3\)"):
        pose_from_image(np.zeros((4, 4, 3, 2)))
    with pytest.raises(PoseError, match="numeric"):
        pose_from_image(np.array([["a"]]))


@needs_mediapipe
def test_the_model_is_loaded_once():
    assert estimate.blazepose() is estimate.blazepose()


def test_without_mediapipe_the_error_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "mediapipe", None)  # makes `import mediapipe` fail
    estimate.blazepose.cache_clear()
    try:
        with pytest.raises(PoseEstimatorUnavailable, match=r"pip install mediapipe==0\.10\.14"):
            pose_from_image(Image.new("RGB", (64, 128)))
    finally:
        estimate.blazepose.cache_clear()
