"""Stripe colour/texture histograms: a training-free, weight-free ReID descriptor.

This is not LOMO (Liao et al., CVPR 2015: Retinex, SILTP and local maximal occurrence over
sliding windows); it is plain per-stripe histograms with a grey-world colour correction. Each
image is resized to 64x128 and cut into overlapping horizontal stripes (people are roughly
upright, so a stripe holds "head", "torso", "legs" whatever the horizontal position). Per stripe:
a joint HSV colour histogram and a histogram of gradient orientations weighted by magnitude
(texture: stripes vs. plain clothing). Counts go through log(1 + x) so a dominant colour does not
swamp the rest, each part is L2-normalized, and the whole vector is L2-normalized.
"""

import numpy as np
from PIL import Image

WIDTH, HEIGHT = 64, 128
STRIPE_HEIGHT, STRIPE_STEP = 32, 16
HUE_BINS, SAT_BINS, VAL_BINS = 8, 4, 4
ORIENTATION_BINS = 8
# Texture matters less than colour for telling clothes apart; this keeps it from dominating.
TEXTURE_WEIGHT = 0.6
# People stand in the middle of a detection box: pixels count less the farther they are from the
# central column (a soft foreground prior, as in SDALF/ELF-style descriptors).
CENTRE_SIGMA = 0.3 * WIDTH
GREY_LEVEL = 0.45
_CENTRE_WEIGHT = np.exp(-0.5 * ((np.arange(WIDTH) + 0.5 - WIDTH / 2) / CENTRE_SIGMA) ** 2).astype(np.float32)


def _resize(image):
    """PIL image -> (128, 64, 3) float32 RGB in 0..255 (bilinear)."""
    return np.asarray(image.convert("RGB").resize((WIDTH, HEIGHT), Image.BILINEAR), dtype=np.float32)


def _to_array(images):
    """list of PIL -> (N, 128, 64, 3) float32 in [0, 1]."""
    return np.stack([_resize(im) for im in images]) / 255.0


def describe_resized(arrays):
    """list of (128, 64, 3) arrays from the resize step -> (N, dim) float32 descriptors.

    Runs as the DataLoader collate step, so the whole descriptor is computed in worker processes.
    """
    return HandcraftedExtractor.describe(np.stack(arrays) / 255.0)


def _colour_constancy(rgb):
    """Grey-world correction: scale each channel so the (centre-weighted) image mean is mid-grey.

    Removes most of a camera's colour cast and brightness (a cheap stand-in for Retinex).
    (N, H, W, 3) -> same shape, clipped to [0, 1].
    """
    mean = np.einsum("nhwc,w->nc", rgb, _CENTRE_WEIGHT)[:, None, None, :] / (_CENTRE_WEIGHT.sum() * rgb.shape[1])
    return np.clip(rgb * (GREY_LEVEL / np.maximum(mean, 1e-3)), 0.0, 1.0)


def _hsv(rgb):
    """(..., 3) RGB in [0,1] -> hue in [0,1), saturation, value (each (...))."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    value = np.maximum(np.maximum(r, g), b)
    chroma = value - np.minimum(np.minimum(r, g), b)
    saturation = chroma / np.maximum(value, 1e-6)
    safe = np.maximum(chroma, 1e-6)
    hue = np.where(value == r, ((g - b) / safe) % 6.0, np.where(value == g, (b - r) / safe + 2.0, (r - g) / safe + 4.0))
    return hue / 6.0, saturation, value


def _stripe_histograms(bins, weights, num_bins):
    """Per-stripe histograms over overlapping stripes (STRIPE_HEIGHT tall, every STRIPE_STEP rows).

    bins : (N, H, W) int bin index per pixel; weights : (N, H, W) float or None.
    Returns (N, num_stripes, num_bins) float32.
    """
    n, h, w = bins.shape
    blocks = h // STRIPE_STEP
    # Histogram each STRIPE_STEP-row block once; a stripe is the sum of consecutive blocks.
    block_of_row = np.arange(h) // STRIPE_STEP
    index = (np.arange(n)[:, None, None] * blocks + block_of_row[None, :, None]) * num_bins + bins
    counts = np.bincount(index.ravel(), weights=None if weights is None else weights.ravel(), minlength=n * blocks * num_bins)
    counts = counts.reshape(n, blocks, num_bins)
    per_stripe = STRIPE_HEIGHT // STRIPE_STEP
    stripes = sum(counts[:, k : blocks - per_stripe + 1 + k] for k in range(per_stripe))
    return stripes.astype(np.float32)


def _l2(x, axis=-1):
    return x / np.maximum(np.linalg.norm(x, axis=axis, keepdims=True), 1e-12)


class HandcraftedExtractor:
    """Stripe colour/texture histograms (spec name "handcrafted"); needs no weights.

    ``dim`` = 7 overlapping stripes (32 rows tall, every 16 rows of 128) x (8*4*4 colour + 8 texture) = 952.
    """

    name = "handcrafted-v1"
    label = "stripe colour/texture histograms"
    uses_camera_ids = False
    # DataLoader hooks (see pose2id.features.extract): decode + resize per image, descriptor per batch.
    loader_transform = staticmethod(_resize)
    loader_collate = staticmethod(describe_resized)

    def __init__(self):
        num_stripes = (HEIGHT - STRIPE_HEIGHT) // STRIPE_STEP + 1
        self.dim = num_stripes * (HUE_BINS * SAT_BINS * VAL_BINS + ORIENTATION_BINS)

    def forward(self, batch, camids=None):
        """batch : (B, dim) descriptors from ``loader_collate`` -> the same (camids are ignored)."""
        return np.asarray(batch, dtype=np.float32)

    @staticmethod
    def describe(rgb):
        """(N, 128, 64, 3) float in [0,1] -> (N, dim) float32, rows L2-normalized."""
        rgb = _colour_constancy(rgb)
        hue, sat, val = _hsv(rgb)
        h_bin = np.minimum((hue * HUE_BINS).astype(np.int64), HUE_BINS - 1)
        s_bin = np.minimum((sat * SAT_BINS).astype(np.int64), SAT_BINS - 1)
        v_bin = np.minimum((val * VAL_BINS).astype(np.int64), VAL_BINS - 1)
        colour_bins = (h_bin * SAT_BINS + s_bin) * VAL_BINS + v_bin
        centre = np.broadcast_to(_CENTRE_WEIGHT, colour_bins.shape)
        colour = _stripe_histograms(colour_bins, centre, HUE_BINS * SAT_BINS * VAL_BINS)

        gray = 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]
        gx = np.zeros_like(gray)
        gy = np.zeros_like(gray)
        gx[:, :, 1:-1] = gray[:, :, 2:] - gray[:, :, :-2]
        gy[:, 1:-1, :] = gray[:, 2:, :] - gray[:, :-2, :]
        magnitude = np.sqrt(gx * gx + gy * gy)
        # Unsigned orientation: a dark-on-light stripe and a light-on-dark one are the same texture.
        angle = np.arctan2(gy, gx) % np.pi
        o_bin = np.minimum((angle / np.pi * ORIENTATION_BINS).astype(np.int64), ORIENTATION_BINS - 1)
        texture = _stripe_histograms(o_bin, magnitude * _CENTRE_WEIGHT, ORIENTATION_BINS)

        colour = _l2(np.log1p(colour))
        texture = TEXTURE_WEIGHT * _l2(np.log1p(texture))
        feats = np.concatenate([colour, texture], axis=2).reshape(len(rgb), -1)
        return _l2(feats).astype(np.float32)

    def __call__(self, images, batch_size=64, progress=None):
        """images : list of PIL images -> (N, dim) float32.

        progress : optional callable ``progress(done, total)`` called after every batch.
        """
        images = list(images)
        out = np.empty((len(images), self.dim), dtype=np.float32)
        for start in range(0, len(images), batch_size):
            batch = images[start : start + batch_size]
            out[start : start + len(batch)] = self.describe(_to_array(batch))
            if progress is not None:
                progress(start + len(batch), len(images))
        return out

    def __repr__(self):
        return f"HandcraftedExtractor(dim={self.dim})"
