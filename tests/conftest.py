"""Session-wide fixtures. Fixture modules live in tests/fixtures and are registered here as plugins."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SERVE = "tests/serve"  # its modules share one Serve app: one unit of work (below)

pytest_plugins = [
    "tests.fixtures.audio",
    "tests.fixtures.mix",
    "tests.fixtures.tiny_demucs",
    "tests.fixtures.tiny_chatterbox",
    "tests.fixtures.tiny_marian",
    "tests.fixtures.tiny_pyannote",
]


def pytest_xdist_make_scheduler(config, log):
    """The test workers' units of work: a test module each, except tests/serve, one unit: one worker runs its
    modules one after the other, so Serve and the models app start once (tests/serve/conftest.py)."""
    from xdist.scheduler import LoadFileScheduling

    class Units(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = super()._split_scope(nodeid)
            return SERVE if module.startswith(f"{SERVE}/") else module

    return Units(config, log)


def pytest_collection_modifyitems(config, items):
    # Units with long tests first (a stable sort): the test workers take them in this order, so the last to start
    # are short ones and no worker is left running a long module alone at the end. tests/serve goes first of all.
    slow = {item.path for item in items if item.get_closest_marker("slow") is not None}
    serve = config.rootpath / SERVE
    items.sort(key=lambda item: (not item.path.is_relative_to(serve), item.path not in slow))
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if item.get_closest_marker("gpu") is not None:  # the marker, not any keyword (a folder named gpu)
            item.add_marker(skip)


@pytest.fixture(scope="session")
def ray_local():
    """One embedded Ray for the whole session (2 CPUs, token auth on, no dashboard)."""
    import ray

    from graph.run.local_ray import init_ray

    init_ray(num_cpus=2)
    yield ray
    ray.shutdown()
