"""Request bodies, bounded and timed as they stream in, before any route reads them.

A declared ``Content-Length`` over the limit is refused at once (413) without reading the body; a body without
one is counted as it arrives and refused when it passes the limit; a body that sends nothing for ``idle_s``, or
averages less than ``min_bytes_per_s`` past that (a slow-loris upload), is dropped (408) instead of holding a
request slot. Multipart bodies (uploads) get the upload limit, every other body the small one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import FastAPI
from starlette.datastructures import Headers

from graph.errors import AudioTooLarge, DubError, RequestTimeout, RequestTooLarge
from graph.jobs.http import dub_error


@dataclass(frozen=True)
class BodyLimits:
    """How large a request body may be and how slowly it may arrive."""

    upload_bytes: int  # multipart bodies: an upload
    other_bytes: int  # JSON, urlencoded and any other body
    idle_s: float = 30.0  # a body that sends nothing for this long is dropped (408)
    min_bytes_per_s: float = 8192.0  # past its first idle_s, a body must have averaged at least this (slow loris)

    def __post_init__(self) -> None:
        if min(self.upload_bytes, self.other_bytes) < 1 or self.idle_s <= 0 or self.min_bytes_per_s < 0:
            raise ValueError(f"body limits must be positive, got {self}")


def bound_bodies(app: FastAPI, limits: BodyLimits) -> None:
    app.add_middleware(_BoundedBodies, limits=limits)


class _BoundedBodies:
    """ASGI middleware: a declared length over the limit is refused before the body is read; the body itself is
    counted and timed as it streams in (``receive`` raises ``RequestTooLarge``/``RequestTimeout``)."""

    def __init__(self, app, limits: BodyLimits):
        self.app = app
        self.limits = limits

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = Headers(scope=scope)
        upload = headers.get("content-type", "").split(";")[0].strip().lower() == "multipart/form-data"
        limit = self.limits.upload_bytes if upload else self.limits.other_bytes
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            return await dub_error(_too_large(int(declared), limit, upload))(scope, receive, send)
        await self.app(scope, self._paced(receive, limit, upload), send)

    def _paced(self, receive: Callable, limit: int, upload: bool) -> Callable:
        idle_s, min_rate = self.limits.idle_s, self.limits.min_bytes_per_s
        started = time.monotonic()
        seen = 0
        complete = False

        async def paced() -> dict:
            nonlocal seen, complete
            if complete:  # the body is in: later receives wait for a disconnect, as long as they like
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), idle_s)
            except asyncio.TimeoutError:
                raise RequestTimeout(f"the request body stalled: nothing arrived for {idle_s:g} s") from None
            if message["type"] != "http.request":
                complete = True
                return message
            seen += len(message.get("body", b""))
            complete = not message.get("more_body", False)
            if seen > limit:
                raise _too_large(None, limit, upload)
            elapsed = time.monotonic() - started
            if not complete and elapsed > idle_s and seen < min_rate * elapsed:
                raise RequestTimeout(f"the request body arrives too slowly ({seen / elapsed / 1024:.2f} KB/s; this "
                                     f"server needs at least {min_rate / 1024:g} KB/s)")  # fmt: skip
            return message

        return paced


def _too_large(declared: int | None, limit: int, upload: bool) -> DubError:
    size = f"is {_size(declared)}" if declared is not None else "is larger than that"
    if upload:
        return AudioTooLarge(f"the upload {size}; this server's upload limit is {_size(limit)}")
    return RequestTooLarge(f"the request body {size}; this server accepts at most {_size(limit)} here")


def _size(n: int) -> str:
    for unit, scale in (("GB", 2**30), ("MB", 2**20), ("KB", 2**10)):
        if n >= scale:
            return f"{n / scale:.4g} {unit}"
    return f"{n} bytes"
