"""Faults injected into the job runner, without Serve: SQLite locked or failing, a full disk (a real tmpfs where
this machine lets a test mount one, and always ENOSPC injected at the write calls), expiry of finished jobs, and 64
jobs against the queue limit across a restart.

The pipeline runs on tests/run/test_pipeline.py's in-process stand-ins, whose synthesizer counts every line it
voices: "no finished line recomputed" is a count. Job states are read through a connection of the test's own,
never through the store under test.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sqlite3
import time
from collections import Counter
from pathlib import Path

import pytest
import soundfile as sf
from starlette.datastructures import UploadFile

from graph.errors import InsufficientStorage
from graph.jobs.http import input_saver
from graph.jobs.runner import JobQueueFull, JobRunner, Limits
from graph.jobs.store import JobStore
from graph.options import DubOptions
from tests.run.test_pipeline import LINES, OUT_SR, ToneVoice, recording, stages  # noqa: F401 (recording: fixture)
from tests.serve.disk import InjectedFullDisk, MountRefused, Tmpfs
from tests.serve.test_jobs import OPTIONS, PROFILE, GatedVoice, copier

FAST = {"backoff_s": 0.05, "max_backoff_s": 0.2}  # paused jobs are tried again within a fraction of a second
SETTLE_S = 120.0


async def until(predicate, timeout_s: float = SETTLE_S) -> None:
    """Wait on the event loop until ``predicate()`` holds, or fail."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met in {timeout_s} s")
        await asyncio.sleep(0.02)


def statuses(root: Path, ids: list[str]) -> list[str]:
    with sqlite3.connect(root / "jobs.sqlite3") as db:
        found = dict(db.execute(f"SELECT id, status FROM jobs WHERE id IN ({','.join('?' * len(ids))})", ids))
    return [found.get(job_id, "missing") for job_id in ids]


async def all_settled(root: Path, ids: list[str]) -> list[str]:
    await until(lambda: all(s in ("done", "failed") for s in statuses(root, ids)))
    return statuses(root, ids)


def runs(root: Path, ids: list[str]) -> list[int]:
    with sqlite3.connect(root / "jobs.sqlite3") as db:
        return [db.execute("SELECT runs FROM jobs WHERE id = ?", (job_id,)).fetchone()[0] for job_id in ids]


class FlakyDb:
    """The store's SQLite connection, raising what a locked or broken database raises for the calls a rule picks."""

    def __init__(self, db: sqlite3.Connection):
        self.db = db
        self.rules: list[list] = []
        self.raised: Counter[str] = Counter()

    def fail(self, name: str, when, times: int, message: str = "database is locked") -> None:
        self.rules.append([name, when, times, message])

    def execute(self, sql: str, params=()):
        for rule in self.rules:
            name, when, left, message = rule
            if left and when(sql, params):
                rule[2] -= 1
                self.raised[name] += 1
                raise sqlite3.OperationalError(message)
        return self.db.execute(sql, params)

    def __getattr__(self, name: str):
        return getattr(self.db, name)


def test_a_locked_database_pauses_jobs_and_every_worker_lives_on(recording, tmp_path, caplog):
    """Another connection holds SQLite's write lock while the runner starts: every start of a job fails with
    "database is locked" (after the store's busy timeout), the workers pause the jobs and go on; once the lock is
    gone, every job runs once and completes."""
    caplog.set_level(logging.WARNING, logger="graph.jobs.runner")
    voice = ToneVoice()

    def paused() -> int:
        return sum("paused: the job store is unavailable" in r.getMessage() for r in caplog.records)

    async def main():
        runner = JobRunner(JobStore(tmp_path), stages(voice), PROFILE, Limits(max_running=2, **FAST))
        ids = [(await runner.submit(OPTIONS, copier(recording))).id for _ in range(3)]
        other = sqlite3.connect(tmp_path / "jobs.sqlite3", isolation_level=None)
        other.execute("BEGIN EXCLUSIVE")  # as another process would
        await runner.start()
        await until(lambda: paused() >= 2)  # both workers met the lock
        other.execute("ROLLBACK")
        other.close()
        settled = await all_settled(tmp_path, ids)
        alive = sum(not worker.done() for worker in runner._workers)
        await runner.close()
        return ids, settled, alive

    ids, settled, alive = asyncio.run(main())
    assert settled == ["done"] * 3 and alive == 2
    assert runs(tmp_path, ids) == [1, 1, 1]  # no start was counted while the store refused it
    assert voice.calls == 3 * len(LINES)


def test_store_errors_at_every_step_of_a_job_lose_nothing_and_redo_no_line(recording, tmp_path):
    """The store fails when a job is started, when it is recorded done (twice: the job runs again, entirely from
    its checkpoint) and at every log event (a line's "retrying" warning included): both jobs complete, every line
    is voiced once (plus the one retry of the line that failed), and the pipeline never sees a store error."""
    store = JobStore(tmp_path)
    flaky = store._db = FlakyDb(store._db)
    voice = ToneVoice(fail_texts=("How are you",))  # fails once: its retry is logged while the store is failing
    flaky.fail("start", lambda sql, p: sql.startswith("UPDATE jobs SET status") and p[:1] == ("running",), 1,
               "disk I/O error")  # fmt: skip
    flaky.fail("done", lambda sql, p: sql.startswith("UPDATE jobs SET status") and p[:1] == ("done",), 2)
    flaky.fail("event", lambda sql, p: sql.startswith("INSERT INTO events"), 10**6)

    async def main():
        runner = JobRunner(store, stages(voice), PROFILE, Limits(max_running=1, **FAST))
        await runner.start()
        ids = [(await runner.submit(OPTIONS, copier(recording))).id for _ in range(2)]
        settled = await all_settled(tmp_path, ids)
        alive = sum(not worker.done() for worker in runner._workers)
        await runner.close()
        return runner, ids, settled, alive

    runner, ids, settled, alive = asyncio.run(main())
    assert settled == ["done", "done"] and alive == 1
    assert flaky.raised["start"] == 1 and flaky.raised["done"] == 2 and flaky.raised["event"] >= 1
    assert voice.calls == 2 * len(LINES) + 1  # each line once, the failing one twice; the reruns hit the checkpoint
    assert voice.prepared == 4  # two speakers per job, never again
    assert sum(runs(tmp_path, ids)) == 2 + 2  # the two reruns after "done" could not be recorded
    assert runner._warnings.dropped >= 1  # the events the store refused were dropped, not raised into the job


@pytest.fixture(params=["tmpfs", "injected"])
def disk(request, tmp_path, monkeypatch):
    if request.param == "injected":
        made = InjectedFullDisk(tmp_path / "disk", monkeypatch)
    else:
        try:
            made = Tmpfs(tmp_path / "disk")
        except MountRefused as exc:
            pytest.skip(f"{exc}; the injected full disk covers the same path")
    yield made
    made.close()


def test_a_full_disk_refuses_uploads_and_pauses_the_job_until_space_returns(disk, recording, caplog):
    """The disk fills up while a job has one line checkpointed: a new upload is refused (InsufficientStorage,
    507 over HTTP), the job pauses (nothing half-written left, no artifact, not done) and waits; once space is
    freed it resumes and completes whole, without voicing its checkpointed line again."""
    caplog.set_level(logging.WARNING, logger="graph.jobs.runner")
    voice = GatedVoice(open_lines=1)  # the first line goes through, the others wait at the gate
    root = disk.root

    async def main():
        runner = JobRunner(JobStore(root), stages(voice), PROFILE, Limits(max_running=1, min_free_bytes=1, **FAST))
        await runner.start()
        job_id = (await runner.submit(OPTIONS, copier(recording))).id
        checkpoint = runner.store.checkpoint_dir(job_id)
        await until(lambda: voice.admitted == len(LINES) and len(list(checkpoint.glob("line-*"))) == 1)
        disk.fill()
        with pytest.raises(InsufficientStorage) as refused:
            runner.check_space()  # what POST /v1/dubs asks first: no room for anything
        with open(recording, "rb") as data, pytest.raises(InsufficientStorage, match="the upload could not be stored"):
            saver = input_saver({}, UploadFile(data, filename="talk.wav"), [])  # how POST /v1/dubs saves an upload
            await runner.submit(OPTIONS, saver)  # past that check, the write itself fails
        voice.gate.set()
        await until(lambda: any(f"[{job_id}] paused: the server's disk is full" in r.getMessage()
                                for r in caplog.records) and voice.finished == len(LINES))  # fmt: skip
        await until(lambda: not list(root.rglob("*.part")))  # every failed write removed its temporary file
        paused = {"status": statuses(root, [job_id])[0], "artifacts": sorted(p.name for p in runner.store.out_dir(job_id).iterdir()),
                  "jobs": len([p for p in root.iterdir() if p.is_dir()]), "calls": voice.calls,
                  "lines_saved": len(list(checkpoint.glob("line-*")))}  # fmt: skip
        disk.free()
        settled = await all_settled(root, [job_id])
        await runner.close()
        return job_id, refused.value, paused, settled

    job_id, refused, paused, settled = asyncio.run(main())
    assert refused.http_status == 507 and "disk is nearly full" in str(refused)
    assert paused["status"] != "done" and not paused["artifacts"] and paused["jobs"] == 1
    assert paused["lines_saved"] == 1 and paused["calls"] == len(LINES)
    assert settled == ["done"]
    assert voice.calls == len(LINES) + (len(LINES) - 1)  # the unsaved lines again, the saved one never
    assert voice.prepared == 2  # conditionals came from the checkpoint
    out = root / job_id / "out"
    manifest = json.loads((out / "manifest.json").read_text())
    assert len(manifest["languages"]["pt-br"]["lines"]) == len(LINES)
    track, sr = sf.read(out / "pt-br.wav", dtype="float32")
    assert sr == OUT_SR and len(track) == 10 * OUT_SR


def test_finished_jobs_expire_and_active_ones_never_do(recording, tmp_path):
    store = JobStore(tmp_path)
    ids = {}
    for status in ("done", "failed", "queued", "running"):
        job_id = store.new_id()
        store.job_dir(job_id).mkdir()
        copier(recording)(store.job_dir(job_id))
        store.create(job_id, {"targets": ["pt-br"]}, "input.wav")
        store.set_status(job_id, status)
        ids[status] = job_id
    runner = JobRunner(store, stages(ToneVoice()), PROFILE, Limits(retention_days=7))
    now = time.time()
    assert runner.expire(now_s=now + 6.9 * 86400) == []  # not old enough yet
    expired = runner.expire(now_s=now + 7.1 * 86400)
    assert sorted(expired) == sorted([ids["done"], ids["failed"]])
    assert statuses(tmp_path, list(ids.values())) == ["missing", "missing", "queued", "running"]
    assert not store.job_dir(ids["done"]).exists() and store.job_dir(ids["running"]).exists()
    assert runner.expire(now_s=now + 365 * 86400) == []  # queued and running jobs stay, however old
    assert JobRunner(store, stages(ToneVoice()), PROFILE).expire(now_s=now + 365 * 86400) == []  # no retention set


@pytest.mark.slow
def test_64_jobs_fill_the_queue_the_rest_are_refused_and_none_is_lost_across_a_restart(recording, tmp_path):
    """70 uploads at once against max_queued 64: exactly 64 accepted, 6 refused with 503 and Retry-After; the
    server stops with two of them running and the rest queued, and the next start completes all 64, each once."""
    first = GatedVoice(open_lines=0)
    again = ToneVoice()
    options = DubOptions(targets=("pt-br",), profile="tone", formats=("srt",))
    limits = Limits(max_running=2, max_queued=64, retry_after_s=11)

    def link(job_dir: Path) -> Path:  # as a server-side path is saved: one file, probed once
        os.link(recording, job_dir / "input.wav")
        return job_dir / "input.wav"

    async def before_restart():
        runner = JobRunner(JobStore(tmp_path), stages(first), PROFILE, limits)
        results = await asyncio.gather(*(runner.submit(options, link) for _ in range(70)), return_exceptions=True)
        await runner.start()
        await until(lambda: first.admitted >= 2)  # two jobs running, held at the gate
        await runner.close()
        runner.store.close()
        first.gate.set()  # the held lines finish, but nobody waits for them any more
        return results

    async def after_restart(ids):
        runner = JobRunner(JobStore(tmp_path), stages(again), PROFILE, limits)
        await runner.start()
        settled = await all_settled(tmp_path, ids)
        await runner.close()
        return settled

    results = asyncio.run(before_restart())
    accepted = [r.id for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, BaseException)]
    assert len(accepted) == 64 and len(refused) == 6
    assert all(isinstance(r, JobQueueFull) and r.http_status == 503 and r.retry_after_s == 11 for r in refused)
    assert len([p for p in tmp_path.iterdir() if p.is_dir()]) == 64  # the refused left nothing behind
    assert Counter(statuses(tmp_path, accepted)) == {"running": 2, "queued": 62}
    assert asyncio.run(after_restart(accepted)) == ["done"] * 64
    assert again.calls == 64 * len(LINES)  # every line voiced once (the held ones never finished before the stop)
    assert Counter(runs(tmp_path, accepted)) == {1: 62, 2: 2}  # the two running ones were resumed
