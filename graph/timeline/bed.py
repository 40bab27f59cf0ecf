"""The background bed under the dub, in the source's channel layout, and where the dubbed voices go in it.

Two ways to a bed. Separation: every channel minus its share of a separator's speech estimate, so music and
effects go on under the lines. Ducking (the fallback when separation is off): the source faded to silence under
every line, so the bed drops out whenever someone speaks and speech the recogniser missed stays in.

Speech is taken to sit at one place in the layout, as dialogue is mixed: the centre channel of 5.1/7.1, the
phantom centre of stereo. ``speech_mix`` is the one signal the separator hears; ``voice_gains`` says how much of
that speech each channel carries, which is where, and how loud, the dubbed voices go.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from graph.types import Utterance

DUCK_RAMP_S = 0.05
CENTRE_INDEX = 2  # FL FR FC ...: ffmpeg's (and WAV's) order for every layout with a centre channel
CENTRE_LAYOUTS = frozenset(
    "3.0 3.1 4.0 4.1 5.0 5.0(side) 5.1 5.1(side) 6.0 6.0(front) 6.1 6.1(back) 6.1(front) 7.0 7.0(front) "
    "7.1 7.1(wide) 7.1(wide-side) 7.1(top) hexagonal octagonal".split()
)
UNLABELLED_CENTRE_CHANNELS = (6, 8)  # a file that names no layout but has 6 or 8 channels is 5.1 / 7.1
MIN_SPEECH_ENERGY = 1e-9


def mix_weights(layout: str, channels: int) -> np.ndarray:
    """How ``speech_mix`` combines the channels: the centre alone when there is one, else their mean."""
    weights = np.zeros(channels, dtype=np.float32)
    if channels > CENTRE_INDEX and (layout in CENTRE_LAYOUTS or (not layout and channels in UNLABELLED_CENTRE_CHANNELS)):
        weights[CENTRE_INDEX] = 1.0
    else:
        weights[:] = 1.0 / channels
    return weights


def speech_mix(samples: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(channels, n) -> (n,): the signal where the dialogue is, the one the separator is given."""
    return np.ascontiguousarray(weights.astype(np.float32) @ samples, dtype=np.float32)


def voice_gains(samples: np.ndarray, speech: np.ndarray, weights: np.ndarray, spans: Sequence[tuple[int, int]]) -> np.ndarray:
    """Per channel, the gain of the speech in it relative to ``speech`` (least squares over the line ``spans``).

    Scaled so the weighted sum is 1 (the mix channel itself carries the speech at gain 1, a stereo pair's gains
    add to 2): a voice levelled against ``speech`` then lands in each channel at that channel's speech level.
    """
    if spans:
        index = np.concatenate([np.arange(a, b) for a, b in spans if b > a] or [np.arange(0)])
    else:
        index = np.arange(samples.shape[1])
    ref = speech[index].astype(np.float64)
    energy = float(ref @ ref)
    gains = (weights > 0).astype(np.float64)  # no speech to measure: the voices go where the mix is taken from
    if energy >= MIN_SPEECH_ENERGY:
        fitted = np.maximum(samples[:, index].astype(np.float64) @ ref / energy, 0.0)
        if float(weights @ fitted) > 0:
            gains = fitted
    return (gains / float(weights @ gains)).astype(np.float32)


def separated_bed(samples: np.ndarray, speech: np.ndarray, gains: np.ndarray) -> np.ndarray:
    """(channels, n): each channel minus its share of the speech estimate (same rate, time-aligned)."""
    n = min(samples.shape[1], len(speech))
    bed = samples.astype(np.float32, copy=True)
    bed[:, :n] -= gains[:, None].astype(np.float32) * speech[None, :n].astype(np.float32)
    return bed


def ducked_background(source: np.ndarray, sr: int, utterances: Sequence[Utterance]) -> np.ndarray:
    """The source ((n,) or (channels, n)) with every line's span faded to silence: a bed without speech."""
    n = source.shape[-1]
    gain = np.ones(n, dtype=np.float32)
    ramp = max(1, int(DUCK_RAMP_S * sr))
    for u in utterances:
        a, b = max(0, int(u.start_s * sr) - ramp), min(n, int(u.end_s * sr) + ramp)
        gain[a:b] = 0.0
    kernel = np.ones(ramp, dtype=np.float32) / ramp
    return source * np.convolve(gain, kernel, mode="same").astype(np.float32)


def line_spans(utterances: Sequence[Utterance], sr: int, n: int) -> list[tuple[int, int]]:
    """Sample ranges of the lines, clipped to the signal."""
    return [(max(0, int(u.start_s * sr)), min(n, int(u.end_s * sr))) for u in utterances]
