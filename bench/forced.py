"""Random-weight ChatterBox for benchmarks: every line decodes exactly as many speech tokens as real speech would.

A trained T3 stops near the end of its text; random weights (the tiny fixture on CPU, the full-size architecture on
a GPU) almost never do, so lines would run to their caps (1000 tokens = 40 s in chatterbox's ``generate``, about 4x
real speech in dubgraph's budget) and the two pipelines would decode different amounts of audio. Inside
``forced(text)`` a line gets exactly ``target_tokens(text)`` speech tokens (25 per second of the audio the text
takes at ``SPEAKING_CPS`` characters per second), then the stop token.

The force is applied right after chatterbox's ``AlignmentStreamAnalyzer.step``: the last edit of the logits
before sampling in chatterbox's own ``T3.inference`` (the baseline) and in dubgraph's ``sample_speech_tokens``
and ``sample_speech_tokens_batch`` (the graph; in a batch each row's analyzer carries its own line), so every
per-token cost (backbone, CFG, analyzer, penalties, sampling) stays as it was. Ids a trained T3 never samples
(start token, ids past the S3 vocabulary) are masked, so S3Gen receives all N tokens. The moment the stop is
forced is the end of the T3 decode, which splits a line's time into T3 and S3Gen.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np

from actors.chatterbox.model import TOKENS_PER_S, Synthesizer, has_speech
from graph.types import Clip

SPEAKING_CPS = 15.0  # characters per second of ordinary speech (en/pt/es/fr, spaces and punctuation included)
SAMPLES_PER_TOKEN = 960  # S3Gen at 24 kHz: 2 mel frames per token, 480 samples per frame


@dataclass
class LineClock:
    """One forced line: its token count and when its T3 decode ended (perf_counter seconds)."""

    tokens: int
    started: float
    decoded: float | None = None


QUIET_LOGGERS = ("chatterbox",)  # the analyzer warns on every repeated token: noise, and printing costs time

_LINE: ContextVar[LineClock | None] = ContextVar("bench_forced_line", default=None)
_BATCH: ContextVar[list[LineClock] | None] = ContextVar("bench_forced_batch", default=None)
_install_lock = threading.Lock()


def target_tokens(text: str) -> int:
    return max(1, round(TOKENS_PER_S * len(text.strip()) / SPEAKING_CPS))


def quiet() -> None:
    """The same logging in the baseline's process and the graph's actors: chatterbox's warnings off."""
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)


def install() -> None:
    """Wrap ``AlignmentStreamAnalyzer.step`` and the batch's analyzer factory once per process (no-ops outside
    ``forced`` and ``forced_batch``)."""
    from chatterbox.models.t3.inference.alignment_stream_analyzer import AlignmentStreamAnalyzer

    from actors.chatterbox import batch_t3

    with _install_lock:
        if getattr(AlignmentStreamAnalyzer.step, "bench_forced", False):
            return
        AlignmentStreamAnalyzer.step = _forcing(AlignmentStreamAnalyzer.step)
        batch_t3.new_analyzer = _numbering(batch_t3.new_analyzer)


def _numbering(new_analyzer):
    """The batch makes one analyzer per line, in line order: each takes the next of the batch's clocks."""

    def numbered(t3, text_slice):
        analyzer = new_analyzer(t3, text_slice)
        pending = _BATCH.get()
        if pending:
            line = pending.pop(0)
            if analyzer is not None:
                analyzer.bench_line = line
        return analyzer

    return numbered


def _forcing(step):
    import torch
    from chatterbox.models.s3tokenizer import SPEECH_VOCAB_SIZE

    def forced_step(self, logits, next_token=None):
        line = getattr(self, "bench_line", None) or _LINE.get()
        if line is None:
            return step(self, logits, next_token)
        speech = logits[..., :SPEECH_VOCAB_SIZE].clone()  # the analyzer edits in place or replaces everything
        logits = step(self, logits, next_token)
        out = torch.full_like(logits, float("-inf"))
        if self.curr_frame_pos - 1 >= line.tokens:  # step() counted this position: tokens 0..N-1 are speech
            out[..., self.eos_idx] = 0.0
            line.decoded = time.perf_counter()
        else:
            out[..., :SPEECH_VOCAB_SIZE] = speech
        return out

    forced_step.bench_forced = True
    return forced_step


@contextmanager
def forced(text: str) -> Iterator[LineClock]:
    """Decode ``text`` (in this thread/context) to exactly ``target_tokens(text)`` speech tokens."""
    install()
    line = LineClock(target_tokens(text), time.perf_counter())
    token = _LINE.set(line)
    try:
        yield line
    finally:
        _LINE.reset(token)


@contextmanager
def forced_batch(texts: list[str]) -> Iterator[list[LineClock]]:
    """Decode a batch of ``texts`` (the lines that reach T3, in order) to their ``target_tokens`` each."""
    install()
    now = time.perf_counter()
    lines = [LineClock(target_tokens(text), now) for text in texts]
    token = _BATCH.set(list(lines))
    try:
        yield lines
    finally:
        _BATCH.reset(token)


class ForcedSynthesizer(Synthesizer):
    """dubgraph's synthesizer actor, unchanged but for forced lengths, plus where its busy time went."""

    def __init__(self, *args: Any, **kwargs: Any):
        quiet()
        super().__init__(*args, **kwargs)
        self._busy: dict[str, float] = {}
        self._counts: dict[str, int] = {}
        self._busy_lock = threading.Lock()

    def _add(self, stage: str, seconds: float) -> None:
        with self._busy_lock:
            self._busy[stage] = self._busy.get(stage, 0.0) + seconds
            self._counts[stage] = self._counts.get(stage, 0) + 1

    def prepare(self, reference: np.ndarray, sr: int):
        started = time.perf_counter()
        conditionals = super().prepare(reference, sr)
        self._add("conditionals", time.perf_counter() - started)
        return conditionals

    def synthesize(self, text: str, language: str, conditionals: Any, *args: Any, **kwargs: Any) -> Clip:
        with forced(text) as line:
            clip = super().synthesize(text, language, conditionals, *args, **kwargs)
        if line.decoded is not None:
            self._add("t3", line.decoded - line.started)
            self._add("s3gen", time.perf_counter() - line.decoded)
        return clip

    def configure_decode(self, options, max_batch: int = 1) -> None:
        """Without chatterbox's analyzer (the fast decode) a line is forced by its budget, EOS never drawn."""
        super().configure_decode(options if options.alignment else replace(options, stop_on_eos=False), max_batch)

    def _budget(self, text_tokens, text: str) -> int:
        return super()._budget(text_tokens, text) if self.decode.alignment else target_tokens(text)

    def synthesize_batch(self, requests: list, cancelled=None) -> list[Clip]:
        started = time.perf_counter()
        with forced_batch([r.text for r in requests if has_speech(r.text)]) as lines:
            clips = super().synthesize_batch(requests, cancelled)
        decoded = [line.decoded for line in lines if line.decoded is not None]
        if decoded:  # T3 ends when the batch's last line has decoded
            self._add("t3", max(decoded) - lines[0].started)
            self._add("s3gen", time.perf_counter() - max(decoded))
        else:  # no analyzer to see T3 end: the batch as a whole
            self._add("batch", time.perf_counter() - started)
        return clips

    def stats(self) -> dict[str, Any]:
        """Thread-seconds per part (conditionals, t3, s3gen) and call counts since the last call; then reset."""
        with self._busy_lock:
            out = {"seconds": dict(self._busy), "calls": dict(self._counts)}
            self._busy.clear()
            self._counts.clear()
        return out


def load_full_random(location: str, device: str):
    """Full-size ChatterBox multilingual (T3 0.5B, S3Gen, VoiceEncoder) with seeded random weights.

    ``location`` holds the tiny fixture's hand-made vocabulary (``write_vocab``): the real tokenizer file is on
    the hub. Compute and memory are those of the real model; chatterbox's own watermarker is kept.
    """
    import torch
    from chatterbox.models.s3gen import S3Gen
    from chatterbox.models.t3 import T3
    from chatterbox.models.t3.modules.t3_config import T3Config
    from chatterbox.models.voice_encoder import VoiceEncoder
    from chatterbox.mtl_tts import ChatterboxMultilingualTTS

    from tests.fixtures.tiny_chatterbox import SEED, VOCAB_FILE, _tokenizer

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        t3, s3gen, ve = T3(T3Config.multilingual()), S3Gen(), VoiceEncoder()
    for module in (t3, s3gen, ve):
        module.to(device).eval()
    import perth

    watermarker = perth.PerthImplicitWatermarker
    if not (Path(perth.__file__).parent / "perth_net" / "pretrained" / "implicit" / "hparams.yaml").exists():
        watermarker = perth.DummyWatermarker  # a slim install without the watermark checkpoint (a GPU machine)
    with mock.patch.object(perth, "PerthImplicitWatermarker", watermarker):
        return ChatterboxMultilingualTTS(t3, s3gen, ve, _tokenizer(Path(location) / VOCAB_FILE), device)
