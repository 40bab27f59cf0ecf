"""Atomic file writes: a reader sees the old file or the whole new one, never half of one.

A write that fails because the disk is full raises ``InsufficientStorage`` (a ``DubError``): the CLI prints it,
HTTP answers 507 and the job runner pauses the job instead of failing it (``is_disk_full``).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from graph.errors import InsufficientStorage

DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


def is_disk_full(exc: BaseException | None) -> bool:
    """True when ``exc``, or an error it was raised from (or a replica's error wraps), means "no space left"."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, InsufficientStorage) or (isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS):
            return True
        cause = getattr(exc, "cause", None)
        exc = cause if isinstance(cause, BaseException) else exc.__cause__ or exc.__context__
    return False


def disk_full(directory: str | Path, exc: OSError) -> InsufficientStorage:
    return InsufficientStorage(f"no space left on the disk holding {directory} ({exc.strerror or exc}): "
                               "free some space, then try again")


class ErrorKeepingFile:
    """A file for a C library whose callbacks print and swallow exceptions (soundfile's): the first OSError is
    kept, and nothing more written, so the caller raises it instead of a short file passing for a whole one."""

    def __init__(self, handle):
        self._handle = handle
        self.error: OSError | None = None

    def __getattr__(self, name: str):
        return getattr(self._handle, name)

    def write(self, data) -> int:
        return self._call("write", data)

    def seek(self, *args) -> int:
        return self._call("seek", *args)

    def _call(self, method: str, *args) -> int:
        if self.error is None:
            try:
                return getattr(self._handle, method)(*args)
            except OSError as exc:
                self.error = exc
        return 0


def atomic_write(path: str | Path, write: Callable[[BinaryIO], None]) -> Path:
    """Run ``write`` on a hidden temp file beside ``path``, then rename it into place (same filesystem).

    A plain ``open`` (not mkstemp) so the final file gets the usual umask permissions; the temp file is removed
    on any failure.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.part")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "xb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS:
            raise disk_full(path.parent, exc) from exc
        raise
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    return atomic_write(path, lambda handle: handle.write(data))


def atomic_write_json(path: str | Path, value: Any) -> Path:
    return atomic_write_bytes(path, (json.dumps(value, indent=2, ensure_ascii=False) + "\n").encode())
