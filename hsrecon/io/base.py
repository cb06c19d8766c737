"""The base of every cube writer: what is written (:class:`CubeSpec`), how it is streamed and committed
(:class:`CubeWriter`), output names and caller attributes.

The format modules (``envi``, ``mat``, ``h5``) subclass :class:`CubeWriter` from here; the dispatcher
(:mod:`hsrecon.io.cube`) imports them, so the imports run one way: cube → formats → base.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import numpy as np

from hsrecon.interrupts import deferred
from hsrecon.physics import WAVELENGTHS_NM
from hsrecon.temps import LockedTemp, create_temp

FORMATS: dict[str, str] = {"envi": ".hdr", "mat": ".mat", "h5": ".h5"}
"""Format name -> suffix of the file whose presence marks a complete output."""

DTYPES = ("float32", "float16")
CHUNK_PX = 64  # HDF5 chunks: one 64×64 tile (the model's window) × all bands, clipped to the image
INTERLEAVES = ("bsq", "bil", "bip")
ENVI_DATA_SUFFIX = ".img"
CUBE_SUFFIXES = frozenset({".mat", ".h5", ".hdf5", ".hdr"})  # a cube file's suffix (ENVI is found by its header)

# Attribute names the formats themselves use (ENVI header keys, HDF5 root attributes); a caller's
# attribute of the same name would silently replace or shadow them.
RESERVED_ATTRS = frozenset(
    {"samples", "lines", "bands", "interleave", "wavelength", "wavelength_units", "description", "band_names"}
)
_ATTR_NAME = re.compile(r"[a-z][a-z0-9_]*\Z")

AttrValue = str | int | float


class CubeWriteError(OSError):
    """An output cannot be written: exists, directory missing or read-only, disk full, or incomplete.

    The message is one line, ``<path>: <problem>``, ready for ``hsrecon: error: ...``; ``errno`` is
    set when an operating-system error caused it.
    """


@dataclass(frozen=True)
class CubeInfo:
    """What a cube file declares about its cube, read from its header alone (no values decoded).

    ``shape`` is in the file's own axis order (ENVI lines × samples × bands, HDF5 as stored, MATLAB's
    order for ``.mat``), so compare it to another file's with :meth:`same_size`; ``dtype`` is the stored
    type. A file's header is a claim: checking it before reading is what keeps a tiny sparse file that
    declares a terabyte from being read.
    """

    shape: tuple[int, ...]
    dtype: np.dtype

    @property
    def values(self) -> int:
        """How many values the cube declares."""
        count = 1
        for size in self.shape:
            count *= size
        return count

    def describe(self) -> str:
        return "×".join(str(size) for size in self.shape)

    def same_size(self, other: CubeInfo) -> bool:
        """Whether the two declare the same sizes, in any axis order (formats order axes differently)."""
        return sorted(self.shape) == sorted(other.shape)


class OutputExistsError(CubeWriteError):
    """An output is there already and ``overwrite`` is off: it is not replaced. ``path`` names it."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = Path(path)


class ConcurrentOutputError(OutputExistsError):
    """The output was not there when the writer opened and is at commit: another process (a second run
    into the same folder) wrote it meanwhile. hsrecon renames only complete files into place, so that
    one is whole; this writer's is dropped and the other left as it is."""


def output_path(stem: Path, fmt: str) -> Path:
    """The file that marks a complete output: ``out/photo`` -> ``out/photo.hdr`` / ``.mat`` / ``.h5``.

    The suffix is appended, never substituted, so ``out/photo.v2`` keeps its ``.v2``.
    """
    stem = Path(stem)
    return stem.with_name(stem.name + FORMATS[check_format(fmt)])


def preview_path(stem: Path) -> Path:
    """The sRGB preview written beside a cube with ``--preview``: ``out/photo`` -> ``out/photo.preview.png``."""
    stem = Path(stem)
    return stem.with_name(stem.name + ".preview.png")


def output_files(stem: Path, fmt: str) -> list[Path]:
    """Every file of a complete output, in the order ``commit()`` renames them (marker last)."""
    marker = output_path(stem, fmt)
    if fmt == "envi":
        return [marker.with_name(Path(stem).name + ENVI_DATA_SUFFIX), marker]
    return [marker]


def default_wavelengths(bands: int, path: Path) -> np.ndarray:
    """Wavelengths for a file that stores none: NTIRE's 400–700 nm for 31 bands, else an error."""
    if bands != len(WAVELENGTHS_NM):
        raise ValueError(f"{path}: stores no wavelengths and has {bands} bands, not 31 (400–700 nm)")
    return np.asarray(WAVELENGTHS_NM, dtype=np.float64)


def check_real(path: Path, values: np.ndarray | np.dtype, name: str = "cube") -> None:
    """ValueError naming ``path`` unless ``values`` (an array, or its dtype) are real numbers: a complex
    cube (MATLAB v5 complex, MATLAB v7.3's real/imag pairs) would otherwise lose its imaginary part with a
    raw ComplexWarning and be used as if it were real."""
    dtype = values if isinstance(values, np.dtype) else np.asarray(values).dtype
    if dtype.kind == "c" or (dtype.names is not None and {"real", "imag"} <= set(dtype.names)):
        raise ValueError(f"{path}: {name!r} holds complex numbers, not real ones")
    if dtype.kind not in "fiub":
        raise ValueError(f"{path}: {name!r} holds values of type {dtype}, not real numbers")


def check_finite(path: Path, cube: np.ndarray, role: str, consequence: str) -> None:
    """ValueError when an H×W×B ``cube`` holds NaN or infinity: how many, where the first is, and what is
    done about it (``consequence``: "not scored", "not trained on"). One broken cube must fail alone,
    never turn every mean (or every training step) into NaN."""
    if cube.dtype.kind != "f":
        return
    with np.errstate(over="ignore", invalid="ignore"):
        if np.isfinite(cube.sum(dtype=np.float64)):  # one pass; the exact count only when it says no
            return
    bad = ~np.isfinite(cube)
    count = int(np.count_nonzero(bad))
    if count:
        y, x, band = np.unravel_index(int(bad.argmax()), cube.shape)
        raise ValueError(
            f"{path}: {count:,} of {cube.size:,} {role} values are NaN or infinite (the first at row {y}, "
            f"column {x}, band {band}); {consequence}"
        )


def integer_values_note(
    path: Path,
    dtype: np.dtype,
    role: str,
    used: str,
    advice: str = "divide by the white level first if the other cube holds reflectances",
) -> str | None:
    """The note for a cube stored as integers (a ``uint16`` truth), None for any other: it is ``used``
    ("scored", "trained") on its stored values, never silently rescaled, and every command says so alike."""
    if np.dtype(dtype).kind not in "iu":
        return None
    stored = np.dtype(dtype).name
    return f"{path}: {role} stored as {stored}: {used} on its stored values, not scaled to [0, 1] ({advice})"


READ_BYTES_PER_VALUE = 12
"""Peak bytes per declared value while a cube is read: the stored value (up to 8 bytes) and its float32."""


def memory_budget() -> int:
    """Bytes one piece of work (a pair of cubes read and scored, a synthetic scene made) may take: half
    the machine's physical memory, so a claim checked against it cannot swap the machine to a halt."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
    except (ValueError, OSError, AttributeError):  # no sysconf (Windows): assume a modest machine
        return 8 << 30


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise ValueError(f"unknown cube format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return fmt


def check_attrs(attrs: Mapping[str, AttrValue] | None) -> dict[str, AttrValue]:
    """Validate caller metadata once, here, so every format stores the same names and values.

    Names are lower-case identifiers (ENVI header keys are case-insensitive, HDF5's are not, so only
    lower case round-trips through both); values are ``str``, ``int`` or ``float``.
    """
    checked: dict[str, AttrValue] = {}
    for name, value in (attrs or {}).items():
        if not isinstance(name, str) or not _ATTR_NAME.match(name):
            raise ValueError(f"attribute name {name!r} must be lower-case letters, digits and '_'")
        if name in RESERVED_ATTRS:
            raise ValueError(f"attribute name {name!r} is reserved by the cube formats")
        if not isinstance(value, str | int | float):
            raise TypeError(f"attribute {name!r} must be str, int or float, not {type(value).__name__}")
        checked[name] = value
    return checked


def _first_line(exc: BaseException) -> str:
    """The operating system's words for an error (strerror), else the first line of its message."""
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return text.strip().splitlines()[0]


def write_error(path: Path, exc: BaseException) -> CubeWriteError:
    """Wrap an ``OSError`` as a one-line ``CubeWriteError`` naming ``path``, keeping its errno."""
    error = CubeWriteError(f"{path}: {_first_line(exc)}")
    error.errno = getattr(exc, "errno", None)
    return error


@dataclass(frozen=True, eq=False)
class CubeSpec:
    """What is written, validated once: size, wavelengths, stored precision and format options.

    ``interleave`` matters to ENVI only and ``compression`` (gzip + shuffle) to the HDF5-based formats.
    """

    height: int
    width: int
    wavelengths_nm: np.ndarray
    dtype: str = "float32"
    interleave: str = "bsq"
    attrs: Mapping[str, AttrValue] = field(default_factory=dict)
    compression: bool = True

    def __post_init__(self) -> None:
        if int(self.height) < 1 or int(self.width) < 1:
            raise ValueError(f"cube size must be at least 1×1, got {self.height}×{self.width}")
        wavelengths = np.asarray(self.wavelengths_nm, dtype=np.float64)
        if wavelengths.ndim != 1 or wavelengths.size == 0 or not np.all(np.isfinite(wavelengths)):
            raise ValueError("wavelengths_nm must be a non-empty 1-D sequence of finite numbers")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if self.interleave not in INTERLEAVES:
            raise ValueError(f"interleave must be one of {', '.join(INTERLEAVES)}, got {self.interleave!r}")
        object.__setattr__(self, "height", int(self.height))
        object.__setattr__(self, "width", int(self.width))
        object.__setattr__(self, "wavelengths_nm", wavelengths)
        object.__setattr__(self, "attrs", check_attrs(self.attrs))

    @property
    def bands(self) -> int:
        """Number of bands (the length of ``wavelengths_nm``)."""
        return len(self.wavelengths_nm)


class CubeWriter:
    """Streams an H×W×B cube to temporaries, then renames them into place; a context manager.

    ``with open_cube_writer(...) as writer: writer.write_rows(y0, rows)`` commits on success and
    aborts on an exception (which propagates). Subclasses open their temporaries in ``_open``,
    store row blocks in ``_write_block``, close (and add any header temporaries) in ``_finish``
    and drop handles in ``_close``.
    """

    fmt = ""

    def __init__(self, stem: Path, spec: CubeSpec, *, overwrite: bool = False) -> None:
        self.paths: list[Path] = output_files(stem, self.fmt)
        self.spec = spec
        self.height, self.width, self.bands = spec.height, spec.width, spec.bands
        self.overwrite = overwrite
        self._rows_done = np.zeros(self.height, dtype=bool)
        self._temps: dict[Path, Path] = {}
        self._locks: list[LockedTemp] = []
        self._published: list[Path] = []
        self._state = "open"
        self._refuse_existing()
        try:
            with deferred():
                self._open()
        except OSError as exc:
            self.abort()
            raise write_error(self.path, exc) from exc
        except BaseException:  # an interrupt while opening: the caller never gets the writer to abort it
            self.abort()
            raise

    @property
    def path(self) -> Path:
        """The file that marks the output complete (the ``.hdr`` for ENVI)."""
        return self.paths[-1]

    @property
    def rows_written(self) -> int:
        """How many distinct rows have been written so far."""
        return int(np.count_nonzero(self._rows_done))

    # -- the protocol ---------------------------------------------------------------------------

    def write_rows(self, y0: int, rows: np.ndarray) -> None:
        """Write ``rows`` (h×width×bands, float) as image rows ``y0 .. y0+h-1``, straight to disk."""
        self._check_open()
        rows = self._check_rows(y0, rows)
        if rows.shape[0] == 0:
            return
        try:
            with deferred():  # never inside HDF5: it does not survive an exception from its file callbacks
                self._write_block(y0, rows)
        except OSError as exc:
            self.abort()
            raise write_error(self.path, exc) from exc
        self._rows_done[y0 : y0 + rows.shape[0]] = True

    def commit(self) -> None:
        """Close the temporaries and rename them to their final names, data first, marker last.

        Refuses (and aborts) when some rows were never written, so that an interrupted producer can
        never leave a file that looks finished. No fsync: safe against a crashed process, not
        against a power cut.
        """
        self._check_open()
        if self.rows_written < self.height:
            done = self.rows_written
            self.abort()
            raise CubeWriteError(f"{self.path}: incomplete: {done} of {self.height} rows written")
        try:
            with deferred():  # closing (HDF5) and the renames with "committed": interrupted before or after
                self._finish()
                self._publish()
                self._state = "committed"
        except CubeWriteError:
            self.abort()
            raise
        except OSError as exc:
            self.abort()
            raise write_error(self.path, exc) from exc
        except BaseException:  # an interrupt while closing: nothing of this output may remain
            self.abort()
            raise
        self._release_locks()

    def abort(self) -> None:
        """Close and delete the temporaries (and anything a failed commit already renamed).

        Safe to call twice and after a failure; does nothing once committed.
        """
        if self._state == "committed":
            self._release_locks()  # an interrupt right after the commit: the output stays, the locks go
            return
        self._state = "aborted"
        try:
            with contextlib.suppress(OSError), deferred():
                self._close()
        finally:  # an interrupt held back during the close is raised only after the deletions
            for path in [*self._temps.values(), *self._published]:
                with contextlib.suppress(OSError):
                    path.unlink(missing_ok=True)
            self._temps.clear()
            self._published.clear()
            self._release_locks()

    def __enter__(self) -> CubeWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()

    def __del__(self) -> None:
        # A writer dropped without commit() or abort() must not leave hidden temporaries behind.
        if getattr(self, "_state", None) == "open":
            with contextlib.suppress(Exception):
                self.abort()

    # -- for subclasses -------------------------------------------------------------------------

    def _open(self) -> None:
        raise NotImplementedError

    def _write_block(self, y0: int, rows: np.ndarray) -> None:
        raise NotImplementedError

    def _finish(self) -> None:
        raise NotImplementedError

    def _close(self) -> None:
        raise NotImplementedError

    def new_temp(self, final: Path) -> Path:
        """Create an empty, locked temporary ``.NAME.<random>.tmp`` beside ``final`` and register it.

        The lock (``hsrecon.temps``) tells a later run's cleanup that this temporary is alive; it is
        held until the writer commits or aborts, and the kernel drops it if the process is killed.
        """
        with deferred():  # created and registered together, so abort() always knows to delete it
            temp = create_temp(final)
            self._locks.append(temp)
            self._temps[final] = temp.path
        return temp.path

    def temp_for(self, final: Path) -> Path:
        """The temporary that ``commit()`` will rename to ``final``."""
        return self._temps[final]

    # -- internals ------------------------------------------------------------------------------

    def _release_locks(self) -> None:
        for temp in self._locks:
            temp.release()
        self._locks.clear()

    def _refuse_existing(self) -> None:
        if not self.overwrite and any(p.exists() for p in self.paths):
            raise OutputExistsError(self.path, "exists (overwrite=True replaces it)")

    def _publish(self) -> None:
        """Rename temporaries into place; an old marker goes first so no reader pairs old with new."""
        try:
            self._refuse_existing()
        except OutputExistsError:  # absent at open (checked there), present now: written by another process
            problem = "exists now: written meanwhile by another process, left as it is"
            raise ConcurrentOutputError(self.path, problem) from None
        if len(self.paths) > 1 and self.path.exists():
            self.path.unlink()
        for final in self.paths:
            os.replace(self._temps[final], final)
            self._published.append(final)
            del self._temps[final]

    def _check_open(self) -> None:
        if self._state != "open":
            raise ValueError(f"{self.path}: writer is already {self._state}")

    def _check_rows(self, y0: int, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows)
        if not np.issubdtype(rows.dtype, np.floating):
            raise TypeError(f"rows must be floating point, not {rows.dtype}")
        expected = (self.width, self.bands)
        if rows.ndim != 3 or rows.shape[1:] != expected:
            raise ValueError(f"rows must have shape (h, {expected[0]}, {expected[1]}), got {rows.shape}")
        if y0 < 0 or y0 + rows.shape[0] > self.height:
            raise ValueError(f"rows {y0}..{y0 + rows.shape[0] - 1} fall outside the image's {self.height} rows")
        return rows.astype(np.float32, copy=False)
