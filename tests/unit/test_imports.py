"""`graph` and `actors` are generic names: they must be this project's, and cheap to import."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_packages_resolve_to_this_project_from_a_fresh_interpreter(tmp_path):
    code = (
        "import graph, actors, graph.cli.main, actors.models, sys; "
        "heavy = sorted(m for m in ('torch', 'ray', 'chatterbox', 'pyannote', 'faster_whisper', 'transformers') "
        "if m in sys.modules); import serve_app; "
        "served = sorted(m for m in ('torch', 'chatterbox', 'pyannote', 'faster_whisper', 'transformers') "
        "if m in sys.modules); "
        "print(graph.__file__); print(actors.__file__); print(serve_app.__file__); print(heavy); print(served)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    graph_file, actors_file, serve_file, heavy, served = out.stdout.splitlines()
    assert Path(graph_file) == ROOT / "graph" / "__init__.py"
    assert Path(actors_file) == ROOT / "actors" / "__init__.py"
    assert Path(serve_file) == ROOT / "serve_app.py"
    assert heavy == "[]", f"importing graph/actors pulled in model libraries: {heavy}"
    assert served == "[]", f"the HTTP ingress (serve_app) pulled in model libraries: {served}"
