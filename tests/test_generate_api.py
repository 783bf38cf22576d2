"""/generate as a gradio_client user sees it: short generator values, refusals raised as
errors that name the input, and outputs that stay downloadable call after call."""

import zipfile

import pytest
from app_server import launched

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    from gradio_client import Client

    root = tmp_path_factory.mktemp("generate-api")
    with launched(root) as url:
        yield Client(url, verbose=False, httpx_kwargs={"timeout": 600}, download_files=str(root / "downloads"))


def _oracle(client, **overrides):
    from pose2id.demo.generate import SYNTHPED_EXAMPLES

    args = dict(photo=None, pose_names=["1", "3"], use_editor=False, generator="oracle",
                synth_pid=SYNTHPED_EXAMPLES[0], steps=2, guidance=3.5, seed=7, randomize=False, eta=2.0)
    args.update(overrides)
    return client.predict(**args, api_name="/generate")


def test_the_oracle_by_its_short_value_returns_images_and_a_zip(client):
    preview, gallery, archive, message, seed = _oracle(client)
    assert "p2-ok" in message and seed == 7 and len(gallery) == 2
    with zipfile.ZipFile(archive) as opened:
        names = opened.namelist()
        assert opened.testzip() is None
    assert "settings.json" in names and sum(name.endswith("_generated.png") for name in names) == 2


@pytest.mark.parametrize("overrides, named", [
    ({"generator": "SynthPed oracle"}, "generator"),
    ({"generator": "IPG (Pose2ID model)"}, "generator"),
    ({"pose_names": []}, "no pose selected"),
    ({"seed": "seven"}, "seed"),
    ({"seed": 2**40}, "seed"),
    ({"steps": "many"}, "(?i)steps"),
    ({"guidance": "NaN"}, "(?i)guidance"),
    ({"eta": "lots"}, "(?i)eta"),
    ({"synth_pid": None}, "(?i)photo"),
    ({"synth_pid": 1}, "SynthPed pid"),
])
def test_a_users_mistake_raises_an_error_naming_it(client, overrides, named):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match=named):
        _oracle(client, **overrides)


def test_the_unknown_generator_error_lists_the_allowed_values(client):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError) as info:
        _oracle(client, generator="dall-e")
    assert "'ipg'" in str(info.value) and "'oracle'" in str(info.value) and "dall-e" in str(info.value)


def test_two_identical_calls_give_two_intact_downloads(client):
    first = _oracle(client)
    second = _oracle(client)
    for archive in (first[2], second[2]):
        with zipfile.ZipFile(archive) as opened:
            assert opened.testzip() is None
