"""IPGPipeline as a diffusers pipeline: per-image generators, batches of references, the
save_pretrained / from_pretrained round trip, output types."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from pose2id.ipg import IPGPipeline, pose_generator, seed_for, tiny_pipeline
from pose2id.poses import load_standard_poses
from testkit import small_official_modules

STEPS = dict(num_inference_steps=2, output_type="np")


@pytest.fixture(scope="module")
def people():
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 255, (128, 64, 3), dtype=np.uint8)) for _ in range(2)]


@pytest.fixture(scope="module")
def poses():
    return load_standard_poses()


def generators(seed, names, labels):
    return [pose_generator(seed, name, label) for name in names for label in labels]


def test_seed_for_is_stable_across_processes_and_depends_on_each_part():
    code = "from pose2id.ipg import seed_for; print(seed_for(7, '0002_c1s1_000451_03.jpg', 3))"
    values = {
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                       env={**os.environ, "PYTHONHASHSEED": str(h)}).stdout.strip()
        for h in (1, 2)
    }
    assert values == {str(seed_for(7, "0002_c1s1_000451_03.jpg", 3))}
    base = seed_for(7, "a.jpg", 3)
    assert 0 <= base < 2**63 and seed_for(7, "a.jpg", "3") == base
    assert len({base, seed_for(8, "a.jpg", 3), seed_for(7, "b.jpg", 3), seed_for(7, "a.jpg", 4)}) == 4
    with pytest.raises(ValueError, match="seed"):
        seed_for("7", "a.jpg", 3)


def test_one_more_pose_does_not_change_the_other_images(tiny, people, poses):
    two = tiny(people[0], [poses[0], poses[2]], generator=generators(5, ["a"], ["1", "3"]), **STEPS).images
    three = tiny(people[0], poses[:3], generator=generators(5, ["a"], ["1", "2", "3"]), **STEPS).images
    assert np.abs(two[0] - three[0]).max() < 1e-4 and np.abs(two[1] - three[2]).max() < 1e-4  # batch-size rounding
    # the same pose with another seed gives another image
    other = tiny(people[0], [poses[0]], generator=generators(6, ["a"], ["1"]), **STEPS).images
    assert np.abs(other[0] - two[0]).max() > 1e-3


def test_a_batch_of_references_equals_one_call_per_reference(tiny, people, poses):
    names, labels = ["a", "b"], ["1", "4"]
    chosen = [poses[0], poses[3]]
    batched = tiny(people, chosen, generator=generators(9, names, labels), **STEPS).images
    assert batched.shape == (4, 256, 128, 3)
    singles = np.concatenate([
        tiny(person, chosen, generator=generators(9, [name], labels), **STEPS).images
        for person, name in zip(people, names)
    ])
    assert np.abs(batched - singles).max() < 1e-4
    # each reference's attention bank reaches its own rows: the two people differ
    assert np.abs(batched[0] - batched[2]).max() > 1e-3
    # and so does chunking the batch across UNet calls (rows of both references in one chunk)
    chunked = tiny(people, chosen, generator=generators(9, names, labels), pose_batch_size=3, **STEPS).images
    assert np.abs(chunked - singles).max() < 1e-4


def test_reference_batch_with_given_identity_vectors(tiny, people, poses):
    vectors = torch.randn(2, 160, generator=torch.Generator().manual_seed(0))
    out = tiny(people, [poses[0]], reid_features=vectors, negative_reid_features=torch.zeros(160),
               generator=torch.Generator().manual_seed(0), **STEPS).images
    assert out.shape == (2, 256, 128, 3)
    with pytest.raises(ValueError, match="reid_features"):
        tiny(people, [poses[0]], reid_features=torch.randn(3, 160), **STEPS)


def test_generator_list_must_have_one_per_image(tiny, people, poses):
    with pytest.raises(ValueError, match="generator"):
        tiny(people, poses[:2], generator=generators(1, ["a"], ["1", "2"]), **STEPS)
    with pytest.raises(ValueError, match=r"reference_image\[1\]"):
        tiny([people[0], "b.jpg"], poses[:1], **STEPS)


def test_save_pretrained_then_from_pretrained_gives_the_same_images(tiny, people, poses, tmp_path):
    tiny.save_pretrained(tmp_path / "ipg")
    index = json.loads((tmp_path / "ipg" / "model_index.json").read_text())
    assert index["_class_name"] == "IPGPipeline" and (index["width"], index["height"]) == (128, 256)
    for name in ("vae", "reference_unet", "denoising_unet", "pose_guider", "ifr", "reid", "scheduler"):
        assert name in index
    reference_keys = load_file(tmp_path / "ipg" / "reference_unet" / "diffusion_pytorch_model.safetensors")
    assert reference_keys and not any(k.startswith(("conv_out", "conv_norm_out")) for k in reference_keys)
    loaded = IPGPipeline.from_pretrained(tmp_path / "ipg")
    loaded.set_progress_bar_config(disable=True)
    assert loaded.reference_unet.conv_norm_out is None
    for name, model in tiny.models.items():
        theirs = getattr(loaded, name).state_dict()
        assert theirs.keys() == model.state_dict().keys()
        assert all(torch.equal(v, theirs[k]) for k, v in model.state_dict().items()), name
    kwargs = dict(generator=torch.Generator().manual_seed(2), **STEPS)
    assert np.array_equal(tiny(people[0], poses[:2], **kwargs).images,
                          loaded(people[0], poses[:2], **{**kwargs, "generator": torch.Generator().manual_seed(2)}).images)


def test_output_types_and_return_dict(tiny, people, poses):
    def run(**kwargs):
        return tiny(people[0], poses[:2], num_inference_steps=2, generator=torch.Generator().manual_seed(4), **kwargs)

    as_np = run(output_type="np").images
    as_pt = run(output_type="pt").images
    assert isinstance(as_pt, torch.Tensor) and as_pt.shape == (2, 3, 256, 128)
    assert np.abs(as_pt.permute(0, 2, 3, 1).numpy() - as_np).max() < 1e-6
    latents = run(output_type="latent").images
    assert latents.shape == (2, 4, 32, 16)
    (pil,) = run(return_dict=False)
    assert len(pil) == 2 and all(isinstance(im, Image.Image) and im.size == (128, 256) for im in pil)
    with pytest.raises(ValueError, match="output_type"):
        run(output_type="jpeg")


def test_model_cpu_offload_gives_the_same_images(people, poses):
    """diffusers' model offload (here onto the CPU itself: the hooks and the order still run)."""
    kwargs = dict(generator=torch.Generator().manual_seed(2), **STEPS)
    plain = tiny_pipeline(seed=3)(people[0], poses[:2], **kwargs).images
    offloaded = tiny_pipeline(seed=3)
    offloaded.enable_model_cpu_offload(device="cpu")
    assert offloaded.low_memory and offloaded.execution_device.type == "cpu"
    images = offloaded(people[0], poses[:2], **{**kwargs, "generator": torch.Generator().manual_seed(2)}).images
    assert np.abs(images - plain).max() < 1e-5


def test_interrupt_from_a_step_callback_skips_the_remaining_steps(tiny, people, poses):
    steps = []

    def stop_after_first(pipe, i, t, kwargs):
        steps.append(i)
        pipe._interrupt = True
        return {}

    out = tiny(people[0], poses[:1], num_inference_steps=4, callback_on_step_end=stop_after_first, output_type="np")
    assert steps == [0] and tiny.interrupt and out.images.shape == (1, 256, 128, 3)
    tiny(people[0], poses[:1], num_inference_steps=1, output_type="latent")
    assert not tiny.interrupt  # reset by the next call


@pytest.mark.slow
def test_convert_writes_a_folder_that_loads_as_the_official_files_do(tmp_path, capsys):
    """Official-layout random files (small UNet config) -> `convert` -> from_pretrained equals from_official."""
    from diffusers import AutoencoderKL

    from pose2id.cli import main
    from pose2id.configs import load_config
    from pose2id.ipg import weights

    modules = small_official_modules(tmp_path)
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    torch.nn.init.normal_(modules["pose_guider"].conv_out.weight)
    for name, module in modules.items():
        torch.save({"module." + k: v for k, v in module.state_dict().items()}, ckpt / weights.POSE2ID_FILES[name])
    AutoencoderKL.from_config(load_config("tiny")["vae"]).save_pretrained(tmp_path / "vae")
    sources = ["--ckpt-dir", str(ckpt), "--vae", str(tmp_path / "vae"), "--base-model", str(tmp_path / "base")]

    assert main(["convert", *sources, "--out", str(tmp_path / "ipg")]) == 0
    assert "from_pretrained" in capsys.readouterr().err
    converted = IPGPipeline.from_pretrained(tmp_path / "ipg")
    with pytest.warns(UserWarning, match="CPU"):
        direct = IPGPipeline.from_official(ckpt, base_model=tmp_path / "base", vae=tmp_path / "vae", device="cpu",
                                           allow_cpu=True)
    for name, model in direct.models.items():
        theirs = getattr(converted, name).state_dict()
        assert theirs.keys() == model.state_dict().keys(), name
        assert all(torch.equal(v, theirs[k]) for k, v in model.state_dict().items()), name
    def settings(scheduler):
        return {k: v for k, v in scheduler.config.items() if not k.startswith("_")}

    assert settings(converted.scheduler) == settings(direct.scheduler)
    x = torch.rand(1, 3, 64, 32)
    with torch.no_grad():
        assert torch.equal(converted.pose_guider(x), modules["pose_guider"](x))

    # a folder that is not empty is refused, naming the option
    assert main(["convert", *sources, "--out", str(tmp_path / "ipg")]) == 1
    assert "--out" in capsys.readouterr().err
    assert main(["convert", "--ckpt-dir", str(tmp_path / "nope"), "--out", str(tmp_path / "other")]) == 1
    assert "--ckpt-dir" in capsys.readouterr().err
