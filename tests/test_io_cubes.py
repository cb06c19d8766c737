"""Cube writers and readers: real files under tmp_path, read back by the third-party readers (SPy, h5py, SciPy)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io
import spectral

from hsrecon.io import (
    FORMATS,
    CubeWriteError,
    is_complete,
    open_cube_writer,
    output_files,
    output_path,
    read_cube,
)
from hsrecon.io.envi import EnviCubeWriter
from hsrecon.io.h5 import H5CubeWriter
from hsrecon.io.mat import MatCubeWriter

WAVELENGTHS = np.arange(400.0, 701.0, 10.0)
ATTRS = {"source": "photo{1}.png", "weights": "NTIRE2020_CLEAN", "hsrecon_version": "0.1.0", "tile": 64}
WRITERS = {"envi": EnviCubeWriter, "mat": MatCubeWriter, "h5": H5CubeWriter}
H, W = 70, 90  # crosses one 64-row and one 64-column chunk boundary


@pytest.fixture()
def cube(rng: np.random.Generator) -> np.ndarray:
    """H×W×31 float32 spanning several binades, so a byte-level mix-up cannot go unnoticed."""
    return (rng.random((H, W, 31), dtype=np.float32) * 3.0 - 0.5).astype(np.float32)


def write(stem: Path, fmt: str, cube: np.ndarray, blocks: tuple[int, ...] = (), **options) -> list[Path]:
    """Write ``cube`` in row blocks of the given heights (the remainder last) and return the final paths."""
    height, width, _ = cube.shape
    options = {"attrs": ATTRS, **options}
    with open_cube_writer(stem, fmt, height=height, width=width, wavelengths_nm=WAVELENGTHS, **options) as writer:
        y0 = 0
        for h in (*blocks, height):
            h = min(h, height - y0)
            writer.write_rows(y0, cube[y0 : y0 + h])
            y0 += h
    return writer.paths


def listing(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


# -- ENVI -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("interleave", ["bsq", "bil", "bip"])
def test_envi_opens_in_spy_with_exact_values_and_wavelengths(tmp_path, cube, interleave):
    img_path, hdr_path = write(tmp_path / "photo", "envi", cube, interleave=interleave)
    assert (img_path.name, hdr_path.name) == ("photo.img", "photo.hdr")
    image = spectral.open_image(str(hdr_path))
    assert image.shape == (H, W, 31)
    assert np.dtype(image.dtype) == np.float32
    assert image.metadata["interleave"] == interleave
    assert image.interleave == {"bsq": spectral.BSQ, "bil": spectral.BIL, "bip": spectral.BIP}[interleave]
    np.testing.assert_array_equal(np.asarray(image.load()), cube)
    assert image.bands.centers == WAVELENGTHS.tolist()
    assert image.metadata["wavelength units"] == "Nanometers"
    assert image.metadata["band names"][:2] == ["400 nm", "410 nm"]
    assert "source: photo(1).png" in image.metadata["description"]
    assert image.metadata["weights"] == "NTIRE2020_CLEAN"


@pytest.mark.parametrize(("interleave", "axes"), [("bsq", (2, 0, 1)), ("bil", (0, 2, 1)), ("bip", (0, 1, 2))])
def test_envi_data_file_is_raw_little_endian_float32_in_the_named_interleave(tmp_path, cube, interleave, axes):
    img_path, _ = write(tmp_path / "photo", "envi", cube, interleave=interleave)
    raw = np.fromfile(img_path, dtype="<f4")
    np.testing.assert_array_equal(raw, cube.transpose(axes).ravel())


def test_envi_header_keys_in_spy_order(tmp_path, cube):
    _, hdr_path = write(tmp_path / "photo", "envi", cube)
    keys = [line.partition("=")[0].strip() for line in hdr_path.read_text().splitlines() if " = " in line]
    assert keys[:12] == [
        "description",
        "samples",
        "lines",
        "bands",
        "header offset",
        "file type",
        "data type",
        "interleave",
        "byte order",
        "wavelength",
        "wavelength units",
        "band names",
    ]
    text = hdr_path.read_text()
    assert text.startswith("ENVI\n")
    assert f"samples = {W}\nlines = {H}\nbands = 31\n" in text
    assert "data type = 4\ninterleave = bsq\nbyte order = 0\n" in text


def test_envi_float16_is_refused_with_a_clear_message_and_writes_nothing(tmp_path):
    with pytest.raises(ValueError, match=r"ENVI has no float16.*\.h5 and \.mat only"):
        open_cube_writer(tmp_path / "photo", "envi", height=4, width=4, wavelengths_nm=WAVELENGTHS, dtype="float16")
    assert listing(tmp_path) == []


def test_is_complete_checks_the_envi_data_size_against_the_header(tmp_path, cube):
    img_path, hdr_path = write(tmp_path / "photo", "envi", cube)
    assert is_complete(tmp_path / "photo", "envi")
    with open(img_path, "r+b") as file:
        file.truncate(img_path.stat().st_size - 4)
    assert not is_complete(tmp_path / "photo", "envi")
    hdr_path.unlink()
    assert not is_complete(tmp_path / "photo", "envi")


# -- MATLAB v7.3 ------------------------------------------------------------------------------------


def test_mat_is_v73_in_the_ntire_layout(tmp_path, cube):
    (mat_path,) = write(tmp_path / "photo", "mat", cube)
    header = mat_path.read_bytes()[:512]
    assert header.startswith(b"MATLAB 7.3 MAT-file, Platform: ")
    assert b"HDF5 schema 1.00 ." in header[:116]
    assert header[116:128] == b"\x00" * 8 + b"\x00\x02IM"
    assert scipy.io.matlab.matfile_version(str(mat_path)) == (2, 0)
    with h5py.File(mat_path, "r") as file:
        assert file.userblock_size == 512
        dset = file["cube"]
        assert dset.shape == (31, W, H)
        assert dset.dtype == np.float32
        assert dset.attrs["MATLAB_class"] == b"single"
        assert dset.chunks == (31, 64, 64)
        assert dset.compression == "gzip"
        np.testing.assert_array_equal(dset[()].transpose(2, 1, 0), cube)
        assert file["bands"].shape == (31, 1)
        assert file["bands"].attrs["MATLAB_class"] == b"double"
        np.testing.assert_array_equal(file["bands"][()].ravel(), WAVELENGTHS)
        assert file.attrs["source"] == "photo{1}.png"


def test_mat_float16_is_stored_as_single_rounded_to_half_precision(tmp_path, cube):
    (mat_path,) = write(tmp_path / "photo", "mat", cube, dtype="float16")
    with h5py.File(mat_path, "r") as file:
        assert file["cube"].dtype == np.float32
        assert file["cube"].attrs["MATLAB_class"] == b"single"
        stored = file["cube"][()].transpose(2, 1, 0)
    np.testing.assert_array_equal(stored, cube.astype(np.float16).astype(np.float32))


def test_mat_reader_finds_the_band_axis_by_size(tmp_path, rng):
    """NTIRE's own files (no ``bands``), Python-written files with axes not reversed, and v5 files."""
    cube = rng.random((6, 5, 31), dtype=np.float32)
    with h5py.File(tmp_path / "ntire.mat", "w", userblock_size=512) as file:
        file["cube"] = cube.transpose(2, 1, 0)  # MATLAB's H×W×31, as HDF5 stores it
    with h5py.File(tmp_path / "naive.mat", "w") as file:
        file["cube"] = cube  # H×W×31 as HDF5 sees it: MATLAB would see 31×W×H
    scipy.io.savemat(tmp_path / "v5.mat", {"cube": cube, "bands": WAVELENGTHS[None, :]})
    for name in ("ntire.mat", "v5.mat"):
        got, wavelengths, _ = read_cube(tmp_path / name)
        np.testing.assert_array_equal(got, cube)
        np.testing.assert_array_equal(wavelengths, WAVELENGTHS)
    got, _, _ = read_cube(tmp_path / "naive.mat")
    np.testing.assert_array_equal(got, cube.transpose(1, 0, 2))  # size alone cannot tell H from W ...
    got, _, _ = read_cube(tmp_path / "naive.mat", image_shape=(6, 5))
    np.testing.assert_array_equal(got, cube)  # ... the known image shape can
    with pytest.raises(ValueError, match="does not fit an image of 7×7"):
        read_cube(tmp_path / "ntire.mat", image_shape=(7, 7))


def test_mat_reader_breaks_a_tie_between_31_sized_axes(tmp_path, rng):
    """A 31-row image: MATLAB's last axis is the bands (NTIRE), unless the image shape says otherwise."""
    cube = rng.random((31, 4, 31), dtype=np.float32)
    write(tmp_path / "photo", "mat", cube)
    got, _, _ = read_cube(tmp_path / "photo.mat")
    np.testing.assert_array_equal(got, cube)
    got, _, _ = read_cube(tmp_path / "photo.mat", image_shape=(4, 31))  # so the bands must be the first axis
    np.testing.assert_array_equal(got, np.moveaxis(cube, 0, -1))


# -- HDF5 ---------------------------------------------------------------------------------------------


def test_h5_layout_chunks_compression_and_attributes(tmp_path, cube):
    (h5_path,) = write(tmp_path / "photo", "h5", cube)
    with h5py.File(h5_path, "r") as file:
        dset = file["cube"]
        assert (dset.shape, dset.dtype, dset.chunks) == ((H, W, 31), np.float32, (64, 64, 31))
        assert (dset.compression, dset.shuffle) == ("gzip", True)
        np.testing.assert_array_equal(dset[()], cube)
        np.testing.assert_array_equal(file["wavelength"][()], WAVELENGTHS)
        assert file["wavelength"].dtype == np.float64
        assert file.attrs["wavelength_units"] == "nm"
        assert {name: file.attrs[name] for name in ATTRS} == ATTRS


def test_h5_without_compression_is_still_chunked(tmp_path, cube):
    (h5_path,) = write(tmp_path / "photo", "h5", cube, compression=False)
    with h5py.File(h5_path, "r") as file:
        assert (file["cube"].chunks, file["cube"].compression, file["cube"].shuffle) == ((64, 64, 31), None, False)


def test_h5_float16_within_half_precision(tmp_path, cube):
    (h5_path,) = write(tmp_path / "photo", "h5", cube, dtype="float16")
    with h5py.File(h5_path, "r") as file:
        assert file["cube"].dtype == np.float16
        stored = file["cube"][()]
    np.testing.assert_allclose(stored.astype(np.float32), cube, rtol=2.0**-11, atol=2.0**-25)
    assert not np.array_equal(stored.astype(np.float32), cube)  # really half precision, not float32
    got, _, _ = read_cube(h5_path)
    assert got.dtype == np.float32


# -- all formats ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_uneven_row_blocks_give_the_same_content_as_one_block(tmp_path, cube, fmt):
    one = write(tmp_path / "one", fmt, cube)
    uneven = write(tmp_path / "uneven", fmt, cube, blocks=(7, 64, 1))
    if fmt == "envi":
        assert one[0].read_bytes() == uneven[0].read_bytes()
        assert one[1].read_text() == uneven[1].read_text()
    else:
        with h5py.File(one[0], "r") as a, h5py.File(uneven[0], "r") as b:
            np.testing.assert_array_equal(a["cube"][()], b["cube"][()])


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("shape", [(H, W), (5, 3), (1, 1)])
def test_read_cube_returns_what_was_written(tmp_path, rng, fmt, shape):
    cube = rng.random((*shape, 31), dtype=np.float32)
    paths = write(tmp_path / "photo", fmt, cube, blocks=(2,))
    got, wavelengths, attrs = read_cube(paths[-1])
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, cube)
    np.testing.assert_array_equal(wavelengths, WAVELENGTHS)
    expected = {k: str(v) for k, v in ATTRS.items()} if fmt == "envi" else ATTRS
    if fmt == "envi":
        expected["source"] = "photo(1).png"  # ENVI values cannot hold braces
    assert attrs == expected
    assert is_complete(tmp_path / "photo", fmt)


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_exception_inside_the_with_block_leaves_no_file(tmp_path, cube, fmt):
    opened = open_cube_writer(tmp_path / "photo", fmt, height=H, width=W, wavelengths_nm=WAVELENGTHS)
    with pytest.raises(RuntimeError, match="model failed"), opened as writer:
        writer.write_rows(0, cube[:10])
        assert [name.startswith(".photo.") for name in listing(tmp_path)] == [True]  # one hidden temporary
        raise RuntimeError("model failed")
    assert listing(tmp_path) == []
    assert not is_complete(tmp_path / "photo", fmt)


@pytest.mark.parametrize("fmt", FORMATS)
def test_abort_removes_temporaries_and_closes_the_writer(tmp_path, cube, fmt):
    writer = open_cube_writer(tmp_path / "photo", fmt, height=H, width=W, wavelengths_nm=WAVELENGTHS)
    writer.write_rows(0, cube)
    writer.abort()
    writer.abort()
    assert listing(tmp_path) == []
    with pytest.raises(ValueError, match="already aborted"):
        writer.write_rows(0, cube)


@pytest.mark.parametrize("fmt", FORMATS)
def test_commit_refuses_an_incomplete_cube(tmp_path, cube, fmt):
    writer = open_cube_writer(tmp_path / "photo", fmt, height=H, width=W, wavelengths_nm=WAVELENGTHS)
    writer.write_rows(0, cube[:3])
    writer.write_rows(1, cube[1:5])  # a row written twice counts once
    with pytest.raises(CubeWriteError, match=f"photo{FORMATS[fmt]}: incomplete: 5 of {H} rows written"):
        writer.commit()
    assert listing(tmp_path) == []


@pytest.mark.parametrize("fmt", FORMATS)
def test_existing_output_needs_overwrite(tmp_path, rng, fmt):
    first = rng.random((4, 3, 31), dtype=np.float32)
    write(tmp_path / "photo", fmt, first)
    with pytest.raises(CubeWriteError, match=r"photo\.(hdr|mat|h5): exists"):
        write(tmp_path / "photo", fmt, first + 1)
    np.testing.assert_array_equal(read_cube(output_path(tmp_path / "photo", fmt))[0], first)
    write(tmp_path / "photo", fmt, first + 1, overwrite=True)
    np.testing.assert_array_equal(read_cube(output_path(tmp_path / "photo", fmt))[0], first + 1)
    assert listing(tmp_path) == sorted(p.name for p in output_files(tmp_path / "photo", fmt))


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_output_appearing_during_the_write_is_not_clobbered(tmp_path, cube, fmt):
    writer = open_cube_writer(tmp_path / "photo", fmt, height=H, width=W, wavelengths_nm=WAVELENGTHS)
    writer.write_rows(0, cube)
    output_path(tmp_path / "photo", fmt).write_bytes(b"someone else's")
    with pytest.raises(CubeWriteError, match="exists"):
        writer.commit()
    assert output_path(tmp_path / "photo", fmt).read_bytes() == b"someone else's"
    assert listing(tmp_path) == [output_path(tmp_path / "photo", fmt).name]


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_missing_directory_is_one_line_naming_the_path(tmp_path, fmt):
    stem = tmp_path / "no" / "such" / "photo"
    with pytest.raises(CubeWriteError) as caught:
        open_cube_writer(stem, fmt, height=4, width=4, wavelengths_nm=WAVELENGTHS)
    assert str(caught.value) == f"{output_path(stem, fmt)}: No such file or directory"
    assert caught.value.errno == errno.ENOENT


@pytest.mark.parametrize("fmt", FORMATS)
def test_disk_full_while_writing_is_one_line_and_leaves_nothing(tmp_path, cube, fmt, monkeypatch):
    def disk_full(self, y0, rows):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    writer = open_cube_writer(tmp_path / "photo", fmt, height=H, width=W, wavelengths_nm=WAVELENGTHS)
    monkeypatch.setattr(WRITERS[fmt], "_write_block", disk_full)
    with pytest.raises(CubeWriteError) as caught:
        writer.write_rows(0, cube)
    assert str(caught.value) == f"{output_path(tmp_path / 'photo', fmt)}: {os.strerror(errno.ENOSPC)}"
    assert caught.value.errno == errno.ENOSPC
    assert listing(tmp_path) == []


def test_envi_reserves_disk_space_up_front(tmp_path, monkeypatch):
    def no_space(fd, offset, length):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "posix_fallocate", no_space, raising=False)
    with pytest.raises(CubeWriteError, match="No space left on device"):
        open_cube_writer(tmp_path / "photo", "envi", height=H, width=W, wavelengths_nm=WAVELENGTHS)
    assert listing(tmp_path) == []


@pytest.mark.parametrize("fmt", FORMATS)
def test_final_files_get_umask_permissions_not_private_temp_ones(tmp_path, rng, fmt):
    old = os.umask(0o022)
    try:
        paths = write(tmp_path / "photo", fmt, rng.random((2, 2, 31), dtype=np.float32))
    finally:
        os.umask(old)
    assert {p.stat().st_mode & 0o777 for p in paths} == {0o644}


def test_rows_are_validated(tmp_path, cube):
    with open_cube_writer(tmp_path / "photo", "h5", height=H, width=W, wavelengths_nm=WAVELENGTHS) as writer:
        with pytest.raises(ValueError, match=r"shape \(h, 90, 31\)"):
            writer.write_rows(0, cube[:, :-1])
        with pytest.raises(ValueError, match=r"shape \(h, 90, 31\)"):
            writer.write_rows(0, cube[..., :30])
        with pytest.raises(ValueError, match="outside the image's 70 rows"):
            writer.write_rows(65, cube[:6])
        with pytest.raises(ValueError, match="outside"):
            writer.write_rows(-1, cube[:1])
        with pytest.raises(TypeError, match="floating point"):
            writer.write_rows(0, cube.astype(np.uint8))
        writer.write_rows(0, cube.astype(np.float64))  # converted, not refused
    np.testing.assert_array_equal(read_cube(tmp_path / "photo.h5")[0], cube)


def test_arguments_and_attributes_are_validated(tmp_path):
    def open_with(**options):
        args = {"height": 4, "width": 4, "wavelengths_nm": WAVELENGTHS, **options}
        return open_cube_writer(tmp_path / "photo", args.pop("fmt", "h5"), **args)

    with pytest.raises(ValueError, match="unknown cube format 'tiff'"):
        open_with(fmt="tiff")
    with pytest.raises(ValueError, match="interleave"):
        open_with(fmt="envi", interleave="bsl")
    with pytest.raises(ValueError, match="dtype"):
        open_with(dtype="float64")
    with pytest.raises(ValueError, match="lower-case"):
        open_with(attrs={"Source": "x"})
    with pytest.raises(ValueError, match="reserved"):
        open_with(attrs={"wavelength": "x"})
    with pytest.raises(TypeError, match="str, int or float"):
        open_with(attrs={"source": ["a", "b"]})
    assert listing(tmp_path) == []


def test_output_names_append_the_suffix():
    assert output_path(Path("out/photo.v2"), "envi") == Path("out/photo.v2.hdr")
    assert output_files(Path("out/photo"), "envi") == [Path("out/photo.img"), Path("out/photo.hdr")]
    assert output_files(Path("out/photo"), "mat") == [Path("out/photo.mat")]
    assert output_path(Path("photo"), "h5") == Path("photo.h5")


def test_is_complete_is_false_for_missing_or_damaged_hdf5(tmp_path, rng):
    assert not is_complete(tmp_path / "photo", "h5")
    (tmp_path / "photo.h5").write_bytes(b"\x89HDF\r\n\x1a\n truncated")
    assert not is_complete(tmp_path / "photo", "h5")
    write(tmp_path / "good", "mat", rng.random((2, 2, 31), dtype=np.float32))
    assert is_complete(tmp_path / "good", "mat")
