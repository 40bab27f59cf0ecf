"""Batched ChatterBox throughput vs batch size: T3 and S3Gen apart, forced line lengths.

    .venv/bin/python -m bench.batch                                     # CPU smoke: tiny model, batch 1 vs 8
    .venv/bin/python -m bench.batch --size full --device cuda --decode fast --batches 1,8,32,64,128 \\
        [--set s3gen_steps=5 --set graph=compile]

Every line is forced to ``--seconds`` x 25 speech tokens (``stop_on_eos=False`` with that ``max_new_tokens``: EOS
is never sampled), so batch sizes compare equal work. ``--decode`` is a synthesizer preset (exact, fast, auto) that
the synthesizer applies as it would in a job (weights cast, static caches budgeted); ``--set`` overrides one
``DecodeOptions`` field. Lines mix three voices (each from ``Synthesizer.prepare`` on a synthetic reference) and
texts of ``--seconds`` x ``bench.forced.SPEAKING_CPS`` characters. T3 runs first on all lines, then S3Gen on the
same number of random speech tokens per line. "x real time" is seconds of audio per wall second, all lines
together; "peak GB" is ``max_memory_allocated`` on a GPU, weights included. Each size runs once untimed first
(allocator, autotuning, a bucket's CUDA graph capture). ``--record`` appends the table to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from actors.chatterbox.batch_t3 import T3Line, sample_speech_tokens_batch, tokens_to_wav_batch
from actors.chatterbox.batcher import decode_options
from actors.chatterbox.model import MIN_P, REPETITION_PENALTY, TOKENS_PER_S, TOP_P, Synthesizer
from actors.models import ModelSpec
from bench.forced import SAMPLES_PER_TOKEN, SPEAKING_CPS, quiet

WORDS = ("the quick brown fox jumps over a lazy dog while seven bright students read their notes aloud in the old "
         "library near the river and nobody minds the noise").split()


@dataclass
class Row:
    batch: int
    t3_s: float
    s3gen_s: float
    tokens: int  # speech tokens decoded, all lines
    t3_peak_gb: float | None
    s3gen_peak_gb: float | None

    @property
    def audio_s(self) -> float:
        return self.tokens / TOKENS_PER_S


def load(size: str, device: str, directory: Path) -> Synthesizer:
    """The tiny fixture or the full-size random-weight architecture, behind dubgraph's Synthesizer."""
    from tests.fixtures import tiny_chatterbox

    if size == "tiny":
        tiny_chatterbox.build(directory)
        loader = "tests.fixtures.tiny_chatterbox:load"
    else:
        tiny_chatterbox.write_vocab(directory / tiny_chatterbox.VOCAB_FILE)
        loader = "bench.forced:load_full_random"
    spec = ModelSpec(role="synthesizer", name=f"{size} random ChatterBox", actor="actors.chatterbox.model:Synthesizer",
                     kind="path", source=str(directory), env_var=None, fix="", loader=loader)
    return Synthesizer(spec, device=device)


def voices(synth: Synthesizer, count: int = 3) -> list:
    """Conditionals from synthetic 10-s references (harmonic stacks at different pitches)."""
    sr, out = 24000, []
    t = np.arange(10 * sr) / sr
    for k in range(count):
        f0 = 100.0 + 60.0 * k
        wave = sum(0.6**h * np.sin(2 * np.pi * f0 * h * t) for h in range(1, 10)) * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t))
        out.append(synth.prepare((0.3 * wave / np.abs(wave).max()).astype(np.float32), sr))
    return out


def text(i: int, chars: int) -> str:
    words = [WORDS[(i + j) % len(WORDS)] for j in range(chars)]
    return " ".join(words)[:chars].strip() + "."


def t3_lines(synth: Synthesizer, conds: list, batch: int, tokens: int) -> list[T3Line]:
    chars = round(tokens / TOKENS_PER_S * SPEAKING_CPS)
    return [T3Line(synth._t3_cond(conds[i % len(conds)], 0.5), synth._line_tokens(text(i, chars), "en", 0.8),
                   torch.Generator(device=synth._device).manual_seed(i), tokens, 0.5, 0.8, i)
            for i in range(batch)]


def _timed(device: str, fn) -> tuple[float, float | None, object]:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    out = fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        return time.perf_counter() - started, torch.cuda.max_memory_allocated() / 2**30, out
    return time.perf_counter() - started, None, out


def measure(synth: Synthesizer, conds: list, batch: int, tokens: int, device: str) -> Row:
    """One batch size under the synthesizer's decode options (forced to ``tokens`` per line)."""
    model, options = synth._model, replace(synth.decode, stop_on_eos=False)

    def t3() -> list[torch.Tensor]:
        return sample_speech_tokens_batch(model.t3, t3_lines(synth, conds, batch, tokens), options=options,
                                          repetition_penalty=REPETITION_PENALTY, min_p=MIN_P, top_p=TOP_P,
                                          pool=synth._pool)

    speech = [torch.randint(0, 6561, (tokens,), generator=torch.Generator().manual_seed(i)) for i in range(batch)]

    def s3gen() -> list[torch.Tensor]:
        generators = [torch.Generator(device=synth._device).manual_seed(i) for i in range(batch)]
        refs = [synth._s3gen_ref(conds[i % len(conds)]) for i in range(batch)]
        return tokens_to_wav_batch(model.s3gen, speech, refs, generators, max_batch=max(batch, options.s3gen_batch),
                                   max_padding=options.s3gen_padding, n_timesteps=options.s3gen_steps)

    with torch.inference_mode():
        t3(), s3gen()  # untimed warm-up at this size
        t3_s, t3_gb, decoded = _timed(device, t3)
        s3gen_s, s3gen_gb, wavs = _timed(device, s3gen)
    assert all(t.size(-1) == tokens for t in decoded), "forced lengths not met"
    assert all(w.size(-1) == tokens * SAMPLES_PER_TOKEN for w in wavs)
    return Row(batch, t3_s, s3gen_s, batch * tokens, t3_gb, s3gen_gb)


def _gb(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


def table(rows: list[Row], title: str) -> str:
    lines = [f"### {title}", "",
             "| batch | T3 tokens/s | T3 x real time | S3Gen x real time | T3 peak GB | S3Gen peak GB |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.batch} | {r.tokens / r.t3_s:.0f} | {r.audio_s / r.t3_s:.1f}x | {r.audio_s / r.s3gen_s:.1f}x "
                     f"| {_gb(r.t3_peak_gb)} | {_gb(r.s3gen_peak_gb)} |")
    return "\n".join(lines)


def parse_set(pairs: list[str]) -> dict:
    """``--set key=value`` overrides of DecodeOptions fields (values as JSON where they parse, else strings)."""
    import json

    fields = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        try:
            fields[key] = json.loads(value)
        except ValueError:
            fields[key] = value
    return fields


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=("tiny", "full"), default="tiny")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batches", default=None, help="comma-separated; default 1,8 on CPU, 1,8,32,64,128 on GPU")
    parser.add_argument("--seconds", type=float, default=None, help="audio per line; default 2 on CPU, 6 on GPU")
    parser.add_argument("--decode", default="auto", help="decode preset: exact, fast or auto (fast on CUDA)")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override one DecodeOptions field (repeatable)")
    parser.add_argument("--attention", choices=("eager", "sdpa"), default="eager",
                        help="eager is what the Synthesizer serves with (the analyzer needs it)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (CPU)")
    parser.add_argument("--record", action="store_true", help="append the table to bench/RESULTS.md")
    args = parser.parse_args()
    gpu = args.device.startswith("cuda")
    batches = [int(b) for b in (args.batches or ("1,8,32,64,128" if gpu else "1,8")).split(",")]
    tokens = round((args.seconds or (6.0 if gpu else 2.0)) * TOKENS_PER_S)
    if args.threads:
        torch.set_num_threads(args.threads)
    quiet()
    with tempfile.TemporaryDirectory() as directory:
        synth = load(args.size, args.device, Path(directory))
    synth.configure_decode(decode_options({"preset": args.decode, **parse_set(args.set)}, args.device), max(batches))
    synth._model.t3.tfmr.config._attn_implementation = args.attention
    conds = voices(synth)
    rows = [measure(synth, conds, batch, tokens, args.device) for batch in batches]
    device = torch.cuda.get_device_name() if gpu else "CPU"
    title = (f"Batched ChatterBox ({args.size}, random weights) on {device}: {tokens} tokens per line; decode "
             f"{args.decode} {' '.join(args.set)}; attention {args.attention}")
    report = table(rows, title)
    if len(rows) > 1:
        base = rows[0]
        speedups = ", ".join(f"batch {r.batch}: T3 {base.t3_s / base.batch * r.batch / r.t3_s:.1f}x, "
                             f"S3Gen {base.s3gen_s / base.batch * r.batch / r.s3gen_s:.1f}x" for r in rows[1:])
        report += f"\n\nThroughput vs batch {base.batch}: {speedups}.\n"
    print(report)
    if args.record:
        from bench.report import append
        from bench.scenarios import machine

        append(report + "\n" + ", ".join(f"{k}: {v}" for k, v in machine().items()) + "\n")


if __name__ == "__main__":
    main()
