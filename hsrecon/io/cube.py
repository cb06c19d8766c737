"""Cube outputs: one door for writing (``open_cube_writer``) and one for reading (``read_cube``).

Writers stream rows straight to temporaries beside the final files and rename them into place on
``commit()``, so memory does not grow with image height and a crash never leaves a finished-looking
output: a final name either holds a whole cube or does not exist. The format modules (``envi``,
``mat``, ``h5``) subclass ``CubeWriter``; they are imported on first use so that importing this
module costs no h5py or SPy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from hsrecon.io.base import (
    ENVI_DATA_SUFFIX,
    AttrValue,
    CubeInfo,
    CubeSpec,
    CubeWriter,
    check_format,
    output_files,
    output_path,
)


def is_complete(stem: Path, fmt: str) -> bool:
    """Whether a whole output exists: for ENVI, the header and a data file of the size it declares."""
    if fmt == "envi":
        from hsrecon.io import envi

        return envi.is_complete_envi(*output_files(stem, fmt))
    from hsrecon.io import h5

    return h5.is_complete_hdf5(output_path(stem, fmt))


def open_cube_writer(
    stem: Path,
    fmt: str,
    *,
    height: int,
    width: int,
    wavelengths_nm: Sequence[float],
    dtype: str = "float32",
    interleave: str = "bsq",
    attrs: Mapping[str, AttrValue] | None = None,
    compression: bool = True,
    overwrite: bool = False,
) -> CubeWriter:
    """Open a streaming writer for ``output_files(stem, fmt)``; nothing appears there before commit.

    ``dtype`` is the stored precision (``float16`` only for ``h5`` and ``mat``: ENVI has no half
    type); ``interleave`` applies to ENVI only; ``compression`` (gzip + shuffle) to HDF5-based formats.
    Raises ``ValueError`` for bad arguments and ``CubeWriteError`` when the output cannot be created.
    """
    check_format(fmt)
    if fmt == "envi" and dtype == "float16":
        raise ValueError(
            "ENVI has no float16 data type: dtype='float16' applies to .h5 and .mat only (ENVI is float32)"
        )
    spec = CubeSpec(
        height=height,
        width=width,
        wavelengths_nm=np.asarray(wavelengths_nm),
        dtype=dtype,
        interleave=interleave,
        attrs=dict(attrs or {}),
        compression=compression,
    )
    return _writer_class(fmt)(stem, spec, overwrite=overwrite)


def _writer_class(fmt: str) -> type[CubeWriter]:
    """The format's writer, imported on first use (h5py and SPy load only when needed)."""
    if fmt == "envi":
        from hsrecon.io.envi import EnviCubeWriter

        return EnviCubeWriter
    if fmt == "mat":
        from hsrecon.io.mat import MatCubeWriter

        return MatCubeWriter
    from hsrecon.io.h5 import H5CubeWriter

    return H5CubeWriter


def cube_info(path: Path) -> CubeInfo:
    """What a cube file declares (shape in its own axis order, stored type), by suffix, from headers
    alone: check it before :func:`read_cube` when the file comes from elsewhere."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".hdr", ENVI_DATA_SUFFIX):
        from hsrecon.io.envi import envi_info

        return envi_info(path)
    if suffix == ".mat":
        from hsrecon.io.mat import mat_info

        return mat_info(path)
    if suffix in (".h5", ".hdf5"):
        from hsrecon.io.h5 import h5_info

        return h5_info(path)
    raise ValueError(f"{path}: unknown cube suffix {path.suffix!r}; expected .hdr, .img, .mat or .h5")


def read_cube(
    path: Path, *, image_shape: tuple[int, int] | None = None
) -> tuple[np.ndarray, np.ndarray, dict[str, AttrValue]]:
    """Read a cube by suffix: ``.hdr``/``.img`` (ENVI, via SPy), ``.mat`` (v7.3 or v5), ``.h5``.

    Returns ``(cube, wavelengths_nm, attrs)``: cube H×W×B float32, wavelengths float64. For
    ``.mat`` files the band axis is found from its size (the length of ``bands``, else 31) and
    ``image_shape`` (H, W) when given, so NTIRE's own cubes read the same way as ours.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".hdr", ENVI_DATA_SUFFIX):
        from hsrecon.io.envi import read_envi

        return read_envi(path)
    if suffix == ".mat":
        from hsrecon.io.mat import read_mat

        return read_mat(path, image_shape=image_shape)
    if suffix in (".h5", ".hdf5"):
        from hsrecon.io.h5 import read_h5

        return read_h5(path)
    raise ValueError(f"{path}: unknown cube suffix {path.suffix!r}; expected .hdr, .img, .mat or .h5")
