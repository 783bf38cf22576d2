"""Group offloading of the IPG pipeline (diffusers' hooks): same images, clear refusals."""

import argparse

import numpy as np
import pytest
import torch
from diffusers.hooks.group_offloading import _is_group_offload_enabled
from PIL import Image

from pose2id.ipg import cli, tiny_pipeline
from pose2id.poses import load_standard_poses


@pytest.fixture(scope="module")
def person():
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 255, (128, 64, 3), dtype=np.uint8))


def _images(pipeline, person, poses):
    generators = [torch.Generator().manual_seed(seed) for seed in (11, 12)]
    return pipeline(person, poses, num_inference_steps=2, generator=generators, output_type="np").images


@pytest.mark.parametrize("options", [dict(), dict(offload_type="leaf_level"),
                                     dict(num_blocks_per_group=2, exclude=["vae"])])
def test_group_offloaded_images_match_the_plain_pipeline(person, options):
    poses = load_standard_poses()[:2]
    plain = _images(tiny_pipeline(seed=1), person, poses)
    pipeline = tiny_pipeline(seed=1).enable_group_offload("cpu", "cpu", **options)
    assert pipeline.low_memory and pipeline.execution_device.type == "cpu"
    excluded = set(options.get("exclude", ()))
    for name, module in pipeline.models.items():
        assert _is_group_offload_enabled(module) == (name not in excluded), name
    offloaded = _images(pipeline, person, poses)
    assert offloaded.shape == plain.shape == (2, 256, 128, 3)
    np.testing.assert_allclose(offloaded, plain, atol=1e-5, rtol=0)


@pytest.mark.parametrize("kwargs, names", [
    (dict(onload_device="gpu-please"), "onload_device"),
    (dict(onload_device="cpu", offload_device="disk"), "offload_device"),
    (dict(onload_device="cpu", offload_type="layer"), "offload_type"),
    (dict(onload_device="cpu", num_blocks_per_group=0), "num_blocks_per_group"),
    (dict(onload_device="cpu", num_blocks_per_group="2"), "num_blocks_per_group"),
    (dict(onload_device="cpu", use_stream=True), "use_stream"),
    (dict(onload_device="cpu", record_stream=True), "record_stream"),
    (dict(onload_device="cpu", exclude=["unet"]), "exclude"),
])
def test_bad_group_offload_arguments_name_the_argument(kwargs, names):
    pipeline = tiny_pipeline(seed=0)
    with pytest.raises(ValueError, match=names):
        pipeline.enable_group_offload(**kwargs)
    assert not pipeline.low_memory
    assert not any(_is_group_offload_enabled(m) for m in pipeline.models.values())


def test_group_offload_twice_is_refused():
    pipeline = tiny_pipeline(seed=0).enable_group_offload("cpu")
    with pytest.raises(ValueError, match="group offload"):
        pipeline.enable_group_offload("cpu")


def test_offload_flag(tmp_path, capsys):
    parser = argparse.ArgumentParser(prog="pose2id")
    cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["generate", "--ref", "r.jpg", "--out", str(tmp_path), "--offload", "group"])
    assert args.offload == "group"
    with pytest.raises(SystemExit):
        parser.parse_args(["generate", "--ref", "r.jpg", "--out", str(tmp_path), "--offload", "disk"])
    assert "--offload" in capsys.readouterr().err
    with pytest.raises(ValueError, match="offload"):
        cli.apply_memory_options(tiny_pipeline(seed=0), offload="disk")
    # on a CPU pipeline there is nothing to offload: the flag leaves it as it is
    pipeline = cli.apply_memory_options(tiny_pipeline(seed=0), offload="group")
    assert not pipeline.low_memory
    assert not any(_is_group_offload_enabled(m) for m in pipeline.models.values())
    assert cli.apply_memory_options(tiny_pipeline(seed=0), offload="group", low_memory=True).pose_batch_size == 2
