"""The measurement tools behind the per-pixel, per-illuminant and context tables (docs/training.md, docs/data.md)."""

from __future__ import annotations

import numpy as np
import pytest

from hsrecon.data import discover
from hsrecon.data.photo import downscale
from hsrecon.data.scenes import make_photo_scene
from hsrecon.data.spectra import LIGHT_FAMILIES, light_family
from hsrecon.data.synth import make_synthetic_dataset
from hsrecon.io import read_cube
from hsrecon.metrics import mrae
from hsrecon.pixelmap import apply_map
from tools.context_bounds import _scenes, grouped_maps
from tools.heldout_ceiling import leave_one_out, score_set
from tools.heldout_ceiling import markdown as ceiling_markdown
from tools.light_bounds import Scenes, load_scenes, score_routes, subset, train_pixel_classifier
from tools.light_twins import compare, lamps, twin_of
from tools.per_pixel_bounds import knn_predictors
from tools.scores_by_illuminant import markdown, mrae_by_illuminant, scores_by_illuminant


def _mrae(prediction: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean(np.abs(prediction - truth) / truth))


def test_knn_mean_and_relative_weighted_median():
    x = np.zeros((3, 3))
    y = np.array([[1.0], [2.0], [4.0]])
    predictors = knn_predictors(x, y, k=3)
    query = np.zeros((1, 3))
    assert predictors["3-NN mean"](query)[0, 0] == pytest.approx(7 / 3)
    # weights 1, 1/2, 1/4: the value 1 already holds more than half of the total weight
    assert predictors["3-NN weighted median"](query)[0, 0] == pytest.approx(1.0)


def test_scores_by_illuminant_groups_and_averages():
    report = {
        "methods": {
            "network": {"images": [{"name": "a", "mrae": 0.2}, {"name": "b", "mrae": 0.4}, {"name": "c", "mrae": 3.0}]}
        }
    }
    synth = {
        "files": [
            {"name": "a", "illuminant": "D65"},
            {"name": "b", "illuminant": "D65"},
            {"name": "c", "illuminant": "A"},
        ]
    }
    groups = mrae_by_illuminant(report, synth)
    assert groups == {"network": {"D65": [0.2, 0.4], "A": [3.0]}}
    table = markdown(groups).splitlines()
    assert table[0] == "| method | A (1) | D65 (2) | all |"
    assert table[2] == "| network | 3.000 | 0.300 | 1.200 |"


def test_scores_by_illuminant_takes_any_score_and_groups_recipe_2_lights_by_kind():
    names = ("D6204K", "D65", "BB2900K", "A", "FL2", "LED-B1")
    report = {"methods": {"network": {"images": [
        {"name": name, "mrae": 9.0, "mrae_gain_mrae": float(i + 1)} for i, name in enumerate(names)
    ]}}}  # fmt: skip
    synth = {"files": [{"name": name, "illuminant": name} for name in names]}
    groups = scores_by_illuminant(report, synth, "mrae_gain_mrae", families=True)["network"]
    assert groups == {"daylight": [1.0, 2.0], "incandescent": [3.0, 4.0], "fluorescent": [5.0], "LED": [6.0]}
    table = markdown({"network": groups}, digits=2).splitlines()
    assert table[0] == "| method | LED (1) | daylight (2) | fluorescent (1) | incandescent (2) | all |"
    assert table[2] == "| network | 6.00 | 1.50 | 5.00 | 3.50 | 3.50 |"


def _grouped_scene(rng: np.random.Generator, maps: dict[int, np.ndarray], light: str) -> dict:
    """A scene whose truth is exactly ``photo @ maps[label]`` for each pixel's label."""
    labels = rng.integers(len(maps), size=(16, 16))
    photo = rng.uniform(0.05, 1.0, size=(16, 16, 3))
    truth = np.einsum("hwc,hwcb->hwb", photo, np.stack([maps[int(k)] for k in labels.ravel()]).reshape(16, 16, 3, 31))
    return {"photo": photo, "truth": truth, "labels": labels, "light": light, "kind": "outdoor"}


def test_context_bounds_maps_per_group_recover_what_one_map_cannot():
    rng = np.random.default_rng(0)
    maps = {k: rng.uniform(0.1, 1.0, size=(3, 31)) for k in range(3)}
    train = [_grouped_scene(rng, maps, "daylight") for _ in range(4)]
    test = [_grouped_scene(rng, maps, "daylight") for _ in range(2)]
    per_class = grouped_maps(train, test, lambda scene, label: label)
    one_map = grouped_maps(train, test, lambda scene, label: 0)
    assert [light for *_, light in per_class] == ["daylight", "daylight"]
    assert max(mrae for mrae, _, _ in per_class) < 1e-9 and max(angle for _, angle, _ in per_class) < 1e-4
    assert min(mrae for mrae, _, _ in one_map) > 0.01 and min(angle for _, angle, _ in one_map) > 0.5
    # a group no training scene holds falls back to the one map
    unseen = grouped_maps(train, test, lambda scene, label: "new" if scene is test[0] else label)
    assert unseen[0][:2] == pytest.approx(one_map[0][:2]) and unseen[1][0] < 1e-9


def test_context_bounds_regenerates_the_stored_scenes_with_their_labels(tmp_path):
    make_synthetic_dataset(tmp_path, scenes=4, size=(48, 48), seed=3, valid_fraction=0.5, recipe=2,
                           valid_sensors="heldout")  # fmt: skip
    scenes = _scenes(tmp_path, "valid", 1, None)
    pairs = discover(tmp_path, split="valid", track="realworld")
    assert len(scenes) == len(pairs) == 2
    for scene, pair in zip(scenes, pairs, strict=True):
        index = int(pair.cube.stem.rsplit("_", 1)[1])
        regenerated = make_photo_scene(np.random.default_rng([3, index]), 48, 48, lights="train")
        stored = read_cube(pair.cube)[0]
        np.testing.assert_allclose(downscale(regenerated.cube, regenerated.factor), stored, atol=1e-6)
        np.testing.assert_array_equal(scene["truth"], stored.astype(np.float64))
        assert scene["labels"].shape == scene["ideal"].shape[:2] == scene["photo"].shape[:2] == (48, 48)
        assert set(np.unique(scene["labels"])) <= set(range(8)) and scene["kind"] in ("indoor", "outdoor")
    recipe_1 = tmp_path / "recipe1"
    make_synthetic_dataset(recipe_1, scenes=2, size=(16, 16), seed=3, valid_fraction=0.5, camera=None)
    with pytest.raises(SystemExit, match="not a recipe-2 set"):
        _scenes(recipe_1, "valid", 1, None)


def test_light_bounds_routes_each_scene_to_its_kinds_map(tmp_path):
    """tools.light_bounds on a recipe-1 set: the kinds come from synth.json, the true-kind route applies exactly the
    map of each scene's kind, and a posterior sure of the true kind gives the true-kind scores, hard and soft."""
    make_synthetic_dataset(tmp_path / "s", scenes=8, size=(24, 24), seed=3, camera=None, valid_fraction=0.5)
    scenes = load_scenes(tmp_path / "s", "valid")
    assert scenes.rgb.shape == (4, 24, 24, 3) and scenes.cube.shape == (4, 24, 24, 31)
    kinds = [LIGHT_FAMILIES.index(light_family(f["illuminant"])) for f in _synth_files(tmp_path / "s", "valid")]
    assert scenes.kind.tolist() == kinds
    rng = np.random.default_rng(0)
    one_map, kind_maps = rng.uniform(0, 0.2, (6, 31)), [rng.uniform(0, 0.2, (6, 31)) for _ in LIGHT_FAMILIES]
    sure = np.eye(len(LIGHT_FAMILIES))[scenes.kind]
    result = score_routes(scenes, one_map, kind_maps, {"oracle": sure})
    scores = result["scores"]
    assert scores["oracle, hard"] == pytest.approx(scores["true kind"])
    assert scores["oracle, soft"] == pytest.approx(scores["true kind"])
    assert scores["true kind"] != pytest.approx(scores["one map"]) and result["accuracy"] == {"oracle": 1.0}
    first = scenes.rgb[0].astype(np.float64)
    expected = mrae(apply_map(first, kind_maps[scenes.kind[0]], 2), scenes.cube[0].astype(np.float64))
    alone = score_routes(subset(scenes, np.arange(4) == 0), one_map, kind_maps, {})["scores"]["true kind"]
    assert alone[0] == pytest.approx(expected)


def test_light_bounds_reject_option_and_wrong_kind_routes(tmp_path):
    """A sure posterior routes like the true kind; an unsure one falls back to one map; ``wrong kind`` is the mean
    of the other kinds' maps' scores."""
    make_synthetic_dataset(tmp_path / "s", scenes=4, size=(16, 16), seed=5, camera=None, valid_fraction=0.5)
    scenes = load_scenes(tmp_path / "s", "valid")
    rng = np.random.default_rng(1)
    one_map, kind_maps = rng.uniform(0, 0.2, (6, 31)), [rng.uniform(0, 0.2, (6, 31)) for _ in LIGHT_FAMILIES]
    kinds = len(LIGHT_FAMILIES)
    posteriors = {"sure": np.eye(kinds)[scenes.kind], "unsure": np.full((len(scenes.kind), kinds), 1 / kinds)}
    scores = score_routes(scenes, one_map, kind_maps, posteriors)["scores"]
    assert scores["sure, sure ≥ 0.9"] == pytest.approx(scores["true kind"])
    assert scores["unsure, sure ≥ 0.7"] == pytest.approx(scores["one map"])
    first = scenes.rgb[0].astype(np.float64), scenes.cube[0].astype(np.float64)
    others = [k for k in range(kinds) if k != scenes.kind[0]]
    expected = np.mean([mrae(apply_map(first[0], kind_maps[k], 2), first[1]) for k in others])
    alone = score_routes(subset(scenes, np.arange(len(scenes.kind)) == 0), one_map, kind_maps, {})["scores"]
    assert alone["wrong kind"][0] == pytest.approx(expected)


def test_light_bounds_pixel_classifier_pools_evidence_from_chroma():
    """Scenes whose kind shows only in their pixels' chroma (noisy tints) are told apart by the pooled per-pixel
    evidence, with a proper posterior per image."""
    rng = np.random.default_rng(0)
    tints = np.array([[1.0, 1.0, 1.0], [1.6, 1.0, 0.5], [0.8, 1.0, 1.3], [1.2, 1.0, 1.2]])
    kind = np.arange(48) % 4
    rgb = rng.uniform(0.05, 0.5, (48, 16, 16, 1)) * tints[kind][:, None, None] * rng.uniform(0.8, 1.2, (48, 16, 16, 3))
    scenes = Scenes(rgb.astype(np.float32), np.zeros((48, 16, 16, 31), np.float32), kind)
    posterior = train_pixel_classifier(subset(scenes, np.arange(48) < 40), epochs=60)(scenes.rgb[40:])
    assert posterior.shape == (8, 4) and np.allclose(posterior.sum(1), 1.0)
    assert (posterior.argmax(1) == kind[40:]).all()


def test_light_twins_a_smooth_light_is_its_own_twin_and_a_tube_is_metameric_to_one():
    """Daylight's twin is itself (no gap, no change); FL2's is a blackbody near 3700 K that moves most measured
    reflectances' 8-bit RGB by under two steps while the radiance it implies is tens of degrees away."""
    from hsrecon.data.families import family_library
    from hsrecon.data.spectra import daylight, light_spectrum

    name, spectrum, gap = twin_of(daylight(6500))
    assert name == "D6500K" and gap == pytest.approx(0.0, abs=1e-9)
    reflectances = np.clip(family_library().spectra[::25], 0.0, 1.0)
    same = compare(reflectances, spectrum, spectrum)
    assert np.allclose(same["steps"], 0) and np.allclose(same["mrae"], 0) and np.allclose(same["sam"], 0, atol=1e-3)
    name, twin, gap = twin_of(light_spectrum("FL2"))
    assert name.startswith("BB") and 3500 <= float(name[2:-1]) <= 3900 and gap < 0.02
    tube = compare(reflectances, light_spectrum("FL2"), twin)
    assert np.median(tube["steps"]) < 2 and np.median(tube["sam"]) > 20
    assert ("train", "fluorescent", "FL2") in lamps() and not any(kind == "incandescent" for _, kind, _ in lamps())


def _synth_files(root, split):
    import json

    return [f for f in json.loads((root / "synth.json").read_text())["files"] if f["split"] == split]


def _ceiling_scenes(rng: np.random.Generator) -> Scenes:
    """Four 8×8 scenes: 0 and 1 (kind 0) the same pixels, 1 shuffled at half the exposure; 2 (kind 0) the same
    chromaticities as 0 with other spectra; 3 alone in kind 1."""
    rgb = rng.uniform(0.05, 0.6, (64, 3))
    cube = rng.uniform(0.01, 0.5, (64, 31))
    order = rng.permutation(64)
    rgbs = [rgb, 0.5 * rgb[order], 2.0 * rgb, rng.uniform(0.05, 0.6, (64, 3))]
    cubes = [cube, 0.5 * cube[order], rng.uniform(0.01, 0.5, (64, 31)), rng.uniform(0.01, 0.5, (64, 31))]
    return Scenes(
        np.stack([r.reshape(8, 8, 3) for r in rgbs]).astype(np.float32),
        np.stack([c.reshape(8, 8, 31) for c in cubes]).astype(np.float32),
        np.array([0, 0, 0, 1]),
    )


def test_heldout_ceiling_draws_on_the_other_scenes_of_the_same_light_only():
    """The leave-one-out map finds a scene's pixels in another scene of its light (exposure-invariant) and never
    in the scene itself; a scene alone in its kind of light has no ceiling."""
    scenes = _ceiling_scenes(np.random.default_rng(0))
    without_2 = Scenes(scenes.rgb[:2], scenes.cube[:2], scenes.kind[:2])
    exact = leave_one_out(without_2, 0, k=1, step=1)
    for name in ("k-NN mean", "k-NN weighted median"):
        np.testing.assert_allclose(exact[name], scenes.cube[0], rtol=1e-5)
    # scene 2 has scene 0's chromaticities (at twice the exposure) and other spectra: with scene 1 also there,
    # the nearest neighbours of scene 2's pixels are scene 0's and 1's, never scene 2's own
    twos = leave_one_out(scenes, 2, k=2, step=1)["k-NN mean"]
    np.testing.assert_allclose(twos, 2.0 * scenes.cube[0], rtol=1e-5)
    assert leave_one_out(scenes, 3, k=1, step=1) is None


def test_heldout_ceiling_scores_and_table():
    """A scene with no other of its light keeps rpr2's scores in the ceilings' rows; the table's ratio row is
    each kind's mean over rpr2's."""
    scenes = _ceiling_scenes(np.random.default_rng(1))
    one_map = np.random.default_rng(2).uniform(0, 0.2, (6, 31))
    scores = score_set(scenes, one_map, k=1)
    assert scores["rpr2"].shape == (4, 2)
    np.testing.assert_array_equal(scores["k-NN mean"][3], scores["rpr2"][3])
    base = apply_map(scenes.rgb[0].astype(np.float64), one_map, 2)
    assert scores["rpr2"][0, 0] == pytest.approx(mrae(base, scenes.cube[0].astype(np.float64)))
    made_up = {"rpr2": np.array([[0.4, 10.0], [0.2, 20.0]]), "k-NN mean": np.array([[0.2, 5.0], [0.2, 10.0]])}
    table = ceiling_markdown(made_up, np.array([0, 1]))
    lines = table.splitlines()
    assert lines[0] == f"| method | {LIGHT_FAMILIES[0]} (1) | {LIGHT_FAMILIES[1]} (1) | all scenes |"
    assert lines[3] == "| k-NN mean | 0.200 / 5.0° | 0.200 / 10.0° | 0.200 / 7.5° |"
    assert lines[4] == "| k-NN mean ÷ rpr2 | 0.50× / 0.50× | 1.00× / 0.50× | 0.67× / 0.50× |"
