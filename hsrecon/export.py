"""Export the network to ONNX, checked against PyTorch, for runtimes other than torch.

The graph exported is the weights' inference form (:meth:`hsrecon.weights.Weights.inference_model`:
BatchNorm folded, a provably constant branch frozen) for one window size, with a dynamic batch axis:
input ``rgb`` N×3×W×W float32 in the weights' input space, output ``cube`` N×31×W×W. The coordinate
channels are part of the graph, so the window size is fixed in it. Convert keeps torch (the comparison
with onnxruntime is in ``docs/benchmarks.md``); the export is for deployment elsewhere.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from hsrecon.inference import probe_windows
from hsrecon.model import LWRDAN
from hsrecon.temps import atomic_file
from hsrecon.weights import Weights, as_weights

__all__ = ["ExportError", "ExportResult", "check_exportable", "check_onnx", "export_checked", "export_onnx"]


class ExportError(RuntimeError):
    """The exported graph does not reproduce the PyTorch model."""


def check_exportable(weights: Weights) -> None:
    """ValueError (one line, naming the weights) for a network an ONNX graph cannot hold: one whose prior is
    routed (:mod:`hsrecon.lightroute`) reads each image's light before it runs, and a graph has one prior."""
    if getattr(weights, "routes", None) is not None:
        raise ValueError(
            f"{weights.name}: its prior is routed, chosen per image by the image's light, which a fixed ONNX graph "
            "cannot hold; export a network whose prior is the same for every image"
        )


def export_onnx(
    weights: Weights | LWRDAN | str | os.PathLike | None,
    path: str | os.PathLike,
    *,
    window: int | None = None,
    opset: int = 17,
) -> Path:
    """Write the inference form of ``weights`` (default window: their training window) as ONNX to ``path``
    (atomically). Needs the ``onnx`` package (ModuleNotFoundError otherwise)."""
    loaded = as_weights(weights, window=window)
    check_exportable(loaded)
    window = loaded.windowing(window).window
    path = Path(path)
    prepared = loaded.inference_model(window).to(memory_format=torch.contiguous_format).eval()
    example = torch.zeros(2, loaded.meta.config.in_channels, window, window)
    with atomic_file(path) as temp, warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings about the fixed window size: intended
        torch.onnx.export(
            prepared, (example,), str(temp), input_names=["rgb"], output_names=["cube"],
            dynamic_axes={"rgb": {0: "batch"}, "cube": {0: "batch"}}, opset_version=opset, dynamo=False,
        )  # fmt: skip
    return path


def check_onnx(
    weights: Weights | LWRDAN | str | os.PathLike | None,
    path: str | os.PathLike,
    *,
    window: int | None = None,
    tolerance: float = 1e-4,
) -> float:
    """Run the ONNX file with onnxruntime on probe windows; return max |Δ| / max |torch output| against
    the weights as loaded. Raises :class:`ExportError` above ``tolerance``."""
    import onnxruntime as ort

    loaded = as_weights(weights, window=window)
    window = loaded.windowing(window).window
    probes = probe_windows(window, loaded.meta.config.in_channels)
    with torch.inference_mode():
        reference = loaded.build()(probes).numpy()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    output = session.run(None, {"rgb": probes.numpy()})[0]
    deviation = float(np.abs(output - reference).max() / np.abs(reference).max())
    if deviation > tolerance:
        raise ExportError(f"{path}: ONNX output differs from PyTorch by {deviation:.2e} (relative)")
    return deviation


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_checked` wrote: the file, its window, and onnxruntime's deviation (None: not run)."""

    path: Path
    window: int
    deviation: float | None


def export_checked(weights: Weights, path: str | os.PathLike, *, window: int | None = None) -> ExportResult:
    """Export, then check with onnxruntime when it is installed; a file that fails the check is removed
    (:class:`ExportError`), so no graph that does not reproduce torch is left behind. Per-pixel maps
    (:class:`~hsrecon.pixelweights.PixelMapWeights`) have no network to export: ExportError."""
    if getattr(weights, "per_pixel", False):
        raise ExportError(f"{weights.name}: a per-pixel map has no network to export")
    window = weights.windowing(window).window
    path = export_onnx(weights, path, window=window)
    try:
        deviation = check_onnx(weights, path, window=window)
    except ModuleNotFoundError:
        deviation = None
    except ExportError:
        path.unlink(missing_ok=True)
        raise
    return ExportResult(path=path, window=window, deviation=deviation)
