"""Both diarizers on pyannote's bundled sample.wav (30 s, two speakers) against its reference sample.rttm.

Offline (Silero VAD + Resemblyzer + clustering) measured on that sample: 2 speakers found, DER 15.9 %
(pyannote.metrics, no collar, overlap scored). pyannote itself runs here as a tiny random-weight pipeline, so only
the structure of its output is checked.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import re
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest

from actors.diarizer import Diarizer, normalise_turns
from actors.diarizer_offline import VoiceClusterDiarizer
from actors.models import OFFLINE
from graph.audio import SAMPLE_RATE
from graph.errors import BadAudio
from graph.options import DiarizeOptions
from graph.types import SpeakerTurn

SAMPLE_DIR = Path(importlib.util.find_spec("pyannote.audio").origin).parent / "sample"  # found, not imported
DURATION_S = 30.0


@pytest.fixture(scope="module")
def sample() -> np.ndarray:
    import soundfile

    audio, sr = soundfile.read(SAMPLE_DIR / "sample.wav", dtype="float32")
    assert sr == SAMPLE_RATE and len(audio) == DURATION_S * SAMPLE_RATE
    return audio


@pytest.fixture(scope="module")
def reference() -> list[tuple[float, float, str]]:
    rows = [line.split() for line in (SAMPLE_DIR / "sample.rttm").read_text().splitlines() if line.strip()]
    return [(float(r[3]), float(r[3]) + float(r[4]), r[7]) for r in rows]


@pytest.fixture(scope="module")
def offline() -> VoiceClusterDiarizer:
    return VoiceClusterDiarizer(OFFLINE.model("diarizer"), "offline", device="cpu")


@pytest.fixture(scope="module")
def offline_turns(offline, sample) -> list[SpeakerTurn]:
    return offline.diarize(sample)


@pytest.fixture(scope="module")
def tiny(tiny_pyannote_spec) -> Diarizer:
    return Diarizer(tiny_pyannote_spec, "full", device="cpu")


def der(reference: list[tuple[float, float, str]], turns: list[SpeakerTurn]) -> float:
    """Diarization error rate with pyannote.metrics (optimal speaker mapping, no collar)."""
    from pyannote.core import Annotation, Segment
    from pyannote.metrics.diarization import DiarizationErrorRate

    ref, hyp = Annotation(), Annotation()
    for start, end, label in reference:
        ref[Segment(start, end)] = label
    for turn in turns:
        hyp[Segment(turn.start_s, turn.end_s)] = turn.speaker
    return float(DiarizationErrorRate()(ref, hyp, uem=Segment(0, DURATION_S)))


def assert_well_formed(turns: list[SpeakerTurn], overlap_allowed: bool = False) -> None:
    assert isinstance(turns, list) and all(isinstance(t, SpeakerTurn) for t in turns)
    assert all(isinstance(t.start_s, float) and isinstance(t.end_s, float) for t in turns)
    assert [t.start_s for t in turns] == sorted(t.start_s for t in turns)
    assert all(0.0 <= t.start_s < t.end_s <= DURATION_S + 1e-3 for t in turns)
    if not overlap_allowed:
        assert all(a.end_s <= b.start_s + 1e-6 for a, b in pairwise(turns))
    first_seen = list(dict.fromkeys(t.speaker for t in turns))
    assert first_seen == [f"SPEAKER_{i:02d}" for i in range(len(first_seen))]


def test_normalise_turns_labels_by_first_appearance():
    turns = normalise_turns([(5.0, 6.0, "b"), (1.0, 2.0, 7), (3.0, 3.0, "c"), (2.5, 4.0, "b")])
    assert turns == [
        SpeakerTurn("SPEAKER_00", 1.0, 2.0),
        SpeakerTurn("SPEAKER_01", 2.5, 4.0),
        SpeakerTurn("SPEAKER_01", 5.0, 6.0),
    ]


def test_normalise_turns_cuts_turns_at_the_audio_end():
    """pyannote pads its last window: what it says past the audio's end is dropped."""
    turns = normalise_turns([(0.0, 4.0, "a"), (4.0, 10.4, "b"), (10.5, 11.0, "a")], duration_s=10.0)
    assert turns == [SpeakerTurn("SPEAKER_00", 0.0, 4.0), SpeakerTurn("SPEAKER_01", 4.0, 10.0)]


def test_offline_finds_two_speakers_with_low_der(offline_turns, reference):
    assert_well_formed(offline_turns)
    assert {t.speaker for t in offline_turns} == {"SPEAKER_00", "SPEAKER_01"}
    assert der(reference, offline_turns) < 0.20  # measured 0.159
    # nobody speaks in the first 6.7 s
    assert offline_turns[0].start_s > 6.0


def test_offline_one_voice_is_one_speaker(offline, sample):
    one = np.concatenate(
        [
            sample[int(21.8 * SAMPLE_RATE) : int(27.8 * SAMPLE_RATE)],
            sample[int(14.7 * SAMPLE_RATE) : int(17.9 * SAMPLE_RATE)],
        ]
    )
    turns = offline.diarize(one)
    assert turns and {t.speaker for t in turns} == {"SPEAKER_00"}


@pytest.mark.parametrize(
    ("options", "count"),
    [
        (DiarizeOptions(num_speakers=3), 3),
        (DiarizeOptions(num_speakers=1), 1),
        (DiarizeOptions(max_speakers=1), 1),
        (DiarizeOptions(min_speakers=3), 3),
    ],
)
def test_offline_respects_speaker_hints(offline, sample, options, count):
    turns = offline.diarize(sample, options)
    assert_well_formed(turns)
    assert len({t.speaker for t in turns}) == count


@pytest.mark.parametrize("seconds", [0.0, 0.05, 3.0])
def test_offline_silence_gives_no_turns(offline, seconds):
    assert offline.diarize(np.zeros(int(seconds * SAMPLE_RATE), dtype=np.float32)) == []


def test_offline_settings_come_from_spec_options():
    spec = dataclasses.replace(OFFLINE.model("diarizer"), options={"threshold": 0.5, "hop_s": 0.5})
    diarizer = VoiceClusterDiarizer(spec, device="cpu")
    assert (diarizer.settings.threshold, diarizer.settings.hop_s) == (0.5, 0.5)


def test_tiny_pyannote_returns_speaker_turns(tiny, sample):
    turns = tiny.diarize(sample, DiarizeOptions(num_speakers=3))
    assert_well_formed(turns)  # within the audio, although pyannote's padded last window runs past its end
    assert len(turns) >= 3 and len({t.speaker for t in turns}) == 3
    assert all(t.end_s - t.start_s >= 1.0 for t in turns)  # turns follow chunks, not frames (tiny_pyannote.py)


def test_pyannote_default_loading_matches_the_loader(tiny_pyannote_spec, tiny, sample):
    """No ``loader``: the actor's own ``Pipeline.from_pretrained(location)`` reads the same directory."""
    plain = Diarizer(dataclasses.replace(tiny_pyannote_spec, loader=None), device="cpu")
    excerpt = sample[: 10 * SAMPLE_RATE]
    assert plain.diarize(excerpt) == tiny.diarize(excerpt)


def test_pyannote_pipeline_gives_diarize_output_or_annotation(tiny_pyannote_dir, sample):
    import torch
    from pyannote.audio.pipelines.speaker_diarization import DiarizeOutput
    from pyannote.core import Annotation

    from tests.fixtures.tiny_pyannote import load

    pipeline = load(str(tiny_pyannote_dir), "cpu")
    excerpt = {"waveform": torch.from_numpy(sample[: 10 * SAMPLE_RATE])[None], "sample_rate": SAMPLE_RATE}
    output = pipeline(excerpt)
    assert isinstance(output, DiarizeOutput)
    assert isinstance(output.speaker_diarization, Annotation)
    assert isinstance(output.exclusive_speaker_diarization, Annotation)

    pipeline.legacy = True  # older pipelines return the Annotation itself; the actor takes both
    legacy = pipeline(excerpt)
    assert isinstance(legacy, Annotation) and legacy == output.speaker_diarization
    actor = Diarizer.__new__(Diarizer)  # the actor around this very pipeline, without loading another
    actor.pipeline = pipeline
    turns = actor.diarize(sample[: 10 * SAMPLE_RATE])
    assert_well_formed(turns, overlap_allowed=True)
    assert max(s.end for s, _ in legacy.itertracks()) > 10.0  # pyannote's padded last window, cut by the actor
    assert [(t.start_s, t.end_s) for t in turns] == [
        (round(s.start, 3), round(min(s.end, 10.0), 3)) for s, _ in sorted(legacy.itertracks())
    ]


def test_pyannote_gets_hints_and_in_memory_audio(tiny, sample, monkeypatch):
    seen = {}
    apply = tiny.pipeline.apply

    def spy(file, **kwargs):
        seen.update(kwargs, waveform=file["waveform"], sample_rate=file["sample_rate"])
        return apply(file, **kwargs)

    monkeypatch.setattr(tiny.pipeline, "apply", spy)
    tiny.diarize(sample[: 10 * SAMPLE_RATE], DiarizeOptions(min_speakers=1, max_speakers=2))
    assert (seen["num_speakers"], seen["min_speakers"], seen["max_speakers"]) == (None, 1, 2)
    assert seen["sample_rate"] == SAMPLE_RATE and tuple(seen["waveform"].shape) == (1, 10 * SAMPLE_RATE)


def test_pyannote_empty_audio_gives_no_turns(tiny):
    assert tiny.diarize(np.zeros(0, dtype=np.float32)) == []


def test_pyannote_metrics_are_opted_out(tiny_pyannote_spec, monkeypatch):
    monkeypatch.delenv("PYANNOTE_METRICS_ENABLED", raising=False)
    Diarizer(tiny_pyannote_spec, device="cpu")
    assert os.environ["PYANNOTE_METRICS_ENABLED"] == "false"


def test_tiny_pyannote_spec_shape(tiny_pyannote_spec):
    assert tiny_pyannote_spec.kind == "path" and Path(tiny_pyannote_spec.source, "config.yaml").is_file()
    assert re.fullmatch(r"tests\.fixtures\.tiny_pyannote:load", tiny_pyannote_spec.loader)


def _speaker_audio(sample, reference, label, part):
    """One speaker's turns of the sample (first or second half of them), concatenated."""
    spans = [(s, e) for s, e, lab in reference if lab == label and e - s > 1.0]
    half = spans[: len(spans) // 2] if part == 0 else spans[len(spans) // 2 :]
    return np.concatenate([sample[int(s * SAMPLE_RATE) : int(e * SAMPLE_RATE)] for s, e in half])


def test_offline_embedding_tells_the_two_speakers_apart(offline, sample, reference):
    """Resemblyzer's d-vector of one clip: one speaker's two halves are closer than the two speakers."""
    a0, a1, b0 = (offline.embed(_speaker_audio(sample, reference, label, part), SAMPLE_RATE)
                  for label, part in (("speaker90", 0), ("speaker90", 1), ("speaker91", 0)))
    assert a0.model == OFFLINE.model("diarizer").name and a0.threshold == 0.85
    assert a0.vector.shape == (256,) and np.linalg.norm(a0.vector) == pytest.approx(1.0, abs=1e-5)
    assert float(a0.vector @ a1.vector) > float(a0.vector @ b0.vector)
    resampled = offline.embed(_speaker_audio(sample, reference, "speaker90", 0)[::2], SAMPLE_RATE // 2)
    assert float(resampled.vector @ a0.vector) > 0.9  # any rate in, the same voice out


def test_offline_embedding_refuses_a_clip_without_speech(offline):
    with pytest.raises(BadAudio, match="silent"):
        offline.embed(np.zeros(SAMPLE_RATE * 3, np.float32), SAMPLE_RATE)
    noise = np.random.default_rng(0).normal(0, 0.001, SAMPLE_RATE * 3).astype(np.float32)
    with pytest.raises(BadAudio, match="s of speech"):
        offline.embed(noise, SAMPLE_RATE)


def test_pyannote_embedding_is_the_pipelines_own_model(tiny, tiny_pyannote_spec, sample):
    clip = sample[: 8 * SAMPLE_RATE]
    one, again = tiny.embed(clip, SAMPLE_RATE), tiny.embed(clip, SAMPLE_RATE)
    assert one.model == tiny_pyannote_spec.name and one.threshold == 0.5
    assert one.vector.shape == (32,) and np.linalg.norm(one.vector) == pytest.approx(1.0, abs=1e-5)
    assert np.allclose(one.vector, again.vector)
    assert not np.allclose(one.vector, tiny.embed(sample[-8 * SAMPLE_RATE :], SAMPLE_RATE).vector)
