"""Fixtures shared by the ChatterBox actor tests."""

from __future__ import annotations

import pytest
import torch

from actors.chatterbox.model import Synthesizer


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread per caller: tiny ops on an oversubscribed 2-core box crawl with OpenMP's spin-waits."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def synth(tiny_chatterbox_spec, one_torch_thread) -> Synthesizer:
    return Synthesizer(tiny_chatterbox_spec, device="cpu")
