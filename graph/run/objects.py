"""Values that may be Ray object references: fetch them only where the value itself is needed."""

from __future__ import annotations

from typing import Any


async def fetch(value: Any) -> Any:
    """The value behind an ObjectRef, or ``value`` itself when it is not a reference.

    What the pipeline fetches is plain data (numpy arrays and ``graph.types`` records, voice conditionals
    included), so unpickling it in the driver imports no model library.
    """
    try:
        from ray import ObjectRef
    except ImportError:
        return value
    return await value if isinstance(value, ObjectRef) else value
