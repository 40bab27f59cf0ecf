"""Finished work kept on disk, so an interrupted job resumes without recomputing it.

One file per finished unit (transcript, turns, a language's translations, a speaker's conditionals, one
synthesized line) in ``graph.plain``'s data-only format (``KEY.npz``: JSON structure + numeric arrays), written
atomically: a unit is either complete on disk or absent. Nothing in a checkpoint directory is ever unpickled,
so pointing ``--resume-dir`` at a directory from elsewhere cannot run code: a file that is not in the format
(garbage, a truncated or tampered file, or a ``KEY.pkl`` of older versions) is ignored with a warning and its
unit recomputed.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

from graph import plain

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
        return self.root / f"{key}.npz"

    def get(self, key: str) -> Any | None:
        if self.root is None:
            return None
        path = self._path(key)
        if not path.exists():
            if (self.root / f"{key}.pkl").exists():
                log.warning("ignoring %s: pickle checkpoints of older versions are never loaded (they could run "
                            "code); the unit is recomputed", self.root / f"{key}.pkl")
            return None
        try:
            value = plain.load(path)
        except (plain.NotPlainData, OSError) as exc:
            log.warning("ignoring unreadable checkpoint (the unit is recomputed): %s", exc)
            return None
        self.hits += 1
        return value

    def has(self, key: str) -> bool:
        """Whether a unit is stored (without reading it)."""
        return self.root is not None and self._path(key).is_file()

    def put(self, key: str, value: Any) -> None:
        if self.root is not None:
            plain.save(self._path(key), value)
