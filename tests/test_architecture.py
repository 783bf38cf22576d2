"""The package's import graph: no circles, and the library never reaches into the demo or Gradio.

Every import statement counts, module-level or inside a function (a lazy import that closes a
circle is still a circle: neither module can be read or tested without the other), and so does a
string constant that is exactly a module's dotted name ("pose2id.metrics"): the lazy export
tables and command lists that ``importlib.import_module`` reads. A submodule importing its parent
package is not counted (Python imports the parent first anyway).
"""

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "pose2id"


def module_names(root=PACKAGE):
    """{dotted module name: path} of every .py file of the package."""
    names = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


def imported_names(path, module, is_package, known=()):
    """Dotted names of everything ``path`` (module ``module``) imports, as (name, line); string
    constants equal to one of the ``known`` module names count as imports of it."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module if is_package else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in known:
            found.append((node.value, node.lineno))
        elif isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module
            found.append((prefix, node.lineno))
            # "from pkg import sub" imports the submodule pkg.sub when there is one
            found += [(f"{prefix}.{alias.name}", node.lineno) for alias in node.names]
    return found


def import_graph(root=PACKAGE):
    """{module: {imported pose2id module: first line}} and {module: {external top name: line}}."""
    names = module_names(root)
    graph, external = {}, {}
    for module, path in names.items():
        edges, outside = {}, {}
        for name, line in imported_names(path, module, path.name == "__init__.py", names):
            if name.split(".")[0] != root.name:
                outside.setdefault(name.split(".")[0], line)
                continue
            # the longest prefix that is a module of the package ("pose2id.poses.Pose" -> poses)
            while name not in names:
                name = name.rpartition(".")[0]
            if name != module and not module.startswith(name + "."):
                edges.setdefault(name, line)
        graph[module], external[module] = edges, outside
    return graph, external


def circles(graph):
    """The groups of modules that import each other, directly or round a circle (the strongly
    connected components of more than one module), each as a sorted tuple, sorted."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(tuple(sorted(group)))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def find_cycle(graph):
    """One import circle as a list of modules (first == last), or None."""
    state = {}

    def visit(node, stack):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt, stack)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node, [])
            if cycle:
                return cycle
    return None


def describe(graph, cycle):
    return " -> ".join(
        f"{a} (line {graph[a][b]})" for a, b in zip(cycle[:-1], cycle[1:])
    ) + f" -> {cycle[-1]}"


def test_the_checker_sees_a_circle_and_a_lazy_import(tmp_path):
    # The checks below are only worth something if they can fail: a made-up package with a
    # circle closed by an import inside a function, and a relative "from . import".
    pkg = tmp_path / "pose2id"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .sub import b\n")
    (pkg / "sub" / "__init__.py").write_text("from . import b\n")
    (pkg / "sub" / "b.py").write_text("def f():\n    from pose2id.a import g\n    import gradio\n")
    (pkg / "c.py").write_text('LAZY = {"f": "pose2id.sub.b", "g": "not a module"}\n"""Docs on pose2id.a."""\n')
    graph, external = import_graph(pkg)
    assert graph["pose2id.c"] == {"pose2id.sub.b": 1}  # a lazy export table; prose is not an import
    assert graph["pose2id.a"] == {"pose2id.sub": 1, "pose2id.sub.b": 1}
    assert graph["pose2id.sub"] == {"pose2id.sub.b": 1}
    assert graph["pose2id.sub.b"] == {"pose2id.a": 2}
    assert external["pose2id.sub.b"] == {"gradio": 3}
    assert find_cycle(graph) == ["pose2id.a", "pose2id.sub", "pose2id.sub.b", "pose2id.a"]
    assert circles(graph) == [("pose2id.a", "pose2id.sub", "pose2id.sub.b")]
    del graph["pose2id.sub.b"]["pose2id.a"]
    assert find_cycle(graph) is None and circles(graph) == []


# Circles that exist today, each with what closes it. Nothing else may appear, and these may not
# grow; when one is broken, its entry goes.
KNOWN_CIRCLES = {
}


def test_no_import_circles_in_the_package():
    graph, _ = import_graph()
    assert len(graph) > 20  # the walk found the package
    problems = []
    for group in circles(graph):
        if group not in KNOWN_CIRCLES:
            sub = {m: {t: line for t, line in graph[m].items() if t in group} for m in group}
            problems.append(describe(graph, find_cycle(sub)))
    assert not problems, "import circle(s): " + "; ".join(problems)


def test_the_library_never_imports_the_demo_or_gradio():
    # pose2id.demo is the app's views and wiring; everything under it may use the library, the
    # library (the rest of pose2id) must work without Gradio installed.
    graph, external = import_graph()
    library = [m for m in graph if m != "pose2id.demo" and not m.startswith("pose2id.demo.")]
    assert "pose2id.centralization" in library and "pose2id.demo.retrieve" in graph
    problems = [
        f"{m} imports {target} (line {line})"
        for m in library
        for target, line in graph[m].items()
        if target == "pose2id.demo" or target.startswith("pose2id.demo.")
    ]
    problems += [
        f"{m} imports {top} (line {line})"
        for m in library
        for top, line in external[m].items()
        if top == "gradio" or top.startswith("gradio_")
    ]
    assert not problems, "; ".join(problems)


def test_every_module_imports_on_its_own():
    # Each module imported first, with every pose2id module forgotten before it: an import that
    # only works once another module has been loaded (a hidden circle, a missing import) fails.
    # One interpreter for all (third-party modules stay loaded; only pose2id's are dropped).
    modules = [m for m in sorted(module_names()) if m != "pose2id.__main__"]  # __main__ runs the CLI
    script = (
        "import importlib, sys, traceback\n"
        f"failed = []\nfor name in {modules!r}:\n"
        "    for loaded in [m for m in sys.modules if m == 'pose2id' or m.startswith('pose2id.')]:\n"
        "        del sys.modules[loaded]\n"
        "    try:\n        importlib.import_module(name)\n"
        "    except Exception:\n        failed.append(name + ': ' + traceback.format_exc(limit=3))\n"
        "print('\\n'.join(failed))\nsys.exit(1 if failed else 0)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=PACKAGE.parent, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
