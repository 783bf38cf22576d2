"""OracleGenerator: a stand-in for the IPG generator on SynthPed.

IPG turns one image of a person into images of the same person in the 8 standard poses. On
SynthPed the true identity is known, so this *oracle* simply redraws it in those poses with a
neutral camera. It is not a model and is only meaningful on SynthPed.

``fidelity`` makes it behave like a real, imperfect generator: 0 is perfect; larger values
perturb the identity's colours, sometimes replace a colour or flip an attribute (pattern,
sleeves, hair, bag, skirt/trousers) and let the reference camera's colour cast leak into the
generated images, as a diffusion model copies the lighting of its reference image. The errors
depend on ``seed``, so every source image gets its own, like independent generator runs.
"""

from dataclasses import replace

import numpy as np

from pose2id.data.drawing import (
    CLOTHING_COLOURS,
    NEUTRAL_CAMERA,
    Camera,
    Identity,
    SynthPedConfig,
    build_world,
    complete_skeleton,
    pose_arrays,
    render_person,
    standard_skeletons,
)

_FLIPS = {
    "upper_pattern": ("plain", "stripes", "checks"),
    "sleeves": ("short", "long"),
    "hair": ("short", "long"),
    "bag": ("none", "backpack", "handbag"),
    "lower_style": ("trousers", "shorts", "skirt"),
}
_COLOUR_FIELDS = ("upper_colour", "pattern_colour", "lower_colour", "shoe_colour", "hair_colour", "bag_colour")


class OracleGenerator:
    """Re-renders SynthPed identities in given poses (default: the 8 standard poses).

    Parameters
    ----------
    fidelity : float >= 0; 0 = exact re-rendering, ~0.3 = a good generator, >= 1 = a weak one.
    seed : SynthPed seed whose identities are meant (ignored when ``identities`` is given).
    identities : optional dict pid -> Identity (e.g. ``load_synthped().identities``).
    """

    def __init__(self, fidelity=0.0, seed=0, identities=None):
        if not np.isfinite(fidelity) or fidelity < 0:
            raise ValueError(f"fidelity must be a finite number >= 0, got {fidelity!r}")
        self.fidelity = float(fidelity)
        self.seed = seed
        if identities is None:
            identities, _, _ = build_world(seed, SynthPedConfig())
        self.identities = identities
        self._standard = None

    def _standard_skeletons(self):
        if self._standard is None:
            keypoints, visible = standard_skeletons()
            self._standard = [complete_skeleton(k, v) for k, v in zip(keypoints, visible)]
        return self._standard

    def degrade(self, identity, rng):
        """The identity as an imperfect generator would draw it (fidelity-dependent errors)."""
        f = self.fidelity
        if f == 0:
            return identity
        changes = {}
        names = list(CLOTHING_COLOURS)
        for field in _COLOUR_FIELDS:
            colour = np.array(getattr(identity, field), dtype=float)
            if rng.random() < min(1.0, 0.25 * f):
                colour = np.array(CLOTHING_COLOURS[names[rng.integers(len(names))]][0], dtype=float)
            colour = colour + rng.normal(0, 40 * f, 3)
            changes[field] = tuple(int(c) for c in np.clip(colour, 0, 255))
        for field, options in _FLIPS.items():
            if rng.random() < min(1.0, 0.2 * f):
                changes[field] = options[rng.integers(len(options))]
        changes["skin"] = tuple(int(c) for c in np.clip(np.array(identity.skin) + rng.normal(0, 25 * f, 3), 0, 255))
        return replace(identity, **changes)

    def _camera(self, camera):
        """Neutral camera, with part of the reference camera's cast leaking in when fidelity > 0."""
        if camera is None or self.fidelity == 0:
            return NEUTRAL_CAMERA
        leak = min(1.0, self.fidelity)
        gain = tuple(1 + leak * (g - 1) for g in camera.gain)
        brightness = 1 + leak * (camera.brightness - 1)
        return replace(NEUTRAL_CAMERA, gain=gain, brightness=brightness)

    def generate(self, pid, poses=None, camera=None, seed=None):
        """Images of identity ``pid`` in ``poses``.

        Parameters
        ----------
        pid : int pid of a SynthPed identity, or an :class:`Identity`.
        poses : list of ``pose2id.poses.Pose`` (default: the 8 standard poses).
        camera : optional :class:`Camera` of the reference image (its cast leaks in if fidelity > 0).
        seed : int or sequence of ints for the generator's errors (default: derived from pid).

        Returns
        -------
        list of PIL RGB images, 64x128, one per pose.
        """
        if isinstance(pid, Identity):
            identity = pid
        else:
            if pid not in self.identities:
                raise ValueError(f"pid {pid!r} is not a SynthPed identity (known pids 1..{max(self.identities)})")
            identity = self.identities[pid]
        if camera is not None and not isinstance(camera, Camera):
            raise ValueError(f"camera must be a synthped Camera or None, got {type(camera).__name__}")
        if poses is None:
            skeletons = self._standard_skeletons()
        else:
            keypoints, visible = pose_arrays(list(poses))
            skeletons = [complete_skeleton(k, v) for k, v in zip(keypoints, visible)]
        rng = np.random.default_rng(seed if seed is not None else [self.seed, 7, identity.pid])
        drawn = self.degrade(identity, rng)
        cam = self._camera(camera)
        return [render_person(drawn, kp, cam, rng) for kp in skeletons]

    def __repr__(self):
        return f"OracleGenerator(fidelity={self.fidelity}, seed={self.seed}) [SynthPed oracle, not a model]"
