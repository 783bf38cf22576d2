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


def _imported_distributions():
    """The distributions (lower-case names) of every third-party module pose2id and app.py import."""
    import ast
    import importlib.metadata
    import sys

    modules = set()
    for path in [*PACKAGE.rglob("*.py"), ROOT / "app.py"]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                modules |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.split(".")[0])
    modules -= set(sys.stdlib_module_names) | {"pose2id"}
    known = importlib.metadata.packages_distributions()
    return {name.lower() for module in modules for name in known.get(module, [module])}


def _names(requirements):
    from packaging.requirements import Requirement

    return {Requirement(line).name.lower().replace("_", "-") for line in requirements
            if line.strip() and not line.lstrip().startswith(("#", "-"))}


def test_every_imported_package_is_a_declared_dependency():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    library = _names(config["dependencies"])
    extras = set().union(*(_names(group) for group in config["optional-dependencies"].values()))
    imported = {name.replace("_", "-") for name in _imported_distributions()}
    assert {"torch", "gradio", "diffusers", "numpy"} <= imported  # the scan finds imports
    assert imported - library - extras == set()
    # the app's pinned set (requirements.txt) installs everything the library needs
    app = _names((ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines())
    assert library - app == set()
