"""Batched ChatterBox on the tiny random model: a line in a batch decodes as it does alone; batching in serving.

Tolerances: speech tokens are compared exactly (the batch does a lone line's arithmetic; only the rounding of
batched GEMMs / padded sums may differ, and no draw here lands that close to a CDF boundary). Waveforms, which
go through the padded flow and batched vocoder, must match within WAVE_ATOL: observed <= 1e-7 from S3Gen (peaks
~0.1), then the fixture's DummyWatermarker rounds samples to 1e-5, so one rounding step (1e-5) at most.
"""

from __future__ import annotations

import asyncio
import gc
import time
from dataclasses import replace

import numpy as np
import pytest
import torch

from actors.chatterbox import model as tts
from actors.chatterbox.batch_s3gen import tokens_to_wav_batch
from actors.chatterbox.batch_t3 import DecodeOptions, SynthRequest, T3Line, prefill_inputs, sample_speech_tokens_batch
from actors.chatterbox.batcher import LineBatcher
from actors.chatterbox.decode import sample_speech_tokens, tokens_to_wav
from graph.errors import BadInput
from graph.types import Clip

WAVE_ATOL = 1e-4
# (text, language, voice, seed, exaggeration, cfg_weight, temperature, max_new_tokens or None for the budget)
LINES = [
    ("Olá, tudo bem?", "pt-br", 0, 1, 0.5, 0.5, 0.8, None),
    ("Bom dia, senhora. Como vai a senhora hoje?", "pt-br", 1, 2, 0.7, 0.3, 0.8, None),
    ("Hello there, how are you doing today?", "en", 0, 3, 0.5, 0.5, 1.0, 6),  # cut by its max_new_tokens
    ("Oi.", "pt-br", 1, 7, 0.3, 0.0, 0.6, None),
    ("¿Dónde está la estación?", "es", 1, 4, 0.5, 0.5, 0.8, None),
]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _lines(synth, voices, specs=LINES) -> list[T3Line]:
    """Fresh T3 inputs (T3 caches the prompt embedding on the T3Cond) exactly as ``synthesize`` builds them."""
    lines = []
    for text, language, voice, seed, exaggeration, cfg, temperature, max_new in specs:
        tokens = synth._line_tokens(text, language, temperature)
        budget = max_new or tts._token_budget(tokens.size(-1) - 2)
        lines.append(T3Line(synth._t3_cond(voices[voice], exaggeration), tokens, torch.Generator().manual_seed(seed),
                            budget, cfg, temperature, seed))
    return lines


def _alone(synth, line: T3Line) -> torch.Tensor:
    return sample_speech_tokens(
        synth._model.t3, line.t3_cond, line.text_tokens.repeat(2, 1), generator=line.generator,
        max_new_tokens=line.max_new_tokens, temperature=line.temperature, cfg_weight=line.cfg_weight,
        repetition_penalty=tts.REPETITION_PENALTY, min_p=tts.MIN_P, top_p=tts.TOP_P,
    )


def _batch(synth, lines, **kwargs) -> list[torch.Tensor]:
    return sample_speech_tokens_batch(synth._model.t3, lines, repetition_penalty=tts.REPETITION_PENALTY,
                                      min_p=tts.MIN_P, top_p=tts.TOP_P, **kwargs)


@pytest.fixture(scope="module")
def alone(synth, voices) -> list[torch.Tensor]:
    return [_alone(synth, line) for line in _lines(synth, voices)]


def _assert_tokens(got: list[torch.Tensor], want: list[torch.Tensor]) -> None:
    assert len(got) == len(want)
    for i, (g, w) in enumerate(zip(got, want)):
        assert torch.equal(g, w), f"line {i} {LINES[i][0]!r}: {g.tolist()} != {w.tolist()}"


def test_each_line_of_a_mixed_batch_decodes_as_alone(synth, voices, alone):
    eos = synth._model.t3.hp.stop_speech_token
    _assert_tokens(_batch(synth, _lines(synth, voices)), alone)
    budgets = [line.max_new_tokens for line in _lines(synth, voices)]
    stopped = [int(t[0, -1]) == eos and t.size(-1) < b for t, b in zip(alone, budgets)]
    assert stopped[0] and stopped[1] and stopped[4]  # early stops at different steps
    assert alone[2].size(-1) == 6 and int(alone[2][0, -1]) != eos  # cut by its own max_new_tokens
    assert stopped[3] and alone[3].size(-1) <= 12  # "Oi.": very short
    assert len({t.size(-1) for t in alone}) >= 4


def test_batch_order_and_static_cache_change_nothing(synth, voices, alone):
    order = [3, 0, 4, 2, 1]
    shuffled = _batch(synth, [_lines(synth, voices)[i] for i in order])
    _assert_tokens([shuffled[order.index(i)] for i in range(len(LINES))], alone)
    _assert_tokens(_batch(synth, _lines(synth, voices), options=DecodeOptions(static_cache=True)), alone)


def test_race_sampler_depends_only_on_the_line(synth, voices):
    eos = synth._model.t3.hp.stop_speech_token
    options = DecodeOptions(sampler="race", alignment=False)
    together = _batch(synth, _lines(synth, voices), options=options)
    each = [_batch(synth, [line], options=options)[0] for line in _lines(synth, voices)]
    _assert_tokens(together, each)
    static = DecodeOptions(sampler="race", alignment=False, static_cache=True, sync_every=4)
    _assert_tokens(_batch(synth, _lines(synth, voices), options=static), together)
    assert all(t.numel() > 0 for t in together) and int(together[0][0, -1]) == eos


def test_rows_keep_their_own_conditioning(synth, voices):
    """The prefill row of each line holds its own speaker embedding, emotion and text, and nothing else."""
    t3 = synth._model.t3
    lines = _lines(synth, voices)
    pre = prefill_inputs(t3, lines)
    n = len(lines)
    with torch.inference_mode():
        for r, (line, spec) in enumerate(zip(lines, LINES)):
            speaker = t3.cond_enc.spkr_enc(torch.tensor(voices[spec[2]].arrays["t3.speaker_emb"]).view(1, -1))[0]
            other = t3.cond_enc.spkr_enc(torch.tensor(voices[1 - spec[2]].arrays["t3.speaker_emb"]).view(1, -1))[0]
            emotion = t3.cond_enc.emotion_adv_fc(torch.full((1, 1, 1), spec[4])).view(-1)
            pad = int(pre.pad[r])
            start, end = pre.text_slices[r]
            for row in (r, r + n):  # conditional and unconditional rows
                assert torch.equal(pre.embeds[row, pad], speaker) and not torch.allclose(pre.embeds[row, pad], other)
                assert torch.equal(pre.embeds[row, pad + start - 1], emotion)
                assert not pre.embeds[row, :pad].any()
            alone = t3.prepare_conditioning(synth._t3_cond(voices[spec[2]], spec[4]))[0]
            assert torch.equal(pre.embeds[r, pad : pad + start], alone)  # speaker, prompt speech, emotion
            positions = t3.text_pos_emb(line.text_tokens)
            text = t3.text_emb(line.text_tokens[0]) + positions
            assert torch.equal(pre.embeds[r, pad + start : pad + end], text)
            blank = positions if spec[5] > 0 else text  # CFG's unconditional row: text zeroed, positions kept
            assert torch.equal(pre.embeds[r + n, pad + start : pad + end], blank)
            assert pad + int(pre.lengths[r]) == pre.embeds.size(1)


def test_a_cancelled_line_leaves_the_decode(synth, voices, alone):
    calls = {"line 1": 0}

    def cancelled(line: int) -> bool:
        if line == 1:
            calls["line 1"] += 1
        return line == 1 and calls["line 1"] > 2

    got = _batch(synth, _lines(synth, voices), cancelled=cancelled)
    assert got[1].numel() == 0 and calls["line 1"] == 3
    _assert_tokens([got[i] for i in (0, 2, 3, 4)], [alone[i] for i in (0, 2, 3, 4)])


@pytest.fixture(scope="module")
def requests_(voices) -> list[SynthRequest]:
    specs = [(text, language, voice, seed, exaggeration, cfg, temperature)
             for text, language, voice, seed, exaggeration, cfg, temperature, _ in LINES if _ is None]
    requests = [SynthRequest(t, lang, voices[v], seed=s, exaggeration=e, cfg_weight=c, temperature=temp)
                for t, lang, v, s, e, c, temp in specs]
    requests[1] = replace(requests[1], pace=1.6)  # one line spoken faster, in the same batch
    return requests[:2] + [SynthRequest("", "en", voices[0]), SynthRequest("...", "pt-br", voices[1])] + requests[2:]


@pytest.fixture(scope="module")
def sequential(synth, requests_) -> list[Clip]:
    return [synth.synthesize(r.text, r.language, r.conditionals, r.seed, r.exaggeration, r.cfg_weight, r.temperature,
                             r.pace) for r in requests_]


def _assert_close(clips: list[Clip], expected: list[Clip]) -> None:
    assert len(clips) == len(expected)
    for i, (got, want) in enumerate(zip(clips, expected)):
        assert got.sr == want.sr and got.samples.dtype == np.float32
        assert got.samples.shape == want.samples.shape, f"clip {i}"
        assert np.allclose(got.samples, want.samples, rtol=0, atol=WAVE_ATOL), f"clip {i}"


def test_synthesize_batch_equals_synthesize_and_passes_empty_lines(synth, requests_, sequential):
    clips = synth.synthesize_batch(requests_)
    _assert_close(clips, sequential)
    assert clips[2].samples.size == 0 and clips[3].samples.size == 0
    assert all(c.samples.size > 0 for i, c in enumerate(clips) if i not in (2, 3))
    assert synth.synthesize_batch([]) == []


def test_s3gen_batch_per_line_references_and_lengths(synth, voices):
    """Lines of two voices, two of one length (one vocoder call), against tokens_to_wav one by one."""
    s3gen = synth._model.s3gen
    lengths, owners = [30, 30, 7, 52], [0, 1, 1, 0]
    tokens = [torch.randint(0, 6561, (n,), generator=torch.Generator().manual_seed(n + i)) for i, n in enumerate(lengths)]
    tokens[1] = tokens[0]
    refs = [synth._s3gen_ref(voices[v]) for v in owners]
    want = [tokens_to_wav(s3gen, t, ref, torch.Generator().manual_seed(i)) for i, (t, ref) in enumerate(zip(tokens, refs))]
    got = tokens_to_wav_batch(s3gen, tokens, refs, [torch.Generator().manual_seed(i) for i in range(4)], max_batch=3,
                              max_padding=1.0)  # padded rows in one flow batch
    for g, w in zip(got, want):
        assert g.shape == w.shape and torch.allclose(g, w, rtol=0, atol=WAVE_ATOL)
    assert not torch.allclose(got[0], got[1], atol=1e-3)  # same tokens, other voice


def test_s3gen_buckets_bound_padding_and_batch_size():
    from actors.chatterbox.batch_s3gen import buckets

    assert buckets([100, 300, 105, 110, 290, 111], 8, 0.1) == [[0, 2, 3], [5], [4, 1]]
    assert buckets([100, 101, 102, 103], 2, 0.1) == [[0, 1], [2, 3]]
    assert buckets([5, 1], 8, 10.0) == [[1, 0]]


def test_hooks_and_analyzers_do_not_pile_up(synth, voices):
    from chatterbox.models.t3.inference.alignment_stream_analyzer import AlignmentStreamAnalyzer

    def hooks() -> int:
        return sum(len(m._forward_hooks) for m in synth._model.t3.modules())

    _batch(synth, _lines(synth, voices, LINES[3:4]))
    after_one = hooks()
    _batch(synth, _lines(synth, voices, LINES[3:4]))
    gc.collect()
    assert hooks() == after_one == 3  # prepare_t3's three taps serve lone and batched decodes
    assert not [o for o in gc.get_objects() if issubclass(type(o), AlignmentStreamAnalyzer)]


def _fake_run(log: list, delay: float = 0.0, poll: list | None = None):
    """A run_batch that answers each request with a clip naming it; optionally waits and records cancellations."""

    def run(requests: list[SynthRequest], cancelled) -> list[Clip]:
        log.append([r.text for r in requests])
        if any(r.text == "bad" for r in requests):
            raise BadInput("bad line")
        deadline = time.monotonic() + delay
        while time.monotonic() < deadline:
            if poll is not None:
                poll.extend(r.text for i, r in enumerate(requests) if cancelled(i) and r.text not in poll)
            time.sleep(0.01)
        return [Clip(np.full(len(r.text), r.seed, dtype=np.float32), 24000) for r in requests]

    return run


def test_line_batcher_groups_jobs_and_answers_each_caller():
    calls: list = []

    async def main():
        batcher = LineBatcher(_fake_run(calls, delay=0.05), max_batch=5, max_wait_s=0.05)

        async def job(name: str, k: int) -> list[Clip]:
            return list(await asyncio.gather(*(batcher.submit(SynthRequest(f"{name}-{i}" * (i + 1), "en", None, seed=k))
                                               for i in range(4))))

        results = await asyncio.gather(job("a", 1), job("bb", 2), job("ccc", 3))
        await batcher.close()
        return results, list(batcher.batches)

    results, batches = asyncio.run(main())
    for name, seed, clips in zip(("a", "bb", "ccc"), (1, 2, 3), results):
        assert [c.samples.size for c in clips] == [len(f"{name}-{i}" * (i + 1)) for i in range(4)]
        assert all((c.samples == seed).all() for c in clips)
    assert sum(batches) == 12 and max(batches) <= 5 and len(batches) == 3
    assert any(len({text[0] for text in batch}) > 1 for batch in calls)  # jobs share batches


def test_line_batcher_gives_the_callers_of_a_finished_batch_time_to_send_their_next_lines():
    """Five jobs voicing lines one after another, four lines per batch: the fifth job's first line waits through
    the first batch; it is then joined by the others' next lines instead of running alone."""
    calls: list = []

    async def main():
        batcher = LineBatcher(_fake_run(calls, delay=0.3), max_batch=4, max_wait_s=0.1)

        async def job(k: int) -> None:
            for i in range(3):
                await batcher.submit(SynthRequest(f"{k}-{i}", "en", None))
                await asyncio.sleep(0.01 * (k + 1))  # fitting and saving the line before sending the next

        await asyncio.gather(*(job(k) for k in range(5)))
        await batcher.close()
        return list(batcher.batches)

    assert asyncio.run(main()) == [4, 4, 4, 2, 1]  # the last two wait on lines of their own job


def test_line_batcher_cancellation_and_errors():
    calls: list = []
    seen_cancelled: list = []

    async def main():
        batcher = LineBatcher(_fake_run(calls, delay=0.3, poll=seen_cancelled), max_batch=2, max_wait_s=0.01)
        running = [asyncio.create_task(batcher.submit(SynthRequest(t, "en", None))) for t in ("keep", "drop-running")]
        await asyncio.sleep(0.05)  # the first batch is decoding
        queued = [asyncio.create_task(batcher.submit(SynthRequest(t, "en", None))) for t in ("drop-queued", "later")]
        await asyncio.sleep(0.05)
        running[1].cancel()
        queued[0].cancel()
        kept, later = await running[0], await queued[1]
        bad = await asyncio.gather(batcher.submit(SynthRequest("bad", "en", None)),
                                   batcher.submit(SynthRequest("good", "en", None)), return_exceptions=True)
        await batcher.close()
        return kept, later, bad, [t.cancelled() for t in (running[1], queued[0])]

    kept, later, bad, cancelled = asyncio.run(main())
    assert kept.samples.size == 4 and later.samples.size == 5 and cancelled == [True, True]
    assert "drop-running" in seen_cancelled  # the running decode saw it and could drop its row
    assert not any("drop-queued" in batch for batch in calls)  # never reached the model
    assert isinstance(bad[0], BadInput) and isinstance(bad[1], Clip) and bad[1].samples.size == 4


def test_line_batcher_on_the_synthesizer(synth, requests_, sequential):
    async def main():
        batcher = LineBatcher(synth.synthesize_batch, max_batch=8, max_wait_s=0.5)
        clips = await asyncio.gather(*(batcher.submit(r) for r in requests_[:3]))
        await batcher.close()
        return list(clips), list(batcher.batches)

    clips, batches = asyncio.run(main())
    assert batches == [3]
    _assert_close(clips, sequential[:3])


@pytest.mark.slow
def test_batching_synthesizer_batches_concurrent_lines_or_voices_them_alone(tiny_chatterbox_spec, requests_,
                                                                            sequential):
    """The actor the CLI, backfills and Serve use: batching on gives the lines' own clips; 1 turns it off."""
    from actors.chatterbox.batcher import BatchingSynthesizer

    synth = BatchingSynthesizer(tiny_chatterbox_spec, "tiny", max_batch=8, max_wait_s=0.5)

    async def voice() -> list[Clip]:
        return list(await asyncio.gather(*(synth.synthesize(r.text, r.language, r.conditionals, r.seed,
                                                            r.exaggeration, r.cfg_weight, r.temperature, r.pace)
                                           for r in requests_)))

    _assert_close(asyncio.run(voice()), sequential)
    assert synth.stats()["batches"] == [len(requests_)]
    synth.configure(1)
    _assert_close(asyncio.run(voice()), sequential)
    assert synth.stats()["batches"] == []  # no batch ran since
    with pytest.raises(BadInput, match="batch size must be >= 1"):
        synth.configure(0)
    with pytest.raises(BadInput, match="bad decode options .*sampler"):
        synth.configure(8, decode={"sampler": "greedy"})
    with pytest.raises(BadInput, match="bad decode options .*dtype must be one of"):
        synth.configure(8, decode={"dtype": "bfloat17"})
    with pytest.raises(BadInput, match="bad decode options .*unknown decode preset"):
        synth.configure(8, decode="quick")
    assert not synth.batching  # refused configurations leave the last good one (1: no batching) in force
    synth.configure(8, 0.5, decode={"sampler": "race", "alignment": False, "static_cache": True})
    raced = asyncio.run(voice())  # the GPU-speed options run on CPU too: other draws, same lines voiced
    assert synth.stats()["batches"] == [len(requests_)]
    assert [c.samples.size > 0 for c in raced] == [c.samples.size > 0 for c in sequential]


def test_a_synthesizer_without_batches_is_refused_before_anything_starts():
    from actors.chatterbox.batcher import BatchingSynthesizer
    from actors.models import OFFLINE
    from graph.run.pools import Replicas, start_stages

    with pytest.raises(BadInput, match="EspeakSynthesizer cannot decode lines in batches"):
        BatchingSynthesizer(OFFLINE.model("synthesizer"), "offline", max_batch=8)
    with pytest.raises(BadInput, match="offline profile's synthesizer .* cannot decode lines in batches"):
        start_stages(OFFLINE, Replicas(synth_batch=8))  # raises before Ray is touched
