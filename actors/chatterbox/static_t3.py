"""T3's decode step on static KV caches kept per (rows, cache length) bucket and reused by every batch.

Why: on a GPU a decode step is bound by kernel launches unless it is captured in a CUDA graph (shared/GPU.md:
bf16 + static cache + graph reaches 469x real time at batch 128; without the graph bf16 is no faster than fp32).
A graph replays fixed addresses, so a bucket's cache, its input buffers and its graph live as long as the bucket:
a batch pads its rows up to a row bucket, starts in the shortest length bucket that holds its prefill plus
``HEADROOM`` steps, and moves its still-running rows into the next length bucket (copying their keys and values,
dropping finished rows, so a tail of long lines runs in a small row bucket) when the cache fills. Each bucket's
graph is captured the first time the bucket is used, on a private stream and memory pool, while ``GpuGate``
keeps every other GPU call of the process (conditionals, lone lines) out; ``torch.compile`` likewise sees one
fixed shape per bucket instead of a new cache shape per batch.

Memory is explicit: a bucket's cache takes ``cache_bytes(rows, length)`` (keys and values of every layer, in the
model's dtype: bf16 halves it); buckets live in an LRU bounded by ``budget_bytes``; ``check_fits`` refuses a batch
size whose starting bucket cannot fit. Lines are at most ``MAX_NEW_TOKENS`` long, so a decode grows at most to
prefill + 1000 positions.

The cache is our own ``Cache`` of ``_SlotLayer``s writing at one position tensor: transformers 5.2's static layer
writes at ``cache_position`` while 5.17's counts its own positions; neither version's layer is used.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

import torch

from actors.chatterbox.batch_t3 import additive_mask
from graph.errors import BadInput

log = logging.getLogger(__name__)

ROW_BUCKETS = (1, 2, 4, 8, 16, 32, 48, 64, 80, 96, 112, 128, 160, 192, 224, 256)  # lines (rows are 2x: CFG)
LENGTH_STEP = 128  # cache lengths are multiples of this
HEADROOM = 256  # steps a batch can take before its first move to a longer bucket
MAX_NEW_TOKENS = 1000  # chatterbox's cap on speech tokens per line


def row_bucket(lines: int) -> int:
    for bucket in ROW_BUCKETS:
        if lines <= bucket:
            return bucket
    return math.ceil(lines / ROW_BUCKETS[-1]) * ROW_BUCKETS[-1]


def length_bucket(positions: int) -> int:
    return math.ceil(positions / LENGTH_STEP) * LENGTH_STEP


def cache_budget(cache_gb: float | None, device: torch.device | str) -> int:
    """Bytes the static caches may take: ``cache_gb`` when given, else 40 % of the GPU's memory (4 GiB on a CPU)."""
    if cache_gb is not None:
        return int(cache_gb * 2**30)
    device = torch.device(device)
    if device.type == "cuda":
        return int(0.4 * torch.cuda.get_device_properties(device).total_memory)
    return 4 * 2**30


def cache_bytes(config: Any, lines: int, length: int, dtype: torch.dtype) -> int:
    """Keys and values of every layer for ``lines`` (2 rows each: CFG) over ``length`` positions."""
    heads = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    itemsize = torch.empty((), dtype=dtype).element_size()
    return 2 * config.num_hidden_layers * 2 * lines * heads * length * head_dim * itemsize


class GpuGate:
    """Shared for ordinary GPU work, exclusive for graph capture (no other kernel or allocation may run then).

    A thread holding the gate shared (a batch decode) may ask for it exclusively: its share is given up while it
    waits and taken back after, so two decoding threads cannot deadlock each other.
    """

    def __init__(self):
        self._cond = threading.Condition()
        self._shared = 0
        self._exclusive = False
        self._waiting = 0  # threads waiting for exclusive use: new shared users wait behind them
        self._mine = threading.local()

    @contextlib.contextmanager
    def shared(self) -> Iterator[None]:
        nested = getattr(self._mine, "count", 0) > 0  # never wait behind a writer that waits for this thread
        with self._cond:
            self._cond.wait_for(lambda: nested or (not self._exclusive and not self._waiting))
            self._shared += 1
        self._mine.count = getattr(self._mine, "count", 0) + 1
        try:
            yield
        finally:
            self._mine.count -= 1
            with self._cond:
                self._shared -= 1
                self._cond.notify_all()

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        held = getattr(self._mine, "count", 0)
        with self._cond:
            self._shared -= held
            self._waiting += 1
            self._cond.notify_all()
            self._cond.wait_for(lambda: not self._exclusive and self._shared == 0)
            self._waiting -= 1
            self._exclusive = True
        try:
            yield
        finally:
            with self._cond:
                self._exclusive = False
                self._shared += held
                self._cond.notify_all()


def _slot_layer_class() -> type:
    from transformers.cache_utils import CacheLayerMixin

    class SlotLayer(CacheLayerMixin):
        """One layer's keys and values, (rows, heads, length, head_dim), written at the decoder's position."""

        is_compileable = True
        is_sliding = False

        def __init__(self, keys: torch.Tensor, values: torch.Tensor, position: torch.Tensor):
            super().__init__()
            self.keys, self.values, self.position = keys, values, position
            self.dtype, self.device = keys.dtype, keys.device
            self.max_cache_len = keys.size(2)
            self.is_initialized = True

        def lazy_initialization(self, key_states, value_states) -> None:
            pass

        def update(self, key_states, value_states, *args, **kwargs):
            slots = self.position + torch.arange(key_states.size(2), device=self.device)
            self.keys.index_copy_(2, slots, key_states)
            self.values.index_copy_(2, slots, value_states)
            return self.keys, self.values

        def get_mask_sizes(self, *args, **kwargs) -> tuple[int, int]:
            return self.max_cache_len, 0

        def get_seq_length(self, *args, **kwargs) -> int:
            return self.max_cache_len

        def get_max_cache_shape(self, *args, **kwargs) -> int:
            return self.max_cache_len

        def get_max_length(self, *args, **kwargs) -> int:
            return self.max_cache_len

    return SlotLayer


class Decoder:
    """One bucket: a cache of ``rows`` x ``length`` positions, the step's input buffers, and its graph."""

    def __init__(self, t3: Any, lines: int, length: int, mode: str | None, pool: "StaticPool"):
        from transformers.cache_utils import Cache

        config, device, dtype = t3.tfmr.config, t3.device, pool.dtype
        heads = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        self.t3, self.lines, self.rows, self.length, self.mode, self.pool = t3, lines, 2 * lines, length, mode, pool
        self.position = torch.zeros((), dtype=torch.long, device=device)  # where the next key is written
        shape = (self.rows, heads, length, head_dim)
        layer = _slot_layer_class()
        self.cache = Cache(layers=[layer(torch.zeros(shape, dtype=dtype, device=device),
                                         torch.zeros(shape, dtype=dtype, device=device), self.position)
                                   for _ in range(config.num_hidden_layers)])
        self.mask = torch.zeros(self.rows, 1, 1, length, dtype=dtype, device=device)
        self.embeds = torch.zeros(self.rows, 1, config.hidden_size, dtype=dtype, device=device)
        self.positions = torch.zeros(self.rows, 1, dtype=torch.long, device=device)
        self.graph: Any = None
        self.compiled: Any = None
        self.logits: torch.Tensor | None = None
        self.bytes = cache_bytes(config, lines, length, dtype)

    @property
    def layers(self) -> list:
        return self.cache.layers

    def _forward(self) -> torch.Tensor:
        out = self.t3.tfmr(inputs_embeds=self.embeds, attention_mask=self.mask, position_ids=self.positions,
                           past_key_values=self.cache, cache_position=self.position.view(1), use_cache=True)
        return self.t3.speech_head(out.last_hidden_state[:, -1])

    def prefill(self, embeds: torch.Tensor, pad: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """Run the batch's prefill (``embeds`` (r, T, dim), ``r`` <= rows) into this cache; logits of its rows."""
        r, start = embeds.size(0), embeds.size(1)
        pads = torch.zeros(self.rows, dtype=torch.long, device=pad.device)
        pads[:r] = pad
        full = embeds.new_zeros(self.rows, start, embeds.size(-1))
        full[:r] = embeds
        where = torch.zeros(self.rows, start, dtype=torch.long, device=positions.device)
        where[:r] = positions
        queries = torch.arange(start, device=pad.device)
        self.position.fill_(0)
        out = self.t3.tfmr(inputs_embeds=full, attention_mask=additive_mask(pads, queries, self.length, full.dtype),
                           position_ids=where, past_key_values=self.cache, cache_position=queries, use_cache=True)
        self.mask.copy_(additive_mask(pads, torch.tensor([start - 1], device=pad.device), self.length, full.dtype))
        self.position.fill_(start)
        return self.t3.speech_head(out.last_hidden_state[:r, -1])

    def step(self, embeds: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """One token for the first ``embeds.size(0)`` rows (the rest are padding); their logits."""
        r = embeds.size(0)
        self.embeds[:r].copy_(embeds)
        self.positions[:r].copy_(positions)
        self.mask.index_fill_(-1, self.position.view(1), 0)  # the slot this step writes becomes visible
        if self.mode == "cuda":
            logits = self._replay()
        elif self.mode == "compile":
            if self.compiled is None:
                self.compiled = self.pool.compile(self._forward)
            logits = self.compiled()
        else:
            logits = self._forward()
        self.position.add_(1)
        return logits[:r]

    def _replay(self) -> torch.Tensor:
        if self.graph is None:
            self.graph, self.logits = self.pool.capture(self._forward)
        self.graph.replay()
        return self.logits

    def take(self, old: "Decoder", rows: torch.Tensor) -> None:
        """Continue ``old``'s decode for its ``rows`` (indices into its rows) in this longer or smaller bucket."""
        r, used = rows.numel(), int(old.position)
        for mine, theirs in zip(self.layers, old.layers):
            mine.keys[:r, :, :used] = theirs.keys[rows, :, :used]
            mine.values[:r, :, :used] = theirs.values[rows, :, :used]
        self.mask.fill_(torch.finfo(self.mask.dtype).min)
        self.mask[:r, ..., :used] = old.mask[rows, ..., :used]
        self.mask[r:, ..., 0] = 0  # padding rows attend somewhere: no NaN
        self.position.fill_(used)


class StaticPool:
    """The buckets of one T3 (an LRU bounded by ``budget_bytes``), and how their steps are captured."""

    def __init__(self, t3: Any, budget_bytes: int, mode: str | None, gate: GpuGate, dtype: torch.dtype | None = None):
        self.t3, self.budget_bytes, self.mode, self.gate = t3, int(budget_bytes), mode, gate
        self.dtype = dtype or t3.speech_head.weight.dtype  # the caches' dtype: T3's, once the synthesizer cast it
        self.decoders: OrderedDict[tuple[int, int], Decoder] = OrderedDict()
        self.captures = 0  # graphs captured (or steps compiled) so far: once per bucket
        self.compile_backend: str | None = None  # torch.compile's default (inductor) unless set ("eager": tracing only)
        self._graph_pool: Any = None
        self._stream: Any = None

    def start_length(self, prefill: int) -> int:
        return length_bucket(prefill + HEADROOM)

    def max_length(self, prefill: int) -> int:
        return length_bucket(prefill + MAX_NEW_TOKENS + 1)

    def check_fits(self, lines: int, prefill: int = 256) -> None:
        """Refuse a batch size whose starting bucket exceeds the budget (``prefill``: a typical line's)."""
        need = cache_bytes(self.t3.tfmr.config, row_bucket(lines), self.start_length(prefill), self.dtype)
        if need > self.budget_bytes:
            fits = [b for b in ROW_BUCKETS if cache_bytes(self.t3.tfmr.config, b, self.start_length(prefill),
                                                          self.dtype) <= self.budget_bytes]
            raise BadInput(f"a batch of {lines} lines needs {need / 2**30:.1f} GiB of KV cache to start; the "
                           f"decode's cache budget is {self.budget_bytes / 2**30:.1f} GiB: use a batch of at most "
                           f"{max(fits, default=0)} lines, or a larger cache budget (decode cache_gb)")

    def decoder(self, lines: int, length: int) -> Decoder:
        """The bucket for ``lines`` lines at ``length`` positions, least recently used buckets freed to fit."""
        key = (row_bucket(lines), length)
        decoder = self.decoders.pop(key, None)
        if decoder is None:
            need = cache_bytes(self.t3.tfmr.config, key[0], length, self.dtype)
            if need > self.budget_bytes:
                raise BadInput(f"a decode of {lines} lines at {length} positions needs {need / 2**30:.1f} GiB of KV "
                               f"cache, over the budget of {self.budget_bytes / 2**30:.1f} GiB")
            while self.decoders and sum(d.bytes for d in self.decoders.values()) + need > self.budget_bytes:
                self.decoders.popitem(last=False)
            decoder = Decoder(self.t3, key[0], length, self.mode, self)
        self.decoders[key] = decoder
        return decoder

    def capture(self, forward) -> tuple[Any, torch.Tensor]:
        """A CUDA graph of ``forward`` on this pool's stream and memory pool, with the device to itself."""
        with self.gate.exclusive():
            if self._graph_pool is None:
                self._graph_pool, self._stream = torch.cuda.graph_pool_handle(), torch.cuda.Stream()
            self._stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(self._stream):
                forward()  # warm-up off the default stream; it writes the slot the real step writes
            torch.cuda.current_stream().wait_stream(self._stream)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool=self._graph_pool, stream=self._stream):
                logits = forward()
            torch.cuda.current_stream().wait_stream(self._stream)
        self.captures += 1
        log.info("captured T3's decode step for a bucket (%d so far)", self.captures)
        return graph, logits

    def compile(self, forward) -> Any:
        """``torch.compile`` of one bucket's step: a fixed shape per bucket, so it compiles once per bucket, whole
        (``fullgraph``: a graph break would hide a host sync that a CUDA graph cannot hold)."""
        import torch._dynamo

        limit = max(torch._dynamo.config.recompile_limit, len(ROW_BUCKETS) * (MAX_NEW_TOKENS // LENGTH_STEP + 8))
        torch._dynamo.config.recompile_limit = limit  # one entry per bucket, not a silent fall back to eager
        self.captures += 1
        if self.compile_backend is not None:
            return torch.compile(forward, backend=self.compile_backend, fullgraph=True, dynamic=False)
        mode = "reduce-overhead" if self.t3.device.type == "cuda" else "default"
        return torch.compile(forward, mode=mode, fullgraph=True, dynamic=False)
