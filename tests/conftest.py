"""Session-wide fixtures. Fixture modules live in tests/fixtures and are registered here as plugins."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

pytest_plugins = [
    "tests.fixtures.audio",
    "tests.fixtures.mix",
    "tests.fixtures.tiny_demucs",
    "tests.fixtures.tiny_chatterbox",
    "tests.fixtures.tiny_marian",
    "tests.fixtures.tiny_pyannote",
]


def pytest_collection_modifyitems(config, items):
    # Modules with long tests first (a stable sort): the test workers take whole files in this order, so the last
    # files to start are short ones and no worker is left running a long module alone at the end. The modules on
    # Serve go first of all, next to each other: a worker starts Serve for the first and stops it after its last
    # (tests/serve/conftest.py), not after the session.
    slow = {item.path for item in items if item.get_closest_marker("slow") is not None}
    serve = {item.path for item in items if "serve_port" in item.fixturenames}
    items.sort(key=lambda item: (item.path not in serve, item.path not in slow))
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
