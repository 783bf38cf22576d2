"""The app's API as a gradio_client user sees it, against a launched app."""

import zipfile

import pytest
from app_server import launched
from tiny_market import market_folder

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The app on a tiny --data gallery, launched as ``main`` launches it: (url, gallery folder)."""
    from pose2id.demo.retrieve import Galleries

    root = tmp_path_factory.mktemp("api")
    market = market_folder(root / "market")
    galleries = Galleries(data=str(market))
    with launched(root, ["--data", str(market)], data=str(market), galleries=galleries) as url:
        yield url, market, galleries


@pytest.fixture(scope="module")
def client(served):
    from gradio_client import Client

    return Client(served[0], verbose=False, httpx_kwargs={"timeout": 600})  # a busy machine answers late


def test_retrieve_returns_the_rankings_as_data_and_names_its_parameters(client):
    html, table, message, rankings = client.predict("data", 2, 3, 2, 1.5, False, 4, api_name="/retrieve")
    assert "p2-rankings" in html and [row[0] for row in table["data"]] == ["Base", "+NFC", "+IPG", "+NFC+IPG"]
    assert "k1 3" in message and "k2 2" in message and "eta 1.5" in message and "top-k 4" in message
    assert rankings["query"]["index"] == 2 and set(rankings["query"]) == {"index", "name", "pid", "camera"}
    assert list(rankings["methods"]) == ["Base", "+NFC", "+IPG", "+NFC+IPG"]
    for ranked in rankings["methods"].values():
        assert [item["rank"] for item in ranked] == [1, 2, 3, 4]
        assert all(set(item) == {"rank", "name", "pid", "distance", "correct"} for item in ranked)
        assert all(item["correct"] == (item["pid"] == rankings["query"]["pid"]) for item in ranked)
        assert [item["distance"] for item in ranked] == sorted(item["distance"] for item in ranked)


@pytest.mark.parametrize("args, named", [
    (("data", 0, "two", 2, 2.0, False, 4), "k1"),
    (("data", 0, 2, 2, "NaN", False, 4), "eta"),
    (("data", 0, 2, 2, "Infinity", False, 4), "eta"),
    (("data", 0, 2, 2, 2.0, "false", 4), "re-ranking"),
    (("data", 999, 2, 2, 2.0, False, 4), "query_index"),
    (("data", "first", 2, 2, 2.0, False, 4), "query_index"),
    (("data", "Infinity", 2, 2, 2.0, False, 4), "query_index"),
])
def test_bad_retrieve_input_raises_the_apps_own_message(client, args, named):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match=named):
        client.predict(*args, api_name="/retrieve")


@pytest.mark.parametrize("pid", ["abc", "Infinity"])
def test_a_synthped_pid_that_is_no_number_raises_the_apps_own_message(client, pid):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="SynthPed pid"):
        client.predict(None, ["1"], False, "", "oracle", pid, 2, 3.5, 1, False, 2.0, api_name="/generate")


@pytest.mark.parametrize("use_editor, randomize, named", [("false", False, "Include the editor pose"),
                                                          (False, "false", "Randomize seed")])
def test_generate_checkboxes_take_only_true_or_false(client, use_editor, randomize, named):
    from gradio_client.exceptions import AppError

    from pose2id.demo import editor

    pose = editor.to_value(editor.standard_pose("2"))  # a good editor pose: "false" taken as ticked would draw it
    with pytest.raises(AppError, match=named):
        client.predict(None, ["1"], use_editor, pose, "oracle", 41, 2, 3.5, 1, randomize, 2.0, api_name="/generate")


def test_no_api_value_holds_a_server_path(client, served):
    _, market, _ = served
    info = client.view_api(print_info=False, return_format="dict")
    assert str(market) not in str(info)
    _, _, message, rankings = client.predict("data", 0, 2, 2, 2.0, False, 3, api_name="/retrieve")
    assert str(market) not in message and str(market) not in str(rankings)


def test_files_of_an_uploaded_zip_are_not_served_from_the_apps_origin(served, tmp_path):
    import urllib.error
    import urllib.request
    import zipfile

    url, market, galleries = served
    evil = tmp_path / "market_with_page.zip"
    with zipfile.ZipFile(evil, "w") as archive:
        for file in sorted(market.rglob("*.jpg")):
            archive.write(file, file.relative_to(market.parent))
        archive.writestr("market/page.html", "<script>alert(1)</script>")
    key = galleries.add_zip(evil)
    page = next(galleries._extracted[key].rglob("page.html"))
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{url}gradio_api/file={page}", timeout=30)
    assert refused.value.code == 403


def test_upload_zip_opens_an_uploaded_gallery_or_says_why_not(client, tmp_path):
    from gradio_client import handle_file
    from tiny_market import market_zip

    good = market_zip(tmp_path / "my_cams.zip", pids=6)
    outputs = client.predict(handle_file(str(good)), api_name="/upload_zip")
    message = next(str(output) for output in outputs if "p2-status" in str(output))
    assert "p2-ok" in message and "my_cams.zip" in message
    choice = str(outputs[0])  # the gallery selector, the new gallery chosen by its key (no server path)
    assert ":my_cams.zip'" in choice and str(tmp_path) not in choice

    bad = tmp_path / "holiday.zip"
    with zipfile.ZipFile(bad, "w") as archive:
        archive.writestr("holiday.jpg", b"not an image")
    outputs = client.predict(handle_file(str(bad)), api_name="/upload_zip")
    message = next(str(output) for output in outputs if "p2-status" in str(output))
    assert "p2-error" in message and "holiday.zip" in message
