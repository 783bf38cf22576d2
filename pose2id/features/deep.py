"""Network feature extractors: TransReID (the paper's ReID model) and an ImageNet ViT-B/16.

Both are loaded once per extractor object and run in ``torch.inference_mode`` on CPU by default.
"""

import hashlib
import os
from pathlib import Path

import numpy as np

VIT_MODEL_ID = "google/vit-base-patch16-224"


class MissingWeightsError(FileNotFoundError):
    """Model weights that are not on this machine; the message says what to download."""


def _file_tag(path):
    """A short tag that changes when the file at ``path`` changes (for cache keys)."""
    stat = path.stat()
    return hashlib.sha1(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:12]


def _run_batches(images, batch_size, progress, forward):
    images = list(images)
    chunks = []
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size]
        chunks.append(forward(batch))
        if progress is not None:
            progress(start + len(batch), len(images))
    return np.concatenate(chunks).astype(np.float32) if chunks else None


class TransReIDExtractor:
    """TransReID features from an official checkpoint (Pose2ID's ``transformer_20.pth``, a TransReID
    Market model, or a .safetensors state dict).

    Parameters
    ----------
    path : checkpoint file.
    part : "all" -> (N, 5E) global + 4 local parts (the features the paper evaluates, 3840 for
        ViT-B); "global" -> (N, E).
    device : torch device.
    """

    def __init__(self, path, part="all", device="cpu"):
        if part not in ("all", "global"):
            raise ValueError(f"part must be 'all' or 'global', got {part!r}")
        self.path = Path(path).expanduser()
        if not self.path.is_file():
            raise MissingWeightsError(
                f"TransReID checkpoint not found: {self.path}. Pass the path of Pose2ID's transformer_20.pth "
                "(or a TransReID Market-1501 checkpoint); `python -m pose2id download` fetches the Pose2ID weights."
            )
        from pose2id.reid import load_transreid

        self.part = part
        self.device = device
        try:
            self.model = load_transreid(self.path, device=device)
        except ValueError as error:
            raise ValueError(f"path: {self.path} cannot be used as TransReID weights: {error}") from None
        embed = self.model.config.embed_dim
        self.dim = embed * 5 if part == "all" else embed
        self.name = f"transreid-{part}:{self.path.name}:{_file_tag(self.path)}"

    def __call__(self, images, batch_size=64, progress=None):
        """images : list of PIL -> (N, dim) float32 (raw, not normalized)."""
        import torch

        from pose2id.reid import preprocess

        def forward(batch):
            with torch.inference_mode():
                feats = self.model(preprocess(batch).to(self.device))
            if self.part == "global":
                feats = feats[:, : self.model.config.embed_dim]
            return feats.float().cpu().numpy()

        return _run_batches(images, batch_size, progress, forward)

    def __repr__(self):
        return f"TransReIDExtractor(path='{self.path}', dim={self.dim})"


class ViTExtractor:
    """ImageNet ViT (no ReID training): the class token of the last layer.

    Parameters
    ----------
    model : Hugging Face model id or a local folder (config.json + weights).
    device : torch device.

    Preprocessing follows the ViT image processor without torchvision: RGB, bilinear resize to
    the model's square input size, scale to [0, 1], normalize with mean = std = 0.5.
    """

    def __init__(self, model=VIT_MODEL_ID, device="cpu"):
        from transformers import ViTModel

        self.model_id = str(model)
        self.device = device
        try:
            self.model = ViTModel.from_pretrained(self.model_id, add_pooling_layer=False).to(device).eval()
        except OSError as error:
            offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")
            hint = " (HF_HUB_OFFLINE is set: nothing is downloaded; unset it or set HF_HUB_OFFLINE=0)" if offline else ""
            raise MissingWeightsError(
                f"ViT weights {self.model_id!r} are not available on this machine{hint}. Download them with "
                f"`huggingface-cli download {VIT_MODEL_ID}` or pass a local folder as `vit:PATH`. ({error})"
            ) from None
        self.size = self.model.config.image_size
        self.dim = self.model.config.hidden_size
        local = Path(self.model_id)
        tag = _file_tag(local / "config.json") if (local / "config.json").is_file() else "hub"
        self.name = f"vit:{self.model_id.replace('/', '_')}:{tag}"

    def preprocess(self, images):
        """list of PIL -> (B, 3, size, size) float32 tensor, mean/std 0.5."""
        import torch
        from PIL import Image

        arrays = [
            np.asarray(im.convert("RGB").resize((self.size, self.size), Image.BILINEAR), dtype=np.float32)
            for im in images
        ]
        x = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2) / 255.0
        return (x - 0.5) / 0.5

    def __call__(self, images, batch_size=64, progress=None):
        """images : list of PIL -> (N, hidden_size) float32 class-token features."""
        import torch

        def forward(batch):
            with torch.inference_mode():
                out = self.model(pixel_values=self.preprocess(batch).to(self.device))
            return out.last_hidden_state[:, 0].float().cpu().numpy()

        return _run_batches(images, batch_size, progress, forward)

    def __repr__(self):
        return f"ViTExtractor(model={self.model_id!r}, dim={self.dim})"
