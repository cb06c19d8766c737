"""Recipe 2 of the synthetic set (photos from many cameras), and recipe 1 unchanged byte for byte.

Recipe 2's promises (``docs/data.md``): its spectra are earthlib's and colour-science's measured tables; every
region is made of its material class's spectra; the held-out camera and lamps never appear in training scenes;
a seed fixes every file; the camera keeps what real cameras keep (a lamp's off-locus tint, a warm cast).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json

import numpy as np
import pytest
from scipy.optimize import nnls
from test_cli import assert_clean_failure, hsrecon

from hsrecon.data import discover
from hsrecon.data.camera import CANON_5D2, decode_jpeg, fit_colour_matrix
from hsrecon.data.photo import (
    SENSOR_POOLS,
    chroma_denoise,
    develop_photo,
    downscale,
    draw_photo_settings,
    filmic,
    sensor_sensitivities,
)
from hsrecon.data.scenes import INDOOR_LIGHTS, make_photo_scene
from hsrecon.data.spectra import (
    MATERIAL_CLASSES,
    blackbody,
    daylight,
    earthlib_folder,
    earthlib_spectra,
    light_spectrum,
    material_library,
)
from hsrecon.data.synth import make_synthetic_dataset
from hsrecon.io import read_cube
from hsrecon.physics import illuminant_spectrum, measured_reflectances

# sha256 of recipe 1's files and cube values for `scenes=6, size=(64, 64), seed=5`, made with the code that
# wrote the bundled camera models' data (before recipe 2 existed).
RECIPE_1_FILES = "54dcac46a5c0bd800458342c18cdf17bab6f950905240dba51094e140764385f"
RECIPE_1_CUBES = "cd7e3789c7d18569566d8494d37c6ae42c04d35fbd7cdedfc5128b27c2f09cf3"


def _digests(root) -> tuple[str, str]:
    files, cubes = hashlib.sha256(), hashlib.sha256()
    for path in sorted([*root.glob("*/*.png"), *root.glob("*/*.jpg")]):
        files.update(path.read_bytes())
    for path in sorted(root.glob("*_Spectral/*.mat")):
        cubes.update(np.ascontiguousarray(read_cube(path)[0], dtype=np.float32).tobytes())
    return files.hexdigest(), cubes.hexdigest()


def test_recipe_1_is_byte_for_byte_what_the_bundled_camera_cards_were_scored_on(tmp_path):
    make_synthetic_dataset(tmp_path, scenes=6, size=(64, 64), seed=5)
    assert _digests(tmp_path) == (RECIPE_1_FILES, RECIPE_1_CUBES)


# --- spectra ----------------------------------------------------------------------------------------------


def test_earthlib_spectra_are_its_measured_samples():
    from spectral.io import envi

    spectra, level3, level4 = earthlib_spectra()
    assert spectra.shape == (7261, 31) and len(level3) == len(level4) == 7261
    folder = earthlib_folder()
    library = envi.open(str(folder / "spectra.sli.hdr"), str(folder / "spectra.sli"))
    centres = np.round(np.asarray(library.bands.centers) * 1000).astype(int)
    columns = [int(np.flatnonzero(centres == w)[0]) for w in range(400, 701, 10)]
    # colour-science's interpolation on earthlib's own 10 nm grid returns the measured samples
    np.testing.assert_allclose(spectra, np.clip(library.spectra[:, columns], 0, 1), atol=1e-6)
    assert level4.count("simulated") == 2000 and set(level3) >= {"soil", "canopy", "asphalt", "paint"}


def test_material_classes():
    library = material_library()
    counts = library.counts()
    assert list(counts) == list(MATERIAL_CLASSES) and all(counts.values())
    assert counts["vegetation"] == 2000 and counts["soil"] == 4185 + 9 + 39
    assert sum(counts.values()) - counts["dyed"] == 7261 - 2  # earthlib's two glass spectra are left out
    assert counts["dyed"] > len(measured_reflectances()[0])  # plus the CIE and CQS test samples
    assert library.spectra.min() >= 0 and library.spectra.max() <= 1.05  # optical brighteners, as measured
    assert library.simulated.sum() == 2000 and set(np.asarray(library.classes)[library.simulated]) == {"vegetation"}


def test_lights_come_from_colour_science():
    d65 = illuminant_spectrum("D65")
    np.testing.assert_allclose(daylight(6504), d65 / d65.max(), atol=2e-3)  # D65 is the D series at 6504 K
    warm = blackbody(2800)
    assert np.all(np.diff(warm) > 0) and warm.max() == 1
    np.testing.assert_array_equal(light_spectrum("BB2800K"), warm)
    np.testing.assert_array_equal(light_spectrum("D5000K"), daylight(5000))
    assert light_spectrum("FL11").max() == 1
    with pytest.raises(ValueError, match="unknown light"):
        light_spectrum("FL99")


def test_held_out_pools_share_nothing_with_training():
    for kind in INDOOR_LIGHTS["train"]:
        assert not set(INDOOR_LIGHTS["train"][kind]) & set(INDOOR_LIGHTS["heldout"].get(kind, []))
    assert not set(SENSOR_POOLS["train"]) & set(SENSOR_POOLS["heldout"])
    assert SENSOR_POOLS["heldout"] == (CANON_5D2,)


# --- scenes -----------------------------------------------------------------------------------------------

_ALLOWED = {"litter": ("litter", "wood")}  # leaf litter holds bark and wood flakes too


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_every_pixel_is_made_of_its_class_spectra(seed):
    scene = make_photo_scene(np.random.default_rng([seed, 1]), 48, 48)
    library = material_library()
    rng = np.random.default_rng(seed)
    labels = scene.labels
    for index in np.unique(labels):
        name = MATERIAL_CLASSES[index]
        allowed = np.concatenate([library.members(c) for c in _ALLOWED.get(name, (name,))])
        basis = library.spectra[allowed].T
        for y, x in np.argwhere(labels == index)[rng.integers((labels == index).sum(), size=3)]:
            weights, residual = nnls(basis, scene.reflectance[y, x], maxiter=2000)
            assert residual < 1e-6, (name, residual)
            assert weights.sum() == pytest.approx(1.0, abs=1e-6), name  # a convex mixture: area mixing
    assert 0 <= scene.cube.min() and scene.cube.max() <= 1


def test_scene_is_a_function_of_the_generator():
    a = make_photo_scene(np.random.default_rng([7, 3]), 40, 40)
    b = make_photo_scene(np.random.default_rng([7, 3]), 40, 40)
    np.testing.assert_array_equal(a.cube, b.cube)
    assert a.facts == b.facts and a.cube.shape == (40 * a.factor, 40 * a.factor, 31)
    kinds = {make_photo_scene(np.random.default_rng([7, i]), 32, 32).kind for i in range(12)}
    assert kinds == {"indoor", "outdoor"}


def test_outdoor_shadows_are_lit_by_the_sky_alone():
    """Sun (4000–7500 K) and sky (8000–20000 K): a shadow is bluer than the sunlit ground around it."""
    for index in range(40):
        scene = make_photo_scene(np.random.default_rng([5, index]), 64, 64)
        if scene.kind == "outdoor" and not scene.facts["overcast"] and scene.facts["shadowed"] > 0.05:
            break
    else:
        pytest.fail("no outdoor scene with shadows in 40")
    light = scene.irradiance
    blue_to_red = light[..., 3] / light[..., 27]
    brightness = light.mean(axis=-1)
    shadow, sunlit = brightness < 0.6 * brightness.max(), brightness > 0.9 * brightness.max()
    assert shadow.any() and sunlit.any()
    assert blue_to_red[shadow].min() > 1.1 * blue_to_red[sunlit].max()


# --- camera -----------------------------------------------------------------------------------------------


def _grey_photo(light: str, **changes) -> np.ndarray:
    settings = draw_photo_settings(np.random.default_rng(0), "train")
    sensitivities = sensor_sensitivities("Nikon 5100 (NPL)")
    fixed = dict(
        sensor="Nikon 5100 (NPL)", perturbed=False, sensitivities=sensitivities,
        colour_matrix=fit_colour_matrix(sensitivities).matrix, white_balance="auto", awb_error=0.0,
        awb_adaptation=0.75, chroma_denoise=0.0, tone="srgb", jpeg_quality=95, mean_green_electrons=9000.0,
        exposure_stops=0.0,
    )  # fmt: skip
    settings = dataclasses.replace(settings, **(fixed | changes))
    spectrum = light_spectrum(light)
    data, _ = develop_photo(np.ones((32, 32, 31)) * 0.18 * spectrum, spectrum, settings, np.random.default_rng(1))
    return decode_jpeg(data)[8:24, 8:24].reshape(-1, 3).mean(axis=0)


def test_auto_white_balance_keeps_what_real_cameras_keep():
    """A grey card: neutral under daylight; warm under tungsten (partly corrected); green under a fluorescent
    lamp whose colour lies off the blackbody locus the camera corrects along."""
    red, green, blue = _grey_photo("D6500K")
    assert max(abs(red - green), abs(blue - green)) < 1.5 and green == pytest.approx(118, abs=3)
    red, green, blue = _grey_photo("BB2800K")
    assert blue < green - 8 and abs(red - green) < 3
    red, green, blue = _grey_photo("FL2")
    assert green > red + 8 and green > blue + 8
    assert max(np.ptp(_grey_photo("BB2800K", awb_adaptation=1.0)), 0) < 2  # fully corrected: neutral


def test_perturbed_sensors_stay_close_and_positive():
    perturbed = 0
    for index in range(12):
        settings = draw_photo_settings(np.random.default_rng([3, index]), "train")
        base = sensor_sensitivities(settings.sensor)
        assert settings.sensitivities.min() > -1e-12 and settings.sensor in SENSOR_POOLS["train"]
        if not settings.perturbed:
            np.testing.assert_array_equal(settings.sensitivities, base)
            continue
        perturbed += 1
        assert not np.array_equal(settings.sensitivities, base)
        # a shift of up to 8 nm and a ±15% smooth curve: each channel keeps its shape and roughly its area
        for channel in range(3):
            assert np.corrcoef(settings.sensitivities[:, channel], base[:, channel])[0, 1] > 0.9
        assert np.all(np.abs(settings.sensitivities.sum(axis=0) / base.sum(axis=0) - 1) < 0.5)
    assert 4 <= perturbed <= 11
    assert draw_photo_settings(np.random.default_rng(0), "heldout").perturbed is False


def test_tone_and_processing_pieces():
    x = np.linspace(0, 12, 200)
    curve = filmic(x, 8.0)
    assert curve[0] == pytest.approx(0, abs=1e-9) and np.all(np.diff(curve) > 0)
    assert filmic(np.array(4.0), 8.0) == pytest.approx(1.0)
    flat = np.ones((8, 8, 3)) * [0.2, 0.5, 0.3]
    np.testing.assert_allclose(chroma_denoise(flat, 1.2), flat)  # flat colour untouched
    noisy = flat + np.random.default_rng(0).normal(0, 0.05, size=flat.shape)
    smoothed = chroma_denoise(noisy, 1.2)
    np.testing.assert_array_equal(smoothed[..., 1], noisy[..., 1])  # green keeps its detail
    assert np.std(smoothed[..., 0] - smoothed[..., 1]) < 0.5 * np.std(noisy[..., 0] - noisy[..., 1])
    np.testing.assert_allclose(downscale(np.arange(16.0).reshape(4, 4), 2), [[2.5, 4.5], [10.5, 12.5]])


# --- the dataset ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def recipe_2_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("recipe2")
    summary = make_synthetic_dataset(
        root, scenes=6, size=(48, 48), seed=3, valid_fraction=0.5, recipe=2, valid_sensors="heldout"
    )
    return root, summary


def test_recipe_2_layout_and_held_out_camera(recipe_2_set):
    root, summary = recipe_2_set
    assert summary["recipe"] == 2 and summary["pools"]["valid"] == {"sensors": "heldout", "lights": "train"}
    files = {f["name"]: f for f in summary["files"]}
    for split, count in (("train", 3), ("valid", 3)):
        pairs = discover(root, split=split, track="realworld")
        assert len(pairs) == count
        for pair in pairs:
            cube = read_cube(pair.cube)[0]
            assert cube.shape == (48, 48, 31) and cube.dtype == np.float32 and 0 <= cube.min() <= cube.max() <= 1
            assert decode_jpeg(pair.rgb.read_bytes()).shape == (48, 48, 3)
            sensor = files[pair.cube.stem]["sensor"]
            assert (sensor == CANON_5D2) == (split == "valid"), sensor
    assert json.loads((root / "synth.json").read_text())["files"][0]["name"] == "ARAD_HS_0001"


def test_recipe_2_same_seed_same_files_and_only_valid(recipe_2_set, tmp_path):
    root, _ = recipe_2_set
    make_synthetic_dataset(
        tmp_path, scenes=6, size=(48, 48), seed=3, valid_fraction=0.5, recipe=2, valid_sensors="heldout", only="valid"
    )
    for path in sorted((root / "Validation_RealWorld").iterdir()):
        assert (tmp_path / "Validation_RealWorld" / path.name).read_bytes() == path.read_bytes()
    assert not (tmp_path / "Train_RealWorld").exists()


def test_synth_cli_recipe_options(tmp_path):
    assert_clean_failure(
        hsrecon("synth", "-o", str(tmp_path / "x"), "--recipe", "4"), 2, "recipe must be one of 1, 2, 3"
    )
    assert_clean_failure(
        hsrecon("synth", "-o", str(tmp_path / "y"), "--recipe", "2", "--valid-sensors", "nikon"), 2, "--valid-sensors"
    )
