"""`dubgraph up` / `dub --address auto` / `down`, each its own process as a user runs them: the head and its warm
actors outlive `up`, a second `up` finds them, a dub reuses them (its manifest says so), `down` stops the head."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from graph.run.head import alive
from tests.fixtures.make_dialogue import write_transcript

pytestmark = pytest.mark.slow  # `dubgraph up`, a warm dub and `down`, each its own process

ROOT = Path(__file__).resolve().parents[2]
RAY_ENV = ("RAY_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")  # another cluster's, if set


def test_up_then_a_warm_dub_then_down(dialogue, tmp_path):
    ray_tmp = Path(tempfile.mkdtemp(prefix="dg", dir="/tmp"))  # short: Ray's socket paths have a length limit
    env = {k: v for k, v in os.environ.items() if k not in RAY_ENV} | {"RAY_TMPDIR": str(ray_tmp)}

    def dubgraph(*args):
        return subprocess.run([sys.executable, "-m", "graph.cli", *map(str, args)], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=900)

    try:
        up = dubgraph("up", "--num-cpus", "2")
        assert up.returncode == 0, up.stderr[-3000:]
        assert "dub with --address auto" in up.stdout and up.stdout.count("loaded, ready") == 4, up.stdout
        state = json.loads((ray_tmp / "ray" / f"dubgraph-{os.getuid()}" / "dubgraph-head.json").read_text())
        assert alive(state["pid"])  # the head outlives `up`

        again = dubgraph("up")
        assert again.returncode == 0 and again.stdout.count("already warm") == 4, again.stdout

        out = tmp_path / "out"
        run = dubgraph("-v", "dub", dialogue.path, "--to", "pt-br", "--out", out, "--address", "auto",
                       "--transcript", write_transcript(dialogue, tmp_path / "talk.srt", named=True),
                       "--source-language", "en", "--formats", "wav")
        assert run.returncode == 0, run.stderr[-3000:]
        startup = json.loads((out / "manifest.json").read_text())["startup"]
        assert sorted((a["role"], a["warm"]) for a in startup["actors"]) == [("synthesizer", True),
                                                                             ("translator", True)]
        assert "start-up timeline" in run.stderr and "synthesizer actor: warm" in run.stderr

        down = dubgraph("down")
        assert down.returncode == 0 and f"stopped the Ray head at {state['address']}" in down.stdout, down.stderr
        assert not alive(state["pid"])
        assert not (ray_tmp / "ray" / "ray_current_cluster").exists()  # a later ray.init() / `serve run` starts anew
        gone = dubgraph("down")
        assert gone.returncode == 0 and "no `dubgraph up` head is running" in gone.stdout
    finally:
        dubgraph("down")
        shutil.rmtree(ray_tmp, ignore_errors=True)
