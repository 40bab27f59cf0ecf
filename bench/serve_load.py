"""Serve under load: POST /v1/translate latency idle and while dub jobs run, and dub jobs per minute.

    .venv/bin/python -m bench.serve_load [--jobs 8] [--requests 200] [--out bench/serve_load.json]

Starts an embedded Ray and the app from serve_app (offline profile, max_running_jobs = --jobs) on 127.0.0.1,
warms every deployment with one job, then measures: translate latency with nothing else running; translate
latency while --jobs copies of pyannote's sample.wav (30 s, two speakers) are dubbed at once; and the wall time
of that batch of jobs (jobs per minute). Prints a markdown table and writes the raw numbers as JSON.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import socket
import statistics
import tempfile
import threading
import time
from pathlib import Path

TEXTS = ["Good morning, did you finish reading the report?", "We still need to check the costs.", "See you at three."]


def _sample() -> Path:
    spec = importlib.util.find_spec("pyannote.audio")
    return Path(next(iter(spec.submodule_search_locations))) / "sample" / "sample.wav"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def _summary(seconds: list[float]) -> dict:
    return {"p50": round(1000 * statistics.median(seconds), 1), "p95": round(1000 * _percentile(seconds, 95), 1),
            "n": len(seconds)}  # fmt: skip


def _translate_latencies(client, stop: threading.Event | None, count: int) -> list[float]:
    """Sequential requests: ``count`` of them, or until ``stop`` is set (at least ``count // 4``)."""
    latencies = []
    while len(latencies) < count and not (stop is not None and stop.is_set() and len(latencies) >= count // 4):
        t0 = time.perf_counter()
        response = client.post("/v1/translate", json={"texts": TEXTS, "target": "pt-br"})
        response.raise_for_status()
        latencies.append(time.perf_counter() - t0)
    return latencies


def _dub_all(client, sample: Path, count: int) -> tuple[float, list[dict]]:
    t0 = time.perf_counter()
    ids = []
    for _ in range(count):
        with open(sample, "rb") as f:
            files = {"audio": ("sample.wav", f, "audio/wav")}
            response = client.post("/v1/dubs", files=files, data={"targets": "pt-br"})
        response.raise_for_status()
        ids.append(response.json()["id"])
    done = []
    for job_id in ids:
        while (status := client.get(f"/v1/dubs/{job_id}").json())["status"] not in ("done", "failed"):
            time.sleep(0.5)
        done.append(status)
    return time.perf_counter() - t0, done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--out", default="bench/serve_load.json")
    args = parser.parse_args()

    import httpx
    from ray import serve

    load_before = os.getloadavg()[0]  # other work on the machine skews every number: record it

    from graph.run.local_ray import init_ray
    from serve_app import DubAppArgs, build_app

    init_ray()
    port = _port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    with tempfile.TemporaryDirectory(prefix="dubgraph-bench-") as jobs:
        serve.run(build_app(DubAppArgs(job_dir=jobs, max_running_jobs=args.jobs)), name="dubgraph", route_prefix="/")
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=600)
        sample = _sample()
        warm_s, _ = _dub_all(client, sample, 1)  # first job loads lazily compiled code in every replica
        one_s, _ = _dub_all(client, sample, 1)
        idle = _translate_latencies(client, None, args.requests)

        stop = threading.Event()
        result: dict = {}

        def load():
            result["wall_s"], result["statuses"] = _dub_all(client, sample, args.jobs)
            stop.set()

        runner = threading.Thread(target=load)
        runner.start()
        time.sleep(2.0)  # let the jobs get going
        loaded = _translate_latencies(client, stop, args.requests)
        runner.join()
        serve.shutdown()
    failed = [s for s in result["statuses"] if s["status"] != "done"]
    report = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}",
        "profile": "offline",
        "input": "pyannote sample.wav (30 s, 2 speakers) -> pt-br",
        "first_job_s": round(warm_s, 2),
        "single_job_s": round(one_s, 2),
        "translate_idle_ms": _summary(idle),
        "translate_loaded_ms": _summary(loaded),
        "concurrent_jobs": args.jobs,
        "concurrent_wall_s": round(result["wall_s"], 2),
        "jobs_per_minute": round(60 * args.jobs / result["wall_s"], 2),
        "failed_jobs": len(failed),
        "load_average_1min": {"before": round(load_before, 1), "after": round(os.getloadavg()[0], 1)},
    }
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"| machine | {report['machine']} |\n|---|---|")
    for key, value in report.items():
        if key != "machine":
            print(f"| {key} | {value} |")


if __name__ == "__main__":
    main()
