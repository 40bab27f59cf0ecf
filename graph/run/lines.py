"""Voicing one take of a line: its text at a pace, checkpointed, retried, degraded, never failing the job.

A take that fails is retried (``line_retries``), then left silent and flagged ``synthesis_failed`` in the
manifest. Takes are trimmed to their speech, so a line's onset is where it is placed; where and how fast lines
play is decided for all lines of a language at once (graph/run/placing.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from graph import audio
from graph.options import DubOptions
from graph.run.checkpoint import Checkpoint, key_of
from graph.run.stages import Stage
from graph.timeline.glossary import respell
from graph.timeline.timing import trim
from graph.types import Clip, Utterance

log = logging.getLogger(__name__)


def line_seed(base: int, utterance_id: str) -> int:
    """The seed of one line: a hash of (job seed, line id), so no two seeds share a line's seed by an offset
    (with ``base + line number``, ``--seed 1`` line k was ``--seed 0`` line k+1)."""
    digest = hashlib.blake2b(f"{base}:{utterance_id}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big")  # < 2**32: what numpy and torch generators take


@dataclass(frozen=True)
class Take:
    """A line's text as the synthesizer spoke it at ``pace`` (1 = the voice's natural pace), trimmed to its speech."""

    text: str
    pace: float
    samples: np.ndarray  # at the track's rate
    sr: int
    flags: tuple[str, ...] = ()

    @property
    def natural_s(self) -> float:
        """How long the voice takes to say it at its natural pace (a take at pace p is 1/p as long)."""
        return len(self.samples) / self.sr * self.pace


class LineVoicer:
    """Voices takes of the lines of one language; at most ``synthesizer.parallelism`` takes in flight."""

    def __init__(self, synthesizer: Stage, options: DubOptions, lang: str, sr: int, store: Checkpoint, job_id: str):
        self.synthesizer = synthesizer
        self.options = options
        self.lang = lang
        self.sr = sr
        self.store = store
        self.job_id = job_id
        self.slots = asyncio.Semaphore(max(1, synthesizer.parallelism))

    async def take(self, u: Utterance, text: str, conds: tuple[str, Any], pace: float = 1.0) -> Take:
        """``text`` in the voice of ``conds`` at ``pace``; empty when the text is empty or synthesis failed."""
        pace = round(pace, 2)
        samples, flags = await self._synthesize(u, text, conds, pace)
        return Take(text, pace, await asyncio.to_thread(trim, samples, self.sr) if len(samples) else samples, self.sr,
                    flags)

    async def _synthesize(self, u: Utterance, text: str, conds: tuple[str, Any],
                          pace: float) -> tuple[np.ndarray, tuple[str, ...]]:
        """Samples at the track rate (checkpointed), and flags. The synthesizer gets the text with the job's
        pronunciations applied (subtitles keep ``text``)."""
        if not text.strip():
            return np.zeros(0, dtype=np.float32), ("empty_text",)
        text = respell(text, self.options.glossary.pronounce.get(self.lang, {}))
        tts = self.options.tts
        seed = line_seed(tts.seed, u.id)
        cond_key, cond_ref = conds
        key = "line-" + key_of(self.lang, text, cond_key, seed, tts.exaggeration, tts.cfg_weight, tts.temperature, pace)
        cached = self.store.get(key)
        if cached is not None:
            return cached, ()
        attempts = self.options.line_retries + 1
        for attempt in range(1, attempts + 1):
            try:
                async with self.slots:
                    clip: Clip = await self.synthesizer.call(
                        "synthesize", text, self.lang, cond_ref, seed, tts.exaggeration, tts.cfg_weight,
                        tts.temperature, pace,
                    )
                break
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any failure of one line degrades that line only
                if attempt < attempts:
                    log.warning("[%s] line %s (%s) failed (%s: %s): retrying", self.job_id, u.id, self.lang, type(exc).__name__, exc)
                else:
                    log.error("[%s] line %s (%s) failed %d times, left silent: %s", self.job_id, u.id, self.lang, attempts, exc)
                    return np.zeros(0, dtype=np.float32), ("synthesis_failed",)
        samples = clip.samples if clip.sr == self.sr else audio.resample(clip.samples, clip.sr, self.sr)
        samples = np.asarray(samples, dtype=np.float32)
        self.store.put(key, samples)
        return samples, ()
