"""Values that may be Ray object references: fetch them only where the value itself is needed."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

_ONE_AT_A_TIME = threading.Lock()


async def fetch(value: Any) -> Any:
    """The value behind an ObjectRef, or ``value`` itself when it is not a reference.

    Fetched by ``ray.get`` in a worker thread, one at a time: unpickling a value may import its library
    (chatterbox, for conditionals), and two such unpickles at once inside Ray's async callbacks hung the driver.
    """
    try:
        from ray import ObjectRef
    except ImportError:
        return value
    if not isinstance(value, ObjectRef):
        return value
    return await asyncio.to_thread(_get, value)


def _get(ref: Any) -> Any:
    import ray

    with _ONE_AT_A_TIME:
        return ray.get(ref)
