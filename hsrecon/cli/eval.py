"""``hsrecon eval``: options parsed, then :func:`hsrecon.evaluate.evaluate_dataset` (``--data``) or
:func:`hsrecon.evaluate.evaluate_files` (``--pred``/``--gt``); the table of scores, JSON/CSV/HTML
(:mod:`hsrecon.report`), the exit code.

The table is the command's result and goes to stdout; progress, notes and errors go to stderr.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.measure import Measurement
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from hsrecon import __version__
from hsrecon.cli._common import (
    INTERRUPTS,
    Baseline,
    BatchSizeOption,
    DeviceOption,
    ExitCode,
    Grouping,
    PadOption,
    Split,
    StrideOption,
    Track,
    WeightsOption,
    WindowOption,
    device_or_exit,
    fail,
    interrupted,
    one_of,
    out_of_memory_line,
    plausible_or_exit,
    safe,
    say,
    stderr,
    stdout,
    weights_or_exit,
    windowing_or_exit,
)

if TYPE_CHECKING:
    from hsrecon.data import Pair
    from hsrecon.evaluate import Failure, ImageResult, Report
    from hsrecon.report import EvalReportCollector

__all__ = ["evaluate"]

NTIRE2022_CROP = 128  # hsrecon.metrics.NTIRE2022_CROP, held equal by tests/test_cli.py (no numpy at start-up)
# The table shows the NTIRE metrics and the headline scale-free pair (each after its own best gain per
# image); the JSON and CSV hold every score (hsrecon.evaluate.SCALE_FREE, GAINS).
_COLUMNS = ("mrae", "rmse", "psnr", "sam", "ssim", "mrae_gain_mrae", "rmse_gain_ls")
_HEADERS = {
    "mrae": "MRAE", "rmse": "RMSE", "psnr": "PSNR dB", "sam": "SAM °", "ssim": "SSIM",
    "mrae_gain_mrae": "MRAE g*", "rmse_gain_ls": "RMSE g*",
}  # fmt: skip
_FORMATS = {
    "mrae": "{:.5f}", "rmse": "{:.5f}", "psnr": "{:.2f}", "sam": "{:.3f}", "ssim": "{:.4f}",
    "mrae_gain_mrae": "{:.5f}", "rmse_gain_ls": "{:.5f}",
}  # fmt: skip
_UNBOUNDED = 10_000  # columns: room to measure the table's natural width
_NETWORK_ONLY = ("--weights", "--tta", "--baseline", "--window", "--stride", "--pad", "--plausible", "--group-by")


def evaluate(
    data: Annotated[
        Optional[Path], typer.Option(help="An NTIRE 2020 or 2022 (ARAD-1K) dataset folder to reconstruct and score.")
    ] = None,
    split: Annotated[Split, typer.Option(parser=one_of(Split, "--split"), help="valid or train.")] = Split.VALID,
    track: Annotated[
        Track, typer.Option(parser=one_of(Track, "--track"), help="NTIRE 2020 RGB set: clean or realworld.")
    ] = Track.CLEAN,
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
        Optional[list[Baseline]],
        typer.Option(
            parser=one_of(Baseline, "--baseline"),
            help="Also score a baseline (repeatable): a least-squares 3→31 map fitted on the train split, on the "
            "network's input ('linear'), the files' values ('linear-stored') or them in clean space "
            "('linear-decoded'); the map fitted there for minimum MRAE ('linear-mrae'); colour-science's "
            "Otsu 2018 reflectance recovery x the illuminant ('otsu2018'); root-polynomial maps of degree 2 or 3 "
            "fitted in clean space, ridge chosen on validation ('rpr2', 'rpr3').",
        ),
    ] = None,
    plausible: Annotated[
        Optional[bool],
        typer.Option(
            "--plausible/--no-plausible",
            help="Also score the network's output projected onto spectra that render exactly to the input, as "
            "network+plausible (docs/input-spaces.md): what convert writes. Default: on for weights taking "
            "clean-space input, off otherwise; --no-plausible scores the raw output alone.",
            show_default=False,
        ),
    ] = None,
    json_report: Annotated[Optional[Path], typer.Option("--json", help="Write the report as JSON.")] = None,
    csv_report: Annotated[Optional[Path], typer.Option("--csv", help="Write the scores as CSV.")] = None,
    html_report: Annotated[
        Optional[Path],
        typer.Option(
            "--report",
            help="Write an HTML report, one file that opens offline: tables, MRAE per band, error maps, thumbnails "
            "and spectra per image (docs/view.md).",
        ),
    ] = None,
    window: WindowOption = None,
    stride: StrideOption = None,
    pad: PadOption = None,
    batch_size: BatchSizeOption = None,
    group_by: Annotated[
        Optional[list[Grouping]],
        typer.Option(
            parser=one_of(Grouping, "--group-by"),
            help="Also score by the dataset's labels (repeatable): 'family' pools each material family's pixels "
            "(and the held-out and training families), 'light' each kind of main light, 'family-light' the two crossed "
            "(hsrecon synth --recipe 3).",
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Score reconstructions: MRAE, RMSE, PSNR, SAM and SSIM per image and overall (docs/metrics.md)."""
    network_only = (weights, tta, baseline, window, stride, pad is not None, plausible, group_by)
    _check_mode(data, pred, gt, dict(zip(_NETWORK_ONLY, network_only, strict=True)))
    crop = _crop(crop, ntire2022)
    reports = {"json": json_report, "csv": csv_report, "report": html_report}
    _check_reports(reports)
    details = _report_collector(html_report, crop)
    groups = _grouped_scores(data, split, group_by)
    network = {"weights": weights, "device": device, "split": split, "track": track, "tta": tta,
               "baseline": baseline, "window": window, "stride": stride, "pad": pad, "batch_size": batch_size,
               "plausible": plausible}  # fmt: skip
    shown = EvalProgress(quiet)
    _note_the_default_on_other_data(data, weights, shown)
    try:
        if data is None:
            report = _score_files(pred, gt, crop, shown, details)
        else:
            report = _score_dataset(data, crop, shown, _observers(details, groups), **network)
    except INTERRUPTS as error:
        raise interrupted(error, "no report written") from None
    stdout.print(_table(report, crop))
    if groups is not None:
        report.groups = groups.summary()
        for grouping, table in report.groups.items():
            stdout.print(_group_table(grouping, table))
    _write_reports(report, reports, details)
    raise typer.Exit(code=int(ExitCode.FAILED if report.failures else ExitCode.OK))


def _note_the_default_on_other_data(data: Path | None, weights: str | None, shown: EvalProgress) -> None:
    """One note when the default weights score a dataset hsrecon did not make (NTIRE 2020 itself, say): the
    default is built for scenes unlike NTIRE's, and the paper's numbers come from the authors' weights alone."""
    from hsrecon.weights import DEFAULT_WEIGHTS

    if data is None or weights is not None or (data / "synth.json").exists():
        return
    shown.note(
        f"scoring the default weights, {DEFAULT_WEIGHTS} (the authors' network over per-pixel maps); for the "
        "paper's numbers on NTIRE 2020 data give --weights ntire2020-clean"
    )


def _grouped_scores(data: Path | None, split: Split, group_by: list[Grouping] | None):
    """The observer pooling scores by family or light (``--group-by``), or None; one line if labels are missing."""
    if data is None or not group_by:
        return None
    from hsrecon.groups import GroupedScores, GroupingError

    try:
        return GroupedScores(data, split.value, tuple(g.value for g in group_by))
    except GroupingError as error:
        raise fail(str(error), ExitCode.INPUT) from None


def _observers(*observers):
    """One ``on_rows`` observer calling each of ``observers`` that is not None (or None if none is)."""
    present = [observer for observer in observers if observer is not None]
    if not present:
        return None

    def observe(rows) -> None:
        for observer in present:
            observer(rows)

    return observe


def _group_table(grouping: str, table: dict[str, dict[str, dict]]) -> Table:
    """Scores pooled per group: MRAE and SAM for each method, the group's pixels and images."""
    methods = list(dict.fromkeys(method for entries in table.values() for method in entries))
    out = Table(title=f"by {grouping} (pixels pooled over images)", title_justify="left")
    out.add_column(grouping)
    for method in methods:
        out.add_column(f"{method} MRAE", justify="right")
        out.add_column(f"{method} SAM", justify="right")
    out.add_column("pixels", justify="right")
    out.add_column("images", justify="right")
    for group, entries in table.items():
        cells = []
        for method in methods:
            entry = entries.get(method, {})
            cells += [_number(entry.get("mrae"), "{:.4f}"), _number(entry.get("sam"), "{:.2f}")]
        first = next(iter(entries.values()))
        out.add_row(safe(group), *cells, f"{first['pixels']:,}", str(first["images"]))
    return out


def _number(value: float | None, template: str) -> str:
    return "—" if value is None else template.format(value)


def _report_collector(path: Path | None, crop: int) -> EvalReportCollector | None:
    """What the HTML report needs beyond the scores, collected as the images are scored (``--report``)."""
    if path is None:
        return None
    from hsrecon.report import EvalReportCollector

    return EvalReportCollector(crop=crop)


def _score_files(pred: Path, gt: Path, crop: int, shown: EvalProgress, details: EvalReportCollector | None) -> Report:
    from hsrecon.evaluate import evaluate_files

    for flag, folder in (("pred", pred), ("gt", gt)):
        if not folder.is_dir():
            raise fail(f"{folder}: not a folder (--{flag} takes a folder of cube files)", ExitCode.INPUT)
    settings = {"hsrecon_version": __version__, "mode": "files", "pred": str(pred), "gt": str(gt)}
    with shown.progress:
        shown.scoring(None)
        return evaluate_files(
            pred, gt, crop=crop, settings=settings, on_result=shown.image_scored, on_failure=shown.image_failed,
            on_rows=details, on_note=shown.note,
        )  # fmt: skip


def _score_dataset(
    data: Path, crop: int, shown: EvalProgress, details: EvalReportCollector | None, *, weights: str | None,
    device: str, split: Split, track: Track,
    tta: bool, baseline: list[Baseline] | None, window: int | None, stride: int | None, pad: int | None,
    batch_size: int | None, plausible: bool | None,
) -> Report:  # fmt: skip
    from hsrecon.data import track_space
    from hsrecon.evaluate import BaselineError, DatasetError, evaluate_dataset
    from hsrecon.inference import DeviceOutOfMemoryError

    loaded, target = weights_or_exit(weights), device_or_exit(device)
    windowing, batch_size = windowing_or_exit(loaded, window, stride, pad, batch_size)
    plausible = plausible_or_exit(loaded, plausible, track_space(track.value))
    try:
        with shown.progress:
            return evaluate_dataset(
                data, loaded, device=target, split=split.value, track=track.value, window=windowing.window,
                stride=windowing.stride, pad=windowing.pad, batch_size=batch_size, tta=tta, crop=crop,
                baselines=[b.value for b in baseline or ()], plausible=plausible, events=shown, on_rows=details,
            )  # fmt: skip
    except BaselineError as error:
        raise fail(f"--{error}", ExitCode.INPUT) from None
    except DatasetError as error:
        raise fail(str(error), ExitCode.INPUT) from None
    except DeviceOutOfMemoryError as error:  # stops the run: every other image would fail the same way
        raise fail(out_of_memory_line(error, batch_size), ExitCode.DEVICE) from None


def _check_mode(data: Path | None, pred: Path | None, gt: Path | None, network_options: dict) -> None:
    """Exactly one mode: ``--data`` (reconstruct and score a dataset) or ``--pred``/``--gt`` (score files)."""
    if data is not None and (pred is not None or gt is not None):
        raise fail("give either --data DIR, or --pred DIR with --gt DIR, not both", ExitCode.USAGE)
    if data is None and (pred is None or gt is None):
        raise fail("give --data DIR (a dataset), or --pred DIR and --gt DIR (cube files)", ExitCode.USAGE)
    given = [flag for flag, value in network_options.items() if value]
    if data is None and given:
        raise fail(f"{', '.join(given)}: only with --data (--pred/--gt scores existing files)", ExitCode.USAGE)


def _crop(crop: int | None, ntire2022: bool) -> int:
    if ntire2022 and crop not in (None, NTIRE2022_CROP):
        raise fail(f"--ntire2022 means --crop {NTIRE2022_CROP}; it conflicts with --crop {crop}", ExitCode.USAGE)
    crop = NTIRE2022_CROP if ntire2022 else (crop or 0)
    if crop < 0:
        raise fail(f"--crop {crop}: must be 0 or more", ExitCode.USAGE)
    return crop


def _check_reports(reports: dict[str, Path | None]) -> None:
    """Refuse an unwritable report location before any work is done."""
    for flag, path in reports.items():
        if path is not None and not Path(path).parent.is_dir():
            raise fail(f"{path}: no such directory for the --{flag} report", ExitCode.OUTPUT)
        if path is not None and Path(path).is_dir():
            raise fail(f"{path}: is a directory (--{flag} takes a file name)", ExitCode.OUTPUT)


class EvalProgress:
    """:class:`hsrecon.evaluate.EvalEvents` on stderr: a bar per baseline fit, then one over the images.
    (Not a subclass, so that this module loads without torch.)"""

    def __init__(self, quiet: bool) -> None:
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
            console=stderr, disable=quiet, transient=True,
        )  # fmt: skip
        self.fits: dict[str, int] = {}
        self.images = None

    def _error(self, message: str) -> None:
        say("error", message, self.progress.console)

    def warning(self, text: str) -> None:
        say("warning", text, self.progress.console)

    def note(self, text: str) -> None:
        say("note", text, self.progress.console)

    def unpaired(self, line: str) -> None:
        self._error(line)

    def fitting(self, baseline: str, images: int) -> None:
        self.fits[baseline] = self.progress.add_task(f"fitting the {baseline} baseline", total=images)

    def fitted_image(self, baseline: str) -> None:
        self.progress.advance(self.fits[baseline])

    def fit_note(self, baseline: str, line: str) -> None:
        say("note", f"{baseline} baseline: left out {line}", self.progress.console)

    def fitted(self, baseline: str) -> None:
        self.progress.remove_task(self.fits.pop(baseline))

    def scoring(self, images: int | None) -> None:
        self.images = self.progress.add_task("images" if images else "cubes", total=images)

    def image_started(self, pair: Pair) -> None:
        self.progress.update(self.images, description=f"images ({safe(pair.name)})")

    def image_scored(self, method: str, result: ImageResult) -> None:
        if method in ("network", "pred"):  # one step per image, whatever the baselines
            self.progress.advance(self.images)

    def image_failed(self, failure: Failure) -> None:
        self._error(failure.message)
        if self.images is not None:
            self.progress.advance(self.images)


# --- output -------------------------------------------------------------------------------------------


def _cell(metric: str, value: float | None) -> str:
    if value is None:
        return ""
    if not math.isfinite(value):
        return str(value)
    return _FORMATS[metric].format(value)


def _table(report: Report, crop: int) -> Table:
    several = len(report.results) > 1
    table = Table(title="hsrecon eval", title_justify="left")
    names = [r.name for results in report.results.values() for r in results]
    table.add_column("image", overflow="fold", min_width=min(max(map(len, names), default=5), 32))
    if several:
        table.add_column("method")
    for metric in _COLUMNS:
        table.add_column(_HEADERS[metric], justify="right")
    table.add_column("s", justify="right")
    for method, results in report.results.items():
        for result in results:
            cells = [_cell(m, getattr(result.scores, m)) for m in _COLUMNS]
            seconds = "" if result.seconds is None else f"{result.seconds:.2f}"
            table.add_row(safe(result.name), *([method] if several else []), *cells, seconds)
    if table.rows:
        table.rows[-1].end_section = True
    for method in report.results:
        _summary_rows(table, report.summary(method), method if several else None)
    table.caption = _caption(report, crop)
    # Its natural width, whatever the terminal's (80 when piped to a file): a narrower table would cut the
    # numbers short ("0.28…"); a wide one only wraps on screen.
    table.width = Measurement.get(stdout, stdout.options.update_width(_UNBOUNDED), table).maximum
    return table


def _summary_rows(table: Table, summary: dict, method: str | None) -> None:
    """A mean row (every metric) and MRAE's median and 95th percentile (p95), for one method."""
    label = [method] if method is not None else []
    seconds = "" if summary["seconds_mean"] is None else f"{summary['seconds_mean']:.2f}"
    means = [_cell(m, summary[f"{m}_mean"]) for m in _COLUMNS]
    table.add_row("[bold]mean[/]", *label, *means, seconds)
    blanks = [""] * (len(_COLUMNS) - 1)
    table.add_row("median", *label, _cell("mrae", summary["mrae_median"]), *blanks, "")
    table.add_row("p95", *label, _cell("mrae", summary["mrae_p95"]), *blanks, "", end_section=True)


def _caption(report: Report, crop: int) -> str:
    from hsrecon.evaluate import describe_region

    scored = max((len(results) for results in report.results.values()), default=0)
    failed = len(report.failures)
    excluded = sum(r.scores.mrae_excluded for results in report.results.values() for r in results)
    parts = [
        f"{scored} scored, {failed} failed",
        describe_region(crop),
        "PSNR peak 1.0 on [0, 1]-clipped cubes",
        "SAM in degrees",
        "g*: after each image's best gain (MRAE-optimal for MRAE, least squares for RMSE)",
    ]
    if excluded:
        parts.append(f"MRAE left out {excluded} zero ground-truth values")
    return "; ".join(parts)


def _write_reports(report: Report, reports: dict[str, Path | None], details: EvalReportCollector | None) -> None:
    from hsrecon.evaluate import write_csv, write_json
    from hsrecon.report import write_eval_report

    def write_html(report: Report, path: Path) -> Path:
        return write_eval_report(path, report, details.details if details is not None else {})

    for flag, writer in (("json", write_json), ("csv", write_csv), ("report", write_html)):
        path = reports[flag]
        if path is None:
            continue
        try:
            writer(report, Path(path))
        except OSError as error:
            raise fail(f"{path}: cannot write the report ({error.strerror or error})", ExitCode.OUTPUT) from None
        stderr.print(f"wrote {safe(path)}", highlight=False, soft_wrap=True)
