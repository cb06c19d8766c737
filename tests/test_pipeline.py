"""Reconstruction through windows with the real network: equality with direct runs, no seams, any size."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from hsrecon.inference import TorchPredictor
from hsrecon.io import read_cube
from hsrecon.io.rgb import read_rgb
from hsrecon.physics import WAVELENGTHS_NM, load_colour, render_ntire2020_clean
from hsrecon.pipeline import NonFiniteOutputError, convert_file, reconstruct, stream_reconstruct


@pytest.fixture()
def untuned(bundled_weights):
    """The default weights in the window they were trained on (64, stride 32, default pad, no edge), as
    weights without a measured windowing run: what these tests were written for."""
    return dataclasses.replace(bundled_weights, tuned=None)


def textured_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """Smooth random texture in the clean rendering's range (≈ 0.02–0.3), float32."""
    rng = np.random.default_rng(seed)
    noise = gaussian_filter(rng.random((height, width, 3)), sigma=(2.5, 2.5, 0))
    noise = (noise - noise.min()) / np.ptp(noise)
    return (0.02 + 0.28 * noise).astype(np.float32)


def test_no_overlap_equals_the_model_on_each_window(bundled_model):
    image = textured_image(128, 192)
    cube = reconstruct(image, bundled_model, window=64, stride=64, pad=0)  # windows on the image's own grid
    with torch.no_grad():
        for y in (0, 64):
            for x in (0, 64, 128):
                window = torch.from_numpy(image[y : y + 64, x : x + 64]).permute(2, 0, 1)[None]
                direct = bundled_model(window)[0].permute(1, 2, 0).numpy()
                np.testing.assert_allclose(cube[y : y + 64, x : x + 64], direct, rtol=0, atol=1e-5)


def test_blended_output_equals_the_single_window_where_only_one_covers(bundled_model):
    image = textured_image(64, 96)  # windows at x = 0 and 32: columns 0–31 are covered by one window only
    cube = reconstruct(image, bundled_model, window=64, stride=32, pad=0)
    with torch.no_grad():
        first = bundled_model(torch.from_numpy(image[:, :64]).permute(2, 0, 1)[None])[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(cube[:, :32], first[:, :32], rtol=0, atol=1e-5)
    assert np.abs(cube[:, 40:64] - first[:, 40:64]).max() > 1e-4  # blended there, not copied


def _seam_ratio(cube: np.ndarray, boundaries: list[int]) -> float:
    """Mean |Δ| between neighbours across the given column boundaries / between all other neighbours."""
    diffs = np.abs(np.diff(cube, axis=1)).mean(axis=(0, 2))  # diffs[x - 1]: between columns x-1 and x
    mask = np.zeros(diffs.shape, bool)
    mask[[b - 1 for b in boundaries]] = True
    return float(diffs[mask].mean() / diffs[~mask].mean())


def _seam_ratio_both_axes(cube: np.ndarray, image: np.ndarray, boundaries: list[int]) -> float:
    """The seam ratio over rows and columns, divided by the input texture's own ratio at the same places,
    so that the texture's random variation from column to column does not pass for a seam (or hide one)."""
    out = _seam_ratio(cube, boundaries) + _seam_ratio(np.swapaxes(cube, 0, 1), boundaries)
    texture = _seam_ratio(image, boundaries) + _seam_ratio(np.swapaxes(image, 0, 1), boundaries)
    return out / texture


def test_no_seam_with_default_windows(untuned):
    image = textured_image(256, 256, seed=3)
    cube = reconstruct(image, untuned, pad=0)  # defaults: window 64, stride 32
    boundaries = list(range(32, 256, 32))  # every window edge (starts and ends) lies on this grid
    assert abs(_seam_ratio_both_axes(cube, image, boundaries) - 1.0) <= 0.05


def test_seam_measure_detects_the_authors_scheme(untuned):
    """Sanity check of the measure: without blending, window edges do show (else the test above is void)."""
    image = textured_image(256, 256, seed=3)
    cube = reconstruct(image, untuned, stride=64, pad=0)
    assert _seam_ratio_both_axes(cube, image, [64, 128, 192]) > 1.3


@pytest.mark.parametrize("shape", [(1, 1), (5, 300), (100, 3), (70, 70), (64, 64)])
def test_any_size_works(untuned, shape):
    image = textured_image(*shape) if min(shape) > 1 else np.full((*shape, 3), 0.1, np.float32)
    cube = reconstruct(image, untuned, stride=64)
    assert cube.shape == (*shape, 31)
    assert np.isfinite(cube).all()


def test_uint8_and_uint16_give_the_same_cube(untuned):
    rng = np.random.default_rng(5)
    eight = (rng.random((64, 64, 3)) * 80).astype(np.uint8)
    sixteen = eight.astype(np.uint16) * 257  # the same values at 16 bits
    a = reconstruct(eight, untuned, stride=64)
    b = reconstruct(sixteen, untuned, stride=64)
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_flat_grey_in_clean_space_gives_a_flat_spectrum(untuned):
    for grey in (0.05, 0.2):
        cube = reconstruct(np.full((64, 64, 3), grey, np.float32), untuned, stride=64)
        spectrum = cube[16:48, 16:48].mean(axis=(0, 1))
        flat = grey * 256 / 255  # a flat spectrum v renders to v·255/256
        assert abs(spectrum.mean() / flat - 1) < 0.05
        assert np.abs(spectrum / flat - 1).max() < 0.15  # measured: 12% at grey 0.05, 8% at 0.2
        # Rendered back, the spectrum gives the input colour (measured: 4.5% off at grey 0.05, 1% at 0.2).
        np.testing.assert_allclose(render_ntire2020_clean(spectrum[None, None])[0, 0], grey, rtol=0.06)


def test_srgb_grey_gives_a_daylight_spectrum_and_linear_agrees(untuned):
    colour = load_colour()
    srgb = np.full((64, 64, 3), 128, np.uint8)
    linear_value = float(colour.models.eotf_sRGB(128 / 255))
    linear = np.full((64, 64, 3), linear_value, np.float32)
    a = reconstruct(srgb, untuned, input_space="srgb", exposure=1.0, stride=64)[32, 32]
    b = reconstruct(linear, untuned, input_space="linear", exposure=1.0, stride=64)[32, 32]
    np.testing.assert_allclose(a, b, rtol=1e-3)
    d65 = colour.SDS_ILLUMINANTS["D65"].copy().align(colour.SpectralShape(400, 700, 10)).values
    assert np.corrcoef(a, d65)[0, 1] > 0.8  # an sRGB grey is a D65-lit grey


def test_non_finite_output_is_refused():
    def broken(windows):
        out = np.zeros((*windows.shape[:3], 31), np.float32)
        out[0, 3, 3, 7] = np.nan
        return out

    with pytest.raises(NonFiniteOutputError, match=r"window at \(0, 0\)"):
        stream_reconstruct(np.zeros((64, 64, 3), np.float32), lambda r: r, broken, lambda y, r: None)


def test_convert_file_writes_three_formats_equal_to_reconstruct(bundled_model, bundled_weights, tmp_path):
    import imageio.v3 as iio

    image = (textured_image(70, 90) * 255).astype(np.uint8)
    source = tmp_path / "scene.png"
    iio.imwrite(source, image)
    predict = TorchPredictor(bundled_model)
    result = convert_file(
        source, tmp_path / "out" / "scene", weights=bundled_weights, predict=predict, formats=("envi", "mat", "h5"),
        window=64, stride=64,
    )  # fmt: skip
    expected = reconstruct(read_rgb(source).pixels, bundled_weights, window=64, stride=64)
    assert result.height == 70 and result.width == 90
    for suffix in (".hdr", ".mat", ".h5"):
        cube, wavelengths, _ = read_cube(tmp_path / "out" / f"scene{suffix}")
        assert cube.shape == (70, 90, 31) and cube.dtype == np.float32
        np.testing.assert_array_equal(wavelengths, WAVELENGTHS_NM)
        np.testing.assert_allclose(cube, expected, rtol=0, atol=1e-6)
    assert not list((tmp_path / "out").glob("*.tmp")) and not list((tmp_path / "out").glob(".*"))


def test_weights_trained_on_another_window_reconstruct_with_it(bundled_weights, untuned):
    """The window is a property of the weights: ``reconstruct(rgb, model=weights)`` runs their own (weights
    without a measured windowing run in the window they were trained on)."""
    meta = dataclasses.replace(bundled_weights.meta, window_size=32)
    thirty_two = dataclasses.replace(bundled_weights, meta=meta, tuned=None)
    image = textured_image(80, 96)
    cube = reconstruct(image, model=thirty_two)
    np.testing.assert_allclose(cube, reconstruct(image, untuned, window=32), rtol=0, atol=1e-6)
    assert np.abs(cube - reconstruct(image, untuned)).max() > 1e-3  # 64-px windows give another cube


def test_default_windows_leave_no_seam_and_no_frame_at_the_border(bundled_weights, untuned):
    """The measured windowing of the default weights (docs/benchmarks.md): on a smooth 16-bit ramp no
    column or row stands out from its neighbours by more than 1.3×, and the outer 8 px get within 1% of
    what 64 px of real context gives them. The old windowing (64/32, no pad, no edge) fails both."""
    from benchmarks.bench_windows import border_deviation, ramp, seam_ratio

    image = ramp(320, 448)
    crop = image[64:-64, 64:-64]

    def measures(**options) -> tuple[float, float]:
        whole = reconstruct(image, **options)
        return seam_ratio(whole), border_deviation(reconstruct(crop, **options), whole[64:-64, 64:-64])[0]

    seam, border = measures(model=bundled_weights)
    assert seam <= 1.3 and border <= 0.01, (seam, border)
    seam, border = measures(model=untuned, window=64, stride=32, pad=0)  # unmeasured windowing: no edge
    assert seam > 1.5 and border > 0.02, (seam, border)


# --- the bare-network trap: a network handed over alone runs in its own windows, or is refused --------------


def test_a_network_loaded_from_a_file_runs_in_the_files_window(bundled_weights, tmp_path):
    """``reconstruct(rgb, load_model("w32.safetensors"))`` runs 32-px windows, as the file says, not 64."""
    from hsrecon.weights import load_model, load_weights, save_weights

    meta = dataclasses.replace(bundled_weights.meta, window_size=32, weights_version="w32")
    path = save_weights(tmp_path / "w32.safetensors", bundled_weights.state_dict, meta)
    image = textured_image(40, 44)
    network = load_model(path)
    cube = reconstruct(image, network)
    np.testing.assert_array_equal(cube, reconstruct(image, load_weights(path)))
    assert np.abs(cube - reconstruct(image, network, window=64)).max() > 1e-3  # 64-px windows: another cube


def test_a_network_carries_its_input_space_and_measured_windowing():
    """The camera network alone reads sRGB codes as the camera weights do (not as clean-track renderings)."""
    from hsrecon.weights import Weights, load_model, load_weights

    camera = load_weights("camera")
    network = load_model("camera")
    carried = Weights.from_model(network)
    assert (carried.input_space, carried.windowing(), carried.name) == ("srgb", camera.windowing(), camera.name)
    codes = (textured_image(16, 16) * 600).clip(0, 255).astype(np.uint8)
    np.testing.assert_array_equal(reconstruct(codes, network), reconstruct(codes, camera))
    assert Weights.from_model(network, input_space="linear").input_space == "linear"  # what is given wins
    assert Weights.from_model(network, window_size=32).windowing().window == 32  # measured windowing dropped


def test_a_network_that_carries_nothing_is_refused_without_a_window():
    from hsrecon.model import build_model

    network = build_model().eval()
    image = textured_image(24, 20)
    with pytest.raises(ValueError, match="window it was trained on is unknown"):
        reconstruct(image, network)
    assert reconstruct(image, network, window=16).shape == (24, 20, 31)  # told: it runs


def test_a_small_file_is_converted_with_its_fitted_pad_and_records_it(bundled_weights, tmp_path):
    # 482x512 (NTIRE size) in the default weights' windows: pad 12 covers it with 9 windows instead of 12.
    import imageio.v3 as iio

    iio.imwrite(tmp_path / "scene.png", (textured_image(482, 512, seed=3) * 255).round().astype(np.uint8))
    for folder, pad in (("fitted", None), ("given", 16)):
        convert_file(tmp_path / "scene.png", tmp_path / folder / "scene", weights=bundled_weights, formats=("h5",),
                     pad=pad)  # fmt: skip
    fitted, _, fitted_attrs = read_cube(tmp_path / "fitted" / "scene.h5")
    given, _, given_attrs = read_cube(tmp_path / "given" / "scene.h5")
    assert (fitted_attrs["pad"], given_attrs["pad"]) == (12, 16)  # a pad given is the pad used
    expected = reconstruct(read_rgb(tmp_path / "scene.png").pixels, bundled_weights, pad=12)
    np.testing.assert_allclose(fitted, expected, rtol=0, atol=1e-6)
    assert 0 < np.abs(given - expected).mean() < 0.01 * np.abs(expected).mean()  # the same cube but its border
