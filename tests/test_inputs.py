"""Input spaces: exact for clean renderings, colorimetrically right for sRGB/linear, auto exposure stable.

Expected values are computed here independently of ``hsrecon.inputs`` where possible: the sRGB curve
from its formula, D65's clean colour from the illuminant's spectrum, held-out patches through
colour-science's own per-spectrum route.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from hsrecon.inputs import (
    AUTO_PERCENTILE,
    AUTO_SAMPLE_PIXELS,
    AUTO_TARGET,
    INPUT_SPACES,
    InputTransform,
    auto_exposure,
    canonical_space,
    make_input_transform,
    matrix_fit_report,
    srgb_to_clean_matrix,
)
from hsrecon.io.rgb import RGBImage
from hsrecon.physics import WAVELENGTHS_NM, load_colour, render_ntire2020_clean

# Measured: RMS 0.0021 / max 0.0081 on the fit set, RMS ≤ 0.0020 / max ≤ 0.0073 held out (clean units,
# white ≈ 1). The bounds leave ~20% headroom and would catch a wrong observer, illuminant or white.
RMS_BOUND = 0.0025
MAX_BOUND = 0.01


def _srgb_decode(v: np.ndarray) -> np.ndarray:
    """IEC 61966-2-1's decoding formula, written out."""
    v = np.asarray(v, dtype=np.float64)
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def _srgb_encode(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    return np.where(v <= 0.0031308, v * 12.92, 1.055 * v ** (1 / 2.4) - 0.055)


def _d65_clean() -> np.ndarray:
    """D65 at the 31 wavelengths, rendered, scaled to the luminance of a flat spectrum of radiance 1."""
    colour = load_colour()
    shape = colour.SpectralShape(WAVELENGTHS_NM[0], WAVELENGTHS_NM[-1], 10)
    white = render_ntire2020_clean(colour.SDS_ILLUMINANTS["D65"].copy().align(shape).values)
    return white * (255 / 256) / white[1]


# --- names -----------------------------------------------------------------------------------------------


def test_space_names_and_aliases() -> None:
    assert INPUT_SPACES == ("ntire2020-clean", "srgb", "linear")
    assert canonical_space("ntire-clean") == "ntire2020-clean"
    assert canonical_space(" sRGB ") == "srgb"
    for name in INPUT_SPACES:
        assert canonical_space(name) == name


def test_unknown_space_lists_the_valid_names() -> None:
    with pytest.raises(ValueError, match="adobe-rgb") as info:
        canonical_space("adobe-rgb")
    assert all(name in str(info.value) for name in (*INPUT_SPACES, "ntire-clean"))
    with pytest.raises(ValueError, match="valid"):
        make_input_transform(np.zeros((2, 2, 3), np.uint8), "xyz")
    with pytest.raises(ValueError, match="valid"):
        InputTransform("xyz", 255.0, 1.0)
    assert InputTransform("NTIRE-clean", 255.0, 1.0).space == "ntire2020-clean"


# --- ntire2020-clean ------------------------------------------------------------------------------------


def test_clean_space_is_exactly_value_over_255() -> None:
    codes = np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, axis=2)
    transform = make_input_transform(codes, "ntire2020-clean")
    assert transform.exposure == 1.0 and transform.max_code == 255.0
    out = transform(codes)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, (codes.astype(np.float64) / 255).astype(np.float32))


def test_clean_space_16bit_and_exposure() -> None:
    codes = np.array([[[0, 1, 65535]]], np.uint16)
    expected = np.array([[[0, 1 / 65535, 1]]], np.float32)
    np.testing.assert_array_equal(make_input_transform(codes, "ntire-clean")(codes), expected)
    doubled = make_input_transform(codes, "ntire2020-clean", exposure=2.0)(codes)
    np.testing.assert_allclose(doubled, [[[0, 2 / 65535, 2]]], rtol=1e-7)


# --- srgb and linear -------------------------------------------------------------------------------------


def test_srgb_white_maps_to_d65s_clean_colour() -> None:
    white = np.full((1, 1, 3), 255, np.uint8)
    out = make_input_transform(white, "srgb", exposure=1.0)(white)[0, 0]
    expected = _d65_clean()
    np.testing.assert_allclose(out, expected, atol=1e-6)  # white is a constraint of the fit: exact
    assert expected[2] > expected[1] > expected[0]  # not grey: the clean rendering is not white balanced


def test_neutral_greys_are_scaled_copies_of_white() -> None:
    greys = np.array([[[32] * 3, [128] * 3, [200] * 3]], np.uint8)
    out = InputTransform("srgb", 255.0, 1.0)(greys)[0]
    expected = _srgb_decode(np.array([32, 128, 200]) / 255)[:, None] * _d65_clean()
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-7)


def test_linear_and_srgb_agree_through_the_transfer_curve() -> None:
    codes = np.random.default_rng(0).integers(0, 256, (8, 9, 3), dtype=np.uint8)
    via_srgb = InputTransform("srgb", 255.0, 0.7)(codes)
    via_linear = InputTransform("linear", 1.0, 0.7)(_srgb_decode(codes / 255).astype(np.float32))
    np.testing.assert_allclose(via_srgb, via_linear, rtol=1e-5, atol=1e-6)
    via_float = InputTransform("srgb", 1.0, 0.7)((codes / 255).astype(np.float32))  # formula, not table
    np.testing.assert_allclose(via_float, via_srgb, rtol=1e-5, atol=1e-6)
    codes16 = codes.astype(np.uint16) * 257  # same values at 16 bits
    np.testing.assert_allclose(InputTransform("srgb", 65535.0, 0.7)(codes16), via_srgb, rtol=1e-6)


def test_rows_transform_independently() -> None:
    codes = np.random.default_rng(1).integers(0, 65536, (10, 7, 3), dtype=np.uint16)
    for space in INPUT_SPACES:
        transform = make_input_transform(codes, space)
        whole = transform(codes)
        assert whole.dtype == np.float32 and whole.shape == codes.shape and whole.flags.c_contiguous
        np.testing.assert_array_equal(np.concatenate([transform(codes[:3]), transform(codes[3:])]), whole)


def test_bad_pixels_and_parameters_are_refused() -> None:
    transform = InputTransform("srgb", 255.0, 1.0)
    with pytest.raises(ValueError, match="h×W×3"):
        transform(np.zeros((4, 4), np.uint8))
    for exposure in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="exposure"):
            InputTransform("linear", 255.0, exposure)
    with pytest.raises(ValueError, match="max_code"):
        make_input_transform(np.zeros((2, 2, 3), np.int32), "srgb")


def test_rgb_image_gives_its_max_code() -> None:
    image = RGBImage(np.full((2, 2, 3), 65535, np.uint16), 65535.0, source=None, notes=())  # type: ignore[arg-type]
    transform = make_input_transform(image, "linear", exposure=1.0)
    assert transform.max_code == 65535.0
    np.testing.assert_allclose(transform(image.pixels)[0, 0], _d65_clean(), atol=1e-6)


# --- the matrix ------------------------------------------------------------------------------------------


def test_matrix_is_cached_read_only_and_white_preserving() -> None:
    matrix = srgb_to_clean_matrix()
    assert matrix.shape == (3, 3) and matrix is srgb_to_clean_matrix() and not matrix.flags.writeable
    np.testing.assert_allclose(matrix @ np.ones(3), _d65_clean(), atol=1e-9)


def test_matrix_fit_residual_is_small_on_fit_and_held_out_sets() -> None:
    report = matrix_fit_report()
    assert len(report) == 4 and report["rawtoaces 190 patches"][0] == 190
    for name, (count, rms, worst) in report.items():
        assert count >= 24, name
        assert rms < RMS_BOUND and worst < MAX_BOUND, (name, rms, worst)


def test_matrix_predicts_held_out_patches_by_colour_sciences_own_route() -> None:
    # One spectrum at a time through sd_to_XYZ (ASTM E308) and XYZ_to_RGB, not the fit's code path.
    colour = load_colour()
    shape = colour.SpectralShape(WAVELENGTHS_NM[0], WAVELENGTHS_NM[-1], 10)
    d65 = colour.SDS_ILLUMINANTS["D65"]
    d65_31 = d65.copy().align(shape).values
    scale = (255 / 256) / render_ntire2020_clean(d65_31)[1]
    srgb = colour.RGB_COLOURSPACES["sRGB"]
    errors = []
    for sd in colour.SDS_COLOURCHECKERS["BabelColor Average"].values():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # colour-science's notes on aligning shapes for ASTM E308
            xyz = colour.sd_to_XYZ(sd, illuminant=d65) / 100
        rgb = colour.XYZ_to_RGB(xyz, srgb, illuminant=srgb.whitepoint, chromatic_adaptation_transform=None)
        clean = render_ntire2020_clean(sd.copy().align(shape).values * d65_31 * scale)
        errors.append(srgb_to_clean_matrix() @ rgb - clean)
    errors = np.array(errors)
    assert np.sqrt(np.mean(errors**2)) < RMS_BOUND and np.abs(errors).max() < MAX_BOUND


# --- auto exposure ---------------------------------------------------------------------------------------


def test_auto_exposure_puts_the_bright_end_at_the_target() -> None:
    codes = np.random.default_rng(2).integers(0, 256, (50, 60, 3), dtype=np.uint8)
    transform = make_input_transform(codes, "srgb")
    out = transform(codes)
    assert np.percentile(out.max(axis=2), AUTO_PERCENTILE) == pytest.approx(AUTO_TARGET, rel=1e-5)
    assert make_input_transform(codes, "srgb").exposure == transform.exposure  # deterministic
    assert make_input_transform(codes, "ntire2020-clean").exposure == 1.0


@pytest.mark.parametrize("scale", [0.01, 0.5, 3.0])
def test_auto_exposure_times_image_scale_is_constant(scale: float) -> None:
    linear = np.random.default_rng(3).random((40, 50, 3)).astype(np.float32) * 0.3
    reference = auto_exposure(linear, "linear", 1.0)
    assert auto_exposure(linear * np.float32(scale), "linear", 1.0) * scale == pytest.approx(reference, rel=1e-5)
    # the same for an sRGB-encoded image whose linear light is scaled
    encoded = _srgb_encode(linear).astype(np.float32)
    scaled = _srgb_encode(linear * scale).astype(np.float32)
    assert auto_exposure(scaled, "srgb", 1.0) * scale == pytest.approx(auto_exposure(encoded, "srgb", 1.0), rel=1e-4)


def test_auto_exposure_of_black_is_one() -> None:
    assert auto_exposure(np.zeros((5, 5, 3), np.uint8), "srgb", 255.0) == 1.0


def test_auto_exposure_reads_a_subsample_of_a_100_megapixel_image() -> None:
    # A 10000×10000 view of one row (no memory behind it): only ~AUTO_SAMPLE_PIXELS pixels are converted.
    row = np.linspace(0, 255, 10_000).astype(np.uint8)[None, :, None].repeat(3, axis=2)
    huge = np.broadcast_to(row, (10_000, 10_000, 3))
    exposure = make_input_transform(huge, "srgb").exposure
    small = make_input_transform(np.ascontiguousarray(row), "srgb").exposure
    assert exposure == pytest.approx(small, rel=0.01)
    assert AUTO_SAMPLE_PIXELS <= 1 << 20


def test_photo_evidence_from_jpeg_and_exif_camera_tags(tmp_path):
    from PIL import Image

    from hsrecon.inputs import photo_evidence
    from hsrecon.io.rgb import read_rgb

    pixels = np.full((8, 8, 3), 120, np.uint8)
    Image.fromarray(pixels).save(tmp_path / "render.png")
    Image.fromarray(pixels).save(tmp_path / "plain.jpg", quality=90)
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "Canon\x00", "Canon EOS 5D Mark II\n\x1b[31m"  # NUL, newline, escape dropped
    Image.fromarray(pixels).save(tmp_path / "camera.png", exif=exif)
    assert photo_evidence(read_rgb(tmp_path / "render.png")) is None
    assert photo_evidence(read_rgb(tmp_path / "plain.jpg")) == "it is an 8-bit JPEG"
    camera = read_rgb(tmp_path / "camera.png")
    assert camera.format == "PNG" and camera.camera == "Canon Canon EOS 5D Mark II[31m"
    assert photo_evidence(camera) == "its EXIF names a camera (Canon Canon EOS 5D Mark II[31m)"
