"""A backfill SIGKILLed mid-run (its own embedded Ray with it) resumes: nothing finished is redone, nothing lost."""

import os
import subprocess
import sys
import time

import pytest

from graph.run.local_ray import GAVE_UP
from tests.processes import kill_session

from .helpers import ROOT, backfill, checkpoint_mtimes, output_mtimes, run_manifest

pytestmark = pytest.mark.slow  # a backfill process killed and run again

START_TIMEOUT_S = 300


def wait_for_done(out, proc, at_least: int, log) -> dict | None:
    """Poll the run manifest until ``at_least`` items are done (it is replaced atomically: always whole); None when
    the backfill exited because Ray itself gave up starting (graph/run/local_ray.py: a very busy machine)."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline and proc.poll() is None:
        if (out / "backfill.json").exists():
            items = run_manifest(out)["items"]
            if sum(item["state"] == "done" for item in items.values()) >= at_least:
                return items
        time.sleep(0.05)
    if proc.poll() is not None and GAVE_UP in log.read_text():
        return None
    pytest.fail(f"backfill exited ({proc.poll()}) or stalled before {at_least} done:\n{log.read_text()[-3000:]}")


def test_killed_backfill_resumes_without_redoing_finished_work(offline_stages, clip_dir, tmp_path):
    out = tmp_path / "out"
    log = tmp_path / "run1.log"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    cmd = [sys.executable, "-m", "graph.backfill", "--input", str(clip_dir), "--to", "pt-br", "--out", str(out),
           "--formats", "wav,srt", "--concurrency", "1", "--progress-every", "2"]
    for _ in range(2):  # started again, as its message says, when Ray gave up starting on the busy machine
        with open(log, "wb") as sink:
            proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT,
                                    start_new_session=True)
            try:
                items = wait_for_done(out, proc, 2, log)
            finally:
                kill_session(proc)
        if items is not None:
            break
    assert items is not None, log.read_text()[-3000:]

    at_kill = run_manifest(out)["items"]
    done = {key for key, item in at_kill.items() if item["state"] == "done"}
    assert 2 <= len(done) < 6, {k: v["state"] for k, v in at_kill.items()}
    finished_files = output_mtimes(out)
    checkpoints = checkpoint_mtimes(out)
    half_done = {key for key, item in at_kill.items() if item["state"] == "running"}
    half_done_with_work = {key for key in half_done if any(f".checkpoints/{key}/" in name for name in checkpoints)}

    summary = backfill([clip_dir], out, offline_stages)  # the command's settings, on this session's Ray

    assert (summary.succeeded, summary.failed, summary.skipped, summary.exit_code) == (6 - len(done), 0, len(done), 0)
    after = run_manifest(out)["items"]
    assert set(after) == set(at_kill) and all(item["state"] == "done" for item in after.values())
    for item in after.values():  # nothing lost: every output of every item is there
        assert all((out / path).is_file() for files in item["outputs"].values() for path in files.values())
    done_dirs = {at_kill[key]["out_dir"] for key in done}
    finished = {name: t for name, t in finished_files.items() if name.split("/")[0] in done_dirs}
    assert finished and {name: output_mtimes(out)[name] for name in finished} == finished  # not redone
    assert {name: checkpoint_mtimes(out).get(name) for name in checkpoints} == checkpoints  # no unit recomputed
    for key in half_done_with_work:
        assert after[key]["reused_units"] > 0 and after[key]["attempts"] == 2
