"""The job runner: works the store's queue in one process's event loop (the Serve ingress).

A restart re-queues every queued or running job, and the job's checkpoint makes the resumed run skip what was
finished; a job that was rendering its edits (graph/jobs/editor.py) renders again. A done job keeps its input,
voice clips and checkpoint: editing its lines regenerates from them, until the job is deleted or expires. Nothing
outside a job's own ``try`` can stop a worker: a store that is locked or failing, or a full disk, puts the job back
in the queue for a later try (with backoff) while the worker goes on to the next one; finished units are
checkpointed atomically, so a paused job resumes where it stopped and nothing half-written counts as done.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from graph import audio
from graph.errors import AudioTooLarge, DubError, InsufficientStorage, QueueFull, StoreUnavailable, user_error
from graph.files import is_disk_full
from graph.jobs.editor import JobEditor, sidecars
from graph.jobs.store import ACTIVE, JobRecord, JobStore
from graph.media.original import write_original
from graph.media.outputs import remove_outputs
from graph.options import DubOptions, from_dict, to_dict
from graph.run.checkpoint import Checkpoint
from graph.run.pipeline import Event, Stages, dub
from graph.run.pools import make_job

log = logging.getLogger(__name__)

EXPIRE_EVERY_S = 3600.0  # how often finished jobs past their retention are looked for
RESUME_FREED_BYTES = 2**20  # a job paused by a full disk is tried again once this much more space is free
DAY_S = 86400.0


class JobQueueFull(QueueFull):
    def __init__(self, queued: int, retry_after_s: int):
        self.retry_after_s = retry_after_s
        super().__init__(f"{queued} jobs are already waiting; try again in about {retry_after_s} s")


@dataclass(frozen=True)
class Limits:
    max_running: int = 2
    max_queued: int = 32
    retry_after_s: int = 30
    max_duration_s: float | None = None
    retention_days: float | None = None  # finished jobs (done, failed) are deleted this long after they ended
    min_free_bytes: int = 0  # uploads are refused (507) when they would leave less free space than this
    backoff_s: float = 2.0  # first wait before a job paused by the store or a full disk is tried again; doubles
    max_backoff_s: float = 120.0


def _scrubbed(error: DubError, input_path: Path) -> DubError:
    """The error with the input's place in the job store replaced by "the audio", and the job directory dropped
    from the paths of its other files: users never see server paths."""
    message = str(error).replace(f"file:{input_path}", "the audio").replace(str(input_path), "the audio")
    message = message.replace(f"file:{input_path.parent}/", "").replace(f"{input_path.parent}/", "")
    if len(error.args) <= 1 and message != str(error):
        error.args = (message,)
    return error


def _brief(value: Any) -> Any:
    """An exception as its first line, without the remote traceback Ray puts in a replica's error."""
    if not isinstance(value, BaseException):
        return value
    cause = getattr(value, "cause", None)
    lines = str(cause if isinstance(cause, BaseException) else value).strip().splitlines()
    return lines[0][:200] if lines else type(value).__name__


class _JobWarnings(logging.Handler):
    """Keeps the pipeline's warnings about running jobs ("[job id] line u0003 ... retrying") in the store."""

    def __init__(self, runner: "JobRunner"):
        super().__init__(logging.WARNING)
        self.runner = runner
        self.dropped = 0  # events the store could not take

    def emit(self, record: logging.LogRecord) -> None:
        """Never raises: a log call inside the pipeline must not fail a line because the store is busy or full."""
        try:
            args = record.args if isinstance(record.args, tuple) else ()
            try:
                message = str(record.msg) % tuple(_brief(a) for a in args) if args else record.getMessage()
            except (TypeError, ValueError):
                message = str(record.msg)
            if message.startswith("[") and "] " in message:
                job_id, text = message[1:].split("] ", 1)
                if job_id in self.runner.progress:
                    self.runner.store.add_event(job_id, record.levelname.lower(), text)
        except Exception:  # noqa: BLE001 - the event is lost, the job is not
            self.dropped += 1


def _summary(record: JobRecord) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "id": record.id,
        "status": record.status,
        "created_s": round(record.created_s, 3),
        "updated_s": round(record.updated_s, 3),
        "targets": list(record.options.get("targets", ())),
    }
    if record.error:
        summary["error"] = record.error
    return summary


class JobRunner:
    """Runs queued jobs through ``graph.run.pipeline.dub``, ``limits.max_running`` at a time, oldest first."""

    def __init__(self, store: JobStore, stages: Stages, profile, limits: Limits = Limits(),
                 library: Path | None = None):
        self.store = store
        self.library = library  # the voice library jobs may use (graph/media/library.py)
        self.stages = stages
        self.profile = profile
        self.limits = limits
        self.queue: asyncio.Queue[str] = asyncio.Queue()
        self.progress: dict[str, dict[str, dict[str, int]]] = {}  # running job -> stage -> completed/total
        self.tasks: dict[str, asyncio.Task] = {}
        self._workers: list[asyncio.Task] = []
        self._backoff_s: dict[str, float] = {}  # paused job -> its last wait
        self._retries: dict[str, asyncio.TimerHandle] = {}  # paused job -> its next try
        self._submitting = 0
        self._warnings = _JobWarnings(self)
        self.editor = JobEditor(store, self.queue.put_nowait)

    async def start(self) -> None:
        """Re-queue what a previous process left queued or running, then start the workers (and the expiry)."""
        await asyncio.to_thread(self.store.sweep)
        for record in self.store.active():
            if record.status == "running":
                self.store.requeue(record.id)
                self.store.add_event(record.id, "info", "re-queued: it was running when the server stopped")
            self.queue.put_nowait(record.id)
        logging.getLogger("graph").addHandler(self._warnings)
        self._workers = [asyncio.create_task(self._work()) for _ in range(self.limits.max_running)]
        if self.limits.retention_days is not None:
            self._workers.append(asyncio.create_task(self._expire_every(EXPIRE_EVERY_S)))

    async def close(self) -> None:
        """Stop working; running jobs stay "running" on disk, so the next start resumes them."""
        logging.getLogger("graph").removeHandler(self._warnings)
        for retry in self._retries.values():
            retry.cancel()
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)

    def check_space(self, incoming_bytes: int = 0) -> None:
        """InsufficientStorage (507) when storing ``incoming_bytes`` more would leave less than the reserve free."""
        free = self._free_bytes()
        if free is not None and free - incoming_bytes < self.limits.min_free_bytes:
            raise InsufficientStorage(f"the server's disk is nearly full ({free / 2**20:.0f} MB free): it takes no "
                                      "new jobs until space is freed; try again later")  # fmt: skip

    async def submit(self, options: DubOptions, save_input: Callable[[Path], Path],
                     save_voices: Callable[[Path], dict[str, Path]] | None = None) -> JobRecord:
        """Validate, save the input into a new job directory (``save_input(dir) -> path``) and the job's voice clips
        (``save_voices(dir) -> {speaker: path}``), then queue the job."""
        queued = self.store.count("queued") + self._submitting
        if queued >= self.limits.max_queued:
            raise JobQueueFull(queued, self.limits.retry_after_s)
        self._submitting += 1
        job_id = self.store.new_id()
        job_dir = self.store.job_dir(job_id)
        try:
            job_dir.mkdir(parents=True)
            input_path = await asyncio.to_thread(save_input, job_dir)
            if save_voices is not None:
                clips = await asyncio.to_thread(save_voices, self.store.voices_dir(job_id))
                await asyncio.to_thread(self.store.save_references, job_id, clips)
            await asyncio.to_thread(self._job, job_id, input_path, options)
            record = self.store.create(job_id, to_dict(options), input_path.name)
        except BaseException as exc:
            await asyncio.to_thread(shutil.rmtree, job_dir, True)
            if is_disk_full(exc):
                raise InsufficientStorage("the server's disk is full: the upload could not be stored; "
                                          "try again later") from exc  # fmt: skip
            raise
        finally:
            self._submitting -= 1
        self.queue.put_nowait(job_id)
        log.info("[%s] queued: %s -> %s", job_id, input_path.name, ",".join(options.targets))
        return record

    def _job(self, job_id: str, input_path: Path, options: DubOptions):
        """make_job's checks (languages, readable audio, transcripts and voice clips, library voices, writable output)
        plus the duration limit. The job keeps its line state in its directory (graph/edits.py)."""
        job_dir = self.store.job_dir(job_id)
        transcript, translations = sidecars(job_dir)
        try:
            job = make_job(input_path, self.store.out_dir(job_id), options, self.profile, job_id, transcript,
                           {lang: str(path) for lang, path in translations.items()}, job_dir,
                           references=self.store.references(job_id), library=self.library)
            info = audio.probe(input_path)
        except DubError as exc:
            raise _scrubbed(exc, input_path) from None
        # the longer of what ffprobe measures and what the header declares: a header claiming hours is over the
        # limit even when the bytes behind it are few (decoding would call it truncated, but later)
        duration = max((s for s in (info.duration_s, info.declared_s) if s is not None), default=None)
        limit = self.limits.max_duration_s
        if limit is not None and duration is not None and duration > limit:
            raise AudioTooLarge(f"the audio is {duration:.0f} s long; this server accepts at most {limit:.0f} s")
        return replace(job, max_duration_s=limit)

    def status(self, job_id: str) -> dict[str, Any] | None:
        record = self.store.get(job_id)
        if record is None:
            return None
        return {**_summary(record), "revision": self.editor.revision(record), "runs": record.runs,
                "progress": self.progress.get(job_id, {}), "log": self.store.events(job_id)}  # fmt: skip

    def recent(self, limit: int) -> list[dict[str, Any]]:
        """The newest jobs, newest first, without their progress and log (``status`` has those)."""
        return [_summary(record) for record in self.store.recent(limit)]

    async def delete(self, job_id: str) -> bool:
        """Cancel the job if it runs, then delete its row and files; False when there is no such job."""
        if self.store.get(job_id) is None:
            return False
        task = self.tasks.get(job_id)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        return await asyncio.to_thread(self.store.delete, job_id)

    def expire(self, now_s: float | None = None) -> list[str]:
        """Delete the finished jobs older than the retention; queued and running ones are never touched."""
        if self.limits.retention_days is None:
            return []
        cutoff = (time.time() if now_s is None else now_s) - self.limits.retention_days * DAY_S
        expired = [job_id for job_id in self.store.finished_before(cutoff)
                   if job_id not in self.tasks and self.store.delete(job_id, only_finished=True)]  # fmt: skip
        if expired:
            log.info("expired %d finished jobs (retention %g days)", len(expired), self.limits.retention_days)
        return expired

    async def _expire_every(self, interval_s: float) -> None:
        while True:
            try:
                await asyncio.to_thread(self.expire)
            except Exception as exc:  # noqa: BLE001 - the store is busy or the disk full: the next round tries again
                log.warning("expiring finished jobs failed: %s", exc)
            await asyncio.sleep(interval_s)

    async def _work(self) -> None:
        while True:
            job_id = await self.queue.get()
            try:
                await self._take(job_id)
            except asyncio.CancelledError:
                if asyncio.current_task().cancelling():
                    raise  # the runner is closing; the job resumes at the next start
            except Exception as exc:  # noqa: BLE001 - whatever it is, this worker goes on to the next job
                self._retry_later(job_id, exc)

    async def _take(self, job_id: str) -> None:
        record = self.store.get(job_id)
        if record is None or record.status not in ACTIVE or job_id in self.tasks:
            self._backoff_s.pop(job_id, None)
            return  # deleted, finished, or already taken by another worker
        if record.status == "rendering":
            self.progress[job_id] = {}
            task = asyncio.create_task(self.editor.run_render(record, self.stages, self._progress))
        else:
            task = asyncio.create_task(self._run(record))
        self.tasks[job_id] = task
        try:
            await task
        finally:
            self.tasks.pop(job_id, None)
            self.progress.pop(job_id, None)
        self._backoff_s.pop(job_id, None)

    def _retry_later(self, job_id: str, exc: Exception) -> None:
        """Queue the job again after a growing wait; on disk it is queued again, its checkpoint kept. A job
        stopped by a full disk waits until space was freed, so it does not redo its unsaved lines for nothing."""
        wait = min(self._backoff_s.get(job_id, self.limits.backoff_s / 2) * 2, self.limits.max_backoff_s)
        self._backoff_s[job_id] = wait
        free_at_pause = None
        if is_disk_full(exc):
            reason = "the server's disk is full"
            free_at_pause = self._free_bytes()
        elif isinstance(exc, StoreUnavailable):
            reason = "the job store is unavailable"
        else:
            reason = f"an internal error ({type(exc).__name__})"
            log.error("[%s] unexpected error outside the job", job_id, exc_info=exc)
        log.warning("[%s] paused: %s; trying again in %.0f s", job_id, reason, wait)
        with contextlib.suppress(Exception):  # the store may be what failed: the job is queued in memory anyway
            self.store.requeue(job_id)
            self.store.add_event(job_id, "warning", f"paused: {reason}; it resumes by itself")
        self._retries[job_id] = asyncio.get_running_loop().call_later(wait, self._requeue, job_id, free_at_pause)

    def _requeue(self, job_id: str, free_at_pause: int | None) -> None:
        free = self._free_bytes()
        needed = None if free_at_pause is None else max(free_at_pause + RESUME_FREED_BYTES, self.limits.min_free_bytes)
        if needed is not None and free is not None and free < needed:  # nothing was freed yet: wait again
            wait = self._backoff_s.get(job_id, self.limits.backoff_s)
            self._retries[job_id] = asyncio.get_running_loop().call_later(wait, self._requeue, job_id, free_at_pause)
            return
        self._retries.pop(job_id, None)
        self.queue.put_nowait(job_id)

    def _free_bytes(self) -> int | None:
        try:
            return shutil.disk_usage(self.store.root).free
        except OSError:  # unknown: no check rests on it
            return None

    async def _run(self, record: JobRecord) -> None:
        """One run of a job: a failure of the job is recorded as its reason; a full disk or a store error raise
        (the worker pauses the job and tries it again later)."""
        job_id = record.id
        self.store.set_status(job_id, "running", started=True)
        self.progress[job_id] = {}
        checkpoint = Checkpoint(self.store.checkpoint_dir(job_id))
        options = DubOptions()
        try:
            options = from_dict(DubOptions, record.options)
            job = await asyncio.to_thread(self._job, job_id, self.store.job_dir(job_id) / record.input_name, options)
            await dub(job, self.stages, self._progress, checkpoint)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if is_disk_full(exc):  # not the job's fault: it waits for space (the worker queues it again)
                with contextlib.suppress(OSError):
                    remove_outputs(self.store.out_dir(job_id), options.targets, options.formats)
                raise
            self._failed(record, exc, options)
            return
        if checkpoint.hits:
            with contextlib.suppress(DubError):  # only a note: a busy store must not undo the run
                self.store.add_event(job_id, "info", f"resumed: {checkpoint.hits} finished units reused from before")
        await self._keep_original(job_id, job.input, job.max_duration_s)
        self.store.set_status(job_id, "done")
        log.info("[%s] done", job_id)

    async def _keep_original(self, job_id: str, input_path: str | Path, max_duration_s: float | None) -> None:
        """A listening copy of the input beside the dubs (the review page plays it); a job is done without it."""
        try:
            await asyncio.to_thread(write_original, input_path, self.store.out_dir(job_id), max_duration_s)
        except Exception as exc:
            log.warning("[%s] no listening copy of the original: %s", job_id, _brief(exc))

    def _progress(self, event: Event) -> None:
        stages = self.progress.get(event.job_id)
        if stages is not None:
            stages[event.stage] = {"completed": event.completed, "total": event.total}

    def _failed(self, record: JobRecord, exc: Exception, options: DubOptions) -> None:
        job_id = record.id
        error = user_error(exc)
        if error is not None:
            error = _scrubbed(error, self.store.job_dir(job_id) / record.input_name)
            reason = {"type": type(error).__name__, "message": str(error)}
            log.warning("[%s] failed: %s", job_id, error)
        else:
            message = f"internal error ({type(exc).__name__}); the server log has details"
            reason = {"type": "InternalError", "message": message}
            log.error("[%s] failed", job_id, exc_info=exc)
        self.store.set_status(job_id, "failed", reason)
        with contextlib.suppress(OSError):
            remove_outputs(self.store.out_dir(job_id), options.targets, options.formats)
