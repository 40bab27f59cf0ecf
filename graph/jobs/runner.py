"""The job runner: works the store's queue in one process's event loop (the Serve ingress).

A restart re-queues every queued or running job, and the job's checkpoint makes the resumed run skip what was
finished.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from graph import audio
from graph.errors import AudioTooLarge, DubError, QueueFull, user_error
from graph.jobs.store import JobRecord, JobStore
from graph.media.outputs import remove_outputs
from graph.options import DubOptions, from_dict, to_dict
from graph.run.checkpoint import Checkpoint
from graph.run.pipeline import Event, Stages, dub
from graph.run.pools import make_job

log = logging.getLogger(__name__)


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

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args if isinstance(record.args, tuple) else ()
        try:
            message = str(record.msg) % tuple(_brief(a) for a in args) if args else record.getMessage()
        except (TypeError, ValueError):
            message = record.getMessage()
        if message.startswith("[") and "] " in message:
            job_id, text = message[1:].split("] ", 1)
            if job_id in self.runner.progress:
                self.runner.store.add_event(job_id, record.levelname.lower(), text)


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
        self._cleanups: set[asyncio.Future] = set()  # done jobs' work-file removals, finished before close returns
        self._submitting = 0
        self._warnings = _JobWarnings(self)

    async def start(self) -> None:
        """Re-queue what a previous process left queued or running, then start the workers."""
        await asyncio.to_thread(self.store.sweep)
        for record in self.store.active():
            if record.status == "running":
                self.store.set_status(record.id, "queued")
                self.store.add_event(record.id, "info", "re-queued: it was running when the server stopped")
            self.queue.put_nowait(record.id)
        logging.getLogger("graph").addHandler(self._warnings)
        self._workers = [asyncio.create_task(self._work()) for _ in range(self.limits.max_running)]

    async def close(self) -> None:
        """Stop working; running jobs stay "running" on disk, so the next start resumes them."""
        logging.getLogger("graph").removeHandler(self._warnings)
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        await asyncio.gather(*self._cleanups, return_exceptions=True)

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
        except BaseException:
            await asyncio.to_thread(shutil.rmtree, job_dir, True)
            raise
        finally:
            self._submitting -= 1
        self.queue.put_nowait(job_id)
        log.info("[%s] queued: %s -> %s", job_id, input_path.name, ",".join(options.targets))
        return record

    def _job(self, job_id: str, input_path: Path, options: DubOptions):
        """make_job's checks (languages, readable audio and voice clips, library voices, writable output) plus the
        duration limit."""
        try:
            job = make_job(input_path, self.store.out_dir(job_id), options, self.profile, job_id,
                           references=self.store.references(job_id), library=self.library)
            duration = audio.probe(input_path).duration_s
        except DubError as exc:
            raise _scrubbed(exc, input_path) from None
        limit = self.limits.max_duration_s
        if limit is not None and duration is not None and duration > limit:
            raise AudioTooLarge(f"the audio is {duration:.0f} s long; this server accepts at most {limit:.0f} s")
        return replace(job, max_duration_s=limit)

    def status(self, job_id: str) -> dict[str, Any] | None:
        record = self.store.get(job_id)
        if record is None:
            return None
        status: dict[str, Any] = {
            "id": record.id,
            "status": record.status,
            "created_s": round(record.created_s, 3),
            "updated_s": round(record.updated_s, 3),
            "targets": list(record.options.get("targets", ())),
            "runs": record.runs,
            "progress": self.progress.get(job_id, {}),
            "log": self.store.events(job_id),
        }
        if record.error:
            status["error"] = record.error
        return status

    async def delete(self, job_id: str) -> bool:
        """Cancel the job if it runs, then delete its row and files; False when there is no such job."""
        if self.store.get(job_id) is None:
            return False
        task = self.tasks.get(job_id)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await asyncio.to_thread(self.store.delete, job_id)
        return True

    async def _work(self) -> None:
        while True:
            job_id = await self.queue.get()
            record = self.store.get(job_id)
            if record is None or record.status != "queued":
                continue
            task = asyncio.create_task(self._run(record))
            self.tasks[job_id] = task
            try:
                await task
            except asyncio.CancelledError:
                if asyncio.current_task().cancelling():
                    raise  # the runner is closing; the job resumes at the next start
            finally:
                self.tasks.pop(job_id, None)
                self.progress.pop(job_id, None)

    async def _run(self, record: JobRecord) -> None:
        job_id = record.id
        self.progress[job_id] = {}
        self.store.set_status(job_id, "running", started=True)
        checkpoint = Checkpoint(self.store.checkpoint_dir(job_id))
        options = DubOptions()
        try:
            options = from_dict(DubOptions, record.options)
            job = await asyncio.to_thread(self._job, job_id, self.store.job_dir(job_id) / record.input_name, options)
            await dub(job, self.stages, self._progress, checkpoint)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._failed(record, exc, options)
            return
        if checkpoint.hits:
            self.store.add_event(job_id, "info", f"resumed: {checkpoint.hits} finished units reused from before")
        self.store.set_status(job_id, "done")
        cleanup = asyncio.ensure_future(asyncio.to_thread(self.store.drop_work_files, job_id, record.input_name))
        self._cleanups.add(cleanup)
        cleanup.add_done_callback(self._cleanups.discard)
        await asyncio.shield(cleanup)  # a closing runner must not cancel it before its thread starts
        log.info("[%s] done", job_id)

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
        remove_outputs(self.store.out_dir(job_id), options.targets, options.formats)
