"""Continuous batching for a synthesizer replica: ``synthesize`` calls from any job share ``synthesize_batch`` calls.

A batch closes when ``max_batch`` lines wait, or ``max_wait_s`` after its oldest line arrived or the previous
batch ended, whichever is later (callers of the batch that just ended are sending their next lines: without that
grace a lone straggler would run as a batch of one while they queue), then the lines run as one batch in a worker
thread while the next batch gathers. The event loop never blocks, so a Serve replica keeps answering. Cancelling
a caller (a Serve request cancelled, a job cancelled) drops its line: from the queue if it has not started, from
the running decode at its next step otherwise (``synthesize_batch``'s ``cancelled``). A batch that raises (one line's bad input fails the whole call) is retried line by line, so only
the bad line's caller gets the error.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from actors.models import ModelSpec, load_object
from graph.errors import BadInput
from graph.types import Clip

if TYPE_CHECKING:
    from actors.chatterbox.batch_t3 import DecodeOptions, SynthRequest

log = logging.getLogger(__name__)

LINE_WAIT_S = 0.02  # how long a line waits for others to join its batch

RunBatch = Callable[[list["SynthRequest"], Callable[[int], bool]], list[Clip]]


@dataclass
class _Pending:
    request: SynthRequest
    future: asyncio.Future
    arrived: float


class LineBatcher:
    """Collects ``submit`` calls into batches of at most ``max_batch``, one batch running at a time.

    ``run_batch(requests, cancelled)`` is ``Synthesizer.synthesize_batch`` (or any callable with its contract).
    Create it anywhere; it binds to the running event loop on the first ``submit``.
    """

    def __init__(self, run_batch: RunBatch, max_batch: int = 64, max_wait_s: float = LINE_WAIT_S,
                 executor: Executor | None = None):
        self.run_batch, self.executor = run_batch, executor
        self.resize(max_batch, max_wait_s)
        self._pending: list[_Pending] = []
        self._running: list[_Pending] = []
        self._ended = float("-inf")  # when the last batch ended (event-loop time)
        self._wake: asyncio.Event | None = None
        self._full: asyncio.Event | None = None
        self._worker: asyncio.Task | None = None
        self.batches: deque[int] = deque(maxlen=1000)  # sizes of the latest batches run, for tests and metrics

    def resize(self, max_batch: int, max_wait_s: float) -> None:
        """New bounds, taken by the next batch gathered (a running one finishes as it is)."""
        if max_batch < 1 or max_wait_s < 0:
            raise BadInput(f"batch size must be >= 1 and wait >= 0 s, got {max_batch} and {max_wait_s}")
        self.max_batch, self.max_wait_s = int(max_batch), float(max_wait_s)

    async def submit(self, request: SynthRequest) -> Clip:
        """The line's clip, synthesized in a batch with whatever else arrives meanwhile."""
        loop = asyncio.get_running_loop()
        self._start(loop)
        entry = _Pending(request, loop.create_future(), loop.time())
        self._pending.append(entry)
        self._wake.set()
        if len(self._pending) >= self.max_batch:
            self._full.set()
        try:
            return await entry.future
        except asyncio.CancelledError:
            entry.future.cancel()
            with contextlib.suppress(ValueError):
                self._pending.remove(entry)
            raise

    async def close(self) -> None:
        """Stop the worker; lines queued or decoding are cancelled (a running decode drops them at its next step)."""
        for entry in (*self._pending, *self._running):
            entry.future.cancel()
        self._pending.clear()
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._worker is None or self._worker.done():
            self._wake, self._full = asyncio.Event(), asyncio.Event()
            self._worker = loop.create_task(self._work())

    async def _work(self) -> None:
        while True:
            await self._wake.wait()
            if self._pending and len(self._pending) < self.max_batch:
                self._full.clear()
                since = max(self._pending[0].arrived, self._ended)
                left = since + self.max_wait_s - asyncio.get_running_loop().time()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._full.wait(), max(0.0, left))
            batch = [entry for entry in self._pending[: self.max_batch] if not entry.future.done()]
            del self._pending[: self.max_batch]
            if not self._pending:
                self._wake.clear()
            if batch:
                await self._run(batch)

    async def _run(self, batch: list[_Pending]) -> None:
        loop = asyncio.get_running_loop()
        self.batches.append(len(batch))
        self._running = batch
        try:
            clips = await loop.run_in_executor(self.executor, self._call, batch)
        except Exception as exc:  # noqa: BLE001 - handed to the callers, one by one if the batch had several
            if len(batch) == 1:
                _settle(batch[0].future, exc=exc)
                return
            log.warning("a batch of %d lines failed (%s); retrying its lines one by one", len(batch), exc)
            for entry in batch:
                if not entry.future.done():
                    await self._run([entry])
            return
        finally:
            self._ended = loop.time()
        for entry, clip in zip(batch, clips):
            _settle(entry.future, clip=clip)

    def _call(self, batch: list[_Pending]) -> list[Clip]:
        futures = [entry.future for entry in batch]
        return self.run_batch([entry.request for entry in batch], lambda i: futures[i].cancelled())


def _settle(future: asyncio.Future, clip: Clip | None = None, exc: BaseException | None = None) -> None:
    if future.done():  # cancelled meanwhile
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(clip)


class BatchingSynthesizer:
    """A synthesizer actor whose concurrent ``synthesize`` calls (any job, speaker, language) decode as batches.

    It wraps the profile's synthesizer class (``spec.actor``) and keeps its two calls. ``max_batch`` 1 with the
    ``exact`` decode runs each line alone in a worker thread (what the wrapped actor does); otherwise the lines go
    through a ``LineBatcher`` into ``synthesize_batch``. Its methods are coroutines: as a Ray actor (CLI and
    backfill pools) it is an async actor whose calls share one event loop, and the Serve synthesizer deployment
    holds one per replica.
    """

    def __init__(self, spec: ModelSpec, profile: str = "full", max_batch: int = 1, max_wait_s: float = LINE_WAIT_S,
                 decode: str | dict[str, Any] | None = "auto"):
        self.model = load_object(spec.actor)(spec, profile)
        self.lines: LineBatcher | None = None
        self.batching = False
        self.decode: str | dict[str, Any] | None = None
        self.configure(max_batch, max_wait_s, decode)

    def configure(self, max_batch: int, max_wait_s: float = LINE_WAIT_S,
                  decode: str | dict[str, Any] | None = "auto") -> None:
        """Batch at most ``max_batch`` lines, each waiting at most ``max_wait_s`` for others, decoded as ``decode``
        says: a preset ("auto": fast on CUDA, exact elsewhere; "fast"; "exact") or ``DecodeOptions`` fields, on a
        ``"preset"`` when one is named. ``exact`` and batch 1 voice each line alone. A refused configuration
        leaves the previous one in force."""
        if max_batch < 1 or max_wait_s < 0:
            raise BadInput(f"batch size must be >= 1 and wait >= 0 s, got {max_batch} and {max_wait_s}")
        configure_decode = getattr(self.model, "configure_decode", None)
        options = None
        if configure_decode is not None:
            options = decode_options(decode, self.model.device)
        elif decode not in (None, "auto", "exact"):
            raise BadInput(f"{type(self.model).__name__} has no decode options: leave decode unset, got {decode!r}")
        static = options is not None and options.static_cache
        if max_batch > 1 or static:
            self._check_batching()
        if options is not None:
            configure_decode(options, max_batch)
        self.decode = decode
        if max_batch == 1 and not static:
            self.batching = False
            return
        if self.lines is None:
            self.lines = LineBatcher(self.model.synthesize_batch, max_batch, max_wait_s)
        else:
            self.lines.resize(max_batch, max_wait_s)
        self.batching = True

    def _check_batching(self) -> None:
        if not can_batch(type(self.model)):
            raise BadInput(f"{type(self.model).__name__} cannot decode lines in batches (no synthesize_batch): "
                           "set the synthesizer's batch size to 1")

    def describe(self) -> dict[str, Any]:
        """How this synthesizer voices lines, for manifests: device, batch size, decode options."""
        options = getattr(self.model, "decode", None)
        return {"device": str(getattr(self.model, "device", "cpu")),
                "batch_lines": self.lines.max_batch if self.batching and self.lines else 1,
                "decode": self.decode if isinstance(self.decode, str) else dict(self.decode or {}),
                "decode_options": dataclasses.asdict(options) if options is not None else None}

    async def prepare(self, reference, sr: int):
        return await asyncio.to_thread(self.model.prepare, reference, sr)

    async def synthesize(self, text: str, language: str, conditionals, seed: int = 0, exaggeration: float = 0.5,
                         cfg_weight: float = 0.5, temperature: float = 0.8, pace: float = 1.0) -> Clip:
        if not self.batching:
            return await asyncio.to_thread(self.model.synthesize, text, language, conditionals, seed, exaggeration,
                                           cfg_weight, temperature, pace)
        from actors.chatterbox.batch_t3 import SynthRequest  # torch: loaded where lines are voiced

        request = SynthRequest(text, language, conditionals, seed, exaggeration, cfg_weight, temperature, pace)
        return await self.lines.submit(request)

    def stats(self) -> dict[str, Any]:
        """Sizes of the batches run since the last call (at most the latest 1000), and the wrapped model's own
        counters where it keeps some (its ``stats``)."""
        batches = []
        if self.lines:
            batches = list(self.lines.batches)
            self.lines.batches.clear()
        own = getattr(self.model, "stats", None)
        return {"batches": batches, **(own() if own else {})}


def can_batch(actor_class: type) -> bool:
    return callable(getattr(actor_class, "synthesize_batch", None))


def decode_options(decode: str | dict[str, Any] | None, device: Any) -> "DecodeOptions":
    """``DecodeOptions`` from a preset name or a dict of fields (on its ``"preset"``, default exact)."""
    from actors.chatterbox.batch_t3 import PRESETS, preset

    fields = {"preset": decode or "auto"} if not isinstance(decode, dict) else dict(decode)
    name = fields.pop("preset", "exact")
    try:
        return dataclasses.replace(preset(name, device), **fields)
    except (TypeError, ValueError) as exc:
        raise BadInput(f"bad decode options {decode!r}: {exc} (presets: {', '.join(PRESETS)}, or DecodeOptions "
                       "fields)") from None
