"""The editing side of the job runner: a done job's lines listed and edited, its renders queued and run.

Edits and the start of a render take the job's lock in turn, so an edit either lands before a render starts or is
refused (409) while it runs; of two edits of one line from the same revision (``If-Match``) exactly one wins. A
render is worked by the runner's workers like a job: the job is ``rendering`` meanwhile (its last revision still
served), a restart takes it up again, and whatever happens it ends ``done`` (at the new revision, or the last one).
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from graph.edits import Edit, StateFile
from graph.errors import EditConflict, JobNotFound, StoreUnavailable, user_error
from graph.files import is_disk_full
from graph.jobs.store import TRANSCRIPT, TRANSLATION, JobRecord, JobStore
from graph.media.outputs import MANIFEST
from graph.run.pipeline import Event, Stages
from graph.run.rendering import render
from graph.run.revisions import checkpoint_of
from graph.run.tracks import OUTPUT_SR

log = logging.getLogger(__name__)

EDITABLE = ("done",)  # states whose lines can be edited and rendered again
SERVED = ("done", "rendering")  # states whose files and lines are there (a rendering job serves its last revision)


def sidecars(job_dir: Path) -> tuple[Path | None, dict[str, Path]]:
    """The transcript and the translations (language -> file) a job came with."""
    transcript = next((p for p in sorted(job_dir.glob(f"{TRANSCRIPT}.*")) if p.is_file()), None)
    translations = {p.name.split(".")[1]: p for p in sorted(job_dir.glob(f"{TRANSLATION}.*.*")) if p.is_file()}
    return transcript, translations


class JobEditor:
    """Edits and renders of the jobs in ``store``; ``queue`` takes a job id for the runner's workers."""

    def __init__(self, store: JobStore, queue: Callable[[str], None]):
        self.store = store
        self.queue = queue
        self._locks: dict[str, asyncio.Lock] = {}  # job -> held by an edit, or by a render while it starts

    def revision(self, record: JobRecord) -> int:
        """Renders finished since the first pass (what the manifest served now says)."""
        if record.status not in SERVED:
            return 0
        try:
            return int(json.loads((self.store.out_dir(record.id) / MANIFEST).read_text()).get("revision", 0))
        except (OSError, ValueError, TypeError, AttributeError):
            return 0

    def lines(self, job_id: str, lang: str | None) -> dict[str, Any]:
        """A done (or rendering) job's lines in one language (its first target by default)."""
        self._served(job_id)
        return StateFile(self.store.job_dir(job_id)).load().view(lang, job_id)

    async def edit(self, job_id: str, line_id: str, body: dict[str, Any], if_match: int | None) -> dict[str, Any]:
        """Apply one edit of a done job's line (all of it, or nothing); the line as it is now."""
        async with self._lock(job_id):
            self._editable(job_id, "edit the line")
            file = StateFile(self.store.job_dir(job_id))
            state, (line,) = await asyncio.to_thread(file.edit, [Edit(line_id, body, if_match)])
            return state.line_view(line, state.language(body.get("lang")))

    async def request_render(self, job_id: str, if_match: int | None) -> bool:
        """Queue a render of a done job's edits; False when nothing is stale (nothing queued)."""
        async with self._lock(job_id):
            self._editable(job_id, "render it again")
            state = await asyncio.to_thread(StateFile(self.store.job_dir(job_id)).load)
            if if_match is not None and if_match != state.revision:
                raise EditConflict(f"job {job_id} is at revision {state.revision}, not {if_match}: load it again")
            if not state.stale:
                return False
            self.store.set_status(job_id, "rendering")
        self.queue(job_id)
        log.info("[%s] render queued", job_id)
        return True

    async def run_render(self, record: JobRecord, stages: Stages, progress: Callable[[Event], None]) -> None:
        """A worker's render of a job's edits. A full disk or a store error raise (the worker pauses the job, which
        stays ``rendering`` and is tried again); any other failure leaves the last revision, noted in the log."""
        job_id = record.id
        try:
            rendered = await render(self.store.job_dir(job_id), self.store.out_dir(job_id), stages, progress, job_id)
        except asyncio.CancelledError:
            raise  # closing: it stays "rendering" and resumes at the next start
        except Exception as exc:
            if is_disk_full(exc) or isinstance(exc, StoreUnavailable):
                raise
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

    def line_audio(self, job_id: str, line_id: str, lang: str | None) -> bytes:
        """One line's clip as placed in the current track (at its mix gain, before the bed), as a WAV."""
        import soundfile as sf

        self._served(job_id)
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

    def _served(self, job_id: str) -> JobRecord:
        record = self.store.get(job_id)
        if record is None or record.status not in SERVED:
            state = "unknown" if record is None else record.status
            raise JobNotFound(f"job {job_id!r} is {state}: its lines can be listed once it is done")
        return record

    def _editable(self, job_id: str, doing: str) -> JobRecord:
        record = self.store.get(job_id)
        if record is None:
            raise JobNotFound(f"no job {job_id!r}")
        if record.status == "rendering":
            raise EditConflict(f"job {job_id} is rendering: wait until it is done, then {doing}")
        if record.status not in EDITABLE:
            raise EditConflict(f"job {job_id} is {record.status}: its lines can be edited once it is done")
        return record

    def _lock(self, job_id: str) -> asyncio.Lock:
        return self._locks.setdefault(job_id, asyncio.Lock())
