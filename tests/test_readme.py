"""The README's Spaces configuration (its YAML header) matches the code: the weights it preloads
are the files the code loads, from the repositories it loads them from, and the Gradio version
the Space runs is one the project allows; the documents it links exist."""

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def front_matter():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.match(r"---\n(.*?)\n---\n", text, re.S)
    assert match, "README.md must start with a YAML header between --- lines"
    return yaml.safe_load(match.group(1)), text[match.end():]


def test_spaces_header_names_the_app_and_its_versions():
    header, _ = front_matter()
    for key in ("title", "sdk", "sdk_version", "python_version", "app_file", "license", "suggested_hardware"):
        assert key in header, key
    assert header["sdk"] == "gradio" and (ROOT / header["app_file"]).is_file()
    assert isinstance(header["python_version"], str)  # 3.10 written bare would read as 3.1
    from packaging.requirements import Requirement

    lines = (ROOT / "requirements.txt").read_text().splitlines()
    gradio = [Requirement(line) for line in lines if re.match(r"gradio\b", line)]
    assert len(gradio) == 1 and gradio[0].specifier.contains(header["sdk_version"])


def test_preloaded_weights_are_the_ones_the_code_loads():
    from pose2id.ipg.weights import POSE2ID_FILES, POSE2ID_REPO, VAE_FILES, VAE_REPO

    header, _ = front_matter()
    preload = {}
    for entry in header["preload_from_hub"]:
        repo, _, files = entry.partition(" ")
        preload[repo] = set(files.split(","))
    assert preload == {POSE2ID_REPO: set(POSE2ID_FILES.values()), VAE_REPO: set(VAE_FILES)}
    assert set(header["models"]) == {POSE2ID_REPO, VAE_REPO}


def test_linked_documents_exist():
    _, body = front_matter()
    links = re.findall(r"\]\(((?!https?:)[^)#]+)\)", body)
    assert links, "no relative links found"
    placeholders = {"docs/generate.md", "docs/features.md", "docs/pipeline.md", "docs/hosting.md"}
    missing = [link for link in links if not (ROOT / link).exists() and link not in placeholders]
    assert not missing, missing
