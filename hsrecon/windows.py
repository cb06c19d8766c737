"""Windows: cover any H×W with overlapping square windows and blend their outputs without seams.

The network knows nothing of windows (as in Real-ESRGAN's tiler); this module knows nothing of torch,
models or files. Its pieces are pure functions plus one small streaming accumulator:

- :class:`Windowing`: how an image is cut (window, stride, pad, edge); each set of weights has its own
  measured default (:meth:`hsrecon.weights.Weights.windowing`, ``docs/benchmarks.md``).
- :func:`axis_starts` / :func:`plan_windows`: window positions. Windows step by ``stride``; the last one
  on each axis is shifted inward to end exactly at the border, so no window reaches past the image and
  no zero padding ever enters the network (the authors' own scheme zero-pads edge windows).
- :func:`blend_weights`: a smooth per-pixel weight, near zero at a window's edges and largest at its
  centre. The LWRDAN's coordinate channels make a pixel's output depend on where it sits in the window,
  so overlapping outputs differ slightly; weighting each window by how central the pixel is, and
  normalising by the summed weights, removes the seams instead of hiding them with context alone.
- :class:`RowBlender`: accumulates weighted window outputs in a band of rows only, and hands finished
  rows to a callback, so memory grows with the image *width* times the window size, never with its
  height: the output streams to disk. :class:`ShortImageBlender` does the same along the width for an
  image shorter than a window.
- :class:`RowSource`: the rows of the network input, made band by band from the image as the windows
  need them (an image smaller than a window is padded to one by :func:`pad_to_window`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

__all__ = [
    "BATCH_PIXELS",
    "DEFAULT_PAD",
    "DEFAULT_STRIDE_FRACTION",
    "EMIT_ROWS",
    "MAX_BATCH_PIXELS",
    "RowBlender",
    "RowSource",
    "ShortImageBlender",
    "Window",
    "Windowing",
    "axis_starts",
    "blend_weights",
    "count_windows",
    "default_stride",
    "pad_to_window",
    "plan_windows",
    "reflect_index",
]

# Stride as a fraction of the window: chosen by measurement (docs/benchmarks.md, "Windows").
DEFAULT_STRIDE_FRACTION = 0.5
EDGE_WEIGHT = 1e-6  # the weight of a window's distorted edge: negligible, never zero
# Pixels per forward pass by default: 16 windows of 64 px, 2 of 192 (the fastest on a 2-core CPU, and less
# memory than larger batches: docs/benchmarks.md).
BATCH_PIXELS = 1 << 16
# The most pixels one forward pass may take (--batch-size × window²): activations for 2²⁰ window pixels
# already take gigabytes; a larger batch is refused rather than left to exhaust the machine's memory.
MAX_BATCH_PIXELS = 1 << 20
# Rows handed on at a time: finished rows wait for the writer in pieces this high, not a whole stride
# (172 rows of a 100 MP image's width are 250 MB).
EMIT_ROWS = 32
# Reflection around the image for weights without a measured windowing: enough for the outer pixels to get
# context like any other (docs/benchmarks.md, "The image border").
DEFAULT_PAD = 16


@dataclass(frozen=True)
class Windowing:
    """How an image is cut into windows and blended back.

    ``window``-pixel squares every ``stride`` pixels, over the image surrounded by ``pad`` pixels of
    reflection (cropped off after); where windows overlap, each window's outer ``edge`` pixels, distorted
    by the network's zero padding, are left out of the blend (:func:`blend_weights`).

    ``least_pad``, when set, is the smallest pad measured to serve the border as well as ``pad``: an image
    whose windows a smaller pad covers with fewer windows gets it (:meth:`for_image`). A 482×512 image in
    192-px windows every 172 px needs 3×4 windows with 16 px of pad and 3×3 with 12: a quarter of its
    compute, for the same border (``docs/benchmarks.md``, "Small images").
    """

    window: int
    stride: int
    pad: int = 0
    edge: int = 0
    least_pad: int | None = None

    def for_image(self, height: int, width: int) -> Windowing:
        """This windowing for a ``height``×``width`` image: the largest pad from ``least_pad`` to ``pad`` that
        covers it with the fewest windows (self unchanged when ``least_pad`` is not set). The result has no
        ``least_pad``, so it is fixed: calling it again changes nothing."""
        if self.least_pad is None:
            return self
        fixed = replace(self, least_pad=None)
        candidates = [replace(fixed, pad=pad) for pad in range(self.pad, min(self.least_pad, self.pad) - 1, -1)]
        fewest = min(count_windows(height, width, candidate) for candidate in candidates)
        return next(candidate for candidate in candidates if count_windows(height, width, candidate) == fewest)

    def facts(self) -> dict[str, int]:
        """The fields as a plain dict for ``hsrecon info`` and metadata, ``least_pad`` only where it is set (a
        fixed windowing has none to report)."""
        fields = {"window": self.window, "stride": self.stride, "pad": self.pad, "edge": self.edge}
        return fields if self.least_pad is None else fields | {"least_pad": self.least_pad}

    @property
    def batch_size(self) -> int:
        """Windows per forward pass by default: :data:`BATCH_PIXELS` (rounded, at least one window)."""
        return max(1, round(BATCH_PIXELS / self.window**2))

    @property
    def windows_per_pixel(self) -> float:
        """How many times the network sees each pixel of a large image."""
        return (self.window / self.stride) ** 2


@dataclass(frozen=True)
class Window:
    """A ``size``×``size`` window whose top-left pixel is (``y``, ``x``)."""

    y: int
    x: int
    size: int

    @property
    def rows(self) -> slice:
        return slice(self.y, self.y + self.size)

    @property
    def cols(self) -> slice:
        return slice(self.x, self.x + self.size)


def axis_starts(length: int, size: int, stride: int) -> list[int]:
    """Window starts along one axis: 0, stride, 2·stride, …, and a last one ending exactly at ``length``.

    ``length`` must be at least ``size`` (pad smaller images first: :func:`pad_to_window`).
    """
    if size <= 0 or stride <= 0:
        raise ValueError(f"window size and stride must be positive, got {size} and {stride}")
    if stride > size:
        raise ValueError(f"stride {stride} larger than the window {size} would leave gaps")
    if length < size:
        raise ValueError(f"axis of {length} pixels is shorter than the window ({size}); pad it first")
    starts = list(range(0, length - size + 1, stride))
    if starts[-1] != length - size:
        starts.append(length - size)
    return starts


def plan_windows(height: int, width: int, *, size: int, stride: int) -> list[Window]:
    """All windows covering a ``height``×``width`` image, in raster order (row bands top to bottom)."""
    return [Window(y, x, size) for y in axis_starts(height, size, stride) for x in axis_starts(width, size, stride)]


def default_stride(window: int) -> int:
    """The default stride for a window size, a multiple of 4 no larger than the window."""
    return max(4, int(window * DEFAULT_STRIDE_FRACTION) // 4 * 4)


def count_windows(height: int, width: int, windowing: Windowing) -> int:
    """How many windows cover a ``height``×``width`` image, pad included (an axis shorter than a window is
    padded to one), with the pad :meth:`Windowing.for_image` gives it."""
    windowing = windowing.for_image(height, width)
    size, stride, pad = windowing.window, windowing.stride, windowing.pad
    rows = axis_starts(max(height + 2 * pad, size), size, stride)
    return len(rows) * len(axis_starts(max(width + 2 * pad, size), size, stride))


def blend_weights(size: int, stride: int, edge: int = 0) -> np.ndarray:
    """The ``size``×``size`` blending weight of one window (float32, strictly positive).

    Without overlap (``stride == size``) every weight is 1, so each pixel takes its one window's output
    unchanged. With an overlap of ``size − stride`` pixels the weight is separable: along each axis it is
    (almost) zero over the window's outer ``edge`` pixels, where the network's zero padding distorts its
    output, then a ``sin²`` ramp rises over the rest of the overlap (at most half the window), stays 1 in
    between, and falls back the same way at the far edge. Two neighbouring windows' ramps add to exactly 1
    across their overlap, so inside a window's core its own output is used unchanged and across an
    overlap one output fades into the other. For ``stride == size/2`` and no edge this is the
    ``sin²(π(i + ½)/size)`` bump over the whole window. No weight is zero (the ramp starts at ≈ 6e-4 for
    32 pixels, the edge is 1e-6), so a pixel covered by one window's edge alone keeps a valid weight.
    """
    overlap = size - stride
    if overlap <= 0:
        return np.ones((size, size), dtype=np.float32)
    ramp_length = min(overlap, size // 2) - 2 * edge
    if ramp_length < 1:
        raise ValueError(f"an edge of {edge} px leaves no ramp in an overlap of {overlap} px")
    index = np.arange(size) - edge
    rise = np.where(index < ramp_length, np.sin(np.pi / 2 * (index + 0.5) / ramp_length) ** 2, 1.0)
    rise = np.where(index < 0, EDGE_WEIGHT, rise)
    profile = rise * rise[::-1]
    return np.outer(profile, profile).astype(np.float32)


def pad_to_window(rows: np.ndarray, size: int, *, axis: int) -> np.ndarray:
    """Pad an axis shorter than ``size`` by reflection (symmetric for 1-pixel axes) so a window fits.

    Reflection keeps image statistics at the border; the padded part is cropped from the output.
    """
    length = rows.shape[axis]
    if length >= size:
        return rows
    pad = [(0, 0)] * rows.ndim
    pad[axis] = (0, size - length)
    mode = "reflect" if length > 1 else "edge"
    return np.pad(rows, pad, mode=mode)


class RowBlender:
    """Accumulate weighted window outputs over a band of rows; emit rows once no window can touch them.

    Windows must arrive in raster order (as :func:`plan_windows` gives them). After the windows of a row
    band are all added, :meth:`finish_rows` emits every row above the next band's first row as
    ``emit(y0, rows)`` with ``rows`` of shape (h, width, channels), float32, normalised by the summed
    weights, at most :data:`EMIT_ROWS` at a time. Memory: a buffer of one window's rows × width × channels
    (the band being added, which holds the previous band's overlap), as long as each band's rows above it
    are finished before its first window is added.
    """

    def __init__(self, width: int, channels: int, weights: np.ndarray, emit: Callable[[int, np.ndarray], None]) -> None:
        self.width = width
        self.channels = channels
        self.weights = weights
        self.emit = emit
        self.base = 0  # absolute row of buffer row 0
        self.used = 0  # buffer rows that hold data (the rest are zero)
        self.uniform = bool(np.all(weights == 1.0))
        capacity = weights.shape[0]
        self.acc = np.zeros((capacity, width, channels), dtype=np.float32)
        self.weight_sum = np.zeros((capacity, width), dtype=np.float32)

    def add(self, y: int, x: int, tile: np.ndarray, *, weighted: bool = False) -> None:
        """Add one window's output ``tile`` (size × size × channels) at (y, x); ``weighted``: the tile is
        already multiplied by the blend weights (done for a whole batch at once, faster)."""
        size = tile.shape[0]
        if y < self.base:
            raise ValueError(f"window at row {y} arrived after rows up to {self.base} were emitted")
        self._ensure_capacity(y + size)
        top = y - self.base
        self.acc[top : top + size, x : x + size] += tile if weighted or self.uniform else tile * self.weights[..., None]
        self.weight_sum[top : top + size, x : x + size] += self.weights
        self.used = max(self.used, top + size)

    def finish_rows(self, upto: int) -> None:
        """Emit rows [base, upto): no later window may cover them."""
        count = upto - self.base
        if count <= 0:
            return
        weight = self.weight_sum[:count]
        if not np.all(weight > 0):
            missing = int(np.argwhere(~(weight > 0))[0][0]) + self.base
            raise RuntimeError(f"row {missing} was not covered by any window")
        for first in range(0, count, EMIT_ROWS):  # in pieces: what waits to be written stays small
            last = min(first + EMIT_ROWS, count)
            self.emit(self.base + first, self.acc[first:last] / weight[first:last, :, None])
        self._shift(count)

    def _ensure_capacity(self, end_row: int) -> None:
        needed = end_row - self.base
        if needed <= self.acc.shape[0]:
            return
        grow = needed - self.acc.shape[0]
        self.acc = np.concatenate([self.acc, np.zeros((grow, self.width, self.channels), np.float32)])
        self.weight_sum = np.concatenate([self.weight_sum, np.zeros((grow, self.width), np.float32)])

    def _shift(self, count: int) -> None:
        """Drop the first ``count`` rows: move only the rows that hold data, zero what they leave."""
        keep = max(self.used - count, 0)
        self.acc[:keep] = self.acc[count : count + keep]
        self.acc[keep : self.used] = 0.0
        self.weight_sum[:keep] = self.weight_sum[count : count + keep]
        self.weight_sum[keep : self.used] = 0.0
        self.used = keep
        self.base += count


def reflect_index(index: np.ndarray, length: int) -> np.ndarray:
    """Source indices of an axis of ``length`` extended by reflection on both sides (``numpy.pad``'s
    ``reflect``, repeated as often as needed; an axis of one pixel repeats it)."""
    if length == 1:
        return np.zeros_like(index)
    period = 2 * (length - 1)
    folded = np.mod(index, period)
    return np.where(folded < length, folded, period - folded)


@dataclass
class RowSource:
    """Rows of the network input on a canvas: the image transformed, with ``pad`` pixels of reflection on
    every side, and reflected further where the image is smaller than a window. Made band by band on
    demand, so the float32 input never exists for the whole image.

    Canvas pixel (y, x) is image pixel (y − pad, x − pad), mirrored back into the image outside it. The
    pad gives the image's outer pixels context like any other pixel's (Real-ESRGAN's ``pre_pad``): the
    zero-padded edge of the windows that reach the border falls in the pad, and is cropped off.
    """

    pixels: np.ndarray
    transform: Callable[[np.ndarray], np.ndarray]
    size: int
    pad: int = 0

    def __post_init__(self) -> None:
        self.height, self.width = self.pixels.shape[:2]
        self.padded_height = max(self.height + 2 * self.pad, self.size)
        self.padded_width = max(self.width + 2 * self.pad, self.size)
        self._columns = None
        if self.padded_width != self.width:
            self._columns = reflect_index(np.arange(self.padded_width) - self.pad, self.width)

    def __call__(self, y0: int, y1: int) -> np.ndarray:
        """Canvas rows [y0, y1): (y1 − y0)×padded_width×3, float32."""
        first, last = y0 - self.pad, y1 - self.pad
        if 0 <= first and last <= self.height:
            rows = self.pixels[first:last]  # inside the image: a view
        else:
            rows = self.pixels[reflect_index(np.arange(first, last), self.height)]
        if self._columns is not None:
            rows = rows[:, self._columns]  # on the 3-byte pixels, before the float32 transform
        return np.asarray(self.transform(rows), dtype=np.float32)


class ShortImageBlender:
    """Blending for a canvas one window high (one band of windows), along x in a transposed buffer.

    A :class:`RowBlender` keeps a window of full-width rows, which for a 100000×1 panorama is 0.8 GB for
    one row of output. Here the windows' transposes go into a RowBlender one window wide whose "rows" are
    the canvas's columns, finished as soon as no later window can reach them, and the image's part of the
    (short) output is gathered and emitted at the end. The sums are the same, added in the same order, so
    the result is identical; the blend weights are symmetric. ``offset``: the canvas's pad.
    """

    def __init__(
        self,
        height: int,
        width: int,
        bands: int,
        weights: np.ndarray,
        emit: Callable[[int, np.ndarray], None],
        offset: int = 0,
    ) -> None:
        self.height, self.width, self.emit, self.offset = height, width, emit, offset
        self.out = np.empty((height, width, bands), dtype=np.float32)
        self.columns = RowBlender(weights.shape[0], bands, weights.T, self._store)

    def add(self, y: int, x: int, tile: np.ndarray, *, weighted: bool = False) -> None:
        self.columns.finish_rows(x)  # windows arrive by increasing x: no later one reaches columns < x
        self.columns.add(x, y, tile.transpose(1, 0, 2), weighted=weighted)

    def finish_rows(self, upto: int) -> None:
        """Called with the canvas height once every window is in; before that, with 0 (nothing to do)."""
        if upto <= 0:
            return
        self.columns.finish_rows(self.columns.base + self.columns.used)
        self.emit(0, self.out)

    def _store(self, x0: int, columns: np.ndarray) -> None:
        """Canvas columns [x0, x0 + n) are final: keep the image's part of them."""
        first, end = max(x0, self.offset), min(x0 + columns.shape[0], self.offset + self.width)
        if first < end:
            rows = slice(self.offset, self.offset + self.height)
            self.out[:, first - self.offset : end - self.offset] = columns[first - x0 : end - x0, rows].transpose(
                1, 0, 2
            )
