"""IPG building blocks: official-size builds vs the checkpoint manifests, the tiny pipeline."""

import json

import numpy as np
import pytest
import torch
from diffusers.models.attention_processor import AttnProcessor2_0
from PIL import Image

from pose2id.ipg import IFR, PoseGuider, build, convert_official, tiny_pipeline
from pose2id.ipg.reference_attention import ReferenceBank, ReferenceReader
from pose2id.poses import load_standard_poses

COMPONENTS = ["denoising_unet", "reference_unet", "pose_guider", "ifr", "transreid"]


@pytest.mark.parametrize("component", COMPONENTS)
def test_official_manifest_loads_strictly_on_meta(component, shared_dir):
    manifest = json.loads((shared_dir / "data" / "checkpoint_manifests" / f"{component}.json").read_text())
    module = build(component, device="meta")
    state = {key: torch.empty(shape, device="meta") for key, shape in manifest.items()}
    module.load_state_dict(convert_official(component, state), strict=True, assign=True)
    assert all(p.shape == torch.Size(manifest[name]) for name, p in module.state_dict().items())


def test_reference_unet_has_no_output_head():
    unet = build("reference_unet", device="meta")
    assert not any(k.startswith(("conv_out", "conv_norm_out")) for k in unet.state_dict())
    assert len(unet.state_dict()) == 682 and len(build("denoising_unet", device="meta").state_dict()) == 686


def test_convert_official_strips_dataparallel_prefix_and_checks_name():
    state = {"module.proj_motion.weight": torch.zeros(1)}
    assert list(convert_official("ifr", state)) == ["proj_motion.weight"]
    with pytest.raises(ValueError, match="component"):
        convert_official("controlnet", {})
    with pytest.raises(ValueError, match="component"):
        build("controlnet", device="meta")


def test_pose_guider_and_ifr_shapes():
    guider = PoseGuider()
    assert guider(torch.zeros(2, 3, 512, 256)).shape == (2, 320, 64, 32)
    ifr = IFR(in_features=160, token_dim=32)
    tokens = ifr(torch.randn(3, 160))
    assert tokens.shape == (3, 20, 32)
    # token k comes from output features [32k, 32k + 32), normalized per token
    raw = ifr.proj_motion(torch.ones(1, 160))[0, 32:64]
    expected = torch.nn.functional.layer_norm(raw, (32,), ifr.norm_motion.weight, ifr.norm_motion.bias, 1e-5)
    assert torch.allclose(ifr(torch.ones(1, 160))[0, 1], expected, atol=1e-6)


def _attention_and_bank(num_uncond=2):
    from diffusers.models.attention_processor import Attention

    torch.manual_seed(0)
    attn = Attention(query_dim=8, heads=2, dim_head=4)
    bank = ReferenceBank()
    bank.features["a"] = torch.randn(1, 5, 8)
    bank.num_uncond = num_uncond
    return attn, bank


def test_reader_uses_reference_for_conditional_rows_only():
    attn, bank = _attention_and_bank()
    x = torch.randn(4, 6, 8)
    with torch.no_grad():
        out = ReferenceReader(bank, "a")(attn, x)
        plain = AttnProcessor2_0()(attn, x)
        with_ref = AttnProcessor2_0()(attn, x[2:], torch.cat([x[2:], bank.features["a"].expand(2, -1, -1)], 1))
    assert torch.allclose(out[:2], plain[:2], atol=1e-6)
    assert torch.allclose(out[2:], with_ref, atol=1e-6)
    assert not torch.allclose(out[2:], plain[2:], atol=1e-3)


def test_reader_projects_the_reference_once_and_forgets_it_on_clear():
    attn, bank = _attention_and_bank(num_uncond=0)
    reader = ReferenceReader(bank, "a")
    lengths = []
    attn.to_k.register_forward_hook(lambda module, inputs, output: lengths.append(inputs[0].shape[1]))
    with torch.no_grad():
        for _ in range(3):
            reader(attn, torch.randn(3, 6, 8))
        assert lengths == [6, 5, 6, 6]  # own tokens every call, the 5 reference tokens once
        bank.clear()
        bank.features["a"] = torch.randn(1, 5, 8)
        x = torch.randn(2, 6, 8)
        out = reader(attn, x)
        assert lengths[4:] == [6, 5]  # a new reference is projected again
        expected = AttnProcessor2_0()(attn, x, torch.cat([x, bank.features["a"].expand(2, -1, -1)], 1))
    assert torch.allclose(out, expected, atol=1e-6)


def test_reader_falls_back_to_the_stock_processor_for_other_layouts():
    """A layer SD-1.5 does not have (residual inside attention) still gets reference attention."""
    attn, bank = _attention_and_bank()
    attn.residual_connection = True
    x = torch.randn(4, 6, 8)
    with torch.no_grad():
        out = ReferenceReader(bank, "a")(attn, x)
        with_ref = AttnProcessor2_0()(attn, x[2:], torch.cat([x[2:], bank.features["a"].expand(2, -1, -1)], 1))
        plain = AttnProcessor2_0()(attn, x[:2])
    assert torch.allclose(out, torch.cat([plain, with_ref]), atol=1e-6)
    assert not bank.projected


@pytest.fixture(scope="module")
def person():
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 255, (128, 64, 3), dtype=np.uint8))


def test_tiny_pipeline_runs_with_poses_and_streams_previews(tiny, person):
    poses = load_standard_poses()[:3]
    steps = []

    def callback(pipe, i, t, kwargs):
        steps.append((i, int(t), len(kwargs["preview"]), kwargs["latents"].shape))
        return {}

    out = tiny(person, poses, num_inference_steps=4, generator=torch.Generator().manual_seed(1), callback_on_step_end=callback)
    assert len(out.images) == 3 and all(im.size == (128, 256) and im.mode == "RGB" for im in out.images)
    assert [s[0] for s in steps] == [0, 1, 2, 3]
    assert [s[1] for s in steps] == [999, 749, 499, 249]
    assert all(s[2] == 3 and s[3] == (3, 4, 32, 16) for s in steps)


def test_tiny_pipeline_is_deterministic_and_depends_on_inputs(tiny, person):
    poses = load_standard_poses()
    kwargs = dict(num_inference_steps=2, output_type="np")
    a = tiny(person, poses[:2], generator=torch.Generator().manual_seed(3), **kwargs).images
    b = tiny(person, poses[:2], generator=torch.Generator().manual_seed(3), **kwargs).images
    assert a.shape == (2, 256, 128, 3) and a.min() >= 0 and a.max() <= 1
    assert np.array_equal(a, b)
    other_person = person.transpose(Image.FLIP_TOP_BOTTOM)
    c = tiny(other_person, poses[:2], generator=torch.Generator().manual_seed(3), **kwargs).images
    assert np.abs(a - c).max() > 1e-4
    # each image depends on its own pose only: the batch is independent per pose
    d = tiny(person, [poses[0], poses[5]], generator=torch.Generator().manual_seed(3), **kwargs).images
    assert np.abs(a[0] - d[0]).max() < 1e-5 and np.abs(a[1] - d[1]).max() > 1e-4


def test_low_memory_mode_gives_the_same_images(person):
    poses = load_standard_poses()[:3]
    latents = torch.randn(3, 4, 32, 16, generator=torch.Generator().manual_seed(0))
    normal = tiny_pipeline(seed=1)(person, poses, num_inference_steps=2, latents=latents, output_type="np").images
    low = tiny_pipeline(seed=1).enable_low_memory(pose_chunk=1)
    chunked = low(person, poses, num_inference_steps=2, latents=latents, output_type="np").images
    assert np.abs(normal - chunked).max() < 1e-4


def test_callback_can_replace_latents(tiny, person):
    def zero(pipe, i, t, kwargs):
        return {"latents": torch.zeros_like(kwargs["latents"])}

    out = tiny(person, load_standard_poses()[:1], num_inference_steps=2, callback_on_step_end=zero, output_type="np")
    expected = tiny.vae.decode(torch.zeros(1, 4, 32, 16)).sample.detach()
    assert np.abs(out.images[0] - (expected / 2 + 0.5).clamp(0, 1)[0].permute(1, 2, 0).numpy()).max() < 1e-5


def test_bad_inputs_name_the_argument(tiny, person):
    with pytest.raises(ValueError, match="reference_image"):
        tiny("photo.jpg", load_standard_poses()[:1])
    with pytest.raises(ValueError, match="poses"):
        tiny(person, [])
    with pytest.raises(ValueError, match=r"poses\[0\]"):
        tiny(person, ["pose.png"], num_inference_steps=1)
    with pytest.raises(ValueError, match="output_type"):
        tiny(person, load_standard_poses()[:1], output_type="jpeg")
    with pytest.raises(ValueError, match="latents"):
        tiny(person, load_standard_poses()[:1], latents=torch.zeros(1, 4, 8, 8))


def test_half_precision_path_runs(person):
    """The GPU fast path's dtype handling (here bfloat16 on the CPU): finite images, close to float32."""
    poses = load_standard_poses()[:2]
    latents = torch.randn(2, 4, 32, 16, generator=torch.Generator().manual_seed(0))
    full = tiny_pipeline(seed=2)(person, poses, num_inference_steps=2, latents=latents, output_type="np").images
    half = tiny_pipeline(seed=2).to("cpu", torch.bfloat16)
    images = half(person, poses, num_inference_steps=2, latents=latents, output_type="np").images
    assert images.dtype == np.float32 and np.isfinite(images).all()
    assert np.abs(images - full).mean() < 0.05


def test_without_reid_model_identity_vectors_are_required(person):
    pipeline = tiny_pipeline(seed=0)
    pipeline.reid = None
    with pytest.raises(ValueError, match="reid_features"):
        pipeline(person, load_standard_poses()[:1], num_inference_steps=1)
    out = pipeline(person, load_standard_poses()[:1], num_inference_steps=1, output_type="np",
                   reid_features=torch.randn(160), negative_reid_features=torch.zeros(160))
    assert out.images.shape == (1, 256, 128, 3)


def test_pose_guider_is_diffusers_conditioning_embedding_with_the_official_computation():
    from diffusers.models.controlnets.controlnet import ControlNetConditioningEmbedding
    from torch.nn import functional as F

    guider = PoseGuider(32, 3, (8, 16, 16, 32))
    assert isinstance(guider, ControlNetConditioningEmbedding) and guider.config.block_out_channels == (8, 16, 16, 32)
    torch.nn.init.normal_(guider.conv_out.weight, std=0.1)
    x = torch.rand(2, 3, 64, 32)
    # the official PoseGuider: conv_in, SiLU, then each block conv and SiLU, then conv_out
    expected = F.silu(guider.conv_in(x))
    for block in guider.blocks:
        expected = F.silu(block(expected))
    expected = guider.conv_out(expected)
    with torch.no_grad():
        assert torch.equal(guider(x), expected.detach())
    assert expected.shape == (2, 32, 8, 4)
