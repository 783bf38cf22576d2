"""app.py --features: the --data gallery of the Retrieve tab with a model's features (npz:FILE)."""

import numpy as np
import pytest
from test_data_market1501 import make_market
from test_features_npz import _arrays

from pose2id.data import Market1501


def test_features_need_data_and_a_readable_file(tmp_path, capsys):
    import app

    with pytest.raises(SystemExit):
        app.parse_args(["--features", f"npz:{tmp_path / 'f.npz'}"])
    assert "--data" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        app.parse_args(["--data", str(tmp_path), "--features", f"npz:{tmp_path / 'f.npz'}"])
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        app.parse_args(["--data", str(tmp_path), "--features", f"transreid:{tmp_path / 'none.pth'}"])
    assert "checkpoint" in capsys.readouterr().err
    assert app.parse_args([]).features == "handcrafted"


def test_the_data_gallery_uses_the_file_the_others_stay_handcrafted(tmp_path, monkeypatch):
    import app
    from pose2id.demo.retrieve import Galleries

    monkeypatch.setenv("POSE2ID_CACHE", str(tmp_path / "cache"))
    root = make_market(tmp_path / "Market", gen_for_distractors=False)
    arrays = _arrays(Market1501(root))
    np.savez(tmp_path / "f.npz", **arrays)
    args = app.parse_args(["--data", str(root), "--features", f"npz:{tmp_path / 'f.npz'}"])
    galleries = Galleries(data=args.data, data_extractor=args.features)
    key = [k for _, k in galleries.choices() if k != "synthped"][0]
    bench = galleries.benchmark(key)
    assert bench.extractor_name.startswith("npz:f.npz") and bench.qf.shape[1] == arrays["feats"].shape[1]
    assert galleries.extractor == "handcrafted"
