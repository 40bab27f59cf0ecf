"""Many ChatterBox lines in one T3 decode: pure functions over chatterbox's own modules, like actors/chatterbox/decode.py.

Why: T3 emits one speech token per step, and a GPU step at batch 2 (one line with CFG) costs about what a step at
batch 128 costs (/work/shared/GPU.md), so lines of any speakers, languages and jobs decode together.

A line in a batch is computed as it is alone (``decode.sample_speech_tokens``, which mirrors chatterbox):
- Prefill: each line's inputs come from chatterbox's ``T3.prepare_input_embeds`` for that line alone (its speaker
  embedding, prompt speech tokens, emotion and text; CFG's unconditional row with the text zeroed); the lines are
  then left-padded into one batch (rows ``[0, n)`` conditional, ``[n, 2n)`` unconditional) with an additive mask
  over the padding and position ids counted per row as if unpadded, so RoPE and attention see what a lone line sees.
- Each step: CFG, chatterbox's alignment analyzer (one per row, fed that row's attention), repetition penalty,
  temperature, min-p / top-p are row-wise, with a lone line's arithmetic; the draw is per row from the line's own
  ``torch.Generator``. A line stops at its own EOS or its own ``max_new_tokens``; finished or cancelled rows leave
  the batch (their KV rows are dropped), or with a static cache stay in it, masked and never drawn for.
- Equal arithmetic is not equal rounding: batched GEMMs and padded softmax / attention sums may round differently
  in the last bit, which changes a draw only if its uniform lands within that distance of a CDF boundary.

GPU options (``DecodeOptions``; the ``fast`` preset): T3 and the S3Gen estimator in bf16 (the weights cast once by
the synthesizer, see ``Synthesizer.configure_decode``), static KV caches with the decode step captured in a CUDA
graph or compiled per bucket (actors/chatterbox/static_t3.py), and a host-sync-free "race" sampler,
argmax(p / Exp(1)) with noise hashed from (seed, step, token): a line's tokens then still depend only on its seed,
but are not ``synthesize``'s (that one draws with ``torch.multinomial``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from actors.chatterbox.batch_s3gen import tokens_to_wav_batch
from actors.chatterbox.decode import AttentionSink, attention_sink, new_analyzer
from graph.options import DECODE_PRESETS
from graph.types import VoiceConditionals

__all__ = ["DecodeOptions", "Prefill", "SynthRequest", "T3Line", "prefill_inputs", "sample_speech_tokens_batch",
           "tokens_to_wav_batch"]

_MASK32 = 0xFFFFFFFF


@dataclass(frozen=True)
class SynthRequest:
    """One line for ``Synthesizer.synthesize_batch``: ``synthesize``'s arguments. Plain data, cheap to pickle."""

    text: str
    language: str
    conditionals: VoiceConditionals  # from Synthesizer.prepare (resolved, not an ObjectRef)
    seed: int = 0
    exaggeration: float = 0.5
    cfg_weight: float = 0.5
    temperature: float = 0.8
    pace: float = 1.0


@dataclass(frozen=True)
class DecodeOptions:
    """How a synthesizer decodes. The defaults (the ``exact`` preset) give ``synthesize``'s tokens; ``fast`` trades
    that for GPU speed.

    ``alignment``: chatterbox's analyzer per row (EOS held back until the text is read, forced on repetition and
    long tails); it needs eager attention weights and the host every step, so a graph cannot hold it. Without it
    only its token-repetition rule (two equal tokens in a row force EOS) runs, on the device.
    ``sampler``: "multinomial" (per-row ``torch.multinomial`` with the line's generator) or "race" (see module doc).
    ``static_cache``: per-bucket static KV caches (static_t3.py) instead of a compacting dynamic one.
    ``graph``: None, "cuda" (decode step in a CUDA graph) or "compile" (``torch.compile``); both need
    ``static_cache``. ``dtype``: T3's weights and KV cache, ``s3gen_dtype``: the S3Gen flow estimator's
    ("float32" or "bfloat16"; cast once, in place). ``s3gen_steps``: CFM steps (None: chatterbox's 10);
    ``s3gen_batch`` / ``s3gen_padding``: lines per flow call and how much longer than the shortest a line of one
    call may be (padding costs what real frames cost on a CPU; a GPU has room for it).
    ``cache_gb``: KV cache budget of the static caches (None: 40 % of the GPU's memory, 4 GiB on a CPU).
    ``stop_on_eos=False`` never samples EOS, so every line runs to its ``max_new_tokens`` (benchmarks' forced
    counts). ``sync_every``: steps between host checks for "all lines done" when nothing else needs the host.
    """

    alignment: bool = True
    sampler: str = "multinomial"
    static_cache: bool = False
    graph: str | None = None
    dtype: str = "float32"
    s3gen_dtype: str = "float32"
    s3gen_steps: int | None = None
    s3gen_batch: int = 32
    s3gen_padding: float = 0.1
    cache_gb: float | None = None
    stop_on_eos: bool = True
    sync_every: int = 8

    def __post_init__(self) -> None:
        if self.sampler not in ("multinomial", "race"):
            raise ValueError(f"sampler must be 'multinomial' or 'race', got {self.sampler!r}")
        if self.graph not in (None, "cuda", "compile"):
            raise ValueError(f"graph must be None, 'cuda' or 'compile', got {self.graph!r}")
        if self.graph and not (self.static_cache and not self.alignment):
            raise ValueError("a graphed decode step needs static_cache=True and alignment=False")
        for name in ("dtype", "s3gen_dtype"):
            if getattr(self, name) not in DTYPES:
                raise ValueError(f"{name} must be one of {', '.join(DTYPES)}, got {getattr(self, name)!r}")
        if self.s3gen_steps is not None and not 1 <= self.s3gen_steps <= 50:
            raise ValueError(f"s3gen_steps must be 1..50, got {self.s3gen_steps}")
        if not 1 <= self.s3gen_batch <= 1024 or not 0 <= self.s3gen_padding <= 4:
            raise ValueError(f"s3gen_batch must be 1..1024 and s3gen_padding 0..4, got {self.s3gen_batch}, "
                             f"{self.s3gen_padding}")
        if self.cache_gb is not None and not self.cache_gb > 0:
            raise ValueError(f"cache_gb must be > 0, got {self.cache_gb}")
        if not 1 <= self.sync_every <= 1000:
            raise ValueError(f"sync_every must be 1..1000, got {self.sync_every}")

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]

    @property
    def s3gen_torch_dtype(self) -> torch.dtype:
        return DTYPES[self.s3gen_dtype]


DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
PRESETS = DECODE_PRESETS


def preset(name: str, device: str | torch.device) -> DecodeOptions:
    """``exact``: fp32, chatterbox's analyzer and sampler (a batched line gets ``synthesize``'s tokens).
    ``fast``: bf16 T3 on static caches with the step in a CUDA graph (on a GPU), race sampler, bf16 S3Gen
    estimator. ``auto``: ``fast`` on CUDA, ``exact`` elsewhere."""
    cuda = torch.device(device).type == "cuda"
    if name == "auto":
        name = "fast" if cuda else "exact"
    if name == "exact":
        return DecodeOptions()
    if name == "fast":
        return DecodeOptions(alignment=False, sampler="race", static_cache=True, graph="cuda" if cuda else None,
                             dtype="bfloat16", s3gen_dtype="bfloat16", s3gen_batch=128 if cuda else 32,
                             s3gen_padding=0.5 if cuda else 0.1)
    raise ValueError(f"unknown decode preset {name!r}; presets: {', '.join(PRESETS)}")


@dataclass
class T3Line:
    """One line's T3 inputs: ``text_tokens`` (1, L) with SOT/EOT, conditioning on T3's device, its generator."""

    t3_cond: Any
    text_tokens: torch.Tensor
    generator: torch.Generator
    max_new_tokens: int
    cfg_weight: float = 0.5
    temperature: float = 0.8
    seed: int = 0


@dataclass
class Prefill:
    """The batch's first forward: rows ``[0, n)`` conditional, ``[n, 2n)`` unconditional, left-padded."""

    embeds: torch.Tensor  # (2n, T, dim)
    pad: torch.Tensor  # (n,) padding before each line
    lengths: torch.Tensor  # (n,) each line's unpadded length (its next position)
    text_slices: list[tuple[int, int]] = field(default_factory=list)  # each line's text span, unpadded


def prefill_inputs(t3: Any, lines: Sequence[T3Line]) -> Prefill:
    """Each line's inputs as ``sample_speech_tokens`` builds them alone (so no line sees another's conditioning)."""
    hp, device = t3.hp, t3.device
    bos = torch.tensor([[hp.start_speech_token]], dtype=torch.long, device=device)
    bos_embed = t3.speech_emb(bos) + t3.speech_pos_emb.get_fixed_embedding(0)
    per_line, slices = [], []
    for line in lines:
        text = line.text_tokens.to(dtype=torch.long, device=device).expand(2, -1)
        embeds, len_cond = t3.prepare_input_embeds(
            t3_cond=line.t3_cond, text_tokens=text, speech_tokens=hp.start_speech_token * torch.ones_like(text[:, :1]),
            cfg_weight=line.cfg_weight,
        )
        per_line.append(torch.cat([embeds, torch.cat([bos_embed, bos_embed])], dim=1))
        slices.append((len_cond, len_cond + text.size(-1)))
    lengths = torch.tensor([e.size(1) for e in per_line], device=device)
    total = int(lengths.max())
    embeds = per_line[0].new_zeros(2, len(lines), total, per_line[0].size(-1))
    for i, e in enumerate(per_line):
        embeds[:, i, total - e.size(1):] = e
    return Prefill(embeds.flatten(0, 1), total - lengths, lengths, slices)


def additive_mask(pad: torch.Tensor, queries: torch.Tensor, keys: int, dtype: torch.dtype) -> torch.Tensor:
    """(rows, 1, q, keys): 0 where a query may attend (causal, past the row's padding), the dtype's min elsewhere."""
    k = torch.arange(keys, device=pad.device)
    allowed = (k[None, None, :] <= queries[None, :, None]) & (k[None, None, :] >= pad[:, None, None])
    zero = torch.zeros((), dtype=dtype, device=pad.device)
    return torch.where(allowed, zero, torch.finfo(dtype).min)[:, None]


class _Dynamic:
    """HF's DynamicCache: finished rows are dropped from the batch."""

    compacts = True

    def __init__(self, t3: Any, pre: Prefill, budget: int, options: DecodeOptions):
        self.t3, self.pad, self.keys, self.cache = t3, pre.pad.repeat(2), pre.embeds.size(1), None

    def _run(self, embeds: torch.Tensor, positions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        q = embeds.size(1)
        out = self.t3.tfmr(inputs_embeds=embeds, attention_mask=mask, position_ids=positions, past_key_values=self.cache,
                           cache_position=torch.arange(self.keys - q, self.keys, device=embeds.device), use_cache=True)
        self.cache = out.past_key_values
        return self.t3.speech_head(out.last_hidden_state[:, -1])

    def prefill(self, pre: Prefill, positions: torch.Tensor) -> torch.Tensor:
        mask = additive_mask(self.pad, torch.arange(self.keys, device=self.pad.device), self.keys, pre.embeds.dtype)
        return self._run(pre.embeds, positions, mask)

    def step(self, embeds: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        self.keys += 1
        now = torch.arange(self.keys - 1, self.keys, device=self.pad.device)
        return self._run(embeds, positions, additive_mask(self.pad, now, self.keys, embeds.dtype))

    def full(self, step: int) -> bool:
        return False

    def wants_keep(self, step: int, running: int, rows: int) -> bool:
        return running < rows

    def keep(self, rows: torch.Tensor) -> None:
        self.cache.batch_select_indices(rows)
        self.pad = self.pad[rows]


class _Static:
    """A bucket of ``pool`` (static_t3.py): every row stays until the decode moves into a longer or smaller bucket."""

    compacts = False

    def __init__(self, t3: Any, pre: Prefill, budget: int, options: DecodeOptions, pool: Any):
        from actors.chatterbox.static_t3 import length_bucket

        self.pool, self.start = pool, pre.embeds.size(1)
        self.last = length_bucket(self.start + budget)  # the longest any line of this batch may need
        self.decoder = pool.decoder(pre.lengths.numel(), min(pool.start_length(self.start), self.last))

    def prefill(self, pre: Prefill, positions: torch.Tensor) -> torch.Tensor:
        return self.decoder.prefill(pre.embeds, pre.pad.repeat(2), positions)

    def step(self, embeds: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        return self.decoder.step(embeds, positions)

    def full(self, step: int) -> bool:
        """No room for this step's keys: the decode must move into a longer bucket first."""
        return self.start + step >= self.decoder.length

    def wants_keep(self, step: int, running: int, rows: int) -> bool:
        """Move now: the cache is full, or the running lines fit a smaller row bucket (fewer rows per step)."""
        from actors.chatterbox.static_t3 import row_bucket

        return self.full(step) or row_bucket(running) < self.decoder.lines

    def keep(self, rows: torch.Tensor) -> None:
        from actors.chatterbox.static_t3 import HEADROOM, length_bucket

        used = int(self.decoder.position)
        length = self.decoder.length if used < self.decoder.length else min(length_bucket(used + HEADROOM), self.last)
        moved = self.pool.decoder(rows.numel() // 2, length)
        moved.take(self.decoder, rows)
        self.decoder = moved


def _temper(scores: torch.Tensor, temperatures: torch.Tensor, values: set[float]) -> torch.Tensor:
    """Divide by each row's temperature with a lone line's op (by a Python scalar), one op per distinct value."""
    if len(values) == 1:
        (t,) = values
        return scores / t if t != 1.0 else scores
    out = scores
    for t in values - {1.0}:
        out = torch.where((temperatures == t)[:, None], scores / t, out)
    return out


def _mix32(x: Any) -> Any:
    """A 32-bit integer hash (xor-shift-multiply) on int64 holding uint32: no overflow, same on CPU and GPU."""
    x = ((x ^ (x >> 16)) * 0x045D9F3B) & _MASK32
    x = ((x ^ (x >> 16)) * 0x045D9F3B) & _MASK32
    return x ^ (x >> 16)


def race(probs: torch.Tensor, seeds: torch.Tensor, step: int) -> torch.Tensor:
    """A draw from each row of ``probs`` as argmax(p / E), E ~ Exp(1) hashed from (seed, step, token): no host sync."""
    token = torch.arange(probs.size(-1), device=probs.device)
    key = _mix32(_mix32((seeds & _MASK32) ^ _mix32(step))[:, None] ^ token)  # _mix32 works on Python ints too
    uniform = ((key >> 8).to(torch.float32) + 0.5) / 2**24  # exact: 24-bit integers + 0.5, scaled by a power of 2
    return torch.argmax(probs / -torch.log(uniform), dim=-1)


@torch.inference_mode()
def sample_speech_tokens_batch(
    t3: Any,
    lines: Sequence[T3Line],
    *,
    repetition_penalty: float,
    min_p: float,
    top_p: float,
    options: DecodeOptions = DecodeOptions(),
    cancelled: Callable[[int], bool] | None = None,
    pool: Any = None,
) -> list[torch.Tensor]:
    """Speech tokens (1, N) per line, ``sample_speech_tokens``'s for each line alone; a cancelled line gets (1, 0).

    ``pool``: the T3's ``static_t3.StaticPool`` when ``options.static_cache`` (its buckets and graphs outlive this
    call); None makes one for this call only.
    """
    from transformers.generation.logits_process import (
        MinPLogitsWarper,
        RepetitionPenaltyLogitsProcessor,
        TopPLogitsWarper,
    )

    if not lines:
        return []
    hp, device, n = t3.hp, t3.device, len(lines)
    eos = hp.stop_speech_token
    aligned = options.alignment and hp.is_multilingual
    budget = max(line.max_new_tokens for line in lines)
    limits = torch.tensor([line.max_new_tokens for line in lines], device=device)
    cfg = torch.tensor([[line.cfg_weight] for line in lines], device=device)
    temperatures = torch.tensor([line.temperature for line in lines], device=device)
    distinct = {line.temperature for line in lines}
    seeds = torch.tensor([line.seed for line in lines], device=device)
    generated = torch.full((n, budget + 1), hp.start_speech_token, dtype=torch.long, device=device)
    stop = torch.zeros(n, dtype=torch.long, device=device)  # tokens per line once it has ended, else 0
    dropped: set[int] = set()
    repetition = RepetitionPenaltyLogitsProcessor(penalty=float(repetition_penalty))
    min_p_warper, top_p_warper = MinPLogitsWarper(min_p=min_p), TopPLogitsWarper(top_p=top_p)
    sink = AttentionSink([None] * 3, slice(0, n)) if aligned else None  # prepare_t3's taps fill it
    if options.static_cache and pool is None:
        from actors.chatterbox.static_t3 import GpuGate, StaticPool, cache_budget

        pool = StaticPool(t3, cache_budget(options.cache_gb, device), options.graph, GpuGate())
    with attention_sink(sink):
        pre = prefill_inputs(t3, lines)
        analyzers = [new_analyzer(t3, s) for s in pre.text_slices] if aligned else []
        backbone = _Static(t3, pre, budget, options, pool) if options.static_cache else _Dynamic(t3, pre, budget, options)
        active = list(range(n))  # lines in the backbone's rows, in order
        pads = pre.pad.tolist()
        rows = torch.arange(n, device=device)
        start_positions = (torch.arange(pre.embeds.size(1), device=device)[None] - pre.pad[:, None]).clamp(min=0)
        logits = backbone.prefill(pre, start_positions.repeat(2, 1))
        if sink and any(a is None for a in sink.attention):
            raise RuntimeError("T3 has no attention taps: call actors.chatterbox.decode.prepare_t3(t3) once before decoding")
        speech_positions = t3.speech_pos_emb.get_fixed_embedding(torch.arange(1, budget + 1, device=device))
        for i in range(budget):
            m = len(active)
            logits = logits.float()
            cond, uncond = logits[:m], logits[m:]
            scores = cond + cfg[rows] * (cond - uncond)
            if aligned:
                scores = _align(scores, analyzers, active, sink, pads, generated[rows, i].tolist(), i)
            else:
                repeated = (generated[rows, i] == generated[rows, i - 1]) & (i >= 2)  # the analyzer's own rule
                scores = torch.where(repeated[:, None], torch.full_like(scores, -(2**15)), scores)
                scores[:, eos] = torch.where(repeated, 2**15, scores[:, eos])
            if not options.stop_on_eos:
                scores[:, eos] = -torch.inf
            ids = generated[rows, : i + 1]
            scores = _temper(repetition(ids, scores), temperatures[rows], distinct)
            scores = min_p_warper(ids, scores)
            if top_p < 1.0:  # 1.0 removes nothing
                scores = top_p_warper(ids, scores)
            probs = torch.softmax(scores, dim=-1)
            running = stop[rows] == 0
            if options.sampler == "race":
                drawn = race(probs, seeds[rows], i)
            else:
                drawn = torch.full((m,), eos, dtype=torch.long, device=device)
                for k in running.nonzero().view(-1).tolist():
                    drawn[k] = torch.multinomial(probs[k : k + 1], 1, generator=lines[active[k]].generator).view(())
            drawn = torch.where(running, drawn, eos)
            generated[rows, i + 1] = drawn
            ended = running & ((drawn == eos) | (i + 1 >= limits[rows]))
            stop[rows] = torch.where(ended, i + 1, stop[rows])
            host = backbone.compacts or aligned or options.sampler == "multinomial" or (i + 1) % options.sync_every == 0
            if host or backbone.full(i):
                if cancelled is not None:
                    for r in active:
                        if r not in dropped and cancelled(r):
                            dropped.add(r)
                            stop[r] = max(int(stop[r]), 1)
                finished = (stop[rows] > 0).tolist()
                if all(finished):
                    break
                if backbone.wants_keep(i, finished.count(False), len(finished)):
                    keep = [k for k, done in enumerate(finished) if not done]
                    index = torch.tensor(keep, device=device)
                    backbone.keep(torch.cat([index, index + m]))
                    active, rows, drawn = [active[k] for k in keep], rows[index], drawn[index]
                    if sink:
                        sink.rows = slice(0, len(active))
            embed = t3.speech_emb(drawn[:, None]) + speech_positions[:, i : i + 1]
            positions = (pre.lengths[rows] + i)[:, None]
            logits = backbone.step(torch.cat([embed, embed]), torch.cat([positions, positions]))
    counts = stop.tolist()
    return [generated[r : r + 1, 1 : 1 + counts[r]] if r not in dropped else generated[r : r + 1, :0] for r in range(n)]


def _align(scores: torch.Tensor, analyzers: list, active: list[int], sink: AttentionSink, pads: list[int],
           last: list[int], step: int) -> torch.Tensor:
    """chatterbox's analyzer, one per row, on that row's attention with its padding cut off (as if alone)."""
    out = scores.clone()
    for k, r in enumerate(active):
        pad = pads[r]
        analyzer = analyzers[r]
        if analyzer is None:
            continue
        analyzer.last_aligned_attns = [a[k, pad if step == 0 else 0 :, pad:] for a in sink.attention]
        out[k : k + 1] = analyzer.step(scores[k : k + 1].clone(), next_token=last[k])
    return out
