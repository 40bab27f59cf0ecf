"""The job store and runner without Serve: the pipeline's in-process stand-ins (tests/run/test_pipeline.py)."""

from __future__ import annotations

import asyncio
import json
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from actors.models import Profile
from graph.errors import EditConflict
from graph.jobs.runner import JobQueueFull, JobRunner, Limits
from graph.jobs.store import ID_PATTERN, JobStore
from graph.options import DubOptions
from graph.run.stages import LocalStage
from tests.run.stand_ins import SR
from tests.run.test_pipeline import LINES, ToneVoice, recording, stages  # noqa: F401 (recording: fixture)

PROFILE = Profile("tone", "in-process stand-ins", (), sources=("en",), targets=("pt-br", "es"))
OPTIONS = DubOptions(targets=("pt-br",), profile="tone")


class GatedVoice(ToneVoice):
    """Lets ``open_lines`` lines through, then holds every further line until ``gate`` is set."""

    def __init__(self, open_lines: int):
        super().__init__()
        self.open_lines = open_lines
        self.admitted = 0
        self.finished = 0
        self.gate = threading.Event()

    def synthesize(self, *args):
        with self.lock:
            self.admitted += 1
            held = self.admitted > self.open_lines
        if held:
            self.gate.wait(30)
        clip = super().synthesize(*args)
        with self.lock:
            self.finished += 1
        return clip


def copier(source: Path):
    return lambda job_dir: Path(shutil.copy(source, job_dir / "input.wav"))


async def settled(runner: JobRunner, job_id: str, timeout_s: float = 30) -> str:
    for _ in range(int(timeout_s / 0.02)):
        status = runner.store.get(job_id).status
        if status in ("done", "failed"):
            return status
        await asyncio.sleep(0.02)
    raise TimeoutError(job_id)


def test_a_job_runs_to_done_and_keeps_its_artifacts(recording, tmp_path):
    async def main():
        runner = JobRunner(JobStore(tmp_path), stages(ToneVoice()), PROFILE)
        await runner.start()
        record = await runner.submit(OPTIONS, copier(recording))
        assert ID_PATTERN.match(record.id) and record.status == "queued"
        assert (tmp_path / record.id / "input.wav").is_file()  # saved before the job was accepted
        assert await settled(runner, record.id) == "done"
        await runner.close()
        return runner, record.id

    runner, job_id = asyncio.run(main())
    assert {p.name for p in (tmp_path / job_id / "out").iterdir()} >= {"manifest.json", "pt-br.wav", "pt-br.srt"}
    status = runner.status(job_id)
    assert status["status"] == "done" and status["runs"] == 1 and status["targets"] == ["pt-br"]
    assert runner.store.get("../" + job_id) is None and runner.status("x" * 22) is None
    listed = {key: status[key] for key in ("id", "status", "created_s", "updated_s", "targets")}
    assert runner.recent(5) == [listed]
    # the review page's copy of the original: as long as the dub, so the two play in step
    out = tmp_path / job_id / "out"
    original, original_sr = sf.read(out / "original.flac", dtype="float32")
    dub, dub_sr = sf.read(out / "pt-br.wav", dtype="float32")
    assert original_sr == 16_000 and len(original) / original_sr == pytest.approx(len(dub) / dub_sr, abs=1e-3)


def test_a_done_job_keeps_what_editing_its_lines_needs_across_a_restart(recording, tmp_path):
    """Input, checkpoint and line state stay beside the artifacts (until the job is deleted or expires)."""
    store = JobStore(tmp_path)

    async def main():
        runner = JobRunner(store, stages(ToneVoice()), PROFILE)
        await runner.start()
        record = await runner.submit(OPTIONS, copier(recording))
        assert await settled(runner, record.id) == "done"
        await runner.close()
        again = JobRunner(store, stages(ToneVoice()), PROFILE)
        await again.start()
        await again.close()
        return record

    record = asyncio.run(main())
    kept = {p.name for p in store.job_dir(record.id).iterdir()}
    assert {"out", "checkpoint", "lines.npz", record.input_name} <= kept
    assert store.get(record.id).status == "done"
    assert any(store.checkpoint_dir(record.id).rglob("*")) and (store.out_dir(record.id) / "pt-br.wav").is_file()


def test_a_full_queue_refuses_with_retry_after(recording, tmp_path):
    async def main():
        runner = JobRunner(JobStore(tmp_path), stages(ToneVoice()), PROFILE, Limits(max_queued=1, retry_after_s=7))
        await runner.submit(OPTIONS, copier(recording))  # not started: it stays queued
        with pytest.raises(JobQueueFull) as refused:
            await runner.submit(OPTIONS, copier(recording))
        assert refused.value.http_status == 503 and refused.value.retry_after_s == 7
        assert len([p for p in tmp_path.iterdir() if p.is_dir()]) == 1  # the refused job left nothing behind

    asyncio.run(main())


def test_delete_cancels_a_running_job_and_removes_its_files(recording, tmp_path):
    voice = GatedVoice(open_lines=1)

    async def main():
        runner = JobRunner(JobStore(tmp_path), stages(voice), PROFILE)
        await runner.start()
        record = await runner.submit(OPTIONS, copier(recording))
        while voice.admitted < 2:
            await asyncio.sleep(0.02)
        assert runner.store.get(record.id).status == "running"
        deleted = await runner.delete(record.id), await runner.delete(record.id)
        voice.gate.set()
        await runner.close()
        assert deleted == (True, False)
        return runner, record.id

    runner, job_id = asyncio.run(main())
    assert runner.store.get(job_id) is None and not (tmp_path / job_id).exists()


def test_restart_resumes_running_and_queued_jobs_without_redoing_finished_lines(recording, tmp_path):
    first = GatedVoice(open_lines=2)
    again = ToneVoice()

    async def before_restart():
        runner = JobRunner(JobStore(tmp_path), stages(first), PROFILE, Limits(max_running=1))
        await runner.start()
        running = await runner.submit(OPTIONS, copier(recording))
        queued = await runner.submit(OPTIONS, copier(recording))
        lines_saved = runner.store.checkpoint_dir(running.id)
        # two lines finished and checkpointed (a line still being saved at shutdown is rightly redone), the third held
        while first.admitted < 3 or len(list(lines_saved.glob("line-*.npz"))) < 2:
            await asyncio.sleep(0.02)
        await runner.close()
        runner.store.close()
        finished = first.finished
        first.gate.set()  # the held lines now finish, but nobody is waiting for them any more
        return running.id, queued.id, finished

    async def after_restart(ids):
        runner = JobRunner(JobStore(tmp_path), stages(again), PROFILE, Limits(max_running=1))
        await runner.start()
        assert [await settled(runner, job_id) for job_id in ids] == ["done", "done"]
        return runner

    *ids, finished = asyncio.run(before_restart())
    assert finished == 2
    runner = asyncio.run(after_restart(ids))
    assert again.calls == 2 * len(LINES) - finished  # finished lines came from the checkpoint
    assert again.prepared == 2  # the queued job's two speakers; the resumed job's came from its checkpoint
    resumed, fresh = (runner.status(job_id) for job_id in ids)
    assert resumed["runs"] == 2 and fresh["runs"] == 1
    assert any("reused" in event["message"] for event in resumed["log"])


def test_failures_are_reported_with_a_reason_and_no_traceback(recording, tmp_path):
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(2 * SR, np.float32), SR)

    class Broken:
        def transcribe(self, wave, options):
            raise RuntimeError("model crashed\nTraceback (most recent call last): ...")

    async def main():
        plain = JobRunner(JobStore(tmp_path / "a"), stages(ToneVoice()), PROFILE)
        await plain.start()
        silent_job = await plain.submit(OPTIONS, copier(silent))
        broken_stages = stages(ToneVoice())
        broken_stages.asr = LocalStage(Broken())
        broken = JobRunner(JobStore(tmp_path / "b"), broken_stages, PROFILE)
        await broken.start()
        crashed_job = await broken.submit(OPTIONS, copier(recording))
        assert await settled(plain, silent_job.id) == await settled(broken, crashed_job.id) == "failed"
        await plain.close()
        await broken.close()
        return plain.status(silent_job.id)["error"], broken.status(crashed_job.id)["error"]

    silent_error, crashed_error = asyncio.run(main())
    assert silent_error["type"] == "BadAudio" and "silent" in silent_error["message"]
    assert crashed_error["type"] == "InternalError" and "Traceback" not in crashed_error["message"]


async def _until(predicate, timeout_s: float = 30) -> None:
    for _ in range(int(timeout_s / 0.02)):
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise TimeoutError("condition not met")


def test_a_render_stopped_by_a_restart_resumes_and_ends_done_at_the_next_revision(recording, tmp_path):
    """Edits are refused while a job renders; a runner closed mid-render leaves the job rendering, its last
    revision served; the next start renders it again to the end."""
    store = JobStore(tmp_path)
    voice = GatedVoice(open_lines=10_000)

    async def before():
        runner = JobRunner(store, stages(voice), PROFILE)
        await runner.start()
        record = await runner.submit(OPTIONS, copier(recording))
        assert await settled(runner, record.id) == "done"
        listed = await asyncio.to_thread(runner.editor.lines, record.id, None)
        line = listed["lines"][1]
        edited = await runner.editor.edit(record.id, line["id"], {"text": "Uma frase nova."}, line["revision"])
        assert edited["stale"] and edited["revision"] == line["revision"] + 1
        voice.open_lines = voice.admitted  # the render's line waits at the gate
        assert await runner.editor.request_render(record.id, 0)
        await _until(lambda: voice.admitted > voice.open_lines)
        assert runner.status(record.id)["status"] == "rendering"
        with pytest.raises(EditConflict, match="rendering"):
            await runner.editor.edit(record.id, line["id"], {"text": "Outra."}, None)
        with pytest.raises(EditConflict, match="rendering"):
            await runner.editor.request_render(record.id, None)
        await runner.close()
        voice.gate.set()
        return record.id, line["id"]

    async def after(job_id):
        runner = JobRunner(store, stages(ToneVoice()), PROFILE)
        await runner.start()
        assert await settled(runner, job_id) == "done"
        await runner.close()
        return runner.status(job_id)

    job_id, line_id = asyncio.run(before())
    assert store.get(job_id).status == "rendering"
    status = asyncio.run(after(job_id))
    assert status["revision"] == 1, status
    assert any("revision 1: lines regenerated: pt-br 1" in e["message"] for e in status["log"]), status["log"]
    manifest = json.loads((store.out_dir(job_id) / "manifest.json").read_text())
    placed = {line["utterance_id"]: line for line in manifest["languages"]["pt-br"]["lines"]}
    assert placed[line_id]["text"] == "Uma frase nova." and placed[line_id]["revision"] == 1
    assert not (store.out_dir(job_id) / ".render").exists()  # the staged files moved into place
