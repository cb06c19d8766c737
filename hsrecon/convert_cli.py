"""``hsrecon convert``'s presentation: option checks, rich progress, the summary table, the exit code.

All the work is library calls (:mod:`hsrecon.batch`, :mod:`hsrecon.pipeline`); this module only talks to
the user. Progress and messages go to stderr, so stdout stays clean.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn
from rich.table import Table

from hsrecon.batch import BatchItem, OutputFatalError, collect_inputs, pending_formats, plan_outputs, run_batch, shard
from hsrecon.cli import ExitCode, check_window_options, fail, out_of_memory_line, stderr
from hsrecon.inputs import canonical_space, network_space
from hsrecon.io import FORMATS
from hsrecon.io.rgb import RGBImage
from hsrecon.pipeline import ConvertResult, DeviceOutOfMemoryError, TorchPredictor, convert_file
from hsrecon.weights import Weights

__all__ = ["run_convert"]


def _rank_device(device: torch.device) -> torch.device:
    """Under torchrun, each local rank takes its own GPU (``cuda`` → ``cuda:LOCAL_RANK``)."""
    local_rank = os.environ.get("LOCAL_RANK")
    if device.type == "cuda" and device.index is None and local_rank is not None:
        return torch.device("cuda", int(local_rank))
    return device


def _check_options(options: dict, weights: Weights) -> None:
    """Reject impossible option values with one line each, before any work starts."""
    for fmt in options["formats"]:
        if fmt not in FORMATS:
            raise fail(f"--format {fmt!r}: choose from {', '.join(FORMATS)}", ExitCode.USAGE)
    choices = {
        "dtype": ("float32", "float16"),
        "interleave": ("bsq", "bil", "bip"),
        "precision": ("fp32", "fp16", "bf16"),
    }
    for key, allowed in choices.items():
        if options[key] not in allowed:
            raise fail(f"--{key} {options[key]!r}: choose from {', '.join(allowed)}", ExitCode.USAGE)
    if options["dtype"] == "float16" and "envi" in options["formats"]:
        raise fail("--dtype float16: ENVI has no float16 type; use it with --format h5 or mat", ExitCode.USAGE)
    window, stride = check_window_options(options, weights)
    try:
        if options["input_space"] is not None:
            options["input_space"] = canonical_space(options["input_space"])
    except ValueError as error:
        raise fail(f"--input-space: {error}", ExitCode.USAGE) from None
    options["window"], options["stride"] = window, stride


def _space_for(weights: Weights, requested: str | None) -> str:
    """The transform to apply, given what the files hold and what the weights expect (said once)."""
    space, warning = network_space(weights.meta.input_space, requested)
    if warning:
        stderr.print(f"hsrecon: warning: {weights.path.name}: {warning}", highlight=False)
    return space


def _summary_table(results: list[ConvertResult], skipped: int, failed: list, seconds: float) -> Table:
    table = Table(title="hsrecon convert", title_justify="left")
    for column in ("input", "size", "MP", "seconds", "MP/s", "exposure", "out of range"):
        table.add_column(column, justify="left" if column == "input" else "right", overflow="fold")
    for result in results:
        table.add_row(
            str(result.source.name),
            f"{result.width}×{result.height}",
            f"{result.megapixels:.2f}",
            f"{result.seconds:.1f}",
            f"{result.megapixels / max(result.seconds, 1e-9):.2f}",
            f"{result.exposure:.3g}",
            f"{100 * result.out_of_range:.2f}%",
        )
    total_mp = sum(r.megapixels for r in results)
    table.caption = (
        f"{len(results)} converted, {skipped} skipped, {len(failed)} failed; "
        f"{total_mp:.2f} MP in {seconds:.1f} s ({total_mp / max(seconds, 1e-9):.2f} MP/s)"
    )
    return table


def run_convert(inputs: list[Path], output: Path, weights: Weights, device: torch.device, options: dict) -> int:
    """Run a whole ``hsrecon convert``; return its exit code."""
    device = _rank_device(device)
    model = weights.build()
    _check_options(options, weights)
    space = _space_for(weights, options["input_space"])
    options["weights_name"] = f"{weights.path.name} ({weights.meta.weights_version})"
    found, problems = collect_inputs(inputs, recursive=options["recursive"], pattern=options["glob"])
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise fail(f"{output}: cannot create the output folder ({error.strerror or error})", ExitCode.OUTPUT) from None
    items = shard(plan_outputs(found, output, problems), *options["shard"])
    for problem in problems:
        stderr.print(f"hsrecon: error: {problem}", highlight=False)
    predict = TorchPredictor(
        model, device=device, precision=options["precision"], tta=options["tta"], window=options["window"]
    )
    quiet = options["quiet"]
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
        console=stderr,
        disable=quiet,
        transient=False,
    )
    started = time.perf_counter()
    with progress:
        files_task = progress.add_task("files", total=len(items), rate="")
        windows_task = progress.add_task("windows", total=None, rate="")
        summary = _run(items, options, space, predict, progress, files_task, windows_task, started)
    seconds = time.perf_counter() - started
    if isinstance(summary, ExitCode):
        return summary
    if not quiet:
        stderr.print(_summary_table(summary.converted, len(summary.skipped), summary.failed, seconds))
    if problems or summary.failed:
        return ExitCode.FAILED
    return ExitCode.OK


def _run(items, options, space, predict, progress, files_task: TaskID, windows_task: TaskID, started: float):
    done_mp = 0.0

    def convert(item: BatchItem, image: RGBImage) -> ConvertResult:
        return convert_file(
            item.source,
            item.stem,
            predict=predict,
            formats=pending_formats(item.stem, options["formats"], options["overwrite"]),
            input_space=space,
            exposure=options["exposure"],
            window=options["window"],
            stride=options["stride"],
            batch_size=options["batch_size"],
            dtype=options["dtype"],
            interleave=options["interleave"],
            overwrite=options["overwrite"],
            preview=options["preview"],
            image=image,
            attrs={"weights": options["weights_name"]},
            on_windows=lambda n: progress.advance(windows_task, n),
        )

    def on_start(item: BatchItem, image: RGBImage) -> None:
        from hsrecon.windows import axis_starts

        h, w = image.pixels.shape[:2]
        window, stride = options["window"], options["stride"]
        count = len(axis_starts(max(h, window), window, stride)) * len(axis_starts(max(w, window), window, stride))
        progress.reset(windows_task, total=count, description=f"windows ({item.source.name})")
        for note in image.notes:
            progress.console.print(f"hsrecon: note: {item.source}: {note}", highlight=False)

    def on_done(item: BatchItem, result: ConvertResult) -> None:
        nonlocal done_mp
        done_mp += result.megapixels
        rate = f"{done_mp / max(time.perf_counter() - started, 1e-9):.2f} MP/s"
        progress.update(files_task, advance=1, rate=rate)

    def on_skip(item: BatchItem) -> None:
        progress.advance(files_task)

    def on_fail(item: BatchItem, message: str) -> None:
        _print_error(progress, message)
        progress.advance(files_task)

    predict.on_note = lambda note: progress.console.print(f"hsrecon: note: {note}", highlight=False)
    try:
        return run_batch(
            items,
            convert,
            formats=options["formats"],
            overwrite=options["overwrite"],
            preview=options["preview"],
            fatal=(DeviceOutOfMemoryError,),
            on_start=on_start,
            on_done=on_done,
            on_skip=on_skip,
            on_fail=on_fail,
        )
    except OutputFatalError as error:
        _print_error(progress, error.strerror)
        return ExitCode.OUTPUT
    except DeviceOutOfMemoryError as error:
        _print_error(progress, out_of_memory_line(error, options["batch_size"]))
        return ExitCode.DEVICE


def _print_error(progress: Progress, message: str) -> None:
    """One ``hsrecon: error:`` line on stderr, above the progress bars."""
    progress.console.print(f"[bold red]hsrecon: error:[/] {message}", highlight=False, soft_wrap=True)
