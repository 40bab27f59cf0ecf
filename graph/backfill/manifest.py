"""A backfill's inputs and its run manifest: every item's state and outputs, rewritten atomically on each change.

An item is one input file, identified by the hash of its bytes (so a renamed or moved file is still the same
item, and an edited one is a new one). Its state counts only for the settings key it was reached with: a rerun
skips items ``done`` under the current settings whose files are all still there, and redoes everything else.

Sidecar files beside an input, named after it, come with it: ``talk.srt`` or ``talk.vtt`` (its transcript,
instead of ASR), ``talk.pt-br.srt`` (a target's translation of that transcript, instead of machine translation)
and ``talk.edits.json`` (line edits applied after the first pass, then rendered: graph/run/editing.py). A change
to any of them redoes the item (from its checkpoints).
"""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from graph import audio
from graph.errors import BadInput, DubError
from graph.files import atomic_write_json
from graph.run.checkpoint import key_of

log = logging.getLogger(__name__)

MANIFEST_NAME = "backfill.json"
MANIFEST_VERSION = 1
MEDIA_SUFFIXES = frozenset(
    ".wav .flac .mp3 .m4a .aac .ogg .oga .opus .wma .aif .aiff .mp4 .m4v .mkv .webm .mov .avi".split()
)
LIST_SUFFIXES = frozenset({".txt", ".lst", ".list"})
HASH_CHUNK_BYTES = 1 << 20
SCAN_THREADS = 8  # hashing and ffprobe wait on the disk and on subprocesses, not on the GIL


@dataclass
class Item:
    """One input file and what became of it; ``key`` is the content hash ("unreadable-..." when unreadable)."""

    key: str
    input: str
    size: int = 0
    mtime_ns: int = 0
    duration_s: float | None = None
    state: str = "pending"  # pending | running | done | failed
    settings: str = ""  # settings key that ``state`` refers to
    # paths relative to the run's output directory, so it can be moved or synced as a whole
    out_dir: str = ""
    outputs: dict[str, dict[str, str]] = field(default_factory=dict)  # language ("dubbed": every one) -> format -> path
    manifest: str = ""  # the item's own manifest.json (options, models, every line)
    error: str = ""
    stage_s: dict[str, float] = field(default_factory=dict)
    reused_units: int = 0  # checkpointed units (transcript, translations, lines...) reused by the last attempt
    attempts: int = 0
    duplicates: list[str] = field(default_factory=list)  # other inputs with the same bytes (dubbed once)
    sidecars: str = ""  # key of the sidecar files' names and contents the item was dubbed with
    started_at: float | None = None
    finished_at: float | None = None

    def is_done(self, settings: str, root: Path) -> bool:
        """Done under ``settings`` and every file it produced still under ``root`` (the run's output directory)."""
        if self.state != "done" or self.settings != settings or not (root / self.manifest).is_file():
            return False
        return all((root / path).is_file() for files in self.outputs.values() for path in files.values())

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Item":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def settings_key(settings: dict[str, Any]) -> str:
    """Key of everything that shapes an item's outputs (options, profile, model names)."""
    return key_of(json.dumps(settings, sort_keys=True))


class RunManifest:
    """``OUT/backfill.json``: the run's settings, progress and items; a reader never sees a half-written file."""

    def __init__(self, path: Path, settings: dict[str, Any], previous: dict[str, Item] | None = None):
        self.path = path
        self.settings = settings
        self.settings_key = settings_key(settings)
        self.previous = previous or {}
        self.items: dict[str, Item] = {}
        self.progress: dict[str, Any] = {}
        self.summary: dict[str, Any] = {}  # the final counts, once the run ends
        self.created_at = time.time()

    @classmethod
    def open(cls, out_dir: Path, settings: dict[str, Any]) -> "RunManifest":
        """A manifest for this run that remembers the items of the last run into ``out_dir``."""
        path = out_dir / MANIFEST_NAME
        previous: dict[str, Item] = {}
        if path.is_file():
            try:
                data = json.loads(path.read_text())
                previous = {key: Item.from_json(value) for key, value in data.get("items", {}).items()}
            except (OSError, ValueError, TypeError) as exc:
                log.warning("ignoring unreadable run manifest %s (%s): every item will be redone", path, exc)
        return cls(path, settings, previous)

    def save(self) -> None:
        counts = {state: 0 for state in ("pending", "running", "done", "failed")}
        for item in self.items.values():
            counts[item.state] = counts.get(item.state, 0) + 1
        atomic_write_json(
            self.path,
            {
                "version": MANIFEST_VERSION,
                "settings_key": self.settings_key,
                "settings": self.settings,
                "created_at": self.created_at,
                "updated_at": time.time(),
                "counts": counts,
                "progress": self.progress,
                "summary": self.summary,
                "items": {key: item.to_json() for key, item in self.items.items()},
            },
        )


def find_inputs(specs: list[str], exclude: Path | None = None) -> list[Path]:
    """Input files from DIRs (recursive, media suffixes), LISTFILEs (.txt/.lst: one path a line), GLOBs or files.

    Paths under ``exclude`` (the output directory) are skipped, so a rerun never dubs its own outputs.
    """
    found: list[Path] = []
    for spec in specs:
        path = Path(spec)
        if any(ch in spec for ch in "*?["):
            paths = [Path(p) for p in sorted(glob.glob(spec, recursive=True)) if Path(p).is_file()]
            if not paths:
                raise BadInput(f"--input {spec}: the pattern matches no file")
        elif path.is_dir():
            paths = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in MEDIA_SUFFIXES)
        elif path.is_file() and path.suffix.lower() in LIST_SUFFIXES:
            lines = (line.strip() for line in path.read_text().splitlines())
            paths = [path.parent / line for line in lines if line and not line.startswith("#")]
        elif path.exists():
            paths = [path]
        else:
            raise BadInput(f"--input {spec}: no such file, directory or glob match")
        found += paths
    if exclude is not None:
        root = exclude.resolve()
        found = [p for p in found if not p.resolve().is_relative_to(root)]
    return list(dict.fromkeys(p.absolute() for p in found))


TRANSCRIPT_SUFFIXES = (".srt", ".vtt")
EDITS_SUFFIX = ".edits.json"


@dataclass(frozen=True)
class Sidecars:
    """The files that come with one input (see the module doc)."""

    transcript: Path | None = None
    translations: dict[str, Path] = field(default_factory=dict)  # target language -> file
    edits: Path | None = None

    @classmethod
    def of(cls, path: Path, targets: tuple[str, ...]) -> "Sidecars":
        def first(*names: str) -> Path | None:
            return next((path.with_name(n) for n in names if path.with_name(n).is_file()), None)

        stem = path.stem
        translations = {lang: found for lang in targets
                        if (found := first(*(f"{stem}.{lang}{suffix}" for suffix in TRANSCRIPT_SUFFIXES)))}
        return cls(first(*(stem + suffix for suffix in TRANSCRIPT_SUFFIXES)), translations, first(stem + EDITS_SUFFIX))

    def key(self) -> str:
        files = [self.transcript, *self.translations.values(), self.edits]
        return key_of([(p.name, content_hash(p)) for p in files if p is not None]) if any(files) else ""


def content_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()[:24]


def scan(paths: list[Path], previous: dict[str, Item], targets: tuple[str, ...] = ()) -> list[Item]:
    """One item per distinct content, with its duration; unreadable or non-audio files come back ``failed``.

    Hash and duration are reused from the last run when a file's size and mtime are unchanged. An item done with
    other sidecar files (``Sidecars``, for ``targets``) than it has now is to be redone.
    """
    known = {(item.input, item.size, item.mtime_ns): item for item in previous.values() if item.size}

    def one(path: Path) -> Item:
        try:
            stat = path.stat()
            old = known.get((str(path), stat.st_size, stat.st_mtime_ns))
            if old is not None:
                key, duration_s = old.key, old.duration_s
            else:
                key, duration_s = content_hash(path), audio.probe(path).duration_s
            prior = previous.get(key)
            item = Item.from_json(prior.to_json()) if prior else Item(key, str(path))
            item.input, item.size, item.mtime_ns, item.duration_s, item.duplicates = (
                str(path), stat.st_size, stat.st_mtime_ns, duration_s, [])
            sidecars = Sidecars.of(path, targets).key()
            if item.state != "done" or item.sidecars != sidecars:  # killed, failed, or its sidecars changed: redo
                item.state, item.error = "pending", ""
            item.sidecars = sidecars
            return item
        except (OSError, DubError) as exc:
            reason = str(exc) if isinstance(exc, DubError) else f"cannot read {path}: {exc.strerror or exc}"
            return Item("unreadable-" + key_of(str(path)), str(path), state="failed", error=reason)

    with ThreadPoolExecutor(SCAN_THREADS) as pool:
        scanned = list(pool.map(one, paths))
    items: dict[str, Item] = {}
    for item in scanned:
        if item.key in items:
            log.warning("%s has the same content as %s: dubbed once", item.input, items[item.key].input)
            items[item.key].duplicates.append(item.input)
        else:
            items[item.key] = item
    return list(items.values())
