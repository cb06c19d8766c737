"""Cube files: streaming, atomic writers and readers for ENVI, MATLAB v7.3 and HDF5.

``open_cube_writer`` and ``read_cube`` are the doors; the format modules (``envi``, ``mat``,
``h5``) load on first use, so importing this package costs neither h5py nor SPy.
"""

from __future__ import annotations

from hsrecon.io.base import (
    FORMATS,
    ConcurrentOutputError,
    CubeInfo,
    CubeSpec,
    CubeWriteError,
    CubeWriter,
    OutputExistsError,
    output_files,
    output_path,
)
from hsrecon.io.cube import cube_info, is_complete, open_cube_writer, read_cube
from hsrecon.temps import atomic_file, remove_stale_temps, write_atomic

__all__ = [
    "FORMATS",
    "ConcurrentOutputError",
    "CubeInfo",
    "CubeSpec",
    "CubeWriteError",
    "CubeWriter",
    "OutputExistsError",
    "atomic_file",
    "cube_info",
    "is_complete",
    "open_cube_writer",
    "output_files",
    "output_path",
    "read_cube",
    "remove_stale_temps",
    "write_atomic",
]
