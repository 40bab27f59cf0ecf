"""A 3-node Ray cluster simulated on this machine (tests/cluster/scenario.py, its own process and Ray): a backfill
and the Serve app each lose a worker node mid-run; no item, job or line is lost and only lines that were in
flight on the killed node are voiced again."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.make_dialogue import build_dialogue

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = (
    (("alex", "Good morning, is the train late again?"), ("beth", "Yes, about ten minutes, as usual.")),
    (("beth", "The garden needs water today."), ("alex", "I will do it after lunch, I promise.")),
    (("alex", "Where did you park the car?"), ("beth", "Behind the old library, near the bakery.")),
    (("beth", "Can you call the doctor for me?"), ("alex", "Of course, right away."),
     ("beth", "Thank you, tell her it is urgent.")),
    (("alex", "This soup is very good."), ("beth", "Thank you, it is my mother's recipe."),
     ("alex", "You must give it to me.")),
)  # fmt: skip


@pytest.mark.slow
def test_a_worker_node_lost_mid_run_loses_no_item_job_or_line(tmp_path):
    clips = [str(build_dialogue(tmp_path / f"clip{i}.wav", script).path) for i, script in enumerate(SCRIPTS)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_ADDRESS")}
    run = subprocess.run([sys.executable, "-m", "tests.cluster.scenario", str(tmp_path), *clips[:3], "--", *clips[3:]],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-5000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    print("cluster:", json.dumps(report, indent=1))
    head, worker = report["node_types"][:2]
    backfill, serve = report["backfill"], report["serve"]

    assert backfill["driver"] == head and serve["placement"]["DubIngress"] == [head]  # beside the job store
    for placement in (backfill["placement"], {d: p for d, p in serve["placement"].items() if d != "DubIngress"}):
        assert all(node == worker for nodes in placement.values() for node in nodes), placement  # GPU roles
    assert backfill["synthesizer_nodes"] == 2  # spread: one node lost is not every synthesizer lost

    for part in (backfill, serve):
        assert part["actors_killed"] >= 1, part  # the fault happened where models were working
        assert not part["lines_flagged"], part  # no line left silent
        assert part["redone_off_the_killed_node"] == 0, part  # only what the lost node had in flight is redone
    assert (backfill["succeeded"], backfill["failed"]) == (backfill["items"], 0), backfill["failures"]
    assert serve["jobs"] == ["done", "done"]
