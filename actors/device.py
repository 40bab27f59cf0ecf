"""Device choice inside an actor: what Ray assigned (it sets CUDA_VISIBLE_DEVICES), else the CPU."""

from __future__ import annotations


def pick_device(requested: str | None = None) -> str:
    if requested:
        return requested
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
