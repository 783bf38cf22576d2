"""Person re-identification encoders: TransReID (ViT-B/16 + JPM, optional camera embedding), Pose2ID's identity encoder."""

from .transreid import CAMERA_MODES, TransReID, TransReIDConfig, load_transreid, normalize_uint8, preprocess, resize_rgb

__all__ = ["CAMERA_MODES", "TransReID", "TransReIDConfig", "load_transreid", "normalize_uint8", "preprocess", "resize_rgb"]
