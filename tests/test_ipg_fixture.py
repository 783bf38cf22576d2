"""IPGPipeline against the official pipeline's outputs on the public fixture (small random weights)."""

import json

import numpy as np
import pytest
import torch
from diffusers import AutoencoderKL, DDIMScheduler
from PIL import Image
from safetensors.torch import load_file

from pose2id.ipg import IFR, IPGPipeline, PoseGuider
from pose2id.ipg.components import build_unet, load_strict
from pose2id.reid import load_transreid


def _weights(path):
    # Fresh, aligned storage: mmap'd safetensors can sit unaligned, which changes GEMM rounding.
    return {k: v.clone() for k, v in load_file(path).items()}


def _json(path):
    return json.loads(path.read_text())


def load_fixture(fixtures_dir):
    """The public fixture's pipeline, inputs and expected outputs (``fixtures_dir`` holds
    ``ipg_pipeline/`` and ``transreid/``); also used by ``benchmarks/ipg_gpu_check.py``."""
    d = fixtures_dir / "ipg_pipeline"
    unet_config = _json(d / "unet" / "config.json")
    ifr_config = _json(d / "ifr" / "config.json")
    vae = load_strict(AutoencoderKL.from_config(_json(d / "vae" / "config.json")), _weights(d / "vae.safetensors"))
    pipeline = IPGPipeline(
        vae=vae,
        reference_unet=load_strict(build_unet(unet_config, reference=True), _weights(d / "reference_unet.safetensors")),
        denoising_unet=load_strict(build_unet(unet_config), _weights(d / "denoising_unet.safetensors")),
        pose_guider=load_strict(PoseGuider(**_json(d / "pose_guider" / "config.json")), _weights(d / "pose_guider.safetensors")),
        ifr=load_strict(
            IFR(ifr_config["in_features"], ifr_config["num_tokens"], ifr_config["token_dim"], ifr_config["layer_norm_eps"]),
            _weights(d / "ifr.safetensors"),
        ),
        reid=load_transreid(fixtures_dir / "transreid" / "transreid.safetensors"),
        scheduler=DDIMScheduler(**_json(d / "scheduler" / "scheduler_config.json")["constructor_kwargs"]),
    )
    for model in pipeline.models.values():
        model.eval()
    pipeline.progress = False
    return {
        "dir": d,
        "pipeline": pipeline,
        "inputs": _weights(d / "inputs.safetensors"),
        "expected": load_file(d / "expected.safetensors"),
        "call": _json(d / "call.json"),
        "ref": Image.open(d / "ref.png"),
        "poses": [Image.open(d / f"pose{i}.png") for i in range(2)],
    }


@pytest.fixture(scope="module")
def fixture(shared_dir):
    return load_fixture(shared_dir / "fixtures")


def _run(fixture, record, **kwargs):
    """Call the pipeline, recording the first denoising-UNet output and the step-1 latents."""
    pipeline, call = fixture["pipeline"], fixture["call"]

    def on_unet(module, inputs, output):
        record.setdefault("unet_step0", output.sample.clone())

    def on_step(pipe, i, t, kwargs):
        record.setdefault("timesteps", []).append(int(t))
        if i == 0:
            record["latents_step1"] = kwargs["latents"].clone()
        record["preview"] = kwargs["preview"]
        record["latents_final"] = kwargs["latents"].clone()
        return {}

    handle = pipeline.denoising_unet.register_forward_hook(on_unet)
    try:
        return pipeline(
            fixture["ref"],
            fixture["poses"],
            num_inference_steps=call["num_inference_steps"],
            guidance_scale=call["guidance_scale"],
            latents=fixture["inputs"]["init_latents"],
            output_type="np",
            callback_on_step_end=on_step,
            **kwargs,
        )
    finally:
        handle.remove()


def _max_diff(a, b):
    return (torch.as_tensor(np.asarray(a)) - torch.as_tensor(np.asarray(b))).abs().max().item()


@pytest.fixture(scope="module")
def official_vectors_run(fixture):
    vectors = fixture["inputs"]["reid_vectors"]
    record = {}
    out = _run(fixture, record, reid_features=vectors[2], negative_reid_features=vectors[0])
    return out, record


def test_components_match(fixture):
    pipeline, expected, vectors = fixture["pipeline"], fixture["expected"], fixture["inputs"]["reid_vectors"]
    with torch.no_grad():
        tokens = pipeline.ifr(vectors)
        ref = pipeline.image_to_tensor(fixture["ref"], normalize=True)
        ref_latents = pipeline.vae.encode(ref).latent_dist.mean * pipeline.latent_scale
        poses = torch.cat([pipeline.image_to_tensor(p, normalize=False) for p in fixture["poses"]])
        pose_features = pipeline.pose_guider(poses)
    assert _max_diff(tokens, expected["feature_tokens"]) <= 1e-5
    assert _max_diff(ref_latents.expand(2, -1, -1, -1), expected["ref_latents"]) <= 1e-4
    assert _max_diff(pose_features.mean(dim=(2, 3)), expected["pose_features_channel_mean"]) <= 1e-4
    assert _max_diff(pose_features.std(dim=(2, 3)), expected["pose_features_channel_std"]) <= 1e-4


@pytest.mark.slow
def test_pipeline_matches_official(fixture, official_vectors_run):
    out, record = official_vectors_run
    expected = fixture["expected"]
    assert record["timesteps"] == expected["timesteps"].tolist() == fixture["call"]["timesteps"]
    assert _max_diff(record["unet_step0"], expected["denoising_unet_out_step0"]) <= 1e-4
    assert _max_diff(record["latents_step1"], expected["latents_step1"]) <= 1e-4
    assert _max_diff(record["latents_final"], expected["latents_final"]) <= 2e-4
    assert out.images.shape == (2, 512, 256, 3) and out.images.dtype == np.float32
    assert _max_diff(out.images, expected["images"].permute(0, 2, 3, 1)) <= 1e-4


@pytest.mark.slow
def test_chain_transreid_ifr_pipeline(fixture, shared_dir):
    """Reference photo -> fixture TransReID -> IFR -> pipeline, with no precomputed vectors."""
    transreid_dir = shared_dir / "fixtures" / "transreid"
    pipeline = fixture["pipeline"]
    ref = Image.open(transreid_dir / "image0_orig.png")
    vector = pipeline.encode_identity(ref)
    assert _max_diff(vector[0], fixture["inputs"]["reid_vectors"][2]) <= 1e-4
    assert _max_diff(pipeline.negative_tokens()[0], fixture["expected"]["feature_tokens"][0]) <= 1e-4
    out = _run(fixture, {})  # identity from the photo, unconditional tokens from the mid-grey image
    assert _max_diff(out.images, fixture["expected"]["images"].permute(0, 2, 3, 1)) <= 1e-4


def test_previews_are_small_rgb(official_vectors_run):
    _, record = official_vectors_run
    previews = record["preview"]
    assert len(previews) == 2
    assert all(p.mode == "RGB" and p.size == (64, 128) for p in previews)
    assert len(set(np.asarray(previews[0]).reshape(-1, 3).sum(1).tolist())) > 10  # an actual picture, not flat


@pytest.mark.slow
def test_pipeline_matches_official_after_save_and_load(fixture, tmp_path):
    """The same equivalence through save_pretrained -> from_pretrained (safetensors, model_index.json)."""
    fixture["pipeline"].save_pretrained(tmp_path / "ipg")
    loaded = IPGPipeline.from_pretrained(tmp_path / "ipg")
    loaded.set_progress_bar_config(disable=True)
    # fresh aligned storage, as load_fixture gives the directly built one (GEMM rounding only)
    for model in loaded.models.values():
        for p in list(model.parameters()) + list(model.buffers()):
            p.data = p.data.clone()
    vectors, call = fixture["inputs"]["reid_vectors"], fixture["call"]
    out = loaded(fixture["ref"], fixture["poses"], num_inference_steps=call["num_inference_steps"],
                 guidance_scale=call["guidance_scale"], latents=fixture["inputs"]["init_latents"], output_type="np",
                 reid_features=vectors[2], negative_reid_features=vectors[0])
    assert _max_diff(out.images, fixture["expected"]["images"].permute(0, 2, 3, 1)) <= 1e-4
