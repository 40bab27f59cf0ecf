"""Values as plain data on disk: a JSON tree plus numeric numpy arrays in one ``.npz``, read back without pickle.

Why not pickle: loading a pickle runs whatever code it names, so a checkpoint directory, a stored voice or an
edit's inputs that came from anywhere but this process would be a way in. Loading this format only parses JSON
and ``.npy`` headers (``np.load(..., allow_pickle=False)``), and records are rebuilt by name from ``RECORDS``,
never by importing a path the file names. Why not safetensors: it holds flat tensors with str -> str metadata,
so the structure would be JSON in a side channel anyway; numpy's zip needs nothing beyond numpy.

Values: None, bool, int, float (NaN and inf too), str, list, tuple, dict with str keys, numeric ``np.ndarray``
(bool, int, uint, float, complex, any shape) and the records in ``RECORDS``; numpy scalars become Python
numbers. The file is numpy's npz (a zip): ``unit.json`` = {"format", "version", "value": tree} and one
``aN.npy`` per array. In the tree scalars and lists are themselves; arrays, tuples, dicts and records are tagged:
{"$array": "a0"}, {"$tuple": [...]}, {"$dict": {...}}, {"$record": "Word", "fields": {...}}.
``unzip -p FILE unit.json`` shows a file's structure.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from graph.errors import BadInput
from graph.files import atomic_write
from graph.types import (
    NUMERIC_KINDS,
    Clip,
    LanguageOutput,
    PlacedLine,
    SpeakerEmbedding,
    SpeakerTurn,
    Transcript,
    Translation,
    Utterance,
    VoiceConditionals,
    Word,
)

FORMAT, VERSION = "dubgraph.plain", 1
TREE = "unit.json"
ZIP_MAGIC = b"PK\x03\x04"
RECORDS: dict[str, type] = {
    cls.__name__: cls
    for cls in (Clip, Word, Transcript, SpeakerTurn, Utterance, Translation, PlacedLine, LanguageOutput,
                VoiceConditionals, SpeakerEmbedding)
}


class NotPlainData(BadInput):
    """A file or tree that is not in this format (an old pickle, a truncated file, a tampered one): never loaded."""


def encode(value: Any) -> tuple[Any, dict[str, np.ndarray]]:
    """``value`` as a JSON-able tree and the arrays it names; TypeError for anything outside the allowed values."""
    arrays: dict[str, np.ndarray] = {}

    def walk(v: Any) -> Any:
        if v is None or isinstance(v, (bool, str)):
            return v
        if isinstance(v, (int, float, np.bool_, np.integer, np.floating)):
            return v.item() if isinstance(v, np.generic) else v
        if isinstance(v, np.ndarray):
            if v.dtype.kind not in NUMERIC_KINDS:
                raise TypeError(f"only numeric arrays are plain data, not dtype {v.dtype}")
            name = f"a{len(arrays)}"
            arrays[name] = v
            return {"$array": name}
        if isinstance(v, list):
            return [walk(x) for x in v]
        if isinstance(v, tuple):
            return {"$tuple": [walk(x) for x in v]}
        if isinstance(v, dict):
            if not all(isinstance(k, str) for k in v):
                raise TypeError(f"only dicts with str keys are plain data, not keys {sorted(map(repr, v))}")
            return {"$dict": {k: walk(x) for k, x in v.items()}}
        if RECORDS.get(type(v).__name__) is type(v):
            fields = {f.name: walk(getattr(v, f.name)) for f in dataclasses.fields(v)}
            return {"$record": type(v).__name__, "fields": fields}
        raise TypeError(f"{type(v).__module__}.{type(v).__qualname__} is not plain data (see graph/plain.py)")

    return walk(value), arrays


def decode(tree: Any, arrays: Mapping[str, Any]) -> Any:
    """The value ``encode`` made ``tree`` and ``arrays`` from; NotPlainData for anything else."""

    def walk(node: Any) -> Any:
        if node is None or isinstance(node, (bool, int, float, str)):
            return node
        if isinstance(node, list):
            return [walk(x) for x in node]
        if not isinstance(node, dict) or len(node) not in (1, 2):
            raise NotPlainData(f"unexpected node {_short(node)}")
        if len(node) == 1 and "$array" in node:
            return _array(arrays, node["$array"])
        if len(node) == 1 and isinstance(node.get("$tuple"), list):
            return tuple(walk(x) for x in node["$tuple"])
        if len(node) == 1 and isinstance(node.get("$dict"), dict):
            return {k: walk(x) for k, x in node["$dict"].items()}
        if node.keys() == {"$record", "fields"} and isinstance(node["fields"], dict):
            return _record(node["$record"], {k: walk(x) for k, x in node["fields"].items()})
        raise NotPlainData(f"unexpected node {_short(node)}")

    return walk(tree)


def save(path: str | Path, value: Any) -> Path:
    """Write ``value`` to ``path`` atomically (a reader sees the old file or the whole new one)."""
    import zipfile

    tree, arrays = encode(value)
    head = json.dumps({"format": FORMAT, "version": VERSION, "value": tree}, ensure_ascii=False).encode()

    def write(handle) -> None:
        with zipfile.ZipFile(handle, "w", zipfile.ZIP_STORED) as archive:
            archive.writestr(TREE, head)
            for name, array in arrays.items():
                with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, array, allow_pickle=False)

    return atomic_write(path, write)


def load(path: str | Path) -> Any:
    """The value in ``path``; NotPlainData when it is not this format (nothing in it is executed), OSError when
    it cannot be read."""
    if not Path(path).is_file():  # a FIFO or device would block or never end
        raise NotPlainData(f"{path} is not a regular file")
    with open(path, "rb") as handle:
        if handle.read(len(ZIP_MAGIC)) != ZIP_MAGIC:  # np.load would try a non-zip as .npy, then as a pickle
            raise NotPlainData(f"{path} is not a dubgraph data file (not a zip: an old pickle, or another format)")
        handle.seek(0)
        try:
            with np.load(handle, allow_pickle=False) as archive:
                head = json.loads(archive[TREE])
                if not isinstance(head, dict) or (head.get("format"), head.get("version")) != (FORMAT, VERSION):
                    raise NotPlainData(f"not {FORMAT} version {VERSION}")
                return decode(head.get("value"), archive)
        except NotPlainData as exc:
            raise NotPlainData(f"{path} is not a dubgraph data file: {exc}") from None
        except OSError:
            raise
        except Exception as exc:  # whatever a truncated or crafted zip, .npy header or JSON makes the parsers raise
            raise NotPlainData(f"{path} is not a readable dubgraph data file ({type(exc).__name__}: {exc})") from None


def _array(arrays: Mapping[str, Any], name: Any) -> np.ndarray:
    if not isinstance(name, str) or name not in arrays:
        raise NotPlainData(f"missing array {_short(name)}")
    array = arrays[name]  # np.load with allow_pickle=False: object arrays raise instead of unpickling
    if not isinstance(array, np.ndarray) or array.dtype.kind not in NUMERIC_KINDS:
        raise NotPlainData(f"array {name} is not a numeric array")
    return array


def _record(name: Any, fields: dict[str, Any]) -> Any:
    cls = RECORDS.get(name) if isinstance(name, str) else None
    if cls is None:
        raise NotPlainData(f"unknown record {_short(name)} (known: {', '.join(sorted(RECORDS))})")
    wanted = {f.name for f in dataclasses.fields(cls) if f.init}
    required = {f.name for f in dataclasses.fields(cls)
                if f.init and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
    if not required <= fields.keys() <= wanted:  # a field added later with a default may be absent in older files
        raise NotPlainData(f"record {name} needs fields {sorted(wanted)}, got {sorted(fields)}")
    try:
        return cls(**fields)
    except (TypeError, ValueError, BadInput) as exc:
        raise NotPlainData(f"record {name}: {exc}") from None


def _short(node: Any) -> str:
    text = repr(node)
    return text if len(text) <= 80 else text[:77] + "..."
