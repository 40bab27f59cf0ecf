"""Backfills in-process on the session's Ray with the offline profile: outputs and run manifest, skipping what is
done, redoing only what a change affects, and corrupt files failing alone."""

import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf

from graph.backfill.manifest import content_hash
from graph.options import TtsOptions, to_dict

from .helpers import OPTIONS, ROOT, backfill, by_name, checkpoint_mtimes, output_mtimes, run_manifest

pytestmark = pytest.mark.slow  # six files dubbed, then reruns


@pytest.fixture(scope="module")
def first_run(offline_stages, clip_dir, tmp_path_factory):
    """The six clips dubbed once; tests copy the output directory before running into it again."""
    out = tmp_path_factory.mktemp("first-run") / "out"
    return out, backfill([clip_dir], out, offline_stages)


def copy_of(first_run, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(first_run[0], out)
    return out


def test_six_files_are_dubbed_with_outputs_and_run_manifest(first_run, clip_dir):
    out, summary = first_run
    assert (summary.succeeded, summary.failed, summary.skipped, summary.total, summary.exit_code) == (6, 0, 0, 6, 0)
    data = run_manifest(out)
    assert data["settings"]["options"] == json.loads(json.dumps(to_dict(OPTIONS)))
    assert data["counts"] == {"pending": 0, "running": 0, "done": 6, "failed": 0}
    assert sorted(by_name(out)) == [f"clip{i}.wav" for i in range(6)]
    for key, item in data["items"].items():
        assert key == content_hash(Path(item["input"])) and Path(item["input"]).parent == clip_dir
        assert item["state"] == "done" and item["settings"] == data["settings_key"] and not item["error"]
        assert set(item["outputs"]) == {"pt-br"} and set(item["outputs"]["pt-br"]) == {"wav", "srt"}
        info = sf.info(out / item["outputs"]["pt-br"]["wav"])
        assert abs(info.frames / info.samplerate - item["duration_s"]) < 1e-3
        assert " --> " in (out / item["outputs"]["pt-br"]["srt"]).read_text()
        job = json.loads((out / item["manifest"]).read_text())
        assert job["options"] == data["settings"]["options"]  # the options travel with every output
        assert job["input"] == Path(item["input"]).name and job["languages"]["pt-br"]["lines"]
        assert {"decode", "asr", "diarize", "translate:pt-br", "synthesize:pt-br"} <= set(item["stage_s"])
    progress = data["progress"]
    assert progress["items_done"] == progress["items_total"] == 6 and progress["eta_s"] == 0
    audio_s = sum(item["duration_s"] for item in data["items"].values())
    assert progress["audio_done_h"] == pytest.approx(audio_s / 3600, abs=1e-3)
    assert {"asr", "synthesize"} <= set(progress["stage_x_real_time"])
    assert data["summary"]["exit_code"] == 0


def test_rerun_skips_what_is_done(first_run, clip_dir, offline_stages, tmp_path):
    out = copy_of(first_run, tmp_path)
    before = output_mtimes(out)
    summary = backfill([clip_dir], out, offline_stages)
    assert (summary.succeeded, summary.failed, summary.skipped, summary.exit_code) == (0, 0, 6, 0)
    assert output_mtimes(out) == before


def test_changed_input_or_setting_redoes_only_what_it_affects(
    first_run, clip_dir, extra_clip, offline_stages, tmp_path
):
    out = copy_of(first_run, tmp_path)
    inputs = tmp_path / "in"
    shutil.copytree(clip_dir, inputs)
    shutil.copy(extra_clip, inputs / "clip0.wav")  # clip0 now holds other speech: a new item
    before = output_mtimes(out)
    summary = backfill([inputs], out, offline_stages)
    assert (summary.succeeded, summary.skipped) == (1, 5)
    items = by_name(out)
    assert items["clip0.wav"]["state"] == "done" and items["clip0.wav"]["stage_s"].get("asr") is not None
    untouched = {name: t for name, t in before.items() if not name.startswith("clip0-")}
    assert {name: output_mtimes(out)[name] for name in untouched} == untouched

    # another seed changes every line, and nothing else: transcripts, turns, translations and voices are reused
    lines_before = {k for k in checkpoint_mtimes(out) if "/line-" in k}
    summary = backfill([inputs], out, offline_stages, dataclasses.replace(OPTIONS, tts=TtsOptions(seed=7)))
    assert (summary.succeeded, summary.skipped, summary.exit_code) == (6, 0, 0)
    for item in by_name(out).values():
        assert not {"asr", "diarize", "translate:pt-br"} & set(item["stage_s"]), item["stage_s"]
        assert item["reused_units"] >= 4  # transcript, turns, translations, at least one speaker's conditionals
    lines_after = {k for k in checkpoint_mtimes(out) if "/line-" in k}
    assert lines_before < lines_after  # every line was synthesized again under its new seed


def test_corrupt_files_fail_alone_with_their_reason(first_run, clip_dir, extra_clip, offline_stages, tmp_path):
    out = copy_of(first_run, tmp_path)
    inputs = tmp_path / "in"
    shutil.copytree(clip_dir, inputs)
    shutil.copy(extra_clip, inputs / "extra.wav")
    wav = extra_clip.read_bytes()
    (inputs / "truncated.wav").write_bytes(wav[: len(wav) * 6 // 10])  # its header still declares the full length
    (inputs / "notes.wav").write_text("This is a text file that somebody named .wav.\n" * 20)
    summary = backfill([inputs], out, offline_stages)
    assert (summary.succeeded, summary.failed, summary.skipped, summary.total, summary.exit_code) == (1, 2, 6, 9, 1)
    assert "truncated" in summary.failures[str(inputs / "truncated.wav")]
    assert "notes.wav" in summary.failures[str(inputs / "notes.wav")]
    items = by_name(out)
    assert items["extra.wav"]["state"] == "done"
    for name in ("truncated.wav", "notes.wav"):
        assert items[name]["state"] == "failed" and items[name]["error"] and not items[name]["outputs"]
    assert not list(out.glob("truncated-*/pt-br.*"))
    assert run_manifest(out)["summary"]["failed"] == 2


def test_cli_rejects_bad_arguments_before_any_work(tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "graph.backfill", "--input", str(tmp_path / "missing"), "--to", "pt-br,es",
         "--out", str(tmp_path / "out")],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 2 and "unsupported target language 'es'" in run.stderr, run.stderr[-2000:]
    run = subprocess.run(
        [sys.executable, "-m", "graph.backfill", "--input", str(tmp_path / "missing"), "--to", "pt-br",
         "--out", str(tmp_path / "out")],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 2 and "no such file, directory or glob match" in run.stderr, run.stderr[-2000:]
