"""graph.plain and graph.run.checkpoint: every unit the pipeline stores round-trips as plain data, and nothing
that is not plain data (an old pickle, a crafted pickle, a pickle inside an .npy, garbage) is ever executed."""

from __future__ import annotations

import io
import json
import logging
import math
import pickle
import zipfile

import numpy as np
import pytest

from graph import plain
from graph.errors import BadInput
from graph.run.checkpoint import Checkpoint
from graph.types import (
    Clip,
    LanguageOutput,
    PlacedLine,
    SpeakerTurn,
    Transcript,
    Translation,
    Utterance,
    VoiceConditionals,
    Word,
    voice_for,
)

CONDS = VoiceConditionals(
    "chatterbox", "tiny random ChatterBox",
    {"t3.speaker_emb": np.random.default_rng(0).normal(size=(1, 256)).astype(np.float32),
     "t3.cond_prompt_speech_tokens": np.arange(150, dtype=np.int64).reshape(1, 150),
     "gen.prompt_token": np.arange(20, dtype=np.int32).reshape(1, 20),
     "gen.prompt_token_len": np.array([20], dtype=np.int32),
     "gen.prompt_feat": np.ones((1, 40, 80), dtype=np.float32),
     "gen.embedding": np.zeros((1, 192), dtype=np.float32)},
    {"gen.prompt_feat_len": None},
)
ESPEAK = VoiceConditionals("espeak", "espeak-ng", meta={"variant": "f2", "pitch": 61, "f0_hz": 201.5,
                                                       "centroid_hz": None})
LINE = PlacedLine("u0001", "SPEAKER_00", "pt-br", 0.5, 2.5, "Hello.", "Olá.", ("Olá.", "Oi."), 0, 0.5, 2.1, 1.0,
                  ("stretched",))
# What the pipeline checkpoints (graph/run/pipeline.py, lines.py), and the other records of graph.types.
UNITS = {
    "transcript": Transcript("en", (Word("Hello", 0.5, 0.9, 0.98), Word("there.", 0.9, 1.4, np.float64(0.7)))),
    "turns": [SpeakerTurn("SPEAKER_00", 0.0, 2.5), SpeakerTurn("SPEAKER_01", 2.5, 4.0)],
    "translations": {"u0000": Translation("u0000", "pt-br", ("Olá, tudo bem?", "Oi")),
                     "u0001": Translation("u0001", "pt-br", ("",))},
    "chatterbox conditionals": CONDS,
    "espeak conditionals": ESPEAK,
    "stand-in conditionals": {"f0": 130.0},
    "line": np.linspace(-1, 1, 24_000, dtype=np.float32),
    "empty line": np.zeros(0, dtype=np.float32),
    "records": [Utterance("u0", "A", 0.0, 1.0, "Hi."), Clip(np.ones(3, np.float32), 24_000), LINE,
                LanguageOutput("pt-br", {"wav": "pt-br.wav"}, (LINE,))],
    "plain": {"none": None, "flag": True, "n": 2**70, "x": -0.0, "s": "ç\n\"$tuple\"", "nested": [(1, [2]), ()],
              "$tuple": [1], "$array": "a0", "scalars": [np.int16(3), np.bool_(False), np.float32(0.25)],
              "shapes": [np.zeros((0, 3)), np.array(5, np.uint8), np.array([[1 + 2j]]), np.ones((2, 3), "<f8").T]},
}


def same(a, b) -> bool:
    """Equal values of equal types all the way down (arrays: equal dtype, shape and contents)."""
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return type(b) is dict and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if hasattr(a, "__dataclass_fields__"):
        return type(a) is type(b) and all(same(getattr(a, f), getattr(b, f)) for f in a.__dataclass_fields__)
    if isinstance(a, np.generic):
        return type(b) in (int, float, bool) and a.item() == b
    return type(a) is type(b) and (a == b or (isinstance(a, float) and math.isnan(a) and math.isnan(b)))


@pytest.mark.parametrize("name", UNITS)
def test_every_stored_unit_round_trips(name, tmp_path):
    value = UNITS[name]
    store = Checkpoint(tmp_path)
    store.put("unit-" + name.replace(" ", "-"), value)
    again = store.get("unit-" + name.replace(" ", "-"))
    assert same(value, again) and store.hits == 1
    assert not same(value, [again])  # the comparison can tell values apart


def test_nan_and_infinity_survive(tmp_path):
    plain.save(tmp_path / "x.npz", [math.nan, math.inf, -math.inf])
    got = plain.load(tmp_path / "x.npz")
    assert math.isnan(got[0]) and got[1:] == [math.inf, -math.inf]


def test_the_file_is_an_npz_with_readable_structure(tmp_path):
    path = plain.save(tmp_path / "conds.npz", CONDS)
    with np.load(path, allow_pickle=False) as archive:
        assert sorted(archive.files) == ["a0", "a1", "a2", "a3", "a4", "a5", "unit.json"]
        head = json.loads(archive["unit.json"])
    assert head["format"] == "dubgraph.plain" and head["version"] == 1
    assert head["value"]["$record"] == "VoiceConditionals" and head["value"]["fields"]["kind"] == "chatterbox"


@pytest.mark.parametrize("value", [object(), {1: "x"}, {"s"}, np.array(["text"]), np.array([None], dtype=object),
                                   np.zeros(2, dtype=[("a", "f4")]), b"bytes", 1j, pickle, Exception("x")])
def test_what_is_not_plain_data_is_refused_when_stored(value, tmp_path):
    with pytest.raises(TypeError):
        Checkpoint(tmp_path).put("bad", value)
    assert not list(tmp_path.iterdir())  # nothing half-written left behind


def test_records_are_rebuilt_only_from_the_allowlist():
    tree, arrays = plain.encode(Word("hi", 0.0, 1.0))
    assert plain.decode(tree, arrays) == Word("hi", 0.0, 1.0)
    for name in ("os.system", "subprocess.Popen", "Checkpoint", "DubOptions", "builtins.eval"):
        with pytest.raises(plain.NotPlainData, match="unknown record"):
            plain.decode({"$record": name, "fields": {}}, {})
    with pytest.raises(plain.NotPlainData, match="needs fields"):
        plain.decode({"$record": "Word", "fields": {"text": "hi", "start_s": 0, "end_s": 1, "evil": 1}}, {})
    with pytest.raises(plain.NotPlainData, match="not a numeric array"):
        plain.decode({"$array": "unit.json"}, {"unit.json": b"{}"})
    with pytest.raises(plain.NotPlainData, match="unexpected node"):
        plain.decode({"$tuple": [], "$dict": {}}, {})
    with pytest.raises(plain.NotPlainData, match="expected a numeric numpy array"):  # the record's own check
        plain.decode({"$record": "VoiceConditionals",
                      "fields": {"kind": "espeak", "model": "m", "arrays": {"$dict": {"x": 1}}, "meta": {"$dict": {}}}},
                     {})


class Payload:
    """A pickle that, when loaded, creates ``marker`` (what a hostile checkpoint would do, harmlessly)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def _hostile_files(marker) -> dict[str, bytes]:
    """Every way a checkpoint file could try to get a pickle loaded, each creating ``marker`` if it were."""
    evil = pickle.dumps(Payload(marker))
    npy = io.BytesIO()
    np.lib.format.write_array(npy, np.array([Payload(marker)], dtype=object), allow_pickle=True)
    with_object_array = io.BytesIO()
    with zipfile.ZipFile(with_object_array, "w") as archive:
        archive.writestr("unit.json", json.dumps({"format": "dubgraph.plain", "version": 1,
                                                  "value": {"$array": "a0"}}))
        archive.writestr("a0.npy", npy.getvalue())
    pickled_tree = io.BytesIO()
    with zipfile.ZipFile(pickled_tree, "w") as archive:
        archive.writestr("unit.json", evil)
    return {"pickle": evil, "npy of objects": npy.getvalue(), "npz of objects": with_object_array.getvalue(),
            "pickle as the tree": pickled_tree.getvalue()}


def test_the_payloads_would_run_if_unpickled(tmp_path):
    """The hostile files below are real: loading them with pickle (or allow_pickle=True) runs their code."""
    for name, data in _hostile_files(tmp_path / "ran").items():
        if name.startswith("npz"):
            with np.load(io.BytesIO(data), allow_pickle=True) as archive:
                archive["a0"]
        elif name.startswith("npy"):
            np.load(io.BytesIO(data), allow_pickle=True)
        elif name == "pickle":
            pickle.loads(data)
        else:
            continue
        assert (tmp_path / "ran").exists(), name
        (tmp_path / "ran").unlink()


@pytest.mark.parametrize("name", ["pickle", "npy of objects", "npz of objects", "pickle as the tree"])
def test_hostile_checkpoint_is_never_executed_and_is_recomputed(name, tmp_path, caplog):
    marker = tmp_path / "ran"
    store = Checkpoint(tmp_path / "ck")
    store.put("line-x", np.ones(3, np.float32))
    (tmp_path / "ck" / "line-x.npz").write_bytes(_hostile_files(marker)[name])
    with caplog.at_level(logging.WARNING, logger="graph.run.checkpoint"):
        assert store.get("line-x") is None
    assert not marker.exists() and store.hits == 0
    assert "ignoring unreadable checkpoint" in caplog.text and "line-x.npz" in caplog.text
    store.put("line-x", np.ones(3, np.float32))  # recomputed, written over it
    assert same(store.get("line-x"), np.ones(3, np.float32))


def test_old_pickle_checkpoints_are_ignored_with_a_warning(tmp_path, caplog):
    marker = tmp_path / "ran"
    (tmp_path / "ck").mkdir()
    (tmp_path / "ck" / "asr-abc.pkl").write_bytes(pickle.dumps(Payload(marker)))
    with caplog.at_level(logging.WARNING, logger="graph.run.checkpoint"):
        assert Checkpoint(tmp_path / "ck").get("asr-abc") is None
    assert not marker.exists()
    assert "asr-abc.pkl: pickle checkpoints of older versions are never loaded" in caplog.text


@pytest.mark.parametrize("cut", [0, 3, 10, 0.5, -1])
def test_truncated_or_corrupt_files_are_ignored(cut, tmp_path, caplog):
    store = Checkpoint(tmp_path)
    store.put("translate-x", UNITS["translations"])
    path = tmp_path / "translate-x.npz"
    data = path.read_bytes()
    path.write_bytes(data[: int(cut * len(data)) if isinstance(cut, float) else cut] if cut != -1 else
                     data.replace(b"Translation", b"Translatiox"))
    with caplog.at_level(logging.WARNING):
        assert store.get("translate-x") is None
    assert "ignoring unreadable checkpoint" in caplog.text and store.hits == 0


def test_garbage_a_directory_and_a_fifo_are_ignored(tmp_path):
    import os
    import threading

    store = Checkpoint(tmp_path)
    (tmp_path / "a.npz").write_bytes(np.random.default_rng(1).bytes(4096))
    (tmp_path / "b.npz").mkdir()
    os.mkfifo(tmp_path / "c.npz")  # opening it for reading would block until a writer comes
    got = []
    reader = threading.Thread(target=lambda: got.extend(store.get(k) for k in ("a", "b", "c", "missing")), daemon=True)
    reader.start()
    reader.join(timeout=30)
    assert not reader.is_alive() and got == [None] * 4


def test_voice_for_names_who_made_the_conditionals():
    assert voice_for("espeak", ESPEAK) is ESPEAK
    with pytest.raises(BadInput, match=r"made by the chatterbox synthesizer \(tiny random ChatterBox\); prepare the "
                                        r"voice again with the espeak synthesizer"):
        voice_for("espeak", CONDS)
    with pytest.raises(BadInput, match="takes VoiceConditionals from its prepare, not a dict"):
        voice_for("chatterbox", {"f0": 1.0})
