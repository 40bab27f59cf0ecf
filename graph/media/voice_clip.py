"""A reference clip a user brings for a voice (a job's speaker, or a library voice), checked before any work.

A voice is cloned (ChatterBox) or placed (espeak) from its reference, so a clip that is too short, too quiet or
telephone-band makes a bad voice for every line: such clips are refused with what to change. ChatterBox uses up to
10 s of it (6 s for its speech prompt); speaker embeddings use all of it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from graph import audio
from graph.errors import AudioTooLarge, BadAudio, BadInput
from graph.types import Clip

MIN_CLIP_S = 3.0
MAX_CLIP_S = 30.0
MIN_CLIP_SR = 16_000  # below it (8 kHz telephone audio) there is too little of the voice to clone
MIN_SOUND_S = 1.5  # of frames louder than SOUND_DB
SOUND_DB = -45.0
FRAME_S = 0.05


def read_clip(source: str | Path | bytes, name: str) -> Clip:
    """The clip at its own sample rate, mono; ``BadAudio`` when it cannot be decoded, ``BadInput`` when it cannot
    make a voice. ``name`` is how messages call it (a file name, "voice.SPEAKER_00")."""
    try:
        clip = audio.decode(source, None, max_duration_s=MAX_CLIP_S + 1.0)
    except AudioTooLarge:
        raise BadInput(f"the voice clip {name} is longer than {MAX_CLIP_S:g} s: cut it to {MIN_CLIP_S:g}-"
                       f"{MAX_CLIP_S:g} s of the speaker talking alone") from None
    except BadAudio as exc:
        raise BadAudio(f"the voice clip {name} cannot be read as audio: {exc}") from None
    return check_clip(clip, name)


def check_clip(clip: Clip, name: str) -> Clip:
    """``clip`` when it can make a voice, else ``BadInput`` saying what is wrong with it."""
    if clip.sr < MIN_CLIP_SR:
        raise BadInput(f"the voice clip {name} is sampled at {clip.sr} Hz; voices need at least {MIN_CLIP_SR} Hz "
                       "(record or export it at 16 kHz or more, not from a phone line)")
    if not MIN_CLIP_S <= clip.duration_s <= MAX_CLIP_S:
        raise BadInput(f"the voice clip {name} is {clip.duration_s:.1f} s long; give {MIN_CLIP_S:g}-{MAX_CLIP_S:g} s "
                       "of the speaker talking alone")
    if audio.is_silent(clip):
        raise BadInput(f"the voice clip {name} is silent; give {MIN_CLIP_S:g}-{MAX_CLIP_S:g} s of the speaker talking")
    sound_s = _sound_s(clip)
    if sound_s < MIN_SOUND_S:
        raise BadInput(f"the voice clip {name} holds only {sound_s:.1f} s of sound above {SOUND_DB:g} dBFS; give at "
                       f"least {MIN_SOUND_S:g} s of the speaker talking, recorded louder")
    return clip


def _sound_s(clip: Clip) -> float:
    frame = max(1, int(FRAME_S * clip.sr))
    usable = len(clip.samples) // frame * frame
    frames = np.asarray(clip.samples[:usable], dtype=np.float32).reshape(-1, frame)
    loud = audio.db(np.sqrt(np.mean(frames**2, axis=1))) > SOUND_DB
    return float(np.count_nonzero(loud)) * FRAME_S
