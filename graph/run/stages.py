"""Stage handles: one async interface over Ray actor pools, Ray Serve deployment handles and plain objects.

The pipeline only ever does ``await stage.call("method", *args)`` (a concrete result) or
``await stage.call_ref("method", *args)`` (the result left where the backend keeps it: an ObjectRef for Ray, so a
value such as a speaker's conditionals is stored once and read by every line that needs it).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Sequence
from typing import Any, Protocol

log = logging.getLogger(__name__)

UNAVAILABLE_RETRY_S = 1.0
UNAVAILABLE_WAIT_S = 300.0  # a restart that takes longer than this (no node can hold the actor) fails the call


class Stage(Protocol):
    parallelism: int  # how many calls it makes sense to keep in flight

    async def call(self, method: str, *args: Any, **kwargs: Any) -> Any: ...

    async def call_ref(self, method: str, *args: Any, **kwargs: Any) -> Any: ...


class LocalStage:
    """An in-process object; calls run in threads (the actors are thread-safe where they claim to be)."""

    def __init__(self, obj: Any, parallelism: int = 1):
        self.obj = obj
        self.parallelism = parallelism

    async def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(getattr(self.obj, method), *args, **kwargs)

    call_ref = call


class ActorPool:
    """Plain Ray actors of one class; each call goes to the least busy live actor.

    A call whose actor died is retried once on another actor, and the dead one is dropped from the pool. A call whose
    actor is unavailable (restarting after its process or node was lost: Ray refuses calls until it is back) is made
    again, on the least busy actor, every ``UNAVAILABLE_RETRY_S`` for up to ``UNAVAILABLE_WAIT_S``.
    ``keep``: handles of actors that outlive this pool (warm actors, graph.run.warm): stopping the pool leaves them.
    """

    def __init__(self, handles: Sequence[Any], per_actor: int = 1, keep: Sequence[Any] = ()):
        if not handles:
            raise ValueError("an actor pool needs at least one actor")
        self.handles = list(handles)
        self.keep = {id(h) for h in keep}
        self.busy = {id(h): 0 for h in self.handles}
        self.parallelism = len(self.handles) * per_actor
        self._order = itertools.count()

    def _pick(self) -> Any:
        return min(self.handles, key=lambda h: (self.busy[id(h)], next(self._order)))

    async def _submit(self, method: str, args: tuple, kwargs: dict, fetch: bool) -> Any:
        import ray
        from ray.exceptions import ActorDiedError, ActorUnavailableError

        died, deadline = False, time.monotonic() + UNAVAILABLE_WAIT_S
        while True:
            handle = self._pick()
            self.busy[id(handle)] += 1
            try:
                ref = getattr(handle, method).remote(*args, **kwargs)
                if fetch:
                    return await ref
                # Wait without pulling the value here: the driver need not copy what only other actors read.
                # A failure surfaces where the ref is used.
                await asyncio.to_thread(ray.wait, [ref], num_returns=1, fetch_local=False)
                return ref
            except ActorUnavailableError:
                if time.monotonic() > deadline:
                    raise
                log.warning("%s: its actor is unavailable (restarting?): calling again", method)
                await asyncio.sleep(UNAVAILABLE_RETRY_S)
            except ActorDiedError as exc:
                if died or len(self.handles) == 1:
                    raise
                log.warning("%s failed on a dead actor (%s): retrying on another", method, type(exc).__name__)
                self.handles.remove(handle)
                died = True
            finally:
                self.busy[id(handle)] -= 1

    async def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return await self._submit(method, args, kwargs, fetch=True)

    async def call_ref(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return await self._submit(method, args, kwargs, fetch=False)


class ServeStage:
    """A Ray Serve deployment handle; Serve routes to replicas and applies its own backpressure."""

    def __init__(self, handle: Any, parallelism: int = 8):
        self.handle = handle
        self.parallelism = parallelism

    async def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return await getattr(self.handle, method).remote(*args, **kwargs)

    async def call_ref(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return await getattr(self.handle, method).remote(*args, **kwargs)._to_object_ref()


class Unstarted:
    """A role this run started no actors for (a job from a transcript that names every speaker needs no ASR or
    diarizer): calling it is a bug in the caller, said plainly."""

    parallelism = 1

    def __init__(self, role: str):
        self.role = role

    async def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"no {self.role} actors were started for this run, yet {method} was called")

    call_ref = call
