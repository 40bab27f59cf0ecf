"""The voice library and a job's voices and words through the `dubgraph` command, each step its own process:
what one process added, the next one finds (the library lives on disk), and bad input ends with exit code 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.fixtures.make_dialogue import SR, speak, write_transcript

ROOT = Path(__file__).resolve().parents[2]


def dubgraph(*args, timeout=900):
    return subprocess.run([sys.executable, "-m", "graph.cli", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.slow
def test_library_voices_persist_across_processes_and_a_job_uses_them(dialogue, tmp_path):
    library = tmp_path / "voices"
    clip = tmp_path / "alice.wav"
    sf.write(clip, np.concatenate([speak("Hello, I am recording a clean sample of my voice.", "beth"),
                                   speak("It is used for every episode of the series.", "beth")]), SR)
    added = dubgraph("voices", "add", "alice", clip, "--voices", library)
    assert added.returncode == 0 and "added voice alice" in added.stdout, added.stderr
    twice = dubgraph("voices", "add", "alice", clip, "--voices", library)
    assert twice.returncode == 2 and "error: the library already has a voice named 'alice'" in twice.stderr
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(5 * SR, np.float32), SR)
    bad = dubgraph("voices", "add", "bob", silent, "--voices", library)
    assert bad.returncode == 2 and "silent.wav is silent" in bad.stderr

    own = tmp_path / "alex.wav"
    sf.write(own, np.concatenate([speak("This is the studio recording of the actor.", "colin"),
                                  speak("Use it instead of the noisy excerpt.", "colin")]), SR)
    transcript = write_transcript(dialogue, tmp_path / "talk.srt", named=True)  # neither ASR nor diarization runs
    glossary = tmp_path / "glossary.yaml"
    glossary.write_text("terms:\n  pt-br:\n    report: relato\nkeep: [March]\npronounce:\n  pt-br:\n    relato: relláto\n")
    out = tmp_path / "out"
    run = dubgraph("dub", dialogue.path, "--to", "pt-br", "--out", out, "--transcript", transcript,
                   "--source-language", "en", "--voices", library, "--library-voice", "beth=alice",
                   "--voice", f"alex={own}", "--glossary", glossary, "--formats", "wav,srt")
    assert run.returncode == 0, run.stderr[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["voices"]["alex"]["source"] == "clip" and manifest["voices"]["alex"]["clip"] == "alex.wav"
    assert manifest["voices"]["beth"] | {"key": None} == {
        "source": "library", "voice": "alice", "computed": True, "flags": [], "key": None,
        "reference_s": manifest["voices"]["beth"]["reference_s"]}
    lines = manifest["languages"]["pt-br"]["lines"]
    report = [line for line in lines if "report" in line["source_text"]]
    assert report and all("relato" in line["text"] for line in report)
    assert all("March" in line["text"] for line in lines if "March" in line["source_text"])
    assert "relato" in (out / "pt-br.srt").read_text() and "relláto" not in (out / "pt-br.srt").read_text()

    listed = json.loads(dubgraph("voices", "list", "--json", "--voices", library).stdout)
    assert [v["name"] for v in listed] == ["alice"] and listed[0]["prepared"] == ["espeak-ng voices"]
    assert dubgraph("voices", "remove", "alice", "--voices", library).returncode == 0
    gone = dubgraph("voices", "remove", "alice", "--voices", library)
    assert gone.returncode == 2 and "no voice named 'alice'" in gone.stderr


def test_bad_voices_and_words_end_with_exit_code_2_before_any_model_starts(dialogue, tmp_path):
    glossary = tmp_path / "glossary.json"
    glossary.write_text(json.dumps({"terms": {"tlh": {"report": "ghItlh"}}}))
    run = dubgraph("dub", dialogue.path, "--to", "pt-br", "--out", tmp_path / "o", "--glossary", glossary)
    assert run.returncode == 2 and "error: unsupported glossary terms language 'tlh'" in run.stderr
    short = tmp_path / "short.wav"
    sf.write(short, speak("Hi.", "alex")[: SR // 5], SR)
    run = dubgraph("dub", dialogue.path, "--to", "pt-br", "--out", tmp_path / "o", "--voice", f"SPEAKER_00={short}")
    assert run.returncode == 2 and "short.wav (for SPEAKER_00) is 0.2 s long" in run.stderr
    run = dubgraph("dub", dialogue.path, "--to", "pt-br", "--out", tmp_path / "o", "--voices", tmp_path / "none",
                   "--library-voice", "SPEAKER_00=ghost")
    assert run.returncode == 2 and "speaker SPEAKER_00: no voice named 'ghost'" in run.stderr
    assert not (tmp_path / "o" / "manifest.json").exists()

