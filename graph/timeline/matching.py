"""Speakers to library voices by speaker embedding: each library voice to at most one speaker, closest first."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Match:
    """What matching found for one speaker: the library voice it gets (None: no voice close enough, or the close
    one went to a closer speaker), the closest voice and its cosine similarity, and the threshold applied."""

    voice: str | None
    closest: str | None
    score: float | None
    threshold: float

    def to_json(self) -> dict:
        score = None if self.score is None else round(self.score, 4)
        return {"voice": self.voice, "closest": self.closest, "score": score, "threshold": self.threshold}


def match_speakers(speakers: Mapping[str, np.ndarray], voices: Mapping[str, np.ndarray],
                   threshold: float) -> dict[str, Match]:
    """Per speaker, the library voice it gets: pairs at or above ``threshold`` are taken best first, so a voice goes
    to the speaker most like it and a speaker to the voice most like them. Vectors are unit length."""
    names, labels = list(voices), list(speakers)
    if not names or not labels:
        return {s: Match(None, None, None, threshold) for s in labels}
    scores = np.stack([speakers[s] for s in labels]) @ np.stack([voices[v] for v in names]).T  # (speakers, voices)
    taken_voices: set[int] = set()
    given: dict[int, int] = {}
    for flat in np.argsort(-scores, axis=None, kind="stable"):
        i, j = divmod(int(flat), len(names))
        if scores[i, j] < threshold:
            break
        if i not in given and j not in taken_voices:
            given[i] = j
            taken_voices.add(j)
    result = {}
    for i, label in enumerate(labels):
        best = int(np.argmax(scores[i]))
        voice = names[given[i]] if i in given else None
        result[label] = Match(voice, names[best], float(scores[i, best]), threshold)
    return result
