"""Reading RGB photos: PNG, JPEG, TIFF, BMP, WebP and GIF, 8- or 16-bit, as an H×W×3 array.

Pillow does the decoding (imageio's Pillow plugin adds nothing here and hides what we need): it is lazy,
so the header's size is known before any pixel is decoded, and the decompression-bomb limit is checked
against ``max_pixels`` before decoding starts.

What is kept and what is changed, each change said once in :attr:`RGBImage.notes`:

- Samples keep the file's own precision: 8-bit files give uint8 (``max_code`` 255), 16-bit files uint16
  (65535), 32-bit float files float32 (1.0). Pillow has no 16-bit RGB image mode and reduces 16-bit RGB(A)
  PNG and TIFF to 8 bits (so does imageio, through Pillow); here such files are decoded twice, once for
  the high and once for the low byte of every sample, and recombined, so all 16 bits survive. Layouts
  Pillow can only read at 8 bits say so in a note; planar 16-bit TIFFs, which it misreads, are refused.
- Alpha is dropped (not composited: the colours under a transparent pixel are the scene's colours).
- Grayscale (1-bit, 8-bit, 16-bit, float) is expanded to three equal channels: for a grey pixel all three
  input spaces then see a neutral colour, which is what a grayscale photo claims.
- Palette images are converted to RGB through their palette.
- CMYK (print JPEGs and TIFFs) is converted to RGB with Pillow's plain formula, without a colour profile:
  approximate colours, and the note says so.
- Multi-frame files (animated GIF/WebP, multi-page TIFF, MPO) give their first frame.
- The EXIF orientation tag is applied, so the array is upright as viewers show it.
"""

from __future__ import annotations

import dataclasses
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

__all__ = ["IMAGE_SUFFIXES", "ImageReadError", "RGBImage", "probe_size", "read_rgb"]

IMAGE_SUFFIXES: frozenset[str] = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".gif"})
# Pillow plugins allowed to open a file: only the formats above (its JPEG plugin also opens the multi-picture
# JPEGs phones write, as MPO). Fewer parsers exposed to untrusted files.
_PILLOW_FORMATS = ("PNG", "JPEG", "TIFF", "BMP", "WEBP", "GIF")

_ORIENTATION_TAG = 0x0112
_MAKE_TAG, _MODEL_TAG = 0x010F, 0x0110
_CAMERA_CHARS = 64
_ORIENTATION_WORDS = {
    2: "mirror left-right",
    3: "rotate 180",
    4: "mirror top-bottom",
    5: "transpose",
    6: "rotate 90 clockwise",
    7: "transverse",
    8: "rotate 90 counter-clockwise",
}

# Pillow rawmodes that carry 16-bit samples but are unpacked to 8 bits (the high byte). Decoding again with
# the byte order swapped gives the low byte. "N" is native order, which libtiff always hands back.
_SPLIT16_RAWMODES = frozenset(f"{base};16{order}" for base in ("RGB", "RGBA", "RGBX") for order in ("B", "L", "N"))
_NATIVE = "L" if sys.byteorder == "little" else "B"
_SWAPPED_ORDER = {"B": "L", "L": "B", "N": "B" if _NATIVE == "L" else "L"}

_PILLOW_LOCK = threading.RLock()


class ImageReadError(ValueError):
    """An image that cannot be read; the message is one line: ``"<path>: <problem>"``."""


@dataclass(frozen=True)
class RGBImage:
    """Decoded pixels plus what was done to get them.

    ``pixels`` is H×W×3, C-contiguous and read-only, in the file's own sample type (uint8, uint16, or
    float32 for float files); ``pixels / max_code`` is the file's value in [0, 1]. ``format`` is the
    container Pillow recognised (``"JPEG"``, ``"PNG"``, …); ``camera`` the EXIF make and model when the
    file names one (printable characters only, at most 64): both say whether it looks like a photo.
    """

    pixels: np.ndarray
    max_code: float
    source: Path
    notes: tuple[str, ...]
    format: str = ""
    camera: str | None = None


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _fail(path: Path, problem: str) -> ImageReadError:
    return ImageReadError(f"{path}: {problem}")


@contextmanager
def _pillow_limit(max_pixels: int | None) -> Iterator[None]:
    """Run Pillow with its decompression-bomb error above ``max_pixels`` (None: off).

    Pillow raises its error above twice ``Image.MAX_IMAGE_PIXELS`` (and only warns above it), so the
    limit is set to half. It is a process-wide global, so it is set under a lock and restored afterwards;
    reads in several threads are serialised (decoding is a small part of a reconstruction's time). No
    ``catch_warnings`` here: it swaps the warning filters of the whole process, and a reader thread doing
    so races with the main thread's own (a library's import-time warning escaped that way).
    """
    with _PILLOW_LOCK:
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None if max_pixels is None else (max_pixels + 1) // 2
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def _check_suffix(path: Path) -> None:
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        expected = " ".join(sorted(IMAGE_SUFFIXES))
        raise _fail(path, f"not a readable image (unsupported suffix {path.suffix!r}; expected one of {expected})")


def _why_not_a_file(path: Path) -> str:
    """Say why ``path`` cannot be opened as a file (a dangling or looping link is not "missing")."""
    if not path.exists():
        return "broken or looping symbolic link" if path.is_symlink() else "no such file"
    return "not a regular file"


def _open(path: Path) -> Image.Image:
    """Open lazily (header only), turning every failure into one ImageReadError line."""
    _check_suffix(path)
    if not path.is_file():
        raise _fail(path, _why_not_a_file(path))
    if path.stat().st_size == 0:
        raise _fail(path, "not a readable image (empty file)")
    try:
        return Image.open(path, formats=_PILLOW_FORMATS)
    except PermissionError as exc:
        raise _fail(path, f"cannot be read ({exc.strerror or 'permission denied'})") from None
    except UnidentifiedImageError:
        raise _fail(path, "not a readable image (unknown or unsupported format)") from None
    except Image.DecompressionBombError as exc:
        raise _fail(path, f"refused: {_one_line(exc)}") from None
    except Exception as exc:  # any parser failure on a hostile or damaged file
        raise _fail(path, f"not a readable image ({_one_line(exc)})") from None


def _header_orientation(im: Image.Image) -> int:
    """The EXIF orientation known from the header alone (PNG: only an eXIf chunk before the pixels)."""
    if im.format == "PNG" and "exif" not in im.info:
        return 1
    try:
        value = im.getexif().get(_ORIENTATION_TAG, 1)
    except Exception:  # a damaged EXIF block is not worth refusing the picture for
        return 1
    return value if value in _ORIENTATION_WORDS else 1


def _camera(im: Image.Image) -> str | None:
    """The EXIF camera make and model ("Canon Canon EOS 5D Mark II" as cameras write it), or None.

    Only printable characters are kept, at most 64: the text comes from the file and ends up in messages.
    """
    try:
        exif = im.getexif()
        parts = [exif.get(tag) for tag in (_MAKE_TAG, _MODEL_TAG)]
    except Exception:  # a damaged EXIF block says nothing either way
        return None
    texts = [part.decode("latin-1") if isinstance(part, bytes) else part for part in parts]
    words = " ".join(text for text in texts if isinstance(text, str) and text)
    text = "".join(ch for ch in words if ch.isprintable()).strip()[:_CAMERA_CHARS].strip()
    return text or None


def _oriented_size(im: Image.Image) -> tuple[int, int]:
    """(height, width) as read_rgb returns it. Pillow's TIFF plugin already reports the oriented size."""
    width, height = im.size
    if im.format != "TIFF" and _header_orientation(im) in (5, 6, 7, 8):
        width, height = height, width
    return height, width


def probe_size(path: Path) -> tuple[int, int]:
    """(height, width) of the image as :func:`read_rgb` would return it, from the header, decoding nothing."""
    path = Path(path)
    with _pillow_warnings([]), _pillow_limit(None), _open(path) as im:
        return _oriented_size(im)


def _check_size(path: Path, height: int, width: int, max_pixels: int) -> None:
    if height <= 0 or width <= 0:
        raise _fail(path, f"not a readable image (size {width}×{height} has no pixels)")
    if height * width > max_pixels:
        raise _fail(
            path,
            f"refused before decoding: {width}×{height} = {height * width:,} pixels exceeds the limit of "
            f"{max_pixels:,} (max_pixels)",
        )


def _tile_rawmodes(im: Image.Image) -> set[str | None]:
    """The rawmodes Pillow will unpack the tiles with (before loading)."""
    modes: set[str | None] = set()
    for tile in im.tile:
        args = tile.args
        modes.add(args if isinstance(args, str) else args[0] if isinstance(args, tuple) and args else None)
    return modes


def _with_rawmode(im: Image.Image, rawmode: str) -> None:
    """Make Pillow unpack every tile with ``rawmode`` instead (same bits per pixel, so same unfiltering)."""
    tiles = []
    for tile in im.tile:
        args = rawmode if isinstance(tile.args, str) else (rawmode, *tile.args[1:])
        tiles.append(tile._replace(args=args))
    im.tile = tiles


def _decode_split16(path: Path, im: Image.Image, rawmode: str) -> np.ndarray:
    """All 16 bits of an RGB(A) file Pillow would cut to 8: high bytes, then low bytes from a second pass."""
    im.load()
    high = np.asarray(im)
    with Image.open(path, formats=_PILLOW_FORMATS) as again:
        _with_rawmode(again, rawmode[:-1] + _SWAPPED_ORDER[rawmode[-1]])
        again.load()
        low = np.asarray(again)
    if high.shape != low.shape:
        raise ValueError("the two 16-bit decoding passes disagree in shape")
    out = high.astype(np.uint16) << 8
    out |= low
    return out


def _decode_la16(im: Image.Image) -> np.ndarray:
    """16-bit grey+alpha PNG (Pillow: 8-bit RGBA): unpack the same 4 bytes per pixel as raw RGBA bytes."""
    _with_rawmode(im, "RGBA")
    im.load()
    raw = np.asarray(im).astype(np.uint16)
    return np.stack([raw[..., 0] << 8 | raw[..., 1], raw[..., 2] << 8 | raw[..., 3]], axis=-1)


def _integer_32(array: np.ndarray) -> np.ndarray:
    """32-bit integer samples (mode "I"): accepted only within 0…65535, as 16-bit."""
    if array.size and (array.min() < 0 or array.max() > 65535):
        raise ValueError("32-bit integer samples outside 0…65535 are not supported")
    return array.astype(np.uint16)


def _array_from_mode(im: Image.Image, notes: list[str]) -> tuple[np.ndarray, float]:
    """An H×W or H×W×C array (C ≤ 4, alpha last) from a loaded Pillow image, and its max code."""
    mode = im.mode
    if mode in ("RGB", "RGBA", "L", "LA"):
        return np.asarray(im), 255.0
    if mode.startswith("I;16"):
        return np.asarray(im).astype(np.uint16), 65535.0
    if mode == "I":
        return _integer_32(np.asarray(im)), 65535.0
    if mode == "F":
        return np.asarray(im, dtype=np.float32), 1.0
    if mode in ("P", "PA"):
        notes.append("palette converted")
        has_alpha = mode == "PA" or "transparency" in im.info
        return np.asarray(im.convert("RGBA" if has_alpha else "RGB")), 255.0
    if mode == "1":
        notes.append("1-bit image converted to 8 bits")
        return np.asarray(im.convert("L")), 255.0
    if mode == "CMYK":
        notes.append("CMYK converted to RGB without a colour profile (approximate colours)")
        return np.asarray(im.convert("RGB")), 255.0
    if mode in ("RGBX", "RGBa", "La", "YCbCr", "LAB", "HSV"):
        target = "RGBA" if mode == "RGBa" else "LA" if mode == "La" else "RGB"
        if mode not in ("RGBX", "RGBa", "La"):
            notes.append(f"{mode} converted to RGB")
        return np.asarray(im.convert(target)), 255.0
    raise ValueError(f"unsupported pixel mode {mode!r}")


def _check_layout(im: Image.Image) -> None:
    """Refuse what Pillow would decode wrongly without an error: planar (band-by-band) TIFFs deeper than 8 bits."""
    if im.format != "TIFF" or im.tag_v2.get(284, 1) != 2:  # PlanarConfiguration 2: separate planes
        return
    bits = im.tag_v2.get(258, (8,))
    if max(bits if isinstance(bits, tuple) else (bits,)) > 8:
        raise ValueError("planar TIFF with more than 8 bits per sample is not supported; save it interleaved")


def _decode(path: Path, im: Image.Image, notes: list[str]) -> tuple[np.ndarray, float]:
    _check_layout(im)
    rawmodes = _tile_rawmodes(im)
    rawmode = next(iter(rawmodes)) if len(rawmodes) == 1 else None
    if rawmode in _SPLIT16_RAWMODES:
        return _decode_split16(path, im, rawmode), 65535.0
    if rawmode == "LA;16B" and im.format == "PNG":
        return _decode_la16(im), 65535.0
    im.load()
    array, max_code = _array_from_mode(im, notes)
    if array.dtype == np.uint8 and any(isinstance(mode, str) and ";16" in mode for mode in rawmodes):
        notes.append("16-bit samples reduced to 8 bits (a layout Pillow decodes only to 8 bits)")
    return array, max_code


def _to_rgb(array: np.ndarray, notes: list[str]) -> np.ndarray:
    """H×W×3 from grey, grey+alpha, RGB or RGBA."""
    if array.ndim == 2:
        array = array[..., None]
    channels = array.shape[2]
    if channels in (2, 4):
        notes.append("alpha channel dropped")
        array = array[..., : channels - 1]
    if array.shape[2] == 1:
        notes.append("grayscale expanded to RGB")
        array = np.repeat(array, 3, axis=2)
    return array


def _orient(array: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (as Pillow's ImageOps.exif_transpose would) to an H×W×C array."""
    ops = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.transpose(1, 0, 2),
        6: lambda a: np.rot90(a, -1),
        7: lambda a: a.transpose(1, 0, 2)[::-1, ::-1],
        8: lambda a: np.rot90(a, 1),
    }
    return ops[orientation](array) if orientation in ops else array


def _frames(im: Image.Image) -> int:
    try:
        return int(getattr(im, "n_frames", 1))
    except Exception:  # counting frames reads the whole file; a damaged tail is not fatal for frame 0
        return 1


_WARNINGS_HOOK_LOCK = threading.Lock()
_capture = threading.local()  # .sink: the list collecting Pillow's warnings for the file this thread reads
_shown_before: Callable[..., None] | None = None  # warnings.showwarning as it was when the hook went in


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """``warnings.showwarning`` while hsrecon reads images: a warning Pillow raises for the file this
    thread is reading goes to that file's notes; every other warning is shown as it would have been."""
    sink = getattr(_capture, "sink", None)
    if sink is not None and Path(filename).parent.name == "PIL":
        if not issubclass(category, Image.DecompressionBombWarning):  # the size check says it better
            sink.append(str(message))
    elif _shown_before is not None:
        _shown_before(message, category, filename, lineno, file, line)


def _hook_warnings() -> None:
    """Put :func:`_show_warning` in place (once; again if a ``catch_warnings`` block took it out)."""
    global _shown_before
    with _WARNINGS_HOOK_LOCK:
        if warnings.showwarning is not _show_warning:
            _shown_before = warnings.showwarning
            warnings.showwarning = _show_warning


# Once at import, normally from the main thread, so that its own catch_warnings blocks save and restore the
# hook rather than drop it while a reader thread decodes; again at each read, in case one did.
_hook_warnings()


@contextmanager
def _pillow_warnings(notes: list[str]) -> Iterator[None]:
    """Pillow's warnings about a file (a damaged TIFF tag, corrupt EXIF) become one-line notes on it.

    Python would print each as two lines of ``UserWarning`` and source, ahead of the file's own error
    line or across a progress bar. They are caught per thread through ``warnings.showwarning``, not with
    ``catch_warnings``, which swaps the filters of the whole process and would change what the main
    thread's warnings do while a reader thread decodes the next image. Notes are kept only if the read
    succeeds: a file that fails has its one error line. (Python shows a given warning once per place, so
    a second file with the very same damage gets no note.)
    """
    _hook_warnings()
    caught: list[str] = []
    _capture.sink = caught
    try:
        yield
    finally:
        _capture.sink = None
    for text in caught:
        note = f"decoder warning: {' '.join(text.split())}"
        if note not in notes:
            notes.append(note)


def _check_finite(path: Path, array: np.ndarray) -> None:
    """NaN or infinity in a floating-point image is the input's fault: say so here, not as a network error."""
    if array.dtype.kind != "f":
        return
    bad = ~np.isfinite(array)
    count = int(np.count_nonzero(bad))
    if count:
        y, x = np.unravel_index(int(bad.argmax()), array.shape)[:2]
        raise _fail(path, f"{count:,} NaN or infinite sample values in the image (the first at row {y}, column {x})")


def read_rgb(path: Path, *, max_pixels: int = 200_000_000) -> RGBImage:
    """Decode ``path`` to an upright H×W×3 array, refusing anything over ``max_pixels`` before decoding."""
    path = Path(path)
    if max_pixels <= 0:
        raise ValueError(f"max_pixels must be positive, got {max_pixels}")
    notes: list[str] = []
    decoder_notes: list[str] = []
    with _pillow_warnings(decoder_notes):
        image = _read(path, max_pixels, notes)
    return dataclasses.replace(image, notes=(*image.notes, *decoder_notes)) if decoder_notes else image


def _read(path: Path, max_pixels: int, notes: list[str]) -> RGBImage:
    with _pillow_limit(None), _open(path) as im:
        _check_size(path, *_oriented_size(im), max_pixels)
        orientation = _header_orientation(im)
        frames = _frames(im)
        container = str(im.format or "")
        try:
            with _pillow_limit(max_pixels):
                array, max_code = _decode(path, im, notes)
            if im.format != "TIFF":  # Pillow's TIFF plugin applies the orientation itself on load
                orientation = _header_orientation(im)  # a PNG's eXIf chunk may follow the pixels
                array = _orient(array.reshape((*array.shape[:2], -1)), orientation)
            camera = _camera(im)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise _fail(path, f"refused: {_one_line(exc)}") from None
        except ImageReadError:
            raise
        except Exception as exc:  # truncated data, bad compression stream, decoder errors
            raise _fail(path, f"not a readable image ({_one_line(exc)})") from None
    _check_finite(path, array)
    pixels = np.ascontiguousarray(_to_rgb(array, notes))
    pixels.flags.writeable = False  # as frozen as the dataclass; Pillow's buffer is often read-only anyway
    if orientation in _ORIENTATION_WORDS:
        notes.append(f"EXIF orientation applied ({_ORIENTATION_WORDS[orientation]})")
    if frames > 1:
        notes.append(f"first frame of {frames}")
    _check_size(path, pixels.shape[0], pixels.shape[1], max_pixels)
    return RGBImage(pixels=pixels, max_code=max_code, source=path, notes=tuple(notes), format=container, camera=camera)
