"""Voicing one line: synthesize the chosen translation, fit it to its slot, retry or degrade, never fail the job.

A line that fails is retried (``line_retries``), then left silent and flagged ``synthesis_failed`` in the
manifest. When the fitted line would be cut, a shorter n-best candidate is voiced once and kept if it fits better.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import numpy as np

from graph import audio
from graph.options import DubOptions
from graph.run.checkpoint import Checkpoint, key_of
from graph.run.stages import Stage
from graph.timeline.glossary import respell
from graph.timeline.timing import Fit, choose_candidate, fit_clip
from graph.types import Clip, PlacedLine, Translation, Utterance

log = logging.getLogger(__name__)


def line_seed(base: int, utterance_id: str) -> int:
    digits = "".join(ch for ch in utterance_id if ch.isdigit())
    return base + int(digits or 0)


class LineVoicer:
    """Voices the lines of one language; at most ``synthesizer.parallelism`` lines in flight."""

    def __init__(self, synthesizer: Stage, options: DubOptions, lang: str, sr: int, store: Checkpoint, job_id: str):
        self.synthesizer = synthesizer
        self.options = options
        self.lang = lang
        self.sr = sr
        self.store = store
        self.job_id = job_id
        self.slots = asyncio.Semaphore(max(1, synthesizer.parallelism))

    async def voice(
        self, u: Utterance, translation: Translation, conds: tuple[str, Any], window_end_s: float
    ) -> tuple[PlacedLine, np.ndarray]:
        timing = self.options.timing
        candidates = translation.candidates
        chosen = choose_candidate(candidates, u.text, u.duration_s, timing)
        samples, flags = await self._synthesize(u, candidates[chosen], conds)
        fitted, fit = await asyncio.to_thread(fit_clip, samples, self.sr, u, window_end_s, timing)
        if "truncated" in fit.flags:
            shorter = [i for i, c in enumerate(candidates) if c.strip() and len(c) < len(candidates[chosen])]
            if shorter:
                alt = min(shorter, key=lambda i: len(candidates[i]))
                alt_samples, alt_flags = await self._synthesize(u, candidates[alt], conds)
                alt_fitted, alt_fit = await asyncio.to_thread(fit_clip, alt_samples, self.sr, u, window_end_s, timing)
                if _lost_s(alt_samples, self.sr, alt_fit) < _lost_s(samples, self.sr, fit):
                    chosen, fitted, fit, flags = alt, alt_fitted, alt_fit, alt_flags + ("reselected",)
        line = PlacedLine(
            utterance_id=u.id,
            speaker=u.speaker,
            language=self.lang,
            source_start_s=u.start_s,
            source_end_s=u.end_s,
            source_text=u.text,
            text=candidates[chosen],
            candidates=candidates,
            chosen=chosen,
            start_s=round(fit.start_s, 3),
            end_s=round(fit.end_s, 3),
            stretch=round(fit.rate, 4),
            flags=tuple(dict.fromkeys(translation.flags + flags + fit.flags)),
        )
        return line, fitted

    async def _synthesize(self, u: Utterance, text: str, conds: tuple[str, Any]) -> tuple[np.ndarray, tuple[str, ...]]:
        """Samples at the track rate (checkpointed), and flags; empty when the text is empty or synthesis failed.
        The synthesizer gets the text with the job's pronunciations applied (subtitles keep ``text``)."""
        if not text.strip():
            return np.zeros(0, dtype=np.float32), ("empty_text",)
        text = respell(text, self.options.glossary.pronounce.get(self.lang, {}))
        tts = self.options.tts
        seed = line_seed(tts.seed, u.id)
        cond_key, cond_ref = conds
        key = "line-" + key_of(self.lang, text, cond_key, seed, tts.exaggeration, tts.cfg_weight, tts.temperature)
        cached = self.store.get(key)
        if cached is not None:
            return cached, ()
        attempts = self.options.line_retries + 1
        for attempt in range(1, attempts + 1):
            try:
                async with self.slots:
                    clip: Clip = await self.synthesizer.call(
                        "synthesize", text, self.lang, cond_ref, seed, tts.exaggeration, tts.cfg_weight, tts.temperature
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


def _lost_s(samples: np.ndarray, sr: int, fit: Fit) -> float:
    """Seconds of speech cut off by a fit."""
    return max(0.0, len(samples) / sr / fit.rate - (fit.end_s - fit.start_s))
