"""Cube files: streaming, atomic writers and readers for ENVI, MATLAB v7.3 and HDF5.

``open_cube_writer`` and ``read_cube`` are the doors; the format modules (``envi``, ``mat``,
``h5``) load on first use, so importing this package costs neither h5py nor SPy.
"""

from __future__ import annotations

from hsrecon.io.base import FORMATS, CubeSpec, CubeWriteError, CubeWriter, output_files, output_path
from hsrecon.io.cube import is_complete, open_cube_writer, read_cube
from hsrecon.io.temps import atomic_file, remove_stale_temps

__all__ = [
    "FORMATS",
    "CubeSpec",
    "CubeWriteError",
    "CubeWriter",
    "atomic_file",
    "is_complete",
    "open_cube_writer",
    "output_files",
    "output_path",
    "read_cube",
    "remove_stale_temps",
]
