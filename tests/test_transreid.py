"""TransReID against the official model's outputs on the public fixture (random small weights)."""

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from pose2id.reid import TransReID, TransReIDConfig, load_transreid, preprocess
from pose2id.reid.transreid import convert_official


@pytest.fixture(scope="module")
def fixture_dir(shared_dir):
    return shared_dir / "fixtures" / "transreid"


def _clone(d):
    # Fresh, aligned storage: safetensors' mmap'd tensors can change GEMM rounding at 1e-7.
    return {k: v.clone() for k, v in d.items()}


@pytest.fixture(scope="module")
def model(fixture_dir):
    return load_transreid(fixture_dir / "transreid.safetensors")


def test_config_inferred_from_fixture(model):
    assert (model.config.embed_dim, model.config.depth, model.config.num_heads) == (32, 3, 4)
    assert model.config.grid == (21, 10) and model.config.out_dim == 160


def test_matches_official_outputs(model, fixture_dir):
    images = _clone(load_file(fixture_dir / "inputs.safetensors"))["images"]
    expected = load_file(fixture_dir / "expected.safetensors")
    with torch.no_grad():
        feat = model(images)
        tokens = model.forward_tokens(images)
    assert feat.shape == (3, 160)
    assert (tokens - expected["base_tokens"]).abs().max() <= 1e-4
    assert (feat[:, :32] - expected["global_feat"]).abs().max() <= 1e-4
    assert (feat - expected["feat"]).abs().max() <= 1e-4


def test_preprocess_reproduces_reference_input(fixture_dir):
    images = [Image.open(fixture_dir / f"image{i}_orig.png") for i in range(2)]
    x = preprocess(images)
    expected = load_file(fixture_dir / "inputs.safetensors")["images"][:2]
    assert x.shape == (2, 3, 256, 128) and x.dtype == torch.float32
    assert torch.equal(x, expected)


def test_preprocess_rejects_non_images():
    with pytest.raises(ValueError, match="images"):
        preprocess([])
    with pytest.raises(ValueError, match=r"images\[0\]"):
        preprocess([torch.zeros(3, 4, 4)])


def test_pth_with_module_prefix_loads(tmp_path, fixture_dir, model):
    sd = load_file(fixture_dir / "transreid.safetensors")
    path = tmp_path / "market.pth"
    torch.save({"module." + k: v for k, v in sd.items()}, path)
    loaded = load_transreid(path)
    x = torch.randn(1, 3, 256, 128)
    with torch.no_grad():
        assert torch.allclose(loaded(x), model(x))


def test_convert_keeps_every_used_key_strictly(fixture_dir):
    sd = load_file(fixture_dir / "transreid.safetensors")
    config = TransReIDConfig(embed_dim=32, depth=3, num_heads=4)
    converted = convert_official(sd, config)
    TransReID(config).load_state_dict(converted, strict=True)
    dropped = set(sd) - set(converted)
    assert all(k.startswith(("classifier", "bottleneck", "base.norm.", "base.fc.", "base.blocks.2.")) for k in dropped)


def test_wrong_model_is_a_clear_error(tmp_path, fixture_dir):
    sd = load_file(fixture_dir / "transreid.safetensors")
    broken = {k: v for k, v in sd.items() if not k.startswith("b2.")}
    broken["head.weight"] = torch.zeros(3, 3)
    path = tmp_path / "other.safetensors"
    save_file(broken, path)
    with pytest.raises(ValueError, match=r"missing .*b2\.0.*unexpected .*head\.weight"):
        load_transreid(path)
    save_file({"conv.weight": torch.zeros(2, 2)}, tmp_path / "cnn.safetensors")
    with pytest.raises(ValueError, match="not a TransReID checkpoint"):
        load_transreid(tmp_path / "cnn.safetensors")


def test_full_size_forward_shape():
    model = TransReID(TransReIDConfig(depth=2)).eval()
    with torch.no_grad():
        out = model(torch.zeros(1, 3, 256, 128))
    assert out.shape == (1, 3840)
