"""Pose from a photo: MediaPipe BlazePose (33 landmarks) mapped to OpenPose COCO-18.

``mediapipe`` is an optional dependency (``pip install mediapipe==0.10.14``: that version's wheel
carries the BlazePose "full" model; newer ones download models at run time).

Re-ID crops are small (often 64x128), low-contrast (infrared) and tall, while BlazePose's person
detector wants a person that fills a roughly square frame. So the crop is padded to a square and
upscaled before detection, and, because single runs on such crops are erratic, the detector is
run on a few variants of the same crop (two paddings, two sizes, with and without a contrast
stretch, mirrored or not; ~16 runs of ~30 ms). The landmarks are mapped back to the original
pixels, and the detection that most other runs agree with is kept.
"""

from __future__ import annotations

import functools
import itertools
import threading
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .skeleton import NUM_KEYPOINTS, Pose, PoseError

INSTALL_HINT = "pip install mediapipe==0.10.14"

# COCO-18 joint -> BlazePose landmark (person's left/right in both). The neck (1) has no
# BlazePose landmark: it is the midpoint of the shoulders (11, 12).
BLAZEPOSE_TO_COCO18 = (0, None, 12, 14, 16, 11, 13, 15, 24, 26, 28, 23, 25, 27, 5, 2, 8, 7)
_SHOULDERS = (11, 12)
# Nose, shoulders, elbows, wrists, hips, knees, ankles: what decides whether two runs agree.
_CORE_LANDMARKS = (0, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28)
# BlazePose landmark -> its left/right counterpart (for un-mirroring a run on a flipped image).
BLAZEPOSE_MIRROR = (0, 4, 5, 6, 1, 2, 3, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15, 18, 17, 20, 19, 22, 21,
                    24, 23, 26, 25, 28, 27, 30, 29, 32, 31)
PAD_GREY = 114


class NoPersonFound(PoseError):
    """The image holds no person that the pose estimator could find."""


class PoseEstimatorUnavailable(RuntimeError):
    """The optional pose estimator (mediapipe) is not installed or cannot load its model."""


class _BlazePose:
    """One loaded BlazePose graph; MediaPipe graphs are not thread-safe, hence the lock."""

    def __init__(self, min_detection_confidence):
        try:
            import mediapipe as mp
        except ImportError as err:
            raise PoseEstimatorUnavailable(
                f"pose from a photo needs MediaPipe BlazePose, which is not installed ({err}); "
                f"install it with `{INSTALL_HINT}`"
            ) from None
        solutions = getattr(mp, "solutions", None)
        if solutions is None or not hasattr(solutions, "pose"):
            raise PoseEstimatorUnavailable(
                f"mediapipe {getattr(mp, '__version__', '?')} has no mediapipe.solutions.pose; "
                f"install the supported version with `{INSTALL_HINT}`"
            )
        try:
            # model_complexity=1 is the "full" model, the only one the 0.10.14 wheel ships.
            self._graph = solutions.pose.Pose(
                static_image_mode=True,
                model_complexity=1,
                enable_segmentation=False,
                min_detection_confidence=min_detection_confidence,
            )
        except Exception as err:  # a missing or undownloadable model surfaces as various errors
            raise PoseEstimatorUnavailable(
                f"mediapipe could not load the BlazePose model ({type(err).__name__}: {err}); "
                f"`{INSTALL_HINT}` ships it with the wheel"
            ) from err
        self._lock = threading.Lock()

    def __call__(self, rgb):
        """(S, S, 3) uint8 -> (33, 3) array of (x, y, visibility) with x, y in [0, 1], or None."""
        with self._lock, warnings.catch_warnings():
            # mediapipe 0.10.14 calls a protobuf API that newer protobuf marks deprecated, once per run.
            warnings.filterwarnings("ignore", message="SymbolDatabase.GetPrototype", category=UserWarning)
            result = self._graph.process(rgb)
        if result.pose_landmarks is None:
            return None
        return np.array([(lm.x, lm.y, lm.visibility) for lm in result.pose_landmarks.landmark])


@functools.lru_cache(maxsize=4)
def blazepose(min_detection_confidence=0.5):
    """The cached BlazePose estimator (building it loads a TFLite graph: do it once)."""
    return _BlazePose(min_detection_confidence)


def _to_rgb_array(image):
    """PIL image, (H, W[, C]) uint8 array or path -> (H, W, 3) uint8 array."""
    if isinstance(image, (str, Path)):
        try:
            with Image.open(image) as im:
                return np.asarray(im.convert("RGB"))
        except FileNotFoundError:
            raise PoseError(f"image file not found: {image}") from None
        except (UnidentifiedImageError, OSError) as err:
            raise PoseError(f"could not read {image} as an image ({err})") from None
    if isinstance(image, Image.Image):
        if image.width == 0 or image.height == 0:
            return np.zeros((image.height, image.width, 3), np.uint8)
        return np.asarray(image.convert("RGB"))
    if isinstance(image, np.ndarray):
        if image.ndim == 2:
            image = image[..., None]
        if image.ndim != 3 or image.shape[2] not in (1, 3, 4):
            raise PoseError(f"image array must have shape (H, W), (H, W, 3) or (H, W, 4), got {image.shape}")
        if image.dtype != np.uint8:
            if not np.issubdtype(image.dtype, np.number):
                raise PoseError(f"image array must be numeric, got dtype {image.dtype}")
            if image.size and np.nanmax(image) <= 1.0:
                image = image * 255.0  # float images in [0, 1]
            image = np.clip(np.nan_to_num(image), 0, 255).astype(np.uint8)
        if image.shape[2] == 1:
            image = np.repeat(image, 3, axis=2)
        return np.ascontiguousarray(image[..., :3])
    raise PoseError(
        f"image must be a PIL image, an (H, W, 3) uint8 array or a path to an image file, got {type(image).__name__}"
    )


def _square(rgb, size, pad):
    """Pad (H, W, 3) to a centred square with the grey level ``pad`` and resize it to (size, size).
    Returns the square and (side, left, top) to map coordinates back."""
    h, w = rgb.shape[:2]
    side = max(h, w)
    left, top = (side - w) // 2, (side - h) // 2
    square = np.full((side, side, 3), pad, np.uint8)
    square[top:top + h, left:left + w] = rgb
    square = np.asarray(Image.fromarray(square).resize((size, size), Image.LANCZOS))
    return square, (side, left, top)


def _detections(estimator, rgb, sizes, augment):
    """Run BlazePose on variants of ``rgb`` (H, W, 3); returns a list of (33, 3) arrays of
    (x, y, visibility), x and y in pixels of ``rgb``, left/right as the person's own."""
    h, w = rgb.shape[:2]
    images = [rgb]
    pads, flips = (PAD_GREY,), (False,)
    if augment:
        # A contrast stretch rescues washed-out infrared crops; black padding and mirroring
        # each rescue a few crops that the plain run misses.
        images.append(np.asarray(ImageOps.autocontrast(Image.fromarray(rgb), cutoff=1)))
        pads, flips = (PAD_GREY, 0), (False, True)
    found = []
    for image, pad, size, flip in itertools.product(images, pads, sizes, flips):
        view = np.ascontiguousarray(image[:, ::-1]) if flip else image
        square, (side, left, top) = _square(view, int(size), pad)
        landmarks = estimator(square)
        if landmarks is None:
            continue
        landmarks[:, :2] = landmarks[:, :2] * side - [left, top]
        if flip:
            landmarks[:, 0] = w - landmarks[:, 0]
            landmarks = landmarks[list(BLAZEPOSE_MIRROR)]
        found.append(landmarks)
    return found


def _consensus(detections, height, tolerance=0.05):
    """The detection that agrees with the most others (median landmark distance under
    ``tolerance`` x image height), ties broken by mean visibility."""
    core = list(_CORE_LANDMARKS)
    pts = np.stack([d[core, :2] for d in detections]) / height
    dist = np.median(np.linalg.norm(pts[:, None] - pts[None], axis=-1), axis=-1)
    agreeing = (dist < tolerance).sum(1)
    visibility = np.array([d[core, 2].mean() for d in detections])
    return detections[int(np.argmax(agreeing + 0.5 * visibility))]


def pose_from_image(image, min_visibility=0.5, sizes=(384, 512), augment=True, min_detection_confidence=0.5):
    """Estimate the COCO-18 pose of the (single, main) person in a photo.

    Parameters
    ----------
    image : PIL.Image, (H, W, 3) uint8 array, or path
        A photo or re-ID crop; RGB.
    min_visibility : float
        BlazePose landmarks less likely than this to be visible become missing joints, and so
        do landmarks outside the image.
    sizes : tuple of int
        Sides of the padded square the detector sees.
    augment : bool
        Run the detector on several variants of the image and keep the consensus (see the
        module docstring); ``False`` runs it once per size on the grey-padded image.
    min_detection_confidence : float
        BlazePose's person-detector threshold.

    Returns
    -------
    Pose
        On the image's own canvas (``width, height = image size``), named ``"photo"``.

    Raises
    ------
    NoPersonFound
        Empty or blank image, or no person detected.
    PoseEstimatorUnavailable
        mediapipe is not installed (install ``mediapipe==0.10.14``).
    PoseError
        ``image`` is not an image.
    """
    rgb = _to_rgb_array(image)
    h, w = rgb.shape[:2]
    if h == 0 or w == 0:
        raise NoPersonFound(f"the image is empty ({w}x{h} pixels)")
    estimator = blazepose(min_detection_confidence)
    if (rgb == rgb[0, 0]).all():
        raise NoPersonFound(f"no person found: the {w}x{h} image is a single flat colour")

    detections = _detections(estimator, rgb, sizes, augment)
    if not detections:
        raise NoPersonFound(
            f"no person found in the {w}x{h} image (BlazePose detected nobody; the whole body "
            f"should be in view)"
        )
    landmarks = _consensus(detections, h)

    xy = landmarks[:, :2]
    inside = (xy[:, 0] >= 0) & (xy[:, 0] <= w) & (xy[:, 1] >= 0) & (xy[:, 1] <= h)
    usable = (landmarks[:, 2] >= min_visibility) & inside
    keypoints = np.zeros((NUM_KEYPOINTS, 2))
    visible = np.zeros(NUM_KEYPOINTS, dtype=bool)
    for joint, landmark in enumerate(BLAZEPOSE_TO_COCO18):
        if landmark is None:
            if usable[list(_SHOULDERS)].all():
                keypoints[joint] = xy[list(_SHOULDERS)].mean(0)
                visible[joint] = True
        elif usable[landmark]:
            keypoints[joint] = xy[landmark]
            visible[joint] = True
    if not visible.any():
        raise NoPersonFound(
            f"a person was detected in the {w}x{h} image but no joint was visible with confidence >= {min_visibility}"
        )
    return Pose(keypoints, visible, w, h, name="photo")
