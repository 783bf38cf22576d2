"""Official-weight loading, missing-weight messages and the download/generate commands."""

import argparse
import json
import os
import struct
import zlib

import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from pose2id.ipg import IPGPipeline, MissingWeightsError, build, cli, tiny_pipeline
from pose2id.ipg import weights
from testkit import small_official_modules


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


@pytest.mark.slow
def test_from_official_loads_official_files_and_generates(tmp_path):
    """The whole loading path on an official-layout folder: the five files by their official names
    (one as .safetensors), the UNet config from a base-model folder (a small SD-style UNet with
    the official 320-wide first level, so the full-size PoseGuider fits), a VAE folder."""
    from diffusers import AutoencoderKL

    from pose2id.configs import load_config
    from pose2id.poses import load_standard_poses

    modules = small_official_modules(tmp_path)
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    for name, module in modules.items():
        state = {k: v.half() for k, v in module.state_dict().items()}  # half the disk; loaded as float32
        filename = weights.POSE2ID_FILES[name]
        if name == "reference_unet":
            save_file(state, ckpt / filename.replace(".pth", ".safetensors"))
        else:
            torch.save(state, ckpt / filename)
    AutoencoderKL.from_config(load_config("tiny")["vae"]).save_pretrained(tmp_path / "vae")

    with pytest.warns(UserWarning, match="CPU"):
        pipe = IPGPipeline.from_official(ckpt, base_model=tmp_path / "base", vae=tmp_path / "vae", device="cpu",
                                         allow_cpu=True)
    saved = modules["denoising_unet"].conv_in.weight.half().float()
    assert pipe.dtype == torch.float32 and torch.equal(pipe.denoising_unet.conv_in.weight, saved)
    assert torch.equal(pipe.ifr.proj_motion.bias, modules["ifr"].proj_motion.bias.half().float())
    pipe.progress = False
    images = pipe(Image.new("RGB", (64, 128), (90, 120, 200)), load_standard_poses()[:1], num_inference_steps=1,
                  output_type="np").images
    assert images.shape == (1, 512, 256, 3) and torch.isfinite(torch.from_numpy(images)).all()


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


def test_generate_out_of_gpu_memory_points_to_low_memory(tmp_path, monkeypatch, capsys):
    from pose2id import cli as main_cli
    from pose2id.ipg import IPGPipeline

    def out_of_memory(self, *args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(IPGPipeline, "__call__", out_of_memory)
    monkeypatch.setattr(cli, "load_pipeline", lambda args: tiny_pipeline(seed=0))
    Image.new("RGB", (64, 128)).save(tmp_path / "ref.jpg")
    argv = ["generate", "--ref", str(tmp_path / "ref.jpg"), "--out", str(tmp_path / "out")]
    assert main_cli.main(argv) == 1
    assert "out of GPU memory: run again with --low-memory" in capsys.readouterr().err
    monkeypatch.setattr(cli, "load_pipeline", lambda args: tiny_pipeline(seed=0).enable_low_memory())
    assert main_cli.main(argv + ["--low-memory"]) == 1
    assert "even with --low-memory" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("flag", [[], ["--low-memory"]])
def test_generate_low_memory_flag(tmp_path, monkeypatch, flag):
    monkeypatch.setattr(IPGPipeline, "from_official", classmethod(lambda cls, **kwargs: tiny_pipeline(seed=0)))
    args = _parser().parse_args(["generate", "--ref", "r.jpg", "--out", str(tmp_path), "--cpu", *flag])
    assert cli.load_pipeline(args).low_memory == bool(flag)


def _offline_without_weights(monkeypatch, tmp_path):
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))


def test_download_offline_says_why_and_what_it_would_fetch(tmp_path, monkeypatch, capsys):
    from pose2id import cli as main_cli

    _offline_without_weights(monkeypatch, tmp_path)
    assert main_cli.main(["download"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: downloading the weights needs internet access, and HF_HUB_OFFLINE=1 is set, so "
                          "nothing is downloaded (unset it, or set HF_HUB_OFFLINE=0).\n"
                          f"It would fetch 7 of 7 file(s) (several GB) into {tmp_path / 'empty-cache'}:\n")
    for name in ("denoising_unet.pth", "reference_unet.pth", "pose_guider.pth", "IFR.pth", "transformer_20.pth"):
        assert f"  - yuanc3/Pose2ID/{name}\n" in err
    assert "  - stabilityai/sd-vae-ft-mse/diffusion_pytorch_model.safetensors" in err


def test_download_without_a_connection(tmp_path, monkeypatch, capsys):
    from huggingface_hub import constants
    from huggingface_hub.errors import LocalEntryNotFoundError

    from pose2id import cli as main_cli

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))

    def no_connection(*args):
        raise LocalEntryNotFoundError("An error happened while trying to locate the file on the Hub")

    monkeypatch.setattr(weights, "download", no_connection)
    monkeypatch.setattr(weights, "fetch", lambda repo, name, local_files_only=None: None)
    assert main_cli.main(["download"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: downloading the weights needs internet access, and https://huggingface.co could "
                          "not be reached.\nIt would fetch 7 of 7 file(s)")
    assert "An error happened" not in err


def _huge_png(path, width, height):
    """A PNG whose header says width x height: enough for a size check, no pixels to decode."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", b"") + chunk(b"IEND", b""))
    return path


def test_generate_reports_every_input_problem_before_the_missing_weights(tmp_path, monkeypatch, capsys):
    from pose2id import cli as main_cli

    _offline_without_weights(monkeypatch, tmp_path)
    huge = _huge_png(tmp_path / "huge.png", 9000, 6000)
    empty_pose = tmp_path / "empty.json"
    empty_pose.write_text(json.dumps({"people": [{"pose_keypoints_2d": [0] * 54}]}))
    argv = ["generate", "--ref", str(huge), "--poses", str(empty_pose), "--steps", "0", "--out", str(tmp_path / "o"),
            "--cpu"]
    assert main_cli.main(argv) == 1
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "error: 3 problems with the inputs:"
    assert lines[1] == (f"  - --ref {huge}: 9000x6000 is 54 megapixels, more than 40 megapixels; crop it to the person "
                        "(a few hundred pixels is enough)")
    assert lines[2].startswith(f"  - --poses {empty_pose}: ") and "no visible joint" in lines[2]  # the poses' words
    assert lines[3:] == ["  - --steps must be a positive integer, got 0"]

    Image.new("RGB", (64, 128)).save(tmp_path / "ref.png")
    assert main_cli.main(["generate", "--ref", str(tmp_path / "ref.png"), "--out", str(tmp_path / "o"), "--cpu"]) == 1
    err = capsys.readouterr().err
    assert "note: running on the CPU" in err and "error: 7 weight file(s) missing" in err
    assert "UserWarning" not in err
    assert not (tmp_path / "o").exists()


def test_generate_pose_file_errors_name_the_file(tmp_path):
    malformed = tmp_path / "malformed.json"
    malformed.write_text('{"people": [{"pose_keypoints_2d": [1, 2 3]}]}')
    with pytest.raises(ValueError) as info:
        cli.load_poses(str(malformed))
    assert str(info.value) == f"--poses {malformed}: not valid JSON (Expecting ',' delimiter at line 1, column 41)"

    two = tmp_path / "two.json"
    from pose2id.poses import load_standard_poses

    two.write_text(json.dumps([load_standard_poses()[0].to_openpose(), {"people": []}]))
    with pytest.raises(ValueError) as info:
        cli.load_poses(str(two))
    assert str(info.value) == f"--poses {two}, pose 2 of 2: 'people' is empty, so there is no pose to read"

    two_joints = tmp_path / "two_joints.json"
    two_joints.write_text(json.dumps({"people": [{"pose_keypoints_2d": [30, 10, 1, 30, 30, 1] + [0] * 48}]}))
    with pytest.raises(ValueError) as info:
        cli.load_poses(str(two_joints))  # not enough of a body for the generator, as in the app
    assert str(info.value).startswith(f"--poses {two_joints}: the pose has only 2 visible joints")

    (tmp_path / "none.json").write_text("[]")
    with pytest.raises(ValueError, match="none.json: an empty list"):
        cli.load_poses(str(tmp_path / "none.json"))


def test_generate_without_cuda_suggests_cpu(tmp_path, monkeypatch, capsys):
    from pose2id import cli as main_cli

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    Image.new("RGB", (64, 128)).save(tmp_path / "ref.png")
    assert main_cli.main(["generate", "--ref", str(tmp_path / "ref.png"), "--out", str(tmp_path / "o")]) == 1
    assert capsys.readouterr().err == (
        "error: generate needs a CUDA GPU (two Stable-Diffusion-size UNets) and CUDA is not available on this "
        "machine; pass --cpu to run on the CPU anyway (several minutes per image)\n")


def test_generate_checks_the_seed_with_the_other_inputs(tmp_path, monkeypatch, capsys):
    from pose2id import cli as main_cli
    from pose2id.demo import generate as app_generate

    assert (cli.MAX_SEED, cli.RANDOM_SEED) == (app_generate.MAX_SEED, app_generate.RANDOM_SEED)  # as in the app
    _offline_without_weights(monkeypatch, tmp_path)
    Image.new("RGB", (64, 128)).save(tmp_path / "ref.png")
    base = ["generate", "--ref", str(tmp_path / "ref.png"), "--out", str(tmp_path / "o"), "--cpu"]
    usage = f"--seed must be a whole number from 0 to {2**31 - 1}, or -1 for a random seed"
    # too big for torch's generator: refused before the weights are looked for, with the other input problems
    assert main_cli.main(base + ["--seed", "18446744073709551616", "--steps", "0"]) == 1
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "error: 2 problems with the inputs:"
    assert f"  - {usage}, got 18446744073709551616" in lines
    assert "  - --steps must be a positive integer, got 0" in lines
    for seed in ("-2", str(2**31)):
        assert main_cli.main(base + ["--seed", seed]) == 1
        err = capsys.readouterr().err
        assert f"error: {usage}, got {seed}" in err and "weight file(s) missing" not in err
    # the largest seed and -1 (random) pass the input checks: only the missing weights stop them here
    for seed in (str(2**31 - 1), "-1"):
        assert main_cli.main(base + ["--seed", seed]) == 1
        err = capsys.readouterr().err
        assert "--seed" not in err and "error: 7 weight file(s) missing" in err


# ---------------------------------------------------------------------------- weight folders that do not exist
POSE2ID_NAMES = "denoising_unet.pth, reference_unet.pth, pose_guider.pth, IFR.pth and transformer_20.pth"
VAE_NAMES = "config.json and diffusion_pytorch_model.safetensors"


@pytest.mark.parametrize("ckpt_dir", ["missing", "weights"])
def test_from_official_with_a_missing_ckpt_dir_says_so(tmp_path, monkeypatch, ckpt_dir):
    """A ckpt_dir that is no folder is never taken for a Hub id, a bare word ('weights') included."""
    import huggingface_hub

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda *a, **k: pytest.fail("looked up on the Hub"))
    with pytest.warns(UserWarning, match="CPU"), pytest.raises(MissingWeightsError) as info:
        IPGPipeline.from_official(ckpt_dir=ckpt_dir, device="cpu", allow_cpu=True)
    assert str(info.value) == (f"Pose2ID weights folder {tmp_path / ckpt_dir} does not exist (it should hold "
                               f"{POSE2ID_NAMES})")
    assert isinstance(info.value, weights.NoSuchFolderError) and isinstance(info.value, FileNotFoundError)
    assert [name for name, _ in info.value.missing] == list(weights.POSE2ID_FILES.values())


def test_from_official_expands_the_home_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.warns(UserWarning, match="CPU"), pytest.raises(weights.NoSuchFolderError) as info:
        IPGPipeline.from_official(ckpt_dir="~/nope", device="cpu", allow_cpu=True)
    assert str(info.value).startswith(f"Pose2ID weights folder {tmp_path / 'nope'} does not exist")
    with pytest.warns(UserWarning, match="CPU"), pytest.raises(weights.NoSuchFolderError) as info:
        IPGPipeline.from_official(ckpt_dir=tmp_path, vae="~/vae", device="cpu", allow_cpu=True)
    assert str(info.value) == (f"VAE folder {tmp_path / 'vae'} does not exist (it should hold {VAE_NAMES}, or be a "
                               "Hugging Face Hub id such as stabilityai/sd-vae-ft-mse)")


@pytest.mark.parametrize("vae", ["/nonexistent/vae", "./vae", "local/vae/", "a/b/c", "my vae"])
def test_from_official_with_a_path_like_vae_that_is_no_folder(tmp_path, monkeypatch, vae):
    import huggingface_hub

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda *a, **k: pytest.fail("looked up on the Hub"))
    (tmp_path / "ckpt").mkdir()
    with pytest.warns(UserWarning, match="CPU"), pytest.raises(weights.NoSuchFolderError) as info:
        IPGPipeline.from_official(ckpt_dir=tmp_path / "ckpt", vae=vae, device="cpu", allow_cpu=True)
    assert str(info.value).startswith(f"VAE folder {os.path.abspath(vae)} does not exist (it should hold {VAE_NAMES}")


def test_a_hub_id_vae_still_goes_to_the_hub(tmp_path, monkeypatch):
    _offline_without_weights(monkeypatch, tmp_path)
    (tmp_path / "ckpt").mkdir()
    with pytest.warns(UserWarning, match="CPU"), pytest.raises(MissingWeightsError) as info:
        IPGPipeline.from_official(ckpt_dir=tmp_path / "ckpt", vae="someone/my-vae", device="cpu", allow_cpu=True)
    assert not isinstance(info.value, weights.NoSuchFolderError)
    assert "(looked in Hugging Face Hub 'someone/my-vae'" in str(info.value) and "7 weight file(s) missing" in str(info.value)


def test_a_path_like_base_model_that_is_no_folder(tmp_path):
    with pytest.raises(weights.NoSuchFolderError, match=r"^Stable Diffusion base model folder .*base does not exist "
                                                        r"\(it should hold unet/config.json, or be a Hugging Face Hub "
                                                        r"id such as stable-diffusion-v1-5/stable-diffusion-v1-5\)$"):
        weights.unet_config(str(tmp_path / "base"))


def test_generate_with_missing_weight_folders_says_so_with_the_inputs(tmp_path, monkeypatch, capsys):
    from pose2id import cli as main_cli

    _offline_without_weights(monkeypatch, tmp_path)
    Image.new("RGB", (64, 128)).save(tmp_path / "ref.png")
    base = ["generate", "--ref", str(tmp_path / "ref.png"), "--out", str(tmp_path / "o"), "--cpu"]
    assert main_cli.main(base + ["--ckpt-dir", "/nonexistent"]) == 1
    assert capsys.readouterr().err == f"error: --ckpt-dir /nonexistent: no such folder (it should hold {POSE2ID_NAMES})\n"
    assert main_cli.main(base + ["--ckpt-dir", "~/nope"]) == 1  # as typed, quoted so the shell leaves ~ alone
    assert capsys.readouterr().err.startswith("error: --ckpt-dir ~/nope: no such folder (it should hold")
    assert main_cli.main(base + ["--vae", "/nonexistent", "--steps", "0"]) == 1
    assert capsys.readouterr().err.splitlines() == [
        "error: 2 problems with the inputs:",
        "  - --steps must be a positive integer, got 0",
        (f"  - --vae /nonexistent: no such folder (it should hold {VAE_NAMES}, or be a Hugging Face Hub id such as "
         "stabilityai/sd-vae-ft-mse)")]
    (tmp_path / "file").write_text("not a folder")
    assert main_cli.main(base + ["--ckpt-dir", str(tmp_path / "file")]) == 1
    assert f"--ckpt-dir {tmp_path / 'file'}: not a folder (it should hold" in capsys.readouterr().err
    # a Hub id for --vae goes to the Hub: offline, the missing files are listed
    assert main_cli.main(base + ["--vae", "someone/my-vae"]) == 1
    err = capsys.readouterr().err
    assert "error: 7 weight file(s) missing" in err and "Hugging Face Hub 'someone/my-vae'" in err
    assert not (tmp_path / "o").exists()


def test_download_takes_hub_ids_not_folders(capsys):
    from pose2id import cli as main_cli

    assert main_cli.main(["download", "--vae", "/nonexistent"]) == 1
    assert capsys.readouterr().err == (
        "error: --vae /nonexistent: not a Hugging Face Hub id (such as stabilityai/sd-vae-ft-mse); download fetches "
        "from the Hub, and generate reads weights from a folder with --ckpt-dir and --vae\n")


def test_app_with_a_missing_weights_folder_says_so(monkeypatch):
    """`app.py --cpu --ckpt-dir /nonexistent/weights`: the Generate tab's message names the folder."""
    from pose2id.demo.generate import GenerateConfig, IPGUnavailable, load_pipeline

    monkeypatch.delenv("SPACE_ID", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.warns(UserWarning, match="CPU"), pytest.raises(IPGUnavailable) as info:
        load_pipeline(GenerateConfig(ckpt_dir="/nonexistent/weights", allow_cpu=True))
    assert str(info.value) == ("IPG weights are missing. Pose2ID weights folder /nonexistent/weights does not exist "
                               f"(it should hold {POSE2ID_NAMES})")
