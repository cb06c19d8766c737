"""``hsrecon export``: the network's inference form as ONNX, checked against torch."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from hsrecon.cli._common import ExitCode, WeightsOption, fail, safe, stdout, weights_or_exit, windowing_or_exit

__all__ = ["export"]


def export(
    onnx: Annotated[Path, typer.Option("--onnx", help="ONNX file to write.")],
    weights: WeightsOption = None,
    window: Annotated[Optional[int], typer.Option(help="Window size (default: the weights' own).")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing file.")] = False,
) -> None:
    """Export the network (inference form, one window size, dynamic batch) to ONNX, checked against torch."""
    from hsrecon.export import ExportError, check_exportable, export_checked

    loaded = weights_or_exit(weights)
    if getattr(loaded, "per_pixel", False):
        raise fail(f"{loaded.name}: a per-pixel map has no network to export; its matrices are the file's tensors "
                   "(safetensors), applied as docs/formats.md says", ExitCode.USAGE)  # fmt: skip
    try:
        check_exportable(loaded)
    except ValueError as error:
        raise fail(str(error), ExitCode.USAGE) from None
    size = windowing_or_exit(loaded, window, None, None, None)[0].window
    if onnx.exists() and not overwrite:
        raise fail(f"{onnx}: exists (use --overwrite to replace it)", ExitCode.OUTPUT)
    try:
        result = export_checked(loaded, onnx, window=size)
    except ModuleNotFoundError as error:
        raise fail(
            f"ONNX export needs the 'onnx' package ({error.name} missing): pip install 'hsrecon[onnx]'", ExitCode.USAGE
        ) from None
    except OSError as error:
        raise fail(f"{onnx}: cannot write ({error.strerror or error})", ExitCode.OUTPUT) from None
    except ExportError as error:
        raise fail(str(error), ExitCode.FAILED) from None
    if result.deviation is None:
        checked = "not run: install onnxruntime to check it"
    else:
        checked = f"onnxruntime output within {result.deviation:.1e} (relative) of torch"
    summary = f"wrote {onnx}: input rgb N×3×{size}×{size}, output cube N×31×{size}×{size}; check: {checked}"
    stdout.print(safe(summary), highlight=False)
