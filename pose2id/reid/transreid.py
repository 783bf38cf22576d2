"""TransReID (ViT-B/16 with the jigsaw patch module), as used by Pose2ID.

The network is the one of He et al., "TransReID: Transformer-based Object Re-Identification"
(ICCV 2021): an overlapping-patch ViT backbone followed by the JPM head, a global branch ``b1``
and a shared local branch ``b2`` that reads four groups of shifted and shuffled patch tokens.
Side information (SIE) is the camera embedding only, as in the official Market-1501 / MSMT17
models: a parameter ``base.sie_embed`` of shape (camera_num, 1, E); for an image of camera
``c`` (0-based: the dataset's camera number - 1) ``sie_coef * sie_embed[c]`` (``SIE_COE`` =
3.0) is added to every token together with the position embedding. Pose2ID's own
``transformer_20.pth`` has no camera embedding; a model with one still runs without it when
no camera ids are given (nothing is added). In eval mode the output is
``cat(global, local_1 / 4, ..., local_4 / 4)`` taken before the BatchNorm necks: 5 * 768 = 3840
values for ViT-B. That vector is both Pose2ID's identity condition and a retrieval feature.

Only what changes the output is built: the file's classifiers, BatchNorm necks, ``base.norm``,
``base.fc`` and the backbone's last block (replaced by ``b1``/``b2`` in JPM mode) are dropped
by :func:`convert_official`, by name, so that every remaining key is loaded strictly.
"""

import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

__all__ = [
    "TransReIDConfig",
    "TransReID",
    "load_transreid",
    "preprocess",
    "resize_rgb",
    "normalize_uint8",
    "convert_official",
    "load_state_dict_file",
    "infer_config",
    "infer_camera_num",
]

# The official SIE_COE (TransReID configs for Market-1501 / MSMT17 with camera embedding).
SIE_COEF = 3.0


@dataclass
class TransReIDConfig:
    """Sizes and options of a TransReID JPM model; the defaults are ViT-B/16 at 256x128.

    The camera embedding is not part of the sizes: see ``camera_num`` of :class:`TransReID`.
    """

    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    img_size: tuple = (256, 128)
    patch: int = 16
    stride: int = 12
    shift: int = 5
    shuffle_groups: int = 2
    num_parts: int = 4
    eps: float = 1e-6

    @property
    def grid(self):
        """(rows, cols) of the overlapping patch grid: 21 x 10 at 256x128."""
        h, w = self.img_size
        return (h - self.patch) // self.stride + 1, (w - self.patch) // self.stride + 1

    @property
    def num_patches(self):
        rows, cols = self.grid
        return rows * cols

    @property
    def out_dim(self):
        return (1 + self.num_parts) * self.embed_dim


class Attention(nn.Module):
    def __init__(self, dim, num_heads):
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        if x.device.type != "cpu":
            # Fused attention on accelerators (float16 batches); same maths, other rounding.
            return self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, c))
        # Explicit softmax(q k^T * scale) v, in the reference order, so the output matches it bit for bit.
        attn = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm ViT block (LayerNorm -> attention, LayerNorm -> MLP with exact GELU)."""

    def __init__(self, config):
        super().__init__()
        dim = config.embed_dim
        self.norm1 = nn.LayerNorm(dim, eps=config.eps)
        self.attn = Attention(dim, config.num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=config.eps)
        self.mlp = Mlp(dim, int(dim * config.mlp_ratio))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.proj = nn.Conv2d(3, config.embed_dim, kernel_size=config.patch, stride=config.stride)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)  # (B, rows*cols, E), row by row


class Backbone(nn.Module):
    """Patch embedding + class token + position (+ camera) embedding + the first ``depth - 1`` blocks."""

    def __init__(self, config, camera_num=0, sie_coef=SIE_COEF):
        super().__init__()
        self.sie_coef = sie_coef
        self.cls_token = nn.Parameter(torch.zeros(1, 1, config.embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, config.num_patches + 1, config.embed_dim))
        if camera_num > 0:
            self.sie_embed = nn.Parameter(torch.zeros(camera_num, 1, config.embed_dim))
        self.patch_embed = PatchEmbed(config)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.depth - 1))

    def forward(self, x, camids=None):
        """x (B, 3, H, W), camids (B,) int64 0-based or None -> tokens (B, 1 + N, E)."""
        x = self.patch_embed(x)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        if camids is not None:
            # Same order as the official code: (tokens + pos_embed) + coef * sie_embed[camera].
            x = x + self.sie_coef * self.sie_embed[camids]
        for block in self.blocks:
            x = block(x)
        return x


class TransReID(nn.Module):
    """TransReID with the JPM head, eval-mode features.

    forward: images (B, 3, H, W) normalized with mean/std 0.5, camids (B,) 0-based camera
    indices or None -> (B, 5 * E) float, ``[:, :E]`` the global feature, then the four local
    features divided by ``num_parts``. camids need a model with a camera embedding
    (``camera_num`` > 0); None adds no camera embedding.

    Parameters
    ----------
    config : TransReIDConfig or None (ViT-B/16 at 256x128).
    camera_num : cameras of the camera embedding ``base.sie_embed`` (camera_num, 1, E); 0 = none
        (Pose2ID's ``transformer_20.pth``).
    sie_coef : its coefficient (the official ``SIE_COE``, 3.0).
    """

    def __init__(self, config=None, camera_num=0, sie_coef=SIE_COEF):
        super().__init__()
        self.config = config = config or TransReIDConfig()
        self.camera_num = int(camera_num)
        self.base = Backbone(config, self.camera_num, sie_coef)
        self.b1 = nn.Sequential(Block(config), nn.LayerNorm(config.embed_dim, eps=config.eps))
        self.b2 = nn.Sequential(Block(config), nn.LayerNorm(config.embed_dim, eps=config.eps))

    @property
    def has_camera_embedding(self):
        return self.camera_num > 0

    def check_camids(self, camids, batch):
        """camids (sequence / array / tensor of ints) -> (batch,) int64 tensor on the model's device.

        Raises ValueError naming ``camids`` when the model has no camera embedding, the length is
        not ``batch`` or a value lies outside [0, camera_num).
        """
        if not self.has_camera_embedding:
            raise ValueError("camids given, but this TransReID model has no camera embedding (base.sie_embed)")
        ids = torch.as_tensor(camids)
        if ids.dtype.is_floating_point or ids.dtype == torch.bool or ids.shape != (batch,):
            raise ValueError(f"camids must be {batch} integers (one per image), got {tuple(ids.shape)} {ids.dtype}")
        ids = ids.long()
        bad = (ids < 0) | (ids >= self.camera_num)
        if bad.any():
            raise ValueError(
                f"camids must lie in 0..{self.camera_num - 1} (dataset camera - 1) for this model's "
                f"{self.camera_num} cameras, got {int(ids[bad][0])}"
            )
        return ids.to(self.base.pos_embed.device)

    def forward_tokens(self, images, camids=None):
        """(B, 3, H, W), camids (B,) or None -> backbone tokens (B, 1 + num_patches, E) that feed the JPM head."""
        if camids is not None:
            camids = self.check_camids(camids, images.shape[0])
        return self.base(images, camids)

    def shuffle_patches(self, tokens):
        """Shift then interleave the patch tokens: (B, 1 + N, E) -> (B, N, E)."""
        cfg = self.config
        b, _, e = tokens.shape
        patches = torch.cat([tokens[:, cfg.shift:], tokens[:, 1:cfg.shift]], dim=1)
        n = patches.shape[1]
        # view(B, groups, N/groups, E).transpose(1, 2): new[g*j + i] = old[i*N/groups + j].
        return patches.view(b, cfg.shuffle_groups, n // cfg.shuffle_groups, e).transpose(1, 2).reshape(b, n, e)

    def forward(self, images, camids=None):
        cfg = self.config
        tokens = self.forward_tokens(images, camids)
        global_feat = self.b1(tokens)[:, 0]
        patches = self.shuffle_patches(tokens)
        cls = tokens[:, :1]
        length = patches.shape[1] // cfg.num_parts
        parts = [
            self.b2(torch.cat([cls, patches[:, k * length:(k + 1) * length]], dim=1))[:, 0]
            for k in range(cfg.num_parts)
        ]
        return torch.cat([global_feat] + [p / cfg.num_parts for p in parts], dim=1)


# Keys in official files that do not influence the eval features (see module docstring).
_UNUSED = re.compile(r"^(classifier|bottleneck)(_\d+)?\.|^base\.(norm|fc)\.")

CAMERA_MODES = ("auto", "on", "off")


def _strip_module(state_dict):
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in state_dict.items()}


def convert_official(state_dict, config=None, warn_dropped_camera=True, camera_num=0):
    """Official TransReID / Pose2ID state dict -> one :class:`TransReID` loads with ``strict=True``.

    Strips a DataParallel ``module.`` prefix and drops, by name, the keys that do not affect
    the output: classifiers, BatchNorm necks, ``base.norm``, ``base.fc`` and the backbone's
    last block ``base.blocks.{depth-1}`` (JPM replaces it with ``b1``/``b2``). The camera
    embedding ``base.sie_embed`` is kept when ``camera_num`` > 0; otherwise it is dropped
    (with a warning unless ``warn_dropped_camera`` is False) and features are computed without it.
    """
    config = config or TransReIDConfig()
    last_block = f"base.blocks.{config.depth - 1}."
    out = {}
    for key, value in _strip_module(state_dict).items():
        if _UNUSED.match(key) or key.startswith(last_block):
            continue
        if key == "base.sie_embed" and camera_num == 0:
            if warn_dropped_camera:
                warnings.warn("checkpoint has a camera embedding (SIE); features are computed without it",
                              stacklevel=2)
            continue
        out[key] = value
    return out


def load_state_dict_file(path):
    """Read a ``.pth``/``.pt``/``.bin`` (``torch.load(weights_only=True)``) or ``.safetensors`` file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling refused or not a torch file
        raise ValueError(f"{path} could not be read as a weights-only torch checkpoint: {exc}") from exc
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"{path} does not hold a state dict (got {type(state).__name__})")
    return state


def infer_config(state_dict):
    """Guess embed_dim / depth / heads from a (converted or official) TransReID state dict."""
    keys = _strip_module(state_dict)
    if "base.pos_embed" not in keys or "base.patch_embed.proj.weight" not in keys:
        missing = [k for k in ("base.pos_embed", "base.patch_embed.proj.weight") if k not in keys]
        raise ValueError(f"not a TransReID checkpoint: missing {missing}")
    embed_dim = keys["base.pos_embed"].shape[-1]
    blocks = {int(m.group(1)) for k in keys if (m := re.match(r"base\.blocks\.(\d+)\.", k))}
    depth = max(blocks) + 1 if blocks else 1
    # Head count is not stored in the weights: ViT sizes use heads of 64 (ViT-B: 12), smaller
    # test models heads of 8 (the fixture: 32 -> 4). Pass a config for anything else.
    num_heads = embed_dim // 64 if embed_dim % 64 == 0 else max(1, embed_dim // 8)
    return TransReIDConfig(embed_dim=embed_dim, depth=depth, num_heads=num_heads)


def infer_camera_num(state_dict, camera_ids="auto"):
    """Cameras of the state dict's camera embedding to build, 0 for none.

    camera_ids : "auto" -> ``base.sie_embed``'s camera count if the weights have one, else 0;
        "on" -> the weights must have one (ValueError otherwise); "off" -> 0.
    """
    if camera_ids not in CAMERA_MODES:
        raise ValueError(f"camera_ids must be one of {CAMERA_MODES}, got {camera_ids!r}")
    sie = _strip_module(state_dict).get("base.sie_embed")
    if camera_ids == "on" and sie is None:
        raise ValueError("camera ids were asked for (camera_ids='on') but the checkpoint has no camera "
                         "embedding (no key base.sie_embed); use camera_ids='auto' or 'off'")
    if sie is None or camera_ids == "off":
        return 0
    if sie.dim() != 3 or sie.shape[1] != 1 or sie.shape[0] < 1:
        raise ValueError(f"key base.sie_embed has shape {tuple(sie.shape)}, expected (cameras, 1, width)")
    return int(sie.shape[0])


def _check_shapes(model, converted):
    """First key whose shape differs from the model's, as a message, or None."""
    expected = model.state_dict()
    for key, value in converted.items():
        if key in expected and tuple(value.shape) != tuple(expected[key].shape):
            return f"key {key} has shape {tuple(value.shape)}, expected {tuple(expected[key].shape)}"
    return None


def load_transreid(path, device="cpu", dtype=torch.float32, config=None, camera_ids="auto"):
    """Load a TransReID JPM model in eval mode.

    Parameters
    ----------
    path : Pose2ID ``transformer_20.pth``, a TransReID Market-1501 checkpoint (keys may carry a
        ``module.`` prefix) or a ``.safetensors`` file with the same keys.
    config : TransReIDConfig or None. None = inferred from the weights' shapes (ViT-B for the
        official files); pass one for non-standard head counts.
    camera_ids : "auto" (camera embedding iff the file has ``base.sie_embed``), "on" (the file
        must have one) or "off" (ignored); see :func:`infer_camera_num`.

    Raises ValueError naming the file and the missing / unexpected / wrongly shaped keys when the
    file is another model or another size (e.g. another input size or patch stride).
    """
    state = load_state_dict_file(path)
    try:
        camera_num = infer_camera_num(state, camera_ids)
        if config is None:
            config = infer_config(state)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
    model = TransReID(config, camera_num=camera_num)
    converted = convert_official(state, config, warn_dropped_camera=camera_ids != "off", camera_num=camera_num)
    mismatch = _check_shapes(model, converted)
    if mismatch:
        rows, cols = config.grid
        raise ValueError(
            f"{path} is a TransReID checkpoint of another size: {mismatch} (this model: {config.img_size[0]}x"
            f"{config.img_size[1]} input, patch {config.patch} stride {config.stride} = {rows}x{cols} patches, "
            f"width {config.embed_dim})"
        )
    result = model.load_state_dict(converted, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise ValueError(
            f"{path} is not a TransReID JPM checkpoint for {config}: "
            f"missing {len(result.missing_keys)} keys {result.missing_keys[:8]}, "
            f"unexpected {len(result.unexpected_keys)} keys {result.unexpected_keys[:8]}"
        )
    return model.to(device=device, dtype=dtype).eval()


# PIL filters by name. "bilinear" is what torchvision's T.Resize applies to a PIL image by
# default (TransReID's evaluation transforms); "lanczos" is what Pose2ID's IPG inference uses
# for the generator's reference image.
INTERPOLATIONS = ("bilinear", "lanczos")


def resize_rgb(image, size=(128, 256), interpolation="bilinear"):
    """PIL image -> (H, W, 3) uint8 array, RGB, resized to ``size`` (width, height)."""
    from PIL import Image

    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {INTERPOLATIONS}, got {interpolation!r}")
    resample = Image.BILINEAR if interpolation == "bilinear" else Image.LANCZOS
    return np.asarray(image.convert("RGB").resize(size, resample))


def normalize_uint8(batch):
    """(B, H, W, 3) uint8 tensor -> (B, 3, H, W) float32, /255 then mean 0.5 / std 0.5 (values in [-1, 1])."""
    x = batch.permute(0, 3, 1, 2).float().div(255)
    return (x - 0.5) / 0.5


def preprocess(images, size=(128, 256), interpolation="lanczos"):
    """PIL images -> (B, 3, 256, 128) float32 normalized tensor.

    Each image is converted to RGB, resized to ``size`` (width, height), scaled to [0, 1] and
    normalized with mean 0.5 / std 0.5 (so values lie in [-1, 1]). ``interpolation`` "lanczos"
    (default) is the IPG inference's resize of the generator's reference image; retrieval
    features use "bilinear", the TransReID evaluation's ``T.Resize`` on PIL images.
    """
    from PIL import Image

    if isinstance(images, Image.Image):
        images = [images]
    if len(images) == 0:
        raise ValueError("images must be a non-empty list of PIL images")
    batch = []
    for i, image in enumerate(images):
        if not isinstance(image, Image.Image):
            raise ValueError(f"images[{i}] must be a PIL image, got {type(image).__name__}")
        batch.append(torch.from_numpy(resize_rgb(image, size, interpolation).copy()))
    return normalize_uint8(torch.stack(batch))
