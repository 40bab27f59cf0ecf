"""The voice library: named voices kept on disk across jobs, shared by the CLI, the HTTP server and backfills.

One directory per voice under the library's root::

    <root>/<name>/voice.json             name, clip content key, length, rate, source file name, when added, and the
                                         models it has been prepared / embedded with
    <root>/<name>/clip.npz               the checked reference clip (graph.plain: data only, never a pickle)
    <root>/<name>/conds-<key>.npz        its conditionals for one synthesizer model (computed once, ever)
    <root>/<name>/embedding-<key>.npz    its speaker embedding for one embedding model (idem)

``<key>`` hashes the clip's content key with the model's name, so a voice prepared for one model is never used by
another, and what a job computed from an old clip never lands beside a replacement. Changes to the set of voices
(add, replace, remove) and to ``voice.json`` hold an exclusive ``flock`` on ``<root>/.lock``, so several processes
(a server, CLI runs, a backfill) can share one library; a voice directory appears and disappears by one rename.
Where the library is: see ``default_dir``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from graph import plain
from graph.errors import BadInput, OutputNotWritable, VoiceExists, VoiceNotFound
from graph.files import atomic_write_json
from graph.timeline.references import content_key
from graph.types import Clip, SpeakerEmbedding

log = logging.getLogger(__name__)

LIBRARY_ENV = "DUBGRAPH_VOICES"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
ENTRY, CLIP, LOCK = "voice.json", "clip.npz", ".lock"


def default_dir() -> Path:
    """``$DUBGRAPH_VOICES``, else ``$XDG_DATA_HOME/dubgraph/voices`` (``~/.local/share/dubgraph/voices``).

    A voice belongs to the user, not to one output directory: the same library serves every job and backfill
    they run, so it lives in their data directory. The HTTP server keeps its own beside its job store
    (``<job_dir>/voices``) unless given this variable or ``voice_dir``; point them at one directory to share it.
    """
    env = os.environ.get(LIBRARY_ENV)
    if env:
        return Path(env).expanduser()
    data = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data) / "dubgraph" / "voices"


@dataclass(frozen=True)
class LibraryVoice:
    name: str
    clip_key: str  # content hash of the clip (graph.timeline.references.content_key)
    duration_s: float
    sr: int
    source: str  # name of the file it was added from
    added_s: float  # Unix time
    prepared: tuple[str, ...] = ()  # synthesizer models its conditionals are stored for
    embedded: tuple[str, ...] = ()  # embedding models its embedding is stored for

    def to_json(self) -> dict:
        return {"name": self.name, "duration_s": round(self.duration_s, 3), "sr": self.sr, "source": self.source,
                "added_s": round(self.added_s, 3), "clip_key": self.clip_key, "prepared": list(self.prepared),
                "embedded": list(self.embedded)}


def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME.match(name):
        raise BadInput(f"a voice name is 1-64 letters, digits, '_', '-' or '.', starting with a letter or digit; "
                       f"got {name!r}")
    return name


class VoiceLibrary:
    """The voices under ``root`` (created on the first add)."""

    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser()

    def add(self, name: str, clip: Clip, source: str, replace_existing: bool = False,
            max_voices: int | None = None) -> LibraryVoice:
        """Store a checked clip (``graph.media.voice_clip.read_clip``) as voice ``name``; ``VoiceExists`` unless
        ``replace_existing`` (a replaced voice's conditionals and embeddings go with its old clip)."""
        check_name(name)
        voice = LibraryVoice(name, content_key(clip.samples, clip.sr), clip.duration_s, clip.sr,
                             Path(source).name, time.time())
        staging = self.root / f".new-{uuid.uuid4().hex[:12]}"
        try:
            with self._locked():  # creates the root, or says why it cannot
                staging.mkdir()
            plain.save(staging / CLIP, Clip(clip.samples, clip.sr))
            atomic_write_json(staging / ENTRY, _entry_json(voice))
            with self._locked():
                target = self.root / name
                if target.exists() and not replace_existing:
                    raise VoiceExists(f"the library already has a voice named {name!r}; remove it first or replace it")
                if max_voices is not None and not target.exists() and len(self._names()) >= max_voices:
                    raise BadInput(f"the voice library is full ({max_voices} voices); remove some first")
                if target.exists():
                    old = self.root / f".old-{uuid.uuid4().hex[:12]}"
                    os.rename(target, old)
                    os.rename(staging, target)
                    shutil.rmtree(old, ignore_errors=True)
                else:
                    os.rename(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        log.info("voice %s added to %s (%.1f s from %s)", name, self.root, voice.duration_s, voice.source)
        return voice

    def get(self, name: str) -> LibraryVoice:
        """The voice ``name``; ``VoiceNotFound`` naming the library when it has none."""
        try:
            path = self.root / check_name(name) / ENTRY
        except BadInput:
            path = None
        if path is None or not path.is_file():
            raise VoiceNotFound(f"no voice named {name!r} in the voice library (`dubgraph voices list` or GET "
                                "/v1/voices shows its voices)")
        try:
            return _voice(json.loads(path.read_text()))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("voice %s in %s is unreadable: %s", name, self.root, exc)
            raise VoiceNotFound(f"the voice {name!r} is unreadable; add it again") from None

    def voices(self) -> list[LibraryVoice]:
        """Every voice, by name."""
        found = []
        for name in self._names():
            with contextlib.suppress(VoiceNotFound):  # removed meanwhile, or damaged
                found.append(self.get(name))
        return found

    def remove(self, name: str) -> None:
        with self._locked():
            self.get(name)
            gone = self.root / f".old-{uuid.uuid4().hex[:12]}"
            os.rename(self.root / name, gone)
        shutil.rmtree(gone, ignore_errors=True)
        log.info("voice %s removed from %s", name, self.root)

    def clip(self, voice: LibraryVoice) -> Clip:
        value = self._load(voice, CLIP)
        if not isinstance(value, Clip):
            raise VoiceNotFound(f"the voice {voice.name!r} has no readable clip; add it again")
        return value

    def conditionals(self, voice: LibraryVoice, model: str) -> Any | None:
        """The voice's conditionals for synthesizer ``model`` when they were computed before, else None."""
        return self._cached(voice, "conds", model)

    def keep_conditionals(self, voice: LibraryVoice, model: str, value: Any) -> None:
        self._keep(voice, "conds", model, value, "prepared")

    def embedding(self, voice: LibraryVoice, model: str) -> SpeakerEmbedding | None:
        value = self._cached(voice, "embedding", model)
        return value if isinstance(value, SpeakerEmbedding) else None

    def keep_embedding(self, voice: LibraryVoice, embedding: SpeakerEmbedding) -> None:
        self._keep(voice, "embedding", embedding.model, embedding, "embedded")

    def _file(self, voice: LibraryVoice, kind: str, model: str) -> str:
        return f"{kind}-{hashlib.sha256(f'{voice.clip_key}|{model}'.encode()).hexdigest()[:20]}.npz"

    def _cached(self, voice: LibraryVoice, kind: str, model: str) -> Any | None:
        try:
            return self._load(voice, self._file(voice, kind, model))
        except VoiceNotFound:
            return None

    def _load(self, voice: LibraryVoice, file: str) -> Any:
        path = self.root / voice.name / file
        try:
            return plain.load(path)
        except (plain.NotPlainData, OSError) as exc:
            if path.exists():
                log.warning("ignoring an unreadable file of voice %s: %s", voice.name, exc)
            raise VoiceNotFound(f"{path} is missing or unreadable") from None

    def _keep(self, voice: LibraryVoice, kind: str, model: str, value: Any, listed: str) -> None:
        """Store a value computed from ``voice``'s clip, unless the voice was removed or replaced meanwhile."""
        directory = self.root / voice.name
        with self._locked():
            try:
                current = self.get(voice.name)
            except VoiceNotFound:
                return
            if current.clip_key != voice.clip_key:
                return
            plain.save(directory / self._file(voice, kind, model), value)
            models = tuple(dict.fromkeys(getattr(current, listed) + (model,)))
            atomic_write_json(directory / ENTRY, _entry_json(replace(current, **{listed: models})))

    def _names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if NAME.match(p.name) and (p / ENTRY).is_file())

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            handle = open(self.root / LOCK, "a")
        except OSError as exc:
            raise OutputNotWritable(f"cannot write to the voice library {self.root}: {exc.strerror or exc}; "
                                    "choose another with --voices (or $DUBGRAPH_VOICES)") from None
        with handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _entry_json(voice: LibraryVoice) -> dict:
    return {**voice.to_json(), "duration_s": voice.duration_s, "added_s": voice.added_s}


def _voice(data: dict) -> LibraryVoice:
    return LibraryVoice(data["name"], data["clip_key"], float(data["duration_s"]), int(data["sr"]), data["source"],
                        float(data["added_s"]), tuple(data.get("prepared", ())), tuple(data.get("embedded", ())))
