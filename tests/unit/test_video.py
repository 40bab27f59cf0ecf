"""graph.media.video without a pipeline: two languages in one WebM, Matroska language codes, a failed mux."""

import json
import subprocess

import numpy as np
import pytest

from graph.errors import DubError
from graph.media.video import probe_video, stage_track, write_videos
from graph.options import VideoOptions
from tests.fixtures.mix import ffmpeg, packets_md5

SR = 48_000
SRT = "1\n00:00:00,500 --> 00:00:01,500\n[A] Bonjour\n"


@pytest.fixture(scope="module")
def clip_webm(tmp_path_factory):
    out = tmp_path_factory.mktemp("webm")
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x64:rate=10:d=2", "-f", "lavfi", "-i",
           "sine=frequency=220:sample_rate=48000:duration=2", "-c:v", "libvpx", "-c:a", "libopus", out / "clip.webm")
    return out / "clip.webm"


def streams(path):
    out = subprocess.run(["ffprobe", "-v", "error", "-of", "json", "-show_streams", str(path)],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)["streams"]


def test_two_languages_in_one_webm_with_opus_webvtt_and_matroska_codes(clip_webm, tmp_path):
    info = probe_video(clip_webm)
    assert info.container == "webm" and info.codecs == ("vp8",)
    tone = 0.1 * np.sin(2 * np.pi * 330 * np.arange(2 * SR) / SR).astype(np.float32)
    tracks = [stage_track(tmp_path, lang, tone, SR, info, SRT) for lang in ("fr", "de")]
    written = write_videos(tmp_path, clip_webm, info, ("webm",), tracks, VideoOptions(original=True), 0, "en")
    assert written == {"dubbed": {"webm": "dubbed.webm"}}
    got = streams(tmp_path / "dubbed.webm")
    assert [(s["codec_type"], s["codec_name"]) for s in got] == [
        ("video", "vp8"), ("audio", "opus"), ("audio", "opus"), ("audio", "opus"), ("subtitle", "webvtt"),
        ("subtitle", "webvtt")]
    assert [s["tags"]["language"] for s in got[1:]] == ["fre", "ger", "eng", "fre", "ger"]
    assert [s["disposition"]["default"] for s in got[1:4]] == [1, 0, 0]
    assert packets_md5(tmp_path / "dubbed.webm", "0:v") == packets_md5(clip_webm, "0:v")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dubbed.webm"]  # staged tracks removed


def test_a_failed_mux_leaves_nothing(clip_webm, tmp_path):
    info = probe_video(clip_webm)
    track = stage_track(tmp_path, "fr", np.zeros(SR, np.float32), SR, info, SRT)
    track.path.unlink()  # the staged audio is gone: the mux fails
    with pytest.raises(DubError, match="ffmpeg could not write fr.webm"):
        write_videos(tmp_path, clip_webm, info, ("webm",), [track], VideoOptions(combined=False), 0, "en")
    assert list(tmp_path.iterdir()) == []


def test_a_language_without_subtitles_gets_its_audio_track_alone(clip_webm, tmp_path):
    info = probe_video(clip_webm)
    tracks = [stage_track(tmp_path, "es", np.zeros(SR, np.float32), SR, info, ""),
              stage_track(tmp_path, "fr", np.zeros(SR, np.float32), SR, info, SRT)]
    write_videos(tmp_path, clip_webm, info, ("webm",), tracks, VideoOptions(), 0, "en")
    got = [(s["codec_type"], s["tags"]["language"]) for s in streams(tmp_path / "dubbed.webm")[1:]]
    assert got == [("audio", "spa"), ("audio", "fre"), ("subtitle", "fre")]
