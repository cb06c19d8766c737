"""Reading RGB images: every supported format and depth, conversions said in notes, hostile files refused.

Fixtures are written at test time (Pillow, or by hand where Pillow cannot write the format: 16-bit RGB
PNG and TIFF, and headers that lie about their size); no binary files are committed.
"""

from __future__ import annotations

import struct
import time
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from hsrecon.io import rgb as rgb_module
from hsrecon.io.rgb import IMAGE_SUFFIXES, ImageReadError, RGBImage, probe_size, read_rgb

# --- hand-made files -------------------------------------------------------------------------------------


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _png(array: np.ndarray, colour_type: int, *, width: int | None = None, height: int | None = None) -> bytes:
    """A PNG of ``array`` (uint8 or uint16 → bit depth 8/16), filter 0; the header size may lie."""
    depth = 16 if array.dtype == np.uint16 else 8
    rows = array.reshape(array.shape[0], -1).astype(">u2" if depth == 16 else "u1")
    raw = b"".join(b"\x00" + row.tobytes() for row in rows)
    h, w = array.shape[:2]
    header = struct.pack(
        ">IIBBBBB", width if width is not None else w, height if height is not None else h, depth, colour_type, 0, 0, 0
    )
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(raw)) + _chunk(b"IEND", b"")


def _tiff(array: np.ndarray, order: str, *, deflate: bool = False, planar: bool = False) -> bytes:
    """A baseline RGB TIFF, one strip per plane (chunky, or planar), uncompressed or Adobe-deflate."""
    h, w, c = array.shape
    planes = [array[..., i] for i in range(c)] if planar else [array]
    strips = [plane.astype(array.dtype.newbyteorder(order)).tobytes() for plane in planes]
    strips = [zlib.compress(strip) for strip in strips] if deflate else strips
    n = len(strips)
    entries = [
        (256, 3, 1, w),
        (257, 3, 1, h),
        (258, 3, c, "bps"),
        (259, 3, 1, 8 if deflate else 1),
        (262, 3, 1, 2),
        (273, 4, n, "offsets"),
        (277, 3, 1, c),
        (278, 3, 1, h),
        (279, 4, n, "counts"),
        (284, 3, 1, 2 if planar else 1),
    ]
    tables = 8 + 2 + 12 * len(entries) + 4
    bps = struct.pack(order + "H" * c, *[array.dtype.itemsize * 8] * c)
    data_start = tables + len(bps) + 8 * n
    offsets = [data_start + sum(len(strip) for strip in strips[:i]) for i in range(n)]
    where = {"bps": tables, "offsets": tables + len(bps), "counts": tables + len(bps) + 4 * n}
    if n == 1:  # a single value is stored in the entry itself
        where |= {"offsets": offsets[0], "counts": len(strips[0])}
    out = (b"II" if order == "<" else b"MM") + struct.pack(order + "HI", 42, 8) + struct.pack(order + "H", len(entries))
    for tag, kind, count, value in entries:
        value = where[value] if isinstance(value, str) else value
        if kind == 3 and count == 1:
            out += struct.pack(order + "HHIHH", tag, kind, count, value, 0)
        else:
            out += struct.pack(order + "HHII", tag, kind, count, value)
    out += struct.pack(order + "I", 0) + bps
    out += struct.pack(order + "I" * n, *offsets) + struct.pack(order + "I" * n, *map(len, strips))
    return out + b"".join(strips)


def _smooth(height: int = 24, width: int = 32) -> np.ndarray:
    """An 8-bit RGB gradient: JPEG keeps it within a few codes, so lossy formats can be checked too."""
    y, x = np.mgrid[0:height, 0:width]
    return np.stack(
        [x * 255 // (width - 1), y * 255 // (height - 1), (x + y) * 255 // (width + height - 2)], axis=-1
    ).astype(np.uint8)


def _asymmetric() -> np.ndarray:
    """Random pixels, 4×6: every orientation gives a different array."""
    return np.random.default_rng(7).integers(0, 256, (4, 6, 3), dtype=np.uint8)


# --- formats and depths ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("suffix", "options", "tolerance"),
    [
        (".png", {}, 0),
        (".bmp", {}, 0),
        (".webp", {"lossless": True}, 0),
        (".tif", {}, 0),
        (".tiff", {"compression": "tiff_deflate"}, 0),  # libtiff's path
        (".jpg", {"quality": 95}, 12),
        (".jpeg", {"quality": 95, "subsampling": 0}, 6),
    ],
)
def test_8bit_formats_read_as_uint8(tmp_path: Path, suffix: str, options: dict, tolerance: int) -> None:
    expected = _smooth()
    path = tmp_path / f"image{suffix}"
    Image.fromarray(expected).save(path, **options)
    image = read_rgb(path)
    assert isinstance(image, RGBImage)
    assert image.pixels.dtype == np.uint8 and image.max_code == 255.0
    assert image.pixels.shape == expected.shape and image.pixels.flags.c_contiguous
    assert not image.pixels.flags.writeable
    assert np.abs(image.pixels.astype(int) - expected).max() <= tolerance
    assert image.notes == () and image.source == path


def test_16bit_rgb_png_keeps_all_16_bits(tmp_path: Path) -> None:
    # Pillow alone (and imageio through it) returns only the high bytes of a 16-bit RGB PNG.
    expected = np.random.default_rng(1).integers(0, 65536, (7, 9, 3)).astype(np.uint16)
    path = tmp_path / "deep.png"
    path.write_bytes(_png(expected, colour_type=2))
    with Image.open(path) as im:
        assert np.asarray(im).dtype == np.uint8  # the limitation this module works around
    image = read_rgb(path)
    assert image.pixels.dtype == np.uint16 and image.max_code == 65535.0
    np.testing.assert_array_equal(image.pixels, expected)
    assert image.notes == ()


def test_16bit_rgba_png_keeps_16_bits_and_drops_alpha(tmp_path: Path) -> None:
    expected = np.random.default_rng(2).integers(0, 65536, (5, 8, 4)).astype(np.uint16)
    path = tmp_path / "deep_alpha.png"
    path.write_bytes(_png(expected, colour_type=6))
    image = read_rgb(path)
    np.testing.assert_array_equal(image.pixels, expected[..., :3])
    assert image.notes == ("alpha channel dropped",)


@pytest.mark.parametrize(("colour_type", "channels"), [(0, 1), (4, 2)])
def test_16bit_grey_png_expands_keeping_16_bits(tmp_path: Path, colour_type: int, channels: int) -> None:
    grey = np.random.default_rng(3).integers(0, 65536, (6, 5, channels)).astype(np.uint16)
    path = tmp_path / "grey16.png"
    path.write_bytes(_png(grey, colour_type=colour_type))
    image = read_rgb(path)
    assert image.pixels.dtype == np.uint16
    np.testing.assert_array_equal(image.pixels, np.repeat(grey[..., :1], 3, axis=2))
    assert "grayscale expanded to RGB" in image.notes
    assert ("alpha channel dropped" in image.notes) == (channels == 2)


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("deflate", [False, True])
def test_16bit_rgb_tiff_keeps_all_16_bits(tmp_path: Path, order: str, deflate: bool) -> None:
    expected = np.random.default_rng(4).integers(0, 65536, (6, 7, 3)).astype(np.uint16)
    path = tmp_path / "deep.tif"
    path.write_bytes(_tiff(expected, order, deflate=deflate))
    image = read_rgb(path)
    assert image.pixels.dtype == np.uint16 and image.max_code == 65535.0
    np.testing.assert_array_equal(image.pixels, expected)


def test_planar_16bit_tiff_is_refused_not_misread(tmp_path: Path) -> None:
    # Pillow reads these without complaint but wrongly (neither the high nor the low bytes).
    path = tmp_path / "planar.tif"
    path.write_bytes(_tiff(np.full((4, 5, 3), 40000, np.uint16), "<", planar=True))
    assert "planar TIFF" in _refusal(path)
    eight = tmp_path / "planar8.tif"
    eight.write_bytes(_tiff(_smooth(), "<", planar=True))
    np.testing.assert_array_equal(read_rgb(eight).pixels, _smooth())


def test_float_tiff_reads_as_float32(tmp_path: Path) -> None:
    grey = np.linspace(0, 1, 30, dtype=np.float32).reshape(5, 6)
    path = tmp_path / "float.tif"
    Image.fromarray(grey).save(path)
    image = read_rgb(path)
    assert image.pixels.dtype == np.float32 and image.max_code == 1.0
    np.testing.assert_array_equal(image.pixels[..., 2], grey)


# --- conversions, each said once -------------------------------------------------------------------------


def test_rgba_drops_alpha(tmp_path: Path) -> None:
    rgba = np.dstack([_smooth(), np.full(_smooth().shape[:2], 7, np.uint8)])
    path = tmp_path / "rgba.png"
    Image.fromarray(rgba).save(path)
    image = read_rgb(path)
    np.testing.assert_array_equal(image.pixels, rgba[..., :3])
    assert image.notes == ("alpha channel dropped",)


def test_grayscale_expands_to_three_equal_channels(tmp_path: Path) -> None:
    grey = _smooth()[..., 0]
    path = tmp_path / "grey.png"
    Image.fromarray(grey).save(path)
    image = read_rgb(path)
    np.testing.assert_array_equal(image.pixels, np.repeat(grey[..., None], 3, axis=2))
    assert image.notes == ("grayscale expanded to RGB",)


def test_palette_converts_through_its_palette(tmp_path: Path) -> None:
    palette_image = Image.fromarray(_smooth()).convert("P")
    path = tmp_path / "palette.png"
    palette_image.save(path)
    image = read_rgb(path)
    np.testing.assert_array_equal(image.pixels, np.asarray(palette_image.convert("RGB")))
    assert image.notes == ("palette converted",)


def test_cmyk_jpeg_converts_with_a_note(tmp_path: Path) -> None:
    cmyk = Image.fromarray(_smooth()).convert("CMYK")
    path = tmp_path / "print.jpg"
    cmyk.save(path, quality=95)
    image = read_rgb(path)
    assert image.pixels.dtype == np.uint8 and image.pixels.shape == (24, 32, 3)
    assert np.abs(image.pixels.astype(int) - np.asarray(cmyk.convert("RGB")).astype(int)).max() <= 12
    assert len(image.notes) == 1 and image.notes[0].startswith("CMYK converted to RGB")


@pytest.mark.parametrize("suffix", [".gif", ".webp"])
def test_animation_gives_its_first_frame(tmp_path: Path, suffix: str) -> None:
    frames = [Image.fromarray(np.full((8, 8, 3), value, np.uint8)) for value in (10, 120, 250)]
    path = tmp_path / f"animated{suffix}"
    frames[0].save(path, save_all=True, append_images=frames[1:], **({"lossless": True} if suffix == ".webp" else {}))
    image = read_rgb(path)
    np.testing.assert_array_equal(image.pixels, np.full((8, 8, 3), 10, np.uint8))
    assert "first frame of 3" in image.notes


def _with_orientation(array: np.ndarray, path: Path, orientation: int, **options) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(array).save(path, exif=exif, **options)


def test_exif_orientation_6_rotates_90_clockwise(tmp_path: Path) -> None:
    stored = _asymmetric()
    path = tmp_path / "portrait.png"
    _with_orientation(stored, path, 6)
    image = read_rgb(path)
    np.testing.assert_array_equal(image.pixels, np.rot90(stored, k=-1))  # clockwise: first column → top row
    np.testing.assert_array_equal(image.pixels[0, :, :], stored[::-1, 0, :])
    assert image.notes == ("EXIF orientation applied (rotate 90 clockwise)",)
    assert probe_size(path) == (6, 4)


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_every_exif_orientation_matches_pillow(tmp_path: Path, orientation: int, suffix: str) -> None:
    path = tmp_path / f"oriented{suffix}"
    _with_orientation(_asymmetric(), path, orientation)
    with Image.open(path) as im:
        expected = np.asarray(ImageOps.exif_transpose(im))
    image = read_rgb(path)
    np.testing.assert_array_equal(image.pixels, expected)
    assert probe_size(path) == expected.shape[:2]
    assert any(note.startswith("EXIF orientation") for note in image.notes) == (orientation != 1)


def test_exif_orientation_in_a_jpeg(tmp_path: Path) -> None:
    stored = _smooth()
    path = tmp_path / "camera.jpg"
    _with_orientation(stored, path, 6, quality=95)
    image = read_rgb(path)
    assert image.pixels.shape == (32, 24, 3)
    assert np.abs(image.pixels.astype(int) - np.rot90(stored, k=-1)).max() <= 12


def test_one_pixel_image(tmp_path: Path) -> None:
    path = tmp_path / "dot.png"
    Image.fromarray(np.array([[[1, 2, 3]]], np.uint8)).save(path)
    image = read_rgb(path)
    np.testing.assert_array_equal(image.pixels, [[[1, 2, 3]]])


# --- refusals: one line each, naming the file ------------------------------------------------------------


def _refusal(path: Path, **kwargs) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning may escape either
        with pytest.raises(ImageReadError) as info:
            read_rgb(path, **kwargs)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    return message


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_truncated_files_are_refused(tmp_path: Path, suffix: str) -> None:
    whole = tmp_path / f"whole{suffix}"
    Image.fromarray(np.random.default_rng(5).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(whole)
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    assert "not a readable image" in _refusal(cut)


def test_empty_text_missing_and_unknown_files_are_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    assert "empty file" in _refusal(empty)
    text = tmp_path / "notes.png"
    text.write_text("this is not a picture\n")
    assert "not a readable image" in _refusal(text)
    assert "no such file" in _refusal(tmp_path / "missing.png")
    other = tmp_path / "picture.xyz"
    Image.fromarray(_smooth()).save(other, format="PNG")
    assert "unsupported suffix '.xyz'" in _refusal(other)


def test_zero_width_header_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "flat.png"
    path.write_bytes(_png(np.zeros((3, 1, 3), np.uint8), colour_type=2, width=0))
    _refusal(path)


def test_huge_header_is_refused_before_decoding(tmp_path: Path) -> None:
    # A 60000×60000 IHDR with almost no data: refused from the header, without decoding anything.
    path = tmp_path / "bomb.png"
    path.write_bytes(_png(np.zeros((1, 4, 3), np.uint8), colour_type=2, width=60000, height=60000))
    assert probe_size(path) == (60000, 60000)
    start = time.perf_counter()
    message = _refusal(path)
    assert time.perf_counter() - start < 0.5
    assert "refused before decoding" in message and "60000×60000" in message


def test_max_pixels_is_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "image.png"
    Image.fromarray(_smooth()).save(path)
    assert read_rgb(path, max_pixels=24 * 32).pixels.shape == (24, 32, 3)
    assert "exceeds the limit of 767" in _refusal(path, max_pixels=24 * 32 - 1)


@pytest.mark.parametrize("max_pixels", [250, 900])  # Pillow's error (> 2× its limit) and its warning
def test_pillows_own_bomb_check_becomes_an_image_read_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, max_pixels: int
) -> None:
    # Pillow checks a TIFF's size again while decoding; with our header check out of the way, that check
    # must still end in one ImageReadError line, not a traceback or a DecompressionBombWarning.
    path = tmp_path / "image.tif"
    Image.fromarray(_smooth(32, 32)).save(path)
    monkeypatch.setattr(rgb_module, "_check_size", lambda *args: None)
    before = Image.MAX_IMAGE_PIXELS
    assert "refused" in _refusal(path, max_pixels=max_pixels)
    assert Image.MAX_IMAGE_PIXELS == before  # Pillow's global restored


def test_suffixes() -> None:
    assert {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp"} <= IMAGE_SUFFIXES
    assert all(suffix == suffix.lower() and suffix.startswith(".") for suffix in IMAGE_SUFFIXES)
