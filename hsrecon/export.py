"""Export the network to ONNX, checked against PyTorch, for runtimes other than torch.

The graph exported is the inference form (:func:`hsrecon.inference.prepare_model`: BatchNorm folded, a
provably constant branch frozen) for one window size, with a dynamic batch axis: input ``rgb``
N×3×W×W float32 in the weights' input space, output ``cube`` N×31×W×W. The coordinate channels are part
of the graph, so the window size is fixed in it. onnxruntime on this project's CPU was not faster than
torch (``docs/benchmarks.md``), so convert keeps torch; the export is for deployment elsewhere.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch

from hsrecon.inference import prepare_model, probe_windows
from hsrecon.io.temps import atomic_file
from hsrecon.model import LWRDAN

__all__ = ["ExportError", "check_onnx", "export_onnx"]


class ExportError(RuntimeError):
    """The exported graph does not reproduce the PyTorch model."""


def export_onnx(model: LWRDAN, path: str | os.PathLike, *, window: int = 64, opset: int = 17) -> Path:
    """Write the inference form of ``model`` as ONNX to ``path`` (atomically)."""
    path = Path(path)
    prepared = prepare_model(model, window=window).to(memory_format=torch.contiguous_format).eval()
    example = torch.zeros(2, model.config.in_channels, window, window)
    with atomic_file(path) as temp, warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings about the fixed window size: intended
        torch.onnx.export(
            prepared, (example,), str(temp), input_names=["rgb"], output_names=["cube"],
            dynamic_axes={"rgb": {0: "batch"}, "cube": {0: "batch"}}, opset_version=opset, dynamo=False,
        )  # fmt: skip
    return path


def check_onnx(model: LWRDAN, path: str | os.PathLike, *, window: int = 64, tolerance: float = 1e-4) -> float:
    """Run the ONNX file with onnxruntime on probe windows; return max |Δ| / max |torch output|.

    Raises :class:`ExportError` above ``tolerance``.
    """
    import onnxruntime as ort

    probes = probe_windows(window, model.config.in_channels)
    with torch.inference_mode():
        reference = model.eval()(probes).numpy()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    output = session.run(None, {"rgb": probes.numpy()})[0]
    deviation = float(np.abs(output - reference).max() / np.abs(reference).max())
    if deviation > tolerance:
        raise ExportError(f"{path}: ONNX output differs from PyTorch by {deviation:.2e} (relative)")
    return deviation
