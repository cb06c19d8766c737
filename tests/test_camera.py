"""The camera model against colour-science's own computation, and its sensor, demosaic and colour steps."""

from __future__ import annotations

import numpy as np
import pytest

from hsrecon.data.camera import (
    CAMERAS,
    CameraSettings,
    bayer_masks,
    camera_colour_matrix,
    camera_msds,
    camera_raw_rgb,
    camera_sensitivities,
    decode_jpeg,
    demosaic,
    render_camera,
    render_camera_jpeg,
    sensor_electrons,
)
from hsrecon.physics import WAVELENGTHS_NM, illuminant_spectrum, load_colour, measured_reflectances, reflectance_set


@pytest.mark.filterwarnings("ignore:Aligning")
@pytest.mark.parametrize("camera", CAMERAS)
def test_raw_rgb_equals_colour_science_integration(camera):
    colour = load_colour()
    shape = colour.SpectralShape(400, 700, 10)
    reflectances = np.concatenate([reflectance_set("BabelColor Average")[0][:6], measured_reflectances()[0][-4:]])
    d65 = illuminant_spectrum("D65")
    ours = camera_raw_rgb((reflectances * d65)[None], camera)[0]
    # colour-science aligns the camera table and the illuminant itself and integrates k·Σ R·S·s̄·Δλ; with an
    # explicit k it returns that divided by 100 (its documented "percentage" convention).
    theirs = colour.msds_to_XYZ(
        reflectances,
        cmfs=camera_msds(camera),
        illuminant=colour.SDS_ILLUMINANTS["D65"],
        k=1,
        method="Integration",
        shape=shape,
    )
    theirs = theirs * 100 / shape.interval  # our raw response has no Δλ: the exposure sets the scale
    np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-6)
    assert camera_sensitivities(camera).shape == (len(WAVELENGTHS_NM), 3)


def test_bayer_pattern_is_rggb():
    masks = bayer_masks(4, 4)
    assert masks.sum(axis=0).tolist() == np.ones((4, 4)).tolist()
    assert masks[0, 0, 0] and masks[1, 0, 1] and masks[1, 1, 0] and masks[2, 1, 1]
    assert masks.sum(axis=(1, 2)).tolist() == [4, 8, 4]


@pytest.mark.parametrize("signal", [800.0, 6400.0])
def test_shot_noise_variance_follows_the_signal(signal):
    settings = CameraSettings(mean_green_electrons=signal, read_noise_electrons=4.0, full_well_electrons=1e6)
    raw = np.full((256, 256, 3), 0.25)  # a flat grey patch
    electrons = sensor_electrons(raw, settings, np.random.default_rng(3))
    green = electrons[bayer_masks(256, 256)[1]]
    assert green.mean() == pytest.approx(signal, rel=2e-3)
    # Poisson: variance = mean; plus the read noise's 4² = 16.
    assert green.var() == pytest.approx(signal + 16.0, rel=0.04)


def test_full_well_clips():
    settings = CameraSettings(mean_green_electrons=5000.0, full_well_electrons=6000.0, read_noise_electrons=0.0)
    raw = np.full((8, 8, 3), 1.0) * np.array([3.0, 1.0, 0.2])
    electrons = sensor_electrons(raw, settings, np.random.default_rng(0))
    assert electrons.max() == 6000.0
    assert np.all(electrons[bayer_masks(8, 8)[0]] == 6000.0)


@pytest.mark.parametrize("method", ["malvar", "bilinear"])
def test_demosaic_is_exact_on_flat_and_linear_colour(method):
    height, width = 24, 30
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    for rgb in (
        np.broadcast_to([0.2, 0.5, 0.7], (height, width, 3)),
        np.stack([0.1 + 0.01 * x, 0.2 + 0.005 * y, 0.3 + 0.004 * x + 0.006 * y], axis=-1),
    ):
        mosaic = np.einsum("hwc,chw->hw", rgb, bayer_masks(height, width))
        restored = demosaic(mosaic, method)
        # Interior: linear interpolation is exact on linear colour; mirror borders break linearity only there.
        np.testing.assert_allclose(restored[3:-3, 3:-3], rgb[3:-3, 3:-3], atol=1e-12)
    with pytest.raises(ValueError, match="demosaic"):
        demosaic(mosaic, "vng")


def test_colour_matrix_fit():
    fit = camera_colour_matrix("Nikon 5100 (NPL)")
    np.testing.assert_allclose(fit.matrix.sum(axis=1), 1.0, atol=1e-12)  # white stays white
    assert fit.patches == len(measured_reflectances()[0]) == 268
    assert fit.rms < 0.02 and fit.delta_e2000_mean < 1.5  # measured: 0.011 and 1.00


@pytest.mark.parametrize("light", ["D65", "A", "FL2"])
def test_grey_under_any_light_develops_to_neutral_middle_grey(light):
    spectrum = illuminant_spectrum(light)
    cube = np.full((32, 32, 31), 0.4) * spectrum / spectrum.max()
    settings = CameraSettings(jpeg_quality=None)
    image = render_camera(cube, rng=np.random.default_rng(0), settings=settings, illuminant=spectrum)
    assert image.dtype == np.uint8 and image.shape == (32, 32, 3)
    means = image.reshape(-1, 3).mean(axis=0)
    assert np.ptp(means) < 1.5  # neutral
    # Auto exposure puts the mean green at brightness 0.18 linear: 118 after the sRGB curve.
    np.testing.assert_allclose(means, 117.7, atol=1.5)


def test_deterministic_from_the_generator_and_jpeg_is_the_decoded_file():
    rng = np.random.default_rng(5)
    cube = rng.uniform(0.05, 0.6, size=(24, 32, 31)) * illuminant_spectrum("D50") / 120
    first = render_camera(cube, rng=np.random.default_rng(9))
    again = render_camera(cube, rng=np.random.default_rng(9))
    other = render_camera(cube, rng=np.random.default_rng(10))
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    data = render_camera_jpeg(cube, rng=np.random.default_rng(9))
    assert data[:2] == b"\xff\xd8"
    np.testing.assert_array_equal(decode_jpeg(data), first)


def test_settings_are_checked():
    with pytest.raises(ValueError, match="unknown camera"):
        CameraSettings(camera="Phone")
    with pytest.raises(ValueError, match="full_well"):
        CameraSettings(mean_green_electrons=5000.0, full_well_electrons=4000.0)
    with pytest.raises(ValueError, match="illuminant"):
        render_camera(
            np.ones((4, 4, 31)), rng=np.random.default_rng(0), settings=CameraSettings(white_balance="illuminant")
        )
