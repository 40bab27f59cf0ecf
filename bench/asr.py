"""ASR decoding width on the offline model (faster-whisper tiny.en, int8, CPU): beam 5 against greedy decoding.

    python -m bench.asr [--record]     # --record appends the table to bench/RESULTS.md

ASR is the largest stage of a warm offline job (the 30 s example: ~2-3 s of ~6 s). The clips are espeak-ng
conversations with known words and line times (tests/fixtures/make_dialogue.py) and pyannote's sample.wav (real
speech, no reference text: greedy is compared with beam 5 there). Per width: seconds per transcription (median of
three, after one call that loads the kernels), word error rate against the script, and how far each line's first
recognised word starts from where the line was placed (what the dub's timing is built on).
"""

from __future__ import annotations

import importlib.util
import re
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.report import table_main

WIDTHS = (5, 1)
REPEATS = 3
ONSET_REACH_S = 0.5  # a line's first word is the first recognised word starting at most this before the line


def _plain(text: str) -> list[str]:
    return re.sub(r"[^a-z0-9' ]", " ", text.lower()).split()


def word_errors(reference: list[str], hypothesis: list[str]) -> int:
    """Substitutions, insertions and deletions (word-level edit distance)."""
    row = list(range(len(hypothesis) + 1))
    for i, ref in enumerate(reference, 1):
        previous, row[0] = row[0], i
        for j, hyp in enumerate(hypothesis, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (ref != hyp))
    return row[-1]


def clips(root: Path) -> list[tuple[str, np.ndarray, object]]:
    """(name, 16 kHz audio, Dialogue or None) for the made conversations and pyannote's sample."""
    import soundfile as sf

    from tests.fixtures import make_dialogue as md

    made = [("two speakers, 8 lines", md.TWO_SPEAKERS, md.VOICES, md.GAPS_S),
            ("three speakers, 7 lines", md.THREE_SPEAKERS, md.VOICES, md.GAPS_S),
            ("three fast talkers, 9 lines", md.FAST_THREE, md.FAST_VOICES, md.FAST_GAPS_S),
            ("six short lines", md.SIX_SHORT, md.VOICES, md.PAUSED_GAPS_S)]  # fmt: skip
    out = []
    for i, (name, script, voices, gaps) in enumerate(made):
        dialogue = md.build_dialogue(root / f"clip{i}.wav", script, voices, gaps)
        out.append((name, sf.read(dialogue.path, dtype="float32")[0], dialogue))
    sample = Path(importlib.util.find_spec("pyannote.audio").origin).parent / "sample" / "sample.wav"
    out.append(("pyannote sample.wav (30 s example)", sf.read(sample, dtype="float32")[0], None))
    return out


def _onset_errors(words, dialogue) -> list[float]:
    errors = []
    for line in dialogue.lines:
        first = next((w for w in words if w.start_s >= line.start_s - ONSET_REACH_S), None)
        if first is not None and first.start_s <= line.end_s:
            errors.append(abs(first.start_s - line.start_s))
    return errors


def compare() -> list[dict]:
    from actors.asr import Transcriber
    from actors.models import OFFLINE
    from graph.options import AsrOptions

    asr = Transcriber(OFFLINE.model("asr"), profile="offline", device="cpu")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, audio, dialogue in clips(Path(tmp)):
            heard = {}
            for width in WIDTHS:
                options = AsrOptions(beam_size=width)
                asr.transcribe(audio, options)
                times = []
                for _ in range(REPEATS):
                    start = time.perf_counter()
                    transcript = asr.transcribe(audio, options)
                    times.append(time.perf_counter() - start)
                heard[width] = transcript
                row = {"clip": name, "beam": width, "audio_s": len(audio) / 16000, "s": statistics.median(times)}
                said = [_plain(w.text) for w in transcript.words]
                hypothesis = [t for words in said for t in words]
                if dialogue is not None:
                    reference = [t for line in dialogue.lines for t in _plain(line.text)]
                    row["wer"] = word_errors(reference, hypothesis) / len(reference)
                    onsets = _onset_errors(transcript.words, dialogue)
                    row["onset_ms"] = (1000 * statistics.median(onsets), 1000 * max(onsets), len(onsets),
                                       len(dialogue.lines))  # fmt: skip
                elif width != WIDTHS[0]:
                    beam5 = [t for w in heard[WIDTHS[0]].words for t in _plain(w.text)]
                    row["vs_beam5"] = word_errors(beam5, hypothesis) / len(beam5)
                rows.append(row)
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| clip | beam | s per transcription (x real time) | WER vs script | line onset error, median / max "
             "(lines found) | words differing from beam 5 |", "|---|---|---|---|---|---|"]
    for r in rows:
        onset = (f"{r['onset_ms'][0]:.0f} / {r['onset_ms'][1]:.0f} ms ({r['onset_ms'][2]}/{r['onset_ms'][3]})"
                 if "onset_ms" in r else "")
        wer = f"{100 * r['wer']:.1f} %" if "wer" in r else ""
        vs = f"{100 * r['vs_beam5']:.1f} %" if "vs_beam5" in r else ""
        lines.append(f"| {r['clip']} | {r['beam']} | {r['s']:.2f} s ({r['audio_s'] / r['s']:.0f}x) | {wer} | {onset} "
                     f"| {vs} |")
    return "\n".join(lines)


def main() -> None:
    table_main(__doc__, "ASR beam width (`python -m bench.asr`)",
               f" Offline model (faster-whisper tiny.en int8), one process, {REPEATS} runs per cell (median).",
               lambda: table(compare()))


if __name__ == "__main__":
    main()
