"""ENVI cubes: ``NAME.img`` (raw float32, little-endian, bsq/bil/bip) plus ``NAME.hdr`` (text header).

Header keys follow SPy's order (``spectral.io.envi.write_envi_header``) so ``spectral.open_image``
and ENVI read them; the header is written last, after the data, so it never points at a missing or
short file. Reading goes through SPy. ENVI has no float16 type, so ENVI output is float32 only.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Mapping
from pathlib import Path
from typing import BinaryIO

import numpy as np

from hsrecon.io.base import ENVI_DATA_SUFFIX, AttrValue, CubeInfo, CubeSpec, CubeWriter, check_real

ENVI_FLOAT32 = 4
# Bytes per value for each ENVI "data type" code, so is_complete can check headers we did not write.
ENVI_ITEMSIZE = {1: 1, 2: 2, 3: 4, 4: 4, 5: 8, 6: 8, 9: 16, 12: 2, 13: 4, 14: 8, 15: 8}
# Keys that describe the raster itself; everything else in a header is returned as an attribute.
ENVI_STANDARD_KEYS = frozenset(
    {
        "description",
        "samples",
        "lines",
        "bands",
        "header offset",
        "file type",
        "data type",
        "interleave",
        "sensor type",
        "byte order",
        "reflectance scale factor",
        "map info",
        "wavelength",
        "fwhm",
        "wavelength units",
        "band names",
    }
)
_TITLE = "hsrecon spectral reconstruction"


def _band_planes(rows: np.ndarray, chunk_bytes: int = 1 << 20) -> np.ndarray:
    """h×w×b rows → b×h×w planes, transposed a few rows at a time so that each piece stays in the cache
    (a band at a time over the whole block reads all of it once per band)."""
    h, w, b = rows.shape
    planes = np.empty((b, h, w), dtype=rows.dtype)
    step = max(1, chunk_bytes // (w * b * rows.itemsize))
    for r0 in range(0, h, step):
        planes[:, r0 : r0 + step] = rows[r0 : r0 + step].transpose(2, 0, 1)
    return planes


class EnviCubeWriter(CubeWriter):
    """Writes rows of ``NAME.img`` in place (preallocated, seek + write), then ``NAME.hdr`` on commit.

    Plain row writes rather than a ``numpy.memmap``: a memmap's dirty pages count as the process's
    memory until the kernel writes them back, and row writes keep memory at one row block.
    """

    fmt = "envi"
    _file: BinaryIO | None = None

    def _open(self) -> None:
        temp = self.new_temp(self.paths[0])
        self._file = open(temp, "r+b")  # noqa: SIM115 - held open across write_rows calls, closed in _close
        _preallocate(self._file, self.height * self.width * self.bands * 4)

    def _write_block(self, y0: int, rows: np.ndarray) -> None:
        assert self._file is not None
        rows = rows.astype("<f4", copy=False)
        _, w, b = rows.shape
        if self.spec.interleave == "bip":  # file is H×W×B: the block is one contiguous run
            self._write_at(y0 * w * b, rows)
        elif self.spec.interleave == "bil":  # file is H×B×W: one run of rows, bands inside each row
            self._write_at(y0 * b * w, rows.transpose(0, 2, 1))
        else:  # bsq, file is B×H×W: one run per band
            planes = _band_planes(rows)
            for band in range(b):
                self._write_at((band * self.height + y0) * w, planes[band])

    def _write_at(self, offset_values: int, block: np.ndarray) -> None:
        assert self._file is not None
        self._file.seek(offset_values * 4)
        self._file.write(np.ascontiguousarray(block).data)

    def _finish(self) -> None:
        self._close()
        text = envi_header(self.spec)
        self.new_temp(self.paths[1]).write_text(text, encoding="utf-8")

    def _close(self) -> None:
        if self._file is not None:
            file, self._file = self._file, None
            file.close()

    def _refuse_existing(self) -> None:
        """As for every format, except for an orphaned data file, which is replaced.

        ``commit()`` renames ``.img`` then ``.hdr``; a run killed between the two leaves a ``.img`` of
        exactly this cube's size and no header. That file is ours and worthless (nothing can read it
        without the header), so the rerun replaces it instead of refusing it as existing.
        """
        data, header = self.paths
        orphan = not header.exists() and _size_or_none(data) == self.height * self.width * self.bands * 4
        if not orphan:
            super()._refuse_existing()


def _size_or_none(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None


def _preallocate(file: BinaryIO, nbytes: int) -> None:
    """Size the data file up front, reserving the blocks where the OS can, so a full disk fails now.

    ``posix_fallocate`` turns "disk full an hour in" into "disk full before the first tile"; where a
    file system cannot reserve space the file is merely extended (sparse) and a full disk shows up
    at the write that hits it.
    """
    file.truncate(nbytes)
    if nbytes == 0 or not hasattr(os, "posix_fallocate"):
        return
    try:
        os.posix_fallocate(file.fileno(), 0, nbytes)
    except OSError as exc:
        if exc.errno not in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
            raise


def _header_value(value: AttrValue) -> str:
    """One header line's worth of text: braces would start an ENVI list, newlines end the value."""
    text = str(value).replace("\r", " ").replace("\n", " ")
    return text.replace("{", "(").replace("}", ")")


def _envi_list(values: list[str]) -> str:
    return "{ " + " , ".join(values) + " }"


def envi_header(spec: CubeSpec) -> str:
    """The ``.hdr`` text for a float32 little-endian cube; keys in SPy's order, attrs after them.

    ``description`` lists every attribute for people (ENVI shows it); each attribute is also its
    own key for programs (``read_cube`` returns them, as strings).
    """
    wavelengths = [float(w) for w in spec.wavelengths_nm]
    description = [f"{_TITLE}, {len(wavelengths)} bands, {wavelengths[0]:g}-{wavelengths[-1]:g} nm"]
    description += [f"{name}: {_header_value(value)}" for name, value in spec.attrs.items()]
    lines = [
        "ENVI",
        "description = {\n" + "\n".join("  " + line for line in description) + "}",
        f"samples = {spec.width}",
        f"lines = {spec.height}",
        f"bands = {len(wavelengths)}",
        "header offset = 0",
        "file type = ENVI Standard",
        f"data type = {ENVI_FLOAT32}",
        f"interleave = {spec.interleave}",
        "byte order = 0",
        f"wavelength = {_envi_list([repr(w) for w in wavelengths])}",
        "wavelength units = Nanometers",
        f"band names = {_envi_list([f'{w:g} nm' for w in wavelengths])}",
    ]
    lines += [f"{name} = {_header_value(value)}" for name, value in spec.attrs.items()]
    return "\n".join(lines) + "\n"


def parse_envi_header(text: str) -> dict[str, str]:
    """Header keys (lower-cased) to raw value text; brace values may span lines. Just enough to size files."""
    lines = text.splitlines()
    if not lines or not lines[0].strip().startswith("ENVI"):
        raise ValueError("not an ENVI header (first line is not 'ENVI')")
    header: dict[str, str] = {}
    pending = iter(lines[1:])
    for line in pending:
        key, sep, value = line.partition("=")
        if not sep or line.lstrip().startswith(";"):
            continue
        value = value.strip()
        while value.startswith("{") and "}" not in value:
            value += "\n" + next(pending, "}")
        header[key.strip().lower()] = value
    return header


def envi_data_size(header: Mapping[str, str]) -> int:
    """Bytes the data file must hold: ``header offset`` + lines × samples × bands × item size."""
    itemsize = ENVI_ITEMSIZE[int(header["data type"])]
    count = int(header["lines"]) * int(header["samples"]) * int(header["bands"])
    return int(header.get("header offset", "0")) + count * itemsize


# ENVI "data type" codes of real numbers, as numpy types (6 and 9 are complex: no cube of ours).
ENVI_DTYPES = {1: "u1", 2: "i2", 3: "i4", 4: "f4", 5: "f8", 12: "u2", 13: "u4", 14: "i8", 15: "u8"}
MAX_HEADER_BYTES = 1 << 20  # a real header is a few kB; a bigger one is not read


def envi_info(path: Path) -> CubeInfo:
    """What an ENVI header declares (lines × samples × bands, stored type), checked against its data file."""
    hdr = path.with_suffix(".hdr") if path.suffix.lower() == ENVI_DATA_SUFFIX else path
    if hdr.stat().st_size > MAX_HEADER_BYTES:
        raise ValueError(f"{hdr}: a header of {hdr.stat().st_size:,} bytes is not an ENVI header")
    try:
        header = parse_envi_header(hdr.read_text(encoding="utf-8", errors="replace"))
        shape = tuple(int(header[key]) for key in ("lines", "samples", "bands"))
        code = int(header["data type"])
        offset = int(header.get("header offset", "0"))
    except KeyError as exc:
        raise ValueError(f"{hdr}: no {exc.args[0]!r} in the ENVI header") from None
    except ValueError as exc:
        raise ValueError(f"{hdr}: not a usable ENVI header ({exc})") from None
    if code not in ENVI_DTYPES or min(shape) < 1 or offset < 0:
        raise ValueError(f"{hdr}: data type {code}, {'×'.join(map(str, shape))} values: not a real-valued cube")
    needed = envi_data_size(header)
    img = hdr.with_suffix(ENVI_DATA_SUFFIX)
    size = _size_or_none(img)
    if size is not None and size < needed:
        raise ValueError(f"{img}: {size:,} bytes, its header declares {needed:,}")
    return CubeInfo(shape, np.dtype(ENVI_DTYPES[code]))


def is_complete_envi(img_path: Path, hdr_path: Path) -> bool:
    """Header present and parseable, and the data file exactly the size it declares."""
    try:
        header = parse_envi_header(hdr_path.read_text(encoding="utf-8", errors="replace"))
        return img_path.stat().st_size == envi_data_size(header)
    except (OSError, ValueError, KeyError):
        return False


def read_envi(path: Path) -> tuple[np.ndarray, np.ndarray, dict[str, AttrValue]]:
    """Read ``NAME.hdr`` (or its ``NAME.img``) with SPy: (H×W×B float32, wavelengths float64, attrs).

    The data file is named explicitly so SPy does not pick another file sharing the stem.
    """
    from spectral.io import envi as spy_envi

    hdr = path.with_suffix(".hdr") if path.suffix.lower() == ENVI_DATA_SUFFIX else path
    img = hdr.with_suffix(ENVI_DATA_SUFFIX)
    image = spy_envi.open(str(hdr), str(img)) if img.is_file() else spy_envi.open(str(hdr))
    stored = image.open_memmap(interleave="bip")
    check_real(hdr, stored.dtype)
    cube = np.array(stored, dtype=np.float32)
    centers = image.bands.centers
    if not centers:
        raise ValueError(f"{hdr}: no 'wavelength' in the header")
    attrs = {key: _attr_text(value) for key, value in image.metadata.items() if key not in ENVI_STANDARD_KEYS}
    return cube, np.asarray(centers, dtype=np.float64), attrs


def _attr_text(value: object) -> str:
    return ", ".join(map(str, value)) if isinstance(value, list) else str(value)
