"""The synthetic set: NTIRE 2020 layout, cubes and renderings as defined, value range, determinism."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hsrecon.data import discover, recipe1, scan
from hsrecon.data.camera import CameraSettings, render_camera
from hsrecon.data.synth import ILLUMINANTS, P99_RANGE, make_scene, make_synthetic_dataset, scene_name
from hsrecon.io import read_cube
from hsrecon.io.rgb import read_rgb
from hsrecon.physics import (
    illuminant_spectrum,
    load_colour,
    measured_reflectances,
    quantize_ntire2020_clean,
    render_ntire2020_clean,
)

SEED, SIZE = 11, (32, 48)


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    calls = []
    summary = make_synthetic_dataset(
        root, scenes=3, size=SIZE, seed=SEED, valid_fraction=0.2, progress=lambda *a: calls.append(a)
    )
    assert calls == [(1, 3), (2, 3), (3, 3)]
    return root, summary


def test_discovered_in_both_splits_and_tracks(tiny_set):
    root, _ = tiny_set
    train = discover(root, split="train")
    valid = discover(root, split="valid")
    assert [p.name for p in train] == ["ARAD_HS_0001", "ARAD_HS_0002"]
    assert [p.name for p in valid] == ["ARAD_HS_0003"]
    assert train[0].cube == root / "Train_Spectral" / "ARAD_HS_0001.mat"
    assert train[0].rgb == root / "Train_Clean" / "ARAD_HS_0001_clean.png"
    for split in ("train", "valid"):
        found = scan(root, split=split, track="realworld")
        assert found.layout == "ntire2020" and found.pairs and not found.unpaired
        assert all(p.rgb.suffix == ".jpg" and p.rgb.stem.endswith("_RealWorld") for p in found.pairs)


def _pairs(root, track):
    return [pair for split in ("train", "valid") for pair in discover(root, split=split, track=track)]


def test_cubes_read_back_as_rendered_and_images_follow_their_definitions(tiny_set):
    root, _ = tiny_set
    photos = _pairs(root, "realworld")
    for index, (pair, photo) in enumerate(zip(_pairs(root, "clean"), photos, strict=True), start=1):
        scene = make_scene(np.random.default_rng([SEED, index]), *SIZE)
        cube, bands, _ = read_cube(pair.cube)
        np.testing.assert_array_equal(cube, scene.cube)
        assert cube.dtype == np.float32 and cube.shape == (*SIZE, 31)
        assert bands.tolist() == list(range(400, 701, 10))
        clean = read_rgb(pair.rgb).pixels
        np.testing.assert_array_equal(clean, quantize_ntire2020_clean(render_ntire2020_clean(cube)))
        rng = np.random.default_rng([SEED, index, 1])
        expected = render_camera(cube, rng=rng, settings=CameraSettings(), illuminant=scene.illuminant_spectrum)
        np.testing.assert_array_equal(read_rgb(photo.rgb).pixels, expected)


def test_values_within_the_documented_range(tiny_set):
    root, summary = tiny_set
    for pair in _pairs(root, "clean"):
        cube, _, _ = read_cube(pair.cube)
        assert cube.min() >= 0.0 and cube.max() <= 1.0
        assert np.percentile(cube, 99) <= P99_RANGE[1] + 1e-6
        assert 0.0 < cube.mean() < 0.5
    stats = summary["statistics"]
    assert stats["min"] >= 0.0 and stats["max"] <= 1.0
    assert stats["splits"] == {"train": 2, "valid": 1}


def test_summary_records_the_recipe(tiny_set):
    root, summary = tiny_set
    recorded = json.loads((root / "synth.json").read_text())
    assert recorded == json.loads(json.dumps(summary))
    assert recorded["seed"] == SEED and recorded["size"] == list(SIZE)
    assert recorded["colour_science_version"] == load_colour().__version__
    assert recorded["camera"]["camera"] == "Nikon 5100 (NPL)"
    assert recorded["distinct_reflectances"] == len(measured_reflectances()[0]) == 268
    assert [f["name"] for f in recorded["files"]] == [scene_name(i) for i in (1, 2, 3)]
    assert all(f["illuminant"] in ILLUMINANTS for f in recorded["files"])


def test_same_seed_same_files(tmp_path):
    first = make_synthetic_dataset(tmp_path / "a", scenes=2, size=(16, 24), seed=4, valid_fraction=0.0)
    second = make_synthetic_dataset(tmp_path / "b", scenes=2, size=(16, 24), seed=4, valid_fraction=0.0)
    other = make_synthetic_dataset(tmp_path / "c", scenes=2, size=(16, 24), seed=5, valid_fraction=0.0)
    assert first["files"] == second["files"] != other["files"]
    for name in ("ARAD_HS_0001", "ARAD_HS_0002"):
        for folder, suffix in (("Train_Clean", "_clean.png"), ("Train_RealWorld", "_RealWorld.jpg")):
            a, b = ((tmp_path / run / folder / f"{name}{suffix}").read_bytes() for run in "ab")
            assert a == b
        cubes = [read_cube(tmp_path / run / "Train_Spectral" / f"{name}.mat")[0] for run in "abc"]
        np.testing.assert_array_equal(cubes[0], cubes[1])
        assert not np.array_equal(cubes[0], cubes[2])
    assert not (tmp_path / "a" / "Validation_Spectral").exists()


def test_only_the_validation_split_is_the_full_sets_validation_split(tmp_path):
    recipe = {"scenes": 5, "size": (16, 16), "seed": 9, "valid_fraction": 0.4}
    full = make_synthetic_dataset(tmp_path / "full", **recipe)
    valid = make_synthetic_dataset(tmp_path / "valid", **recipe, only="valid")
    assert [f["name"] for f in valid["files"]] == ["ARAD_HS_0004", "ARAD_HS_0005"]
    assert valid["files"] == [f for f in full["files"] if f["split"] == "valid"]
    assert not (tmp_path / "valid" / "Train_Spectral").exists()
    for name in ("ARAD_HS_0004", "ARAD_HS_0005"):
        for folder, suffix in (("Validation_Clean", "_clean.png"), ("Validation_RealWorld", "_RealWorld.jpg")):
            a, b = ((tmp_path / run / folder / f"{name}{suffix}").read_bytes() for run in ("full", "valid"))
            assert a == b
    with pytest.raises(ValueError, match="only must be one of"):
        make_synthetic_dataset(tmp_path / "x", scenes=2, size=(16, 16), seed=9, only="test")


def test_regions_are_measured_spectra_or_their_mixtures():
    rng = np.random.default_rng(0)
    library, _ = measured_reflectances()
    textures = recipe1._textures(rng, 64, 64)
    labels = recipe1._layout(rng, 64, 64)
    reflectance, kinds, used = recipe1._paint(rng, labels, library, textures)
    flat_regions = 0
    for region in range(labels.max() + 1):
        spectra = reflectance[labels == region]
        singular = np.linalg.svd(spectra, compute_uv=False)
        assert np.all(singular[3:] <= 1e-9 * singular[0])  # at most three measured spectra mixed
        if np.ptp(spectra, axis=0).max() == 0:
            flat_regions += np.any(np.all(library == spectra[0], axis=1))
    assert flat_regions >= kinds["flat"] >= 1
    assert len(used) >= labels.max() + 1 and reflectance.min() >= 0 and reflectance.max() <= library.max()


def test_scene_facts():
    scene = make_scene(np.random.default_rng(0), 64, 64)
    assert scene.facts["illuminant"] == scene.illuminant in ILLUMINANTS
    assert np.isclose(scene.illuminant_spectrum.max(), 1.0)
    assert 0.0 < scene.facts["mean"] < scene.facts["p99"] <= scene.facts["max"] <= 1.0


def test_camera_none_and_bad_arguments(tmp_path):
    make_synthetic_dataset(tmp_path / "noc", scenes=2, size=(8, 8), seed=0, camera=None)
    assert not (tmp_path / "noc" / "Train_RealWorld").exists()
    assert discover(tmp_path / "noc", split="valid")[0].name == "ARAD_HS_0002"
    for kwargs in ({"size": (30, 32)}, {"scenes": 0}, {"seed": -1}, {"valid_fraction": 1.0}):
        arguments = {"scenes": 1, "size": (8, 8), "seed": 0, **kwargs}
        with pytest.raises(ValueError):
            make_synthetic_dataset(tmp_path / "bad", **arguments)


def test_library_is_colour_sciences_measured_tables():
    colour = load_colour()
    library, labels = measured_reflectances()
    assert len(set(labels)) == len(labels) == 268
    assert not any(label.startswith("ISO 17321-1") for label in labels)  # a copy of ColorChecker N Ohta
    patch = colour.SDS_COLOURCHECKERS["PMC"]
    name = next(iter(patch))
    row = library[labels.index(f"PMC: {name}")]
    # Measured at these wavelengths: colour-science's alignment returns the table's samples (to rounding).
    np.testing.assert_allclose(row, [patch[name][w] for w in range(400, 701, 10)], rtol=0, atol=1e-12)
    rawtoaces = colour.characterisation.read_training_data_rawtoaces_v1()
    expected = np.clip(rawtoaces[list(range(400, 701, 10))][:, -1], 0, None)
    np.testing.assert_allclose(library[-1], expected, rtol=0, atol=1e-12)
    daylight = illuminant_spectrum("D65")
    expected = [colour.SDS_ILLUMINANTS["D65"][w] for w in range(400, 701, 10)]
    np.testing.assert_allclose(daylight, expected, rtol=1e-12)
