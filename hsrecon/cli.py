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
stdout = Console(soft_wrap=True)  # one message, one line: never folded to the terminal width
stderr = Console(stderr=True, soft_wrap=True)


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


def check_window_options(options: dict, weights) -> tuple[int, int]:
    """``--window``, ``--stride`` and ``--batch-size`` of convert and eval: checked, defaults filled in."""
    from hsrecon.pipeline import default_stride

    multiple = weights.meta.config.size_multiple
    window = options["window"] or weights.meta.window_size
    if window % multiple or window < multiple:
        raise fail(f"--window {window}: must be a positive multiple of {multiple}", ExitCode.USAGE)
    stride = options["stride"] or default_stride(window)
    if not 0 < stride <= window:
        raise fail(f"--stride {stride}: must be between 1 and the window ({window})", ExitCode.USAGE)
    if options["batch_size"] < 1:
        raise fail("--batch-size must be at least 1", ExitCode.USAGE)
    return window, stride


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
    typer.Option("--weights", "-w", help="Bundled weights name or a .safetensors path (default: ntire2020-clean)."),
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


def out_of_memory_line(error: Exception, batch_size: int) -> str:
    """The one-line error for a device out of memory at one window per pass (convert and eval alike)."""
    # The window itself does not fit (or the device is shared): say what the user can change.
    hint = "free memory on the device, use a smaller --window, or --device cpu"
    return f"{error} (--batch-size {batch_size} was halved down to 1); {hint}"


@app.command()
def info(
    weights: WeightsOption = None,
    device: DeviceOption = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Show the model, its weights and their provenance, and the device that would be used."""
    from hsrecon.model import count_parameters, count_trainable, flops_per_pixel
    from hsrecon.weights import BUNDLED

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
        "bundled_weights": {name: entry.summary for name, entry in BUNDLED.items()},
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


@app.command()
def export(
    onnx: Annotated[Path, typer.Option("--onnx", help="ONNX file to write.")],
    weights: WeightsOption = None,
    window: Annotated[Optional[int], typer.Option(help="Window size (default: the weights' training size).")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing file.")] = False,
) -> None:
    """Export the network (inference form, one window size, dynamic batch) to ONNX, checked against torch."""
    from hsrecon.export import ExportError, check_onnx, export_onnx

    loaded = _load_weights_or_exit(weights)
    size = window or loaded.meta.window_size
    if size % loaded.meta.config.size_multiple:
        raise fail(f"--window {size}: must be a multiple of {loaded.meta.config.size_multiple}", ExitCode.USAGE)
    if onnx.exists() and not overwrite:
        raise fail(f"{onnx}: exists (use --overwrite to replace it)", ExitCode.OUTPUT)
    model = loaded.build()
    try:
        export_onnx(model, onnx, window=size)
    except ModuleNotFoundError as error:
        raise fail(
            f"ONNX export needs the 'onnx' package ({error.name} missing): pip install 'hsrecon[onnx]'", ExitCode.USAGE
        ) from None
    except OSError as error:
        raise fail(f"{onnx}: cannot write ({error.strerror or error})", ExitCode.OUTPUT) from None
    try:
        deviation = check_onnx(model, onnx, window=size)
        checked = f"onnxruntime output within {deviation:.1e} (relative) of torch"
    except ModuleNotFoundError:
        checked = "not run: install onnxruntime to check it"
    except ExportError as error:
        onnx.unlink(missing_ok=True)
        raise fail(str(error), ExitCode.FAILED) from None
    stdout.print(f"wrote {onnx}: input rgb N×3×{size}×{size}, output cube N×31×{size}×{size}; check: {checked}")


FormatChoice = Annotated[
    list[str],
    typer.Option("--format", "-f", help="Output format: envi, mat or h5; repeat for several."),
]


def _parse_shard(text: str | None) -> tuple[int, int]:
    """``K/N`` (1-based) from --shard, else torchrun's RANK/WORLD_SIZE, else the whole batch."""
    import os

    if text is None:
        return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise fail(f"--shard {text!r}: expected K/N, e.g. 2/4", ExitCode.USAGE) from None
    if not 1 <= index <= count:
        raise fail(f"--shard {text!r}: K must be between 1 and N", ExitCode.USAGE)
    return index - 1, count


def _parse_exposure(text: str) -> float | None:
    if text == "auto":
        return None
    try:
        value = float(text)
    except ValueError:
        raise fail(f"--exposure {text!r}: expected 'auto' or a positive number", ExitCode.USAGE) from None
    if not value > 0:
        raise fail(f"--exposure {text!r}: must be positive", ExitCode.USAGE)
    return value


@app.command()
def convert(
    inputs: Annotated[list[Path], typer.Argument(help="Image files and/or folders of images.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output folder (created if missing).")],
    formats: FormatChoice = ["envi"],  # noqa: B006 - Typer needs a list default
    recursive: Annotated[bool, typer.Option("--recursive", "-r", help="Descend into sub-folders.")] = False,
    glob: Annotated[Optional[str], typer.Option(help="Only files matching this pattern, e.g. '*.png'.")] = None,
    input_space: Annotated[
        Optional[str],
        typer.Option(help="What the files hold: ntire2020-clean, srgb, linear (default: the weights' own space)."),
    ] = None,
    exposure: Annotated[str, typer.Option(help="'auto' or a scale factor applied in the input space.")] = "auto",
    weights: WeightsOption = None,
    device: DeviceOption = "auto",
    precision: Annotated[str, typer.Option(help="fp32, or fp16/bf16 on a GPU.")] = "fp32",
    window: Annotated[
        Optional[int], typer.Option(help="Window size (default: the weights' training size, 64).")
    ] = None,
    stride: Annotated[
        Optional[int], typer.Option(help="Step between windows (default: half the window); = window: no overlap.")
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Windows per forward pass; lower it if memory runs out.")] = 16,
    dtype: Annotated[str, typer.Option(help="float32, or float16 (.h5 and .mat only).")] = "float32",
    interleave: Annotated[str, typer.Option(help="ENVI interleave: bsq, bil or bip.")] = "bsq",
    overwrite: Annotated[bool, typer.Option(help="Redo outputs that already exist.")] = False,
    preview: Annotated[bool, typer.Option(help="Also write NAME.preview.png, the cube rendered to sRGB.")] = False,
    tta: Annotated[bool, typer.Option(help="Average the 8 flips/rotations of each window (8x slower).")] = False,
    shard: Annotated[Optional[str], typer.Option(help="Do only share K of N of the files, e.g. 1/4.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or summary table.")] = False,
) -> None:
    """Convert RGB images to 31-band cubes (400–700 nm) in seamless overlapping windows."""
    from hsrecon.convert_cli import run_convert

    options = {
        "formats": formats,
        "recursive": recursive,
        "glob": glob,
        "input_space": input_space,
        "exposure": _parse_exposure(exposure),
        "precision": precision,
        "window": window,
        "stride": stride,
        "batch_size": batch_size,
        "dtype": dtype,
        "interleave": interleave,
        "overwrite": overwrite,
        "preview": preview,
        "tta": tta,
        "shard": _parse_shard(shard),
        "quiet": quiet,
    }
    try:
        code = run_convert(inputs, output, _load_weights_or_exit(weights), _device_or_exit(device), options)
    except KeyboardInterrupt:
        message = "interrupted: finished outputs are kept, the one in progress was removed; rerun to resume"
        raise fail(message, ExitCode.INTERRUPTED) from None
    raise typer.Exit(code=int(code))


@app.command("eval")
def evaluate(
    data: Annotated[
        Optional[Path], typer.Option(help="An NTIRE 2020 or 2022 (ARAD-1K) dataset folder to reconstruct and score.")
    ] = None,
    split: Annotated[str, typer.Option(help="valid or train.")] = "valid",
    track: Annotated[str, typer.Option(help="NTIRE 2020 RGB set: clean or realworld.")] = "clean",
    pred: Annotated[Optional[Path], typer.Option(help="A folder of cube files (.mat/.h5/.hdr) to score.")] = None,
    gt: Annotated[Optional[Path], typer.Option(help="The folder of ground-truth cubes for --pred.")] = None,
    weights: WeightsOption = None,
    device: DeviceOption = "auto",
    tta: Annotated[bool, typer.Option(help="Average the 8 flips/rotations of each window (8x slower).")] = False,
    crop: Annotated[
        Optional[int], typer.Option(help="Pixels left out at every border (default 0: whole images, NTIRE 2020).")
    ] = None,
    ntire2022: Annotated[bool, typer.Option("--ntire2022", help="NTIRE 2022 scoring: --crop 128.")] = False,
    baseline: Annotated[
        Optional[list[str]],
        typer.Option(
            help="Also score a least-squares 3→31 map fitted on the train split (repeatable): 'linear' on the "
            "network's input, 'linear-stored' on the files' values, 'linear-decoded' on them in clean space."
        ),
    ] = None,
    json_report: Annotated[Optional[Path], typer.Option("--json", help="Write the report as JSON.")] = None,
    csv_report: Annotated[Optional[Path], typer.Option("--csv", help="Write the scores as CSV.")] = None,
    window: Annotated[
        Optional[int], typer.Option(help="Window size (default: the weights' training size, 64).")
    ] = None,
    stride: Annotated[Optional[int], typer.Option(help="Step between windows (default: half the window).")] = None,
    batch_size: Annotated[int, typer.Option(help="Windows per forward pass.")] = 16,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Score reconstructions: MRAE, RMSE, PSNR, SAM and SSIM per image and overall (docs/metrics.md)."""
    from hsrecon.eval_cli import check_mode, run_eval

    options = {
        "data": data,
        "split": split,
        "track": track,
        "pred": pred,
        "gt": gt,
        "weights": weights,
        "tta": tta,
        "crop": crop,
        "ntire2022": ntire2022,
        "baseline": baseline,
        "json": json_report,
        "csv": csv_report,
        "window": window,
        "stride": stride,
        "batch_size": batch_size,
        "quiet": quiet,
    }
    mode = check_mode(data, pred, gt, options)
    loaded = _load_weights_or_exit(weights) if mode == "data" else None
    target = _device_or_exit(device) if mode == "data" else None
    try:
        code = run_eval(mode, options, loaded, target)
    except KeyboardInterrupt:
        raise fail("interrupted: no report written", ExitCode.INTERRUPTED) from None
    raise typer.Exit(code=int(code))


@app.command()
def synth(
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder to write (NTIRE 2020 layout).")],
    scenes: Annotated[int, typer.Option(help="Number of scenes (the last 10% go to validation).")] = 100,
    size: Annotated[int, typer.Option(help="Scene height and width in pixels (a multiple of 4).")] = 128,
    seed: Annotated[int, typer.Option(help="Same seed, same dataset, byte for byte.")] = 0,
    valid_fraction: Annotated[float, typer.Option(help="Share of scenes for validation.")] = 0.1,
    camera: Annotated[
        Optional[str], typer.Option(help="Camera for the RealWorld track (default: the model's default camera).")
    ] = None,
    no_camera: Annotated[bool, typer.Option("--no-camera", help="Only the clean rendering.")] = False,
    only: Annotated[
        Optional[str], typer.Option(help="Write only this split (train or valid), the same scenes as in the full set.")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Make a synthetic training set from measured reflectances and illuminants (docs/data.md)."""
    from rich.progress import Progress

    from hsrecon.data.camera import DEFAULT_CAMERA
    from hsrecon.data.synth import make_synthetic_dataset

    if size % 4 or size < 4:
        raise fail(f"--size {size}: must be a positive multiple of 4", ExitCode.USAGE)
    with Progress(console=stderr, disable=quiet) as progress:
        task = progress.add_task("scenes", total=scenes)
        try:
            summary = make_synthetic_dataset(
                output, scenes=scenes, size=(size, size), seed=seed, valid_fraction=valid_fraction,
                camera=None if no_camera else (camera or DEFAULT_CAMERA), only=only,
                progress=lambda done, total: progress.update(task, completed=done),
            )  # fmt: skip
        except ValueError as error:
            raise fail(str(error), ExitCode.USAGE) from None
        except OSError as error:
            raise fail(f"{output}: cannot write ({error.strerror or error})", ExitCode.OUTPUT) from None
    stdout.print(f"wrote {len(summary['files'])} scenes to {output} (seed {seed}); see {output / 'synth.json'}")


@app.command()
def train(
    data: Annotated[Path, typer.Option("--data", help="Dataset folder in an NTIRE 2020 or 2022 layout.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Run folder: checkpoints and log.")] = Path(
        "runs/train"
    ),
    track: Annotated[str, typer.Option(help="clean or realworld (which RGB images to learn from).")] = "clean",
    steps: Annotated[
        int, typer.Option("--max-steps", help="Training steps (the learning rate decays over them).")
    ] = 100_000,
    max_minutes: Annotated[Optional[float], typer.Option(help="Stop after this many minutes.")] = None,
    batch_size: Annotated[int, typer.Option(help="Windows per step (per process).")] = 8,
    lr_start: Annotated[float, typer.Option(help="Initial Adam learning rate.")] = 1e-3,
    lr_end: Annotated[float, typer.Option(help="Final learning rate (exponential decay).")] = 1e-5,
    ssim_weight: Annotated[float, typer.Option(help="Weight of the (1 − SSIM) term.")] = 1.0,
    mrae_weight: Annotated[float, typer.Option(help="Weight of an optional MRAE term.")] = 0.0,
    seed: Annotated[int, typer.Option(help="Seed: same seed, same run.")] = 0,
    init: Annotated[
        Optional[str], typer.Option(help="Start from these weights (fine-tuning), e.g. ntire2020-clean.")
    ] = None,
    resume: Annotated[bool, typer.Option(help="Continue from OUTPUT/last, bit for bit.")] = False,
    device: DeviceOption = "auto",
    amp: Annotated[bool, typer.Option(help="Mixed precision (CUDA only).")] = False,
    workers: Annotated[int, typer.Option(help="Data loading processes.")] = 0,
    validate_every: Annotated[int, typer.Option(help="Steps between validations and checkpoints.")] = 1000,
    valid_images: Annotated[Optional[int], typer.Option(help="Use only the first N validation images.")] = None,
    ablate: Annotated[
        Optional[list[str]],
        typer.Option(help="Paper's ablations, from scratch: coordconv (no coordinate channels), cbam (no attention)."),
    ] = None,
) -> None:
    """Train LWRDAN with the paper's recipe (L2 + 1 − SSIM, Adam 1e-3 → 1e-5, 64×64 windows, batch 8)."""
    from hsrecon.train import TrainConfig
    from hsrecon.train_cli import run_train

    config = TrainConfig(
        data=data, output=output, track=track, steps=steps, max_minutes=max_minutes, batch_size=batch_size,
        lr_start=lr_start, lr_end=lr_end, ssim_weight=ssim_weight, mrae_weight=mrae_weight, seed=seed, init=init,
        resume=resume, device=str(_device_or_exit(device)), amp=amp, workers=workers,
        validate_every=validate_every, checkpoint_every=validate_every, valid_images=valid_images,
        model=_ablated_model_config(ablate or [], init),
    )  # fmt: skip
    raise typer.Exit(code=int(run_train(config)))


ABLATIONS = {"coordconv": "coord_conv", "cbam": "attention"}


def _ablated_model_config(ablate: list[str], init: Optional[str]) -> dict:
    """``--ablate`` names → the model-config switches they turn off (checked here, before any work)."""
    unknown = sorted(set(ablate) - set(ABLATIONS))
    if unknown:
        raise fail(f"unknown --ablate {', '.join(unknown)}: choose from {', '.join(ABLATIONS)}", ExitCode.USAGE)
    if ablate and init:
        raise fail("--ablate builds a different network; it cannot start from --init weights", ExitCode.USAGE)
    return {ABLATIONS[name]: False for name in ablate}


def main() -> None:
    """Console-script entry point: run the app, turning Ctrl-C into one line and exit code 130."""
    try:
        app()
    except KeyboardInterrupt:
        stderr.print("hsrecon: interrupted")
        sys.exit(int(ExitCode.INTERRUPTED))
