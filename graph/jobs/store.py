"""The job store: one SQLite database and one directory per job under ``root``, surviving restarts.

Under ``root``: ``jobs.sqlite3`` (one row per job, plus its warnings) and one directory per job id holding the
saved input (written before the job is accepted) with the transcripts it came with, ``voices/`` (the reference
clips it brought, and ``voices/speakers.json`` naming whose each is), ``out/`` (the artifacts), ``checkpoint/``
(every finished unit: transcript, turns, translations, conditionals, each line) and ``lines.npz`` (the line state,
graph/edits.py). A done job keeps its input, clips and checkpoint: editing its lines regenerates from them (until
the job is deleted, by hand or by retention). Ids are 128 random bits, so a job's files are reachable only by
whoever holds its id. The server's voice library usually lives here too (``voices/`` beside the job directories; a
job id never has that name).

Every SQLite error surfaces as a ``DubError`` the caller can act on: a full disk is ``InsufficientStorage``,
anything else (the database locked past ``BUSY_TIMEOUT_MS``, an I/O error) is ``StoreUnavailable``; both are
transient, so callers retry later instead of treating them as a verdict on a job.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from graph.errors import InsufficientStorage, StoreUnavailable
from graph.files import atomic_write_json

ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{22}$")  # secrets.token_urlsafe(16)
ACTIVE = ("queued", "running", "rendering")  # a job a worker has to take up (again, after a restart)
SPEAKERS = "speakers.json"
TRANSCRIPT = "transcript"  # in a job's directory: transcript.srt|.vtt, translation.<lang>.srt|.vtt
TRANSLATION = "translation"
EVENTS_KEPT = 50  # warnings kept per job
BUSY_TIMEOUT_MS = 1000  # SQLite waits this long for another connection's lock; short: callers run on an event loop

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, status TEXT NOT NULL, created_s REAL NOT NULL, updated_s REAL NOT NULL,
    options TEXT NOT NULL, input_name TEXT NOT NULL, error TEXT, runs INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS events (job_id TEXT NOT NULL, t_s REAL NOT NULL, level TEXT NOT NULL, message TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS events_job ON events (job_id);
"""


@dataclass(frozen=True)
class JobRecord:
    id: str
    status: str  # queued | running | done | failed | rendering (done, and being rendered again after edits)
    created_s: float
    updated_s: float
    options: dict[str, Any]
    input_name: str
    error: dict[str, str] | None
    runs: int  # times a run started: more than 1 means it was resumed after a restart


class JobStore:
    """Rows in SQLite (WAL, fully synced: an accepted job is on disk), files in one directory per job."""

    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser().resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.root / "jobs.sqlite3", check_same_thread=False, isolation_level=None)
        self._db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    @staticmethod
    def new_id() -> str:
        return secrets.token_urlsafe(16)

    def job_dir(self, job_id: str) -> Path:
        if not ID_PATTERN.match(job_id):
            raise ValueError(f"not a job id: {job_id!r}")
        return self.root / job_id

    def out_dir(self, job_id: str) -> Path:
        return self.job_dir(job_id) / "out"

    def checkpoint_dir(self, job_id: str) -> Path:
        return self.job_dir(job_id) / "checkpoint"

    def voices_dir(self, job_id: str) -> Path:
        return self.job_dir(job_id) / "voices"

    def save_references(self, job_id: str, clips: dict[str, Path]) -> None:
        """Record whose voice each saved clip is (speaker -> a file in ``voices_dir``)."""
        atomic_write_json(self.voices_dir(job_id) / SPEAKERS, {speaker: path.name for speaker, path in clips.items()})

    def references(self, job_id: str) -> dict[str, Path]:
        """Speaker -> the reference clip the job brought for them (none when it brought none)."""
        index = self.voices_dir(job_id) / SPEAKERS
        if not index.is_file():
            return {}
        return {speaker: self.voices_dir(job_id) / name for speaker, name in json.loads(index.read_text()).items()}

    def _exec(self, sql: str, *params: Any) -> list[tuple]:
        try:
            with self._lock:
                return self._db.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            if getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:
                raise InsufficientStorage("the server's disk is full: the job store cannot record anything until "
                                          "space is freed; try again later") from exc
            raise StoreUnavailable(f"the job store is unavailable ({exc}); try again in a few seconds") from exc

    def create(self, job_id: str, options: dict[str, Any], input_name: str) -> JobRecord:
        """Insert a queued job (one statement: the job exists whole, or not at all)."""
        now = time.time()
        self._exec("INSERT INTO jobs (id, status, created_s, updated_s, options, input_name) "
                   "VALUES (?, 'queued', ?, ?, ?, ?)", job_id, now, now, json.dumps(options), input_name)  # fmt: skip
        return JobRecord(job_id, "queued", now, now, options, input_name, None, 0)

    def get(self, job_id: str) -> JobRecord | None:
        if not ID_PATTERN.match(job_id):
            return None
        rows = self._exec("SELECT * FROM jobs WHERE id = ?", job_id)
        return _record(rows[0]) if rows else None

    def active(self) -> list[JobRecord]:
        """Queued and running jobs, oldest first."""
        marks = ", ".join("?" * len(ACTIVE))
        return [_record(r) for r in self._exec(f"SELECT * FROM jobs WHERE status IN ({marks}) ORDER BY created_s",
                                               *ACTIVE)]

    def recent(self, limit: int) -> list[JobRecord]:
        """The newest ``limit`` jobs, newest first."""
        return [_record(r) for r in self._exec("SELECT * FROM jobs ORDER BY created_s DESC LIMIT ?", limit)]

    def count(self, status: str) -> int:
        return self._exec("SELECT COUNT(*) FROM jobs WHERE status = ?", status)[0][0]

    def set_status(self, job_id: str, status: str, error: dict[str, str] | None = None, started: bool = False) -> None:
        self._exec("UPDATE jobs SET status = ?, error = ?, updated_s = ?, runs = runs + ? WHERE id = ?",
                   status, json.dumps(error) if error else None, time.time(), int(started), job_id)  # fmt: skip

    def requeue(self, job_id: str) -> None:
        """A running job back to queued (a paused one); a finished job stays finished."""
        self._exec("UPDATE jobs SET status = 'queued', updated_s = ? WHERE id = ? AND status = 'running'",
                   time.time(), job_id)  # fmt: skip

    def add_event(self, job_id: str, level: str, message: str) -> None:
        self._exec("INSERT INTO events (job_id, t_s, level, message) VALUES (?, ?, ?, ?)",
                   job_id, time.time(), level, message)  # fmt: skip

    def events(self, job_id: str) -> list[dict[str, Any]]:
        rows = self._exec("SELECT t_s, level, message FROM events WHERE job_id = ? ORDER BY t_s LIMIT ?",
                          job_id, EVENTS_KEPT)  # fmt: skip
        return [{"t_s": round(t, 3), "level": level, "message": message} for t, level, message in rows]

    def delete(self, job_id: str, only_finished: bool = False) -> bool:
        """Delete the job's row and files (``only_finished``: unless it is queued or running); False if not deleted."""
        guard = " AND status IN ('done', 'failed')" if only_finished else ""
        if not self._exec(f"DELETE FROM jobs WHERE id = ?{guard} RETURNING id", job_id):
            return False
        self._exec("DELETE FROM events WHERE job_id = ?", job_id)
        shutil.rmtree(self.job_dir(job_id), ignore_errors=True)
        return True

    def finished_before(self, cutoff_s: float) -> list[str]:
        """Ids of done and failed jobs last updated before ``cutoff_s`` (epoch seconds), oldest first."""
        rows = self._exec("SELECT id FROM jobs WHERE status IN ('done', 'failed') AND updated_s < ? ORDER BY updated_s",
                          cutoff_s)  # fmt: skip
        return [r[0] for r in rows]

    def sweep(self) -> None:
        """Remove job directories without a row (deleted while a worker thread was still writing)."""
        rows = {r[0] for r in self._exec("SELECT id FROM jobs")}
        for path in self.root.iterdir():
            if path.is_dir() and ID_PATTERN.match(path.name) and path.name not in rows:
                shutil.rmtree(path, ignore_errors=True)

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _record(row: tuple) -> JobRecord:
    job_id, status, created_s, updated_s, options, input_name, error, runs = row
    return JobRecord(job_id, status, created_s, updated_s, json.loads(options), input_name,
                     json.loads(error) if error else None, runs)  # fmt: skip
