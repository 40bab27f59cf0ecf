"""Request-body limits (graph/jobs/bodies.py) on a FastAPI app driven through ASGI directly, no Serve: a body too
large by its header or as it streams, one that stalls, one that trickles; each a JSON error before any route
sees a complete body. The live app gets the same requests over HTTP in tests/serve/test_app.py."""

from __future__ import annotations

import asyncio
import json

import pytest
from fastapi import FastAPI, Request
from pydantic import BaseModel

from graph.jobs import bodies
from graph.jobs.bodies import BodyLimits, bound_bodies
from graph.jobs.http import install_error_handlers

LIMITS = BodyLimits(upload_bytes=1000, other_bytes=100, idle_s=0.05, min_bytes_per_s=1000)


class Texts(BaseModel):
    texts: list[str]


def app() -> FastAPI:
    api = FastAPI()
    install_error_handlers(api)
    bound_bodies(api, LIMITS)

    @api.post("/raw")
    async def raw(request: Request) -> dict:
        return {"bytes": len(await request.body())}

    @api.post("/model")
    async def model(body: Texts) -> dict:  # FastAPI reads this body itself
        return {"texts": len(body.texts)}

    return api


def call(path: str, chunks: list[bytes], content_type: str = "application/json", declared: int | None = None,
         stall: bool = False) -> tuple[int, dict]:
    """One request through ASGI; ``stall``: after the chunks, the client sends nothing more."""
    headers = [(b"content-type", content_type.encode())]
    if declared is not None:
        headers.append((b"content-length", str(declared).encode()))
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "path": path,
             "raw_path": path.encode(), "query_string": b"", "headers": headers, "scheme": "http",
             "server": ("test", 80), "client": ("test", 1), "root_path": ""}  # fmt: skip
    pending = list(chunks)
    never = asyncio.Event()
    sent: list[dict] = []

    async def receive() -> dict:
        if pending:
            body = pending.pop(0)
            return {"type": "http.request", "body": body, "more_body": bool(pending) or stall}
        if stall:
            await never.wait()  # the client went quiet
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(app()(scope, receive, send))
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    return status, json.loads(b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body"))


def test_bodies_within_the_limits_pass():
    assert call("/raw", [b"x" * 60, b"y" * 40]) == (200, {"bytes": 100})
    assert call("/model", [b'{"texts": ["a", "b"]}']) == (200, {"texts": 2})
    assert call("/raw", [b"z" * 1000], content_type="multipart/form-data; boundary=b") == (200, {"bytes": 1000})


@pytest.mark.parametrize(
    ("path", "chunks", "content_type", "declared", "status", "message"),
    [
        ("/raw", [], "application/json", 10**9, 413, "is 953.7 MB; this server accepts at most 100 bytes"),  # refused by its header, never read
        ("/raw", [b"x" * 60] * 2, "application/json", None, 413, "larger than that"),  # no header: counted
        ("/model", [b'{"texts": ["' + b"a" * 200 + b'"]}'], "application/json", None, 413, "larger than that"),
        ("/raw", [b"x" * 600] * 2, "multipart/form-data; boundary=b", None, 413, "upload limit is 1000 bytes"),
        ("/raw", [b"{"], "application/json", None, 408, "nothing arrived for 0.05 s"),  # then silence
        ("/model", [b"{"], "application/json", None, 408, "nothing arrived"),
    ],
)
def test_oversized_and_stalled_bodies_are_json_errors(path, chunks, content_type, declared, status, message):
    got, body = call(path, chunks, content_type, declared, stall=status == 408)
    assert got == status and body["error"]["status"] == status and message in body["error"]["message"], body


def test_a_trickling_body_is_dropped_once_it_has_had_its_idle_time(monkeypatch):
    """A byte per (simulated) 0.04 s never stalls for idle_s, but averages 25 B/s against 1000 needed."""
    clock = iter(i * 0.04 for i in range(1000))
    monkeypatch.setattr(bodies.time, "monotonic", lambda: next(clock))
    status, body = call("/raw", [b"x"] * 50, "application/json")
    assert status == 408 and "arrives too slowly" in body["error"]["message"], body
