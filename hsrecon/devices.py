"""Choosing the torch device: ``auto`` prefers CUDA, then Apple's MPS, then the CPU."""

from __future__ import annotations

import os

import torch

__all__ = ["DeviceError", "pick_device", "rank_device"]


class DeviceError(RuntimeError):
    """A device was asked for that this machine does not have."""


def pick_device(requested: str = "auto") -> torch.device:
    """The device for ``requested`` (``auto``, ``cpu``, ``cuda``, ``cuda:N``, ``mps``), checked to exist."""
    if requested == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(requested)
    except RuntimeError:
        raise DeviceError(f"unknown device {requested!r} (use auto, cpu, cuda, cuda:N or mps)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"device {requested!r} requested, but this torch build or machine has no CUDA device")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise DeviceError(f"device {requested!r} requested, but only {torch.cuda.device_count()} CUDA device(s)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise DeviceError("device 'mps' requested, but MPS is not available here")
    return device


def rank_device(device: torch.device) -> torch.device:
    """Under torchrun, each local rank takes its own GPU (``cuda`` → ``cuda:LOCAL_RANK``)."""
    local_rank = os.environ.get("LOCAL_RANK")
    if device.type == "cuda" and device.index is None and local_rank is not None:
        return torch.device("cuda", int(local_rank))
    return device
