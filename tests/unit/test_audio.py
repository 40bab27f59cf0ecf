"""graph.audio: decode every container to mono float32, reject broken input with actionable errors, write atomically."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from graph import audio
from graph.audio import SAMPLE_RATE, db, decode, is_silent, probe, resample, rms_db, write_audio
from graph.errors import AudioTooLarge, BadAudio, OutputNotWritable
from graph.types import Clip
from tests.fixtures.audio import GOOD_VARIANTS
from tests.fixtures.make_dialogue import EDGE_THRESHOLD

DURATION_TOLERANCE_S = 0.1  # codec priming/padding (aac, mp3) after ffmpeg trims what it can


def envelope(samples: np.ndarray, sr: int, frame_s: float = 0.05) -> np.ndarray:
    frame = int(frame_s * sr)
    x = samples[: len(samples) // frame * frame].reshape(-1, frame)
    return np.sqrt(np.mean(x.astype(np.float64) ** 2, axis=1))


@pytest.fixture(scope="module")
def reference(dialogue) -> np.ndarray:
    samples, sr = sf.read(dialogue.path, dtype="float32")
    assert sr == SAMPLE_RATE
    return samples


@pytest.mark.parametrize("name", GOOD_VARIANTS)
def test_every_container_decodes_to_mono_float32_16k(audio_variants, dialogue, reference, name):
    clip = decode(audio_variants[name])
    assert clip.sr == SAMPLE_RATE
    assert clip.samples.dtype == np.float32 and clip.samples.ndim == 1
    assert abs(clip.duration_s - dialogue.duration_s) < DURATION_TOLERANCE_S
    # the speech is where it was: no offset, no channel lost, no level change from the downmix
    got, want = envelope(clip.samples, clip.sr), envelope(reference, SAMPLE_RATE)
    n = min(len(got), len(want))
    assert np.corrcoef(got[:n], want[:n])[0, 1] > 0.97
    assert abs(rms_db(clip.samples) - rms_db(reference)) < 1.5


@pytest.mark.parametrize(
    ("name", "source_sr"),
    [("wav_8k", 8000), ("stereo", 44100), ("wav_48k_float", 48000), ("m4a", 44100), ("opus", 48000), ("flac", 16000)],
)
def test_sr_none_keeps_the_source_rate(audio_variants, dialogue, name, source_sr):
    clip = decode(audio_variants[name], sr=None)
    assert clip.sr == source_sr
    assert clip.samples.ndim == 1 and clip.samples.dtype == np.float32
    assert abs(clip.duration_s - dialogue.duration_s) < DURATION_TOLERANCE_S


def test_decode_to_another_rate(dialogue):
    clip = decode(dialogue.path, sr=24_000)
    assert clip.sr == 24_000
    assert abs(len(clip.samples) - dialogue.duration_s * 24_000) <= 2


def test_probe_reads_headers(audio_variants, dialogue):
    info = probe(audio_variants["stereo"])
    assert (info.sr, info.channels, info.codec, info.format) == (44100, 2, "pcm_s16le", "wav")
    assert info.duration_s == pytest.approx(dialogue.duration_s, abs=1e-3)
    assert info.declared_s == pytest.approx(dialogue.duration_s, abs=1e-3)
    video = probe(audio_variants["mp4_with_audio"])
    assert video.codec == "aac" and "mp4" in video.format


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("empty", r"is empty \(0 bytes\)"),
        ("not_audio", "not audio ffmpeg can read"),
        ("video_no_audio", r"no audio stream \(streams found: video\)"),
        ("truncated", r"looks truncated: it declares \d+\.\d\d s of audio but only \d+\.\d\d s"),
        ("truncated_mp3", "looks truncated"),
    ],
)
def test_broken_input_is_bad_audio_with_a_reason(audio_variants, name, message):
    with pytest.raises(BadAudio, match=message) as err:
        decode(audio_variants[name])
    assert str(audio_variants[name]) in str(err.value)


def test_missing_path_and_directory(tmp_path):
    with pytest.raises(BadAudio, match="audio file not found"):
        decode(tmp_path / "nope.wav")
    with pytest.raises(BadAudio, match="not a file"):
        probe(tmp_path)


def test_truncated_wav_policy(audio_variants, dialogue, tmp_path):
    """A WAV whose header declares more than is there is rejected, not silently dubbed in part; the
    message's remedy (rewrite with ffmpeg) turns it into a valid file holding just the part that exists."""
    info = probe(audio_variants["truncated"])
    assert info.declared_s == pytest.approx(dialogue.duration_s, abs=1e-3)
    assert info.duration_s < 0.65 * dialogue.duration_s
    fixed = tmp_path / "fixed.wav"
    subprocess.run(["ffmpeg", "-nostdin", "-v", "quiet", "-i", audio_variants["truncated"], fixed], check=True)
    clip = decode(fixed)
    assert clip.duration_s == pytest.approx(0.6 * dialogue.duration_s, abs=0.05)


def test_wav_without_a_declared_length_decodes_fully(dialogue, tmp_path):
    """Streamed WAVs (written to a pipe) carry 0xFFFFFFFF as their sizes: not truncation."""
    data = bytearray(dialogue.path.read_bytes())
    data_at = data.index(b"data")
    data[4:8] = data[data_at + 4 : data_at + 8] = b"\xff\xff\xff\xff"
    path = tmp_path / "streamed.wav"
    path.write_bytes(bytes(data))
    assert probe(path).declared_s is None
    assert decode(path).duration_s == pytest.approx(dialogue.duration_s, abs=1e-3)


def test_silence_decodes_and_is_reported_silent(audio_variants, dialogue):
    clip = decode(audio_variants["silence_10s"])
    assert clip.duration_s == pytest.approx(10.0, abs=1e-3)
    assert is_silent(clip)
    assert not is_silent(decode(dialogue.path))


def test_is_silent_thresholds():
    sr = SAMPLE_RATE
    rng = np.random.default_rng(0)
    hiss = (rng.standard_normal(10 * sr) * 10 ** (-75 / 20)).astype(np.float32)  # -75 dBFS RMS
    assert is_silent(Clip(hiss, sr))
    assert not is_silent(Clip(hiss, sr), threshold_db=-80)
    beep = hiss.copy()
    t = np.arange(int(0.1 * sr)) / sr
    beep[5 * sr : 5 * sr + len(t)] += 0.1 * np.sin(2 * np.pi * 440 * t).astype(np.float32)
    assert not is_silent(Clip(beep, sr))  # a tenth of a second is enough
    assert is_silent(Clip(np.zeros(0, np.float32), sr))


def test_bytes_input_matches_path_input(audio_variants):
    for name in ("flac", "mp4_with_audio"):
        path = audio_variants[name]
        np.testing.assert_array_equal(decode(path.read_bytes()).samples, decode(path).samples)


def test_bad_bytes_name_the_upload_not_a_temp_file(audio_variants):
    with pytest.raises(BadAudio, match="empty"):
        decode(b"")
    with pytest.raises(BadAudio, match="^the uploaded audio is not audio") as err:
        decode(audio_variants["not_audio"].read_bytes())
    assert "dubgraph-audio-" not in str(err.value)


def test_max_duration_is_checked_before_decoding(long_audio, monkeypatch):
    assert probe(long_audio).duration_s == pytest.approx(2 * 3600, abs=5)

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded a file that is over the limit")

    monkeypatch.setattr(audio, "_run_ffmpeg", no_decoding)
    with pytest.raises(AudioTooLarge, match=r"is 2:00:0\d long; the limit is 1:00:00 \(max_duration_s=3600\)"):
        decode(long_audio, max_duration_s=3600)
    with pytest.raises(AudioTooLarge, match="raise max_duration_s"):
        decode(long_audio.read_bytes(), max_duration_s=60)


def test_max_duration_is_enforced_while_streaming_when_length_is_unknown(dialogue, reference, monkeypatch):
    real_probe = audio.probe
    monkeypatch.setattr(audio, "probe", lambda p, track=0: dataclasses.replace(real_probe(p, track), duration_s=None, declared_s=None))
    monkeypatch.setattr(audio, "UNKNOWN_DURATION_CHUNK_S", 1.0)  # force the buffer to grow many times
    with pytest.raises(AudioTooLarge, match="runs past the limit"):
        decode(dialogue.path, max_duration_s=5)
    clip = decode(dialogue.path, max_duration_s=60)
    np.testing.assert_allclose(clip.samples, reference, atol=1e-6)


def test_under_the_limit_decodes(dialogue):
    assert decode(dialogue.path, max_duration_s=dialogue.duration_s + 1).duration_s == pytest.approx(
        dialogue.duration_s, abs=1e-3
    )


def test_resample_keeps_pitch_and_length():
    sr_from, sr_to = 48_000, SAMPLE_RATE
    t = np.arange(2 * sr_from) / sr_from
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    out = resample(tone, sr_from, sr_to)
    assert out.dtype == np.float32 and len(out) == 2 * sr_to
    spectrum = np.abs(np.fft.rfft(out))
    assert np.argmax(spectrum) * sr_to / len(out) == pytest.approx(440, abs=1)
    assert rms_db(out) == pytest.approx(rms_db(tone), abs=0.1)
    np.testing.assert_array_equal(resample(tone, sr_from, sr_from), tone)
    with pytest.raises(ValueError):
        resample(np.zeros((2, 10), np.float32), sr_from, sr_to)


def test_db_helpers():
    assert db(1.0) == pytest.approx(0.0)
    assert db(0.5) == pytest.approx(-6.02, abs=0.01)
    assert db(0.0) == pytest.approx(-200.0)
    assert db(np.array([1.0, 0.1])) == pytest.approx([0.0, -20.0])
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    assert rms_db(np.sin(2 * np.pi * 100 * t)) == pytest.approx(-3.01, abs=0.01)
    assert rms_db(np.zeros(0)) == pytest.approx(-200.0)


@pytest.mark.parametrize("fmt", ["wav", "flac"])
def test_write_audio_round_trips_atomically(tmp_path, reference, fmt):
    path = tmp_path / "out" / f"dub.{fmt}"
    path.parent.mkdir()
    path.write_bytes(b"old contents, replaced in one step")
    assert write_audio(path, reference, SAMPLE_RATE) == path
    info = sf.info(path)
    assert (info.format, info.subtype, info.samplerate, info.channels) == (fmt.upper(), "PCM_16", SAMPLE_RATE, 1)
    back, sr = sf.read(path, dtype="float32")
    assert sr == SAMPLE_RATE
    np.testing.assert_allclose(back, reference, atol=1 / 32768)
    np.testing.assert_allclose(decode(path).samples, reference, atol=1 / 32768)
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left behind


def test_write_audio_format_clipping_and_errors(tmp_path):
    hot = np.array([0.0, 1.5, -2.0, 0.25], np.float32)
    path = write_audio(tmp_path / "explicit.bin", hot, 8000, format="flac")
    assert sf.info(path).format == "FLAC"
    back, _ = sf.read(path, dtype="float32")
    np.testing.assert_allclose(back, [0.0, 1.0, -1.0, 0.25], atol=1 / 16384)
    with pytest.raises(ValueError, match="choose one of wav, flac"):
        write_audio(tmp_path / "x.mp3", hot, 8000)
    with pytest.raises(ValueError, match=r"\(channels, n\)"):
        write_audio(tmp_path / "x.wav", np.zeros((2, 10, 2), np.float32), 8000)
    stereo = write_audio(tmp_path / "stereo.flac", np.stack([hot / 4, -hot / 4]), 8000)
    back, _ = sf.read(stereo, dtype="float32")
    assert back.shape == (4, 2) and np.allclose(back[:, 1], -hot / 4, atol=1 / 16384)
    stereo.unlink()
    with pytest.raises(ValueError, match="NaN"):
        write_audio(tmp_path / "x.wav", np.array([np.nan], np.float32), 8000)
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(OutputNotWritable, match="cannot write"):
        write_audio(blocker / "x.wav", hot, 8000)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "explicit.bin"]


def test_import_is_light():
    code = "import sys, graph.audio; print(sorted({'librosa', 'soxr', 'torch'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("which", ["dialogue", "dialogue3"])
def test_dialogue_json_matches_where_the_speech_is(request, which):
    dlg = request.getfixturevalue(which)
    meta = json.loads(dlg.json_path.read_text())
    assert meta["sr"] == dlg.sr == SAMPLE_RATE
    assert [tuple(line.values()) for line in meta["lines"]] == [dataclasses.astuple(line) for line in dlg.lines]
    assert len(set(meta["speakers"])) == (2 if which == "dialogue" else 3)
    x, sr = sf.read(dlg.path, dtype="float32")
    assert len(x) / sr == pytest.approx(dlg.duration_s)
    # energy: every line is loud, every gap is digital silence
    edges = [0.0] + [t for line in dlg.lines for t in (line.start_s, line.end_s)] + [dlg.duration_s]
    for line in dlg.lines:
        assert 5 <= len(line.text.split()) <= 12
        assert rms_db(x[int(line.start_s * sr) : int(line.end_s * sr)]) > -30
    for start, end in zip(edges[::2], edges[1::2], strict=True):
        assert 0.4 <= end - start <= 1.2
        assert rms_db(x[int(round(start * sr)) : int(round(end * sr))]) < -90
    # onsets and offsets: the first and last sample above espeak's padding level are the JSON times
    loud = np.abs(x) >= 0.9 * EDGE_THRESHOLD
    for line in dlg.lines:
        a, b = int(round(line.start_s * sr)), int(round(line.end_s * sr))
        assert loud[a] and loud[b - 1]
        assert not loud[a - 200 : a].any() and not loud[b : b + 200].any()


@pytest.mark.parametrize("name", ["-looks-like-an-option.wav", "concat:not-a-protocol.wav", "spaces and ü.wav"])
def test_odd_file_names_are_just_files(dialogue, tmp_path, name):
    path = tmp_path / name
    path.write_bytes(dialogue.path.read_bytes())
    assert decode(path).duration_s == pytest.approx(dialogue.duration_s, abs=1e-3)
