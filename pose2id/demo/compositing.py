"""Pictures and downloads of a generation: gallery tiles, preview strips, the pose strip and
the zip of everything made."""

import io
import json
import zipfile

from PIL import Image

from pose2id.demo import editor, scratch
from pose2id.poses import render


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


def write_zip(photo, labelled, images, settings):
    """A zip with the reference, every pose (PNG and OpenPose JSON), every generated image and
    the settings used. Returns its path."""
    path = scratch.folder("generated") / "pose2id_generated.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("reference.png", _png(photo))
        for k, ((label, pose), image) in enumerate(zip(labelled, images), start=1):
            stem = f"{k:02d}_{label.replace(' ', '_')}"
            archive.writestr(f"{stem}_generated.png", _png(image))
            archive.writestr(f"{stem}_pose.png", _png(render(pose.fit(image.width, image.height))))
            archive.writestr(f"{stem}_pose.json", json.dumps(pose.to_openpose()))
        archive.writestr("settings.json", json.dumps(settings, indent=1))
    return str(path)


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
