"""Reading what users upload: photos with a pixel limit checked from the header, any image mode
converted to RGB, and dataset archives extracted safely."""

import hashlib
import math
import warnings
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

# A photo of a pedestrian needs far less; the limit protects the server's memory.
MAX_PIXELS = 40_000_000
MAX_FILE_BYTES = 50 * 1024 * 1024
MIN_SIDE = 16  # pixels: a person needs at least this much of a picture on each side


class InputError(ValueError):
    """An upload the app cannot use; the message says why and what to do."""


def number(value, name, whole=False):
    """``value`` (a number, or text such as "2" from an API client) as a finite float, or as an
    int when ``whole``; ValueError naming ``name`` for anything else (NaN, infinity, True/False,
    "abc", 2.5 where a whole number is asked for)."""
    kind = "whole" if whole else "finite"
    try:
        parsed = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a {kind} number, got {value!r}") from None
    if isinstance(value, bool) or not math.isfinite(parsed) or (whole and parsed != int(parsed)):
        raise ValueError(f"{name} must be a {kind} number, got {value!r}")
    return int(parsed) if whole else parsed


def open_photo(path, max_pixels=MAX_PIXELS):
    """Open an uploaded photo as RGB.

    The size is read from the header first, so an oversized image is refused before it is
    decoded. Grayscale, palette, RGBA (composited on white) and CMYK images are converted.

    Parameters
    ----------
    path : str or Path of the uploaded file.
    max_pixels : refuse images with more pixels than this.

    Returns
    -------
    PIL.Image in mode "RGB".
    """
    if path is None or (isinstance(path, str) and not path):
        raise InputError("No photo given: upload a pedestrian photo or pick an example.")
    path = Path(path)
    if not path.is_file():
        raise InputError(f"The uploaded file {path.name} is missing on the server; upload it again.")
    size = path.stat().st_size
    if size == 0:
        raise InputError(f"{path.name} is empty (0 bytes); upload a JPEG or PNG photo.")
    if size > MAX_FILE_BYTES:
        raise InputError(f"{path.name} is {size / 2**20:.0f} MB; photos up to {MAX_FILE_BYTES // 2**20} MB are accepted.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path)
    except Image.DecompressionBombError:
        raise InputError(
            f"{path.name} is far too large (over {Image.MAX_IMAGE_PIXELS * 2 / 1e6:.0f} megapixels); "
            f"resize it below {max_pixels / 1e6:.0f} megapixels (a pedestrian crop of a few hundred pixels is enough)."
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise InputError(f"{path.name} is not an image, or a damaged one; upload a JPEG, PNG or WebP photo.") from None
    with image:
        width, height = image.size
        if width * height > max_pixels:
            raise InputError(
                f"{path.name} is {width}x{height} = {width * height / 1e6:.0f} megapixels; the limit is "
                f"{max_pixels / 1e6:.0f} megapixels. Resize or crop it to the person (a few hundred pixels is enough)."
            )
        if min(width, height) < MIN_SIDE:
            raise InputError(
                f"{path.name} is only {width}x{height} pixels, too small to show a person; use a photo at least "
                f"{MIN_SIDE} pixels on each side (pedestrian crops are usually 64x128 or larger)."
            )
        try:
            image = ImageOps.exif_transpose(image)
            if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
                rgba = image.convert("RGBA")
                background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                return Image.alpha_composite(background, rgba).convert("RGB")
            return image.convert("RGB")
        except (OSError, SyntaxError, ValueError) as error:
            raise InputError(f"{path.name} is damaged and cannot be decoded ({error}); upload another photo.") from None


def photo_digest(image):
    """Content hash of a photo opened by :func:`open_photo`: the same picture gives the same
    digest whatever its file name or upload path (and a PNG re-save of it too)."""
    digest = hashlib.sha256(f"{image.mode} {image.width}x{image.height} ".encode())
    digest.update(image.tobytes())
    return digest.hexdigest()
