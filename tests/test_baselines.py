"""The per-pixel baselines: the MRAE-fitted 3→31 map and colour-science's Otsu 2018, vectorised."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from hsrecon.baselines import Otsu2018Baseline, fit_mrae_map, otsu2018_reflectance
from hsrecon.inputs import make_input_transform
from hsrecon.physics import measured_reflectances, render_ntire2020_clean


def _mrae(prediction: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean(np.abs(prediction - truth) / truth))


def test_mrae_fit_recovers_an_exact_linear_map(rng):
    x = rng.uniform(0.05, 1.0, (2000, 3))
    matrix = rng.uniform(0.05, 0.5, (3, 31))
    start = matrix + rng.normal(0, 0.05, matrix.shape)
    np.testing.assert_allclose(fit_mrae_map(x, x @ matrix, start), matrix, rtol=1e-4)


def test_mrae_fit_hedges_where_least_squares_does_not(rng):
    # the same inputs lead to bright or (a third of the time) ten times dimmer spectra: ambiguity
    x = rng.uniform(0.05, 1.0, (3000, 3))
    matrix = rng.uniform(0.05, 0.5, (3, 31))
    y = (x @ matrix) * np.where(rng.random((3000, 1)) < 1 / 3, 0.1, 1.0)
    least_squares = np.linalg.lstsq(x, y, rcond=None)[0]
    relative = fit_mrae_map(x, y, least_squares)
    assert _mrae(x @ relative, y) < 0.5 * _mrae(x @ least_squares, y)
    assert np.sqrt(np.mean((x @ least_squares - y) ** 2)) < np.sqrt(np.mean((x @ relative - y) ** 2))
    assert np.all(relative < least_squares)  # it predicts low: overshooting a dim value costs most


def test_mrae_fit_leaves_out_zero_targets(rng):
    # zeros are left out of MRAE, so they must not pull the fit (a floor of 1e-6 would make them dominate)
    x = rng.uniform(0.05, 1.0, (2000, 3))
    matrix = rng.uniform(0.05, 0.5, (3, 31))
    y = x @ matrix
    y[::10] = 0.0
    np.testing.assert_allclose(fit_mrae_map(x, y), matrix, rtol=1e-4)


def _library_otsu(xyz: np.ndarray, observer: str, illuminant: str) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import colour
        from colour.recovery import SPECTRAL_SHAPE_OTSU2018, XYZ_to_sd_Otsu2018

        cmfs = colour.MSDS_CMFS[observer].copy().align(SPECTRAL_SHAPE_OTSU2018)
        light = colour.SDS_ILLUMINANTS[illuminant].copy().align(cmfs.shape)
        return np.stack([XYZ_to_sd_Otsu2018(x, cmfs, light).values[2:33] for x in xyz])  # 400…700 nm


@pytest.mark.parametrize(
    ("observer", "name", "illuminant"),
    [
        ("cie1931-d65", "CIE 1931 2 Degree Standard Observer", "D65"),
        ("cie1964-e", "CIE 1964 10 Degree Standard Observer", "E"),
    ],
)
def test_vectorised_otsu_equals_the_library_call(rng, observer, name, illuminant):
    xyz = np.concatenate([rng.uniform(0.01, 0.95, (40, 3)), [[0.0, 0.0, 0.0], [0.9505, 1.0, 1.089]]])
    ours = otsu2018_reflectance(xyz.reshape(6, 7, 3), observer=observer).reshape(-1, 31)
    np.testing.assert_allclose(ours, _library_otsu(xyz, name, illuminant), rtol=0, atol=1e-12)


def test_otsu_baseline_on_the_clean_track_recovers_measured_reflectances(rng):
    # measured reflectances under a flat light, rendered and stored as the clean track does
    reflectances, _ = measured_reflectances()
    cube = reflectances[rng.integers(0, len(reflectances), (16, 20))] * 0.8
    codes = (render_ntire2020_clean(cube) * 255).astype(np.uint8)
    rows = {}
    Otsu2018Baseline("ntire2020-clean")(codes, make_input_transform(codes, "ntire2020-clean"), rows.__setitem__)
    out = np.concatenate([rows[y] for y in sorted(rows)])
    assert out.shape == cube.shape and out.dtype == np.float32
    # a per-pixel prior, not the truth: close in colour (off only where it clips to [0, 1]), and in shape
    error = render_ntire2020_clean(out) - codes / 255
    assert np.sqrt(np.mean(error**2)) < 0.002 and np.abs(error).max() < 0.02
    assert _mrae(out, cube) < 0.3


def test_otsu_baseline_on_photos_is_in_the_network_scale(rng):
    # an sRGB white photo: reflectance ~1 under D65, times the transform's exposure
    codes = np.full((4, 5, 3), 200, dtype=np.uint8)
    transform = make_input_transform(codes, "srgb")
    rows = {}
    Otsu2018Baseline("srgb")(codes, transform, rows.__setitem__)
    out = rows[0].astype(np.float64)
    # a neutral grey: its clean rendering is a scaled copy of D65's clean colour, as the network's input is
    rendered = render_ntire2020_clean(out)
    np.testing.assert_allclose(rendered, np.asarray(transform(codes), dtype=np.float64), rtol=0.01)
