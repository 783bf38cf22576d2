"""Network feature extractors: TransReID (the paper's ReID model) and an ImageNet ViT-B/16.

Both are loaded once per extractor object and run in ``torch.inference_mode`` on CPU by default.
"""

import functools
import hashlib
import os
import pickle
import re
from pathlib import Path

import numpy as np

from pose2id import ArgumentError

VIT_MODEL_ID = "google/vit-base-patch16-224"


class MissingWeightsError(FileNotFoundError):
    """Model weights that are not on this machine; the message says what to download."""


def _file_tag(path):
    """A short tag that changes when the file at ``path`` changes (for cache keys)."""
    stat = path.stat()
    return hashlib.sha1(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:12]


def _unloadable(error, path):
    """Why :func:`pose2id.reid.load_transreid` refused ``path`` (its ValueError ``error``), in one
    line that does not name the file."""
    if isinstance(error.__cause__, pickle.UnpicklingError):  # torch.load(weights_only=True) refused it
        # torch's own text is several lines about loading with weights_only=False, which runs the
        # file's code: only its reason is kept
        found = re.search(r"WeightsUnpickler error:\s*(.+?)(?:\.\s|\n|$)", str(error.__cause__))
        why = found.group(1).strip() if found else "not a torch checkpoint"
        return f"torch cannot read it as a checkpoint of tensors without running code from it ({why})"
    if isinstance(error.__cause__, EOFError):
        return "it ends too early: empty or cut short"
    lines = _without_path(str(error), path).strip().splitlines()
    return lines[0] if lines else "not TransReID weights"


def _without_path(message, path):
    """``message`` of :func:`pose2id.reid.load_transreid`, which starts with the checkpoint's path
    (``"<path>: not a TransReID checkpoint ..."``, ``"<path> is a TransReID checkpoint of another
    size ..."``), without it: the error raised from it names the file in its ``file`` field."""
    shown = str(path)
    if message.startswith(f"{shown}: "):
        return message[len(shown) + 2:]
    if message.startswith(f"{shown} "):
        return "it" + message[len(shown):]
    return message


def _run_batches(images, batch_size, progress, forward):
    """forward(start, batch) per batch of images -> (N, D) float32, or None for no images."""
    images = list(images)
    chunks = []
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size]
        chunks.append(forward(start, batch))
        if progress is not None:
            progress(start + len(batch), len(images))
    return np.concatenate(chunks).astype(np.float32) if chunks else None


PRECISIONS = ("auto", "float32", "float16")


class TransReIDExtractor:
    """TransReID features from an official checkpoint (Pose2ID's ``transformer_20.pth``, a TransReID
    Market / MSMT17 model with or without camera embedding, or a .safetensors state dict).

    Parameters
    ----------
    path : checkpoint file.
    part : "all" -> (N, 5E) global + 4 local parts (the features the paper evaluates, 3840 for
        ViT-B); "global" -> (N, E).
    device : torch device.
    camera_ids : "auto" -> use the checkpoint's camera embedding (``base.sie_embed``) when it has
        one; "on" -> it must have one (ValueError naming the file otherwise); "off" -> ignore it.
    precision : "auto" (float16 on CUDA, float32 elsewhere), "float32" or "float16".

    Attributes
    ----------
    uses_camera_ids : bool, whether camera ids passed to :meth:`forward` / ``extract(camids=...)``
        are used (the model has a camera embedding and camera_ids is not "off").
    num_cameras : cameras of the embedding (0 = none); camera ids lie in 0..num_cameras - 1.

    Raises :class:`MissingWeightsError` when ``path`` is not a file, and a
    :class:`pose2id.ArgumentError` with ``argument="path"`` and ``file`` the checkpoint when it is
    not TransReID weights this model can load (another model, another size, no camera embedding
    with camera_ids "on").

    Images are resized to 256x128 with bilinear interpolation and normalized with mean = std =
    0.5, as TransReID's evaluation transforms do (``T.Resize`` on a PIL image is PIL's bilinear).
    """

    def __init__(self, path, part="all", device="cpu", camera_ids="auto", precision="auto"):
        import torch

        from pose2id.reid import CAMERA_MODES

        if part not in ("all", "global"):
            raise ArgumentError(f"must be 'all' or 'global', got {part!r}", argument="part", value=part)
        if camera_ids not in CAMERA_MODES:
            raise ArgumentError(f"must be one of {CAMERA_MODES}, got {camera_ids!r}", argument="camera_ids",
                                value=camera_ids)
        if precision not in PRECISIONS:
            raise ArgumentError(f"must be one of {PRECISIONS}, got {precision!r}", argument="precision",
                                value=precision)
        self.path = Path(path).expanduser()
        if not self.path.is_file():
            raise MissingWeightsError(
                f"TransReID checkpoint not found: {self.path}. Pass the path of Pose2ID's transformer_20.pth "
                "(or a TransReID Market-1501 checkpoint); `python -m pose2id download` fetches the Pose2ID weights."
            )
        from pose2id.reid import load_transreid

        self.part = part
        self.device = torch.device(device)
        if precision == "auto":
            precision = "float16" if self.device.type == "cuda" else "float32"
        self.dtype = torch.float16 if precision == "float16" else torch.float32
        from safetensors import SafetensorError

        try:
            self.model = load_transreid(self.path, device=self.device, dtype=self.dtype, camera_ids=camera_ids)
        except SafetensorError as error:  # a .safetensors file that is not one
            raise ArgumentError(f"cannot be used as TransReID weights: it is not a readable .safetensors file "
                                f"({error})", argument="path", file=self.path) from None
        except ValueError as error:
            raise ArgumentError(f"cannot be used as TransReID weights: {_unloadable(error, self.path)}",
                                argument="path", file=self.path) from None
        config = self.model.config
        self.num_cameras = self.model.camera_num
        self.uses_camera_ids = self.model.camera_num > 0
        self.dim = config.embed_dim * 5 if part == "all" else config.embed_dim
        # "bilinear" marks the retrieval preprocessing; "fp16" features differ from float32 ones.
        fp16 = ":fp16" if self.dtype == torch.float16 else ""
        self.name = f"transreid-{part}:{self.path.name}:{_file_tag(self.path)}:bilinear{fp16}"
        self.loader_transform = functools.partial(_resize_for_transreid, size=config.img_size[::-1])
        self.loader_collate = _stack_uint8

    def forward(self, batch, camids=None):
        """batch : (B, H, W, 3) uint8 tensor from ``loader_transform`` + ``loader_collate``;
        camids : (B,) 0-based camera ids or None (no camera embedding) -> (B, dim) float32 array.

        camids are ignored when :attr:`uses_camera_ids` is False.
        """
        import torch

        from pose2id.reid import normalize_uint8

        if not self.uses_camera_ids:
            camids = None
        with torch.inference_mode():
            x = normalize_uint8(batch.to(self.device, non_blocking=True)).to(self.dtype)
            feats = self.model(x, camids)
        if self.part == "global":
            feats = feats[:, : self.model.config.embed_dim]
        return feats.float().cpu().numpy()

    def __call__(self, images, batch_size=64, progress=None, camids=None):
        """images : list of PIL, camids : N 0-based camera ids or None -> (N, dim) float32 (raw, not normalized)."""
        images = list(images)
        if camids is not None and len(camids) != len(images):
            raise ValueError(f"camids has {len(camids)} entries but there are {len(images)} images")

        def forward(start, batch):
            ids = None if camids is None else list(camids[start : start + len(batch)])
            return self.forward(_stack_uint8([self.loader_transform(im) for im in batch]), ids)

        return _run_batches(images, batch_size, progress, forward)

    def __repr__(self):
        return f"TransReIDExtractor(path='{self.path}', dim={self.dim}, uses_camera_ids={self.uses_camera_ids})"


def _resize_for_transreid(image, size):
    from pose2id.reid import resize_rgb

    return resize_rgb(image, size, interpolation="bilinear")


def _stack_uint8(arrays):
    """list of (H, W, 3) uint8 arrays -> (B, H, W, 3) uint8 tensor."""
    import torch

    return torch.from_numpy(np.stack(arrays))


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
        self.uses_camera_ids = False

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

        def forward(start, batch):
            with torch.inference_mode():
                out = self.model(pixel_values=self.preprocess(batch).to(self.device))
            return out.last_hidden_state[:, 0].float().cpu().numpy()

        return _run_batches(images, batch_size, progress, forward)

    def __repr__(self):
        return f"ViTExtractor(model={self.model_id!r}, dim={self.dim})"
