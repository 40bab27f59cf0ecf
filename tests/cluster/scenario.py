"""Three Ray nodes on this machine, typed like cluster.yaml, each losing a worker mid-run (tests/cluster).

    python -m tests.cluster.scenario WORK_DIR BACKFILL_INPUT... -- SERVE_INPUT...

The last line printed is a JSON report. The head has cluster.yaml's head type (no GPU: the backfill driver and
the Serve ingress run there, no model does); the two workers have its single-GPU type (the GPU is declared, the
offline models run on the CPU). Model actors ask for GPU fractions as on the real cluster (graph.run.pools, and
serve_config.gpu.yaml's deployments), so they land on the workers, spread; the waveform the driver puts on the
head and each speaker's conditionals reach them as object references across nodes.

1. A backfill over actor pools. 2. The Serve app from serve_config.gpu.yaml's deployments (offline profile),
dubbing jobs sent over HTTP. In each, once lines are being voiced, the worker with the most model actors is
killed (SIGKILL of its raylet and its workers) and a fresh one of the same type joins, as an autoscaler would
bring one. The synthesizer (tests/serve/synth.py:LoggedSynthesizer) records each line with its process id, so the
report tells which lines were voiced again and on which node they had been in flight.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import yaml

from tests.serve.synth import take

ROOT = Path(__file__).resolve().parents[2]
SYNTH = "tests.serve.synth:LoggedSynthesizer"
LINES_BEFORE_KILL = 3
TIMEOUT_S = 900.0
HEALTH = {"health_check_initial_delay_ms": 0, "health_check_period_ms": 500, "health_check_failure_threshold": 4}


def node_types() -> tuple[str, dict, str, dict]:
    """cluster.yaml's head type and its smallest GPU worker type, with their resources."""
    config = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    types = config["available_node_types"]
    head = config["head_node_type"]
    worker = min((name for name, t in types.items() if t["resources"].get("GPU", 0) > 0),
                 key=lambda name: types[name]["resources"]["GPU"])  # fmt: skip
    return head, types[head]["resources"], worker, types[worker]["resources"]


class SimulatedCluster:
    def __init__(self):
        from ray.cluster_utils import Cluster

        self.head_type, head, self.worker_type, worker = node_types()
        self.cluster = Cluster(initialize_head=True, head_node_args={
            "num_cpus": 2, "num_gpus": int(head.get("GPU", 0)), "resources": {self.head_type: 1},
            "include_dashboard": False, "_system_config": HEALTH})  # fmt: skip
        self.worker_args = {"num_cpus": 6, "num_gpus": int(worker["GPU"]), "resources": {self.worker_type: 1}}
        for _ in range(2):
            self.cluster.add_node(**self.worker_args)

    def kill_worker(self, node_id: str) -> None:
        """SIGKILL a worker node's processes, then let a fresh node of the same type join."""
        (node,) = [n for n in self.cluster.worker_nodes if n.node_id == node_id]
        self.cluster.remove_node(node, allow_graceful=False)
        self.cluster.add_node(**self.worker_args)

    def type_of(self, node_id: str) -> str:
        import ray

        (node,) = [n for n in ray.nodes() if n["NodeID"] == node_id]
        return self.head_type if self.head_type in node["Resources"] else self.worker_type


def where(handle) -> tuple[str, int]:
    """(node id, pid) of an actor."""
    import ray

    return ray.get(handle.__ray_call__.remote(lambda _: (ray.get_runtime_context().get_node_id(), os.getpid())))


def logged(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def wait_until(predicate, what: str) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.1)


def kill_busiest(sim: SimulatedCluster, actors: dict[str, list[tuple[str, int]]], log: Path) -> dict:
    """Kill the worker holding the most model actors once LINES_BEFORE_KILL lines were voiced; what was in flight."""
    wait_until(lambda: sum(e["event"] == "done" for e in logged(log)) >= LINES_BEFORE_KILL, "lines to be voiced")
    nodes = Counter(node for placed in actors.values() for node, _ in placed)
    victim = max((n for n in nodes if sim.type_of(n) == sim.worker_type), key=lambda n: nodes[n])
    pids = {pid for placed in actors.values() for node, pid in placed if node == victim}
    sim.kill_worker(victim)
    events = logged(log)
    started = Counter(take(e) for e in events if e["event"] == "enter" and e["pid"] in pids)
    done = Counter(take(e) for e in events if e["event"] == "done" and e["pid"] in pids)
    return {"actors_killed": sum(node == victim for placed in actors.values() for node, _ in placed),
            "victim_pids": sorted(pids), "in_flight": sum((started - done).values())}  # fmt: skip


def redone(log: Path, victim_pids: list[int]) -> dict:
    """Lines voiced more than once, and whether each was first voiced (or begun) on the killed node."""
    events = logged(log)
    voiced = Counter(take(e) for e in events if e["event"] == "done")
    again = [line for line, count in voiced.items() if count > 1]
    first = {}
    for e in events:
        first.setdefault(take(e), e["pid"])
    return {"voiced": len(voiced), "redone": sum(voiced[line] - 1 for line in again),
            "redone_off_the_killed_node": sum(first[line] not in victim_pids for line in again)}


def backfill(sim: SimulatedCluster, work: Path, inputs: list[str]) -> dict:
    from actors.serving import profile_with
    from graph.backfill.job import BackfillConfig, run_backfill
    from graph.options import DubOptions
    from graph.run.pools import Replicas, start_stages, stop_stages

    import ray

    stages = start_stages(profile_with("offline", {"synthesizer": SYNTH}), Replicas(synthesizer=2))
    pools = {"asr": stages.asr, "diarizer": stages.diarizer, "translator": stages.translator,
             "synthesizer": stages.synthesizer}  # fmt: skip
    actors = {role: [where(h) for h in pool.handles] for role, pool in pools.items()}
    options = DubOptions(targets=("pt-br",), profile="offline", formats=("wav", "srt"))
    config = BackfillConfig(tuple(inputs), work / "backfill", options, concurrency=2, progress_every_s=5)
    result: dict = {}
    runner = threading.Thread(target=lambda: result.update(summary=run_backfill(config, stages)))
    runner.start()
    kill = kill_busiest(sim, actors, Path(os.environ["DUBGRAPH_TEST_SYNTH_LOG"]))
    runner.join(TIMEOUT_S)
    stop_stages(stages)
    summary = result["summary"]
    items = json.loads((work / "backfill" / "backfill.json").read_text())["items"].values()
    flagged = []
    for item in items:
        manifest = json.loads((work / "backfill" / item["manifest"]).read_text()) if item["manifest"] else {}
        flagged += [line["utterance_id"] for lang in manifest.get("languages", {}).values()
                    for line in lang["lines"] if "synthesis_failed" in line["flags"]]  # fmt: skip
    return {
        "driver": sim.type_of(ray.get_runtime_context().get_node_id()),
        "placement": {role: [sim.type_of(node) for node, _ in placed] for role, placed in actors.items()},
        "synthesizer_nodes": len({node for node, _ in actors["synthesizer"]}),
        "succeeded": summary.succeeded, "failed": summary.failed, "failures": summary.failures, "items": len(inputs),
        "lines_flagged": flagged, **kill, **redone(Path(os.environ["DUBGRAPH_TEST_SYNTH_LOG"]), kill["victim_pids"]),
    }  # fmt: skip


def serve_config(work: Path, port: int, log: Path) -> Path:
    """serve_config.gpu.yaml with the offline profile, loopback, two synthesizer replicas, the logging synthesizer."""
    config = yaml.safe_load((ROOT / "serve_config.gpu.yaml").read_text())
    config["http_options"].update(host="127.0.0.1", port=port)
    (app,) = config["applications"]
    app["args"].update(profile="offline", job_dir=str(work / "jobs"), max_running_jobs=2, synth_parallelism=4,
                       min_free_mb=1, actors={"synthesizer": SYNTH})  # fmt: skip
    app["runtime_env"] = {"env_vars": {"DUBGRAPH_TEST_SYNTH_LOG": str(log),
                                       "DUBGRAPH_TEST_SYNTH_GATE": str(work / "no-gate")}}  # fmt: skip
    synth = next(d for d in app["deployments"] if d["name"] == "Synthesizer")
    synth.update(num_replicas=2, max_ongoing_requests=4, user_config={"batch_lines": 1})  # espeak voices one by one
    path = work / "serve_config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def serve_actors() -> dict[str, list[tuple[str, int]]]:
    import ray

    actors: dict[str, list[tuple[str, int]]] = {}
    for entry in ray.util.list_named_actors(all_namespaces=True):
        name = entry["name"]
        if name.startswith("SERVE_REPLICA::dubgraph#"):
            deployment = name.split("#")[1]
            actors.setdefault(deployment, []).append(where(ray.get_actor(name, namespace=entry["namespace"])))
    return actors


def serve(sim: SimulatedCluster, work: Path, inputs: list[str]) -> dict:
    from tests.processes import kill_session
    from tests.serve.conftest import _free_port

    port, log = _free_port(), work / "serve-synth.log"
    config = serve_config(work, port, log)
    with open(work / "serve.log", "ab") as sink:
        proc = subprocess.Popen([str(Path(sys.executable).parent / "serve"), "run", "--address",
                                 sim.cluster.address, str(config)], cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120)
    try:
        wait_until(lambda: _ready(client), "the Serve app to be ready")
        ids = []
        for path in inputs:
            with open(path, "rb") as f:
                response = client.post("/v1/dubs", files={"audio": (Path(path).name, f)}, data={"targets": "pt-br"})
            response.raise_for_status()
            ids.append(response.json()["id"])
        actors = serve_actors()
        kill = kill_busiest(sim, {d: a for d, a in actors.items() if d != "DubIngress"}, log)
        wait_until(lambda: all(client.get(f"/v1/dubs/{i}").json()["status"] in ("done", "failed") for i in ids),
                   "the jobs to finish")  # fmt: skip
        statuses = [client.get(f"/v1/dubs/{i}").json() for i in ids]
        manifests = [client.get(s["links"]["manifest"]).json() for s in statuses if s["status"] == "done"]
    finally:
        client.close()
        kill_session(proc)
    flagged = [line["utterance_id"] for m in manifests for line in m["languages"]["pt-br"]["lines"]
               if "synthesis_failed" in line["flags"]]  # fmt: skip
    return {
        "placement": {d: [sim.type_of(node) for node, _ in placed] for d, placed in actors.items()},
        "jobs": [s["status"] for s in statuses], "runs": [s["runs"] for s in statuses],
        "lines_flagged": flagged, **kill, **redone(log, kill["victim_pids"]),
    }  # fmt: skip


def _ready(client: httpx.Client) -> bool:
    try:
        return client.get("/readyz").status_code == 200
    except httpx.HTTPError:
        return False


def main(argv: list[str]) -> None:
    work = Path(argv[0])
    split = argv.index("--")
    os.environ["DUBGRAPH_TEST_SYNTH_LOG"] = str(work / "backfill-synth.log")  # the backfill's actors inherit it
    os.environ["DUBGRAPH_TEST_SYNTH_GATE"] = str(work / "no-gate")
    os.environ["RAY_TMPDIR"] = tempfile.mkdtemp(prefix="rc", dir="/tmp")  # its address file stays out of /tmp/ray
    import ray

    from graph.run.local_ray import WORKER_ENV

    os.environ.update(WORKER_ENV)
    sim = SimulatedCluster()
    try:
        ray.init(address=sim.cluster.address, logging_level="WARNING")
        report = {"node_types": [sim.head_type, sim.worker_type, sim.worker_type]}
        report["backfill"] = backfill(sim, work, argv[1:split])
        report["serve"] = serve(sim, work, argv[split + 1 :])
    finally:
        ray.shutdown()
        sim.cluster.shutdown()
    print(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1:])
