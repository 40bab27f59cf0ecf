"""The benchmark's smallest scenario (1 speaker x 5 lines x 1 language) through both pipelines: structure only.

Both must produce complete dubs (every source line voiced, forced lengths exact), the graph computing conditionals
once per speaker and the baseline once per line. Nothing here is timed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import soundfile as sf

from actors.chatterbox.batch_t3 import SynthRequest
from actors.models import OFFLINE, Profile
from bench.forced import SAMPLES_PER_TOKEN, target_tokens
from bench.scenarios import CPU_SCENARIOS, TARGETS, build_input, synthesizer_spec
from graph.run.pools import Replicas

SCENARIO = CPU_SCENARIOS[0]
SR = 24_000


@pytest.fixture(scope="module")
def bench_profile(tiny_chatterbox_dir, tiny_marian_spec) -> Profile:
    return Profile(
        name="bench-test", description="the CPU bench's models", sources=("en",), targets=TARGETS,
        models=(OFFLINE.model("asr"), OFFLINE.model("diarizer"), tiny_marian_spec,
                synthesizer_spec(tiny_chatterbox_dir, "tests.fixtures.tiny_chatterbox:load", "tiny ChatterBox")),
    )


@pytest.fixture(scope="module")
def bench_input(tmp_path_factory) -> Path:
    return build_input(SCENARIO, tmp_path_factory.mktemp("bench_input"))


def test_scenario_scripts_cycle_speakers():
    script = CPU_SCENARIOS[3].script()
    assert len(script) == 20 and {speaker for speaker, _ in script} == {"alex", "beth", "colin"}
    assert {speaker for speaker, _ in SCENARIO.script()} == {"alex"}


@pytest.mark.slow
def test_forced_lines_decode_exactly_n_tokens(bench_profile):
    from bench.forced import ForcedSynthesizer

    synth = ForcedSynthesizer(bench_profile.model("synthesizer"), bench_profile.name)
    conditionals = synth.prepare(0.1 * _voice(), 16_000)
    for text in ("Olá.", "Bom dia, você terminou de ler o relatório?"):
        clip = synth.synthesize(text, "pt-br", conditionals, seed=1)
        assert clip.samples.size == target_tokens(text) * SAMPLES_PER_TOKEN
    stats = synth.stats()
    assert stats["calls"] == {"conditionals": 1, "t3": 2, "s3gen": 2} and synth.stats()["calls"] == {}
    texts = ("Olá.", "Bom dia, você terminou de ler o relatório?", "", "Sim, ontem à noite.")
    clips = synth.synthesize_batch([SynthRequest(text, "pt-br", conditionals, seed=i) for i, text in enumerate(texts)])
    assert [clip.samples.size for clip in clips] == [target_tokens(t) * SAMPLES_PER_TOKEN if t else 0 for t in texts]
    assert synth.stats()["calls"] == {"t3": 1, "s3gen": 1}  # one batch


def test_gpu_check_prepares_its_inputs_here_and_needs_cuda_to_run(tmp_path, monkeypatch):
    """The GPU check's inputs are made on this machine (espeak, tiny Marian) and its transcript names every speaker,
    so the GPU machine needs neither ASR nor diarization weights; without CUDA it refuses to run."""
    import torch

    from bench import gpu
    from graph.run.pipeline import read_transcript
    from graph.run.pools import needed_roles

    gpu.prepare(tmp_path)
    srt = tmp_path / f"{gpu.SCENARIO}.srt"
    cues = read_transcript(srt)
    assert len(cues) == 20 and {c.speaker for c in cues} == {"alex", "beth", "colin"}
    assert needed_roles(srt) == ("translator", "synthesizer")
    assert (tmp_path / "tiny_marian" / "config.json").exists() and (tmp_path / "vocab").is_dir()
    assert sf.info(tmp_path / f"{gpu.SCENARIO}.flac").duration > 60
    assert Replicas(synthesizer=2, synth_batch=64).synth_shape == "2 x batch 64"
    if torch.cuda.is_available():
        pytest.skip("a GPU is here: `make gpu-check` runs for real")
    monkeypatch.setattr("sys.argv", ["bench.gpu", "--inputs", str(tmp_path), "--out", str(tmp_path / "out")])
    with pytest.raises(SystemExit, match="needs a CUDA device"):
        gpu.main()


@pytest.mark.slow
def test_smallest_scenario_both_pipelines_complete(bench_profile, bench_input, ray_local, tmp_path):
    import torch

    from bench.baseline import Baseline
    from bench.measure import bench_options, run_graph, start_graph
    from graph.run.pools import Replicas, stop_stages

    options = bench_options(SCENARIO.targets, SCENARIO.speakers, bench_profile.name)
    input_s = sf.info(bench_input).duration

    with torch.random.fork_rng():  # the baseline seeds torch's global RNG, as chatterbox users do
        result = Baseline(bench_profile).dub(bench_input, tmp_path / "baseline", options)
    lang = SCENARIO.targets[0]
    assert len(result.lines) >= 4 and result.conditionals == len(result.lines)  # once per line
    for line in result.lines:
        assert line.duration_s == target_tokens(line.text) * SAMPLES_PER_TOKEN / SR
    gaps_and_tail = result.output_s[lang] - sum(line.duration_s for line in result.lines)
    assert result.output_s[lang] == pytest.approx(sf.info(result.outputs[lang]).duration, abs=1e-6)
    assert 0 < gaps_and_tail <= input_s
    assert all(b.start_s >= a.start_s + a.duration_s for a, b in zip(result.lines, result.lines[1:]))

    stages = start_graph(bench_profile, Replicas(synthesizer=1, synth_threads=1))
    try:
        graph = run_graph(stages, bench_profile, bench_input, tmp_path / "graph", options)
    finally:
        stop_stages(stages)
    manifest = json.loads((tmp_path / "graph" / "manifest.json").read_text())
    lines = manifest["languages"][lang]["lines"]
    assert sorted(line["utterance_id"] for line in lines) == [u["id"] for u in manifest["utterances"]]
    assert all("synthesis_failed" not in line["flags"] for line in lines)
    assert graph.conditionals == len(manifest["voices"]) == SCENARIO.speakers  # once per speaker
    assert graph.store["conditionals_objects"] == SCENARIO.speakers
    assert sf.info(tmp_path / "graph" / f"{lang}.wav").duration == pytest.approx(input_s, abs=1e-3)
    assert graph.quality.output_over_input == pytest.approx(1.0, abs=1e-4)
    assert set(graph.busy_s) == {"conditionals", "t3", "s3gen"}


def _voice():
    """Three seconds of a voiced, pitch-varying buzz: enough for chatterbox's reference encoders."""
    import numpy as np

    t = np.arange(3 * 16_000) / 16_000
    pitch = 120 + 30 * np.sin(2 * np.pi * 0.7 * t)
    return np.sign(np.sin(2 * np.pi * np.cumsum(pitch) / 16_000)).astype(np.float32) * (0.5 + 0.5 * np.sin(3 * t))


def test_timing_audit_measures_the_track_not_the_plan():
    """bench.timing.audit: onsets heard in the audio against the source, moved lines apart, cuts and speed-ups."""
    import numpy as np

    from bench.timing import audit

    t = np.arange(SR) / SR
    burst = (0.3 * np.sin(2 * np.pi * 200 * t)).astype(np.float32)  # 1 s
    track = np.zeros(8 * SR, np.float32)
    for start in (1.0, 3.3, 6.0):  # the second line was pushed 300 ms; the third is heard 60 ms late
        track[int(start * SR) : int(start * SR) + SR] = burst
    line = {"natural_s": 1.2, "lost_s": 0.0}
    lines = [{**line, "start_s": 1.0, "end_s": 2.0, "source_start_s": 1.0},
             {**line, "start_s": 3.3, "end_s": 4.3, "source_start_s": 3.0, "shift_s": 0.3},
             {**line, "start_s": 5.94, "end_s": 6.94, "source_start_s": 5.94, "lost_s": 0.4}]
    result = audit(track, SR, lines)
    assert (result.lines, result.measured, result.cut, result.lost_s) == (3, 3, 1, 0.4)
    assert result.onset_ms == pytest.approx((0.0, 60.0), abs=6) and result.p95_onset_ms == pytest.approx(57, abs=6)
    assert result.moves_ms == pytest.approx((300.0,), abs=6) and result.max_move_ms == pytest.approx(300, abs=6)
    assert result.speedups == pytest.approx((1.2, 1.2, 1.2), abs=0.02)
