"""``hsrecon convert`` end to end, as a user runs it: real files, real formats, exit codes, resumption."""

from __future__ import annotations

import shutil

import imageio.v3 as iio
import numpy as np
import pytest
import spectral
from test_cli import NO_OVERLAP, assert_clean_failure, hsrecon
from test_io_rgb import _png

from conftest import ROOT
from hsrecon.io import read_cube


@pytest.fixture()
def small_images(tmp_path):
    """Three small clean-space images: 8-bit RGB, 16-bit RGB, RGBA."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "in"
    folder.mkdir()
    base = (rng.random((40, 72, 3)) * 60 + 10).astype(np.uint8)
    iio.imwrite(folder / "plain.png", base)
    (folder / "deep.png").write_bytes(_png(base.astype(np.uint16) * 257, colour_type=2))  # Pillow can't write it
    iio.imwrite(folder / "alpha.png", np.dstack([base, np.full(base.shape[:2], 200, np.uint8)]))
    iio.imwrite(folder / "grey.png", base[:, :, 1])
    return folder


def test_bundled_samples_to_all_formats(tmp_path):
    out = tmp_path / "cubes"
    result = hsrecon(
        "convert",
        str(ROOT / "examples" / "clean"),
        "-o",
        str(out),
        "-f",
        "envi",
        "-f",
        "mat",
        "-f",
        "h5",
        *NO_OVERLAP,
        "--preview",
        "-q",
    )
    assert result.returncode == 0, result.stderr
    for name in ("colorchecker_d65", "ohta_a_shaded", "mixed_f2_small"):
        rgb = iio.imread(ROOT / "examples" / "clean" / f"{name}.png")
        envi = spectral.open_image(str(out / f"{name}.hdr"))
        assert envi.shape == (*rgb.shape[:2], 31)
        assert [float(w) for w in envi.bands.centers] == list(range(400, 701, 10))
        cube = np.asarray(envi.load())
        for suffix in (".mat", ".h5"):
            other, _, _ = read_cube(out / f"{name}{suffix}")
            np.testing.assert_array_equal(other, cube)
        assert iio.imread(out / f"{name}.preview.png").shape == rgb.shape
        assert 0.0 < float(np.median(cube)) < 1.0
        truth, _, _ = read_cube(ROOT / "examples" / "truth" / f"{name}.h5")
        assert truth.shape == cube.shape
        assert np.corrcoef(truth.ravel(), cube.ravel())[0, 1] > 0.6  # measured 0.69 (F2 light) to 0.97


def test_mixed_inputs_and_resume(small_images, tmp_path):
    out = tmp_path / "out"
    # the raw network (8- and 16-bit codes of one image are one input; the projection aims at each code's bin)
    first = hsrecon("convert", str(small_images), "-o", str(out), "-f", "h5", "--no-plausible", *NO_OVERLAP)
    assert first.returncode == 0, first.stderr
    assert "alpha channel dropped" in first.stderr and "grayscale" in first.stderr
    cubes = {name: read_cube(out / f"{name}.h5")[0] for name in ("plain", "deep", "alpha", "grey")}
    np.testing.assert_allclose(cubes["plain"], cubes["deep"], atol=1e-5)
    np.testing.assert_array_equal(cubes["plain"], cubes["alpha"])
    assert cubes["grey"].shape == cubes["plain"].shape
    stamp = (out / "plain.h5").stat().st_mtime_ns
    again = hsrecon("convert", str(small_images), "-o", str(out), "-f", "h5", "--no-plausible", *NO_OVERLAP)
    assert again.returncode == 0
    assert "0 converted, 4 skipped, 0 failed" in again.stderr
    assert (out / "plain.h5").stat().st_mtime_ns == stamp


def test_corrupt_file_among_good_ones(small_images, tmp_path):
    data = (small_images / "plain.png").read_bytes()
    (small_images / "broken.png").write_bytes(data[: len(data) // 3])
    (small_images / "empty.jpg").write_bytes(b"")
    out = tmp_path / "out"
    result = hsrecon("convert", str(small_images), "-o", str(out), "-f", "envi", *NO_OVERLAP)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 2 and any("broken.png" in e for e in errors) and any("empty.jpg" in e for e in errors)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"{n}.{s}" for n in ("plain", "deep", "alpha", "grey") for s in ("hdr", "img")
    )


def test_output_folder_that_cannot_be_created(small_images, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = hsrecon("convert", str(small_images / "plain.png"), "-o", str(blocker / "out"))
    assert_clean_failure(result, 5, "cannot create the output folder")


def test_bad_options_are_one_line(small_images, tmp_path):
    png = str(small_images / "plain.png")
    out = str(tmp_path / "o")
    assert_clean_failure(hsrecon("convert", png, "-o", out, "--format", "tiff"), 2, "choose from envi, mat, h5")
    assert_clean_failure(hsrecon("convert", png, "-o", out, "--dtype", "float16"), 2, "ENVI has no float16")
    assert_clean_failure(hsrecon("convert", png, "-o", out, "--window", "30"), 2, "multiple of 4")
    assert_clean_failure(hsrecon("convert", png, "-o", out, "--input-space", "cmyk"), 2, "--input-space")
    assert_clean_failure(hsrecon("convert", png, "-o", out, "--exposure", "-2"), 2, "positive")


def test_missing_input_is_reported_and_counted(small_images, tmp_path):
    result = hsrecon(
        "convert",
        str(small_images / "plain.png"),
        str(tmp_path / "nope.png"),
        "-o",
        str(tmp_path / "o"),
        *NO_OVERLAP,
        "-q",
    )
    assert result.returncode == 1
    assert "nope.png: no such file or directory" in result.stderr
    assert (tmp_path / "o" / "plain.hdr").exists()


def test_same_stem_different_suffix_and_recursion(small_images, tmp_path):
    sub = small_images / "sub"
    sub.mkdir()
    shutil.copy(small_images / "plain.png", sub / "x.png")
    iio.imwrite(sub / "x.bmp", iio.imread(small_images / "plain.png"))
    out = tmp_path / "o"
    result = hsrecon(
        "convert",
        str(small_images),
        "-o",
        str(out),
        "-r",
        "--glob",
        "x.*",
        "-f",
        "h5",
        *NO_OVERLAP,
        "-q",
    )
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (out / "sub").iterdir()) == ["x_bmp.h5", "x_png.h5"]


def test_ctrl_c_stops_cleanly_and_leaves_nothing_half_written(tmp_path):
    """Ctrl-C in the middle of a file: exit code 130, one line, no output and no temporary left.

    The signal must land inside the file whatever the machine's load, so the test waits for states,
    never for a time: once the temporaries exist the run is stopped (SIGSTOP), checked to be still
    mid-file (temporaries present, no finished output), sent SIGINT and continued; the signal is
    delivered on continuing. The child starts with SIGINT's default action, as from a terminal: a test
    runner started in the background of a script has SIGINT ignored, children inherit that, and Python
    (like every program) keeps ignoring it, so the run used to finish and exit 0 there.
    """
    import os
    import signal
    import subprocess
    import sys
    import time

    from hsrecon.temps import TEMP_PATTERN

    source = tmp_path / "big.png"
    iio.imwrite(source, (np.random.default_rng(0).random((2048, 2048, 3)) * 80).astype(np.uint8))  # seconds of work
    out = tmp_path / "out"
    process = subprocess.Popen(
        [sys.executable, "-m", "hsrecon", "convert", str(source), "-o", str(out), "-f", "envi", "-f", "h5", "-q"],
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # as from a terminal
    )

    def temporaries() -> list[str]:
        return [name for name in os.listdir(out) if TEMP_PATTERN.fullmatch(name)] if out.is_dir() else []

    try:
        deadline = time.monotonic() + 300
        while not temporaries():
            assert process.poll() is None, "the run ended before it wrote anything"
            assert time.monotonic() < deadline, "the run never started writing"
            time.sleep(0.002)
        process.send_signal(signal.SIGSTOP)
        finished = [name for name in os.listdir(out) if not TEMP_PATTERN.fullmatch(name)]
        assert temporaries() and not finished, "stopped mid-file: temporaries only, no finished output"
    except BaseException:
        process.kill()  # never leave a stopped child behind a failed test
        process.communicate()
        raise
    process.send_signal(signal.SIGINT)
    process.send_signal(signal.SIGCONT)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("hsrecon: error: interrupted"), stderr
    assert list(out.iterdir()) == []


def test_weights_trained_on_another_window_convert_with_it(small_images, tmp_path, bundled_weights):
    """Weights whose metadata says 32-px windows convert in 32-px windows, recorded in the cube file."""
    import dataclasses

    from hsrecon.pipeline import reconstruct
    from hsrecon.weights import load_weights, save_weights

    meta = dataclasses.replace(bundled_weights.meta, window_size=32)
    weights = save_weights(tmp_path / "w32.safetensors", bundled_weights.state_dict, meta)
    out = tmp_path / "out"
    result = hsrecon(
        "convert", str(small_images / "plain.png"), "-o", str(out), "-f", "h5", "--weights", str(weights),
        "--no-plausible",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    cube, _, attrs = read_cube(out / "plain.h5")
    assert (int(attrs["window"]), int(attrs["stride"])) == (32, 16)
    expected = reconstruct(iio.imread(small_images / "plain.png"), load_weights(weights))  # their own windows
    np.testing.assert_allclose(cube, expected, rtol=0, atol=1e-5)  # another process: last bits may differ


def test_plausible_round_trip_column_and_the_photo_warning(small_images, tmp_path):
    """--plausible cubes render back to their input; the summary reports it; a photo-like input is named once."""
    from PIL import Image

    from hsrecon.physics import render_ntire2020_clean

    base = iio.imread(small_images / "plain.png")
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "[bold]Nikon", "D5100"  # text from the file: printed as it is, not as markup
    Image.fromarray(base).save(small_images / "camera.jpg", quality=95, exif=exif)
    Image.fromarray(base).save(small_images / "second.jpg", quality=95)
    out = tmp_path / "out"
    result = hsrecon("convert", str(small_images), "-o", str(out), "-f", "h5", "--plausible", "--stride", "16")
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "looks like an ordinary photo" in line]
    assert len(warnings) == 1, result.stderr  # once per run, for the first such file
    assert "camera.jpg" in warnings[0] and "its EXIF names a camera ([bold]Nikon D5100)" in warnings[0]
    assert "round trip" in result.stderr and "--plausible: ~0 by construction" in result.stderr
    cube, _, attrs = read_cube(out / "plain.h5")
    assert int(attrs["plausible"]) == 1
    np.testing.assert_allclose(render_ntire2020_clean(cube), (base + 0.5) / 255, atol=1e-5)
    row = next(line for line in result.stderr.splitlines() if line.strip().startswith("│ plain.png"))
    assert row.split("│")[-2].strip() == "0.00"


def test_round_trip_without_plausible_and_refusal_for_photo_weights(small_images, tmp_path, bundled_weights):
    import dataclasses

    from hsrecon.weights import save_weights

    plain = str(small_images / "plain.png")
    result = hsrecon("convert", plain, "-o", str(tmp_path / "out"), "-f", "h5", "--stride", "64", "--no-plausible")
    assert result.returncode == 0, result.stderr
    assert "looks like an ordinary photo" not in result.stderr  # a PNG without camera tags
    row = next(line for line in result.stderr.splitlines() if line.strip().startswith("│ plain.png"))
    assert float(row.split("│")[-2]) > 0.1  # the network alone does not render back exactly
    meta = dataclasses.replace(bundled_weights.meta, input_space="srgb")
    photo = save_weights(tmp_path / "photo.safetensors", bundled_weights.state_dict, meta)
    result = hsrecon("convert", plain, "-o", str(tmp_path / "p"), "--weights", str(photo), "--plausible")
    assert_clean_failure(result, 2, "--plausible needs weights that take clean-space input")
    assert not (tmp_path / "p").exists() or not any((tmp_path / "p").iterdir())


def test_summary_keeps_file_names_whole_on_a_narrow_console(tmp_path):
    """Piped output is 80 columns wide: names (up to 32 characters) stay whole rather than folded."""
    folder = tmp_path / "in"
    folder.mkdir()
    name = "colorchecker_under_d65_01.png"  # 29 characters
    iio.imwrite(folder / name, (np.random.default_rng(1).random((24, 32, 3)) * 200).astype(np.uint8))
    result = hsrecon("convert", str(folder), "-o", str(tmp_path / "out"), "-f", "h5")
    assert result.returncode == 0, result.stderr
    table = [line for line in result.stderr.splitlines() if line[:1] in "┏┃┡│└"]
    assert any(name in line for line in table), result.stderr


def test_projection_by_default_is_a_measured_fact_of_the_file(bundled_weights):
    """--plausible's default follows the file (BundledWeights.projects_by_default): the authors' weights gain
    from it on clean renderings; a network with the same tensors but another file, and the bundled map, stay
    raw unless asked; photos stay raw."""
    from hsrecon.cli._common import plausible_or_exit
    from hsrecon.weights import Weights, load_weights

    assert plausible_or_exit(bundled_weights, None, "ntire2020-clean") is True
    assert plausible_or_exit(bundled_weights, None, "srgb") is False
    assert plausible_or_exit(bundled_weights, False, "ntire2020-clean") is False
    copy = Weights.from_model(bundled_weights.build(), version="a fine-tune in memory")
    assert copy.projects_by_default is False and plausible_or_exit(copy, None, "ntire2020-clean") is False
    assert plausible_or_exit(copy, True, "ntire2020-clean") is True
    pixel_map = load_weights("rpr2-clean-provisional")
    assert plausible_or_exit(pixel_map, None, "ntire2020-clean") is False
