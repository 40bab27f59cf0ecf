"""Serve on the session's Ray, HTTP on 127.0.0.1, and a helper to deploy dubgraph and talk to it."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.serve.synth import control

APP = "dubgraph"
MODELS_APP = "dubgraph-models"
TEST_SYNTH = "tests.serve.synth:CountingSynthesizer"
POLL_S = 0.25


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="package")
def serve_port(ray_local) -> int:
    """Serve on the worker's Ray while it runs this package's modules, shut down when the worker moves on: an idle
    Serve app (controller, proxy, the models' replicas) kept ~14 % of a core busy (5.8 s of CPU in 30 s against 1.5
    s for the same Ray without it, measured), and a worker spends most of the session on other modules. This
    package is one unit of work, run first (tests/conftest.py), so Serve starts once."""
    from ray import serve

    port = _free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    ctl = control()  # held here, so the actor lives as long as Serve does
    yield port
    del ctl
    serve.shutdown()


def deploy(port: int, **args) -> httpx.Client:
    """Run the app's ingress with these DubAppArgs and return a client. Its models (offline profile, the counting
    synthesizer) are the Serve run's models application, deployed by the first call: each test module deploys
    its own ingress (its own job store and limits) in seconds, and no module reloads a model."""
    from ray import serve

    from serve_app import DubAppArgs, build_app

    args.setdefault("actors", {"synthesizer": TEST_SYNTH})
    serve.run(build_app(DubAppArgs(models_app=models_app(args["actors"]), **args)), name=APP, route_prefix="/")
    headers = {"X-API-Key": args["api_key"]} if args.get("api_key") else {}
    return httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=120)


def replicas(app: str, *deployments: str) -> set[str]:
    """Names of the live replica actors of an app's deployments (Serve's "SERVE_REPLICA::app#Deployment#id")."""
    import ray

    return {a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
            if any(f"::{app}#{d}#" in a["name"] for d in deployments)}  # fmt: skip


def models_app(actors: dict[str, str]) -> str:
    """The Serve run's models application (offline profile with these actors), deployed when not running."""
    from ray import serve

    from serve_app import ModelArgs, build_models

    if MODELS_APP not in serve.status().applications:
        serve.run(build_models(ModelArgs(actors=actors)), name=MODELS_APP, route_prefix=None)
    return MODELS_APP


def wait_for(client: httpx.Client, job_id: str, until=("done", "failed"), timeout_s: float = 600) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        status = client.get(f"/v1/dubs/{job_id}").json()
        if status["status"] in until or time.monotonic() > deadline:
            return status
        time.sleep(POLL_S)


def submit(client: httpx.Client, path: Path, targets: str = "pt-br", **fields) -> str:
    with open(path, "rb") as f:
        files = {"audio": (path.name, f, "audio/wav")}
        response = client.post("/v1/dubs", files=files, data={"targets": targets, **fields})
    assert response.status_code == 202, response.text
    return response.json()["id"]


def tone(path: Path, seconds: float) -> Path:
    """A small MP3 of a steady tone, ``seconds`` long: audio that is valid but has no speech."""
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i",
                    f"sine=frequency=300:duration={seconds}", "-c:a", "libmp3lame", "-b:a", "8k", str(path)],
                   check=True)  # fmt: skip
    return path
