"""Finished work kept on disk, so an interrupted job resumes without recomputing it.

One pickle per finished unit (transcript, turns, a language's translations, a speaker's conditionals, one
synthesized line), written atomically: a unit is either complete on disk or absent.
"""

from __future__ import annotations

import hashlib
import logging
import pickle
from pathlib import Path
from typing import Any

from graph.files import atomic_write_bytes

log = logging.getLogger(__name__)


def key_of(*parts: Any) -> str:
    """A short stable key for settings or content (reprs of plain values)."""
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:20]


class Checkpoint:
    """Keyed store of finished units under ``root``; ``None`` root stores nothing."""

    def __init__(self, root: str | Path | None):
        self.root = Path(root) if root else None
        self.hits = 0

    def _path(self, key: str) -> Path:
        assert self.root is not None
        return self.root / f"{key}.pkl"

    def get(self, key: str) -> Any | None:
        if self.root is None or not self._path(key).exists():
            return None
        try:
            value = pickle.loads(self._path(key).read_bytes())
        except (pickle.UnpicklingError, EOFError, AttributeError, ImportError) as exc:
            log.warning("ignoring unreadable checkpoint %s: %s", key, exc)
            return None
        self.hits += 1
        return value

    def put(self, key: str, value: Any) -> None:
        if self.root is not None:
            atomic_write_bytes(self._path(key), pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))
