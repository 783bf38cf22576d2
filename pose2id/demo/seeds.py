"""What to generate: the chosen poses, the seed, and the name that keys each pose's noise."""

import random

import numpy as np

from pose2id.demo import editor
from pose2id.poses import PoseError

MAX_SEED = 2**31 - 1
RANDOM_SEED = -1  # the usual "pick one for me" seed


def selected_poses(pose_names, use_editor, editor_value):
    """The poses to generate: the chosen standard poses in order, then the editor's pose, which
    must be enough of a body to draw a person in (:meth:`pose2id.poses.Pose.check_body`).

    Returns
    -------
    list of (label, Pose) on the 64x128 canvas.
    """
    poses = [(f"pose {name}", editor.standard_pose(name)) for name in sorted(pose_names or [], key=str)]
    if use_editor:
        try:
            pose = editor.from_value(editor_value).check_body()
        except PoseError as error:
            raise PoseError(f"the editor pose cannot be generated: {str(error).removeprefix('JSON text: ')}. Fix it "
                            "in the skeleton editor (Reset gives a standard pose) or untick 'Include the editor pose'."
                            ) from None
        poses.append(("editor pose", pose))
    if not poses:
        raise PoseError("no pose selected: tick at least one standard pose or 'Include the editor pose'.")
    return poses


def resolve_seed(seed, randomize):
    """(seed to use, True if it was drawn at random): a random one for ``randomize`` or seed -1,
    otherwise ``seed``, which must be a whole number from 0 to MAX_SEED (ValueError says so)."""
    if randomize or seed == RANDOM_SEED:
        return random.randint(0, MAX_SEED), True
    usage = f"enter a whole number from 0 to {MAX_SEED}, or {RANDOM_SEED} for a random seed"
    if seed is None or seed == "":
        raise ValueError(f"The seed is empty: {usage}.")
    try:
        value = float(seed)
    except (TypeError, ValueError):
        raise ValueError(f"The seed {seed!r} is not a number: {usage}.") from None
    if not (np.isfinite(value) and value == int(value)):
        raise ValueError(f"The seed {value:g} is not a whole number: {usage}.")
    if not 0 <= value <= MAX_SEED:
        raise ValueError(f"The seed {value:.0f} is out of range: {usage}.")
    return int(value), False


def pose_seed_names(labelled):
    """The name that keys each pose's initial noise (:func:`pose2id.ipg.seed_for`): a standard
    pose's number, as ``generate --ref`` names it, and "editor" for the editor's pose."""
    return [pose.name if label.startswith("pose ") else "editor" for label, pose in labelled]
