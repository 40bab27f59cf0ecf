"""The GPU decode path checked on the CPU: static caches per bucket, bf16, torch.compile, the memory arithmetic,
the capture gate and the decode presets (actors/chatterbox/static_t3.py, batch_t3.DecodeOptions / preset).

What a CPU cannot run (CUDA graph capture and replay) is tested under the ``gpu`` marker at the end.
"""

from __future__ import annotations

import threading

import pytest
import torch

from actors.chatterbox import static_t3
from actors.chatterbox.batch_t3 import DecodeOptions, preset
from actors.chatterbox.static_t3 import GpuGate, StaticPool, cache_bytes, row_bucket
from graph.errors import BadInput
from tests.actors.chatterbox.test_batch import LINES, _assert_tokens, _batch, _lines

pytestmark = pytest.mark.usefixtures("one_torch_thread")

RACE = dict(sampler="race", alignment=False, stop_on_eos=False)  # every line runs to its own max_new_tokens
FORCED = [spec[:-1] + (n,) for spec, n in zip(LINES, (40, 12, 70, 25, 55))]  # lengths that end apart


@pytest.fixture
def small_buckets(monkeypatch):
    """Buckets a few steps long, so a short decode grows through several of them and shrinks its rows."""
    monkeypatch.setattr(static_t3, "LENGTH_STEP", 16)
    monkeypatch.setattr(static_t3, "HEADROOM", 16)


def _pool(synth, mode=None) -> StaticPool:
    return StaticPool(synth._model.t3, 1 << 30, mode, GpuGate())


def test_static_buckets_give_the_dynamic_cache_tokens_and_are_reused(synth, voices, small_buckets):
    want = _batch(synth, _lines(synth, voices, FORCED), options=DecodeOptions(**RACE))
    pool = _pool(synth)
    static = DecodeOptions(static_cache=True, **RACE)
    _assert_tokens(_batch(synth, _lines(synth, voices, FORCED), options=static, pool=pool), want)
    made = list(pool.decoders)
    assert [t.size(-1) for t in want] == [40, 12, 70, 25, 55]
    lengths = sorted({length for _, length in made})
    assert len(lengths) >= 3, made  # the decode moved to longer buckets as it went
    assert {lines for lines, _ in made} >= {row_bucket(5), row_bucket(1)}, made  # and to fewer rows as lines ended
    _assert_tokens(_batch(synth, _lines(synth, voices, FORCED), options=static, pool=pool), want)
    assert list(pool.decoders) == made  # the second batch reused every bucket: nothing new allocated or captured


@pytest.mark.slow
def test_bf16_static_cache_matches_bf16_dynamic_and_stays_near_fp32(synth, voices, tiny_chatterbox_spec):
    """The issue's bug: under bf16 autocast the static cache got fp32 keys and bf16 values. T3's weights are now
    cast to bf16, so the cache is bf16 throughout; its tokens equal the bf16 dynamic cache's. Against fp32 the
    tiny random model's logits (near-uniform, so its tokens flip easily) stay within bf16's rounding: relative
    error < 2e-2."""
    from actors.chatterbox.model import Synthesizer

    fp32 = _batch(synth, _lines(synth, voices, FORCED), options=DecodeOptions(**RACE))
    first = _first_logits(synth, voices)
    low = Synthesizer(tiny_chatterbox_spec, device="cpu")
    low._model.t3.to(torch.bfloat16)
    dynamic = _batch(low, _lines(low, voices, FORCED), options=DecodeOptions(dtype="bfloat16", **RACE))
    static = _batch(low, _lines(low, voices, FORCED), options=DecodeOptions(static_cache=True, dtype="bfloat16", **RACE),
                    pool=_pool(low))
    _assert_tokens(static, dynamic)
    assert [t.size(-1) for t in static] == [t.size(-1) for t in fp32]
    logits = _first_logits(low, voices).float()
    assert torch.linalg.norm(logits - first) / torch.linalg.norm(first) < 2e-2


def _first_logits(synth, voices) -> torch.Tensor:
    """The prefill's logits of the first line (what its first token is drawn from)."""
    from actors.chatterbox.batch_t3 import prefill_inputs

    line = _lines(synth, voices, FORCED[:1])
    pre = prefill_inputs(synth._model.t3, line)
    decoder = _pool(synth).decoder(1, 256)
    positions = (torch.arange(pre.embeds.size(1))[None] - pre.pad[:, None]).clamp(min=0).repeat(2, 1)
    with torch.inference_mode():
        return decoder.prefill(pre.embeds, pre.pad.repeat(2), positions)[0].float()


@pytest.mark.slow
def test_compiled_step_traces_whole_and_gives_the_eager_tokens(synth, voices):
    """torch.compile of the bucket's step with ``fullgraph``: no graph break (a break hides a host sync a CUDA graph
    cannot hold; the attention taps used to cause one). The "eager" backend checks the tracing; inductor's code
    generation takes minutes on this CPU and runs in the GPU check."""
    specs = FORCED[:2]
    want = _batch(synth, _lines(synth, voices, specs), options=DecodeOptions(static_cache=True, **RACE))
    pool = _pool(synth, "compile")
    pool.compile_backend = "eager"
    options = DecodeOptions(static_cache=True, graph="compile", **RACE)
    _assert_tokens(_batch(synth, _lines(synth, voices, specs), options=options, pool=pool), want)
    _assert_tokens(_batch(synth, _lines(synth, voices, specs), options=options, pool=pool), want)
    assert pool.captures == len(pool.decoders)  # once per bucket, not per batch


def test_cache_memory_is_what_the_arithmetic_says(synth):
    """cache_bytes (what budgets and refusals use) equals the bytes a bucket really allocates, in each dtype."""
    t3 = synth._model.t3
    for dtype in (torch.float32, torch.bfloat16):
        decoder = StaticPool(t3, 1 << 30, None, GpuGate(), dtype).decoder(3, 128)
        allocated = sum(layer.keys.nbytes + layer.values.nbytes for layer in decoder.layers)
        assert allocated == decoder.bytes == cache_bytes(t3.tfmr.config, row_bucket(3), 128, dtype)
    # full-size T3 (30 layers, 16 heads of 64, bf16) at batch 128 over 512 positions: 15 GiB (30 GiB in fp32)
    from chatterbox.models.t3.llama_configs import LLAMA_CONFIGS
    from chatterbox.models.t3.modules.t3_config import T3Config
    from transformers import LlamaConfig

    config = LlamaConfig(**LLAMA_CONFIGS[T3Config.multilingual().llama_config_name])
    assert cache_bytes(config, 128, 512, torch.bfloat16) == 2 * 30 * 256 * 16 * 512 * 64 * 2 == 15 * 2**30


def test_a_batch_that_cannot_fit_is_refused_with_the_size_that_fits(synth):
    t3 = synth._model.t3
    start = StaticPool(t3, 1 << 30, None, GpuGate()).start_length(256)
    budget = cache_bytes(t3.tfmr.config, 16, start, torch.float32)
    pool = StaticPool(t3, budget, None, GpuGate())
    pool.check_fits(16)
    with pytest.raises(BadInput, match=r"a batch of 64 lines needs .* GiB of KV cache.*at most 16 lines"):
        pool.check_fits(64)


def test_the_gate_keeps_other_gpu_work_out_of_a_capture():
    gate, events = GpuGate(), []
    inside, release = threading.Event(), threading.Event()

    def worker():
        with gate.shared():
            events.append("work start")
            inside.set()
            release.wait(5)
            events.append("work end")

    thread = threading.Thread(target=worker)
    thread.start()
    inside.wait(5)
    capture = threading.Thread(target=lambda: (gate.exclusive().__enter__(), events.append("capture")))
    capture.start()
    capture.join(0.2)
    assert events == ["work start"]  # the capture waits for the work in flight
    release.set()
    thread.join(5)
    capture.join(5)
    assert events == ["work start", "work end", "capture"]


def test_a_decoding_thread_can_capture_without_deadlock():
    """The batch thread holds the gate shared while it decodes and takes it alone to capture a bucket's graph."""
    gate, done = GpuGate(), []

    def decode():
        with gate.shared():
            with gate.shared():  # nested: never waits behind a writer
                with gate.exclusive():
                    done.append("captured")
            done.append("decoded")

    threads = [threading.Thread(target=decode) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert done.count("captured") == 3 and done.count("decoded") == 3


def test_presets_per_device():
    assert preset("auto", "cpu") == preset("exact", "cpu") == DecodeOptions()
    fast_cpu = preset("fast", "cpu")
    assert (fast_cpu.dtype, fast_cpu.static_cache, fast_cpu.graph, fast_cpu.sampler) == ("bfloat16", True, None, "race")
    fast = preset("auto", "cuda")
    assert (fast.dtype, fast.s3gen_dtype, fast.graph, fast.alignment) == ("bfloat16", "bfloat16", "cuda", False)
    with pytest.raises(ValueError, match="unknown decode preset"):
        preset("quick", "cpu")
    with pytest.raises(ValueError, match="dtype must be one of"):
        DecodeOptions(dtype="float16")


def test_the_fast_preset_casts_once_and_voices_lines_on_cpu(tiny_chatterbox_spec, voices):
    """configure_decode: bf16 T3 and S3Gen estimator, batched lines voiced; the precision cannot change once a line
    was voiced; a CUDA graph on a CPU and a batch too large for the cache budget are refused up front."""
    from actors.chatterbox.batch_t3 import SynthRequest
    from actors.chatterbox.model import Synthesizer

    synth = Synthesizer(tiny_chatterbox_spec, device="cpu")
    with pytest.raises(BadInput, match="needs a CUDA device"):
        synth.configure_decode(DecodeOptions(static_cache=True, alignment=False, graph="cuda"))
    with pytest.raises(BadInput, match="KV cache"):
        synth.configure_decode(DecodeOptions(static_cache=True, cache_gb=1e-6), max_batch=8)
    assert synth._model.t3.speech_head.weight.dtype == torch.float32  # refused: nothing changed
    synth.configure_decode(preset("fast", "cpu"), max_batch=4)
    assert synth._model.t3.speech_head.weight.dtype == torch.bfloat16
    assert synth._model.s3gen.flow.decoder.estimator.dtype == torch.bfloat16
    clips = synth.synthesize_batch([SynthRequest("Olá, tudo bem?", "pt-br", voices[0], seed=1),
                                    SynthRequest("Bom dia.", "pt-br", voices[1], seed=2)])
    assert all(0 < c.samples.size and torch.isfinite(torch.from_numpy(c.samples)).all() for c in clips)
    with pytest.raises(BadInput, match="precision .* is fixed once"):
        synth.configure_decode(preset("exact", "cpu"))
    synth.configure_decode(preset("fast", "cpu"), max_batch=8)  # same precision: fine, buckets kept


@pytest.mark.gpu
def test_gpu_graph_is_captured_once_per_bucket_and_gives_the_eager_tokens(tiny_chatterbox_spec, voices,
                                                                         small_buckets):
    """On CUDA: the graphed decode gives the eager static decode's tokens (fp32 and bf16), captures one graph per
    bucket it uses, and replays them for the next batch without capturing again."""
    from actors.chatterbox.model import Synthesizer

    synth = Synthesizer(tiny_chatterbox_spec, device="cuda")
    for dtype in ("float32", "bfloat16"):
        synth._model.t3.to(getattr(torch, dtype))
        lines = lambda: _lines(synth, voices, FORCED)  # noqa: E731
        want = _batch(synth, lines(), options=DecodeOptions(static_cache=True, dtype=dtype, **RACE),
                      pool=_pool(synth))
        pool = _pool(synth, "cuda")
        graphed = DecodeOptions(static_cache=True, graph="cuda", dtype=dtype, **RACE)
        _assert_tokens(_batch(synth, lines(), options=graphed, pool=pool), want)
        captured = pool.captures
        assert captured == len(pool.decoders) > 1
        _assert_tokens(_batch(synth, lines(), options=graphed, pool=pool), want)
        assert pool.captures == captured
