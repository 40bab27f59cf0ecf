"""`serve run` SIGKILLed mid-job with everything it started (its Ray, the replicas), then started again: every
accepted job completes and no line that was finished is voiced again, counted by the synthesizer itself.

The app runs in its own `serve run` process tree and Ray (not the session's), configured by a Serve config like
the shipped one; its synthesizer (tests/serve/synth.py:LoggedSynthesizer) records each line in a file and a gate
file lets only two lines start before the kill, so the crash comes at a known point: two lines of the running job
finished and checkpointed, the third in flight, a second job queued.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
import yaml

from graph.run.local_ray import STARTUP_TIMEOUT
from tests.processes import kill_session
from tests.serve.conftest import _free_port, wait_for
from tests.serve.synth import GATE_ENV, LOG_ENV, logged, take

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 600.0
FINISHED_BEFORE_KILL = 2


def serve_config(tmp_path: Path, port: int) -> Path:
    """serve_config.yaml with the test synthesizer (one replica), one job and one line at a time, the job store in
    tmp."""
    config = yaml.safe_load((ROOT / "serve_config.yaml").read_text())
    config["http_options"]["port"] = port
    (app,) = config["applications"]
    app["args"].update(job_dir=str(tmp_path / "jobs"), max_running_jobs=1, synth_parallelism=1,
                       actors={"synthesizer": "tests.serve.synth:LoggedSynthesizer"})  # fmt: skip
    app["runtime_env"] = {"env_vars": {LOG_ENV: str(tmp_path / "synth.log"), GATE_ENV: str(tmp_path / "gate")}}
    synth = next(d for d in app["deployments"] if d["name"] == "Synthesizer")
    synth["num_replicas"] = 1  # one line at a time needs one: a second replica is a process to start, twice
    path = tmp_path / "serve_config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def start(client: httpx.Client, config: Path, log: Path) -> subprocess.Popen:
    """`serve run` started and ready. Started once more when Ray itself gave up starting (its raylet's fixed wait
    for the dashboard agent, missed on a very busy machine: graph/run/local_ray.py), as a user would."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    for attempt in (1, 2):
        before = log.stat().st_size if log.exists() else 0  # the log holds every start of the test: read this one's
        with open(log, "ab") as sink:
            proc = subprocess.Popen([str(Path(sys.executable).parent / "serve"), "run", "--address", "local",
                                     str(config)], cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT,
                                    start_new_session=True)  # fmt: skip
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if client.get("/readyz").status_code == 200:
                    return proc
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        kill_session(proc)
        if attempt == 2 or STARTUP_TIMEOUT not in log.read_bytes()[before:].decode(errors="replace"):
            break
    pytest.fail(f"serve run exited ({proc.poll()}) or did not get ready:\n{log.read_text()[-3000:]}")


def events(synth_log: Path) -> dict[str, int]:
    """How many lines reached the synthesizer ("enter") and came back from it ("done")."""
    counts = Counter(e["event"] for e in logged(synth_log))
    return {"enter": counts["enter"], "done": counts["done"]}


def line_files(job_dir: Path) -> int:
    return len(list((job_dir / "checkpoint").glob("line-*")))


@pytest.mark.slow
def test_sigkilled_serve_run_resumes_every_job_without_voicing_a_finished_line_again(dialogue, dialogue3, tmp_path):
    port = _free_port()
    config, log = serve_config(tmp_path, port), tmp_path / "serve.log"
    synth_log, gate = tmp_path / "synth.log", tmp_path / "gate"
    gate.write_text(str(FINISHED_BEFORE_KILL))
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120)
    proc = start(client, config, log)
    try:
        ids = []
        for path in (dialogue.path, dialogue3.path):
            with open(path, "rb") as f:
                response = client.post("/v1/dubs", files={"audio": (path.name, f)}, data={"targets": "pt-br"})
            assert response.status_code == 202, response.text
            ids.append(response.json()["id"])
        running = tmp_path / "jobs" / ids[0]
        deadline = time.monotonic() + START_TIMEOUT_S
        while not (events(synth_log) == {"enter": FINISHED_BEFORE_KILL + 1, "done": FINISHED_BEFORE_KILL}
                   and line_files(running) == FINISHED_BEFORE_KILL):  # fmt: skip
            assert time.monotonic() < deadline, (logged(synth_log), log.read_text()[-3000:])
            time.sleep(0.05)  # two lines finished and checkpointed, the third arrived and held at the gate
        before = [client.get(f"/v1/dubs/{job_id}").json()["status"] for job_id in ids]
    finally:
        kill_session(proc)
    finished = {take(e) for e in logged(synth_log) if e["event"] == "done"}
    in_flight = len([e for e in logged(synth_log) if e["event"] == "enter"]) - len(finished)
    gate.unlink()
    proc = start(client, config, log)
    try:
        after = [wait_for(client, job_id, timeout_s=START_TIMEOUT_S) for job_id in ids]
        manifests = [client.get(s["links"]["manifest"]).json() for s in after if s["status"] == "done"]
    finally:
        kill_session(proc)
        client.close()
    assert before == ["running", "queued"]
    assert [s["status"] for s in after] == ["done", "done"], after
    assert [s["runs"] for s in after] == [2, 1]
    voiced = Counter(take(e) for e in logged(synth_log) if e["event"] == "done")
    recomputed = [line for line in finished if voiced[line] > 1]
    assert len(finished) == FINISHED_BEFORE_KILL and in_flight == 1  # the crash came where it was meant to
    assert not recomputed, recomputed  # finished lines: never again
    lines = [(line["utterance_id"], line["text"]) for m in manifests for line in m["languages"]["pt-br"]["lines"]]
    assert max(voiced.values()) == 1 and {text for _, text, _ in voiced} >= {text for _, text in lines if text.strip()}
    # every take voiced once, and every line of both jobs voiced
    print(f"crash: 2 jobs accepted, 2 completed, {len(finished)} lines finished before the kill, {in_flight} in "
          f"flight, {len(recomputed)} recomputed, {sum(voiced.values())} voiced in all")
