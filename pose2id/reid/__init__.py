"""Person re-identification encoders: TransReID (ViT-B/16 + JPM), Pose2ID's identity encoder."""

from .transreid import TransReID, TransReIDConfig, load_transreid, preprocess

__all__ = ["TransReID", "TransReIDConfig", "load_transreid", "preprocess"]
