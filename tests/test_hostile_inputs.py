"""A corpus of bad and odd inputs, made at test time, through one real ``hsrecon convert`` run.

What an unattended overnight batch meets: damaged files, files that lie about their size or type, extreme
shapes, unusual pixel layouts, hostile names and a folder that loops back on itself. Each bad file must
cost exactly one error line naming it, each odd-but-valid file must convert, and nothing may leave a
traceback or a temporary behind.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_cli import NO_OVERLAP, hsrecon
from test_io_rgb import _png

from hsrecon.io import read_cube
from hsrecon.temps import TEMP_PATTERN


def _noise(height: int, width: int, seed: int = 0) -> np.ndarray:
    """Dim 8-bit noise: inside the clean input space's usual range, so the network stays finite."""
    return (np.random.default_rng(seed).random((height, width, 3)) * 80 + 10).astype(np.uint8)


def _save(path: Path, image: np.ndarray | Image.Image, **options) -> None:
    (image if isinstance(image, Image.Image) else Image.fromarray(image)).save(path, **options)


def _truncated(path: Path, fmt: str) -> None:
    whole = path.with_name("whole")
    _save(whole, _noise(48, 48, seed=1), format=fmt)
    data = whole.read_bytes()
    whole.unlink()
    path.write_bytes(data[: len(data) // 2])


def _animated(path: Path, **options) -> None:
    frames = [Image.fromarray(np.full((8, 8, 3), value, np.uint8)) for value in (30, 60, 90)]
    frames[0].save(path, save_all=True, append_images=frames[1:], **options)


def _tiff_with_a_lying_tag(path: Path) -> None:
    """A valid TIFF whose ImageDescription claims a million bytes: Pillow warns, skips the tag, reads it."""
    import io
    import struct

    buffer = io.BytesIO()
    Image.fromarray(_noise(6, 8)).save(buffer, format="TIFF", tiffinfo={270: "x" * 100})
    data = bytearray(buffer.getvalue())
    (ifd,) = struct.unpack("<I", data[4:8])
    (entries,) = struct.unpack("<H", data[ifd : ifd + 2])
    for entry in range(ifd + 2, ifd + 2 + 12 * entries, 12):
        if struct.unpack("<H", data[entry : entry + 2])[0] == 270:
            data[entry + 4 : entry + 8] = struct.pack("<I", 10**6)
    path.write_bytes(bytes(data))


def _float_tiff_with_nan(path: Path) -> None:
    values = np.full((5, 6), 0.25, np.float32)
    values[2, 3] = np.nan
    values[4, 0] = np.inf
    Image.fromarray(values, mode="F").save(path)


def _bomb_png(path: Path) -> None:
    """A valid PNG header claiming 60000×60000 pixels (10.8 GB decoded) over a few bytes of data."""
    path.write_bytes(_png(np.zeros((1, 4, 3), np.uint8), colour_type=2, width=60000, height=60000))


def _good_corpus(root: Path) -> dict[str, tuple[int, int]]:
    """Odd but valid inputs; returns output stem (relative, as bytes-safe str) -> expected (H, W)."""
    _save(root / "one_pixel.png", _noise(1, 1))
    _save(root / "wide.png", _noise(1, 100_000))  # 100000×1
    _save(root / "tall.png", _noise(100_000, 1))  # 1×100000
    (root / "deep16.png").write_bytes(_png(_noise(9, 13).astype(np.uint16) * 257, colour_type=2))
    _save(root / "cmyk.jpg", Image.fromarray(_noise(10, 12)).convert("CMYK"))
    _save(root / "palette.png", Image.fromarray(_noise(10, 12)).convert("P"))
    _animated(root / "animated.gif")
    _animated(root / "animated.webp", lossless=True)
    _save(root / "with space.png", _noise(6, 7))
    _save(Path(os.fsdecode(os.fsencode(root) + b"/caf\xe9.png")), _noise(5, 5))  # Latin-1 name: not UTF-8
    _save(root / "..png", _noise(4, 4), format="PNG")  # stem "." must not name the output folder itself
    _tiff_with_a_lying_tag(root / "warned.tif")
    (root / "sub" / "deeper").mkdir(parents=True)
    _save(root / "sub" / "deeper" / "nested.png", _noise(7, 9))
    os.symlink(root, root / "sub" / "loop")  # a folder loop: never followed
    return {
        "one_pixel": (1, 1),
        "wide": (1, 100_000),
        "tall": (100_000, 1),
        "deep16": (9, 13),
        "cmyk": (10, 12),
        "palette": (10, 12),
        "animated_gif": (8, 8),
        "animated_webp": (8, 8),
        "with space": (6, 7),
        os.fsdecode(b"caf\xe9"): (5, 5),
        "_": (4, 4),
        "warned": (6, 8),
        "sub/deeper/nested": (7, 9),
    }


def _bad_corpus(root: Path) -> dict[str, str]:
    """Bad inputs; returns an ASCII fragment of each name -> a fragment of its error."""
    _truncated(root / "truncated.png", "PNG")
    _truncated(root / "truncated.jpg", "JPEG")
    (root / "text.png").write_text("this is a shopping list, not a picture\n")
    (root / "empty.png").write_bytes(b"")
    (root / "empty.jpg").write_bytes(b"")
    _bomb_png(root / "bomb.png")
    _truncated(root / "truncated.tif", "TIFF")  # Pillow warns before it gives up: one line all the same
    _float_tiff_with_nan(root / "nan.tif")
    Path(os.fsdecode(os.fsencode(root) + b"/bad-\xff-name.png")).write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(20))
    os.symlink("self.png", root / "sub" / "self.png")  # a file link that points at itself
    return {
        "truncated.png": "not a readable image",
        "truncated.jpg": "not a readable image",
        "text.png": "not a readable image",
        "empty.png": "empty file",
        "empty.jpg": "empty file",
        "bomb.png": "refused before decoding: 60000×60000",
        "truncated.tif": "not a readable image",
        "nan.tif": "2 NaN or infinite sample values in the image (the first at row 2, column 3)",
        "-name.png": "not a readable image",
        "self.png": "looping symbolic link",
    }


@pytest.fixture(scope="module")
def corpus_run(tmp_path_factory):
    """One ``convert -r -f h5 --stride 64`` over the whole corpus (it is the slow part: ~20 s)."""
    root = tmp_path_factory.mktemp("corpus")
    good = _good_corpus(root)
    bad = _bad_corpus(root)
    out = root.parent / (root.name + "_out")
    result = hsrecon("convert", str(root), "-o", str(out), "-r", "-f", "h5", *NO_OVERLAP, "-q")
    return result, out, good, bad


def test_some_failed_and_nothing_crashed(corpus_run):
    result, _, _, _ = corpus_run
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_every_line_is_hsrecon_s_own(corpus_run):
    """No Python warning (two lines each, source context included) between the errors and notes."""
    result, _, _, _ = corpus_run
    assert [line for line in result.stderr.splitlines() if not line.startswith("hsrecon: ")] == []


def test_exactly_one_error_line_per_bad_file(corpus_run):
    result, _, _, bad = corpus_run
    errors = [line for line in result.stderr.splitlines() if line.startswith("hsrecon: error:")]
    assert len(errors) == len(bad), result.stderr
    for name, problem in bad.items():
        matching = [line for line in errors if name in line]
        assert len(matching) == 1, (name, errors)
        assert problem in matching[0], matching[0]


def test_every_good_file_converted_to_its_shape(corpus_run):
    _, out, good, _ = corpus_run
    for stem, shape in good.items():
        cube, wavelengths, _ = read_cube(out / f"{stem}.h5")
        assert cube.shape == (*shape, 31), stem
        assert np.isfinite(cube).all() and wavelengths.size == 31


def test_conversions_are_said_once_as_notes(corpus_run):
    result, _, _, _ = corpus_run
    notes = [line for line in result.stderr.splitlines() if line.startswith("hsrecon: note:")]
    for name, note in [
        ("animated.gif", "first frame of 3"),
        ("animated.webp", "first frame of 3"),
        ("cmyk.jpg", "CMYK converted"),
        ("palette.png", "palette converted"),
        ("warned.tif", "decoder warning: Tag data larger than file. Skipping tag 270"),
    ]:
        assert any(name in line and note in line for line in notes), (name, notes)


def test_nothing_else_in_the_output_folder(corpus_run):
    """No temporaries, no outputs for bad files, nothing beside or above the output folder."""
    _, out, good, _ = corpus_run
    written = sorted(
        os.fsdecode(os.path.relpath(os.path.join(folder, name), out))
        for folder, _, names in os.walk(out)
        for name in names
    )
    assert not [name for name in written if TEMP_PATTERN.fullmatch(Path(name).name) or name.endswith(".tmp")]
    assert written == sorted(f"{stem}.h5" for stem in good)
    assert not (out.parent / f"{out.name}.h5").exists()  # what "..png" would have written before
