"""--plausible: the projection onto spectra that render exactly to the input, and the round-trip error."""

from __future__ import annotations

import numpy as np
import pytest

from hsrecon.inputs import InputTransform, d65_white_scale, make_input_transform, srgb_to_clean_matrix
from hsrecon.physics import illuminant_spectrum, measured_reflectances, ntire2020_clean_matrix, render_ntire2020_clean
from hsrecon.pipeline import reconstruct
from hsrecon.plausible import RoundTripError, photo_rendering_matrix, project, rendering_for


def _scene(rng, shape=(6, 7)) -> np.ndarray:
    """Measured reflectances under D65 at the network's radiance scale (white ≈ 1), h×w×31."""
    reflectances, _ = measured_reflectances()
    d65 = illuminant_spectrum("D65")
    picks = rng.integers(0, len(reflectances), shape)
    return reflectances[picks] * d65 * d65_white_scale(d65) * 0.6


def test_photo_rendering_maps_d65_white_to_one_and_agrees_with_the_input_matrix(rng):
    d65 = illuminant_spectrum("D65")
    white = d65 * d65_white_scale(d65)
    np.testing.assert_allclose(white @ photo_rendering_matrix(), 1.0, rtol=1e-12)
    # linear sRGB → clean space through hsrecon.inputs' fitted M agrees with the clean rendering (RMS 0.002)
    cube = _scene(rng)
    via_photo = (cube @ photo_rendering_matrix()) @ srgb_to_clean_matrix().T
    error = via_photo - render_ntire2020_clean(cube)
    assert np.sqrt(np.mean(error**2)) < 0.003


def test_clean_projection_renders_to_the_bin_centre_and_moves_toward_the_truth(rng):
    truth = _scene(rng)
    codes = np.minimum((render_ntire2020_clean(truth) * 255).astype(np.uint8), 254)  # the track truncates
    rendering = rendering_for(make_input_transform(codes, "ntire2020-clean"))
    guess = truth + rng.normal(0, 0.05, truth.shape)  # a reconstruction with errors in every direction
    projected = project(guess.astype(np.float32), codes, rendering)
    assert projected.dtype == np.float32
    np.testing.assert_allclose(projected @ ntire2020_clean_matrix() / 256, (codes + 0.5) / 255, atol=1e-6)
    # an orthogonal projection onto a set holding (nearly) the truth can only bring it closer
    assert np.linalg.norm(projected - truth) < np.linalg.norm(guess - truth)
    # what the input cannot see (the rendering's null space) is left alone
    null = np.linalg.svd(ntire2020_clean_matrix().T)[2][3:]  # 28×31 orthonormal rows, F^T n = 0
    np.testing.assert_allclose((projected - guess) @ null.T, 0.0, atol=1e-5)
    # a spectrum that already renders to the target is unchanged
    np.testing.assert_allclose(project(projected, codes, rendering), projected, atol=1e-6)


def test_exposure_and_float_files(rng):
    truth = _scene(rng)
    values = render_ntire2020_clean(truth).astype(np.float32)  # a float file: no quantiser, no offset
    transform = InputTransform("ntire2020-clean", 1.0, exposure=2.0)  # the network saw twice the values
    projected = project(2.0 * truth, values, rendering_for(transform))
    np.testing.assert_allclose(projected, 2.0 * truth, atol=1e-5)


def test_srgb_projection_uses_the_photo_rendering_with_the_exposure(rng):
    truth = _scene(rng)
    colour = pytest.importorskip("colour")
    linear = truth @ photo_rendering_matrix()
    codes = np.round(np.clip(colour.models.eotf_inverse_sRGB(np.clip(linear, 0, 1)), 0, 1) * 255).astype(np.uint8)
    transform = make_input_transform(codes, "srgb")
    rendering = rendering_for(transform)
    assert rendering.encoding == "srgb" and rendering.offset == 0.0
    guess = transform.exposure * truth * rng.uniform(0.8, 1.2, truth.shape)
    projected = project(guess, codes, rendering)
    expected = transform.exposure * colour.models.eotf_sRGB(codes / 255.0)
    unclipped = codes < 255
    np.testing.assert_allclose((projected @ photo_rendering_matrix())[unclipped], expected[unclipped], atol=2e-6)


def test_clipped_channels_are_only_raised(rng):
    codes = np.array([[[255, 40, 30], [255, 40, 30]]], dtype=np.uint8)
    rendering = rendering_for(make_input_transform(codes, "ntire2020-clean"))
    flat = np.ones((1, 2, 31))
    dark, bright = flat * 0.5, flat * 1.5  # render to (0.498…, …) and (1.494…, …) in every channel
    rows = np.concatenate([dark[:, :1], bright[:, 1:]], axis=1)
    rendered = project(rows, codes, rendering) @ ntire2020_clean_matrix() / 256
    assert rendered[0, 0, 0] == pytest.approx(255.5 / 255, abs=1e-6)  # raised to the clip level
    assert rendered[0, 1, 0] == pytest.approx(1.5 * 255 / 256, abs=1e-5)  # brighter already: kept
    np.testing.assert_allclose(rendered[0, :, 1:], [[40.5 / 255, 30.5 / 255]] * 2, atol=1e-6)


def test_round_trip_error_in_codes(rng):
    truth = _scene(rng)
    codes = np.minimum((render_ntire2020_clean(truth) * 255).astype(np.uint8), 254)
    codes[0, 0, 0] = 255  # one clipped channel: left out and counted
    error = RoundTripError(rendering_for(make_input_transform(codes, "ntire2020-clean")))
    centre = (codes.astype(np.float64) + 0.5) / 255
    cube = np.linalg.lstsq(ntire2020_clean_matrix().T / 256, centre.reshape(-1, 3).T, rcond=None)[0].T
    shifted = cube.reshape(*codes.shape[:2], 31) + 2.0 / 255 * 256 / 255  # renders 2 codes above everywhere
    for y0 in range(0, codes.shape[0], 4):
        error(shifted[y0 : y0 + 4], codes[y0 : y0 + 4])
    assert error.rms == pytest.approx(2.0, abs=1e-9) and error.max == pytest.approx(2.0, abs=1e-9)
    assert (error.clipped, error.counted) == (1, codes.size - 1)


def test_reconstruct_plausible_renders_back_to_the_input(bundled_weights, rng):
    codes = (render_ntire2020_clean(_scene(rng, (40, 40))) * 255).astype(np.uint8)
    plain = reconstruct(codes, bundled_weights, window=32, stride=16)
    plausible = reconstruct(codes, bundled_weights, window=32, stride=16, plausible=True)
    rendering = rendering_for(make_input_transform(codes, "ntire2020-clean"))
    before, after = RoundTripError(rendering), RoundTripError(rendering)
    before(plain, codes)
    after(plausible, codes)
    assert before.rms > 0.5 and after.rms < 1e-3  # in 8-bit codes
    assert np.abs(plausible - plain).max() > 1e-3


def test_eval_scores_the_projected_output_beside_the_plain_one(tmp_path, rng, bundled_weights):
    import imageio.v3 as iio
    from test_data_ntire import make_ntire2020

    from hsrecon.data import discover
    from hsrecon.evaluate import NetworkMethod, evaluate_pairs
    from hsrecon.io import read_cube
    from hsrecon.metrics import score

    root = make_ntire2020(tmp_path / "data", rng, train=(), valid=(451,), shape=(40, 48))
    pairs = discover(root)
    windowing = bundled_weights.windowing(32, 16)  # as reconstruct(window=32, stride=16) runs them
    network = NetworkMethod(bundled_weights.predictor(window=32), window=32, stride=16, pad=windowing.pad,
                            edge=windowing.edge)  # fmt: skip
    report = evaluate_pairs(pairs, {"network": network}, input_space="ntire2020-clean", plausible=("network",))
    assert list(report.results) == ["network", "network+plausible"]
    gt, _, _ = read_cube(pairs[0].cube)
    codes = iio.imread(pairs[0].rgb)
    for name, plausible in (("network", False), ("network+plausible", True)):
        cube = reconstruct(codes, bundled_weights, window=32, stride=16, plausible=plausible)
        assert report.results[name][0].scores.mrae == pytest.approx(score(cube, gt).mrae, rel=1e-6)
    with pytest.raises(ValueError, match="no method named linear"):
        evaluate_pairs(pairs, {"network": network}, input_space="ntire2020-clean", plausible=("linear",))


def test_plausible_is_refused_for_weights_trained_on_photo_values(bundled_weights):
    from hsrecon.weights import Weights

    photo = Weights.from_model(bundled_weights.build(), input_space="srgb", version="test")
    codes = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match=r"--plausible needs weights that take clean-space input.*take srgb"):
        reconstruct(codes, photo, window=32, plausible=True)
