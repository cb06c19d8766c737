"""hsrecon.view.sources: reads on demand give exactly what a whole read gives, for every format and layout,
and opening a huge cube reads nothing but its header."""

from __future__ import annotations

import contextlib
import os
import resource
import threading

import h5py
import numpy as np
import pytest
import scipy.io

from conftest import WAVELENGTHS
from conftest import write_cube as write
from hsrecon.io import read_cube
from hsrecon.view import sources
from hsrecon.view.sources import (
    EnviSource,
    HDF5Source,
    SourceClosedError,
    open_cube_source,
    overview_step,
    region_shape,
)

H, W = 70, 90  # crosses one 64-row and one 64-column chunk boundary


@pytest.fixture()
def cube(rng: np.random.Generator) -> np.ndarray:
    return (rng.random((H, W, 31), dtype=np.float32) * 3.0 - 0.5).astype(np.float32)


FORMATS = [("envi", {"interleave": "bsq"}), ("envi", {"interleave": "bil"}), ("envi", {"interleave": "bip"})]
FORMATS += [("h5", {}), ("mat", {})]
REGIONS = [
    (slice(0, H), slice(0, W)),
    (slice(0, H, 3), slice(0, W, 4)),
    (slice(5, 69, 7), slice(60, 90, 2)),  # across the 64-pixel chunk boundary
    (slice(63, 66), slice(63, 66)),
    (slice(H - 1, H), slice(0, W, 89)),
    (slice(0, H, 30), slice(1, W, 2)),
]


@pytest.mark.parametrize("blocks", ["blocks", "runs"])  # ENVI; for HDF5: h5py's reading, then our chunk path
@pytest.mark.parametrize(("fmt", "options"), FORMATS, ids=["envi-bsq", "envi-bil", "envi-bip", "h5", "mat"])
def test_reads_equal_the_whole_cube_read(tmp_path, cube, fmt, options, blocks, monkeypatch):
    """``blocks``: ENVI rows read in blocks cut in memory (the default here); ``runs``: one read per row,
    with blocks of at most 3 rows, as for a large file's distant rows."""
    if blocks == "runs":
        monkeypatch.setattr(sources, "ENVI_GAP_BYTES", 0)
        monkeypatch.setattr(sources, "ENVI_BLOCK_BYTES", 3 * W * 31 * 4)
        monkeypatch.setattr(sources, "HDF5_PARALLEL_BYTES", 0)  # every sampled region through _read_chunks
        monkeypatch.setattr(sources, "HDF5_BLOCK_COLS", 7)  # the others through h5py in 7-column tiles
    path = write(tmp_path / "c", fmt, cube, **options)
    whole, wavelengths, _ = read_cube(path)
    source = open_cube_source(path)
    try:
        assert (source.height, source.width, source.bands) == (H, W, 31)
        np.testing.assert_array_equal(source.wavelengths_nm, wavelengths)
        for rows, cols in REGIONS:
            got = source.read(rows, cols)
            assert got.dtype == np.float32 and got.flags.c_contiguous
            assert got.shape[:2] == region_shape(rows, cols, H, W)
            np.testing.assert_array_equal(got, whole[rows, cols])
        for y, x in ((0, 0), (69, 89), (64, 63), (31, 7)):
            np.testing.assert_array_equal(source.spectrum(y, x), whole[y, x])
        np.testing.assert_array_equal(np.concatenate([rows for _, rows in source.row_blocks(16)]), whole)
        if isinstance(source, EnviSource):
            for band in (0, 13, 30):
                np.testing.assert_array_equal(
                    source.band(band, slice(1, 70, 3), slice(2, 90, 5)), whole[1:70:3, 2:90:5, band]
                )
        assert source.describe()["layout"]
    finally:
        source.close()


def test_envi_from_another_tool_big_endian_integers_with_a_header_offset(tmp_path, rng):
    """SPy's own writer (int16 big-endian, a header offset): what ENVI files from other tools look like."""
    import spectral

    data = rng.integers(-500, 5000, size=(12, 9, 7)).astype(">i2")
    meta = {"byte order": 1, "header offset": 0, "wavelength": [str(w) for w in range(450, 800, 50)]}
    spectral.envi.save_image(str(tmp_path / "other.hdr"), data, dtype=">i2", interleave="bil", metadata=meta)
    source = open_cube_source(tmp_path / "other.hdr")
    np.testing.assert_array_equal(source.read(slice(0, 12, 5), slice(1, 9, 2)), data[0:12:5, 1:9:2].astype(np.float32))
    np.testing.assert_array_equal(source.spectrum(11, 8), data[11, 8].astype(np.float32))
    np.testing.assert_array_equal(source.wavelengths_nm, np.arange(450, 800, 50))
    # the .img named instead of the .hdr opens the same cube
    assert open_cube_source(tmp_path / "other.img").path == tmp_path / "other.hdr"


def test_mat_layouts_follow_read_cube(tmp_path, rng):
    """NTIRE's .mat (no bands), a naively written one (axes not reversed), v5: the same axes as read_cube."""
    cube = rng.random((6, 5, 31), dtype=np.float32)
    with h5py.File(tmp_path / "ntire.mat", "w", userblock_size=512) as file:
        file["cube"] = cube.transpose(2, 1, 0)
    with h5py.File(tmp_path / "naive.mat", "w") as file:
        file["cube"] = cube
    scipy.io.savemat(tmp_path / "v5.mat", {"cube": cube, "bands": WAVELENGTHS[None, :]})
    for name, shape in (("ntire.mat", None), ("naive.mat", None), ("naive.mat", (6, 5)), ("v5.mat", None)):
        expected, wavelengths, _ = read_cube(tmp_path / name, image_shape=shape)
        source = open_cube_source(tmp_path / name, image_shape=shape)
        np.testing.assert_array_equal(source.read(slice(0, source.height), slice(0, source.width)), expected)
        np.testing.assert_array_equal(source.spectrum(source.height - 1, 0), expected[-1, 0])
        np.testing.assert_array_equal(source.wavelengths_nm, wavelengths)
        source.close()


def test_bad_files_are_one_line_value_errors(tmp_path, rng):
    (tmp_path / "x.h5").write_bytes(b"not hdf5 at all")
    with h5py.File(tmp_path / "nocube.h5", "w") as file:
        file["other"] = np.zeros(3)
    (tmp_path / "bad.hdr").write_text("not an envi header\n")
    cases = {
        "missing.h5": "no such file",
        "nocube.h5": "no 3-D dataset 'cube'",
        "bad.hdr": "bad.hdr",
        "x.h5": "x.h5",
    }
    (tmp_path / "cube.txt").write_text("")
    cases["cube.txt"] = "unknown cube suffix"
    for name, message in cases.items():
        with pytest.raises((ValueError, OSError), match=message) as caught:
            open_cube_source(tmp_path / name)
        assert "\n" not in str(caught.value)


def test_regions_outside_the_image_are_refused(tmp_path, cube):
    source = open_cube_source(write(tmp_path / "c", "h5", cube))
    for rows, cols in ((slice(0, H + 1), slice(0, 5)), (slice(-1, 3), slice(0, 5)), (slice(3, 3), slice(0, 5))):
        with pytest.raises(IndexError):
            source.read(rows, cols)
    with pytest.raises(IndexError, match="outside"):
        source.spectrum(H, 0)
    source.close()


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def test_a_100_megapixel_cube_opens_and_answers_a_spectrum_without_reading_the_rest(tmp_path):
    """A 10,000×10,000×31 cube (12.4 GB as ENVI, a sparse file here; 100 MP of unwritten HDF5 chunks):
    opening it and reading a spectrum and a small strided view costs megabytes, not the cube."""
    height = width = 10_000
    header = (
        "ENVI\nsamples = 10000\nlines = 10000\nbands = 31\nheader offset = 0\nfile type = ENVI Standard\n"
        "data type = 4\ninterleave = bsq\nbyte order = 0\nwavelength = { "
        + " , ".join(str(w) for w in WAVELENGTHS)
        + " }\n"
    )
    (tmp_path / "big.hdr").write_text(header)
    with open(tmp_path / "big.img", "wb") as data:
        data.truncate(height * width * 31 * 4)
        data.seek((31 * height * width - 1) * 4)  # the last band's last pixel: 7.5
        data.write(np.float32(7.5).tobytes())
    with h5py.File(tmp_path / "big.h5", "w") as file:
        file.create_dataset("cube", shape=(height, width, 31), dtype="f4", chunks=(64, 64, 31), compression="gzip")
        file["cube"][height - 1, width - 1] = np.arange(31, dtype=np.float32)
        file["wavelength"] = WAVELENGTHS
    before = _peak_rss_mb()
    envi = open_cube_source(tmp_path / "big.hdr")
    h5 = open_cube_source(tmp_path / "big.h5")
    assert isinstance(envi, EnviSource) and isinstance(h5, HDF5Source)
    assert envi.spectrum(height - 1, width - 1)[-1] == 7.5
    np.testing.assert_array_equal(h5.spectrum(height - 1, width - 1), np.arange(31))
    step = overview_step(height, width, 4)
    assert envi.read(slice(0, height, step), slice(0, width, step)).shape == (4, 4, 31)
    assert _peak_rss_mb() - before < 200, "reading a pixel of a 12 GB cube must not read the cube"
    envi.close()
    h5.close()
    assert os.path.getsize(tmp_path / "big.img") == height * width * 31 * 4


class HeldRead:
    """Wraps a source's ReadGuard.reading so that a read, once inside the guard, waits to be released."""

    def __init__(self, guard) -> None:
        self.original = guard.reading
        self.inside, self.release = threading.Event(), threading.Event()

    @contextlib.contextmanager
    def __call__(self):
        with self.original():
            self.inside.set()
            self.release.wait()
            yield


@pytest.mark.parametrize("fmt", ["h5", "envi"])
def test_close_waits_for_reads_in_progress_and_refuses_later_ones(tmp_path, cube, fmt):
    """A read running in another thread when the viewer stops finishes first; reads after close fail
    with SourceClosedError (never inside h5py, where a frozen daemon thread would hang the exit)."""
    source = open_cube_source(write(tmp_path / fmt, fmt, cube))
    held = HeldRead(source._guard)
    source._guard.reading = held
    results: list[np.ndarray] = []
    reader = threading.Thread(target=lambda: results.append(source.spectrum(3, 4)))
    reader.start()
    held.inside.wait()
    closer = threading.Thread(target=source.close)
    closer.start()
    closer.join(timeout=0.2)
    assert closer.is_alive()  # close waits for the read in progress …
    held.release.set()
    closer.join()
    reader.join()
    np.testing.assert_array_equal(results[0], cube[3, 4])  # … which completed
    source._guard.reading = held.original
    with pytest.raises(SourceClosedError):
        source.spectrum(0, 0)


def test_chunk_path_fills_unwritten_chunks_and_reads_other_layouts_as_h5py_does(tmp_path, rng, monkeypatch):
    """Chunks never written hold the fill value; 16-bit integers, other chunk shapes, shuffle without gzip,
    gzip without shuffle, and no filter at all: our inflating gives h5py's values."""
    monkeypatch.setattr(sources, "HDF5_PARALLEL_BYTES", 0)
    layouts = [
        {"dtype": "<u2", "chunks": (16, 16, 31), "compression": "gzip", "shuffle": True},
        {"dtype": "<f4", "chunks": (50, 7, 31), "shuffle": True},
        {"dtype": ">f8", "chunks": (8, 64, 31), "compression": "gzip"},
        {"dtype": "<f4", "chunks": (33, 33, 31)},
    ]
    for number, layout in enumerate(layouts):
        path = tmp_path / f"l{number}.h5"
        with h5py.File(path, "w") as file:
            dataset = file.create_dataset("cube", shape=(H, W, 31), fillvalue=7, **layout)
            dataset[5:40, 10:70] = (rng.random((35, 60, 31)) * 1000).astype(layout["dtype"])
            file["wavelength"] = WAVELENGTHS
            whole = dataset[()].astype(np.float32)
        source = open_cube_source(path)
        for rows, cols in REGIONS:
            np.testing.assert_array_equal(source.read(rows, cols), whole[rows, cols], err_msg=str(layout))
        assert source.read(slice(60, 70, 2), slice(80, 90, 3))[0, 0, 0] == 7  # a chunk never written
        source.close()
