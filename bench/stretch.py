"""The time stretch that fits a take to its slot: sox's ``tempo`` (WSOLA) against ffmpeg's
``atempo`` and librosa's phase vocoder.

    python -m bench.stretch [--record]     # --record appends the table to bench/RESULTS.md

Every line a dub speeds up or slows down goes through the stretch, in the process that places the lines (the CLI's
driver, the HTTP app's job runner). Per method and rate, over spoken lines: how well the words survive (word error
rate of faster-whisper tiny.en on the stretched lines: espeak-ng lines of the test dialogues against their script,
4 s windows of pyannote's sample.wav, real speech, against their unstretched transcript), the length error, the
seconds per second of audio once loaded, and what its first call costs in a fresh interpreter (imports included:
the cost every new CLI run pays before its first fit).
"""

from __future__ import annotations

import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.asr import _plain, word_errors
from bench.report import table_main

SR = 16_000
RATES = (0.8, 1.15, 1.3, 1.5)
WINDOW_S = 4.0
ROOT = Path(__file__).resolve().parent.parent


def _librosa(samples: np.ndarray, sr: int, rate: float) -> np.ndarray:
    import librosa

    return librosa.effects.time_stretch(samples, rate=rate)


def _ffmpeg(samples: np.ndarray, sr: int, rate: float) -> np.ndarray:
    raw = ["-f", "f32le", "-ar", str(sr), "-ac", "1"]
    cmd = ["ffmpeg", "-v", "error", *raw, "-i", "-", "-af", f"atempo={rate}", *raw, "-"]
    return np.frombuffer(subprocess.run(cmd, input=samples.tobytes(), capture_output=True, check=True).stdout,
                         np.float32)


def _sox(samples: np.ndarray, sr: int, rate: float) -> np.ndarray:
    from graph.timeline.timing import stretch

    return stretch(samples, sr, rate)


METHODS = {"sox tempo (WSOLA)": (_sox, "from graph.timeline.timing import stretch as s"),
           "ffmpeg atempo": (_ffmpeg, "from bench.stretch import _ffmpeg as s"),
           "librosa phase vocoder": (_librosa, "import librosa; s = lambda x, sr, r: librosa.effects.time_stretch(x, "
                                               "rate=r)")}  # fmt: skip


def _lines(root: Path) -> list[tuple[np.ndarray, list[str] | None]]:
    """(clip, script words or None for real speech) for each spoken line."""
    import soundfile as sf

    from tests.fixtures import make_dialogue as md

    out = []
    for i, script in enumerate((md.TWO_SPEAKERS, md.THREE_SPEAKERS)):
        dialogue = md.build_dialogue(root / f"d{i}.wav", script, md.VOICES, md.GAPS_S)
        audio = sf.read(dialogue.path, dtype="float32")[0]
        for line in dialogue.lines:
            out.append((audio[int(line.start_s * SR): int(line.end_s * SR)], _plain(line.text)))
    sample = sf.read(Path(importlib.util.find_spec("pyannote.audio").origin).parent / "sample" / "sample.wav",
                     dtype="float32")[0]
    n = int(WINDOW_S * SR)
    out += [(sample[i: i + n], None) for i in range(6 * SR, len(sample) - n + 1, n)]  # speech starts at ~6 s
    return out


def _first_call_s(setup: str) -> float:
    code = (f"import time, numpy as np; t = time.perf_counter(); {setup}; s(np.zeros(4096, np.float32), 16000, 1.25); "
            "print(time.perf_counter() - t)")
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return float(run.stdout.split()[-1])


def compare() -> list[dict]:
    from actors.asr import Transcriber
    from actors.models import OFFLINE

    asr = Transcriber(OFFLINE.model("asr"), profile="offline", device="cpu")

    def words(clip: np.ndarray) -> list[str]:
        return [t for w in asr.transcribe(clip).words for t in _plain(w.text)]

    with tempfile.TemporaryDirectory() as tmp:
        lines = [(clip, script or words(clip), script is None) for clip, script in _lines(Path(tmp))]

    def error_rates(method=None, rate=1.0) -> tuple[float, float]:
        """Word error rate of the espeak-ng lines, then of the real-speech windows."""
        made, real = ([0, 0], [0, 0])
        for clip, script, is_real in lines:
            heard = words(method(clip, SR, rate) if method else clip)
            count = real if is_real else made
            count[0] += word_errors(script, heard)
            count[1] += len(script)
        return made[0] / made[1], real[0] / real[1]

    rows = [{"method": "unstretched", "rate": 1.0, "wer": error_rates()}]
    for name, (method, setup) in METHODS.items():
        first = statistics.median(_first_call_s(setup) for _ in range(3))
        for rate in RATES:
            length = spent = seconds = 0.0
            for clip, _, _ in lines:
                start = time.perf_counter()
                out = method(clip, SR, rate)
                spent += time.perf_counter() - start
                seconds += len(clip) / SR
                length = max(length, abs(len(out) - len(clip) / rate) / SR)
            rows.append({"method": name, "rate": rate, "wer": error_rates(method, rate), "length_ms": 1000 * length,
                         "rtf": spent / seconds, "first_s": first})
    return rows


def table(rows: list[dict]) -> str:
    out = ["| method | rate | word error rate, espeak-ng lines | word error rate, real speech | length error, max | "
           "s per s of audio | first call in a fresh process |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        extra = (f"{r['length_ms']:.1f} ms | {r['rtf']:.4f} | {r['first_s']:.2f} s" if "rtf" in r else " | | ")
        made, real = r["wer"]
        out.append(f"| {r['method']} | {r['rate']} | {100 * made:.1f} % | {100 * real:.1f} % | {extra} |")
    return "\n".join(out)


def main() -> None:
    table_main(__doc__, "Time stretch (`python -m bench.stretch`)",
               " Lines: the 15 espeak-ng lines of two test dialogues and six 4 s windows of pyannote's sample.wav.",
               lambda: table(compare()))


if __name__ == "__main__":
    main()
