"""The job runner: works the store's queue in one process's event loop (the Serve ingress).

A restart re-queues every queued, running or rendering job, and the job's checkpoint makes the resumed run skip
what was finished. A done job's lines can be edited (``edit``) and the job rendered again (``render``): edits and
the start of a render take the job's lock in turn, so an edit either lands before a render starts or is refused
while it runs.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from graph import audio
from graph.edits import Edit, StateFile
from graph.errors import AudioTooLarge, DubError, EditConflict, JobNotFound, QueueFull, user_error
from graph.jobs.store import JobRecord, JobStore
from graph.media.original import write_original
from graph.media.outputs import MANIFEST, remove_outputs
from graph.options import DubOptions, from_dict, to_dict
from graph.run.checkpoint import Checkpoint
from graph.run.pipeline import Event, Stages, dub
from graph.run.pools import make_job
from graph.run.rendering import render
from graph.run.revisions import checkpoint_of
from graph.run.tracks import OUTPUT_SR

log = logging.getLogger(__name__)

TRANSCRIPT = "transcript"  # in a job's directory: transcript.srt|.vtt, translation.<lang>.srt|.vtt
TRANSLATION = "translation"
EDITABLE = ("done",)  # states whose lines can be edited and rendered again


def sidecars(job_dir: Path) -> tuple[Path | None, dict[str, Path]]:
    """The transcript and the translations (language -> file) a job came with."""
    transcript = next((p for p in sorted(job_dir.glob(f"{TRANSCRIPT}.*")) if p.is_file()), None)
    translations = {p.name.split(".")[1]: p for p in sorted(job_dir.glob(f"{TRANSLATION}.*.*")) if p.is_file()}
    return transcript, translations


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
    """The error with the input's place in the job store replaced by "the audio": users never see server paths."""
    message = str(error).replace(f"file:{input_path}", "the audio").replace(str(input_path), "the audio")
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

    def __init__(self, store: JobStore, stages: Stages, profile, limits: Limits = Limits()):
        self.store = store
        self.stages = stages
        self.profile = profile
        self.limits = limits
        self.queue: asyncio.Queue[str] = asyncio.Queue()
        self.progress: dict[str, dict[str, dict[str, int]]] = {}  # running job -> stage -> completed/total
        self.tasks: dict[str, asyncio.Task] = {}
        self._workers: list[asyncio.Task] = []
        self._submitting = 0
        self._warnings = _JobWarnings(self)
        self._locks: dict[str, asyncio.Lock] = {}  # job -> held by an edit, or by a render while it starts

    async def start(self) -> None:
        """Re-queue what a previous process left queued or running, then start the workers."""
        await asyncio.to_thread(self.store.sweep)
        for record in self.store.active():  # a rendering job stays rendering: its render resumes
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

    async def submit(self, options: DubOptions, save_input: Callable[[Path], Path]) -> JobRecord:
        """Validate, save the input into a new job directory (``save_input(dir) -> path``), then queue the job."""
        queued = self.store.count("queued") + self._submitting
        if queued >= self.limits.max_queued:
            raise JobQueueFull(queued, self.limits.retry_after_s)
        self._submitting += 1
        job_id = self.store.new_id()
        job_dir = self.store.job_dir(job_id)
        try:
            job_dir.mkdir(parents=True)
            input_path = await asyncio.to_thread(save_input, job_dir)
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
        """make_job's checks (languages, readable audio and transcripts, writable output) plus the duration limit."""
        job_dir = self.store.job_dir(job_id)
        transcript, translations = sidecars(job_dir)
        try:
            job = make_job(input_path, self.store.out_dir(job_id), options, self.profile, job_id, transcript,
                           {lang: str(path) for lang, path in translations.items()}, job_dir)
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
        return {**_summary(record), "revision": self._revision(record), "runs": record.runs,
                "progress": self.progress.get(job_id, {}), "log": self.store.events(job_id)}  # fmt: skip

    def _revision(self, record: JobRecord) -> int:
        """Renders finished since the first pass (what the manifest served now says)."""
        if record.status not in ("done", "rendering"):
            return 0
        try:
            return int(json.loads((self.store.out_dir(record.id) / MANIFEST).read_text()).get("revision", 0))
        except (OSError, ValueError, TypeError):
            return 0

    def _editable(self, job_id: str, doing: str) -> JobRecord:
        record = self.store.get(job_id)
        if record is None:
            raise JobNotFound(f"no job {job_id!r}")
        if record.status == "rendering":
            raise EditConflict(f"job {job_id} is rendering: wait until it is done, then {doing}")
        if record.status not in EDITABLE:
            raise EditConflict(f"job {job_id} is {record.status}: its lines can be edited once it is done")
        return record

    def lines(self, job_id: str, lang: str | None) -> dict[str, Any]:
        """A done (or rendering) job's lines in one language (its first target by default)."""
        record = self.store.get(job_id)
        if record is None or record.status not in ("done", "rendering"):
            state = "unknown" if record is None else record.status
            raise JobNotFound(f"job {job_id!r} is {state}: its lines can be listed once it is done")
        return StateFile(self.store.job_dir(job_id)).load().view(lang, job_id)

    async def edit(self, job_id: str, line_id: str, body: dict[str, Any], if_match: int | None) -> dict[str, Any]:
        """Apply one edit of a done job's line (all of it, or nothing); the line as it is now."""
        async with self._lock(job_id):
            self._editable(job_id, "edit the line")
            file = StateFile(self.store.job_dir(job_id))
            state, (line,) = await asyncio.to_thread(file.edit, [Edit(line_id, body, if_match)])
            return state.line_view(line, state.language(body.get("lang") if isinstance(body, dict) else None))

    async def render(self, job_id: str, if_match: int | None) -> bool:
        """Queue a render of a done job's edits; False when nothing is stale (nothing queued)."""
        async with self._lock(job_id):
            self._editable(job_id, "render it again")
            state = await asyncio.to_thread(StateFile(self.store.job_dir(job_id)).load)
            if if_match is not None and if_match != state.revision:
                raise EditConflict(f"job {job_id} is at revision {state.revision}, not {if_match}: load it again")
            if not state.stale:
                return False
            self.store.set_status(job_id, "rendering")
        self.queue.put_nowait(job_id)
        log.info("[%s] render queued", job_id)
        return True

    def line_audio(self, job_id: str, line_id: str, lang: str | None) -> bytes:
        """One line's clip as placed in the current track (before the bed), as a WAV."""
        import soundfile as sf

        record = self.store.get(job_id)
        if record is None or record.status not in ("done", "rendering"):
            raise JobNotFound(f"no finished job {job_id!r}")
        job_dir = self.store.job_dir(job_id)
        state = StateFile(job_dir).load()
        lang = state.language(lang)
        line = state.line(line_id)
        entry = state.placed.get(lang, {}).get(line.id)
        samples = checkpoint_of(state, job_dir).get(entry["fit"]) if entry else None
        if samples is None:
            raise JobNotFound(f"line {line_id} has no audio in {lang} yet")
        gain = state.mix["gains"][lang].get(entry["line"].speaker, 1.0) * state.mix["scale"][lang]
        buffer = io.BytesIO()
        sf.write(buffer, samples * gain, OUTPUT_SR, format="WAV", subtype="PCM_16")
        return buffer.getvalue()

    def _lock(self, job_id: str) -> asyncio.Lock:
        return self._locks.setdefault(job_id, asyncio.Lock())

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
        await asyncio.to_thread(self.store.delete, job_id)
        return True

    async def _work(self) -> None:
        while True:
            job_id = await self.queue.get()
            record = self.store.get(job_id)
            if record is None or record.status not in ("queued", "rendering") or job_id in self.tasks:
                continue
            task = asyncio.create_task(self._run(record) if record.status == "queued" else self._render(record))
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
        await self._keep_original(job_id, job.input, job.max_duration_s)
        self.store.set_status(job_id, "done")
        log.info("[%s] done", job_id)

    async def _render(self, record: JobRecord) -> None:
        """Render a done job's edits; whatever happens, the job ends done (at the new revision, or the last one)."""
        job_id = record.id
        self.progress[job_id] = {}
        try:
            rendered = await render(self.store.job_dir(job_id), self.store.out_dir(job_id), self.stages,
                                    self._progress, job_id)
        except asyncio.CancelledError:
            raise  # closing: it stays "rendering" and resumes at the next start
        except Exception as exc:
            error = user_error(exc)
            message = str(error) if error is not None else f"internal error ({type(exc).__name__})"
            log.log(logging.WARNING if error is not None else logging.ERROR, "[%s] render failed: %s", job_id,
                    message, exc_info=error is None)
            self.store.add_event(job_id, "warning", f"render failed, the last revision stays: {message}")
        else:
            counts = ", ".join(f"{lang} {len(ids)}" for lang, ids in rendered.regenerated.items())
            self.store.add_event(job_id, "info", f"revision {rendered.revision}: lines regenerated: {counts}"
                                 if rendered.changed else f"revision {rendered.revision}: nothing to render")
        self.store.set_status(job_id, "done")

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
        remove_outputs(self.store.out_dir(job_id), options.targets, options.formats)
