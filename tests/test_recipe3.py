"""Recipe 3 (training data v3): material families, and pools that keep held-out things out of training.

Its promises (``docs/data.md``): every spectrum is a measured table's, labelled with its family; a training
scene holds only training families and never the held-out generator, lights or camera; a held-out scene's
label map says which pixels are of held-out families; a seed fixes every file.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from test_cli import assert_clean_failure, hsrecon

from hsrecon.data import discover
from hsrecon.data.camera import CANON_5D2
from hsrecon.data.families import FAMILIES, HELDOUT_FAMILIES, TRAIN_FAMILIES, family_library, luxpy_folder
from hsrecon.data.recipe3 import GENERATORS, family_slots, make_recipe3_scene
from hsrecon.data.scenes import INDOOR_LIGHTS
from hsrecon.data.synth import LABEL_FOLDERS, make_synthetic_dataset
from hsrecon.io import read_cube
from hsrecon.physics import quantize_ntire2020_clean, render_ntire2020_clean

TRAIN_LABELS = {FAMILIES.index(name) + 1 for name in TRAIN_FAMILIES}
HELDOUT_LABELS = {FAMILIES.index(name) + 1 for name in HELDOUT_FAMILIES}


def test_families_are_the_measured_tables_each_counted():
    counts = family_library(with_luxpy=False).counts()
    # earthlib 1.1.0's LEVEL_3 classes, and colour-science's charts, 190 patches, CIE 1995 and CQS 9.0 samples
    assert counts == {
        "vegetation": 2000, "soil": 4233, "wood": 125, "mineral": 371, "print": 268, "paint": 76,
        "roofing": 454, "test-colours": 29,
    }  # fmt: skip
    library = family_library(with_luxpy=False)
    assert 0 <= library.spectra.min() and library.spectra.max() <= 1.05  # three RAW to ACES patches: brighteners
    assert not set(TRAIN_FAMILIES) & set(HELDOUT_FAMILIES)


def test_luxpy_families_are_read_when_installed():
    if luxpy_folder() is None:
        pytest.skip("luxpy (the GPL-3 held-out families) is not installed")
    counts = family_library().counts()
    assert counts["colour-system"] == 1269 + 10  # the Munsell chips and the CES of that category
    assert sum(counts[name] for name in ("nature", "skin", "textile", "plastic", "printed")) == 99 - 10 - 10
    assert counts["ces-paint"] == 10 and counts["paint"] == 76  # the GPL-3 paints never join training's


def test_slots_draw_training_families_in_training_and_held_out_ones_in_their_places():
    library = family_library()
    train = family_slots("train", library)
    heldout = family_slots("heldout", library)
    assert {family for families in train.values() for family in families} <= set(TRAIN_FAMILIES)
    for slot in ("roof", "dyed"):
        assert heldout[slot] and set(heldout[slot]) <= set(HELDOUT_FAMILIES)
    assert heldout["paint"] == train["paint"] == ("paint",)  # walls: what training knows
    with pytest.raises(ValueError, match="train or heldout"):
        family_slots("test", library)


def _scene_labels(pools: dict[str, str], count: int = 6) -> list:
    return [make_recipe3_scene(np.random.default_rng([7, i]), 32, 32, pools) for i in range(count)]


def test_a_training_scene_holds_training_families_and_generators_only():
    pools = dict.fromkeys(("families", "generators", "lights"), "train")
    for scene in _scene_labels(pools):
        assert set(np.unique(scene.families)) <= TRAIN_LABELS
        assert scene.generator in GENERATORS["train"]
        assert scene.cube.shape == (32 * scene.factor, 32 * scene.factor, 31)


def test_held_out_family_scenes_label_their_held_out_pixels():
    pools = {"families": "heldout", "generators": "train", "lights": "train"}
    labels = np.concatenate([scene.families.ravel() for scene in _scene_labels(pools, 8)])
    assert np.isin(labels, list(HELDOUT_LABELS)).mean() > 0.05  # objects and roofs
    assert np.isin(labels, list(TRAIN_LABELS | HELDOUT_LABELS)).all()


def test_the_held_out_generator_is_a_mosaic_under_held_out_lamps():
    pools = {"families": "train", "generators": "heldout", "lights": "heldout"}
    held_lamps = {name for names in INDOOR_LIGHTS["heldout"].values() for name in names}
    for scene in _scene_labels(pools):
        assert scene.generator == "mosaic" and scene.facts["regions"] >= 2
        assert scene.lights[0] in held_lamps or scene.lights[0].startswith("D")


@pytest.fixture(scope="module")
def recipe_3_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("recipe3")
    summary = make_synthetic_dataset(
        root, scenes=6, size=(32, 32), seed=4, valid_fraction=0.5, recipe=3,
        valid_families="heldout", valid_sensors="heldout",
    )  # fmt: skip
    return root, summary


def test_recipe_3_writes_both_tracks_and_family_labels(recipe_3_set):
    root, summary = recipe_3_set
    assert summary["recipe"] == 3 and summary["families"] == list(FAMILIES)
    assert summary["pools"]["valid"] == {"sensors": "heldout", "lights": "train", "families": "heldout",
                                         "generators": "train"}  # fmt: skip
    files = {f["name"]: f for f in summary["files"]}
    seen = {"train": set(), "valid": set()}
    for split in ("train", "valid"):
        clean = discover(root, split=split, track="clean")
        photos = discover(root, split=split, track="realworld")
        assert len(clean) == len(photos) == 3
        for pair in clean:
            cube = read_cube(pair.cube)[0]
            np.testing.assert_allclose(cube * 4095.0, np.round(cube * 4095.0), atol=1e-3)  # 12-bit steps: no 1e-9
            rgb = np.asarray(Image.open(pair.rgb))
            np.testing.assert_array_equal(rgb, quantize_ntire2020_clean(render_ntire2020_clean(cube)))
            labels = np.asarray(Image.open(root / LABEL_FOLDERS[split] / f"{pair.cube.stem}_families.png"))
            assert labels.shape == cube.shape[:2]
            seen[split] |= set(np.unique(labels).tolist())
            assert (files[pair.cube.stem]["sensor"] == CANON_5D2) == (split == "valid")
    assert seen["train"] <= TRAIN_LABELS
    assert seen["valid"] & HELDOUT_LABELS


def test_recipe_3_same_seed_same_files(recipe_3_set, tmp_path):
    root, _ = recipe_3_set
    make_synthetic_dataset(
        tmp_path, scenes=6, size=(32, 32), seed=4, valid_fraction=0.5, recipe=3,
        valid_families="heldout", valid_sensors="heldout", only="valid",
    )  # fmt: skip
    for folder in ("Validation_Clean", "Validation_RealWorld", LABEL_FOLDERS["valid"]):
        for path in sorted((root / folder).iterdir()):
            assert (tmp_path / folder / path.name).read_bytes() == path.read_bytes()
    summary = json.loads((tmp_path / "synth.json").read_text())
    assert summary["family_pools"]["train"] == list(TRAIN_FAMILIES)


def test_held_out_families_need_recipe_3(tmp_path):
    assert_clean_failure(
        hsrecon("synth", "-o", str(tmp_path / "x"), "--recipe", "2", "--valid-families", "heldout"), 2, "recipe 3"
    )
    assert not (tmp_path / "x").exists()
