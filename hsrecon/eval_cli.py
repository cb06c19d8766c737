"""``hsrecon eval``'s presentation: option checks, progress, the table of scores, JSON/CSV, the exit code.

The work is library calls (:mod:`hsrecon.data`, :mod:`hsrecon.evaluate`, :mod:`hsrecon.metrics`); this
module only talks to the user. The table is the command's result and goes to stdout; progress, notes
and errors go to stderr.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from hsrecon import __version__
from hsrecon.cli import ExitCode, check_window_options, fail, out_of_memory_line, stderr, stdout
from hsrecon.data import SPLITS, TRACKS, Pair, scan
from hsrecon.evaluate import (
    METRICS,
    Failure,
    LinearBaseline,
    NetworkMethod,
    Report,
    describe_region,
    evaluate_files,
    evaluate_pairs,
    fit_linear_baseline,
    write_csv,
    write_json,
)
from hsrecon.inputs import network_space
from hsrecon.metrics import NTIRE2022_CROP
from hsrecon.pipeline import DeviceOutOfMemoryError, TorchPredictor
from hsrecon.weights import Weights

__all__ = ["check_mode", "run_eval"]

BASELINES = ("linear", "linear-stored", "linear-decoded")
"""``--baseline`` names: the least-squares 3→31 map fitted on the network's input, on the RGB files' values
as stored (value/max), or on the files decoded to clean space as the default weights see them (sRGB curve
undone, 3×3 matrix, automatic exposure; the same as stored for the clean track)."""
_HEADERS = {"mrae": "MRAE", "rmse": "RMSE", "psnr": "PSNR dB", "sam": "SAM °", "ssim": "SSIM"}
_FORMATS = {"mrae": "{:.5f}", "rmse": "{:.5f}", "psnr": "{:.2f}", "sam": "{:.3f}", "ssim": "{:.4f}"}


def check_mode(data: Path | None, pred: Path | None, gt: Path | None, options: dict) -> str:
    """``data`` (reconstruct and score a dataset) or ``files`` (score cube files); one line otherwise."""
    if data is not None and (pred is not None or gt is not None):
        raise fail("give either --data DIR, or --pred DIR with --gt DIR, not both", ExitCode.USAGE)
    if data is None and (pred is None or gt is None):
        raise fail("give --data DIR (a dataset), or --pred DIR and --gt DIR (cube files)", ExitCode.USAGE)
    if data is None:
        network_only = [name for name in ("weights", "tta", "baseline", "window", "stride") if options.get(name)]
        if network_only:
            flags = ", ".join(f"--{name}" for name in network_only)
            raise fail(f"{flags}: only with --data (--pred/--gt scores existing files)", ExitCode.USAGE)
        return "files"
    return "data"


def _crop(options: dict) -> int:
    crop, ntire2022 = options["crop"], options["ntire2022"]
    if ntire2022 and crop not in (None, NTIRE2022_CROP):
        raise fail(f"--ntire2022 means --crop {NTIRE2022_CROP}; it conflicts with --crop {crop}", ExitCode.USAGE)
    crop = NTIRE2022_CROP if ntire2022 else (crop or 0)
    if crop < 0:
        raise fail(f"--crop {crop}: must be 0 or more", ExitCode.USAGE)
    return crop


def _check_outputs(options: dict) -> None:
    """Refuse an unwritable report location before any work is done."""
    for flag in ("json", "csv"):
        path = options[flag]
        if path is not None and not Path(path).parent.is_dir():
            raise fail(f"{path}: no such directory for the --{flag} report", ExitCode.OUTPUT)
        if path is not None and Path(path).is_dir():
            raise fail(f"{path}: is a directory (--{flag} takes a file name)", ExitCode.OUTPUT)


def _progress(quiet: bool) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=stderr,
        disable=quiet,
        transient=True,
    )


def _print_error(progress: Progress, message: str) -> None:
    progress.console.print(f"[bold red]hsrecon: error:[/] {message}", highlight=False, soft_wrap=True)


def run_eval(mode: str, options: dict, weights: Weights | None = None, device: torch.device | None = None) -> int:
    """Run a whole ``hsrecon eval``; return its exit code."""
    crop = _crop(options)
    _check_outputs(options)
    try:
        report = _run_files(options, crop) if mode == "files" else _run_data(options, crop, weights, device)
    except DeviceOutOfMemoryError as error:  # stops the run: every other image would fail the same way
        raise fail(out_of_memory_line(error, options["batch_size"]), ExitCode.DEVICE) from None
    stdout.print(_table(report, crop))
    _write_reports(report, options)
    return ExitCode.FAILED if report.failures else ExitCode.OK


def _run_files(options: dict, crop: int) -> Report:
    for flag in ("pred", "gt"):
        if not Path(options[flag]).is_dir():
            raise fail(f"{options[flag]}: not a folder (--{flag} takes a folder of cube files)", ExitCode.INPUT)
    settings = {
        "hsrecon_version": __version__,
        "mode": "files",
        "pred": str(options["pred"]),
        "gt": str(options["gt"]),
    }
    progress = _progress(options["quiet"])
    with progress:
        task = progress.add_task("cubes", total=None)
        return evaluate_files(
            options["pred"],
            options["gt"],
            crop=crop,
            settings=settings,
            on_result=lambda method, result: progress.advance(task),
            on_failure=lambda failure: _print_error(progress, failure.message),
        )


def _scan(root: Path, split: str, track: str, what: str = "") -> tuple[list[Pair], list[str], str]:
    try:
        found = scan(root, split, track)
    except ValueError as error:
        raise fail(f"{what}{error}", ExitCode.INPUT) from None
    return found.pairs, found.unpaired, found.layout


def _run_data(options: dict, crop: int, weights: Weights, device: torch.device) -> Report:
    for flag, allowed in (("split", SPLITS), ("track", TRACKS)):
        if options[flag] not in allowed:
            raise fail(f"--{flag} {options[flag]!r}: choose from {', '.join(allowed)}", ExitCode.USAGE)
    baselines = list(dict.fromkeys(options["baseline"] or ()))
    for name in baselines:
        if name not in BASELINES:
            raise fail(f"--baseline {name!r}: choose from {', '.join(BASELINES)}", ExitCode.USAGE)
    window, stride = check_window_options(options, weights)
    root, split, track = Path(options["data"]), options["split"], options["track"]
    pairs, unpaired, layout = _scan(root, split, track)
    if not pairs:
        raise fail(f"{root}: no complete {split} pairs ({len(unpaired)} files without a partner)", ExitCode.INPUT)
    model = weights.build()  # TorchPredictor puts its inference form on the device
    # What the track's RGB files hold, and how they reach these weights (hsrecon.inputs.network_space).
    space, warning = network_space(weights.meta.input_space, "srgb" if track == "realworld" else "ntire2020-clean")
    if warning:
        stderr.print(f"hsrecon: warning: {warning}", highlight=False)
    predict = TorchPredictor(model, device=device, tta=options["tta"], window=window)
    methods = {"network": NetworkMethod(predict, window, stride, model.config.out_bands, options["batch_size"])}
    settings = {
        "hsrecon_version": __version__,
        "mode": "data",
        "data": str(root),
        "layout": layout,
        "split": split,
        "track": track,
        "weights": str(weights.path),
        "weights_version": weights.meta.weights_version,
        "input_space": weights.meta.input_space,
        "fed_as": space,
        "device": str(device),
        "tta": options["tta"],
        "window": window,
        "stride": stride,
    }
    progress = _progress(options["quiet"])
    with progress:
        for line in unpaired:
            _print_error(progress, line)
        if baselines:
            settings["baselines"] = {}
        for name in baselines:
            fit_space = _baseline_space(name, space, track)
            baseline = _fit_baseline(root, track, fit_space, name, progress)
            methods[name] = baseline
            settings["baselines"][name] = {
                "method": "linear 3→31 least squares",
                "fit_space": fit_space,
                **_baseline_facts(baseline),
            }
        task = progress.add_task("images", total=len(pairs))

        def on_failure(failure: Failure) -> None:
            _print_error(progress, failure.message)
            progress.advance(task)

        report = evaluate_pairs(
            pairs,
            methods,
            input_space=space,
            crop=crop,
            bands=model.config.out_bands,
            wavelengths_nm=weights.meta.wavelengths_nm,
            settings=settings,
            on_start=lambda pair: progress.update(task, description=f"images ({pair.name})"),
            on_result=lambda method, result: progress.advance(task) if method == "network" else None,
            on_failure=on_failure,
        )
    # files without a partner were reported first; the JSON and the counts include them
    report.failures[:0] = [Failure(line.split(": ", 1)[0], line) for line in unpaired]
    return report


def _baseline_space(name: str, network_input: str, track: str) -> str:
    """The input space the baseline ``name`` is fitted and applied in."""
    if name == "linear":
        return network_input
    if name == "linear-stored":
        return "ntire2020-clean"  # that transform is value/max, exposure 1
    return network_space("ntire2020-clean", "srgb" if track == "realworld" else "ntire2020-clean")[0]


def _fit_baseline(root: Path, track: str, space: str, name: str, progress: Progress) -> LinearBaseline:
    pairs, _, _ = _scan(root, "train", track, f"--baseline {name} needs a training split: ")
    if not pairs:
        raise fail(f"--baseline {name}: {root} has no complete training pairs to fit it on", ExitCode.INPUT)
    task = progress.add_task(f"fitting the {name} baseline", total=len(pairs))
    try:
        baseline = fit_linear_baseline(pairs, input_space=space, on_image=lambda pair: progress.advance(task))
    except ValueError as error:
        raise fail(f"--baseline {name}: {error}", ExitCode.INPUT) from None
    for line in baseline.skipped:
        progress.console.print(f"hsrecon: note: {name} baseline: left out {line}", highlight=False, soft_wrap=True)
    progress.remove_task(task)
    return baseline


def _baseline_facts(baseline: LinearBaseline) -> dict:
    return {"fit_images": baseline.images, "fit_pixels": baseline.samples, "matrix_3x31": baseline.matrix.tolist()}


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
    for metric in METRICS:
        table.add_column(_HEADERS[metric], justify="right")
    table.add_column("s", justify="right")
    for method, results in report.results.items():
        for result in results:
            cells = [_cell(m, getattr(result.scores, m)) for m in METRICS]
            seconds = "" if result.seconds is None else f"{result.seconds:.2f}"
            table.add_row(result.name, *([method] if several else []), *cells, seconds)
    if table.rows:
        table.rows[-1].end_section = True
    for method in report.results:
        _summary_rows(table, report.summary(method), method if several else None)
    table.caption = _caption(report, crop)
    return table


def _summary_rows(table: Table, summary: dict, method: str | None) -> None:
    """A mean row (every metric) and MRAE's median and 95th percentile (p95), for one method."""
    label = [method] if method is not None else []
    seconds = "" if summary["seconds_mean"] is None else f"{summary['seconds_mean']:.2f}"
    means = [_cell(m, summary[f"{m}_mean"]) for m in METRICS]
    table.add_row("[bold]mean[/]", *label, *means, seconds)
    blanks = [""] * (len(METRICS) - 1)
    table.add_row("median", *label, _cell("mrae", summary["mrae_median"]), *blanks, "")
    table.add_row("p95", *label, _cell("mrae", summary["mrae_p95"]), *blanks, "", end_section=True)


def _caption(report: Report, crop: int) -> str:
    scored = max((len(results) for results in report.results.values()), default=0)
    failed = len(report.failures)
    excluded = sum(r.scores.mrae_excluded for results in report.results.values() for r in results)
    parts = [
        f"{scored} scored, {failed} failed",
        describe_region(crop),
        "PSNR peak 1.0 on [0, 1]-clipped cubes",
        "SAM in degrees",
    ]
    if excluded:
        parts.append(f"MRAE left out {excluded} zero ground-truth values")
    return "; ".join(parts)


def _write_reports(report: Report, options: dict) -> None:
    for flag, writer in (("json", write_json), ("csv", write_csv)):
        path = options[flag]
        if path is None:
            continue
        try:
            writer(report, Path(path))
        except OSError as error:
            raise fail(f"{path}: cannot write the report ({error.strerror or error})", ExitCode.OUTPUT) from None
        stderr.print(f"wrote {path}", highlight=False, soft_wrap=True)
