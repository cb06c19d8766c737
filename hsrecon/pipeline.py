"""The library's front door: RGB → 31-band cube, in blended windows, streamed into cube files.

Data flows one way: read (``hsrecon.io.rgb``) → map to the network's input space (``hsrecon.inputs``) →
window (``hsrecon.windows``) → infer (a :data:`Predictor`, e.g. :class:`TorchPredictor`) → blend
(:class:`~hsrecon.windows.RowBlender`) → write rows (``hsrecon.io``). Only a band of rows of the output is
ever in memory, so a 100-megapixel photo converts in bounded RAM.

Python users call :func:`reconstruct` (array in, array out) or :func:`convert_file` (file in, files out);
the CLI calls the same functions and only adds progress bars and a summary.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from hsrecon import __version__
from hsrecon.inference import prepare_model
from hsrecon.inputs import canonical_space, make_input_transform
from hsrecon.io import atomic_file, open_cube_writer
from hsrecon.io.base import preview_path
from hsrecon.io.rgb import RGBImage, read_rgb
from hsrecon.model import LWRDAN
from hsrecon.physics import WAVELENGTHS_NM
from hsrecon.windows import RowBlender, axis_starts, blend_weights, pad_to_window

__all__ = [
    "DEFAULT_STRIDE_FRACTION",
    "OUT_OF_RANGE",
    "ConvertResult",
    "DeviceOutOfMemoryError",
    "NonFiniteOutputError",
    "Predictor",
    "TorchPredictor",
    "convert_file",
    "default_stride",
    "reconstruct",
    "stream_reconstruct",
]

# A predictor maps a batch of windows N×k×k×3 (float32, NHWC) to N×k×k×bands (float32).
Predictor = Callable[[np.ndarray], np.ndarray]

# Stride as a fraction of the window: chosen by measurement (docs/benchmarks.md, "Windows").
DEFAULT_STRIDE_FRACTION = 0.5
# Cube values outside this interval are counted and reported: the published weights give out-of-range,
# oscillating spectra on inputs too bright for them (see docs/input-spaces.md).
OUT_OF_RANGE = (-0.05, 1.05)


class NonFiniteOutputError(RuntimeError):
    """The network produced NaN or infinity: never written as a valid cube."""


class DeviceOutOfMemoryError(RuntimeError):
    """The device ran out of memory even for one window per forward pass.

    Raised only after halving the batch down to one window. Every later image needs the same memory
    per window, so a batch of files should stop rather than fail each one the same way.
    """


def _is_out_of_memory(error: BaseException) -> bool:
    """torch's OutOfMemoryError (CUDA), MemoryError, or the RuntimeErrors other back ends raise for it."""
    if isinstance(error, DeviceOutOfMemoryError):
        return False
    if isinstance(error, torch.OutOfMemoryError | MemoryError):
        return True
    text = str(error).lower()
    return isinstance(error, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def _release_device_memory() -> None:
    """Return the failed batch's cached blocks to the device before retrying with fewer windows."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()


def default_stride(window: int) -> int:
    """The default stride for a window size, a multiple of 4 no larger than the window."""
    return max(4, int(window * DEFAULT_STRIDE_FRACTION) // 4 * 4)


def _dihedral(x: torch.Tensor, k: int) -> torch.Tensor:
    """The k-th of the 8 flips/rotations of an N×C×H×W batch (k = 0 is the identity)."""
    x = torch.flip(x, dims=(-1,)) if k >= 4 else x
    return torch.rot90(x, k % 4, dims=(-2, -1))


def _undo_dihedral(x: torch.Tensor, k: int) -> torch.Tensor:
    x = torch.rot90(x, -(k % 4), dims=(-2, -1))
    return torch.flip(x, dims=(-1,)) if k >= 4 else x


class TorchPredictor:
    """Run a torch model on batches of windows on one device, optionally with the 8-fold self-ensemble.

    ``precision`` ``fp16``/``bf16`` (GPU) runs the network under autocast; outputs come back float32.
    ``tta`` averages the outputs over the 8 flips/rotations of each window (8× the compute). With
    ``window`` given, an LWRDAN is first put in its inference form for that window size
    (:func:`hsrecon.inference.prepare_model`: BN folded, a provably constant branch frozen,
    channels-last), which leaves outputs unchanged to ~1e-6 relative and runs about twice as fast.

    Out of memory on the device, the same windows are run again in halves, down to one window per
    pass, and the size that worked is kept as :attr:`max_batch` for every later call (a long batch of
    files pays for the discovery once); ``on_note`` hears of each halving. Outputs are the same as with
    a batch that fits from the start. Out of memory at one window raises :class:`DeviceOutOfMemoryError`.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        device: str | torch.device = "cpu",
        precision: str = "fp32",
        tta: bool = False,
        window: int | None = None,
        on_note: Callable[[str], None] | None = None,
    ) -> None:
        self.device = torch.device(device)
        if window is not None and isinstance(model, LWRDAN):
            model = prepare_model(model, window=window)
        # Channels-last: the windows arrive as NHWC arrays, and oneDNN's convolutions run faster on it.
        self.model = model.eval().to(self.device, memory_format=torch.channels_last)
        self.dtype = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]
        self.tta = tta
        self.max_batch: int | None = None  # learned from out-of-memory errors; None: no limit met yet
        self.on_note = on_note

    def __call__(self, windows: np.ndarray) -> np.ndarray:
        if len(windows) == 0:
            return self._run(windows)
        size = self.max_batch or len(windows)
        outputs: list[np.ndarray] = []
        start = 0
        while start < len(windows):
            chunk = windows[start : start + size]
            result = self._attempt(chunk)
            if result is None:
                size = self._halve(len(chunk))
                continue
            outputs.append(result)
            start += len(chunk)
        return outputs[0] if len(outputs) == 1 else np.concatenate(outputs)

    def _attempt(self, windows: np.ndarray) -> np.ndarray | None:
        """The outputs, or None when the device ran out of memory (other errors propagate)."""
        try:
            return self._run(windows)
        except Exception as error:
            if not _is_out_of_memory(error):
                raise
        return None  # returned outside the handler, so the failed pass's tensors are already freed

    def _halve(self, failed: int) -> int:
        _release_device_memory()
        if failed <= 1:
            raise DeviceOutOfMemoryError(f"{self.device}: out of memory even with one window per pass")
        self.max_batch = (failed + 1) // 2
        if self.on_note is not None:
            self.on_note(f"{self.device}: out of memory with {failed} windows per pass; retrying with {self.max_batch}")
        return self.max_batch

    @torch.inference_mode()
    def _run(self, windows: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(windows)).to(self.device).permute(0, 3, 1, 2)  # NCHW view
        views = range(8) if self.tta else range(1)
        total = None
        for k in views:
            y = _undo_dihedral(self._forward(_dihedral(x, k)), k)
            total = y if total is None else total + y
        return (total / len(views)).permute(0, 2, 3, 1).float().cpu().numpy()

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.dtype is None:
            return self.model(x)
        with torch.autocast(device_type=self.device.type, dtype=self.dtype):
            return self.model(x).float()


@dataclass
class _RowSource:
    """Rows of the network input (transformed, padded to at least one window), made on demand.

    Only images smaller than a window in height are padded as a whole (they are small); everything else
    is transformed band by band, so the float32 input never exists for the whole image.
    """

    pixels: np.ndarray
    transform: Callable[[np.ndarray], np.ndarray]
    size: int

    def __post_init__(self) -> None:
        self.height, self.width = self.pixels.shape[:2]
        self.padded_height = max(self.height, self.size)
        self.padded_width = max(self.width, self.size)
        self._small = None
        if self.height < self.size:
            self._small = pad_to_window(self._rows(0, self.height), self.size, axis=0)

    def _rows(self, y0: int, y1: int) -> np.ndarray:
        rows = np.asarray(self.transform(self.pixels[y0:y1]), dtype=np.float32)
        return pad_to_window(rows, self.size, axis=1)

    def __call__(self, y0: int, y1: int) -> np.ndarray:
        return self._small[y0:y1] if self._small is not None else self._rows(y0, y1)


class _ShortImageBlender:
    """Blending for an image shorter than a window (one band of windows), along x in a transposed buffer.

    A :class:`RowBlender` keeps about two windows of full-width rows, which for a 100000×1 panorama is
    1.6 GB for one row of output (and seconds of page faults). Here the windows' transposes go into a
    RowBlender one window wide whose "rows" are the image's columns, finished as soon as no later window
    can reach them, and the (short) output is gathered and emitted at the end. The sums are the same,
    added in the same order, so the result is identical; the blend weights are symmetric.
    """

    def __init__(
        self, height: int, width: int, bands: int, weights: np.ndarray, emit: Callable[[int, np.ndarray], None]
    ) -> None:
        self.height, self.width, self.emit = height, width, emit
        self.out = np.empty((height, width, bands), dtype=np.float32)
        self.columns = RowBlender(weights.shape[0], bands, weights.T, self._store)

    def add(self, y: int, x: int, tile: np.ndarray) -> None:
        self.columns.finish_rows(x)  # windows arrive by increasing x: no later one reaches columns < x
        self.columns.add(x, y, tile.transpose(1, 0, 2))

    def finish_rows(self, upto: int) -> None:
        """Called with the padded height once every window is in; before that, with 0 (nothing to do)."""
        if upto <= 0:
            return
        self.columns.finish_rows(self.columns.base + self.columns.used)
        self.emit(0, self.out)

    def _store(self, x0: int, columns: np.ndarray) -> None:
        end = min(x0 + columns.shape[0], self.width)
        if x0 < end:
            self.out[:, x0:end] = columns[: end - x0, : self.height].transpose(1, 0, 2)


def stream_reconstruct(
    pixels: np.ndarray,
    transform: Callable[[np.ndarray], np.ndarray],
    predict: Predictor,
    emit: Callable[[int, np.ndarray], None],
    *,
    bands: int = len(WAVELENGTHS_NM),
    window: int = 64,
    stride: int | None = None,
    batch_size: int = 16,
    on_windows: Callable[[int], None] | None = None,
) -> int:
    """Reconstruct ``pixels`` (H×W×3) window by window, calling ``emit(y0, rows)`` with finished rows.

    ``rows`` has shape (h, W, bands), float32, in order from the top; every row is emitted exactly once.
    Returns the number of windows run. ``on_windows(n)`` reports progress after each batch.
    NaN or infinity in an output raises :class:`NonFiniteOutputError` naming the window, before any of
    that batch's rows are emitted.
    """
    stride = stride or default_stride(window)
    source = _RowSource(pixels, transform, window)
    height, width = source.height, source.width
    ys = axis_starts(source.padded_height, window, stride)
    xs = axis_starts(source.padded_width, window, stride)

    def emit_cropped(y0: int, rows: np.ndarray) -> None:
        if y0 < height:
            emit(y0, rows[: height - y0, :width])

    weights = blend_weights(window, stride)
    if height < window:
        blender = _ShortImageBlender(height, width, bands, weights, emit)
    else:
        blender = RowBlender(source.padded_width, bands, weights, emit_cropped)
    pending: list[tuple[int, int, int]] = []  # (band index, y, x)
    tiles: list[np.ndarray] = []

    def run_batch() -> None:
        outputs = predict(np.stack(tiles))
        if not np.isfinite(outputs).all():
            _band, y, x = pending[int(np.argwhere(~np.isfinite(outputs))[0][0])]
            raise NonFiniteOutputError(f"non-finite values in the network output for the window at ({y}, {x})")
        for (_, y, x), tile in zip(pending, outputs, strict=True):
            blender.add(y, x, tile)
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


def _window_of(model: LWRDAN, window: int | None) -> int:
    size = window or getattr(model, "window_size", None) or 64
    multiple = model.config.size_multiple
    if size % multiple:
        raise ValueError(f"window size {size} is not a multiple of {multiple}")
    return size


def reconstruct(
    rgb: np.ndarray,
    model: LWRDAN | None = None,
    *,
    weights: str | Path | None = None,
    input_space: str = "ntire2020-clean",
    exposure: float | None = None,
    max_code: float | None = None,
    window: int | None = None,
    stride: int | None = None,
    batch_size: int = 16,
    device: str | torch.device = "cpu",
    precision: str = "fp32",
    tta: bool = False,
) -> np.ndarray:
    """An H×W×3 image (uint8, uint16 or float) → its H×W×31 cube (float32), in blended windows.

    ``model`` defaults to the bundled weights (or ``weights``); ``window`` to the size the weights were
    trained on (64); ``stride`` to half the window. ``max_code`` is the value meaning full scale (255 for
    uint8, 65535 for uint16, 1.0 for float input when not given).
    """
    model, window = _model_and_window(model, weights, window)
    transform = make_input_transform(
        rgb, canonical_space(input_space), max_code=max_code or _max_code(rgb), exposure=exposure
    )
    predict = TorchPredictor(model, device=device, precision=precision, tta=tta, window=window)
    cube = np.empty((*rgb.shape[:2], model.config.out_bands), dtype=np.float32)

    def emit(y0: int, rows: np.ndarray) -> None:
        cube[y0 : y0 + rows.shape[0]] = rows

    stream_reconstruct(
        rgb,
        transform,
        predict,
        emit,
        bands=model.config.out_bands,
        window=window,
        stride=stride,
        batch_size=batch_size,
    )
    return cube


def _max_code(pixels: np.ndarray) -> float:
    if pixels.dtype == np.uint8:
        return 255.0
    if pixels.dtype == np.uint16:
        return 65535.0
    return 1.0


def _model_and_window(model: LWRDAN | None, weights: str | Path | None, window: int | None) -> tuple[LWRDAN, int]:
    if model is None:
        from hsrecon.weights import load_weights

        loaded = load_weights(weights)
        model = loaded.build()
        window = window or loaded.meta.window_size
    return model, _window_of(model, window)


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
        self.outside += int(np.count_nonzero((rows < low) | (rows > high)))
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


def _write_preview(path: Path, cube: np.ndarray) -> Path:
    """The sRGB preview, through a locked temporary like the cubes' (so a killed run's is cleaned up)."""
    import imageio.v3 as iio

    from hsrecon.preview import cube_to_srgb

    image = cube_to_srgb(cube)
    with atomic_file(path) as temp:
        iio.imwrite(temp, image, extension=".png")
    return path


def convert_file(
    source: Path,
    stem: Path,
    *,
    predict: Predictor,
    formats: Sequence[str] = ("envi",),
    input_space: str = "ntire2020-clean",
    exposure: float | None = None,
    window: int = 64,
    stride: int | None = None,
    batch_size: int = 16,
    dtype: str = "float32",
    interleave: str = "bsq",
    overwrite: bool = False,
    preview: bool = False,
    attrs: dict | None = None,
    image: RGBImage | None = None,
    on_windows: Callable[[int], None] | None = None,
) -> ConvertResult:
    """Convert one image file to cube files ``stem`` + the formats' suffixes; atomic per output.

    Every output is written under a temporary name and renamed only when complete; on any error all of
    this input's outputs are removed and the error propagates. ``image`` passes an already read image
    (the CLI reads the next file while the current one runs).
    """
    started = time.perf_counter()
    image = image or read_rgb(source)
    stem.parent.mkdir(parents=True, exist_ok=True)
    height, width = image.pixels.shape[:2]
    transform = make_input_transform(image, canonical_space(input_space), exposure=exposure)
    stride = stride or default_stride(window)
    meta = {
        # File names need not be UTF-8 (Linux): store a printable form, never fail on the attribute.
        "source": os.fsencode(source.name).decode("utf-8", "replace"),
        "input_space": canonical_space(input_space),
        "exposure": float(transform.exposure),
        "window": window,
        "stride": stride,
        "hsrecon_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **(attrs or {}),
    }
    ranges = _RangeCounter()
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

        def emit(y0: int, rows: np.ndarray) -> None:
            ranges(rows)
            if sampler is not None:
                sampler(y0, rows)
            for writer in writers:
                writer.write_rows(y0, rows)

        count = stream_reconstruct(
            image.pixels,
            transform,
            predict,
            emit,
            window=window,
            stride=stride,
            batch_size=batch_size,
            on_windows=on_windows,
        )
        outputs = [path for writer in writers for path in writer.paths]
    if sampler is not None:
        outputs.append(_write_preview(preview_path(stem), sampler.cube()))
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
    )
