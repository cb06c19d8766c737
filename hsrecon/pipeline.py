"""The library's front door: RGB → 31-band cube, in blended windows, streamed into cube files.

Data flows one way: read (``hsrecon.io.rgb``) → map to the network's input space (the weights'
:meth:`~hsrecon.weights.Weights.transform`) → window (:class:`~hsrecon.windows.RowSource`) → infer (a
:data:`~hsrecon.inference.Predictor`, normally the weights' :meth:`~hsrecon.weights.Weights.predictor`) →
blend (:class:`~hsrecon.windows.RowBlender`) → write rows (``hsrecon.io``). Only a band of rows of the
output is ever in memory, so a 100-megapixel photo converts in bounded RAM.

Python users call :func:`reconstruct` (array in, array out) or :func:`convert_file` (file in, files out);
the CLI calls the same functions (through :func:`hsrecon.batch.convert_batch` for many files) and only
adds progress bars and a summary.
"""

from __future__ import annotations

import contextlib
import math
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from hsrecon import __version__
from hsrecon.inference import Predictor
from hsrecon.interrupts import deferred
from hsrecon.io import open_cube_writer
from hsrecon.io.base import preview_path
from hsrecon.io.rgb import RGBImage, read_rgb
from hsrecon.model import LWRDAN
from hsrecon.physics import WAVELENGTHS_NM
from hsrecon.plausible import RoundTripError, check_weights_space, project, rendering_for, rendering_is_known
from hsrecon.preview import write_preview
from hsrecon.weights import Weights, as_weights
from hsrecon.windows import (
    RowBlender,
    RowSource,
    ShortImageBlender,
    Windowing,
    axis_starts,
    blend_weights,
    default_stride,
)

__all__ = [
    "OUT_OF_RANGE",
    "ConvertResult",
    "NonFiniteOutputError",
    "convert_file",
    "describe_light",
    "for_image",
    "reconstruct",
    "stream_reconstruct",
]

# Cube values outside this interval are counted and reported: the published weights give out-of-range,
# oscillating spectra on inputs too bright for them (see docs/input-spaces.md).
OUT_OF_RANGE = (-0.05, 1.05)


class NonFiniteOutputError(RuntimeError):
    """The network produced NaN or infinity: never written as a valid cube."""


def _all_finite(values: np.ndarray) -> bool:
    """No NaN or infinity: one pass of a sum (which they survive), the exact test only when it says no."""
    with np.errstate(over="ignore", invalid="ignore"):
        return bool(np.isfinite(values.sum()) or np.isfinite(values).all())


def for_image(predict: Predictor, pixels: np.ndarray, transform: Callable[[np.ndarray], np.ndarray]) -> Predictor:
    """The predictor for this image: ``predict.for_image(pixels, transform)`` when it adapts to each image (a
    routed per-pixel map or a network over a routed prior, :mod:`hsrecon.lightroute`), else ``predict`` itself.
    Applying it twice is applying it once: the adapted predictor no longer adapts."""
    adapt = getattr(predict, "for_image", None)
    return adapt(pixels, transform) if adapt is not None else predict


def describe_light(predict: Predictor) -> str | None:
    """What a routed prior's router read of the image (``daylight 0.97, incandescent 0.03``), None otherwise."""
    light = getattr(predict, "light", None)
    return ", ".join(f"{route} {share:.2f}" for route, share in light.items()) if light else None


def stream_reconstruct(
    pixels: np.ndarray,
    transform: Callable[[np.ndarray], np.ndarray],
    predict: Predictor,
    emit: Callable[[int, np.ndarray], None],
    *,
    bands: int = len(WAVELENGTHS_NM),
    window: int = 64,
    stride: int | None = None,
    pad: int = 0,
    edge: int = 0,
    windowing: Windowing | None = None,
    batch_size: int | None = None,
    on_windows: Callable[[int], None] | None = None,
) -> int:
    """Reconstruct ``pixels`` (H×W×3) window by window, calling ``emit(y0, rows)`` with finished rows.

    ``rows`` has shape (h, W, bands), float32, in order from the top; every row is emitted exactly once.
    ``windowing`` (or ``window``, ``stride``, ``pad``, ``edge`` one by one) says how the image is cut:
    ``pad`` pixels of reflection surround it before windowing and are cropped off after
    (:class:`~hsrecon.windows.RowSource`), each window's ``edge`` is left out of the blend. Returns the
    number of windows run, ``batch_size`` at a time (default: :attr:`Windowing.batch_size`).
    ``on_windows(n)`` reports progress after each batch. NaN or infinity in an
    output raises :class:`NonFiniteOutputError` naming the window (image coordinates of its top-left
    pixel), before any of that batch's rows are emitted. Windows of one pixel, stride 1, no pad (a per-pixel
    map's windowing) need no cutting or blending: they run as blocks of whole rows (:func:`_stream_pixels`).
    A ``predict`` with a ``for_image(pixels, transform)`` method (a routed per-pixel map's) is first given
    the image and replaced by the predictor it returns.
    """
    if windowing is None:
        windowing = Windowing(window, stride or default_stride(window), pad, edge)
    windowing = windowing.for_image(*pixels.shape[:2])
    predict = for_image(predict, pixels, transform)
    window, stride, pad, edge = windowing.window, windowing.stride, windowing.pad, windowing.edge
    batch_size = batch_size or windowing.batch_size
    if (window, stride, pad) == (1, 1, 0):  # one pixel alone (a per-pixel map): no cut, overlap or blend
        return _stream_pixels(pixels, transform, predict, emit, batch_size, on_windows)
    source = RowSource(pixels, transform, window, pad)
    height, width = source.height, source.width
    ys = axis_starts(source.padded_height, window, stride)
    xs = axis_starts(source.padded_width, window, stride)

    def emit_cropped(y0: int, rows: np.ndarray) -> None:
        """Canvas rows from y0 → the image's rows among them."""
        first, end = max(y0, pad), min(y0 + rows.shape[0], pad + height)
        if first < end:
            emit(first - pad, rows[first - y0 : end - y0, pad : pad + width])

    weights = blend_weights(window, stride, edge)
    weighting = torch.from_numpy(weights)[None, :, :, None]  # applied to a whole batch in place, by torch
    if len(ys) == 1:
        blender = ShortImageBlender(height, width, bands, weights, emit, offset=pad)
    else:
        blender = RowBlender(source.padded_width, bands, weights, emit_cropped)
    pending: list[tuple[int, int, int]] = []  # (band index, y, x)
    tiles: list[np.ndarray] = []

    def run_batch() -> None:
        outputs = np.require(predict(np.stack(tiles)), np.float32, ["C", "W"])
        if not _all_finite(outputs):
            _band, y, x = pending[int(np.argwhere(~np.isfinite(outputs))[0][0])]
            where = f"({y - pad}, {x - pad})"
            raise NonFiniteOutputError(f"non-finite values in the network output for the window at {where}")
        torch.from_numpy(outputs).mul_(weighting)
        for (_, y, x), tile in zip(pending, outputs, strict=True):
            if len(ys) > 1:
                blender.finish_rows(y)  # a band's first window: the rows above it are final (buffer: one window)
            blender.add(y, x, tile, weighted=True)
        last_band, _, last_x = pending[-1]
        done = last_band if last_x == xs[-1] else last_band - 1
        blender.finish_rows(ys[done + 1] if done + 1 < len(ys) else source.padded_height)
        if on_windows is not None:
            on_windows(len(pending))
        pending.clear()
        tiles.clear()

    for band, y in enumerate(ys):
        strip = source(y, y + window)
        for x in xs:
            pending.append((band, y, x))
            tiles.append(strip[:, x : x + window])
            if len(pending) >= batch_size:
                run_batch()
    if pending:
        run_batch()
    return len(ys) * len(xs)


def _stream_pixels(
    pixels: np.ndarray,
    transform: Callable[[np.ndarray], np.ndarray],
    predict: Predictor,
    emit: Callable[[int, np.ndarray], None],
    batch_size: int,
    on_windows: Callable[[int], None] | None,
) -> int:
    """:func:`stream_reconstruct` for 1-pixel windows, stride 1, no pad: the same outputs (each pixel is
    its own window, weighted 1) with none of the cost. Blocks of whole rows, about ``batch_size`` pixels
    each (at least one row), go to ``predict`` as one batch of 1×1 windows, a reshape, not a copy."""
    height, width = pixels.shape[:2]
    rows = max(1, batch_size // max(width, 1))
    for y0 in range(0, height, rows):
        block = np.asarray(transform(pixels[y0 : y0 + rows]), dtype=np.float32)
        outputs = np.require(predict(block.reshape(-1, 1, 1, block.shape[-1])), np.float32, ["C"])
        if not _all_finite(outputs):
            index = int(np.argwhere(~np.isfinite(outputs))[0][0])
            where = f"({y0 + index // width}, {index % width})"
            raise NonFiniteOutputError(f"non-finite values in the network output for the window at {where}")
        emit(y0, outputs.reshape(block.shape[0], width, -1))
        if on_windows is not None:
            on_windows(block.shape[0] * width)
    return height * width


def reconstruct(
    rgb: np.ndarray,
    model: Weights | LWRDAN | None = None,
    *,
    weights: Weights | str | os.PathLike | None = None,
    input_space: str | None = None,
    exposure: float | None = None,
    max_code: float | None = None,
    window: int | None = None,
    stride: int | None = None,
    pad: int | None = None,
    batch_size: int | None = None,
    device: str | torch.device = "cpu",
    precision: str = "fp32",
    tta: bool = False,
    plausible: bool = False,
) -> np.ndarray:
    """An H×W×3 image (uint8, uint16 or float) → its H×W×31 cube (float32), in blended windows.

    ``model`` is loaded weights (:func:`hsrecon.weights.load_weights`), or a network: one built from
    weights (:func:`~hsrecon.weights.load_model`) runs in their own windows; one that carries no weights
    metadata needs ``window`` (ValueError without it: its training window is not known, and a guess would
    run the wrong windows silently). Without ``model``, ``weights`` names them (a bundled name or a path;
    default: the bundled default). ``window``, ``stride`` and ``pad`` default to the weights'
    own (:meth:`~hsrecon.weights.Weights.windowing`); ``input_space`` (what ``rgb`` holds) to the weights'
    own. ``max_code`` is the value meaning full scale (255 for uint8, 65535 for uint16, 1.0 for float
    input when not given). ``plausible`` projects every spectrum onto those that render exactly to its
    pixel (:mod:`hsrecon.plausible`; the weights must take clean-space input, as the bundled ones do).
    """
    loaded = as_weights(model if model is not None else weights, window=window)
    if plausible:
        check_weights_space(loaded.input_space, loaded.name)
    windowing = loaded.windowing(window, stride, pad)
    transform = loaded.transform(rgb, input_space, exposure=exposure, max_code=max_code)
    predict = loaded.predictor(device=device, precision=precision, tta=tta, window=windowing.window)
    cube = np.empty((*rgb.shape[:2], loaded.bands), dtype=np.float32)
    rendering = rendering_for(transform) if plausible else None

    def emit(y0: int, rows: np.ndarray) -> None:
        if rendering is not None:
            rows = project(rows, rgb[y0 : y0 + rows.shape[0]], rendering)
        cube[y0 : y0 + rows.shape[0]] = rows

    stream_reconstruct(rgb, transform, predict, emit, bands=loaded.bands, windowing=windowing, batch_size=batch_size)
    return cube


@dataclass
class ConvertResult:
    """What :func:`convert_file` did for one input."""

    source: Path
    outputs: list[Path]
    height: int
    width: int
    windows: int
    seconds: float
    out_of_range: float  # share of cube values outside OUT_OF_RANGE
    notes: tuple[str, ...] = ()
    exposure: float = 1.0
    # how far the written cube renders from the input, in 8-bit codes (hsrecon.plausible.RoundTripError);
    # None when the rendering is unknown (weights that do not take clean-space input)
    round_trip_rms: float | None = None
    round_trip_max: float | None = None
    plausible: bool = False

    @property
    def megapixels(self) -> float:
        return self.height * self.width / 1e6


@dataclass
class _RangeCounter:
    """Counts cube values outside :data:`OUT_OF_RANGE` as rows stream past."""

    outside: int = 0
    total: int = 0

    def __call__(self, rows: np.ndarray) -> None:
        low, high = OUT_OF_RANGE
        self.outside += int(np.count_nonzero(rows < low)) + int(np.count_nonzero(rows > high))
        self.total += rows.size

    @property
    def share(self) -> float:
        return self.outside / self.total if self.total else 0.0


@dataclass
class _PreviewSampler:
    """Keeps every ``step``-th pixel of the cube as rows stream past, for an sRGB preview image."""

    height: int
    width: int
    max_side: int = 1024
    rows: list[np.ndarray] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.step = max(1, math.ceil(max(self.height, self.width) / self.max_side))

    def __call__(self, y0: int, rows: np.ndarray) -> None:
        first = (-y0) % self.step
        self.rows.append(np.asarray(rows[first :: self.step, :: self.step], dtype=np.float32))

    def cube(self) -> np.ndarray:
        return np.concatenate(self.rows, axis=0)


class _WriteBehind:
    """Hands rows to ``write`` on a thread of its own, so the disk works while the network computes.

    Rows are written in order; one batch of rows waits at most (two in flight: bounded memory). An error
    of ``write`` is raised again, as it was, at the next hand-over or at the end. Leaving the ``with``
    block normally waits for every row; leaving it on an error drops the rows not yet written.
    """

    def __init__(self, write: Callable[[int, np.ndarray], None]) -> None:
        self._write = write
        self._queue: queue.Queue = queue.Queue(maxsize=1)
        self._error: BaseException | None = None
        self._dropping = False
        self._thread = threading.Thread(target=self._run, name="hsrecon-write", daemon=True)

    def __enter__(self) -> _WriteBehind:
        self._thread.start()
        return self

    def __call__(self, y0: int, rows: np.ndarray) -> None:
        self._raise_error()
        self._queue.put((y0, rows))

    def __exit__(self, kind, error, traceback) -> None:
        self._dropping = kind is not None
        with deferred():  # an interrupt now waits for the thread: no write runs on while the files close
            self._queue.put(None)
            self._thread.join()
        if kind is None:
            self._raise_error()

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            if self._error is None and not self._dropping:
                try:
                    self._write(*item)
                except BaseException as error:  # re-raised in the caller's thread
                    self._error = error

    def _raise_error(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            self._dropping = True
            raise error


def convert_file(
    source: Path,
    stem: Path,
    *,
    weights: Weights | str | os.PathLike | None = None,
    predict: Predictor | None = None,
    formats: Sequence[str] = ("envi",),
    input_space: str | None = None,
    exposure: float | None = None,
    window: int | None = None,
    stride: int | None = None,
    pad: int | None = None,
    batch_size: int | None = None,
    dtype: str = "float32",
    interleave: str = "bsq",
    overwrite: bool = False,
    preview: bool = False,
    attrs: dict | None = None,
    image: RGBImage | None = None,
    on_windows: Callable[[int], None] | None = None,
    plausible: bool = False,
) -> ConvertResult:
    """Convert one image file to cube files ``stem`` + the formats' suffixes; atomic per output.

    ``weights`` as for :func:`reconstruct`; ``predict`` runs them (default: their
    :meth:`~hsrecon.weights.Weights.predictor` on the CPU; a batch of files passes one, built once).
    ``input_space`` is what the file holds (default: the weights' own). Every output is written under a
    temporary name and renamed only when complete; on any error all of this input's outputs are removed
    and the error propagates. ``image`` passes an already read image (a batch reads the next file while
    the current one runs). ``plausible`` projects each spectrum onto those rendering exactly to its pixel
    (:mod:`hsrecon.plausible`; ValueError for weights whose output's rendering is unknown, i.e. not
    trained on clean-space input). For the others, the result holds the round-trip error.
    """
    started = time.perf_counter()
    loaded = as_weights(weights, window=window)
    if plausible:
        check_weights_space(loaded.input_space, loaded.name)
    windowing = loaded.windowing(window, stride, pad)
    predict = predict or loaded.predictor(window=windowing.window)
    image = image or read_rgb(source)
    stem.parent.mkdir(parents=True, exist_ok=True)
    height, width = image.pixels.shape[:2]
    windowing = windowing.for_image(height, width)  # the pad this image gets, as its files record it
    transform = loaded.transform(image, input_space, exposure=exposure)
    predict = for_image(predict, image.pixels, transform)  # a routed map reads the light here, once
    light = describe_light(predict)
    meta = {
        # File names need not be UTF-8 (Linux): store a printable form, never fail on the attribute.
        "source": os.fsencode(source.name).decode("utf-8", "replace"),
        "input_space": transform.space,
        "exposure": float(transform.exposure),
        "window": windowing.window,
        "stride": windowing.stride,
        "pad": windowing.pad,
        "edge": windowing.edge,
        "plausible": int(plausible),  # 1: spectra projected to render exactly to the input
        "hsrecon_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "weights": loaded.name,
        **({"light": light} if light else {}),  # what a routed prior's router read of the image (map or network)
        **(attrs or {}),
    }
    ranges = _RangeCounter()
    round_trip = RoundTripError(rendering_for(transform)) if rendering_is_known(loaded.input_space) else None
    sampler = _PreviewSampler(height, width) if preview else None
    with contextlib.ExitStack() as stack:
        writers = [
            stack.enter_context(
                open_cube_writer(
                    stem,
                    fmt,
                    height=height,
                    width=width,
                    wavelengths_nm=WAVELENGTHS_NM,
                    dtype=dtype,
                    interleave=interleave,
                    attrs=meta,
                    overwrite=overwrite,
                )
            )
            for fmt in formats
        ]

        def write(y0: int, rows: np.ndarray) -> None:
            if round_trip is not None:
                source = image.pixels[y0 : y0 + rows.shape[0]]
                if plausible:
                    rows = project(rows, source, round_trip.rendering)
                round_trip(rows, source)
            ranges(rows)
            if sampler is not None:
                sampler(y0, rows)
            for writer in writers:
                writer.write_rows(y0, rows)

        emit = stack.enter_context(_WriteBehind(write))  # left first: every row is written, or none more
        count = stream_reconstruct(
            image.pixels,
            transform,
            predict,
            emit,
            bands=loaded.bands,
            windowing=windowing,
            batch_size=batch_size,
            on_windows=on_windows,
        )
        outputs = [path for writer in writers for path in writer.paths]
    if sampler is not None:
        outputs.append(write_preview(preview_path(stem), sampler.cube()))
    return ConvertResult(
        source=source,
        outputs=outputs,
        height=height,
        width=width,
        windows=count,
        seconds=time.perf_counter() - started,
        out_of_range=ranges.share,
        notes=image.notes,
        exposure=float(transform.exposure),
        round_trip_rms=round_trip.rms if round_trip is not None else None,
        round_trip_max=round_trip.max if round_trip is not None else None,
        plausible=plausible,
    )
