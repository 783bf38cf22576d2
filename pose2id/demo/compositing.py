"""Pictures and downloads of a generation: gallery tiles, preview strips, the pose strip and
the zip of everything made."""

import io
import json
import zipfile
from pathlib import Path

from PIL import Image

from pose2id._files import replace_atomically
from pose2id.demo import editor, scratch
from pose2id.poses import render

ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # the earliest date a zip can hold


def pair_image(pose, generated):
    """One gallery tile: the pose skeleton and the generated image side by side, same height
    (small images are enlarged for display, without smoothing)."""
    if generated.height < 256:
        factor = -(-256 // generated.height)
        generated = generated.resize((generated.width * factor, generated.height * factor), Image.NEAREST)
    height = generated.height
    skeleton = render(pose.fit(generated.width, height))
    tile = Image.new("RGB", (generated.width * 2 + 4, height), (255, 255, 255))
    tile.paste(skeleton, (0, 0))
    tile.paste(generated, (generated.width + 4, 0))
    return tile


def preview_strip(images, height=192):
    """The per-step previews of all poses side by side, scaled to ``height``."""
    scaled = [im.resize((max(1, round(im.width * height / im.height)), height), Image.NEAREST) for im in images]
    strip = Image.new("RGB", (sum(im.width for im in scaled) + 4 * (len(scaled) - 1), height), (255, 255, 255))
    x = 0
    for im in scaled:
        strip.paste(im, (x, 0))
        x += im.width + 4
    return strip


def write_zip(photo, labelled, images, settings, folder=None):
    """A zip with the reference, every pose (PNG and OpenPose JSON), every generated image and
    the settings used, written atomically into ``folder`` (default: a new scratch folder).

    Parameters
    ----------
    photo : PIL image, the reference.
    labelled : list of (label, Pose), one per generated image.
    images : list of PIL images.
    settings : dict, stored as ``settings.json``.
    folder : the call's own folder (:func:`pose2id.demo.scratch.folder`), or None for a new one.

    Returns
    -------
    str, the zip's path (``pose2id_generated.zip`` in ``folder``).
    """
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        def add(name, data):  # a fixed date: the same generation gives the same bytes
            archive.writestr(zipfile.ZipInfo(name, date_time=ZIP_DATE), data, zipfile.ZIP_DEFLATED)

        add("reference.png", _png(photo))
        for k, ((label, pose), image) in enumerate(zip(labelled, images), start=1):
            stem = f"{k:02d}_{label.replace(' ', '_')}"
            add(f"{stem}_generated.png", _png(image))
            add(f"{stem}_pose.png", _png(render(pose.fit(image.width, image.height))))
            add(f"{stem}_pose.json", json.dumps(pose.to_openpose()))
        add("settings.json", json.dumps(settings, indent=1))
    return write_atomically(Path(folder or scratch.folder("generated")) / "pose2id_generated.zip", buffer.getvalue())


def save_png(image, path):
    """Write PIL ``image`` as a PNG at ``path`` atomically; returns the path (str)."""
    return write_atomically(path, _png(image))


def write_atomically(path, data):
    """Write ``data`` (bytes) at ``path`` atomically (:func:`pose2id._files.replace_atomically`,
    a unique staging name: concurrent calls never meet). Returns str."""
    return replace_atomically(path, lambda staging: staging.write_bytes(data))


def _png(image):
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def pose_previews(size=(80, 160)):
    """One image of the 8 standard poses side by side, each numbered below its skeleton."""
    from PIL import ImageDraw

    poses = editor.standard_poses()
    label_height, gap = 22, 6
    strip = Image.new("RGB", (len(poses) * (size[0] + gap) - gap, size[1] + label_height), (255, 255, 255))
    draw = ImageDraw.Draw(strip)
    for k, pose in enumerate(poses):
        x = k * (size[0] + gap)
        strip.paste(render(pose.fit(*size)), (x, 0))
        draw.text((x + size[0] // 2, size[1] + label_height // 2), f"pose {pose.name}", fill=(30, 41, 59), anchor="mm",
                  font_size=15)
    return strip
