"""The serialized pipeline dubgraph replaces, re-created on the same models and inputs.

What the field runs today, step by step in one process: ASR, then diarization, then per target language (one
after another) translation and, line by line, ONE ``ChatterboxMultilingualTTS`` behind a global lock called as
``generate(text, language_id, audio_prompt_path=reference.wav)``: the speaker's conditionals are recomputed from
the reference file for every line. Each line goes to a temp WAV; the WAVs are concatenated with the source's gaps
as silence (no timing fit), so lines drift when the new language is longer or shorter.

Kept equal to the graph on purpose: the model classes and specs (one profile), the reference clip of each
speaker (``graph.timeline.references.pick_reference``), the translation settings (the best candidate is voiced), sampling
settings, forced line lengths (``bench.forced``) and the CPU thread budget. Nothing is slowed down: models load
once, before the clock starts. chatterbox's ``generate`` leaves three alignment hooks behind per call (its own
behaviour); a fresh instance per dub keeps that to what one job accumulates.

The baseline runs in a process of its own (``BaselineProcess``), so its memory is measured apart from Ray's.
"""

from __future__ import annotations

import gc
import os
import tempfile
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from actors.models import Profile, load_object, resolve
from graph.options import DubOptions


@dataclass(frozen=True)
class BaselineLine:
    utterance_id: str
    speaker: str
    language: str
    source_start_s: float
    start_s: float  # where the concatenation put it
    duration_s: float
    text: str


@dataclass(frozen=True)
class BaselineResult:
    input_s: float
    speakers: tuple[str, ...]
    lines: tuple[BaselineLine, ...]
    outputs: dict[str, str]  # language -> WAV path
    output_s: dict[str, float]
    conditionals: int  # prepare_conditionals calls
    stage_s: dict[str, float]


class Baseline:
    """ASR, diarizer and translator instances of the profile's own classes, and one locked ChatterBox."""

    def __init__(self, profile: Profile, device: str = "cpu"):
        self.profile = profile
        self.device = device
        self.asr = self._actor("asr")
        self.diarizer = self._actor("diarizer")
        self.translator = self._actor("translator")
        self.tts: Any = None
        self.lock = threading.Lock()  # the field's global lock around the one model
        self._conditionals = 0
        self._conditionals_end = 0.0
        self._stage_s: dict[str, float] = {}

    def _actor(self, role: str) -> Any:
        spec = self.profile.model(role)
        return load_object(spec.actor)(spec, self.profile.name, self.device)

    def load_tts(self) -> None:
        """A fresh ChatterBox (the previous one is dropped first); ``prepare_conditionals`` calls are counted."""
        self.tts = None
        gc.collect()
        spec = self.profile.model("synthesizer")
        location = resolve(spec, self.profile.name).location
        if spec.loader:
            tts = load_object(spec.loader)(location, self.device)
        else:
            from chatterbox.mtl_tts import ChatterboxMultilingualTTS

            tts = ChatterboxMultilingualTTS.from_local(location, self.device)
        prepare = tts.prepare_conditionals

        def counted(*args: Any, **kwargs: Any) -> None:
            prepare(*args, **kwargs)
            self._conditionals += 1
            self._conditionals_end = time.perf_counter()

        tts.prepare_conditionals = counted
        self.tts = tts

    @contextmanager
    def _timed(self, stage: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self._stage_s[stage] = self._stage_s.get(stage, 0.0) + time.perf_counter() - started

    def dub(self, input_path: str | Path, out_dir: str | Path, options: DubOptions) -> BaselineResult:
        import torch

        from graph import audio
        from graph.languages import language
        from graph.timeline.assign import build_utterances

        if self.tts is None:
            self.load_tts()
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        self._conditionals, self._stage_s = 0, {}
        torch.manual_seed(options.tts.seed)
        with self._timed("decode"):
            analysis = audio.decode(input_path, audio.SAMPLE_RATE)
            source = audio.decode(input_path, None)
        with self._timed("asr"):
            transcript = self.asr.transcribe(analysis.samples, options.asr)
        with self._timed("diarize"):
            turns = self.diarizer.diarize(analysis.samples, options.diarize)
        utterances = build_utterances(transcript.words, turns)
        speakers = tuple(sorted({u.speaker for u in utterances}))
        lines: list[BaselineLine] = []
        outputs, output_s = {}, {}
        with tempfile.TemporaryDirectory(dir=out_dir, prefix=".baseline-") as tmp:
            with self._timed("references"):
                references = {s: self._reference(source, s, utterances, turns, options, Path(tmp)) for s in speakers}
            for lang in options.targets:
                with self._timed("translate"):
                    candidates = self.translator.translate(
                        [u.text for u in utterances], transcript.language, lang, options.translate
                    )
                language_id = language(lang, self.profile.targets).chatterbox
                parts = []
                for u, cands in zip(utterances, candidates):
                    part = Path(tmp) / f"{lang}-{u.id}.wav"
                    self._line(cands[0], language_id, references[u.speaker], options, part)
                    parts.append((u, cands[0], part))
                with self._timed("concatenate"):
                    placed, track = _concatenate(parts, lang, analysis.duration_s, self.tts.sr)
                    outputs[lang] = str(audio.write_audio(out_dir / f"{lang}.wav", track, self.tts.sr))
                output_s[lang] = len(track) / self.tts.sr
                lines.extend(placed)
        return BaselineResult(
            analysis.duration_s, speakers, tuple(lines), outputs, output_s, self._conditionals,
            {k: round(v, 3) for k, v in self._stage_s.items()},
        )

    def _reference(self, source, speaker, utterances, turns, options: DubOptions, tmp: Path) -> Path:
        import soundfile as sf

        from graph.timeline.references import pick_reference

        tts = options.tts
        ref = pick_reference(source, speaker, utterances, turns, tts.reference_min_s, tts.reference_max_s)
        path = tmp / f"reference-{speaker}.wav"
        sf.write(path, ref.clip.samples, ref.clip.sr)
        return path

    def _line(self, text: str, language_id: str, reference: Path, options: DubOptions, path: Path) -> None:
        """One ``generate`` call under the global lock, written to ``path``; time split conditionals/T3/S3Gen."""
        import soundfile as sf

        from bench.forced import forced

        if not any(ch.isalnum() for ch in text):  # nothing to say (the graph skips these too)
            sf.write(path, np.zeros(0, dtype=np.float32), self.tts.sr)
            return
        tts = options.tts
        with self.lock:
            started = time.perf_counter()
            with forced(text) as line:
                wav = self.tts.generate(
                    text, language_id, audio_prompt_path=str(reference), exaggeration=tts.exaggeration,
                    cfg_weight=tts.cfg_weight, temperature=tts.temperature,
                )
            ended = time.perf_counter()
        decoded = line.decoded or ended
        for stage, seconds in (("conditionals", self._conditionals_end - started),
                               ("t3", decoded - self._conditionals_end), ("s3gen", ended - decoded)):
            self._stage_s[stage] = self._stage_s.get(stage, 0.0) + seconds
        sf.write(path, wav.squeeze(0).numpy(), self.tts.sr)


def _concatenate(parts, lang: str, input_s: float, sr: int) -> tuple[list[BaselineLine], np.ndarray]:
    """Lines back to back in source order, each after the source's gap before it; then the source's tail."""
    import soundfile as sf

    pieces, placed, cursor, previous_end = [], [], 0, 0.0
    for u, text, path in parts:
        samples, _ = sf.read(path, dtype="float32")
        gap = int(round(max(0.0, u.start_s - previous_end) * sr))
        pieces += [np.zeros(gap, np.float32), samples]
        placed.append(BaselineLine(u.id, u.speaker, lang, u.start_s, (cursor + gap) / sr, len(samples) / sr, text))
        cursor += gap + len(samples)
        previous_end = u.end_s
    pieces.append(np.zeros(int(round(max(0.0, input_s - previous_end) * sr)), np.float32))
    return placed, np.concatenate(pieces)


def serve(conn, profile: Profile, device: str, threads: int) -> None:
    """Child-process loop: load once, then (input, out_dir, options) -> (BaselineResult, wall seconds)."""
    os.environ["OMP_NUM_THREADS"] = str(threads)
    os.environ.setdefault("TQDM_DISABLE", "1")  # chatterbox's per-token progress bar
    import torch

    from bench.forced import quiet

    torch.set_num_threads(threads)
    quiet()
    try:
        started = time.perf_counter()
        baseline = Baseline(profile, device)
        conn.send(("ok", time.perf_counter() - started))
        while (request := conn.recv()) is not None:
            input_path, out_dir, options = request
            baseline.load_tts()
            started = time.perf_counter()
            result = baseline.dub(input_path, out_dir, options)
            conn.send(("ok", (result, time.perf_counter() - started)))
    except Exception:
        conn.send(("error", traceback.format_exc()))


class BaselineProcess:
    """The baseline in its own (spawned) process; ``pid`` is what to measure."""

    def __init__(self, profile: Profile, device: str = "cpu", threads: int | None = None):
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self.threads = threads or os.cpu_count() or 1
        self.process = context.Process(target=serve, args=(child, profile, device, self.threads), name="baseline")
        self.process.start()
        child.close()
        self.load_s: float = self._receive()

    @property
    def pid(self) -> int:
        return self.process.pid

    def _receive(self) -> Any:
        status, value = self._conn.recv()
        if status != "ok":
            raise RuntimeError(f"baseline failed:\n{value}")
        return value

    def dub(self, input_path: str | Path, out_dir: str | Path, options: DubOptions) -> tuple[BaselineResult, float]:
        self._conn.send((str(input_path), str(out_dir), options))
        return self._receive()

    def close(self) -> None:
        if self.process.is_alive():
            try:
                self._conn.send(None)
            except OSError:
                pass
            self.process.join(timeout=30)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join()
