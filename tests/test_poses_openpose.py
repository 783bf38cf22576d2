"""OpenPose JSON in and out, including the variants other tools write, and bad files."""

import json

import numpy as np
import pytest

from pose2id.poses import Pose, PoseError, format_openpose, load_standard_poses, pose_from_openpose
from pose2id.poses.openpose_json import BODY25_TO_COCO18


@pytest.fixture
def pose():
    return load_standard_poses()[5]  # pose 6: no right wrist


def test_round_trip_through_dict_text_and_file(pose, tmp_path):
    data = pose.to_openpose()
    assert (data["canvas_width"], data["canvas_height"]) == (64, 128)
    flat = data["people"][0]["pose_keypoints_2d"]
    assert len(flat) == 54
    assert flat[12:15] == [0.0, 0.0, 0.0]  # joint 4 (r_wrist) is missing -> confidence 0
    assert flat[0:3] == [*pose.keypoints[0], 1.0]
    path = tmp_path / "p.json"
    path.write_text(format_openpose(data))
    for source in (data, json.dumps(data), format_openpose(data), path, str(path)):
        back = Pose.from_openpose(source)
        assert back.width == 64 and back.height == 128
        np.testing.assert_array_equal(back.visible, pose.visible)
        np.testing.assert_allclose(back.keypoints[back.visible], pose.keypoints[pose.visible])
    assert json.loads(format_openpose(data)) == data


def _doc(flat, **extra):
    return {"canvas_width": 64, "canvas_height": 128, "people": [{"pose_keypoints_2d": flat}], **extra}


def test_extra_people_face_and_hands(pose):
    data = pose.to_openpose()
    other = load_standard_poses()[0].to_openpose()["people"][0]
    data["people"][0]["face_keypoints_2d"] = [1.0] * 210
    data["people"][0]["hand_left_keypoints_2d"] = [1.0] * 63
    data["people"].append(other)
    data["version"] = 1.3
    first = pose_from_openpose(data)
    np.testing.assert_allclose(first.keypoints[first.visible], pose.keypoints[pose.visible])
    second = pose_from_openpose(data, person=1)
    np.testing.assert_allclose(second.keypoints, load_standard_poses()[0].keypoints)
    with pytest.raises(PoseError, match=r"person=2 but 'people' has 2 entries"):
        pose_from_openpose(data, person=2)


def test_body25_is_mapped_to_coco18(pose):
    body25 = np.zeros((25, 3))
    for coco, b25 in enumerate(BODY25_TO_COCO18):
        if pose.visible[coco]:
            body25[b25] = [*pose.keypoints[coco], 0.9]
    body25[8] = [32, 64, 0.9]  # MidHip and feet have no COCO-18 joint
    body25[19:] = [[30, 120, 0.8]] * 6
    back = pose_from_openpose(_doc(body25.ravel().tolist()))
    np.testing.assert_array_equal(back.visible, pose.visible)
    np.testing.assert_allclose(back.keypoints[back.visible], pose.keypoints[pose.visible])


def test_body25_order():
    # BODY_25: 8 is MidHip, 9-14 right/left hip, knee, ankle, 15-18 eyes and ears.
    assert BODY25_TO_COCO18[8] == 9 and BODY25_TO_COCO18[11] == 12 and BODY25_TO_COCO18[14] == 15
    assert 8 not in BODY25_TO_COCO18 and max(BODY25_TO_COCO18) == 18


def test_normalized_coordinates_are_scaled_by_the_canvas(pose):
    flat = np.array(pose.to_openpose()["people"][0]["pose_keypoints_2d"]).reshape(18, 3)
    flat[:, 0] /= 64
    flat[:, 1] /= 128
    data = _doc(flat.ravel().tolist())
    data["canvas_width"], data["canvas_height"] = 256, 512
    back = pose_from_openpose(data)
    assert (back.width, back.height) == (256, 512)
    np.testing.assert_allclose(back.keypoints[back.visible], pose.keypoints[pose.visible] * 4)
    del data["canvas_width"], data["canvas_height"]
    back = pose_from_openpose(data)  # normalized without a canvas: the 64x128 IPG canvas
    assert (back.width, back.height) == (64, 128)
    np.testing.assert_allclose(back.keypoints[back.visible], pose.keypoints[pose.visible])


def test_missing_canvas_with_pixel_coordinates(pose):
    data = pose.to_openpose()
    del data["canvas_width"], data["canvas_height"]
    back = pose_from_openpose(data)
    pts = pose.keypoints[pose.visible]
    assert (back.width, back.height) == (int(np.ceil(pts[:, 0].max())), int(np.ceil(pts[:, 1].max())))
    np.testing.assert_allclose(back.keypoints[back.visible], pts)


def test_list_of_frames_and_bytes(pose):
    data = [pose.to_openpose(), load_standard_poses()[0].to_openpose()]
    assert pose_from_openpose(data) == Pose(pose.keypoints, pose.visible)
    assert pose_from_openpose(json.dumps(data).encode()) == Pose(pose.keypoints, pose.visible)


def test_editor_rounding_just_outside_the_canvas_is_clamped():
    flat = np.array(load_standard_poses()[0].to_openpose()["people"][0]["pose_keypoints_2d"]).reshape(18, 3)
    flat[4, :2] = (-0.4, 128.6)
    back = pose_from_openpose(_doc(flat.ravel().tolist()))
    assert tuple(back.keypoints[4]) == (0.0, 128.0)


@pytest.mark.parametrize(
    "source, message",
    [
        ('{"people": [', r"not valid JSON: .* line 1, column"),
        ("[]", "expected an object with a 'people' list"),
        ('{"canvas_width": 64}', "missing 'people' list"),
        ('{"people": []}', "'people' is empty"),
        ('{"people": [{"face_keypoints_2d": []}]}', r"people\[0\] has no 'pose_keypoints_2d'"),
        ('{"people": [{"pose_keypoints_2d": "1, 2, 3"}]}', "must be a list of numbers"),
        (json.dumps(_doc([1.0] * 51)), r"people\[0\].pose_keypoints_2d has 51 values; expected 54 .* or 75"),
        (json.dumps(_doc([1.0] * 53 + ["x"])), r"pose_keypoints_2d\[53\] is 'x'; expected a number"),
        (json.dumps(_doc([1.0] * 53 + [None])), r"pose_keypoints_2d\[53\] is None"),
        (json.dumps(_doc([1.0] * 54, canvas_width=0)), "canvas_width must be a positive whole number"),
        (json.dumps({"canvas_width": 64, "people": [{"pose_keypoints_2d": [1.0] * 54}]}), "only one of canvas_width"),
        (json.dumps(_doc([100.0, 10.0, 1.0] * 18)), r"joint 0 \(nose\) at \(100, 10\) is outside the 64x128 canvas"),
        ("no_such_file.json", "neither JSON text nor an existing .json file"),
        (42, "expected an OpenPose JSON dict"),
        (b"\xff\xfe{", "not UTF-8"),
    ],
)
def test_bad_files_say_what_is_wrong(source, message):
    with pytest.raises(PoseError, match=message):
        pose_from_openpose(source)


def test_a_binary_file_is_rejected(tmp_path):
    path = tmp_path / "pose.json"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xff")
    with pytest.raises(PoseError, match="not a text file"):
        Pose.from_openpose(path)


@pytest.mark.parametrize("flat, why", [
    ([0] * 54, "every keypoint is 0, 0, 0"),                       # an all-zero export
    ([float("nan")] * 54, "confidence 0 or no numeric x, y"),      # NaN everywhere (json writes NaN)
    ([float("nan"), float("nan"), 1.0] * 18, "confidence 0 or no numeric x, y"),
])
def test_a_person_without_a_visible_joint_is_refused(tmp_path, flat, why):
    path = tmp_path / "empty.json"
    path.write_text(json.dumps({"people": [{"pose_keypoints_2d": flat}]}))
    with pytest.raises(PoseError, match="no visible joint") as error:
        Pose.from_openpose(path)
    assert why in str(error.value) and "no pose to draw" in str(error.value)
    other = {"people": [load_standard_poses()[0].to_openpose()["people"][0], {"pose_keypoints_2d": flat}]}
    with pytest.raises(PoseError, match=r"no visible joint in people\[1\]"):
        pose_from_openpose(other, person=1)
