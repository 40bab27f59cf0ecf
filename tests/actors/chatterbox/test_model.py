"""Synthesizer on a tiny random ChatterBox (chatterbox's real classes): stateless, deterministic, bounded."""

from __future__ import annotations

import gc
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import soundfile as sf
import torch

from actors.chatterbox import model as tts
from actors.chatterbox.model import Synthesizer
from graph.errors import BadInput, UnsupportedLanguage
from graph.types import Clip
from tests.fixtures import tiny_chatterbox

# (text, language, voice, seed): different texts, speakers, languages and seeds
JOBS = [
    ("Olá, tudo bem?", "pt-br", 0, 1),
    ("Bom dia, senhora.", "pt-br", 1, 2),
    ("Hello there.", "en", 0, 3),
    ("¿Dónde está la estación?", "es", 1, 4),
    ("Merci beaucoup.", "fr", 0, 5),
    ("Guten Tag.", "de", 1, 6),
    ("Oi.", "pt-br", 0, 7),
    ("Olá, tudo bem?", "pt-br", 1, 8),
]


def _voice(f0: float, sr: int, seconds: float = 1.5, brightness: float = 0.5) -> np.ndarray:
    """A voiced, syllable-modulated harmonic signal with vibrato: different f0/brightness = different speaker."""
    t = np.arange(int(seconds * sr)) / sr
    phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.03 * np.sin(2 * np.pi * 5 * t))) / sr
    wave = sum(brightness ** k * np.sin(k * phase) for k in range(1, 12))
    envelope = 0.55 + 0.45 * np.sin(2 * np.pi * 4 * t)
    noise = np.random.default_rng(int(f0)).normal(0, 0.01, t.size)
    return (0.3 * wave / np.abs(wave).max() * envelope + noise).astype(np.float32)


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024


def _hooks(model) -> dict[str, int]:
    modules = {f"{name}.{sub}": m for name in ("t3", "s3gen", "ve") for sub, m in getattr(model, name).named_modules()}
    return {name: len(m._forward_hooks) + len(m._forward_pre_hooks) for name, m in modules.items()}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def references() -> list[tuple[np.ndarray, int]]:
    return [(_voice(110.0, 16000, brightness=0.4), 16000), (_voice(230.0, 22050, brightness=0.8), 22050)]


@pytest.fixture(scope="module")
def voices(synth, references):
    return [synth.prepare(wav, sr) for wav, sr in references]


@pytest.fixture(scope="module")
def sequential(synth, voices) -> list[Clip]:
    return [synth.synthesize(text, lang, voices[v], seed=seed) for text, lang, v, seed in JOBS]


def test_pace_vocodes_the_same_tokens_faster_or_slower(synth, voices):
    natural = synth.synthesize("Olá, tudo bem?", "pt-br", voices[0], seed=1)
    for pace in (0.8, 2.0):
        clip = synth.synthesize("Olá, tudo bem?", "pt-br", voices[0], 1, 0.5, 0.5, 0.8, pace)
        assert abs(len(clip.samples) - len(natural.samples) / pace) <= 960, pace  # a mel frame's rounding
    with pytest.raises(BadInput, match="pace must be between"):
        synth.synthesize("Olá, tudo bem?", "pt-br", voices[0], pace=9.0)


def _assert_same(clips: list[Clip], expected: list[Clip]) -> None:
    assert len(clips) == len(expected)
    for i, (got, want) in enumerate(zip(clips, expected)):
        assert got.sr == want.sr
        assert np.array_equal(got.samples, want.samples), f"job {i} {JOBS[i]} differs"


def test_sequential_jobs_are_real_and_distinct(sequential):
    assert all(c.samples.dtype == np.float32 and c.samples.ndim == 1 and c.samples.size > 0 for c in sequential)
    assert all(np.isfinite(c.samples).all() and c.sr == 24000 for c in sequential)
    assert not np.array_equal(sequential[0].samples, sequential[7].samples)  # same text, other voice + seed


def test_chatterbox_generate_runs_on_the_tiny_model(tiny_chatterbox_spec, references, tmp_path):
    from chatterbox.models.s3gen import S3Gen
    from chatterbox.models.t3 import T3
    from chatterbox.mtl_tts import ChatterboxMultilingualTTS

    model = tiny_chatterbox.load(tiny_chatterbox_spec.source, "cpu")
    assert isinstance(model, ChatterboxMultilingualTTS) and type(model.s3gen) is S3Gen and type(model.t3) is T3
    assert model.t3.hp.is_multilingual
    path = tmp_path / "ref.wav"
    sf.write(path, *references[0])
    torch.manual_seed(0)
    wav = model.generate("Olá mundo.", "pt", audio_prompt_path=str(path))
    assert wav.ndim == 2 and wav.shape[0] == 1 and wav.shape[1] > 0 and torch.isfinite(wav).all()


def test_synthesize_reproduces_chatterbox_generate(tiny_chatterbox_spec, synth, voices, references):
    """Same weights, same seed: chatterbox's own generate (global RNG) == our stateless path, bit for bit."""
    from chatterbox.models.t3.modules.cond_enc import T3Cond
    from chatterbox.mtl_tts import Conditionals

    model = tiny_chatterbox.load(tiny_chatterbox_spec.source, "cpu")
    conds = voices[1]
    arrays = conds.arrays
    for text, code, language_id, seed in (("Bom dia, senhora.", "pt-br", "pt", 3), ("Guten Tag.", "de", "de", 11)):
        t3 = T3Cond(speaker_emb=torch.tensor(arrays["t3.speaker_emb"]),
                    cond_prompt_speech_tokens=torch.tensor(arrays["t3.cond_prompt_speech_tokens"]),
                    emotion_adv=0.5 * torch.ones(1, 1, 1))
        gen = {key[4:]: torch.tensor(value) for key, value in arrays.items() if key.startswith("gen.")}
        model.conds = Conditionals(t3, {**gen, "prompt_feat_len": conds.meta["gen.prompt_feat_len"]})
        torch.manual_seed(seed)
        expected = model.generate(text, language_id)[0].numpy()
        got = synth.synthesize(text, code, conds, seed=seed)
        assert np.array_equal(got.samples, expected)


@pytest.mark.slow
def test_threads_on_one_instance_equal_one_by_one(synth, voices, sequential):
    def run(job):
        text, lang, v, seed = job
        return synth.synthesize(text, lang, voices[v], seed=seed)

    with ThreadPoolExecutor(max_workers=len(JOBS)) as pool:
        concurrent = list(pool.map(run, JOBS))
    _assert_same(concurrent, sequential)


@pytest.mark.slow
def test_two_ray_actors_equal_one_by_one(ray_local, tiny_chatterbox_spec, voices, sequential):
    ray = ray_local
    remote = ray.remote(Synthesizer).options(num_cpus=0, max_concurrency=4)
    actors = [remote.remote(tiny_chatterbox_spec, device="cpu") for _ in range(2)]
    try:
        refs = [ray.put(v) for v in voices]
        futures = [actors[i % 2].synthesize.remote(text, lang, refs[v], seed=seed)
                   for i, (text, lang, v, seed) in enumerate(JOBS)]
        clips = ray.get(futures, timeout=300)
    finally:
        for actor in actors:
            ray.kill(actor)
    _assert_same(clips, sequential)


@pytest.mark.slow
def test_no_hooks_or_memory_pile_up(synth, voices):
    from chatterbox.models.t3.inference.alignment_stream_analyzer import AlignmentStreamAnalyzer

    synth.synthesize("Oi.", "pt-br", voices[0], seed=0)
    after_one = _hooks(synth._model)
    for seed in range(1, 10):
        synth.synthesize("Oi.", "pt-br", voices[seed % 2], seed=seed)
    gc.collect()
    rss_before = _rss_mb()
    for seed in range(10, 50):
        synth.synthesize("Oi.", "pt-br", voices[seed % 2], seed=seed)
    gc.collect()
    assert _hooks(synth._model) == after_one
    assert sum(after_one.values()) == 3  # the three permanent, context-routed attention taps
    assert not [o for o in gc.get_objects() if issubclass(type(o), AlignmentStreamAnalyzer)]  # type(): no proxies
    assert _rss_mb() - rss_before < 25


def test_short_and_empty_lines(synth, tiny_chatterbox_spec, voices):
    for text in ("", "   ", "...", "\n"):
        clip = synth.synthesize(text, "pt-br", voices[0])
        assert clip.samples.size == 0 and clip.sr == synth.sample_rate
    for text, lang in (("Oi.", "pt-br"), ("OK", "en"), ("A", "fr"), ("é", "pt-br")):  # <= 5 tokens: no analyzer
        clip = synth.synthesize(text, lang, voices[0])
        assert 0 < clip.duration_s <= tts.BASE_S + tts.S_PER_TEXT_TOKEN * 4 + 1e-6
        assert np.isfinite(clip.samples).all()

    never_ends = Synthesizer(tiny_chatterbox_spec, device="cpu")
    t3 = never_ends._model.t3
    with torch.no_grad():
        t3.speech_head.weight[t3.hp.stop_speech_token] = 0  # EOS never sampled: only the budget stops it
    clip = never_ends.synthesize("Oi.", "pt-br", voices[0])
    budget = tts._token_budget(4)  # [pt] o i .
    assert budget / tts.TOKENS_PER_S - 0.04 < clip.duration_s <= budget / tts.TOKENS_PER_S  # exactly `budget` tokens


def test_prepare_leaves_the_model_alone_and_tells_voices_apart(synth, references):
    model = synth._model
    state = {name: t.clone() for part in (model.t3, model.s3gen, model.ve) for name, t in part.state_dict().items()}
    hooks = _hooks(model)
    first = synth.prepare(*references[0])
    second = synth.prepare(*references[1])
    again = synth.prepare(*references[0])
    assert model.conds is None
    after = {name: t for part in (model.t3, model.s3gen, model.ve) for name, t in part.state_dict().items()}
    assert after.keys() == state.keys() and all(torch.equal(state[k], after[k]) for k in state)
    assert _hooks(model) == hooks
    assert (first.kind, first.model) == ("chatterbox", "tiny random ChatterBox")
    dtypes = {name: str(array.dtype) for name, array in first.arrays.items()}
    assert dtypes == {"t3.speaker_emb": "float32", "t3.cond_prompt_speech_tokens": "int64", "gen.prompt_token": "int64",
                      "gen.prompt_token_len": "int64", "gen.prompt_feat": "float32", "gen.embedding": "float32"}
    assert first.meta == {"gen.prompt_feat_len": None}
    assert all(a.flags.owndata for a in first.arrays.values())  # copies: nothing shared with the model
    for name in ("t3.speaker_emb", "gen.embedding", "gen.prompt_token"):
        assert np.array_equal(first.arrays[name], again.arrays[name])
    assert not np.array_equal(first.arrays["t3.speaker_emb"], second.arrays["t3.speaker_emb"])
    assert not np.array_equal(first.arrays["gen.embedding"], second.arrays["gen.embedding"])
    assert not np.array_equal(first.arrays["gen.prompt_feat"], second.arrays["gen.prompt_feat"])


def test_unsupported_language_names_the_supported_ones(synth, voices):
    with pytest.raises(UnsupportedLanguage) as caught:
        synth.synthesize("Xin chào.", "vi", voices[0])
    assert "pt-br" in caught.value.supported and "en" in caught.value.supported
    assert "vi" in str(caught.value) and "pt-br" in str(caught.value)
    assert synth.synthesize("", "PT_BR", voices[0]).samples.size == 0  # codes are normalised


def test_conditionals_through_a_checkpoint_give_the_same_clip(synth, voices, tmp_path):
    """prepare's plain record, written and read back data-only, voices a line bit for bit as the original does."""
    from graph.run.checkpoint import Checkpoint

    store = Checkpoint(tmp_path)
    store.put("conds-a", voices[1])
    loaded = Checkpoint(tmp_path).get("conds-a")
    assert loaded is not voices[1] and loaded.arrays.keys() == voices[1].arrays.keys()
    for text, lang, seed in (("Bom dia, senhora.", "pt-br", 3), ("Hello there.", "en", 9)):
        want = synth.synthesize(text, lang, voices[1], seed=seed)
        assert np.array_equal(synth.synthesize(text, lang, loaded, seed=seed).samples, want.samples)
        assert not np.array_equal(synth.synthesize(text, lang, voices[0], seed=seed).samples, want.samples)


def test_unpickling_conditionals_imports_no_model_library(voices):
    """What the driver fetches from Ray or a checkpoint: a fresh interpreter loads it without torch or chatterbox."""
    import pickle
    import subprocess
    import sys
    from pathlib import Path

    code = ("import pickle, sys; voice = pickle.loads(sys.stdin.buffer.read()); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'chatterbox')), "
            "voice.kind, voice.arrays['gen.prompt_feat'].shape == %r)" % (voices[0].arrays["gen.prompt_feat"].shape,))
    run = subprocess.run([sys.executable, "-c", code], input=pickle.dumps(voices[0]), capture_output=True,
                         cwd=Path(__file__).resolve().parents[3], timeout=120, check=True)
    assert run.stdout.decode().split() == ["[]", "chatterbox", "True"]


def test_conditionals_of_another_synthesizer_are_refused(synth, voices):
    from graph.errors import BadInput
    from graph.types import VoiceConditionals

    espeak = VoiceConditionals("espeak", "espeak-ng", meta={"variant": "m3", "pitch": 50})
    with pytest.raises(BadInput, match="made by the espeak synthesizer .espeak-ng.; prepare the voice again"):
        synth.synthesize("Olá.", "pt-br", espeak)
    with pytest.raises(BadInput, match="made by the espeak synthesizer"):
        synth.synthesize("", "pt-br", espeak)  # also when the line has nothing to say
    incomplete = VoiceConditionals("chatterbox", "x", {"t3.speaker_emb": voices[0].arrays["t3.speaker_emb"]})
    with pytest.raises(BadInput, match="lack gen.embedding, gen.prompt_feat"):
        synth.synthesize("Olá.", "pt-br", incomplete)
