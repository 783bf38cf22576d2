"""The files the package reads at import (the demo's JavaScript and CSS) ship with it."""

import fnmatch
import tomllib
from pathlib import Path

import pose2id

PACKAGE = Path(pose2id.__file__).resolve().parent
ROOT = PACKAGE.parent


def shipped(relative):
    """Whether pyproject.toml's package data patterns for pose2id name ``relative`` (a path inside it)."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["pose2id"]
    return any(fnmatch.fnmatch(relative, pattern) for pattern in patterns)


def test_every_static_file_is_package_data():
    static = sorted(p.relative_to(PACKAGE).as_posix() for p in (PACKAGE / "demo" / "static").iterdir() if p.is_file())
    assert {"demo/static/editor.js", "demo/static/editor.css", "demo/static/tsne.js"} <= set(static)
    assert [name for name in static if not shipped(name)] == []


def test_the_check_tells_a_missing_file():
    assert not shipped("demo/static/editor.html") and not shipped("demo/other/editor.js")


def test_editor_reads_its_static_files():
    from pose2id.demo import editor

    assert ".p2-canvas" in editor.CSS_TEMPLATE and "pointerdown" in editor.JS_ON_LOAD
    assert "__NAMES__" not in editor.JS_ON_LOAD and '"nose"' in editor.JS_ON_LOAD.lower()
