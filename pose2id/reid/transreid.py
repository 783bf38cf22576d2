"""TransReID (ViT-B/16 with the jigsaw patch module), as used by Pose2ID.

The network is the one of He et al., "TransReID: Transformer-based Object Re-Identification"
(ICCV 2021) without side information (no camera / view embedding): an overlapping-patch ViT
backbone followed by the JPM head, a global branch ``b1`` and a shared local branch ``b2`` that
reads four groups of shifted and shuffled patch tokens. In eval mode the output is
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

__all__ = ["TransReIDConfig", "TransReID", "load_transreid", "preprocess", "convert_official", "load_state_dict_file"]


@dataclass
class TransReIDConfig:
    """Sizes and options of a TransReID JPM model; the defaults are ViT-B/16 at 256x128."""

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
    """Patch embedding + class token + position embedding + the first ``depth - 1`` blocks."""

    def __init__(self, config):
        super().__init__()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, config.embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, config.num_patches + 1, config.embed_dim))
        self.patch_embed = PatchEmbed(config)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.depth - 1))

    def forward(self, x):
        x = self.patch_embed(x)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return x


class TransReID(nn.Module):
    """TransReID with the JPM head, eval-mode features.

    forward: images (B, 3, H, W) normalized with mean/std 0.5 -> (B, 5 * E) float,
    ``[:, :E]`` the global feature, then the four local features divided by ``num_parts``.
    """

    def __init__(self, config=None):
        super().__init__()
        self.config = config = config or TransReIDConfig()
        self.base = Backbone(config)
        self.b1 = nn.Sequential(Block(config), nn.LayerNorm(config.embed_dim, eps=config.eps))
        self.b2 = nn.Sequential(Block(config), nn.LayerNorm(config.embed_dim, eps=config.eps))

    def forward_tokens(self, images):
        """(B, 3, H, W) -> backbone tokens (B, 1 + num_patches, E) that feed the JPM head."""
        return self.base(images)

    def shuffle_patches(self, tokens):
        """Shift then interleave the patch tokens: (B, 1 + N, E) -> (B, N, E)."""
        cfg = self.config
        b, _, e = tokens.shape
        patches = torch.cat([tokens[:, cfg.shift:], tokens[:, 1:cfg.shift]], dim=1)
        n = patches.shape[1]
        # view(B, groups, N/groups, E).transpose(1, 2): new[g*j + i] = old[i*N/groups + j].
        return patches.view(b, cfg.shuffle_groups, n // cfg.shuffle_groups, e).transpose(1, 2).reshape(b, n, e)

    def forward(self, images):
        cfg = self.config
        tokens = self.forward_tokens(images)
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


def convert_official(state_dict, config=None):
    """Official TransReID / Pose2ID state dict -> one :class:`TransReID` loads with ``strict=True``.

    Strips a DataParallel ``module.`` prefix and drops, by name, the keys that do not affect
    the output: classifiers, BatchNorm necks, ``base.norm``, ``base.fc`` and the backbone's
    last block ``base.blocks.{depth-1}`` (JPM replaces it with ``b1``/``b2``). A camera
    embedding (``base.sie_embed``) is dropped with a warning: features are computed without it.
    """
    config = config or TransReIDConfig()
    last_block = f"base.blocks.{config.depth - 1}."
    out = {}
    for key, value in state_dict.items():
        if key.startswith("module."):
            key = key[len("module."):]
        if _UNUSED.match(key) or key.startswith(last_block):
            continue
        if key == "base.sie_embed":
            warnings.warn("checkpoint has a camera embedding (SIE); features are computed without it", stacklevel=2)
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
    keys = {k[len("module."):] if k.startswith("module.") else k: v for k, v in state_dict.items()}
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


def load_transreid(path, device="cpu", dtype=torch.float32, config=None):
    """Load a TransReID JPM model in eval mode.

    Parameters
    ----------
    path : Pose2ID ``transformer_20.pth``, a TransReID Market-1501 checkpoint (keys may carry a
        ``module.`` prefix) or a ``.safetensors`` file with the same keys.
    config : TransReIDConfig or None. None = inferred from the weights' shapes (ViT-B for the
        official files); pass one for non-standard head counts.

    Raises ValueError naming the missing / unexpected keys when the file is another model.
    """
    state = load_state_dict_file(path)
    if config is None:
        config = infer_config(state)
    model = TransReID(config)
    converted = convert_official(state, config)
    result = model.load_state_dict(converted, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise ValueError(
            f"{path} is not a TransReID JPM checkpoint for {config}: "
            f"missing {len(result.missing_keys)} keys {result.missing_keys[:8]}, "
            f"unexpected {len(result.unexpected_keys)} keys {result.unexpected_keys[:8]}"
        )
    return model.to(device=device, dtype=dtype).eval()


def preprocess(images, size=(128, 256)):
    """PIL images -> (B, 3, 256, 128) float32 normalized tensor, as the reference inference does.

    Each image is converted to RGB, resized to ``size`` (width, height) with Lanczos, scaled to
    [0, 1] and normalized with mean 0.5 / std 0.5 (so values lie in [-1, 1]).
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
        array = np.asarray(image.convert("RGB").resize(size, Image.LANCZOS))
        batch.append(torch.from_numpy(array.copy()).permute(2, 0, 1))
    x = torch.stack(batch).float().div(255)
    return (x - 0.5) / 0.5
