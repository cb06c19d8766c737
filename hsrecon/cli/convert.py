"""``hsrecon convert``: options parsed, then :func:`hsrecon.batch.convert_batch`, shown with rich (and, with
``--report``, written up as HTML by :mod:`hsrecon.report`).

Progress and messages go to stderr, so stdout stays clean.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NamedTuple, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from hsrecon.cli._common import (
    INTERRUPTS,
    BatchSizeOption,
    CubeDtype,
    CubeFormat,
    DeviceOption,
    ExitCode,
    Interleave,
    PadOption,
    PlausibleOption,
    Precision,
    StrideOption,
    WeightsOption,
    WindowOption,
    device_or_exit,
    exposure,
    fail,
    input_space,
    interrupted,
    one_of,
    out_of_memory_line,
    plausible_or_exit,
    safe,
    say,
    stderr,
    weights_or_exit,
    windowing_or_exit,
)

if TYPE_CHECKING:
    from hsrecon.batch import BatchItem, BatchSummary, ConvertSettings
    from hsrecon.pipeline import ConvertResult

__all__ = ["convert"]


class Shard(NamedTuple):
    """``--shard K/N``: the K-th (from 0 here) of N interleaved shares of the files."""

    index: int
    count: int


def _shard(text: str | Shard) -> Shard:
    if isinstance(text, Shard):
        return text
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise fail(f"--shard {text!r}: expected K/N, e.g. 2/4", ExitCode.USAGE) from None
    if not 1 <= index <= count:
        raise fail(f"--shard {text!r}: K must be between 1 and N", ExitCode.USAGE)
    return Shard(index - 1, count)


def _share_or_exit(given: Shard | None) -> tuple[Shard, str]:
    """The share of the files to do, and how to say it: ``--shard``, else ``RANK``/``WORLD_SIZE`` (checked:
    exit code 2 for values that cannot be a share), else all. A share that comes from the environment
    without torchrun having set it is said before the work, since it silently halves a batch."""
    from hsrecon.batch import torchrun_shard, under_torchrun

    if given is not None:
        return given, f"share {given.index + 1} of {given.count} (--shard)"
    try:
        index, count = torchrun_shard()
    except ValueError as error:
        raise fail(str(error), ExitCode.USAGE) from None
    share = Shard(index, count)
    if count == 1:
        return share, ""
    if under_torchrun():
        return share, f"share {index + 1} of {count} (torchrun rank {index})"
    say(
        "note",
        f"RANK={index} and WORLD_SIZE={count} are set in the environment (not by torchrun): converting only "
        f"share {index + 1} of {count} of the files; unset them to convert all",
    )
    return share, f"share {index + 1} of {count} (RANK/WORLD_SIZE in the environment)"


def convert(
    inputs: Annotated[list[Path], typer.Argument(help="Image files and/or folders of images.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output folder (created if missing).")],
    formats: Annotated[
        list[CubeFormat],
        typer.Option(
            "--format",
            "-f",
            parser=one_of(CubeFormat, "--format"),
            help="Output format: envi, mat or h5; repeat for several.",
        ),
    ] = [CubeFormat.ENVI],  # noqa: B006 - Typer needs a list default
    recursive: Annotated[bool, typer.Option("--recursive", "-r", help="Descend into sub-folders.")] = False,
    glob: Annotated[Optional[str], typer.Option(help="Only files matching this pattern, e.g. '*.png'.")] = None,
    space: Annotated[
        Optional[str],
        typer.Option(
            "--input-space",
            parser=input_space,
            help="What the files hold: ntire2020-clean, srgb, linear (default: the weights' own space).",
        ),
    ] = None,
    scale: Annotated[
        Optional[float],
        typer.Option(
            "--exposure", parser=exposure, metavar="TEXT", help="'auto' or a scale factor applied in the input space."
        ),
    ] = "auto",
    weights: WeightsOption = None,
    device: DeviceOption = "auto",
    precision: Annotated[
        Precision,
        typer.Option(
            parser=one_of(Precision, "--precision"),
            help="fp32 (the exact port); bf16 on a GPU or a CPU with native bf16 (~0.15% from fp32, faster); "
            "fp16 on a GPU.",
        ),
    ] = Precision.FP32,
    window: WindowOption = None,
    stride: StrideOption = None,
    pad: PadOption = None,
    batch_size: BatchSizeOption = None,
    dtype: Annotated[
        CubeDtype, typer.Option(parser=one_of(CubeDtype, "--dtype"), help="float32, or float16 (.h5 and .mat only).")
    ] = CubeDtype.FLOAT32,
    interleave: Annotated[
        Interleave, typer.Option(parser=one_of(Interleave, "--interleave"), help="ENVI interleave: bsq, bil or bip.")
    ] = Interleave.BSQ,
    overwrite: Annotated[bool, typer.Option(help="Redo outputs that already exist.")] = False,
    preview: Annotated[bool, typer.Option(help="Also write NAME.preview.png, the cube rendered to sRGB.")] = False,
    tta: Annotated[bool, typer.Option(help="Average the 8 flips/rotations of each window (8x slower).")] = False,
    plausible: PlausibleOption = None,
    shard: Annotated[
        Optional[Shard],
        typer.Option(parser=_shard, metavar="TEXT", help="Do only share K of N of the files, e.g. 1/4."),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or summary table.")] = False,
    html_report: Annotated[
        Optional[Path],
        typer.Option(
            "--report",
            help="Write an HTML report, one file that opens offline: each input's preview, spectra at sampled "
            "pixels, out-of-range share and timing (docs/view.md).",
        ),
    ] = None,
) -> None:
    """Convert RGB images to 31-band cubes (400–700 nm) in seamless overlapping windows."""
    from hsrecon.batch import ConvertSettings, NoInputsError, OutputFatalError, convert_batch
    from hsrecon.inference import DeviceOutOfMemoryError

    loaded, target = weights_or_exit(weights), device_or_exit(device)
    if precision is not Precision.FP32 and target.type == "cpu":
        say("note", _cpu_precision_note(precision))
    if dtype is CubeDtype.FLOAT16 and CubeFormat.ENVI in formats:
        raise fail("--dtype float16: ENVI has no float16 type; use it with --format h5 or mat", ExitCode.USAGE)
    windowing, batch_size = windowing_or_exit(loaded, window, stride, pad, batch_size)
    plausible = plausible_or_exit(loaded, plausible, space)
    _check_report(html_report)
    share, share_text = _share_or_exit(shard)
    settings = ConvertSettings(
        formats=tuple(dict.fromkeys(fmt.value for fmt in formats)), input_space=space, exposure=scale,
        window=windowing.window, stride=windowing.stride, pad=pad, batch_size=batch_size,  # pad: None, fitted per image
        precision=precision.value, tta=tta, dtype=dtype.value, interleave=interleave.value, overwrite=overwrite,
        preview=preview, plausible=plausible,
    )  # fmt: skip
    shown = ConvertProgress(quiet)
    try:
        summary = convert_batch(
            inputs, output, weights=loaded, device=target, settings=settings, recursive=recursive, pattern=glob,
            shard_of=share, events=shown,
        )  # fmt: skip
    except INTERRUPTS as error:
        shown.close()
        kept = "finished outputs are kept, the one in progress was removed; rerun to resume"
        raise interrupted(error, kept) from None
    except OutputFatalError as error:
        raise typer.Exit(code=int(shown.stop_with(error.strerror, ExitCode.OUTPUT))) from None
    except NoInputsError as error:
        raise fail(str(error), ExitCode.INPUT) from None
    except DeviceOutOfMemoryError as error:
        raise typer.Exit(code=int(shown.stop_with(out_of_memory_line(error, batch_size), ExitCode.DEVICE))) from None
    shown.close()
    if not quiet:
        stderr.print(_summary_table(summary, shown.seconds, share_text))
    if html_report is not None:
        facts = {
            "inputs": [str(p) for p in inputs],
            "output": str(output),
            "weights": loaded.name,
            "weights_version": loaded.meta.weights_version,
            "device": str(target),
            "seconds": round(shown.seconds, 2),
        }
        _write_report(html_report, summary, settings, facts)
    raise typer.Exit(code=int(ExitCode.FAILED if summary.problems or summary.failed else ExitCode.OK))


def _cpu_precision_note(precision: Precision) -> str:
    """What a precision other than fp32 means on the CPU, said before any work (docs/benchmarks.md)."""
    from hsrecon.inference import has_native_bfloat16

    said = f"--precision {precision.value} on the CPU"
    if precision is Precision.BF16 and has_native_bfloat16():
        return f"{said}: inner convolutions in bf16 (native on this CPU), first and last in float32; ~0.15% from fp32"
    if precision is Precision.BF16:
        return f"{said}: this CPU has no native bf16 (AVX512-BF16 or AMX), so it is emulated, slower than fp32"
    return f"{said}: the network runs in fp16 under CPU autocast, less accurate than fp32 and seldom faster"


def _check_report(path: Path | None) -> None:
    """Refuse an unwritable report location before any work is done."""
    if path is not None and not path.parent.is_dir():
        raise fail(f"{path}: no such directory for the --report file", ExitCode.OUTPUT)
    if path is not None and path.is_dir():
        raise fail(f"{path}: is a directory (--report takes a file name)", ExitCode.OUTPUT)


def _write_report(path: Path, summary: BatchSummary, settings: ConvertSettings, facts: dict) -> None:
    """The batch's HTML report: every converted or already-converted input read back from its cube."""
    from dataclasses import asdict

    from hsrecon import __version__
    from hsrecon.pipeline import OUT_OF_RANGE
    from hsrecon.report import convert_entries, write_convert_report

    entries = convert_entries(summary.converted, summary.skipped, settings.formats)
    failures = [(item.source.name, message) for item, message in summary.failed]
    failures += [(line.split(": ", 1)[0], line) for line in summary.problems]
    conventions = {
        "values": "the network's reconstruction in its own units (docs/input-spaces.md says what they mean)",
        "out_of_range": f"share of cube values outside [{OUT_OF_RANGE[0]}, {OUT_OF_RANGE[1]}]",
        "seconds": "per file, from reading the image to the last output renamed into place; MP/s = MP / seconds",
        "previews": "the cube in sRGB (CIE 1931 2°, the 99.5th percentile white), every step-th pixel",
        "spectra": "three sampled pixels: the 10th, 50th and 90th percentile of brightness (the band mean)",
    }
    settings_shown = {"hsrecon_version": __version__, **facts, **asdict(settings)}
    try:
        write_convert_report(path, entries, settings=settings_shown, conventions=conventions, failures=failures)
    except OSError as error:
        raise fail(f"{path}: cannot write the report ({error.strerror or error})", ExitCode.OUTPUT) from None
    stderr.print(f"wrote {safe(path)}", highlight=False, soft_wrap=True)


class ConvertProgress:
    """:class:`hsrecon.batch.BatchEvents` on stderr: a bar over files (with MP/s) and one over the current
    file's windows. The bars start with the batch, so an error found before it (the output folder) prints
    alone. (Not a subclass, so that this module loads without torch.)
    """

    def __init__(self, quiet: bool) -> None:
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
            TimeRemainingColumn(), console=stderr, disable=quiet, transient=False,
        )  # fmt: skip
        self.live = False
        self.began = time.perf_counter()
        self.done_mp = 0.0
        self.seconds = 0.0

    def close(self) -> None:
        if self.live:
            self.progress.stop()
            self.live = False
        self.seconds = time.perf_counter() - self.began

    def stop_with(self, message: str, code: ExitCode) -> ExitCode:
        """An error that stops the batch: said above the bars, then the bars end."""
        self.error(message)
        self.close()
        return code

    def error(self, message: str) -> None:
        say("error", message, self.progress.console)

    # BatchEvents, in the order a batch tells them

    def warning(self, text: str) -> None:
        say("warning", text)

    def problem(self, text: str) -> None:
        say("error", text)

    def started(self, items: list[BatchItem]) -> None:
        self.progress.start()
        self.live = True
        self.began = time.perf_counter()
        self.files = self.progress.add_task("files", total=len(items), rate="")
        self.windows = self.progress.add_task("windows", total=None, rate="")

    def file_started(self, item: BatchItem, windows: int) -> None:
        self.progress.reset(self.windows, total=windows, description=f"windows ({safe(item.source.name)})")

    def windows_done(self, count: int) -> None:
        self.progress.advance(self.windows, count)

    def note(self, text: str) -> None:
        say("note", text, self.progress.console)

    def file_done(self, item: BatchItem, result: ConvertResult) -> None:
        self.done_mp += result.megapixels
        rate = f"{self.done_mp / max(time.perf_counter() - self.began, 1e-9):.2f} MP/s"
        self.progress.update(self.files, advance=1, rate=rate)

    def file_skipped(self, item: BatchItem) -> None:
        self.progress.advance(self.files)

    def file_failed(self, item: BatchItem, message: str) -> None:
        self.error(message)
        self.progress.advance(self.files)


def _summary_table(summary: BatchSummary, seconds: float, share: str = "") -> Table:
    table = Table(title="hsrecon convert", title_justify="left")
    names = [safe(result.source.name) for result in summary.converted]
    # names keep their width (up to 32) on a narrow or piped console: the table grows wider instead
    table.add_column("input", overflow="fold", min_width=min(max(map(len, names), default=5), 32))
    for column in ("size", "MP", "seconds", "MP/s", "exposure", "out of range", "round trip"):
        table.add_column(column, justify="right", overflow="fold")
    for result in summary.converted:
        table.add_row(
            safe(result.source.name),
            f"{result.width}×{result.height}",
            f"{result.megapixels:.2f}",
            f"{result.seconds:.1f}",
            f"{result.megapixels / max(result.seconds, 1e-9):.2f}",
            f"{result.exposure:.3g}",
            f"{100 * result.out_of_range:.2f}%",
            _round_trip(result.round_trip_rms),
        )
    total_mp = sum(r.megapixels for r in summary.converted)
    table.caption = (
        f"{len(summary.converted)} converted, {len(summary.skipped)} skipped, {len(summary.failed)} failed; "
        f"{total_mp:.2f} MP in {seconds:.1f} s ({total_mp / max(seconds, 1e-9):.2f} MP/s); round trip: RMS "
        "distance in 8-bit codes between each cube's rendering and its input"
        + ("" if not any(r.plausible for r in summary.converted) else " (--plausible: ~0 by construction)")
        + (f"; {share}" if share else "")
    )
    return table


def _round_trip(rms: float | None) -> str:
    """A cube's round-trip error (hsrecon.plausible.RoundTripError), or a dash where its rendering is
    unknown (weights trained on raw photo values) or every channel was clipped."""
    return "—" if rms is None or rms != rms else f"{rms:.2f}"
