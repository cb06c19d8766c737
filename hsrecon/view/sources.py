"""Cube files read on demand: a pixel's spectrum or a strided region, never the whole cube.

``hsrecon view`` must open a 100-megapixel cube as fast as a small one, so nothing here reads more
than a request asks for: ENVI data files are read with positional reads of exactly the runs a region
needs, in the file's own interleave (the header parsed by SPy); HDF5 cubes (``.h5``, and ``.mat`` v7.3,
which is HDF5 with MATLAB's reversed axes) are sliced with h5py, which decompresses only the chunks a
selection touches. Only ``.mat`` v5 files, which cannot be sliced, are read whole (SciPy; MATLAB caps
them at 2 GB anyway).

A region is two ``slice`` objects with steps (``rows``, ``cols``): a view downscaled to the screen is
a strided (nearest-neighbour) sample of the file, so its cost grows with the pixels shown, and reading
it never needs the whole cube in memory. Every source returns float32 H×W×B, bands last, whatever the
file's layout and type. Files are opened read-only.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import threading
import zlib
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path

import numpy as np

from hsrecon.io.base import ENVI_DATA_SUFFIX, AttrValue, default_wavelengths

__all__ = [
    "ArraySource",
    "CubeSource",
    "PhotoSource",
    "SourceClosedError",
    "open_cube_source",
    "overview_step",
    "region_shape",
]

ENVI_BLOCK_BYTES = 4 << 20  # one read of an ENVI file fetches at most this much
ENVI_GAP_BYTES = 16 << 10  # runs this close are read as one block and cut in memory
ENVI_READERS = 8  # concurrent reads of a large region (one band each)
ENVI_PARALLEL_BYTES = 1 << 20  # regions spanning less than this are read band after band, in this thread
HDF5_CACHE_BYTES = 64 << 20  # chunk cache per open file: a hovered pixel's neighbours come from memory
HDF5_BLOCK_ROWS = 64  # rows × columns per h5py call on a large region: h5py holds one global lock per
HDF5_BLOCK_COLS = 512  # call, so a spectrum request (another thread) waits for one such tile at most
HDF5_PARALLEL_BYTES = 8 << 20  # sampled regions this large (overviews) are inflated chunk by chunk on every core
HDF5_INFLATERS = max(1, min(8, os.cpu_count() or 1))


@lru_cache(maxsize=1)
def _reader_pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=ENVI_READERS, thread_name_prefix="hsrecon-envi-read")


def region_shape(rows: slice, cols: slice, height: int, width: int) -> tuple[int, int]:
    """The (rows, columns) a strided region of an H×W image holds."""
    return len(range(*rows.indices(height))), len(range(*cols.indices(width)))


class SourceClosedError(ValueError):
    """A read of a source that is closing or closed (the viewer is stopping)."""


class ReadGuard:
    """Counts the reads in progress so that ``close`` waits for them, and refuses reads once closing.

    A server thread still inside h5py when the interpreter exits would hold h5py's global lock for good
    (daemon threads are frozen, never resumed) and the exit would hang; closing through the guard means
    no thread is inside a file library when the files close, and none enters one afterwards.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._condition = threading.Condition()
        self._active = 0
        self._closed = False

    @contextlib.contextmanager
    def reading(self) -> Iterator[None]:
        with self._condition:
            if self._closed:
                raise SourceClosedError(f"{self._path}: closed")
            self._active += 1
        try:
            yield
        finally:
            with self._condition:
                self._active -= 1
                self._condition.notify_all()

    def close(self) -> bool:
        """Refuse new reads and wait for those in progress; True the first time."""
        with self._condition:
            first, self._closed = not self._closed, True
            self._condition.wait_for(lambda: self._active == 0)
        return first


class CubeSource(ABC):
    """One cube file, open for reading: its size, wavelengths and attributes, and reads of parts of it."""

    path: Path
    height: int
    width: int
    bands: int
    wavelengths_nm: np.ndarray
    attrs: dict[str, AttrValue]
    layout: str  # how the file is read, for people: "ENVI bsq float32, memory-mapped"

    @abstractmethod
    def read(self, rows: slice, cols: slice) -> np.ndarray:
        """The region ``[rows, cols]`` (slices with positive steps) as float32 h×w×B."""

    def spectrum(self, y: int, x: int) -> np.ndarray:
        """The B values of pixel (x, y) as float32."""
        if not (0 <= y < self.height and 0 <= x < self.width):
            raise IndexError(f"pixel ({x}, {y}) is outside the {self.width}×{self.height} image")
        return self.read(slice(y, y + 1), slice(x, x + 1))[0, 0]

    def row_blocks(self, block_rows: int = HDF5_BLOCK_ROWS) -> Iterator[tuple[int, np.ndarray]]:
        """The whole cube, top to bottom, ``block_rows`` rows at a time: (y0, rows)."""
        for y0 in range(0, self.height, block_rows):
            yield y0, self.read(slice(y0, min(y0 + block_rows, self.height)), slice(0, self.width))

    @abstractmethod
    def close(self) -> None:
        """Release the file (reads after this fail)."""

    def _check_region(self, rows: slice, cols: slice) -> None:
        for s, size, axis in ((rows, self.height, "rows"), (cols, self.width, "columns")):
            if (s.step or 1) < 1 or s.start is None or s.stop is None or not 0 <= s.start < s.stop <= size:
                raise IndexError(f"{axis} {s.start}:{s.stop}:{s.step} outside 0..{size}")

    def describe(self) -> dict[str, object]:
        return {
            "name": self.path.name,
            "height": self.height,
            "width": self.width,
            "bands": self.bands,
            "wavelengths_nm": [float(w) for w in self.wavelengths_nm],
            "layout": self.layout,
        }


# --- ENVI ---------------------------------------------------------------------------------------------


class EnviSource(CubeSource):
    """An ENVI ``.hdr`` + data file: the header parsed by SPy, the data read with positional reads.

    Each read fetches only the runs of the file a region needs, in the file's own interleave: a spectrum
    is B values (bsq, bil) or one run of B (bip); a band image of a bsq file reads one plane's rows. Plain
    ``os.pread`` rather than a memory map: the pages read stay the kernel's page cache instead of counting
    as this process's memory, and any data type and byte order SPy names is converted to float32.
    """

    def __init__(self, path: Path) -> None:
        import spectral
        from spectral.io import envi as spy_envi

        from hsrecon.io.envi import ENVI_STANDARD_KEYS

        hdr = path.with_suffix(".hdr") if path.suffix.lower() == ENVI_DATA_SUFFIX else path
        img = hdr.with_suffix(ENVI_DATA_SUFFIX)
        image = spy_envi.open(str(hdr), str(img)) if img.is_file() else spy_envi.open(str(hdr))
        self.path = hdr
        self.height, self.width, self.bands = (int(n) for n in image.shape)
        self.interleave = {spectral.BSQ: "bsq", spectral.BIL: "bil", spectral.BIP: "bip"}[image.interleave]
        self._dtype = np.dtype(image.dtype)
        self._offset = int(image.offset)
        centers = image.bands.centers
        self.wavelengths_nm = np.asarray(centers, dtype=np.float64) if centers else default_wavelengths(self.bands, hdr)
        self.attrs = {
            key: ", ".join(map(str, v)) if isinstance(v, list) else str(v)
            for key, v in image.metadata.items()
            if key not in ENVI_STANDARD_KEYS
        }
        self.layout = f"ENVI {self.interleave} {self._dtype.name}, read by runs on demand"
        needed = self._offset + self.height * self.width * self.bands * self._dtype.itemsize
        self._guard = ReadGuard(hdr)
        self._fd: int | None = os.open(image.filename, os.O_RDONLY)
        if os.fstat(self._fd).st_size < needed:
            os.close(self._fd)
            raise ValueError(f"{hdr}: the data file is shorter than the header says ({needed} bytes)")

    def _runs(self, base: int, stride: int, rows: range, x0: int, length: int, step: int = 1) -> np.ndarray:
        """Every ``step``-th of the ``length`` values at ``base + r * stride + x0``, for each ``r`` in ``rows``.

        Runs separated by at most :data:`ENVI_GAP_BYTES` are read together, in blocks of up to
        :data:`ENVI_BLOCK_BYTES`, and cut in memory; farther apart, each run is its own read. Reads go
        straight into arrays (``os.preadv``); memory is the result plus one block.
        """
        itemsize = self._dtype.itemsize
        out = np.empty((len(rows), len(range(0, length, step))), dtype=self._dtype)
        skipped = (rows.step * stride - length) * itemsize
        if len(rows) == 1 or skipped > ENVI_GAP_BYTES:
            run = out[0] if step == 1 else np.empty(length, dtype=self._dtype)
            for k, r in enumerate(rows):
                target = out[k] if step == 1 else run
                self._read_into(target, base + r * stride + x0)
                if step != 1:
                    out[k] = run[::step]
            return out
        per_block = max(1, ENVI_BLOCK_BYTES // (rows.step * stride * itemsize))
        for k in range(0, len(rows), per_block):
            chosen = rows[k : k + per_block]
            block = np.empty((chosen[-1] - chosen[0] + 1, stride), dtype=self._dtype)
            count = (chosen[-1] - chosen[0]) * stride + length  # the last row's run ends the read
            self._read_into(block.reshape(-1)[:count], base + chosen[0] * stride + x0)
            out[k : k + len(chosen)] = block[:: rows.step, :length:step]
        return out

    def _read_into(self, target: np.ndarray, first: int) -> None:
        """Fill the contiguous array ``target`` from value index ``first`` of the file."""
        view = memoryview(target).cast("B")
        done = 0
        while done < len(view):
            count = os.preadv(self._fd, [view[done:]], self._offset + first * self._dtype.itemsize + done)
            if count == 0:
                raise ValueError(f"{self.path}: the data file ended early")
            done += count

    def _band(self, band: int, rows: range, cols: slice) -> np.ndarray:
        """One band over the region, h×w float32 (bsq and bil: each band's rows are evenly spaced runs)."""
        h, w, b = self.height, self.width, self.bands
        base, stride = (band * h * w, w) if self.interleave == "bsq" else (band * w, b * w)
        return self._runs(base, stride, rows, cols.start, cols.stop - cols.start, cols.step or 1).astype(np.float32)

    def read(self, rows: slice, cols: slice) -> np.ndarray:
        self._check_region(rows, cols)
        with self._guard.reading():  # close() waits for the whole read: ENVI reads are quick
            return self._read(rows, cols)

    def _read(self, rows: slice, cols: slice) -> np.ndarray:
        wanted = range(*rows.indices(self.height))
        step = cols.step or 1
        if self.interleave == "bip":
            b = self.bands
            runs = self._runs(0, self.width * b, wanted, cols.start * b, (cols.stop - cols.start) * b)
            return runs.reshape(len(wanted), -1, b)[:, ::step].astype(np.float32)
        out = np.empty((len(wanted), len(range(cols.start, cols.stop, step)), self.bands), dtype=np.float32)
        small = len(wanted) * (cols.stop - cols.start) * self.bands * self._dtype.itemsize < ENVI_PARALLEL_BYTES

        def fill(band: int) -> None:
            out[..., band] = self._band(band, wanted, cols)

        if small:  # a spectrum, a small zoomed view: threads would cost more than they save
            for band in range(self.bands):
                fill(band)
        else:  # the disk answers several reads at once far faster than one after another
            list(_reader_pool().map(fill, range(self.bands)))
        return out

    def band(self, band: int, rows: slice, cols: slice) -> np.ndarray:
        """One band of a region (h×w float32): a bsq file's plane, a bil file's rows, a bip file's pixels."""
        self._check_region(rows, cols)
        with self._guard.reading():
            if self.interleave == "bip":
                return self._read(rows, cols)[..., band]
            return self._band(band, range(*rows.indices(self.height)), cols)

    def close(self) -> None:
        if self._guard.close() and self._fd is not None:
            os.close(self._fd)


# --- HDF5: .h5 and .mat v7.3 --------------------------------------------------------------------------


class HDF5Source(CubeSource):
    """A 3-D HDF5 dataset whose axes are (rows, columns, bands) in some order (``axes``: the dataset
    axis of each). Large regions are read in bands of about 64 source rows, so h5py's global lock is
    never held for long and a spectrum request slips in between."""

    def __init__(self, path: Path, file, dataset, axes: tuple[int, int, int], wavelengths: np.ndarray, attrs) -> None:
        self.path = path
        self._guard = ReadGuard(path)
        self._file, self._dataset, self._axes = file, dataset, axes
        shape = dataset.shape
        self.height, self.width, self.bands = (int(shape[a]) for a in axes)
        self.wavelengths_nm = wavelengths
        self.attrs = attrs
        if wavelengths.size != self.bands:
            raise ValueError(f"{path}: {wavelengths.size} wavelengths for a cube of {self.bands} bands")
        self._filters = _simple_filters(dataset)
        chunks = dataset.chunks
        stored = f"chunks {'×'.join(map(str, chunks))}" if chunks else "contiguous"
        compression = f", {dataset.compression}" if dataset.compression else ""
        self.layout = f"HDF5 {np.dtype(dataset.dtype).name}, {stored}{compression}, read by slices"

    def read(self, rows: slice, cols: slice) -> np.ndarray:
        self._check_region(rows, cols)
        sampled = (rows.step or 1) > 1 or (cols.step or 1) > 1  # full-resolution reads use h5py's chunk cache
        if self._filters is not None and sampled and _region_bytes(rows, cols, self) >= HDF5_PARALLEL_BYTES:
            return self._read_chunks(rows, cols)
        step, col_step = rows.step or 1, cols.step or 1
        per_call = max(1, HDF5_BLOCK_ROWS // step) * step
        cols_per_call = max(1, HDF5_BLOCK_COLS // col_step) * col_step
        blocks = []
        for start in range(rows.start, rows.stop, per_call):
            part = slice(start, min(start + per_call, rows.stop), step)
            tiles = [
                self._read_block(part, slice(x, min(x + cols_per_call, cols.stop), col_step))
                for x in range(cols.start, cols.stop, cols_per_call)
            ]
            blocks.append(np.concatenate(tiles, axis=1) if len(tiles) > 1 else tiles[0])
        return np.concatenate(blocks) if len(blocks) > 1 else blocks[0]

    def _read_block(self, rows: slice, cols: slice) -> np.ndarray:
        row_axis, col_axis, _ = self._axes
        index: list[slice] = [slice(None)] * 3
        index[row_axis], index[col_axis] = rows, cols
        with self._guard.reading():
            part = self._dataset[tuple(index)]
        return np.ascontiguousarray(np.transpose(part, self._axes), dtype=np.float32)

    def _read_chunks(self, rows: slice, cols: slice) -> np.ndarray:
        """A large region, chunk by chunk: h5py reads each stored chunk as it is on disk (quick, one at a
        time), threads undo its gzip and shuffle filters (zlib lets go of the GIL, so every core inflates),
        and the selected values are copied into place. The same values as h5py's own reading."""
        dataset = self._dataset
        selection: list[slice] = [slice(0, n) for n in dataset.shape]
        selection[self._axes[0]], selection[self._axes[1]] = rows, cols
        axes = list(zip(selection, dataset.shape, dataset.chunks, strict=True))
        picks = [_chunk_picks(sel, size, chunk) for sel, size, chunk in axes]
        out = np.empty([len(range(*sel.indices(size))) for sel, size, _ in axes], dtype=np.float32)
        pending: deque = deque()

        def place(task) -> None:
            chunk, targets, sources = task.result()
            out[targets] = chunk[sources]

        for combo in itertools.product(*picks):
            offset = tuple(start for start, _, _ in combo)
            targets = tuple(target for _, target, _ in combo)
            sources = tuple(source for _, _, source in combo)
            with self._guard.reading():
                stored = _read_stored_chunk(dataset, offset)
            pending.append(_inflate_pool().submit(self._decode, stored, targets, sources))
            while len(pending) > 4 * HDF5_INFLATERS:
                place(pending.popleft())
        while pending:
            place(pending.popleft())
        return np.ascontiguousarray(np.transpose(out, self._axes))

    def _decode(self, stored: tuple[int, bytes] | None, targets, sources):
        """A stored chunk → its values (the fill value for a chunk never written)."""
        dataset = self._dataset
        if stored is None:
            return np.full(dataset.chunks, dataset.fillvalue, dtype=dataset.dtype), targets, sources
        mask, data = stored
        for index, code in reversed(list(enumerate(self._filters))):
            if mask & (1 << index):
                continue  # this filter was skipped for this chunk
            if code == _DEFLATE:
                data = zlib.decompress(data)
            else:  # shuffle: byte k of every value was stored together
                size = dataset.dtype.itemsize
                data = np.frombuffer(data, dtype=np.uint8).reshape(size, -1).T.tobytes()
        return np.frombuffer(data, dtype=dataset.dtype).reshape(dataset.chunks), targets, sources

    def close(self) -> None:
        if self._guard.close():
            self._file.close()


_SHUFFLE, _DEFLATE = 2, 1  # HDF5's filter codes (H5Z_FILTER_SHUFFLE, H5Z_FILTER_DEFLATE)


@lru_cache(maxsize=1)
def _inflate_pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=HDF5_INFLATERS, thread_name_prefix="hsrecon-inflate")


def _simple_filters(dataset) -> tuple[int, ...] | None:
    """The filter codes of a chunked dataset whose filters this module can undo itself (gzip, shuffle),
    in the order HDF5 applied them; None for anything else (h5py then reads it)."""
    from h5py import h5d

    plist = dataset.id.get_create_plist()
    if plist.get_layout() != h5d.CHUNKED or dataset.dtype.kind not in "fiu":
        return None
    codes = tuple(plist.get_filter(i)[0] for i in range(plist.get_nfilters()))
    return codes if set(codes) <= {_SHUFFLE, _DEFLATE} else None


def _read_stored_chunk(dataset, offset: tuple[int, ...]) -> tuple[int, bytes] | None:
    """(filter mask, bytes) of the chunk at ``offset`` as stored; None where none was ever written."""
    info = dataset.id.get_chunk_info_by_coord(offset)
    if info.byte_offset is None:
        return None
    return dataset.id.read_direct_chunk(offset)


def _chunk_picks(selection: slice, size: int, chunk: int) -> list[tuple[int, slice, slice]]:
    """For one axis: each chunk holding selected indices, as (chunk start, output slice, slice in the chunk)."""
    start, stop, step = selection.indices(size)
    picks = []
    done = 0
    for chunk_start in range(start - start % chunk, stop, chunk):
        first = max(start, chunk_start)
        first += (-(first - start)) % step  # the first selected index inside this chunk
        last = min(stop, chunk_start + chunk)
        if first >= last:
            continue
        count = len(range(first, last, step))
        picks.append((chunk_start, slice(done, done + count), slice(first - chunk_start, last - chunk_start, step)))
        done += count
    return picks


def _region_bytes(rows: slice, cols: slice, source: CubeSource) -> int:
    return (
        len(range(rows.start, rows.stop, rows.step or 1))
        * len(range(cols.start, cols.stop, cols.step or 1))
        * (source.bands * 4)
    )


def _open_hdf5(path: Path):
    import h5py

    return h5py.File(path, "r", rdcc_nbytes=HDF5_CACHE_BYTES, rdcc_nslots=10007)


def _open_h5(path: Path) -> HDF5Source:
    """``cube`` H×W×B, ``wavelength`` (as :func:`hsrecon.io.h5.read_h5` reads them)."""
    import h5py

    from hsrecon.io.h5 import read_attrs

    file = _open_hdf5(path)
    try:
        cube = file.get("cube")
        if not isinstance(cube, h5py.Dataset) or cube.ndim != 3:
            raise ValueError(f"{path}: no 3-D dataset 'cube' (H×W×bands)")
        if isinstance(file.get("wavelength"), h5py.Dataset):
            wavelengths = np.asarray(file["wavelength"][()], dtype=np.float64).ravel()
        else:
            wavelengths = default_wavelengths(cube.shape[2], path)
        attrs = read_attrs(file, skip=frozenset({"wavelength_units"}))
        return HDF5Source(path, file, cube, (0, 1, 2), wavelengths, attrs)
    except BaseException:
        file.close()
        raise


def _open_mat73(path: Path, image_shape: tuple[int, int] | None) -> HDF5Source:
    """``cube`` and ``bands`` of a v7.3 MAT-file, axes found by :func:`hsrecon.io.mat.matlab_band_axis`.

    HDF5 sees MATLAB's shape reversed, so MATLAB axis ``i`` is dataset axis ``2 - i``.
    """
    import h5py

    from hsrecon.io.h5 import read_attrs
    from hsrecon.io.mat import matlab_band_axis

    file = _open_hdf5(path)
    try:
        cube = file.get("cube")
        if not isinstance(cube, h5py.Dataset):
            raise ValueError(f"{path}: no variable 'cube'")
        bands = file.get("bands")
        wavelengths = np.asarray(bands[()], dtype=np.float64).ravel() if isinstance(bands, h5py.Dataset) else None
        matlab_shape = tuple(reversed(cube.shape))
        n_bands = 31 if wavelengths is None else wavelengths.size
        band_axis, transpose = matlab_band_axis(matlab_shape, n_bands, image_shape=image_shape, path=path)
        row_axis, col_axis = (axis for axis in range(3) if axis != band_axis)
        if transpose:
            row_axis, col_axis = col_axis, row_axis
        axes = (2 - row_axis, 2 - col_axis, 2 - band_axis)
        if wavelengths is None:
            wavelengths = default_wavelengths(n_bands, path)
        return HDF5Source(path, file, cube, axes, wavelengths, read_attrs(file))
    except BaseException:
        file.close()
        raise


# --- in memory: .mat v5 -------------------------------------------------------------------------------


class ArraySource(CubeSource):
    """A cube held in memory: files that cannot be sliced (``.mat`` v5), and tests."""

    def __init__(self, path: Path, cube: np.ndarray, wavelengths: np.ndarray, attrs: dict[str, AttrValue]) -> None:
        self.path = path
        self._cube = np.asarray(cube, dtype=np.float32)
        self.height, self.width, self.bands = self._cube.shape
        self.wavelengths_nm = np.asarray(wavelengths, dtype=np.float64)
        self.attrs = attrs
        self.layout = "read whole into memory (this format cannot be sliced)"

    def read(self, rows: slice, cols: slice) -> np.ndarray:
        self._check_region(rows, cols)
        return np.ascontiguousarray(self._cube[rows, cols])

    def close(self) -> None:
        self._cube = np.empty((0, 0, self.bands), dtype=np.float32)


def open_cube_source(path: Path, *, image_shape: tuple[int, int] | None = None) -> CubeSource:
    """Open a cube file for reads on demand, by suffix: ``.hdr``/``.img``, ``.h5``/``.hdf5``, ``.mat``.

    ValueError (one line, naming the file) for a file that is not a readable cube or cannot be
    opened. ``image_shape`` settles a ``.mat`` file's axes as in :func:`hsrecon.io.read_cube`.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    suffix = path.suffix.lower()
    try:
        if suffix in (".hdr", ENVI_DATA_SUFFIX):
            return EnviSource(path)
        if suffix in (".h5", ".hdf5"):
            return _open_h5(path)
        if suffix == ".mat":
            import h5py

            if h5py.is_hdf5(path):
                return _open_mat73(path, image_shape)
            from hsrecon.io.mat import read_mat

            cube, wavelengths, attrs = read_mat(path, image_shape=image_shape)
            return ArraySource(path, cube, wavelengths, attrs)
    except (KeyError, TypeError, IndexError) as error:  # what SPy and h5py raise on malformed files
        raise ValueError(f"{path}: not a readable cube ({error})") from None
    except OSError as error:  # h5py: "Unable to synchronously open file (file signature not found)"
        text = error.strerror or (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise ValueError(f"{path}: cannot be read as a cube ({text})") from None
    except Exception as error:
        if type(error).__module__.startswith("spectral"):
            raise ValueError(f"{path}: not a readable ENVI cube ({error})") from None
        raise
    raise ValueError(f"{path}: unknown cube suffix {path.suffix!r}; expected .hdr, .img, .mat or .h5")


class PhotoSource:
    """The RGB photo a cube was made from, shown beside it: decoded once (an 8-bit copy in memory).

    Values are shown as stored (``value / max_code``), without any input-space transform.
    """

    def __init__(self, path: Path) -> None:
        from hsrecon.io.rgb import read_rgb

        image = read_rgb(Path(path))
        scaled = np.asarray(image.pixels, dtype=np.float32) * (255.0 / float(image.max_code))
        self.path = Path(path)
        self.pixels = np.clip(np.round(scaled), 0, 255).astype(np.uint8)
        self.height, self.width = self.pixels.shape[:2]

    def read(self, rows: slice, cols: slice) -> np.ndarray:
        return self.pixels[rows, cols]


def overview_step(height: int, width: int, max_side: int) -> int:
    """The smallest stride at which an H×W image fits ``max_side`` pixels on its longer side."""
    return max(1, math.ceil(max(height, width) / max_side))
