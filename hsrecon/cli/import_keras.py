"""``hsrecon import-keras``: a Keras HDF5 LWRDAN (read with h5py alone) → hsrecon safetensors weights."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from hsrecon.cli._common import ExitCode, fail, safe, stdout

__all__ = ["import_keras"]


def import_keras(
    source: Annotated[Path, typer.Argument(help="Keras HDF5 model file (the authors' format).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Safetensors file to write.")],
    input_space: Annotated[
        Optional[str], typer.Option(help="Input space to record, if the source is not a known file.")
    ] = None,
    window_size: Annotated[Optional[int], typer.Option(help="Training window size to record.")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing output file.")] = False,
) -> None:
    """Convert a Keras HDF5 LWRDAN (read with h5py alone) to hsrecon safetensors weights."""
    from hsrecon.keras_import import KerasImportError, convert_keras_file
    from hsrecon.weights import load_weights, sha256_of

    if not source.is_file():
        raise fail(f"{source}: no such file", ExitCode.INPUT)
    if output.exists() and not overwrite:
        raise fail(f"{output}: exists (use --overwrite to replace it)", ExitCode.OUTPUT)
    if not output.parent.is_dir():
        raise fail(f"{output.parent}: no such directory", ExitCode.OUTPUT)
    try:
        written = convert_keras_file(source, output, input_space=input_space, window_size=window_size)
    except KerasImportError as error:
        raise fail(f"{source}: {error}" if str(source) not in str(error) else str(error), ExitCode.INPUT) from None
    except OSError as error:
        raise fail(f"{output}: cannot write ({error.strerror or error})", ExitCode.OUTPUT) from None
    meta = load_weights(written).meta  # read back through the checked loader: what users will load
    stdout.print(
        safe(
            f"wrote {written} ({meta.num_params:,} values, input space {meta.input_space}, "
            f"window {meta.window_size}, sha256 {sha256_of(written)})"
        ),
        soft_wrap=True,
        highlight=False,
    )
