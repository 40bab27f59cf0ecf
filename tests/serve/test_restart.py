"""Restarting the app's ingress (its job runner) with a running and a queued job: both complete, no line is
synthesized twice, and the model replicas (the Serve run's models application) are the same before and after.
A restart of everything, models and Ray too, is tests/serve/test_crash.py."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest
import ray

from tests.serve.conftest import APP, MODELS_APP, TEST_SYNTH, deploy, models_app, replicas, submit, wait_for
from tests.serve.synth import control

pytestmark = pytest.mark.slow  # a Serve app restarted mid-run


def _models() -> set[str]:
    return replicas(MODELS_APP, "Transcriber", "Diarizer", "Translator", "Synthesizer", "Separator")


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

        models = _models()
        stopping = threading.Thread(target=serve.delete, args=(APP,))
        stopping.start()
        while replicas(APP, "DubIngress"):
            time.sleep(0.1)
        ray.get(ctl.refuse_waiting.remote())  # lines held at the gate belonged to the stopped ingress
        stopping.join()
        ray.get(ctl.configure.remote())

        client = deploy(serve_port, **args)
        assert _models() == models and len(models) >= 5, models  # 2 synthesizers, the separator when started
        # by a job: the same processes, none restarted
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


def test_an_ingress_checks_that_its_models_app_runs_its_profile(serve_port):
    import asyncio

    from actors.serving import profile_with
    from graph.errors import DubError
    from serve_app import _check_models

    app = models_app({"synthesizer": TEST_SYNTH})
    asyncio.run(_check_models(app, profile_with("offline", {"synthesizer": TEST_SYNTH})))  # the same: no error
    with pytest.raises(DubError, match="not the offline profile's models .*give both applications the same"):
        asyncio.run(_check_models(app, profile_with("offline")))  # its synthesizer is another class
    with pytest.raises(DubError, match="models_app 'nowhere': no model application of that name runs here"):
        asyncio.run(_check_models("nowhere", profile_with("offline")))
