"""Official-weight loading, missing-weight messages and the download/generate commands."""

import argparse
import json

import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from pose2id.ipg import IPGPipeline, MissingWeightsError, build, cli, tiny_pipeline
from pose2id.ipg import weights


def test_missing_local_files_are_listed(tmp_path):
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    torch.save(build("pose_guider").state_dict(), ckpt / "pose_guider.pth")
    save_file({"x": torch.zeros(1)}, ckpt / "IFR.safetensors")
    vae = tmp_path / "vae"
    vae.mkdir()
    (vae / "config.json").write_text("{}")
    with pytest.warns(UserWarning, match="CPU"), pytest.raises(MissingWeightsError) as info:
        IPGPipeline.from_official(ckpt_dir=ckpt, vae=vae, device="cpu", allow_cpu=True)
    message = str(info.value)
    names = [name for name, _ in info.value.missing]
    assert names == ["denoising_unet.pth", "reference_unet.pth", "transformer_20.pth", "diffusion_pytorch_model.safetensors"]
    assert str(ckpt.resolve()) in message and str(vae.resolve()) in message
    assert "python -m pose2id download" in message
    assert isinstance(info.value, FileNotFoundError)


def test_missing_hub_files_offline(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.warns(UserWarning, match="CPU"):
        with pytest.raises(MissingWeightsError) as info:
            IPGPipeline.from_official(device="cpu", allow_cpu=True)
    assert len(info.value.missing) == 7
    assert "yuanc3/Pose2ID" in str(info.value) and "stabilityai/sd-vae-ft-mse" in str(info.value)
    assert str(tmp_path / "empty-cache") in str(info.value)


def test_cpu_needs_explicit_permission():
    with pytest.raises(RuntimeError, match="allow_cpu=True"):
        IPGPipeline.from_official(device="cpu")


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_load_component_reads_official_files(tmp_path, suffix):
    reference = build("pose_guider")
    torch.nn.init.normal_(reference.conv_out.weight)
    state = {"module." + k: v for k, v in reference.state_dict().items()} if suffix == ".pth" else reference.state_dict()
    path = tmp_path / f"pose_guider{suffix}"
    torch.save(state, path) if suffix == ".pth" else save_file(state, path)
    loaded = weights.load_component("pose_guider", path)
    x = torch.rand(1, 3, 64, 32)
    assert torch.equal(loaded(x), reference(x).detach())


def test_load_component_rejects_another_model(tmp_path):
    path = tmp_path / "pose_guider.pth"
    torch.save({"conv_in.weight": torch.zeros(16, 3, 3, 3), "head.bias": torch.zeros(2)}, path)
    with pytest.raises(ValueError, match=r"not the official pose_guider checkpoint.*missing.*blocks\.0.*unexpected.*head\.bias"):
        weights.load_component("pose_guider", path)


def test_pth_is_loaded_weights_only(tmp_path):
    path = tmp_path / "pose_guider.pth"
    torch.save({"conv_in.weight": argparse.Namespace(code="arbitrary object")}, path)  # needs unpickling
    with pytest.raises(ValueError, match="weights-only"):
        weights.load_component("pose_guider", path)


def _parser():
    parser = argparse.ArgumentParser(prog="pose2id")
    cli.register(parser.add_subparsers(dest="command", required=True))
    return parser


def test_generate_writes_images_and_contact_sheet(tmp_path, monkeypatch):
    monkeypatch.setattr(cli, "load_pipeline", lambda args: tiny_pipeline(seed=0))
    Image.new("RGB", (64, 128), (200, 30, 30)).save(tmp_path / "ref.jpg")
    from pose2id.poses import load_standard_poses

    poses = [load_standard_poses()[i].to_openpose() for i in (0, 3)]
    (tmp_path / "poses.json").write_text(json.dumps(poses))
    args = _parser().parse_args(
        ["generate", "--ref", str(tmp_path / "ref.jpg"), "--poses", str(tmp_path / "poses.json"),
         "--out", str(tmp_path / "out"), "--steps", "2", "--seed", "1", "--cpu"]
    )
    assert args.func(args) == 0
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == ["contact_sheet.png", "pose_poses_0.png", "pose_poses_1.png"]
    sheet = Image.open(tmp_path / "out" / "contact_sheet.png")
    assert sheet.height == 512 and sheet.width == 3 * 128


def test_generate_argument_errors(tmp_path):
    args = _parser().parse_args(["generate", "--ref", str(tmp_path / "nope.jpg"), "--out", str(tmp_path)])
    assert (args.steps, args.guidance, args.poses, args.cpu) == (20, 3.5, "standard", False)
    with pytest.raises(ValueError, match="--ref"):
        args.func(args)
    with pytest.raises(ValueError, match="--poses"):
        cli.load_poses(str(tmp_path / "missing.json"))
    assert len(cli.load_poses("standard")) == 8


def test_download_fetches_every_file(monkeypatch):
    import huggingface_hub

    calls = []
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda repo, name: calls.append((repo, name)) or f"/cache/{name}")
    args = _parser().parse_args(["download"])
    assert args.func(args) == 0
    assert calls == [("yuanc3/Pose2ID", n) for n in
                     ("denoising_unet.pth", "reference_unet.pth", "pose_guider.pth", "IFR.pth", "transformer_20.pth")] + [
        ("stabilityai/sd-vae-ft-mse", "config.json"), ("stabilityai/sd-vae-ft-mse", "diffusion_pytorch_model.safetensors")]
