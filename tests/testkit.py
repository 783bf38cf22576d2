"""Small makers the tests share: the command line run in-process, a PNG that only claims a size,
an official-layout folder of small random IPG weights."""

import argparse
import json
import struct
import zlib


def run_cli(argv):
    """Run the ``pose2id`` experiment commands on ``argv`` (a list of strings) in this process;
    returns the command's exit code."""
    from pose2id.experiments import register

    parser = argparse.ArgumentParser(prog="pose2id")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def png_header_only(path, width, height):
    """Write at ``path`` a PNG whose header claims ``width`` x ``height`` (no real pixel data: enough
    to be refused for its size) and return ``path``."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0")) + chunk(b"IEND", b""))
    return path


def small_official_modules(folder):
    """The five IPG modules, randomly initialised (seed 0) with a small SD-style UNet whose first
    level is the official 320 wide (so the full-size PoseGuider fits), and ``folder``/base/unet/config.json
    holding that UNet's config. Returns {official module name: torch module}; the caller writes them
    in the layout it tests (see :data:`pose2id.ipg.weights.POSE2ID_FILES`)."""
    import torch

    from pose2id.configs import load_config
    from pose2id.ipg import build
    from pose2id.ipg.components import build_unet

    config = dict(load_config("sd15_unet"), block_out_channels=[320, 320], layers_per_block=1,
                  down_block_types=["CrossAttnDownBlock2D", "DownBlock2D"], up_block_types=["UpBlock2D", "CrossAttnUpBlock2D"])
    (folder / "base" / "unet").mkdir(parents=True)
    (folder / "base" / "unet" / "config.json").write_text(json.dumps(config))
    torch.manual_seed(0)
    modules = {"denoising_unet": build_unet(config), "reference_unet": build_unet(config, reference=True)}
    modules.update({name: build(name) for name in ("pose_guider", "ifr", "transreid")})
    return modules


WORKER_SETUPS = ("no threadpoolctl", "one core", "eight cores")


def use_worker_setup(monkeypatch, setup):
    """Make :mod:`pose2id.knn` scan as on a machine with ``setup`` (one of :data:`WORKER_SETUPS`):
    without threadpoolctl (its import raises ImportError, so one worker), or with 1 or 8 cores."""
    import sys

    import pose2id.knn as knn

    if setup == "no threadpoolctl":
        monkeypatch.setitem(sys.modules, "threadpoolctl", None)  # import raises ImportError
    elif setup in ("one core", "eight cores"):
        monkeypatch.setattr(knn, "_cpu_count", lambda: 1 if setup == "one core" else 8)
        if setup == "eight cores":  # the row-wise passes in threads too, however few the rows
            monkeypatch.setattr(knn, "_THREADED_ROWS", 1)
    else:
        raise ValueError(f"setup must be one of {WORKER_SETUPS}, got {setup!r}")


def gaussian_identities(seed=0, ids=4, per_id=15, dim=64, dtype=None):
    """(before, after, pids): ``ids`` Gaussian identities of ``per_id`` features each in ``dim``
    dimensions, before (N, dim) and after = halfway from each feature to its centre (N, dim),
    both of ``dtype`` (float64 when not given), pids (N,) int from 1."""
    import numpy as np

    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(ids, dim))
    pids = np.repeat(np.arange(1, ids + 1), per_id)
    before = centres[pids - 1] + rng.normal(scale=0.8, size=(len(pids), dim))
    after = 0.5 * before + 0.5 * centres[pids - 1]
    return before.astype(dtype or np.float64), after.astype(dtype or np.float64), pids
