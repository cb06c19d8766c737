"""Scoring reconstructions against ground truth: per image, per method, with a summary; JSON and CSV out.

Two sources of reconstructions, one scoring path (:class:`hsrecon.metrics.MetricAccumulator`):

- :func:`evaluate_pairs`: (RGB, cube) pairs of a dataset (:mod:`hsrecon.data`), each RGB reconstructed
  here by one or more methods (the network through :func:`hsrecon.pipeline.stream_reconstruct`, and
  optionally the :class:`LinearBaseline`). The reconstruction streams row by row into the accumulator:
  it never exists as a whole array, and the ground truth is read once per image for all methods.
  :func:`evaluate_dataset` is ``hsrecon eval --data`` as one call: the split found, the network and the
  baselines set up for the track, the settings recorded, progress told to an :class:`EvalEvents`.
- :func:`evaluate_files`: cube files written by any tool, paired by name with ground-truth files
  (:func:`pair_cube_files`).

A pair that cannot be scored (unreadable, missing, mis-shaped) becomes a :class:`Failure` with a
one-line message, and the others go on. The CLI (``hsrecon eval``) only adds progress and a table.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from hsrecon import __version__
from hsrecon.data import Pair, pairing_key, scan, track_space
from hsrecon.inputs import InputTransform, canonical_space, make_input_transform, network_space
from hsrecon.io import CubeInfo, cube_info, read_cube
from hsrecon.io.base import (
    CUBE_SUFFIXES,
    READ_BYTES_PER_VALUE,
    check_finite,
    integer_values_note,
    memory_budget,
)
from hsrecon.io.rgb import read_rgb
from hsrecon.metrics import NTIRE2022_CROP, MetricAccumulator, Scores, score
from hsrecon.physics import WAVELENGTHS_NM
from hsrecon.pipeline import NonFiniteOutputError, stream_reconstruct
from hsrecon.pixelmap import PixelMapFit, apply_map, fit_with_validation
from hsrecon.plausible import check_weights_space, project, rendering_for
from hsrecon.temps import write_atomic
from hsrecon.weights import Weights

__all__ = [
    "BASELINES",
    "CUBE_SUFFIXES",
    "GAINS",
    "METRICS",
    "SCALE_FREE",
    "BaselineError",
    "DatasetError",
    "EvalEvents",
    "Failure",
    "ImageResult",
    "LinearBaseline",
    "NetworkMethod",
    "Report",
    "RootPolynomialBaseline",
    "Rows",
    "RowsObserver",
    "conventions",
    "describe_region",
    "evaluate_dataset",
    "evaluate_files",
    "evaluate_pairs",
    "fit_linear_baseline",
    "fit_root_polynomial_baseline",
    "pair_cube_files",
    "plausible_name",
    "summarize",
    "training_samples",
    "write_csv",
    "write_json",
]

METRICS = ("mrae", "rmse", "psnr", "sam", "ssim")
SCALE_FREE = ("mrae_gain_mrae", "rmse_gain_ls", "mrae_gain_ls", "rmse_gain_mrae")
"""MRAE and RMSE after one best gain per image (``docs/metrics.md``): the first two are the headline pair,
each metric after its own optimal gain; SAM, already gain-free, is among :data:`METRICS`."""
GAINS = ("gain_mrae", "gain_ls", "gain_bound")  # per image only: a mean of gains means nothing
WAVELENGTH_TOLERANCE_NM = 0.5
BASELINE_SAMPLES = 1 << 18  # training pixels for the linear fit, spread evenly over the images
BASELINE_BLOCK_ROWS = 64

# emit(y0, rows) receives reconstructed rows (h×W×B float32), top to bottom, each once.
Emit = Callable[[int, np.ndarray], None]
# A method reconstructs an image's network-input pixels (H×W×3 float32, via ``transform``) into emit.
Method = Callable[[np.ndarray, Callable[[np.ndarray], np.ndarray], Emit], None]


@dataclass(frozen=True)
class ImageResult:
    """One image's scores for one method; ``seconds`` is its reconstruction time (None for files)."""

    name: str
    scores: Scores
    seconds: float | None = None


@dataclass(frozen=True)
class Failure:
    """An image or file that could not be scored, with a one-line reason naming the file."""

    name: str
    message: str


@dataclass(frozen=True)
class Rows:
    """Reconstructed rows of one image beside its whole ground truth, as they stream past (``on_rows``):
    what an HTML report needs beyond the scores (error maps, thumbnails, spectra, per-band errors)."""

    image: str
    method: str
    y0: int
    pred: np.ndarray  # h×W×B, rows y0 … y0 + h - 1
    truth: np.ndarray  # the whole H×W×B truth
    wavelengths_nm: np.ndarray


RowsObserver = Callable[[Rows], None]


@dataclass
class Report:
    """Everything an evaluation produced: settings, per-method results, failures."""

    settings: dict
    results: dict[str, list[ImageResult]] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what was done to an input, e.g. integer cubes as stored
    groups: dict = field(default_factory=dict)  # scores pooled by family / light (hsrecon.groups), when asked

    def summary(self, method: str) -> dict[str, float | int | None]:
        return summarize(self.results.get(method, []))

    def to_dict(self) -> dict:
        """A JSON-ready dict; non-finite numbers (PSNR of a perfect reconstruction) become None."""
        methods = {
            method: {
                "images": [_result_dict(r) for r in results],
                "summary": self.summary(method),
            }
            for method, results in self.results.items()
        }
        failures = [{"name": f.name, "error": f.message} for f in self.failures]
        report = {"settings": self.settings, "methods": methods, "failures": failures, "notes": self.notes}
        if self.groups:
            report["groups"] = self.groups
        return _finite(report)


def _result_dict(result: ImageResult) -> dict:
    return {"name": result.name, **result.scores.as_dict(), "seconds": result.seconds}


def _finite(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def summarize(results: Sequence[ImageResult]) -> dict[str, float | int | None]:
    """Means over images of every metric (images weigh equally, as in the challenges), plus MRAE's
    median and 95th percentile (numpy's linear interpolation) and the mean reconstruction time."""
    summary: dict[str, float | int | None] = {"images": len(results)}
    for metric in (*METRICS, *SCALE_FREE):
        values = [getattr(r.scores, metric) for r in results if getattr(r.scores, metric) is not None]
        summary[f"{metric}_mean"] = float(np.mean(values)) if values else None
        if metric == "mrae":
            summary["mrae_median"] = float(np.median(values)) if values else None
            summary["mrae_p95"] = float(np.percentile(values, 95)) if values else None
    seconds = [r.seconds for r in results if r.seconds is not None]
    summary["seconds_mean"] = float(np.mean(seconds)) if seconds else None
    return summary


def describe_region(crop: int) -> str:
    """The scored region in words: whole images (NTIRE 2020), NTIRE 2022's crop, or N pixels."""
    if crop == 0:
        return "whole images (NTIRE 2020)"
    if crop == NTIRE2022_CROP:
        return f"[{crop}:-{crop}, {crop}:-{crop}] (NTIRE 2022)"
    return f"{crop} px cropped from every border"


def conventions(crop: int) -> dict:
    """The scoring conventions, stated in every JSON report (``docs/metrics.md`` has the details)."""
    return {
        "crop": crop,
        "crop_convention": describe_region(crop),
        "mrae": "mean |pred - gt| / |gt| over values with gt != 0; gt == 0 values left out and counted",
        "rmse": "sqrt(mean (pred - gt)^2), unclipped",
        "psnr": "10 log10(1 / MSE) with both cubes clipped to [0, 1] (peak = data range 1.0)",
        "sam": "mean spectral angle in degrees; all-zero spectra left out and counted",
        "gain": "scale-free scores: MRAE and RMSE of gain * pred for the best non-negative gain per image, "
        "gain_ls (least squares) and gain_mrae (MRAE-optimal, a weighted median of gt/pred); gain_bound bounds "
        "the streamed MRAEs' distance to the exact ones",
        "ssim": "Wang et al.: Gaussian window 11, sigma 1.5, K1 0.01, K2 0.03, data range 1.0, per band, "
        "mean over valid positions",
        "averaging": "per image, then the mean over images",
        "arithmetic": "float64",
    }


# --- the methods --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NetworkMethod:
    """The network as a method: ``predict`` (e.g. a :class:`~hsrecon.inference.TorchPredictor`, with or
    without TTA) run over blended windows exactly as :func:`hsrecon.pipeline.reconstruct` runs it."""

    predict: Callable[[np.ndarray], np.ndarray]
    window: int
    stride: int
    bands: int = len(WAVELENGTHS_NM)
    batch_size: int = 16
    pad: int = 0
    edge: int = 0

    def __call__(self, pixels: np.ndarray, transform: Callable[[np.ndarray], np.ndarray], emit: Emit) -> None:
        stream_reconstruct(
            pixels,
            transform,
            self.predict,
            emit,
            bands=self.bands,
            window=self.window,
            stride=self.stride,
            pad=self.pad,
            edge=self.edge,
            batch_size=self.batch_size,
        )


@dataclass(frozen=True)
class LinearBaseline:
    """The simplest alternative: ``cube = rgb @ matrix`` per pixel, a 3→B map fitted for ``loss``:
    ``"l2"`` (least squares) or ``"mrae"`` (:func:`hsrecon.baselines.fit_mrae_map`).

    ``rgb`` is the image after the ``input_space`` transform it was fitted in: the network's own when the
    spaces agree (both methods then see the same numbers), else its own, e.g. the file's values as stored.
    ``None`` takes the transform given. Fitted by :func:`fit_linear_baseline`; ``skipped`` lists training
    files left out.
    """

    matrix: np.ndarray  # 3×B, float64
    samples: int
    images: int
    skipped: tuple[str, ...] = ()
    input_space: str | None = None
    loss: str = "l2"

    def __call__(self, pixels: np.ndarray, transform: InputTransform, emit: Emit) -> None:
        for y0, rgb in _row_blocks(pixels, transform, self.input_space):
            emit(y0, (rgb @ self.matrix).astype(np.float32))


@dataclass(frozen=True)
class RootPolynomialBaseline:
    """A root-polynomial map (:mod:`hsrecon.pixelmap`) as a method: ``cube = terms(rgb) @ matrix`` per pixel,
    in float64, ``rgb`` in the ``input_space`` it was fitted in (as :class:`LinearBaseline`). Fitted by
    :func:`fit_root_polynomial_baseline`, its ridge chosen on a validation part of the training pixels."""

    fit: PixelMapFit
    input_space: str
    skipped: tuple[str, ...] = ()

    def __call__(self, pixels: np.ndarray, transform: InputTransform, emit: Emit) -> None:
        for y0, rgb in _row_blocks(pixels, transform, self.input_space):
            emit(y0, apply_map(rgb, self.fit.matrix, self.fit.degree).astype(np.float32))


def _row_blocks(pixels: np.ndarray, transform: InputTransform, space: str | None):
    """(first row, rows in ``space`` as float64) for blocks of :data:`BASELINE_BLOCK_ROWS` rows: ``transform``'s
    own values when it is that space (or ``space`` is None), else the image through ``space``'s transform."""
    if space is not None and canonical_space(space) != transform.space:
        transform = make_input_transform(pixels, space, max_code=transform.max_code)
    for y0 in range(0, pixels.shape[0], BASELINE_BLOCK_ROWS):
        yield y0, np.asarray(transform(pixels[y0 : y0 + BASELINE_BLOCK_ROWS]), dtype=np.float64)


def _grid_step(height: int, width: int, samples: int) -> int:
    """The step of a regular grid with at most ``samples`` pixels: deterministic, spread over the image."""
    return max(1, math.ceil(math.sqrt(height * width / max(samples, 1))))


def fit_linear_baseline(
    pairs: Sequence[Pair],
    *,
    input_space: str,
    samples: int = BASELINE_SAMPLES,
    on_image: Callable[[Pair], None] | None = None,
    loss: str = "l2",
) -> LinearBaseline:
    """Fit a 3→B map (float64, no intercept) on training pairs: least squares (``numpy.linalg.lstsq``)
    for ``loss="l2"``, minimum MRAE (:func:`hsrecon.baselines.fit_mrae_map`, from the least-squares map)
    for ``loss="mrae"``.

    Each image gives a regular grid of about ``samples / len(pairs)`` pixels. A pair that cannot be
    read or does not match is left out and named in ``skipped``; ValueError when none is usable.
    """
    if loss not in ("l2", "mrae"):
        raise ValueError(f"loss must be 'l2' or 'mrae', got {loss!r}")
    inputs, targets, skipped = training_samples(pairs, input_space=input_space, samples=samples, on_image=on_image)
    if not inputs:
        raise ValueError(f"no usable training pairs for the linear baseline ({'; '.join(skipped[:2])})")
    x, y = np.concatenate(inputs), np.concatenate(targets)
    matrix, *_ = np.linalg.lstsq(x, y, rcond=None)
    if loss == "mrae":
        from hsrecon.baselines import fit_mrae_map

        matrix = fit_mrae_map(x, y, start=matrix)
    return LinearBaseline(
        matrix=matrix,
        samples=len(x),
        images=len(inputs),
        skipped=tuple(skipped),
        input_space=input_space,
        loss=loss,
    )


def training_samples(
    pairs: Sequence[Pair],
    *,
    input_space: str,
    samples: int = BASELINE_SAMPLES,
    on_image: Callable[[Pair], None] | None = None,
) -> tuple[list[np.ndarray], list[np.ndarray], list[str]]:
    """Per usable pair, a regular grid of about ``samples / len(pairs)`` pixels (at least 64): (RGB n×3 in
    ``input_space``, spectra n×B, float64), and one line per pair left out (unreadable, mis-shaped).
    What every per-pixel map is fitted on (:func:`fit_linear_baseline`, :func:`fit_root_polynomial_baseline`,
    ``hsrecon train --model rpr2``)."""
    per_image = max(64, samples // max(len(pairs), 1))
    inputs, targets, skipped = [], [], []
    for pair in pairs:
        try:
            rgb, cube = _training_sample(pair, input_space, per_image)
        except (ValueError, OSError) as error:
            skipped.append(_one_line(pair.cube, error))
        else:
            inputs.append(rgb)
            targets.append(cube)
        if on_image is not None:
            on_image(pair)
    return inputs, targets, skipped


def fit_root_polynomial_baseline(
    pairs: Sequence[Pair],
    *,
    degree: int,
    input_space: str,
    samples: int = BASELINE_SAMPLES,
    on_image: Callable[[Pair], None] | None = None,
) -> RootPolynomialBaseline:
    """A root-polynomial map of ``degree`` fitted on training pairs (:func:`training_samples`), the ridge
    chosen on a validation part carved out of them (:func:`hsrecon.pixelmap.fit_with_validation`).
    ValueError when no pair is usable."""
    inputs, targets, skipped = training_samples(pairs, input_space=input_space, samples=samples, on_image=on_image)
    if not inputs:
        raise ValueError(f"no usable training pairs for the root-polynomial map ({'; '.join(skipped[:2])})")
    fit = fit_with_validation(inputs, targets, degree)
    return RootPolynomialBaseline(fit=fit, input_space=input_space, skipped=tuple(skipped))


def _training_sample(pair: Pair, input_space: str, per_image: int) -> tuple[np.ndarray, np.ndarray]:
    image = read_rgb(pair.rgb)
    height, width = image.pixels.shape[:2]
    cube, _, _ = read_cube(pair.cube, image_shape=(height, width))
    _check_match(pair, cube, (height, width))
    step = _grid_step(height, width, per_image)
    transform = make_input_transform(image, input_space)
    rgb = np.asarray(transform(image.pixels[::step, ::step]), dtype=np.float64).reshape(-1, 3)
    return rgb, cube[::step, ::step].reshape(-1, cube.shape[-1]).astype(np.float64)


# --- scoring dataset pairs ----------------------------------------------------------------------------


def _one_line(path: Path, error: BaseException) -> str:
    text = (str(error) or type(error).__name__).strip().splitlines()[0]
    return text if str(path) in text else f"{path}: {text}"


def _check_match(pair: Pair, cube: np.ndarray, image_shape: tuple[int, int], bands: int | None = None) -> None:
    if cube.shape[:2] != image_shape:
        raise ValueError(
            f"{pair.cube}: cube is {cube.shape[0]}×{cube.shape[1]}, "
            f"its image {pair.rgb.name} is {image_shape[0]}×{image_shape[1]}"
        )
    if bands is not None and cube.shape[2] != bands:
        raise ValueError(f"{pair.cube}: {cube.shape[2]} bands, the reconstruction has {bands}")


def _check_wavelengths(path: Path, found: np.ndarray, expected: Sequence[float]) -> None:
    expected = np.asarray(expected, dtype=np.float64)
    if found.shape != expected.shape or not np.allclose(found, expected, atol=WAVELENGTH_TOLERANCE_NM):
        raise ValueError(
            f"{path}: wavelengths {found[0]:g}…{found[-1]:g} nm ({found.size}) do not match "
            f"{expected[0]:g}…{expected[-1]:g} nm ({expected.size})"
        )


def _timed_run(method: Method, pixels: np.ndarray, transform, emit: Emit) -> float:
    """Run ``method`` and return its own time: the wall time less the time spent scoring in ``emit``."""
    scoring = 0.0

    def timed_emit(y0: int, rows: np.ndarray) -> None:
        nonlocal scoring
        started = time.perf_counter()
        emit(y0, rows)
        scoring += time.perf_counter() - started

    started = time.perf_counter()
    method(pixels, transform, timed_emit)
    return time.perf_counter() - started - scoring


def _score_pair(
    pair: Pair,
    methods: Mapping[str, Method],
    *,
    input_space: str,
    bands: int,
    wavelengths_nm: Sequence[float],
    crop: int,
    plausible: Sequence[str] = (),
    on_rows: RowsObserver | None = None,
) -> dict[str, ImageResult]:
    image = read_rgb(pair.rgb)
    height, width = image.pixels.shape[:2]
    gt, wavelengths, _ = read_cube(pair.cube, image_shape=(height, width))
    _check_match(pair, gt, (height, width), bands)
    _check_wavelengths(pair.cube, wavelengths, wavelengths_nm)
    check_finite(pair.cube, gt, "ground-truth", "not scored")
    transform = make_input_transform(image, input_space)
    rendering = rendering_for(transform) if plausible else None
    results = {}
    for name, method in methods.items():
        accumulator = MetricAccumulator(height, width, bands, crop=crop)
        projected = MetricAccumulator(height, width, bands, crop=crop) if name in plausible else None

        def emit(
            y0: int, rows: np.ndarray, accumulator=accumulator, projected=projected, method_name: str = name
        ) -> None:
            truth = gt[y0 : y0 + rows.shape[0]]
            accumulator.update(rows, truth)
            if on_rows is not None:
                on_rows(Rows(pair.name, method_name, y0, rows, gt, wavelengths))
            if projected is not None:
                moved = project(rows, image.pixels[y0 : y0 + rows.shape[0]], rendering)
                projected.update(moved, truth)
                if on_rows is not None:
                    on_rows(Rows(pair.name, plausible_name(method_name), y0, moved, gt, wavelengths))

        seconds = _timed_run(method, image.pixels, transform, emit)
        results[name] = ImageResult(pair.name, accumulator.result(), seconds)
        if projected is not None:
            results[plausible_name(name)] = ImageResult(pair.name, projected.result(), seconds)
    return results


def plausible_name(method: str) -> str:
    """The name under which a method's projected output (:mod:`hsrecon.plausible`) is reported."""
    return f"{method}+plausible"


def evaluate_pairs(
    pairs: Sequence[Pair],
    methods: Mapping[str, Method],
    *,
    input_space: str,
    crop: int = 0,
    bands: int = len(WAVELENGTHS_NM),
    wavelengths_nm: Sequence[float] = WAVELENGTHS_NM,
    settings: dict | None = None,
    on_start: Callable[[Pair], None] | None = None,
    on_result: Callable[[str, ImageResult], None] | None = None,
    on_failure: Callable[[Failure], None] | None = None,
    plausible: Sequence[str] = (),
    on_rows: RowsObserver | None = None,
) -> Report:
    """Reconstruct every pair's RGB with each method and score it against the pair's cube.

    ``input_space`` is what the RGB files hold (the weights' own, normally); every method gets the same
    transformed pixels. A pair that fails (unreadable, mis-shaped, other wavelengths, non-finite
    output) is a :class:`Failure` for all methods, and the rest go on.

    ``plausible`` names methods whose output is also scored after the projection onto spectra that
    render exactly to the input (:mod:`hsrecon.plausible`), as ``<method>+plausible``: the same
    reconstruction, not a second run. Only for methods whose output is in the scale of ``input_space``'s
    transform (the network fed clean-space input; not a baseline fitted in another space).
    ``on_rows`` sees every method's rows beside the truth as they are scored (:class:`Rows`).
    """
    unknown = [name for name in plausible if name not in methods]
    if unknown:
        raise ValueError(f"plausible: no method named {', '.join(unknown)}")
    names = [n for name in methods for n in ((name, plausible_name(name)) if name in plausible else (name,))]
    report = Report(settings={**(settings or {}), "conventions": conventions(crop)}, results={n: [] for n in names})
    for pair in pairs:
        if on_start is not None:
            on_start(pair)
        try:
            scored = _score_pair(
                pair,
                methods,
                input_space=input_space,
                bands=bands,
                wavelengths_nm=wavelengths_nm,
                crop=crop,
                plausible=plausible,
                on_rows=on_rows,
            )
        except (ValueError, OSError, NonFiniteOutputError) as error:
            _fail(report, Failure(pair.name, _one_line(pair.cube, error)), on_failure)
            continue
        for name, result in scored.items():
            report.results[name].append(result)
            if on_result is not None:
                on_result(name, result)
    return report


def _fail(report: Report, failure: Failure, on_failure: Callable[[Failure], None] | None) -> None:
    report.failures.append(failure)
    if on_failure is not None:
        on_failure(failure)


# --- a dataset, as ``hsrecon eval --data`` scores it -------------------------------------------------------

BASELINES = ("linear", "linear-stored", "linear-decoded", "linear-mrae", "otsu2018", "rpr2", "rpr3")
"""Baseline names: the least-squares 3→31 map fitted on the network's input, on the RGB files' values as
stored (value/max), or on the files decoded to clean space as the default weights see them (sRGB curve
undone, 3×3 matrix, automatic exposure; the same as stored for the clean track); ``linear-mrae``, the map
fitted for minimum MRAE in ``linear-decoded``'s space (:func:`hsrecon.baselines.fit_mrae_map`); and
``otsu2018``, colour-science's Otsu 2018 reflectance recovery × the illuminant, fitted on nothing of ours
(:class:`hsrecon.baselines.Otsu2018Baseline`); ``rpr2`` and ``rpr3``, root-polynomial maps of degree 2 and 3
(Finlayson et al. 2015, :class:`RootPolynomialBaseline`) fitted in ``linear-decoded``'s space, their ridge
chosen on a validation part of the training pixels."""


class DatasetError(ValueError):
    """A dataset that cannot be scored at all (no such layout, no complete pairs); one line."""


class BaselineError(DatasetError):
    """A baseline that cannot be fitted; the message starts with ``baseline NAME``."""


class EvalEvents:
    """What :func:`evaluate_dataset` tells its caller as it goes. Every method does nothing here; a front
    end (the CLI's progress bars) overrides those it shows."""

    def warning(self, text: str) -> None:
        """Something about the whole run the user should know (said once, before any work)."""

    def note(self, text: str) -> None:
        """What is done to an input, e.g. a ground truth stored as integers, scored as stored."""

    def unpaired(self, line: str) -> None:
        """A file without its partner (also a failure in the report)."""

    def fitting(self, baseline: str, images: int) -> None:
        """Fitting ``baseline`` on ``images`` training pairs begins."""

    def fitted_image(self, baseline: str) -> None: ...

    def fit_note(self, baseline: str, line: str) -> None:
        """A training pair left out of ``baseline``'s fit."""

    def fitted(self, baseline: str) -> None: ...

    def scoring(self, images: int) -> None:
        """Reconstructing and scoring ``images`` pairs begins."""

    def image_started(self, pair: Pair) -> None: ...

    def image_scored(self, method: str, result: ImageResult) -> None: ...

    def image_failed(self, failure: Failure) -> None: ...


def evaluate_dataset(
    root: Path,
    weights: Weights,
    *,
    device: str | torch.device = "cpu",
    split: str = "valid",
    track: str = "clean",
    window: int | None = None,
    stride: int | None = None,
    pad: int | None = None,
    batch_size: int | None = None,
    tta: bool = False,
    crop: int = 0,
    baselines: Sequence[str] = (),
    plausible: bool = False,
    events: EvalEvents | None = None,
    on_rows: RowsObserver | None = None,
) -> Report:
    """Reconstruct a dataset split's RGB images with ``weights`` (and fit-then-apply ``baselines``, from
    :data:`BASELINES`, on the training split) and score them against their cubes.

    The track says what the RGB files hold (:func:`hsrecon.data.track_space`); the weights say how that
    reaches their input. Files without a partner are failures in the report; a dataset that cannot be
    scored at all raises :class:`DatasetError` (:class:`BaselineError` for a baseline). ``plausible`` also
    scores the network's output projected onto spectra that render exactly to the input, as
    ``network+plausible`` (ValueError for weights not taking clean-space input: their rendering is unknown).
    ``on_rows`` sees every method's rows beside the truth (an HTML report's maps and spectra, :class:`Rows`).
    """
    events = events or EvalEvents()
    if plausible:
        check_weights_space(weights.input_space, weights.name)
    windowing = weights.windowing(window, stride, pad)
    pairs, unpaired, layout = _scan(root, split, track)
    if not pairs:
        raise DatasetError(f"{root}: no complete {split} pairs ({len(unpaired)} files without a partner)")
    space, warning = weights.feed_space(track_space(track))
    if warning:
        events.warning(warning)
    predict = weights.predictor(device=device, tta=tta, window=windowing.window)
    network = NetworkMethod(predict, windowing.window, windowing.stride, weights.bands,
                            batch_size or windowing.batch_size, windowing.pad, windowing.edge)  # fmt: skip
    methods: dict[str, Method] = {"network": network}
    settings = {
        "hsrecon_version": __version__, "mode": "data", "data": str(root), "layout": layout, "split": split,
        "track": track, "weights": str(weights.path), "weights_version": weights.meta.weights_version,
        "input_space": weights.input_space, "fed_as": space, "device": str(device), "tta": tta,
        "window": windowing.window, "stride": windowing.stride, "pad": windowing.pad, "edge": windowing.edge,
        "plausible": plausible,
    }  # fmt: skip
    for line in unpaired:
        events.unpaired(line)
    notes = _integer_truth_notes(pairs)
    for note in notes:
        events.note(note)
    if baselines:
        settings["baselines"] = {}
    for name in dict.fromkeys(baselines):
        methods[name], settings["baselines"][name] = _baseline(root, track, space, name, events)
    events.scoring(len(pairs))
    report = evaluate_pairs(
        pairs, methods, input_space=space, crop=crop, bands=weights.bands,
        wavelengths_nm=weights.meta.wavelengths_nm, settings=settings, on_start=events.image_started,
        on_result=events.image_scored, on_failure=events.image_failed, plausible=("network",) if plausible else (),
        on_rows=on_rows,
    )  # fmt: skip
    # files without a partner were reported first; the JSON and the counts include them
    report.failures[:0] = [Failure(line.split(": ", 1)[0], line) for line in unpaired]
    report.notes.extend(notes)
    return report


def _integer_truth_notes(pairs: Sequence[Pair]) -> list[str]:
    """The note of ``eval --pred/--gt`` for each ground truth stored as integers, from headers alone (a
    file that cannot be read fails when it is scored)."""
    notes = []
    for pair in pairs:
        try:
            info = cube_info(pair.cube)
        except Exception:  # its failure, with its own line, comes when it is scored
            continue
        note = integer_values_note(pair.cube, info.dtype, "ground truth", "scored")
        if note:
            notes.append(note)
    return notes


def _scan(root: Path, split: str, track: str, what: str = "") -> tuple[list[Pair], list[str], str]:
    try:
        found = scan(root, split, track)
    except ValueError as error:
        raise (BaselineError if what else DatasetError)(f"{what}{error}") from None
    return found.pairs, found.unpaired, found.layout


def _baseline(root: Path, track: str, network_input: str, name: str, events: EvalEvents) -> tuple[Method, dict]:
    """The baseline ``name`` ready to run, and what the report records of it."""
    if name == "otsu2018":
        from hsrecon.baselines import Otsu2018Baseline

        method = "colour-science Otsu 2018 reflectance recovery x illuminant (docs/metrics.md)"
        return Otsu2018Baseline(track_space(track)), {"method": method, "file_space": track_space(track)}
    fit_space = _baseline_space(name, network_input, track)
    if name in ("rpr2", "rpr3"):
        rpr = _fit_baseline(root, track, fit_space, name, events, degree=int(name[-1]))
        method = f"root-polynomial degree {rpr.fit.degree} (Finlayson 2015), least squares, ridge chosen on validation"
        return rpr, {"method": method, "fit_space": fit_space, **rpr.fit.facts(),
                     f"matrix_{len(rpr.fit.matrix)}x{rpr.fit.matrix.shape[1]}": rpr.fit.matrix.tolist()}  # fmt: skip
    loss = "mrae" if name == "linear-mrae" else "l2"
    baseline = _fit_baseline(root, track, fit_space, name, events, loss)
    method = "linear 3→31 minimum MRAE (IRLS)" if loss == "mrae" else "linear 3→31 least squares"
    return baseline, {"method": method, "fit_space": fit_space, **_baseline_facts(baseline)}


def _baseline_space(name: str, network_input: str, track: str) -> str:
    """The input space the baseline ``name`` is fitted and applied in."""
    if name == "linear":
        return network_input
    if name == "linear-stored":
        return "ntire2020-clean"  # that transform is value/max, exposure 1
    if name in ("linear-decoded", "linear-mrae", "rpr2", "rpr3"):
        return network_space("ntire2020-clean", track_space(track))[0]
    raise BaselineError(f"baseline {name!r}: choose from {', '.join(BASELINES)}")


def _fit_baseline(
    root: Path, track: str, space: str, name: str, events: EvalEvents, loss: str = "l2", degree: int | None = None
) -> LinearBaseline | RootPolynomialBaseline:
    """A fitted map (root-polynomial of ``degree``, else linear for ``loss``) on the training split."""
    pairs, _, _ = _scan(root, "train", track, f"baseline {name} needs a training split: ")
    if not pairs:
        raise BaselineError(f"baseline {name}: {root} has no complete training pairs to fit it on")
    events.fitting(name, len(pairs))
    on_image = lambda pair: events.fitted_image(name)  # noqa: E731 - one callback, two fits
    try:
        if degree is not None:
            baseline = fit_root_polynomial_baseline(pairs, degree=degree, input_space=space, on_image=on_image)
        else:
            baseline = fit_linear_baseline(pairs, input_space=space, on_image=on_image, loss=loss)
    except ValueError as error:
        raise BaselineError(f"baseline {name}: {error}") from None
    for line in baseline.skipped:
        events.fit_note(name, line)
    events.fitted(name)
    return baseline


def _baseline_facts(baseline: LinearBaseline) -> dict:
    return {"fit_images": baseline.images, "fit_pixels": baseline.samples, "matrix_3x31": baseline.matrix.tolist()}


# --- scoring files ------------------------------------------------------------------------------------


def _cube_files(folder: Path) -> list[Path]:
    """Cube files in ``folder`` (not its sub-folders), hidden temporaries excluded."""
    return sorted(
        p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in CUBE_SUFFIXES and not p.name.startswith(".")
    )


def pair_cube_files(pred_dir: Path, gt_dir: Path) -> tuple[list[tuple[Path, Path]], list[Failure]]:
    """Pair every prediction file with the ground-truth file of the same name.

    The name is the stem less a trailing ``_clean`` / ``_RealWorld`` (any case), so ``ARAD_HS_0451_clean.mat``
    scores against ``ARAD_HS_0451.mat``; suffixes (formats) need not agree, and one scene's prediction
    in several formats is scored once per file. A prediction without ground truth, ground truth without
    a prediction, or a name with several ground-truth files is a :class:`Failure`.
    """
    truths: dict[str, list[Path]] = {}
    for path in _cube_files(gt_dir):
        truths.setdefault(pairing_key(path.stem), []).append(path)
    pairs, failures, used = [], [], set()
    for pred in _cube_files(pred_dir):
        key = pairing_key(pred.stem)
        found = truths.get(key, [])
        if not found:
            failures.append(Failure(pred.name, f"{pred}: no ground truth named {key}.* in {gt_dir}"))
        elif len(found) > 1:
            names = ", ".join(p.name for p in found)
            failures.append(Failure(pred.name, f"{pred}: several ground-truth files for {key} ({names})"))
        else:
            pairs.append((pred, found[0]))
        used.add(key)
    for key, paths in sorted(truths.items()):
        if key not in used:
            failures.append(Failure(paths[0].name, f"{paths[0]}: no prediction named {key}.* in {pred_dir}"))
    return pairs, failures


def _declared(path: Path) -> CubeInfo:
    """What ``path`` says its cube is, checked to be numbers in three dimensions; nothing read yet."""
    try:
        info = cube_info(path)
    except (ValueError, OSError):
        raise
    except Exception as error:  # a hostile header can trip h5py, SciPy or SPy in ways of their own
        raise ValueError(f"{path}: unreadable ({type(error).__name__}: {error})") from None
    if info.dtype.kind not in "fiu":
        raise ValueError(f"{path}: its cube holds values of type {info.dtype}, not real numbers")
    if len(info.shape) != 3:
        raise ValueError(f"{path}: its cube has {len(info.shape)} dimensions, expected 3")
    return info


def _check_declared(pred_path: Path, pred: CubeInfo, gt_path: Path, gt: CubeInfo, budget: int) -> None:
    """Refuse, before reading either, a prediction whose declared size is not the ground truth's, or a
    pair over the memory budget (a sparse file can declare a terabyte in a few kilobytes)."""
    if not pred.same_size(gt):
        declared = f"shape {pred.describe()}, ground truth {gt_path.name} is {gt.describe()}"
        raise ValueError(f"{pred_path}: {declared} (as declared; not read)")
    needed = (pred.values + gt.values) * READ_BYTES_PER_VALUE
    if needed > budget:
        raise ValueError(
            f"{pred_path}: reading it and {gt_path.name} takes {needed / 2**30:.1f} GiB, over the memory budget "
            f"of {budget / 2**30:.1f} GiB (half the machine's memory)"
        )


def _read_declared(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        cube, wavelengths, _ = read_cube(path)
    except (ValueError, OSError):
        raise
    except Exception as error:  # as in _declared: the file fails alone, with one line
        raise ValueError(f"{path}: unreadable ({type(error).__name__}: {error})") from None
    return cube, wavelengths


def _stored_type_notes(path: Path, info: CubeInfo, role: str) -> list[str]:
    note = integer_values_note(path, info.dtype, role, "scored")
    return [note] if note else []


def _score_files(
    pred_path: Path,
    gt_path: Path,
    crop: int,
    method: str = "pred",
    on_rows: RowsObserver | None = None,
    budget: int | None = None,
) -> tuple[Scores, list[str]]:
    """Score one pair of files: declared sizes and types first, then the values; (scores, notes)."""
    pred_info, gt_info = _declared(pred_path), _declared(gt_path)
    _check_declared(pred_path, pred_info, gt_path, gt_info, memory_budget() if budget is None else budget)
    notes = [
        *_stored_type_notes(gt_path, gt_info, "ground truth"),
        *_stored_type_notes(pred_path, pred_info, "prediction"),
    ]
    pred, pred_wavelengths = _read_declared(pred_path)
    gt, gt_wavelengths = _read_declared(gt_path)
    if pred.shape != gt.shape:
        shape = "×".join(map(str, pred.shape))
        raise ValueError(f"{pred_path}: shape {shape}, ground truth {gt_path.name} is {'×'.join(map(str, gt.shape))}")
    _check_wavelengths(pred_path, pred_wavelengths, gt_wavelengths)
    check_finite(gt_path, gt, "ground-truth", "not scored")
    check_finite(pred_path, pred, "predicted", "not scored")
    scores = score(pred, gt, crop=crop)
    if on_rows is not None:
        on_rows(Rows(pred_path.name, method, 0, pred, gt, pred_wavelengths))
    return scores, notes


def evaluate_files(
    pred_dir: Path,
    gt_dir: Path,
    *,
    crop: int = 0,
    method: str = "pred",
    settings: dict | None = None,
    on_result: Callable[[str, ImageResult], None] | None = None,
    on_failure: Callable[[Failure], None] | None = None,
    on_rows: RowsObserver | None = None,
    on_note: Callable[[str], None] | None = None,
    memory_budget_bytes: int | None = None,
) -> Report:
    """Score every prediction file in ``pred_dir`` against its ground truth in ``gt_dir``
    (:func:`pair_cube_files`); a missing, unreadable or mis-shaped pair is a :class:`Failure`.
    ``on_rows`` sees each scored pair, whole (:class:`Rows` with ``y0`` 0).

    Every file is a claim until checked: declared sizes must match the ground truth's and fit in
    ``memory_budget_bytes`` (default :func:`memory_budget`) before anything is read, values must be real
    numbers, and a cube with NaN or infinity is a failure (counted in its line) while the others are
    scored. Integer cubes are scored as stored, with a note (``on_note``, :attr:`Report.notes`).
    """
    pairs, unpaired = pair_cube_files(Path(pred_dir), Path(gt_dir))
    report = Report(settings={**(settings or {}), "conventions": conventions(crop)}, results={method: []})
    for failure in unpaired:
        _fail(report, failure, on_failure)
    for pred_path, gt_path in pairs:
        try:
            scores, notes = _score_files(pred_path, gt_path, crop, method, on_rows, memory_budget_bytes)
        except (ValueError, OSError) as error:
            _fail(report, Failure(pred_path.name, _one_line(pred_path, error)), on_failure)
            continue
        for note in notes:
            report.notes.append(note)
            if on_note is not None:
                on_note(note)
        result = ImageResult(pred_path.name, scores)
        report.results[method].append(result)
        if on_result is not None:
            on_result(method, result)
    return report


# --- JSON and CSV -------------------------------------------------------------------------------------


def _write_atomic(path: Path, text: str) -> Path:
    """Write ``text`` under a temporary name beside ``path``, then rename: never a half-written file."""
    return write_atomic(Path(path), text.encode("utf-8"))


def write_json(report: Report, path: Path) -> Path:
    """The report as JSON (``Report.to_dict``), written atomically; non-finite numbers are null."""
    return _write_atomic(path, json.dumps(report.to_dict(), indent=2) + "\n")


CSV_COLUMNS = (
    "status",
    "method",
    "name",
    *METRICS,
    *SCALE_FREE,
    *GAINS,
    "seconds",
    "values",
    "mrae_excluded",
    "sam_excluded",
    "error",
)


def write_csv(report: Report, path: Path) -> Path:
    """One ``ok`` row per (method, image), then per method ``summary`` rows: ``mean`` (every score),
    ``median`` and ``p95`` (MRAE only); then one ``failed`` row per failure; written atomically."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for method, results in report.results.items():
        for result in results:
            writer.writerow({"status": "ok", "method": method, **_result_dict(result)})
        summary = report.summary(method)
        means = {metric: summary[f"{metric}_mean"] for metric in (*METRICS, *SCALE_FREE)}
        mean_row = {"status": "summary", "method": method, "name": "mean", **means, "seconds": summary["seconds_mean"]}
        writer.writerow(mean_row)
        writer.writerow({"status": "summary", "method": method, "name": "median", "mrae": summary["mrae_median"]})
        writer.writerow({"status": "summary", "method": method, "name": "p95", "mrae": summary["mrae_p95"]})
    for failure in report.failures:
        writer.writerow({"status": "failed", "name": failure.name, "error": failure.message})
    return _write_atomic(path, buffer.getvalue())
