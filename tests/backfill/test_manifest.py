"""The backfill's bookkeeping without Ray: finding inputs, scanning them into items, the manifest, progress."""

import json

import numpy as np
import pytest
import soundfile as sf

from graph.backfill import manifest as backfill_manifest
from graph.backfill.manifest import Item, RunManifest, Sidecars, find_inputs, scan
from graph.backfill.progress import Progress
from graph.errors import BadInput
from graph.run.pipeline import Event


def tone(path, seconds=1.0, f0=220.0):
    t = np.arange(int(seconds * 16000)) / 16000
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, (0.3 * np.sin(2 * np.pi * f0 * t)).astype(np.float32), 16000)
    return path


def test_find_inputs_from_dir_list_and_glob_never_from_out(tmp_path):
    a = tone(tmp_path / "in" / "a.wav")
    b = tone(tmp_path / "in" / "sub" / "b.wav")
    (tmp_path / "in" / "notes.txt").write_text("not an input of a directory scan")
    tone(tmp_path / "in" / "out" / "a-12345678" / "pt-br.wav")  # a previous run's output
    listing = tmp_path / "in" / "batch.lst"
    listing.write_text("# batch 1\nsub/b.wav\n\na.wav\n")
    assert find_inputs([str(tmp_path / "in")], exclude=tmp_path / "in" / "out") == [a, b]
    assert find_inputs([str(listing)]) == [b, a]
    assert find_inputs([str(tmp_path / "in" / "**" / "*.wav"), str(a)], exclude=tmp_path / "in" / "out") == [a, b]
    with pytest.raises(BadInput, match="no such file"):
        find_inputs([str(tmp_path / "missing")])
    with pytest.raises(BadInput, match="matches no file"):
        find_inputs([str(tmp_path / "*.flac")])


def test_scan_merges_duplicates_fails_non_audio_and_reuses_known_hashes(tmp_path, monkeypatch):
    a = tone(tmp_path / "a.wav")
    copy = tmp_path / "copy.wav"
    copy.write_bytes(a.read_bytes())
    b = tone(tmp_path / "b.wav", seconds=2.0, f0=330.0)
    text = tmp_path / "text.wav"
    text.write_text("hello\n" * 50)
    items = {item.input: item for item in scan([a, copy, b, text], {})}
    assert set(items) == {str(a), str(b), str(text)}
    assert items[str(a)].duplicates == [str(copy)] and items[str(a)].duration_s == pytest.approx(1.0, abs=0.01)
    assert items[str(text)].state == "failed" and "text.wav" in items[str(text)].error
    assert items[str(b)].key == backfill_manifest.content_hash(b) and items[str(b)].state == "pending"

    previous = {item.key: item for item in items.values()}
    previous[items[str(b)].key].state = "running"  # killed mid-item last time
    hashed = []
    monkeypatch.setattr(backfill_manifest, "content_hash", lambda path: hashed.append(path) or "x" * 24)
    again = {item.input: item for item in scan([a, b], previous)}
    assert hashed == [] and again[str(b)].state == "pending"  # unchanged files are not read again


def test_sidecars_come_with_their_input_and_a_changed_one_redoes_the_item(tmp_path):
    talk = tone(tmp_path / "talk.wav")
    assert Sidecars.of(talk, ("pt-br",)) == Sidecars() and Sidecars().key() == ""
    (tmp_path / "talk.vtt").write_text("WEBVTT\n")
    (tmp_path / "talk.pt-br.srt").write_text("1\n")
    (tmp_path / "talk.es.srt").write_text("1\n")  # not a target of this run
    (tmp_path / "talk.edits.json").write_text("[]")
    found = Sidecars.of(talk, ("pt-br",))
    assert found == Sidecars(tmp_path / "talk.vtt", {"pt-br": tmp_path / "talk.pt-br.srt"}, tmp_path / "talk.edits.json")
    (item,) = scan([talk], {}, ("pt-br",))
    assert item.sidecars == found.key() != ""
    item.state = "done"
    (again,) = scan([talk], {item.key: item}, ("pt-br",))
    assert again.state == "done"  # nothing changed
    (tmp_path / "talk.edits.json").write_text('[{"id": "u0001", "text": "Outra."}]')
    (redo,) = scan([talk], {item.key: again}, ("pt-br",))
    assert redo.state == "pending" and redo.sidecars != item.sidecars


def test_run_manifest_round_trip_and_done_needs_the_files(tmp_path):
    manifest = RunManifest.open(tmp_path, {"options": {"targets": ["pt-br"]}})
    item = Item("k" * 24, str(tmp_path / "a.wav"), state="done", settings=manifest.settings_key,
                outputs={"pt-br": {"wav": "a-kkkkkkkk/pt-br.wav"}}, manifest="a-kkkkkkkk/manifest.json")
    manifest.items = {item.key: item}
    manifest.save()
    reopened = RunManifest.open(tmp_path, {"options": {"targets": ["pt-br"]}})
    assert reopened.previous[item.key] == item and reopened.settings_key == manifest.settings_key
    assert not item.is_done(manifest.settings_key, tmp_path)  # its files are not there
    for name in ("pt-br.wav", "manifest.json"):
        (tmp_path / "a-kkkkkkkk").mkdir(exist_ok=True)
        (tmp_path / "a-kkkkkkkk" / name).write_text("x")
    assert item.is_done(manifest.settings_key, tmp_path)
    assert not item.is_done(RunManifest.open(tmp_path, {"options": {"targets": ["es"]}}).settings_key, tmp_path)
    assert json.loads((tmp_path / "backfill.json").read_text())["counts"]["done"] == 1
    (tmp_path / "backfill.json").write_text("{ cut off")
    assert RunManifest.open(tmp_path, {}).previous == {}


def test_progress_rate_eta_and_stage_throughput():
    now = [0.0]
    progress = Progress(total_items=3, total_audio_s=300.0, every_s=1e9, clock=lambda: now[0])
    progress.start()
    now[0] = 10.0
    progress.event(Event("synthesize:pt-br", 1, 4, "a"))
    progress.finished(Item("a", "a.wav", duration_s=100.0, state="done",
                           stage_s={"asr": 5.0, "synthesize:pt-br": 10.0, "synthesize:es": 10.0}))
    progress.finished(Item("b", "b.wav", duration_s=100.0, state="failed", error="bad"))
    snap = progress.snapshot()
    assert (snap["items_done"], snap["succeeded"], snap["failed"], snap["lines_synthesized"]) == (2, 1, 1, 1)
    assert snap["real_time_x"] == 20.0 and snap["eta_s"] == 5.0  # 100 s of audio left at 20x
    assert snap["stage_x_real_time"] == {"asr": 20.0, "synthesize": 10.0}  # two languages: 200 s of audio per 20 s
    assert "items 2/3 (1 failed)" in progress.line() and "ETA 0:00:05" in progress.line()
