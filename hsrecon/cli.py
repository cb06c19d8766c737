"""The ``hsrecon`` command: a thin Typer layer over the library.

Each command parses options, calls the library, and renders the result with rich. Errors the user can
fix become one line on stderr and a documented exit code (``docs/cli.md``), never a traceback. torch is
imported inside the commands, so ``hsrecon --help`` and ``--version`` answer at once.
"""

from __future__ import annotations

import json
import sys
from enum import IntEnum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from hsrecon import __version__

app = typer.Typer(
    name="hsrecon",
    help="RGB photos → 31-band hyperspectral cubes (400–700 nm) with a small neural network.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
stdout = Console()
stderr = Console(stderr=True)


class ExitCode(IntEnum):
    """Exit codes, documented in docs/cli.md."""

    OK = 0
    FAILED = 1  # some inputs failed; the others were processed
    USAGE = 2  # bad command line (Typer's own code)
    WEIGHTS = 3  # weights file missing, damaged, or of another model
    INPUT = 4  # unreadable or unsupported input
    OUTPUT = 5  # output cannot be written
    DEVICE = 6  # requested device unavailable
    INTERRUPTED = 130  # Ctrl-C


def fail(message: str, code: ExitCode) -> typer.Exit:
    """Print ``hsrecon: error: message`` on stderr and return the Exit to raise."""
    stderr.print(f"[bold red]hsrecon: error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code=int(code))


def _version_callback(value: bool) -> None:
    if value:
        stdout.print(f"hsrecon {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version_callback, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """RGB photos → 31-band hyperspectral cubes (400–700 nm)."""


WeightsOption = Annotated[
    Optional[str],
    typer.Option("--weights", "-w", help="Bundled weights name or a .safetensors path [default: ntire2020-clean]."),
]
DeviceOption = Annotated[str, typer.Option("--device", help="auto, cpu, cuda, cuda:N or mps.")]


def _load_weights_or_exit(spec: Optional[str]):
    from hsrecon.weights import WeightsError, load_weights

    try:
        return load_weights(spec)
    except WeightsError as error:
        raise fail(str(error), ExitCode.WEIGHTS) from None


def _device_or_exit(requested: str):
    from hsrecon.devices import DeviceError, pick_device

    try:
        return pick_device(requested)
    except DeviceError as error:
        raise fail(str(error), ExitCode.DEVICE) from None


@app.command()
def info(
    weights: WeightsOption = None,
    device: DeviceOption = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Show the model, its weights and their provenance, and the device that would be used."""
    from hsrecon.model import count_parameters, count_trainable, flops_per_pixel

    loaded = _load_weights_or_exit(weights)
    model = loaded.build()
    meta = loaded.meta
    facts = {
        "hsrecon_version": __version__,
        "model": "LWRDAN",
        "config": meta.config.to_dict(),
        "parameters": count_parameters(model),
        "trainable_parameters": count_trainable(model),
        "gflop_per_megapixel": round(flops_per_pixel(model, meta.window_size) * 1e6 / 1e9, 2),
        "window_size": meta.window_size,
        "size_multiple": meta.config.size_multiple,
        "input_space": meta.input_space,
        "bands": len(meta.wavelengths_nm),
        "wavelengths_nm": [meta.wavelengths_nm[0], meta.wavelengths_nm[-1]],
        "weights_path": str(loaded.path),
        "weights_version": meta.weights_version,
        "provenance": meta.provenance,
        "training": meta.training,
        "device": str(_device_or_exit(device)),
    }
    if as_json:
        stdout.print_json(json.dumps(facts))
        return
    table = Table(title=f"hsrecon {__version__}", show_header=False, title_justify="left")
    table.add_column(style="bold cyan")
    table.add_column(overflow="fold")
    for key, value in facts.items():
        if key == "parameters":
            value = f"{value:,} (BatchNorm running statistics included)"
        elif key == "trainable_parameters":
            value = f"{value:,}"
        elif key == "wavelengths_nm":
            value = f"{value[0]:g}–{value[1]:g} nm, 10 nm steps"
        elif key == "config":
            value = ", ".join(f"{k}={v}" for k, v in value.items())
        elif isinstance(value, dict):
            value = "\n".join(f"{k}: {v}" for k, v in value.items())
        table.add_row(key.replace("_", " "), str(value))
    stdout.print(table)


@app.command("import-keras")
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
    from hsrecon.weights import load_weights, sha256_of

    meta = load_weights(written).meta
    stdout.print(
        f"wrote {written} ({meta.num_params:,} values, input space {meta.input_space}, "
        f"window {meta.window_size}, sha256 {sha256_of(written)})",
        soft_wrap=True,
    )


def main() -> None:
    """Console-script entry point: run the app, turning Ctrl-C into one line and exit code 130."""
    try:
        app()
    except KeyboardInterrupt:
        stderr.print("hsrecon: interrupted")
        sys.exit(int(ExitCode.INTERRUPTED))
