"""Where torch work runs: the one place that turns a device setting ("auto", "cpu", "cuda", "cuda:N") into a
torch device. onnxruntime has its own provider list (``workers/embed/onnx.py``)."""

from __future__ import annotations

import torch


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """The given device; "auto" (or None) means CUDA when torch sees a GPU, else the CPU."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)
