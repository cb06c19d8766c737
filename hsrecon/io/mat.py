"""MATLAB v7.3 cubes (``NAME.mat``), laid out as NTIRE's: ``cube`` H×W×31 single, ``bands`` 1×31 double.

A v7.3 MAT-file is an HDF5 file whose first 512 bytes (the HDF5 "userblock") carry MATLAB's
header. MATLAB stores arrays column-major, so HDF5 sees every shape reversed: MATLAB's H×W×31
``cube`` is the dataset (31, W, H) and the 1×31 ``bands`` is (31, 1). This module is the only one
that knows either fact.

Header layout (hdf5storage's "Storage Format" documentation, checked against SciPy's
``matfile_version``): bytes 0–115 text ``MATLAB 7.3 MAT-file, Platform: …, Created on: …
HDF5 schema 1.00 .`` padded with spaces; 116–123 subsystem offset (zeros); 124–125 version
0x0200 written little-endian (``00 02``); 126–127 the endian mark ``IM``; the rest zeros.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import h5py
import numpy as np

from hsrecon.io.base import CHUNK_PX, AttrValue, CubeInfo, check_real, default_wavelengths
from hsrecon.io.h5 import HDF5CubeWriter, dataset_filters, dataset_info, read_attrs, write_attrs

USERBLOCK_BYTES = 512
_TEXT_BYTES = 116
_VERSION_AND_ENDIAN = b"\x00\x02IM"  # version 0x0200 little-endian, then "IM": a little-endian v7.3 file
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


class MatCubeWriter(HDF5CubeWriter):
    """Writes row blocks into the reversed ``cube`` dataset; the MATLAB header goes in on commit.

    ``dtype="float16"``: MATLAB has no half type, so values are rounded to float16 precision and
    stored as single. MATLAB reads them as ordinary single; with shuffle + gzip the zeroed low
    mantissa bits compress away, so the file is close to a float16 file's size.
    """

    fmt = "mat"
    userblock_size = USERBLOCK_BYTES

    def _open(self) -> None:
        spec = self.spec
        file = self._open_hdf5()
        shape = (spec.bands, spec.width, spec.height)
        chunks = (spec.bands, min(CHUNK_PX, spec.width), min(CHUNK_PX, spec.height))
        self._cube = file.create_dataset("cube", shape=shape, dtype="<f4", chunks=chunks, **dataset_filters(spec))
        self._cube.attrs["MATLAB_class"] = np.bytes_(b"single")
        bands = file.create_dataset("bands", data=spec.wavelengths_nm.reshape(spec.bands, 1))
        bands.attrs["MATLAB_class"] = np.bytes_(b"double")
        write_attrs(file, spec.attrs)
        self._check_writes()

    def _write_block(self, y0: int, rows: np.ndarray) -> None:
        assert self._cube is not None
        if self.spec.dtype == "float16":
            rows = rows.astype(np.float16).astype(np.float32)
        self._cube[:, :, y0 : y0 + rows.shape[0]] = rows.transpose(2, 1, 0)
        self._check_writes()

    def _finish(self) -> None:
        self._close()
        write_mat73_header(self.temp_for(self.path))


def mat73_header(now: datetime | None = None) -> bytes:
    """The 512-byte userblock that makes MATLAB (and SciPy) recognise an HDF5 file as v7.3.

    The date is spelled in English whatever the locale, as MATLAB does (``Fri Feb 07 02:29:00 2014``).
    """
    from hsrecon import __version__

    now = now or datetime.now()
    created = f"{_DAYS[now.weekday()]} {_MONTHS[now.month - 1]} {now:%d %H:%M:%S %Y}"
    text = f"MATLAB 7.3 MAT-file, Platform: hsrecon {__version__}, Created on: {created} HDF5 schema 1.00 ."
    head = text.encode("ascii", errors="replace")[:_TEXT_BYTES].ljust(_TEXT_BYTES, b" ")
    return (head + bytes(8) + _VERSION_AND_ENDIAN).ljust(USERBLOCK_BYTES, b"\x00")


def write_mat73_header(path: Path) -> None:
    """Fill the userblock of a closed HDF5 file (HDF5 itself never touches those bytes)."""
    with open(path, "r+b") as file:
        file.write(mat73_header())


def read_mat(
    path: Path, *, image_shape: tuple[int, int] | None = None
) -> tuple[np.ndarray, np.ndarray, dict[str, AttrValue]]:
    """Read ``cube`` (and ``bands``) from a v7.3 or v5 MAT-file: (H×W×B float32, wavelengths, attrs).

    The band axis is the one whose size is the number of wavelengths (31 without ``bands``);
    ``image_shape`` (H, W), when known, settles ties and catches spatially transposed files.
    """
    if h5py.is_hdf5(path):
        matlab_cube, bands, attrs = _read_v73(path)
    else:
        matlab_cube, bands, attrs = _read_v5(path)
    check_real(path, matlab_cube)
    if bands is not None:
        check_real(path, bands, "bands")
    wavelengths = None if bands is None else np.asarray(bands, dtype=np.float64).ravel()
    n_bands = 31 if wavelengths is None else wavelengths.size
    cube = to_height_width_bands(matlab_cube, n_bands, image_shape=image_shape, path=path)
    if wavelengths is None:
        wavelengths = default_wavelengths(cube.shape[2], path)
    return cube, wavelengths, attrs


# MATLAB classes (as scipy's whosmat names them) that hold numbers; anything else (struct, cell) is no cube.
_MATLAB_CLASSES = {"double": "float64", "single": "float32", "logical": "bool"} | {
    name: name for name in ("int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64")
}


def mat_info(path: Path) -> CubeInfo:
    """What ``path``'s variable ``cube`` declares (MATLAB's axis order, stored type), from headers alone."""
    if h5py.is_hdf5(path):
        with h5py.File(path, "r") as file:
            info = dataset_info(path, file)
        return CubeInfo(info.shape[::-1], info.dtype)  # HDF5 stores MATLAB's axes reversed
    from scipy.io import whosmat
    from scipy.io.matlab import MatReadError

    try:
        variables = {name: (shape, kind) for name, shape, kind in whosmat(path)}
    except (MatReadError, ValueError, NotImplementedError, TypeError) as exc:
        raise ValueError(f"{path}: not a readable MAT-file ({exc})") from exc
    if "cube" not in variables:
        raise ValueError(f"{path}: no variable 'cube'")
    shape, kind = variables["cube"]
    return CubeInfo(tuple(int(n) for n in shape), np.dtype(_MATLAB_CLASSES.get(kind, "object")))


def _read_v73(path: Path) -> tuple[np.ndarray, np.ndarray | None, dict[str, AttrValue]]:
    """``cube`` and ``bands`` in MATLAB's axis order (HDF5's reversed back)."""
    with h5py.File(path, "r") as file:
        cube = file.get("cube")
        if not isinstance(cube, h5py.Dataset):
            raise ValueError(f"{path}: no variable 'cube'")
        dataset_info(path, file)  # refuses data kept outside the file
        matlab_cube = np.asarray(cube[()]).T
        bands = np.asarray(file["bands"][()]).T if isinstance(file.get("bands"), h5py.Dataset) else None
        attrs = read_attrs(file)
    return matlab_cube, bands, attrs


def _read_v5(path: Path) -> tuple[np.ndarray, np.ndarray | None, dict[str, AttrValue]]:
    """Older (v5/v7) MAT-files through SciPy, which already returns MATLAB's axis order."""
    from scipy.io import loadmat
    from scipy.io.matlab import MatReadError

    try:
        variables = loadmat(path, variable_names=["cube", "bands"])
    except (MatReadError, ValueError, NotImplementedError, OSError, EOFError) as exc:
        # OSError: SciPy's own "could not read bytes" for truncated compressed data names no file
        raise ValueError(f"{path}: not a readable MAT-file ({getattr(exc, 'strerror', None) or exc})") from exc
    if "cube" not in variables:
        raise ValueError(f"{path}: no variable 'cube'")
    return variables["cube"], variables.get("bands"), {}


def to_height_width_bands(
    matlab_cube: np.ndarray, n_bands: int, *, image_shape: tuple[int, int] | None, path: Path
) -> np.ndarray:
    """Move the band axis last, choosing it by size (and by ``image_shape`` when given), never by position.

    MATLAB's remaining two axes are (rows, columns). When several axes have the band count and no
    image shape is known, the last one wins: that is NTIRE's H×W×31.
    """
    axis, transpose = matlab_band_axis(matlab_cube.shape, n_bands, image_shape=image_shape, path=path)
    cube = np.moveaxis(matlab_cube, axis, -1)
    if transpose:
        cube = cube.transpose(1, 0, 2)
    return np.ascontiguousarray(cube, dtype=np.float32)


def matlab_band_axis(
    shape: tuple[int, ...], n_bands: int, *, image_shape: tuple[int, int] | None, path: Path
) -> tuple[int, bool]:
    """The band axis of a MATLAB-order ``shape``, and whether the other two are (columns, rows).

    The rule of :func:`to_height_width_bands`, on a shape alone, so a reader that slices the file
    (``hsrecon view``) lays the axes out exactly as a whole read does.
    """
    if len(shape) != 3:
        raise ValueError(f"{path}: 'cube' has {len(shape)} dimensions, expected 3")
    candidates = [axis for axis in range(3) if shape[axis] == n_bands]
    if not candidates:
        raise ValueError(f"{path}: 'cube' of MATLAB shape {tuple(shape)} has no axis of {n_bands} bands")
    if image_shape is None:
        return candidates[-1], False
    return _match_image_shape(tuple(shape), candidates, tuple(image_shape), path)


def _match_image_shape(
    shape: tuple[int, ...], candidates: list[int], image_shape: tuple[int, ...], path: Path
) -> tuple[int, bool]:
    """The band axis whose other two axes are the image's (H, W), or (W, H) to be transposed."""
    for transpose in (False, True):
        for axis in reversed(candidates):
            spatial = tuple(size for i, size in enumerate(shape) if i != axis)
            if (spatial[::-1] if transpose else spatial) == image_shape:
                return axis, transpose
    raise ValueError(
        f"{path}: 'cube' of MATLAB shape {shape} does not fit an image of {image_shape[0]}×{image_shape[1]}"
    )
