"""A job's lines as a person edits them: plain data kept with the job, so one line can be fixed and regenerated.

Per line the state holds what may be changed (the source text, the target text per language, the speaker, the
slot in the source, a lock) and a revision; the job holds a revision too (finished renders). It also holds what a
re-render needs to regenerate only what an edit made stale (graph/run/rendering.py): each language's placed lines
(record, exact plan, the checkpoint key of the fitted samples), each speaker's voice (the key of its conditionals
in the checkpoint) and the mix's gains, fixed by the first pass.

Where: ``STATE`` in an HTTP job's directory, and in ``OUT_DIR/.dubgraph/`` for a CLI dub, beside the job's
checkpoint. It is ``graph.plain`` data (never a pickle), written atomically; every read-modify-write holds an
exclusive lock on ``LOCK`` (threads and processes alike), so of two edits of one line made from the same revision
(``If-Match``) exactly one wins.
"""

from __future__ import annotations

import contextlib
import fcntl
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any

from graph import plain
from graph.errors import BadInput, EditConflict, LineNotFound, UnsupportedLanguage
from graph.types import PlacedLine

STATE = "lines.npz"
LOCK = "lines.lock"
FORMAT, VERSION = "dubgraph.lines", 1
MAX_TEXT_CHARS = 2000  # one line's text, source or target (what a translation request takes, what a cue holds)
FIELDS = ("lang", "text", "source_text", "speaker", "start_s", "end_s", "locked")
SLOT_TOLERANCE_S = 1e-3


@dataclass(frozen=True)
class LineState:
    """One line as edited. ``texts``: the person's own target text per language (spoken instead of machine
    translation); ``candidates``: machine n-best of ``source_text`` per language (absent: to be translated)."""

    id: str
    speaker: str
    source_text: str
    start_s: float
    end_s: float
    locked: bool = False
    revision: int = 0
    stale: bool = False  # edited since the last render
    texts: dict[str, str] = field(default_factory=dict)
    candidates: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def wanted(self, lang: str) -> tuple[str, ...] | None:
        """What the line is voiced from in ``lang``: the person's text, else the machine's n-best; None: to translate."""
        return (self.texts[lang],) if lang in self.texts else self.candidates.get(lang)


@dataclass(frozen=True)
class Edit:
    """One PATCH of one line: ``body`` as sent (any subset of ``FIELDS``), ``if_match`` the revision it was made from."""

    line: str
    body: dict[str, Any]
    if_match: int | None = None


@dataclass
class JobState:
    """Everything editing and re-rendering a job needs (see the module doc)."""

    revision: int
    job: dict[str, Any]  # what rebuilds the job: input, options (plain), models, languages, checkpoint directory...
    source_language: str
    duration_s: float
    speakers: tuple[str, ...]
    voices: dict[str, str]  # speaker -> checkpoint key of its conditionals
    mix: dict[str, Any]  # track rate, speaker levels and, per language, the speaker gains and overall scale used
    lines: list[LineState]
    placed: dict[str, dict[str, dict[str, Any]]]  # lang -> line id -> {"line": PlacedLine, "plan": {...}, "fit", "voice"}
    edits: list[dict[str, Any]] = field(default_factory=list)  # every edit applied, in order
    commit: dict[str, Any] | None = None  # a finished render whose files are being moved into place

    @property
    def targets(self) -> tuple[str, ...]:
        return tuple(self.job["options"]["targets"])

    def line(self, line_id: str) -> LineState:
        for line in self.lines:
            if line.id == line_id:
                return line
        raise LineNotFound(f"no line {line_id!r} in this job (its lines are {self._ids()})")

    def _ids(self) -> str:
        ids = [line.id for line in self.lines]
        return ", ".join(ids) if len(ids) <= 6 else f"{', '.join(ids[:3])} ... {ids[-1]}"

    @property
    def stale(self) -> bool:
        """Something to render: an edit since the last render, or a render whose files are not all in place."""
        return self.commit is not None or any(line.stale for line in self.lines)

    def language(self, lang: str | None) -> str:
        """``lang`` when it is one of the job's targets (the first target when None), else UnsupportedLanguage."""
        if lang is None:
            return self.targets[0]
        if not isinstance(lang, str) or lang.lower() not in self.targets:
            raise UnsupportedLanguage(str(lang), self.targets, what="job's target")
        return lang.lower()

    def view(self, lang: str | None, job_id: str) -> dict[str, Any]:
        """The lines of one language as ``GET /v1/dubs/{id}/lines`` answers them, in source order."""
        lang = self.language(lang)
        lines = sorted(self.lines, key=lambda line: (line.start_s, line.end_s, line.id))
        return {"job_id": job_id, "revision": self.revision, "language": lang, "speakers": list(self.speakers),
                "lines": [self.line_view(line, lang) for line in lines]}

    def line_view(self, line: LineState, lang: str) -> dict[str, Any]:
        """One line in one language: what a person edits, where it plays now, and what was done to fit it."""
        entry = self.placed.get(lang, {}).get(line.id)
        placed: PlacedLine | None = entry["line"] if entry else None
        return {
            "id": line.id, "speaker": line.speaker, "source_text": line.source_text,
            "text": line.texts.get(lang, placed.text if placed else ""),
            "candidates": list(line.candidates.get(lang, placed.candidates if placed else ())),
            "chosen": placed.chosen if placed else 0,
            "source_start_s": line.start_s, "source_end_s": line.end_s,
            "start_s": placed.start_s if placed else line.start_s, "end_s": placed.end_s if placed else line.end_s,
            "rate": placed.rate if placed else 1.0, "stretch": placed.stretch if placed else 1.0,
            "shift_s": placed.shift_s if placed else 0.0, "preroll_s": placed.preroll_s if placed else 0.0,
            "lost_s": placed.lost_s if placed else 0.0, "flags": list(placed.flags) if placed else [],
            "locked": line.locked, "revision": line.revision, "stale": line.stale,
        }

    def apply(self, edits: Sequence[Edit]) -> list[LineState]:
        """Apply every edit, or none (the first bad one raises and nothing changes); the lines as edited."""
        lines = {line.id: line for line in self.lines}
        log: list[dict[str, Any]] = []
        changed: list[LineState] = []
        for edit in edits:
            line = lines.get(edit.line) if isinstance(edit.line, str) else None
            if line is None:
                self.line(str(edit.line))  # raises LineNotFound naming the job's lines
            new, changes = _edited(self, line, edit)
            if changes:
                lines[line.id] = new
                log.append({"line": line.id, "revision": new.revision, "changes": changes, "at": round(time.time(), 3),
                            "rendered": None})
            changed.append(new)
        self.lines = [lines[line.id] for line in self.lines]
        self.edits += log
        return changed

    def to_plain(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": VERSION, "revision": self.revision, "job": self.job,
                "source_language": self.source_language, "duration_s": self.duration_s,
                "speakers": list(self.speakers), "voices": self.voices, "mix": self.mix,
                "lines": [_line_plain(line) for line in self.lines], "placed": self.placed, "edits": self.edits,
                "commit": self.commit}

    @classmethod
    def from_plain(cls, data: Any) -> "JobState":
        if not isinstance(data, dict) or (data.get("format"), data.get("version")) != (FORMAT, VERSION):
            raise plain.NotPlainData(f"not {FORMAT} version {VERSION}")
        try:
            return cls(data["revision"], data["job"], data["source_language"], data["duration_s"],
                       tuple(data["speakers"]), data["voices"], data["mix"],
                       [LineState(**line) for line in data["lines"]], data["placed"], data["edits"], data["commit"])
        except (KeyError, TypeError) as exc:
            raise plain.NotPlainData(f"incomplete {FORMAT}: {exc}") from None


def _line_plain(line: LineState) -> dict[str, Any]:
    return {"id": line.id, "speaker": line.speaker, "source_text": line.source_text, "start_s": line.start_s,
            "end_s": line.end_s, "locked": line.locked, "revision": line.revision, "stale": line.stale,
            "texts": dict(line.texts), "candidates": {k: tuple(v) for k, v in line.candidates.items()}}


def _edited(state: JobState, line: LineState, edit: Edit) -> tuple[LineState, dict[str, Any]]:
    """The line with ``edit`` applied and the changes it made ({} when it changes nothing); errors change nothing."""
    body = edit.body
    if not isinstance(body, dict):
        raise BadInput(f"an edit of line {line.id} must be a JSON object of {', '.join(FIELDS)}")
    unknown = sorted(set(body) - set(FIELDS))
    if unknown:
        raise BadInput(f"unknown field(s) in the edit of line {line.id}: {', '.join(map(str, unknown))}; "
                       f"known: {', '.join(FIELDS)}")
    if edit.if_match is not None and edit.if_match != line.revision:
        raise EditConflict(f"line {line.id} is at revision {line.revision}, not {edit.if_match}: it was changed "
                           "meanwhile; load it again and redo the edit")
    lang = state.language(body.get("lang"))
    new: dict[str, Any] = {}
    if "text" in body:
        new["text"] = _text(body["text"], "text", line.id, allow_empty=True)
    if "source_text" in body:
        new["source_text"] = _text(body["source_text"], "source_text", line.id, allow_empty=False)
    if "speaker" in body:
        if body["speaker"] not in state.speakers:
            raise BadInput(f"unknown speaker {body['speaker']!r} for line {line.id}; this job's speakers: "
                           f"{', '.join(state.speakers)}")
        new["speaker"] = body["speaker"]
    start, end = (_seconds(body.get(name, getattr(line, name)), name, line.id) for name in ("start_s", "end_s"))
    if end <= start:
        raise BadInput(f"line {line.id}: the slot ends ({end:.3f} s) before it starts ({start:.3f} s)")
    if start < 0 or end > state.duration_s + SLOT_TOLERANCE_S:
        raise BadInput(f"line {line.id}: the slot {start:.3f}-{end:.3f} s is outside the input (0-"
                       f"{state.duration_s:.3f} s)")
    if "locked" in body and not isinstance(body["locked"], bool):
        raise BadInput(f"locked must be true or false, got {body['locked']!r}")
    locked = body.get("locked", line.locked)

    changes: dict[str, Any] = {}
    if "text" in new and line.texts.get(lang) != new["text"]:
        changes["text"] = {lang: new["text"]}
    for name in ("source_text", "speaker"):
        if name in new and new[name] != getattr(line, name):
            changes[name] = new[name]
    if (start, end) != (line.start_s, line.end_s):
        changes["start_s"], changes["end_s"] = start, end
    if locked != line.locked:
        changes["locked"] = locked
    if line.locked and locked and set(changes) & {"text", "speaker", "start_s"}:
        raise EditConflict(f"line {line.id} is locked: unlock it (\"locked\": false) to change its text, speaker "
                           "or slot")
    if not changes:
        return line, {}
    texts, candidates = dict(line.texts), dict(line.candidates)
    if "source_text" in changes and not locked:  # the translations are of the old text: translate again
        texts, candidates = {}, {}
    if "text" in new:
        texts[lang] = new["text"]
    edited = replace(line, speaker=new.get("speaker", line.speaker), source_text=new.get("source_text", line.source_text),
                     start_s=start, end_s=end, locked=locked, revision=line.revision + 1, stale=True, texts=texts,
                     candidates=candidates)
    return edited, changes


def _text(value: Any, name: str, line_id: str, allow_empty: bool) -> str:
    if not isinstance(value, str):
        raise BadInput(f"{name} of line {line_id} must be a string, got {type(value).__name__}")
    text = " ".join(value.split())
    if len(text) > MAX_TEXT_CHARS:
        raise BadInput(f"{name} of line {line_id} has {len(text)} characters; at most {MAX_TEXT_CHARS}")
    if not text and not allow_empty:
        raise BadInput(f"{name} of line {line_id} cannot be empty (to silence the line, set its text to \"\")")
    return text


def _seconds(value: Any, name: str, line_id: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise BadInput(f"{name} of line {line_id} must be a number of seconds, got {value!r}")
    return round(float(value), 3)


def parse_revision(header: str | None) -> int | None:
    """A revision from an ``If-Match`` header (``3``, ``"3"`` or ``W/"3"``); None when absent."""
    if header is None or not header.strip():
        return None
    value = header.strip().removeprefix("W/").strip('"')
    if not value.isdigit():
        raise BadInput(f"If-Match must be a revision number (the ETag of what you edit), got {header!r}")
    return int(value)


class StateFile:
    """The state of one job in ``directory``: read, written atomically, changed under an exclusive lock."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        self.path = self.directory / STATE

    def exists(self) -> bool:
        return self.path.is_file()

    def load(self) -> JobState:
        if not self.exists():
            raise LineNotFound(f"no line state in {self.directory}: this dub was made without keeping it (an older "
                               "version, or --no-edits); dub it again to edit its lines")
        try:
            return JobState.from_plain(plain.load(self.path))
        except plain.NotPlainData as exc:
            raise BadInput(f"the line state {self.path} is unreadable ({exc}); dub the input again") from None

    def save(self, state: JobState) -> None:
        plain.save(self.path, state.to_plain())

    def acquire(self) -> IO:
        """Take the job's edit lock (blocks until another holder lets go); ``release`` the handle it returns."""
        self.directory.mkdir(parents=True, exist_ok=True)
        handle = open(self.directory / LOCK, "a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX)
        except BaseException:
            handle.close()
            raise
        return handle

    @staticmethod
    def release(handle: IO) -> None:
        with contextlib.closing(handle):
            fcntl.flock(handle, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        handle = self.acquire()
        try:
            yield
        finally:
            self.release(handle)

    def edit(self, edits: Sequence[Edit]) -> tuple[JobState, list[LineState]]:
        """Apply ``edits`` all or none, under the lock; the new state and the lines as edited."""
        with self.locked():
            state = self.load()
            before = len(state.edits)
            changed = state.apply(edits)
            if len(state.edits) > before:
                self.save(state)
            return state, changed
