"""Restarting the whole app with a running and a queued job: both complete, and no line is synthesized twice."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest
import ray

from tests.serve.conftest import APP, deploy, submit, wait_for
from tests.serve.synth import control

pytestmark = pytest.mark.slow  # a Serve app restarted mid-run


def _ingress_alive() -> bool:
    return any("#DubIngress#" in a["name"] for a in ray.util.list_named_actors(all_namespaces=True))


def test_restart_resumes_running_and_queued_jobs(serve_port, dialogue, dialogue3, tmp_path):
    from ray import serve

    args = {"job_dir": str(tmp_path / "jobs"), "max_running_jobs": 1, "max_queued_jobs": 1, "retry_after_s": 9,
            "synth_parallelism": 1}  # one line at a time: the gate catches the job mid-way
    ctl = control()
    ray.get(ctl.configure.remote(delay_s=0.3))
    before = len(ray.get(ctl.state.remote())["records"])
    client = deploy(serve_port, **args)
    try:
        running, queued = submit(client, dialogue.path), submit(client, dialogue3.path)
        audio = {"audio": ("d.wav", dialogue.path.read_bytes())}
        full = client.post("/v1/dubs", files=audio, data={"targets": "pt-br"})
        assert full.status_code == 503 and full.headers["Retry-After"] == "9", full.text
        assert full.json()["error"]["type"] == "JobQueueFull"

        while len(ray.get(ctl.state.remote())["records"]) < before + 2:  # two lines of the running job are done
            time.sleep(0.05)
        ray.get(ctl.configure.remote(delay_s=0.3, paused=True))  # hold further lines at the gate
        while any(ray.get(ctl.state.remote())["inside"].values()):
            time.sleep(0.05)
        synthesized = len(ray.get(ctl.state.remote())["records"]) - before
        while len(list((tmp_path / "jobs" / running / "checkpoint").glob("line-*.npz"))) < synthesized:
            time.sleep(0.05)  # every line that came back is checkpointed before the restart
        assert client.get(f"/v1/dubs/{running}").json()["status"] == "running"
        assert client.get(f"/v1/dubs/{queued}").json()["status"] == "queued"

        stopping = threading.Thread(target=serve.delete, args=(APP,))
        stopping.start()
        while _ingress_alive():
            time.sleep(0.1)
        ray.get(ctl.refuse_waiting.remote())  # lines held at the gate belonged to the stopped ingress
        stopping.join()
        ray.get(ctl.configure.remote())

        client = deploy(serve_port, **args)
        resumed, fresh = wait_for(client, running), wait_for(client, queued)
        lines = [line for status in (resumed, fresh) if status["status"] == "done"
                 for line in client.get(status["links"]["manifest"]).json()["languages"]["pt-br"]["lines"]]  # fmt: skip
    finally:
        ray.get(ctl.configure.remote())
        serve.delete(APP)
    assert resumed["status"] == fresh["status"] == "done", (resumed, fresh)
    assert resumed["runs"] == 2 and fresh["runs"] == 1
    messages = [event["message"] for event in resumed["log"]]
    assert any("re-queued" in m for m in messages) and any("reused" in m for m in messages), messages
    synthesized = Counter(ray.get(ctl.state.remote())["records"][before:])
    assert max(synthesized.values()) == 1, synthesized.most_common(3)  # no take (text, seed, pace) synthesized twice
    voiced = {(text, seed) for text, seed, _ in synthesized}  # a line voiced again at another pace counts once
    assert len(voiced) == len([line for line in lines if line["text"].strip()])  # and no line missing
    assert not any("synthesis_failed" in line["flags"] for line in lines)
