"""Windows: cover any H×W with overlapping square windows and blend their outputs without seams.

The network knows nothing of windows (as in Real-ESRGAN's tiler); this module knows nothing of torch,
models or files. Its pieces are pure functions plus one small streaming accumulator:

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
from dataclasses import dataclass

import numpy as np

__all__ = [
    "DEFAULT_STRIDE_FRACTION",
    "RowBlender",
    "RowSource",
    "ShortImageBlender",
    "Window",
    "axis_starts",
    "blend_weights",
    "count_windows",
    "default_stride",
    "pad_to_window",
    "plan_windows",
]

# Stride as a fraction of the window: chosen by measurement (docs/benchmarks.md, "Windows").
DEFAULT_STRIDE_FRACTION = 0.5


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


def count_windows(height: int, width: int, *, size: int, stride: int) -> int:
    """How many windows cover a ``height``×``width`` image (an axis shorter than a window is padded to one)."""
    return len(axis_starts(max(height, size), size, stride)) * len(axis_starts(max(width, size), size, stride))


def blend_weights(size: int, stride: int) -> np.ndarray:
    """The ``size``×``size`` blending weight of one window (float32, strictly positive).

    Without overlap (``stride == size``) every weight is 1, so each pixel takes its one window's output
    unchanged. With overlap the weight is the separable ``sin²(π(i + ½)/size)`` bump: smooth, near zero at
    the window edge (≈ 6e-4 for 64 pixels, never zero, so border pixels covered by a single window keep a
    valid weight), and for ``stride == size/2`` the shifted copies sum to exactly 1.
    """
    if stride >= size:
        return np.ones((size, size), dtype=np.float32)
    ramp = np.sin(np.pi * (np.arange(size) + 0.5) / size) ** 2
    return np.outer(ramp, ramp).astype(np.float32)


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
    weights. Memory: a buffer of about ``size + stride`` rows × width × channels.
    """

    def __init__(self, width: int, channels: int, weights: np.ndarray, emit: Callable[[int, np.ndarray], None]) -> None:
        self.width = width
        self.channels = channels
        self.weights = weights
        self.emit = emit
        self.base = 0  # absolute row of buffer row 0
        self.used = 0  # buffer rows that hold data (the rest are zero)
        self.uniform = bool(np.all(weights == 1.0))
        capacity = 2 * weights.shape[0]
        self.acc = np.zeros((capacity, width, channels), dtype=np.float32)
        self.weight_sum = np.zeros((capacity, width), dtype=np.float32)

    def add(self, y: int, x: int, tile: np.ndarray) -> None:
        """Add one window's output ``tile`` (size × size × channels) at (y, x)."""
        size = tile.shape[0]
        if y < self.base:
            raise ValueError(f"window at row {y} arrived after rows up to {self.base} were emitted")
        self._ensure_capacity(y + size)
        top = y - self.base
        weighted = tile if self.uniform else tile * self.weights[:, :, None]
        self.acc[top : top + size, x : x + size] += weighted
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
        self.emit(self.base, self.acc[:count] / weight[:, :, None])
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


@dataclass
class RowSource:
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


class ShortImageBlender:
    """Blending for an image shorter than a window (one band of windows), along x in a transposed buffer.

    A :class:`RowBlender` keeps about two windows of full-width rows, which for a 100000×1 panorama is
    1.6 GB for one row of output. Here the windows' transposes go into a
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
