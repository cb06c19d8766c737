"""HDF5 cubes (``NAME.h5``): dataset ``cube`` H×W×B, chunked per 64×64 tile, gzip + shuffle.

Also the HDF5 plumbing ``mat.py`` shares (a v7.3 MAT-file is an HDF5 file): the writer base that
keeps write errors away from HDF5, file creation with a chunk cache sized for row-block writes,
dataset filters, root attributes, and the completeness check.
"""

from __future__ import annotations

import errno
import io
import math
from collections.abc import Mapping
from pathlib import Path
from typing import BinaryIO

import h5py
import numpy as np

from hsrecon.io.base import CHUNK_PX, AttrValue, CubeInfo, CubeSpec, CubeWriter, check_real, default_wavelengths

GZIP_LEVEL = 1  # float cubes keep their entropy in the mantissa: higher levels barely help (docs/formats.md)
_MIN_CACHE_BYTES = 1 << 20


class DeferredFailureFile(io.FileIO):
    """The file HDF5 writes through: a failed write is kept in :attr:`failure` and reported as done.

    HDF5 does not survive a failed write. On a full disk its handle is left half flushed, every later
    close retries the flush (``Exception ignored in __dealloc__`` tracebacks), and the library can crash
    at exit (seen on a full tmpfs: a segfault, or ``munmap_chunk(): invalid pointer``). So no write
    error ever reaches HDF5: the first one is kept, later writes are dropped, and the writer raises it
    itself at its next step; HDF5 then closes cleanly and the temporary is deleted. Dropped bytes are
    never read back: the chunk cache holds every chunk until it is complete (:func:`create_hdf5`).
    """

    failure: OSError | None = None

    def write(self, data: bytes | memoryview) -> int:
        view = memoryview(data).cast("B")
        if self.failure is None:
            try:
                self._write_all(view)
            except OSError as error:
                self.failure = error
        return len(view)

    def _write_all(self, view: memoryview) -> None:
        done = 0
        while done < len(view):
            count = super().write(view[done:])
            if not count:
                raise OSError(errno.EIO, "the file system accepted no bytes")
            done += count

    def check(self) -> None:
        """Raise the first write error, if there was one."""
        if self.failure is not None:
            raise self.failure


class HDF5CubeWriter(CubeWriter):
    """What the ``.h5`` and ``.mat`` writers share: an HDF5 temporary written through a
    :class:`DeferredFailureFile`, its write errors raised after each step, and a close that cannot fail
    half-way."""

    userblock_size = 0
    _file: h5py.File | None = None
    _cube: h5py.Dataset | None = None
    _sink: DeferredFailureFile | None = None

    def _open_hdf5(self) -> h5py.File:
        self._sink = DeferredFailureFile(self.new_temp(self.path), "r+")
        self._file = create_hdf5(self._sink, self.spec, userblock_size=self.userblock_size)
        return self._file

    def _check_writes(self) -> None:
        if self._sink is not None:
            self._sink.check()

    def _close(self) -> None:
        self._cube = None
        file, self._file = self._file, None
        sink, self._sink = self._sink, None
        try:
            if file is not None:
                file.close()
        finally:
            if sink is not None:
                sink.close()
        if sink is not None:
            sink.check()


class H5CubeWriter(HDF5CubeWriter):
    """Writes row blocks into the chunked ``cube`` dataset of a temporary ``.h5``, renamed on commit."""

    fmt = "h5"

    def _open(self) -> None:
        spec = self.spec
        file = self._open_hdf5()
        shape = (spec.height, spec.width, spec.bands)
        chunks = (min(CHUNK_PX, spec.height), min(CHUNK_PX, spec.width), spec.bands)
        self._cube = file.create_dataset("cube", shape=shape, dtype=spec.dtype, chunks=chunks, **dataset_filters(spec))
        wavelength = file.create_dataset("wavelength", data=spec.wavelengths_nm)
        wavelength.attrs["units"] = "nm"
        file.attrs["wavelength_units"] = "nm"
        write_attrs(file, spec.attrs)
        self._check_writes()

    def _write_block(self, y0: int, rows: np.ndarray) -> None:
        assert self._cube is not None
        self._cube[y0 : y0 + rows.shape[0]] = rows.astype(self.spec.dtype, copy=False)
        self._check_writes()

    def _finish(self) -> None:
        self._close()


def create_hdf5(target: Path | BinaryIO, spec: CubeSpec, *, userblock_size: int = 0) -> h5py.File:
    """Open ``target`` (a path or a file object) for writing with a chunk cache that holds two rows of chunks.

    A row block rarely aligns with the 64-row chunks, so it leaves chunks half written; if the
    cache evicted them, HDF5 would compress, store, re-read and re-store each one (slow, and the
    file grows with abandoned copies). Two chunk rows cost 2 × 64 rows × width × bands × itemsize
    bytes: bounded by the width, never by the height. ``rdcc_w0=1`` evicts finished chunks first.
    """
    chunk_w = min(CHUNK_PX, spec.width)
    chunks_per_row = math.ceil(spec.width / chunk_w)
    chunk_bytes = min(CHUNK_PX, spec.height) * chunk_w * spec.bands * 4
    cache_bytes = max(_MIN_CACHE_BYTES, 2 * chunks_per_row * chunk_bytes)
    return h5py.File(
        target,
        "w",
        userblock_size=userblock_size or None,
        rdcc_nbytes=cache_bytes,
        rdcc_nslots=_next_prime(100 * 2 * chunks_per_row),
        rdcc_w0=1.0,
    )


def _next_prime(n: int) -> int:
    """HDF5 asks for a prime number of cache slots (fewer hash collisions)."""
    candidate = max(n, 2)
    while any(candidate % d == 0 for d in range(2, math.isqrt(candidate) + 1)):
        candidate += 1
    return candidate


def dataset_filters(spec: CubeSpec) -> dict[str, object]:
    """h5py keyword arguments for the cube's filters: gzip + shuffle, or none."""
    if not spec.compression:
        return {}
    return {"compression": "gzip", "compression_opts": GZIP_LEVEL, "shuffle": True}


def write_attrs(node: h5py.Group, attrs: Mapping[str, AttrValue]) -> None:
    """Store caller metadata as HDF5 attributes (strings as UTF-8, numbers as numbers)."""
    for name, value in attrs.items():
        node.attrs[name] = value


def read_attrs(node: h5py.Group, *, skip: frozenset[str] = frozenset()) -> dict[str, AttrValue]:
    """Root attributes as plain Python values; bytes decoded, NumPy scalars unwrapped."""
    attrs: dict[str, AttrValue] = {}
    for name, value in node.attrs.items():
        if name in skip:
            continue
        if isinstance(value, bytes | np.bytes_):
            value = value.decode("utf-8", errors="replace")
        elif isinstance(value, np.generic):
            value = value.item()
        attrs[name] = value if isinstance(value, str | int | float) else str(value)
    return attrs


def is_complete_hdf5(path: Path) -> bool:
    """Opens as HDF5 and holds a 3-D ``cube`` dataset (ours appear only whole, by rename)."""
    if not path.is_file():
        return False
    try:
        with h5py.File(path, "r") as file:
            cube = file.get("cube")
            return isinstance(cube, h5py.Dataset) and cube.ndim == 3
    except OSError:
        return False


def dataset_info(path: Path, file: h5py.File, name: str = "cube") -> CubeInfo:
    """The declared shape and type of the dataset ``name`` of ``file``, refusing data kept elsewhere.

    External raw storage, virtual datasets and links to other files would make reading ``path`` read
    other files on the disk: refused, so a cube file can only ever give its own bytes.
    """
    dataset = file.get(name)
    if not isinstance(dataset, h5py.Dataset):
        raise ValueError(f"{path}: no dataset {name!r}")
    if dataset.file.filename != file.filename or dataset.is_virtual or dataset.external:
        raise ValueError(f"{path}: {name!r} keeps its data outside the file (external or virtual storage)")
    return CubeInfo(tuple(int(n) for n in dataset.shape), dataset.dtype)


def h5_info(path: Path) -> CubeInfo:
    """What ``path``'s ``cube`` dataset declares (shape, type), from the HDF5 metadata alone."""
    with h5py.File(path, "r") as file:
        info = dataset_info(path, file)
    if len(info.shape) != 3:
        raise ValueError(f"{path}: no 3-D dataset 'cube' (H×W×bands)")
    return info


def read_h5(path: Path) -> tuple[np.ndarray, np.ndarray, dict[str, AttrValue]]:
    """Read ``cube`` (H×W×B, any float, returned as float32), ``wavelength`` and root attributes."""
    with h5py.File(path, "r") as file:
        cube = file.get("cube")
        if not isinstance(cube, h5py.Dataset) or cube.ndim != 3:
            raise ValueError(f"{path}: no 3-D dataset 'cube' (H×W×bands)")
        check_real(path, dataset_info(path, file).dtype)  # refuses data kept outside the file, and complex
        data = np.asarray(cube[()], dtype=np.float32)
        if "wavelength" in file:
            wavelengths = np.asarray(file["wavelength"][()], dtype=np.float64).ravel()
        else:
            wavelengths = default_wavelengths(data.shape[2], path)
        attrs = read_attrs(file, skip=frozenset({"wavelength_units"}))
    if wavelengths.size != data.shape[2]:
        raise ValueError(f"{path}: {wavelengths.size} wavelengths for a cube of {data.shape[2]} bands")
    return data, wavelengths, attrs
