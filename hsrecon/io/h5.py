"""HDF5 cubes (``NAME.h5``): dataset ``cube`` H×W×B, chunked per 64×64 tile, gzip + shuffle.

Also the HDF5 plumbing ``mat.py`` shares (a v7.3 MAT-file is an HDF5 file): file creation with a
chunk cache sized for row-block writes, dataset filters, root attributes, and the completeness check.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import h5py
import numpy as np

from hsrecon.io.cube import CHUNK_PX, AttrValue, CubeSpec, CubeWriter, default_wavelengths

GZIP_LEVEL = 1  # float cubes keep their entropy in the mantissa: level 1 is as small as 4-6 (±0.5%) and ~15% faster
_MIN_CACHE_BYTES = 1 << 20


class H5CubeWriter(CubeWriter):
    """Writes row blocks into the chunked ``cube`` dataset of a temporary ``.h5``, renamed on commit."""

    fmt = "h5"
    _file: h5py.File | None = None
    _cube: h5py.Dataset | None = None

    def _open(self) -> None:
        spec = self.spec
        self._file = create_hdf5(self.new_temp(self.path), spec)
        shape = (spec.height, spec.width, spec.bands)
        chunks = (min(CHUNK_PX, spec.height), min(CHUNK_PX, spec.width), spec.bands)
        self._cube = self._file.create_dataset(
            "cube", shape=shape, dtype=spec.dtype, chunks=chunks, **dataset_filters(spec)
        )
        wavelength = self._file.create_dataset("wavelength", data=spec.wavelengths_nm)
        wavelength.attrs["units"] = "nm"
        self._file.attrs["wavelength_units"] = "nm"
        write_attrs(self._file, spec.attrs)

    def _write_block(self, y0: int, rows: np.ndarray) -> None:
        assert self._cube is not None
        self._cube[y0 : y0 + rows.shape[0]] = rows.astype(self.spec.dtype, copy=False)

    def _finish(self) -> None:
        self._close()

    def _close(self) -> None:
        self._cube = None
        if self._file is not None:
            file, self._file = self._file, None
            file.close()


def create_hdf5(path: Path, spec: CubeSpec, *, userblock_size: int = 0) -> h5py.File:
    """Open ``path`` for writing with a chunk cache that holds two rows of chunks.

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
        path,
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


def read_h5(path: Path) -> tuple[np.ndarray, np.ndarray, dict[str, AttrValue]]:
    """Read ``cube`` (H×W×B, any float, returned as float32), ``wavelength`` and root attributes."""
    with h5py.File(path, "r") as file:
        cube = file.get("cube")
        if not isinstance(cube, h5py.Dataset) or cube.ndim != 3:
            raise ValueError(f"{path}: no 3-D dataset 'cube' (H×W×bands)")
        data = np.asarray(cube[()], dtype=np.float32)
        if "wavelength" in file:
            wavelengths = np.asarray(file["wavelength"][()], dtype=np.float64).ravel()
        else:
            wavelengths = default_wavelengths(data.shape[2], path)
        attrs = read_attrs(file, skip=frozenset({"wavelength_units"}))
    if wavelengths.size != data.shape[2]:
        raise ValueError(f"{path}: {wavelengths.size} wavelengths for a cube of {data.shape[2]} bands")
    return data, wavelengths, attrs
