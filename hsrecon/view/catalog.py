"""What ``hsrecon view`` shows: the cubes named on the command line, each with its truth and photo.

A :class:`Catalog` is the whole of what the server can reach: entries addressed by their index, never
by a path. Each :class:`Entry` answers the page's questions (an image of a region of one layer, a
pixel's spectrum, the image's scores) by reading only what is needed from its files
(:mod:`hsrecon.view.sources`) and rendering it (:mod:`hsrecon.view.render`).

The first view of a cube is its overview, a strided sample with at most :data:`OVERVIEW_MAX_SIDE`
pixels on the longer side, read once and kept (for the two most recently viewed cubes): band changes
and the stretch's percentiles then need no file access, and the sRGB exposure and the stretch are set
from the whole image, so zoomed views keep the whole view's colours. Zoomed regions are read from the
file at the screen's resolution, down to one file pixel per screen pixel.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from hsrecon.view.render import apply_colormap, png_bytes, stretch_range
from hsrecon.view.sources import CubeSource, PhotoSource, open_cube_source, overview_step

__all__ = [
    "LAYERS",
    "MAX_IMAGE_PIXELS",
    "OVERVIEW_MAX_SIDE",
    "Catalog",
    "Entry",
    "ImageRequest",
    "RenderedImage",
    "build_catalog",
]

OVERVIEW_MAX_SIDE = 1024
MAX_IMAGE_PIXELS = 4096 * 4096  # the largest image one request may ask for (a 4K screen, twice over)
KEPT_OVERVIEWS = 2
OVERVIEW_BLOCK_ROWS = 64  # sampled rows per read of the overview (the progress the page shows)
SCORE_BLOCK_VALUES = 1 << 22  # cube values per block of rows scored (the metrics work in float64)
RENDER_BLOCK_VALUES = 1 << 23  # cube values per block of an image being rendered (32 MB of float32)
WAVELENGTH_TOLERANCE_NM = 0.5
LAYERS = ("srgb", "band", "truth", "mrae", "photo")
"""``srgb``: the cube in sRGB; ``band``: one band through a colour map; ``truth``: the ground truth in sRGB;
``mrae``: each pixel's MRAE against the truth; ``photo``: the RGB photo as stored."""


@dataclass(frozen=True)
class ImageRequest:
    """One image of one layer: the region ``x0, y0`` + ``cols × step``, ``rows × step`` sampled every
    ``step`` pixels. ``lo``/``hi`` fix the stretch; else the ``low_percent``/``high_percent`` percentiles
    of the whole image's overview set it."""

    layer: str
    x0: int
    y0: int
    step: int
    cols: int
    rows: int
    band: int = 0
    colormap: str = "viridis"
    low_percent: float = 2.0
    high_percent: float = 98.0
    lo: float | None = None
    hi: float | None = None

    @property
    def row_slice(self) -> slice:
        return slice(self.y0, self.y0 + (self.rows - 1) * self.step + 1, self.step)

    @property
    def col_slice(self) -> slice:
        return slice(self.x0, self.x0 + (self.cols - 1) * self.step + 1, self.step)


@dataclass(frozen=True)
class RenderedImage:
    """A PNG, and the stretch it used (None for sRGB and photo layers)."""

    png: bytes
    lo: float | None = None
    hi: float | None = None


@dataclass
class _Overview:
    cube: np.ndarray
    truth: np.ndarray | None
    wavelengths_nm: np.ndarray
    ranges: dict
    _white: float | None = None

    @property
    def white(self) -> float:
        """The linear sRGB value shown as white, from the truth when there is one (so the prediction is
        shown at the truth's exposure and a brightness error shows)."""
        if self._white is None:
            from hsrecon.preview import cube_to_linear_srgb, srgb_white

            shown = self.cube if self.truth is None else self.truth
            self._white = srgb_white(cube_to_linear_srgb(shown, self.wavelengths_nm, dtype=np.float32))
        return self._white


class Entry:
    """One cube with, optionally, its ground truth and its photo (both of the cube's size)."""

    def __init__(self, cube: CubeSource, truth: CubeSource | None = None, photo: PhotoSource | None = None) -> None:
        self.cube, self.truth, self.photo = cube, truth, photo
        self.name = cube.path.name
        self.overview_step = overview_step(cube.height, cube.width, OVERVIEW_MAX_SIDE)
        self.overview_progress = (0, 0)  # sampled rows read, of; while the overview is being read
        self._scores: dict = {"state": "none"} if truth is None else {"state": "idle"}
        self._scores_lock = threading.Lock()

    def describe(self) -> dict[str, object]:
        """What the page needs to lay the cube out (no file paths: names only)."""
        return {
            **self.cube.describe(),
            "truth": None if self.truth is None else self.truth.path.name,
            "photo": None if self.photo is None else self.photo.path.name,
            "overview_step": self.overview_step,
            "srgb": self.has_srgb,
            "attrs": {str(k): str(v) for k, v in self.cube.attrs.items()},
        }

    @property
    def has_srgb(self) -> bool:
        """Whether any band is visible, so the cube has an sRGB rendering."""
        cmf_range = (360.0, 830.0)  # CIE 1931 2° as tabulated by colour-science
        return bool(np.any((self.cube.wavelengths_nm >= cmf_range[0]) & (self.cube.wavelengths_nm <= cmf_range[1])))

    def check(self, request: ImageRequest) -> None:
        """ValueError for a request this entry cannot answer (layer, band, region, size)."""
        if request.layer not in LAYERS:
            raise ValueError(f"layer {request.layer!r}: choose from {', '.join(LAYERS)}")
        if request.layer in ("truth", "mrae") and self.truth is None:
            raise ValueError(f"layer {request.layer!r}: {self.name} has no ground truth")
        if request.layer in ("srgb", "truth") and not self.has_srgb:
            raise ValueError(f"layer {request.layer!r}: {self.name} has no band between 360 and 830 nm")
        if request.layer == "photo" and self.photo is None:
            raise ValueError(f"layer 'photo': {self.name} has no photo")
        if not 0 <= request.band < self.cube.bands:
            raise ValueError(f"band {request.band}: the cube has bands 0..{self.cube.bands - 1}")
        if request.step < 1 or request.cols < 1 or request.rows < 1:
            raise ValueError("step, cols and rows must be at least 1")
        if request.cols * request.rows > MAX_IMAGE_PIXELS:
            raise ValueError(f"{request.cols}×{request.rows} pixels: at most {MAX_IMAGE_PIXELS} per image")
        last_x = request.x0 + (request.cols - 1) * request.step
        last_y = request.y0 + (request.rows - 1) * request.step
        if request.x0 < 0 or request.y0 < 0 or last_x >= self.cube.width or last_y >= self.cube.height:
            raise ValueError(f"region outside the {self.cube.width}×{self.cube.height} image")
        if not 0 <= request.low_percent < request.high_percent <= 100:
            raise ValueError("percentiles: 0 <= low < high <= 100")

    # --- pixels -------------------------------------------------------------------------------------

    def spectrum(self, x: int, y: int) -> dict[str, object]:
        """Pixel (x, y): its values, the truth's and the pixel's MRAE when there is a truth."""
        from hsrecon.metrics import pixel_mrae

        values = self.cube.spectrum(y, x)
        answer: dict[str, object] = {"x": x, "y": y, "values": _json_floats(values), "truth": None, "mrae": None}
        if self.truth is not None:
            truth = self.truth.spectrum(y, x)
            answer["truth"] = _json_floats(truth)
            answer["mrae"] = _json_float(float(pixel_mrae(values[None, None], truth[None, None])[0, 0]))
        return answer

    def render(self, request: ImageRequest, catalog: Catalog) -> RenderedImage:
        """The PNG of one layer over one region (``check`` it first), computed in blocks of rows so that
        memory stays at a block's worth of the cube whatever the region's size."""
        from hsrecon.preview import cube_to_linear_srgb, encode_srgb

        overview = catalog.overview(self)
        if request.layer == "photo":
            assert self.photo is not None
            return RenderedImage(png_bytes(self.photo.read(request.row_slice, request.col_slice)))
        if request.layer in ("srgb", "truth"):
            source = "truth" if request.layer == "truth" else "cube"
            wavelengths, white = self.cube.wavelengths_nm, overview.white

            def srgb(part: ImageRequest) -> np.ndarray:
                region = self._region(source, part, overview)
                return encode_srgb(cube_to_linear_srgb(region, wavelengths, dtype=np.float32), white)

            return RenderedImage(png_bytes(self._blockwise(request, srgb)))
        lo, hi = request.lo, request.hi
        if lo is None or hi is None:
            lo, hi = self._range(request, overview)

        def mapped(part: ImageRequest) -> np.ndarray:
            return apply_colormap(self._values(part, overview), lo, hi, request.colormap)

        return RenderedImage(png_bytes(self._blockwise(request, mapped)), lo, hi)

    def _blockwise(self, request: ImageRequest, render_part) -> np.ndarray:
        """``render_part`` over the request's rows in blocks of about :data:`RENDER_BLOCK_VALUES` values."""
        per_block = max(1, RENDER_BLOCK_VALUES // (request.cols * self.cube.bands))
        parts = [
            render_part(replace(request, y0=request.y0 + k * request.step, rows=min(per_block, request.rows - k)))
            for k in range(0, request.rows, per_block)
        ]
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def _values(self, request: ImageRequest, overview: _Overview) -> np.ndarray:
        """The band or the MRAE map over the request's region."""
        from hsrecon.metrics import pixel_mrae

        if request.layer == "mrae":
            return pixel_mrae(self._region("cube", request, overview), self._region("truth", request, overview))
        sampled = self._from_overview(overview.cube, request)
        if sampled is not None:
            return sampled[..., request.band]
        band = getattr(self.cube, "band", None)  # ENVI reads one plane of the file
        if band is not None:
            return band(request.band, request.row_slice, request.col_slice)
        return self.cube.read(request.row_slice, request.col_slice)[..., request.band]

    def _range(self, request: ImageRequest, overview: _Overview) -> tuple[float, float]:
        """The stretch from the whole image's overview, cached per layer, band and percentiles."""
        band = request.band if request.layer == "band" else -1
        key = (request.layer, band, request.low_percent, request.high_percent)
        found = overview.ranges.get(key)
        if found is None:
            from hsrecon.metrics import pixel_mrae

            if request.layer == "mrae":
                assert overview.truth is not None
                values = pixel_mrae(overview.cube, overview.truth)
            else:
                values = overview.cube[..., request.band]
            found = overview.ranges[key] = stretch_range(values, request.low_percent, request.high_percent)
        return found

    def _region(self, source: str, request: ImageRequest, overview: _Overview) -> np.ndarray:
        cached = self._from_overview(overview.cube if source == "cube" else overview.truth, request)
        if cached is not None:
            return cached
        reader = self.cube if source == "cube" else self.truth
        assert reader is not None
        return reader.read(request.row_slice, request.col_slice)

    def _from_overview(self, sample: np.ndarray | None, request: ImageRequest) -> np.ndarray | None:
        """The request cut from the overview, when its grid is a sub-grid of the overview's."""
        ov = self.overview_step
        if sample is None or request.step % ov or request.x0 % ov or request.y0 % ov:
            return None
        k = request.step // ov
        rows = slice(request.y0 // ov, request.y0 // ov + (request.rows - 1) * k + 1, k)
        cols = slice(request.x0 // ov, request.x0 // ov + (request.cols - 1) * k + 1, k)
        return sample[rows, cols]

    def read_overview(self) -> _Overview:
        """Read the overview of the cube (and truth) from the files: the one slow step of a first view.

        Read in bands of :data:`OVERVIEW_BLOCK_ROWS` sampled rows, so ``overview_progress`` can tell the
        page how far it is (a compressed HDF5 cube must have every chunk decompressed once).
        """
        step = self.overview_step
        cols = slice(0, self.cube.width, step)
        sampled = range(0, self.cube.height, step)
        cube_parts, truth_parts = [], []
        self.overview_progress = (0, len(sampled))
        for k in range(0, len(sampled), OVERVIEW_BLOCK_ROWS):
            chosen = sampled[k : k + OVERVIEW_BLOCK_ROWS]
            rows = slice(chosen[0], chosen[-1] + 1, step)
            cube_parts.append(self.cube.read(rows, cols))
            if self.truth is not None:
                truth_parts.append(self.truth.read(rows, cols))
            self.overview_progress = (k + len(chosen), len(sampled))
        truth = None if self.truth is None else np.concatenate(truth_parts)
        return _Overview(np.concatenate(cube_parts), truth, self.cube.wavelengths_nm, {})

    # --- scores -------------------------------------------------------------------------------------

    def scores(self, executor: ThreadPoolExecutor) -> dict[str, object]:
        """The image's scores against its truth: started on first ask, in the background; the state so far."""
        with self._scores_lock:
            if self._scores["state"] == "idle":
                self._scores = {"state": "computing", "rows_done": 0, "rows": self.cube.height}
                executor.submit(self._compute_scores)
            return dict(self._scores)

    def _compute_scores(self) -> None:
        with np.errstate(all="ignore"):  # a background thread: its numbers go to the page, never the terminal
            self._score_rows()

    def _score_rows(self) -> None:
        from hsrecon.metrics import MetricAccumulator

        assert self.truth is not None
        shape = (self.cube.height, self.cube.width, self.cube.bands)
        try:
            try:
                accumulator = MetricAccumulator(*shape)
            except ValueError:  # too small for SSIM's window
                accumulator = MetricAccumulator(*shape, with_ssim=False)
            block = max(16, SCORE_BLOCK_VALUES // (self.cube.width * self.cube.bands))  # float64 copies are made
            truth_blocks = self.truth.row_blocks(block)
            for y0, rows in self.cube.row_blocks(block):
                _, truth = next(truth_blocks)
                accumulator.update(rows, truth)
                with self._scores_lock:
                    self._scores["rows_done"] = y0 + rows.shape[0]
            found = accumulator.result().as_dict()
            scores = {k: _json_float(v) if isinstance(v, float) else v for k, v in found.items()}
            result: dict = {"state": "done", "scores": scores, "region": "whole image"}
        except Exception as error:  # a damaged file shows up here, on the page, not as a dead thread
            result = {"state": "failed", "error": _one_line(error)}
        with self._scores_lock:
            self._scores = result

    def close(self) -> None:
        for source in (self.cube, self.truth):
            if source is not None:
                source.close()


class Catalog:
    """The entries, their kept overviews, and the worker that computes scores (one at a time)."""

    def __init__(self, entries: Sequence[Entry]) -> None:
        if not entries:
            raise ValueError("no cubes to show")
        self.entries = list(entries)
        self._overviews: OrderedDict[int, _Overview] = OrderedDict()
        self._building: dict[int, threading.Lock] = {i: threading.Lock() for i in range(len(self.entries))}
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hsrecon-scores")
        self._prefetcher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hsrecon-overview")

    def entry(self, index: int) -> Entry:
        if not 0 <= index < len(self.entries):
            raise IndexError(f"cube {index}: there are {len(self.entries)}")
        return self.entries[index]

    def overview(self, entry: Entry) -> _Overview:
        """The entry's overview, read once (concurrent requests wait for the first) and kept for the
        :data:`KEPT_OVERVIEWS` most recently used entries."""
        index = self.entries.index(entry)
        with self._building[index]:
            with self._lock:
                found = self._overviews.get(index)
                if found is not None:
                    self._overviews.move_to_end(index)
                    return found
            with np.errstate(all="ignore"):  # also run by the prefetching thread: nothing on the terminal
                built = entry.read_overview()
            with self._lock:
                self._overviews[index] = built
                while len(self._overviews) > KEPT_OVERVIEWS:
                    self._overviews.popitem(last=False)
            return built

    def scores(self, index: int) -> dict[str, object]:
        return self.entry(index).scores(self._executor)

    def prefetch(self, index: int = 0) -> None:
        """Start reading an entry's overview in the background (the command does it before the browser
        has even started, so the first image is ready sooner)."""
        self._prefetcher.submit(self.overview, self.entry(index))

    def progress(self, index: int) -> dict[str, object]:
        """How far the entry's overview is: ``ready``, or the sampled rows read so far ``done`` of ``rows``."""
        entry = self.entry(index)
        with self._lock:
            ready = index in self._overviews
        done, rows = entry.overview_progress
        return {"ready": ready, "done": done, "rows": rows}

    def describe(self) -> dict[str, object]:
        return {"cubes": [entry.describe() for entry in self.entries]}

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._prefetcher.shutdown(wait=False, cancel_futures=True)
        for entry in self.entries:
            entry.close()


# --- building a catalog from the command line ----------------------------------------------------------


def _one_line(error: BaseException) -> str:
    return (str(error) or type(error).__name__).strip().splitlines()[0]


def _json_float(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _json_floats(values: np.ndarray) -> list[float | None]:
    """float32 values as JSON numbers: each float32 is exactly a double, so nothing is rounded."""
    return [_json_float(float(v)) for v in values]


def _cube_files(folder: Path) -> list[Path]:
    from hsrecon.io.base import CUBE_SUFFIXES

    return sorted(
        p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in CUBE_SUFFIXES and not p.name.startswith(".")
    )


def _expand(cubes: Sequence[Path]) -> list[Path]:
    """The cube files named, a folder standing for the cube files directly inside it."""
    found: list[Path] = []
    for path in map(Path, cubes):
        if path.is_dir():
            inside = _cube_files(path)
            if not inside:
                raise ValueError(f"{path}: no cube files (.hdr, .h5, .mat) in this folder")
            found += inside
        else:
            found.append(path)
    return found


def _partner(cube: Path, given: Path | None, count: int, what: str, suffixes: frozenset[str]) -> Path | None:
    """The truth or photo for ``cube``: the file given (one cube only), or the same-named file in a folder."""
    from hsrecon.data import pairing_key

    if given is None:
        return None
    if not given.is_dir():
        if count > 1:
            raise ValueError(f"{given}: a single {what} file for {count} cubes; give a folder to pair them by name")
        return given
    key = pairing_key(cube.stem)
    matches = sorted(
        p
        for p in given.iterdir()
        if p.is_file() and p.suffix.lower() in suffixes and pairing_key(p.stem) == key and p != cube
    )
    if len(matches) > 1:
        raise ValueError(f"{given}: several {what} files for {cube.name} ({', '.join(p.name for p in matches)})")
    return matches[0] if matches else None


def _check_truth(cube: CubeSource, truth: CubeSource) -> None:
    if (truth.height, truth.width, truth.bands) != (cube.height, cube.width, cube.bands):
        raise ValueError(
            f"{truth.path}: {truth.width}×{truth.height}×{truth.bands}, "
            f"but {cube.path.name} is {cube.width}×{cube.height}×{cube.bands}"
        )
    if not np.allclose(truth.wavelengths_nm, cube.wavelengths_nm, atol=WAVELENGTH_TOLERANCE_NM):
        raise ValueError(f"{truth.path}: other wavelengths than {cube.path.name}")


def build_catalog(
    cubes: Sequence[Path], *, truth: Path | None = None, photo: Path | None = None
) -> tuple[Catalog, list[str]]:
    """Open every cube (a folder: the cubes in it), each with its truth and photo; (catalog, notes).

    ``truth`` and ``photo`` are one file (for one cube) or a folder, paired by name as ``hsrecon eval``
    pairs files (``NAME_clean`` pairs with ``NAME``). A cube without a partner in the folder is shown
    without one, and named in the notes. ValueError (one line, naming the file) for anything unusable.
    """
    from hsrecon.io.base import CUBE_SUFFIXES
    from hsrecon.io.rgb import IMAGE_SUFFIXES

    paths = _expand(cubes)
    notes: list[str] = []
    entries: list[Entry] = []
    try:
        for path in paths:
            truth_path = _partner(path, truth, len(paths), "ground-truth", CUBE_SUFFIXES)
            photo_path = _partner(path, photo, len(paths), "photo", IMAGE_SUFFIXES)
            for wanted, found, what in ((truth, truth_path, "ground truth"), (photo, photo_path, "photo")):
                if wanted is not None and found is None:
                    notes.append(f"{path}: no {what} for it in {wanted}; shown without")
            entries.append(_open_entry(path, truth_path, photo_path))
    except BaseException:
        for entry in entries:
            entry.close()
        raise
    return Catalog(entries), notes


def _open_entry(path: Path, truth_path: Path | None, photo_path: Path | None) -> Entry:
    from hsrecon.io.rgb import ImageReadError

    picture = None
    if photo_path is not None:
        try:
            picture = PhotoSource(photo_path)
        except ImageReadError as error:
            raise ValueError(_one_line(error)) from None
    cube = open_cube_source(path, image_shape=None if picture is None else (picture.height, picture.width))
    try:
        if picture is not None and (picture.height, picture.width) != (cube.height, cube.width):
            raise ValueError(
                f"{photo_path}: {picture.width}×{picture.height}, but {path.name} is {cube.width}×{cube.height}"
            )
        reference = None
        if truth_path is not None:
            reference = open_cube_source(truth_path, image_shape=(cube.height, cube.width))
            try:
                _check_truth(cube, reference)
            except ValueError:
                reference.close()
                raise
        return Entry(cube, reference, picture)
    except BaseException:
        cube.close()
        raise
