"""Video in, video out and the background bed, through graph.run.pipeline with in-process stages.

ASR, diarization, translation and voices are the stand-ins of test_pipeline (the model actors are tested on real
libraries in tests/actors, and a real offline dub of a video in tests/e2e); the separator here returns the speech
the test mixed in, so the bed and the channel placement can be checked to the sample. Everything the user gets is
measured in the written files: ffprobe for streams, codecs, tags, dispositions and durations, packet hashes for
the copied video, decoded audio for levels and sync.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from graph.errors import BadAudio, BadInput
from graph.options import DubOptions, VideoOptions
from graph.run.pipeline import DubJob, Stages, dub
from graph.run.stages import LocalStage
from tests.fixtures.mix import ffmpeg, packets_md5
from tests.run.stand_ins import F0, Script, Turns, speech
from tests.run.test_pipeline import LINES, Tagger, ToneVoice

SR = 48_000
DURATION_S = 10.0
AAC_FRAME = 1024  # samples: the uncertainty of an AAC stream's start and end
RNG = np.random.default_rng(1)


def parts(channels: int) -> tuple[np.ndarray, np.ndarray]:
    """(speech, bed) at SR: the stand-in dialogue in the centre (both sides when stereo), a tone + noise bed."""
    n = int(DURATION_S * SR)
    voice = np.zeros(n, np.float32)
    for speaker, start, end, _ in LINES:
        tone = np.repeat(speech(end - start, F0[speaker]), SR // 16000)
        voice[int(start * SR) : int(start * SR) + len(tone)] = tone
    t = np.arange(n) / SR
    bed = np.stack([0.05 * np.sin(2 * np.pi * (55 + 11 * c) * t) + 0.01 * RNG.standard_normal(n)
                    for c in range(channels)]).astype(np.float32)
    placed = np.zeros_like(bed)
    placed[2 if channels == 6 else slice(None)] = voice
    return placed, bed


class KnownSpeech:
    """The separator's stand-in: it returns the speech that was mixed in (at the rate asked)."""

    def __init__(self, speech_mono: np.ndarray):
        self.speech = speech_mono
        self.calls = 0

    def separate(self, samples, sr):
        assert sr == SR and abs(len(samples) - len(self.speech)) <= 2 * AAC_FRAME  # codec padding at the end
        self.calls += 1
        out = np.zeros(len(samples), np.float32)
        out[: min(len(out), len(self.speech))] = self.speech[: len(out)]
        return out


def stages(separator=None) -> Stages:
    return Stages(LocalStage(Script(LINES)), LocalStage(Turns(LINES)), LocalStage(Tagger()), LocalStage(ToneVoice(), 4),
                  separator=LocalStage(separator) if separator else None)


def run(path, out, separator=None, **options):
    job = DubJob(str(path), str(out), DubOptions(targets=("pt-br",), **options), sources=("en",), targets=("pt-br",),
                 models={"synthesizer": "tone", "separator": "known speech"})
    return asyncio.run(dub(job, stages(separator)))


def probe(path: Path) -> dict:
    out = subprocess.run(["ffprobe", "-v", "error", "-of", "json", "-show_streams", "-show_format", str(path)],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def decoded(path: Path, spec: str) -> np.ndarray:
    """One audio stream on the file's timeline (silence before its first sample), mono, at SR."""
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-map", spec, "-af",
                          "aresample=async=1:first_pts=0", "-ac", "1", "-ar", str(SR), "-f", "f32le", "-"],
                         check=True, capture_output=True).stdout
    return np.frombuffer(raw, np.float32)


def level_db(x: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(np.asarray(x, np.float64) ** 2) + 1e-20))


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict:
    """A 5.1 WAV; an H.264 MP4 whose stereo track starts 0.25 s after the video plus a second (mono) track."""
    out = tmp_path_factory.mktemp("media")
    made = {}
    for name, channels in (("surround", 6), ("stereo", 2)):
        speech_part, bed = parts(channels)
        made[name] = (speech_part, bed)
        sf.write(out / f"{name}.wav", (speech_part + bed).T, SR, subtype="FLOAT")
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=330:sample_rate=48000:duration=9", out / "commentary.wav")
    ffmpeg("-f", "lavfi", "-i", f"testsrc=size=64x64:rate=10:d={DURATION_S}", "-itsoffset", "0.25",
           "-i", out / "stereo.wav", "-i", out / "commentary.wav", "-map", "0:v", "-map", "1:a", "-map", "2:a",
           "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "192k", out / "talk.mp4")
    made["talk.mp4"] = out / "talk.mp4"
    made["surround.wav"] = out / "surround.wav"
    ffmpeg("-i", out / "talk.mp4", "-map", "0", "-c", "copy", "-movflags", "+faststart", out / "indexed.mp4")
    for name in ("talk.mp4", "indexed.mp4"):  # its index at the end (ffmpeg's default) or at the front
        data = (out / name).read_bytes()
        made[f"cut-{name}"] = out / f"cut-{name}"
        made[f"cut-{name}"].write_bytes(data[: int(len(data) * 0.6)])
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x64:rate=10:d=2", "-c:v", "libx264", out / "silent_film.mp4")
    made["silent_film.mp4"] = out / "silent_film.mp4"
    return made


def test_a_51_source_keeps_its_layout_the_bed_goes_on_under_lines_and_voices_sit_in_the_centre(media, tmp_path):
    speech_part, bed = media["surround"]
    separator = KnownSpeech(speech_part[2])
    result = run(media["surround.wav"], tmp_path / "out", separator, background=True, formats=("wav",))
    track, sr = sf.read(tmp_path / "out" / "pt-br.wav", dtype="float32")
    assert sr == SR and track.shape == (int(DURATION_S * SR), 6) and separator.calls == 1
    manifest = json.loads(Path(result.manifest).read_text())
    assert manifest["background"]["method"] == "separation" and manifest["background"]["channels"] == 6
    assert np.allclose(manifest["background"]["voice_gains"], [0, 0, 1, 0, 0, 0], atol=0.01)
    for _, start, end, _ in LINES:
        span = slice(int(start * SR), int(end * SR))
        for c in (0, 1, 3, 4, 5):  # no voice off the centre; the bed at its own level under every line
            assert abs(level_db(track[span, c]) - level_db(bed[c, span])) < 0.5
            assert np.corrcoef(track[span, c], bed[c, span])[0, 1] > 0.99
    voice = track[:, 2] - bed[2]
    for speaker in sorted({s for s, *_ in LINES}):  # each speaker's dubbed lines at their level in the source
        placed = [line for line in manifest["languages"]["pt-br"]["lines"] if line["speaker"] == speaker]
        dubbed = np.concatenate([voice[int(p["start_s"] * SR) : int(p["end_s"] * SR)] for p in placed])
        source = np.concatenate([speech_part[2, int(a * SR) : int(b * SR)] for s, a, b, _ in LINES if s == speaker])
        assert abs(level_db(dubbed) - level_db(source)) < 1.0
        assert abs(np.argmax(np.abs(np.fft.rfft(dubbed))) * SR / len(dubbed) - F0[speaker]) < 15


def test_ducking_is_the_fallback_and_separation_without_a_separator_is_refused(media, tmp_path):
    speech_part, bed = media["surround"]
    result = run(media["surround.wav"], tmp_path / "out", background=True, separation=False, formats=("wav",))
    track, _ = sf.read(tmp_path / "out" / "pt-br.wav", dtype="float32")
    assert json.loads(Path(result.manifest).read_text())["background"]["method"] == "ducking"
    _, start, end, _ = LINES[0]
    assert level_db(track[int((start + 0.1) * SR) : int((end - 0.1) * SR), 0]) < -80  # the bed drops out
    with pytest.raises(BadInput, match="no separator"):
        run(media["surround.wav"], tmp_path / "again", background=True, formats=("wav",))
    assert not (tmp_path / "again" / "manifest.json").exists()


@pytest.fixture(scope="module")
def combined(media, tmp_path_factory) -> tuple[Path, dict]:
    """talk.mp4 dubbed with its background separated, the original track carried, MP4 + MKV, every language."""
    out = tmp_path_factory.mktemp("combined")
    speech_part, _ = media["stereo"]
    result = run(media["talk.mp4"], out, KnownSpeech(speech_part[0]), background=True,
                 formats=("wav", "video", "mkv"), video=VideoOptions(original=True))
    return out, json.loads(Path(result.manifest).read_text())


def test_video_out_copies_the_video_and_tags_every_track(media, combined):
    out, manifest = combined
    assert manifest["video"]["files"] == {"mp4": "dubbed.mp4", "mkv": "dubbed.mkv"}
    source_video = packets_md5(media["talk.mp4"], "0:v")
    for name, subtitle_codec, language in (("dubbed.mp4", "mov_text", "por"), ("dubbed.mkv", "subrip", "por")):
        info = probe(out / name)
        kinds = [(s["codec_type"], s["codec_name"]) for s in info["streams"]]
        assert kinds == [("video", "h264"), ("audio", "aac"), ("audio", "aac"), ("subtitle", subtitle_codec)]
        video, dub_audio, original, subs = info["streams"]
        assert packets_md5(out / name, "0:v") == source_video  # copied, never re-encoded
        assert dub_audio["tags"]["language"] == language and subs["tags"]["language"] == language
        assert original["tags"]["language"] == "eng"
        title = dub_audio["tags"].get("title") or dub_audio["tags"].get("handler_name")
        assert title == "Portuguese (Brazil) (dubbed)"
        assert (dub_audio["disposition"]["default"], original["disposition"]["default"]) == (1, 0)
        assert dub_audio["channels"] == 2  # the stereo source keeps its layout
    mp4 = probe(out / "dubbed.mp4")["streams"]
    # A/V sync: the dubbed audio starts with the video (the source's audio started 0.25 s later) and lasts as long
    assert abs(float(mp4[1]["start_time"]) - float(mp4[0]["start_time"])) <= AAC_FRAME / SR + 1e-3
    assert abs(float(mp4[1]["duration"]) - float(mp4[0]["duration"])) <= AAC_FRAME / SR + 1e-3
    assert packets_md5(out / "dubbed.mp4", "0:a:1") == packets_md5(media["talk.mp4"], "0:a:0")  # original, copied


def test_the_dub_is_in_sync_with_the_original_sound_in_the_video(media, combined):
    """The bed in the dubbed track lines up with the original track of the same file (the speech gaps)."""
    out, _ = combined
    dubbed, original = decoded(out / "dubbed.mp4", "0:a:0"), decoded(out / "dubbed.mp4", "0:a:1")
    start, end = int(0.3 * SR), int(0.7 * SR)  # the source sound starts at 0.25 s, its first line at 0.75 s
    window = original[start:end]
    lags = range(-SR // 100, SR // 100 + 1)
    scores = [float(np.dot(dubbed[start + lag : end + lag], window)) for lag in lags]
    assert abs(lags[int(np.argmax(scores))]) <= SR // 1000  # within 1 ms


def test_one_file_per_language_from_another_audio_track(media, tmp_path):
    result = run(media["talk.mp4"], tmp_path / "out", formats=("mp4",), audio_track=1,
                 video=VideoOptions(combined=False, original=True))
    assert result.outputs["pt-br"].files == {"mp4": "pt-br.mp4"} and result.videos == {}
    info = probe(tmp_path / "out" / "pt-br.mp4")
    assert [s["codec_type"] for s in info["streams"]] == ["video", "audio", "audio", "subtitle"]
    assert info["streams"][1]["channels"] == 1  # no background: the voices alone, mono
    assert packets_md5(tmp_path / "out" / "pt-br.mp4", "0:a:1") == packets_md5(media["talk.mp4"], "0:a:1")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["manifest.json", "pt-br.mp4"]  # no leftovers


@pytest.mark.parametrize(
    ("name", "options", "error", "message"),
    [
        ("cut-talk.mp4", {}, BadAudio, "incomplete MP4"),
        ("cut-indexed.mp4", {}, BadAudio, "looks truncated"),
        ("silent_film.mp4", {}, BadAudio, "no audio stream"),
        ("talk.mp4", {"audio_track": 2}, BadInput, "has 2 audio track"),
        ("talk.mp4", {"formats": ("webm",)}, BadInput, "webm holds only av1, vp8, vp9 video"),
        ("surround.wav", {"formats": ("mp4",)}, BadInput, "has no video stream"),
    ],
)
def test_bad_media_fails_clearly_and_writes_nothing(media, tmp_path, name, options, error, message):
    with pytest.raises(error, match=message):
        run(media[name], tmp_path / "out", **options)
    assert not list((tmp_path / "out").glob("*"))
