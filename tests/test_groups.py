"""``eval --group-by``: scores pooled per material family (per pixel) and per kind of light (per image)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from test_cli import assert_clean_failure, hsrecon

from hsrecon.evaluate import Rows
from hsrecon.groups import HELD_OUT, TRAINING, GroupedScores, GroupingError
from hsrecon.metrics import mrae, rmse, sam


def _dataset(root, labels: dict[str, np.ndarray], lights: dict[str, str]) -> None:
    (root / "Validation_Families").mkdir(parents=True)
    for name, label in labels.items():
        Image.fromarray(label.astype(np.uint8), mode="L").save(root / "Validation_Families" / f"{name}_families.png")
    summary = {
        "families": ["a", "b", "c"],
        "family_pools": {"train": ["a"], "heldout": ["b", "c"]},
        "files": [{"name": name, "illuminant": light} for name, light in lights.items()],
    }
    (root / "synth.json").write_text(json.dumps(summary))


def test_groups_pool_exactly_their_pixels(tmp_path, rng):
    labels = {"s1": rng.integers(0, 4, size=(6, 5)), "s2": np.full((6, 5), 2)}
    _dataset(tmp_path, labels, {"s1": "D6500K", "s2": "FL2"})
    groups = GroupedScores(tmp_path, "valid", ("family", "light"))
    cubes = {}
    for name in labels:
        truth = rng.uniform(0.05, 1, size=(6, 5, 31))
        pred = truth * rng.uniform(0.5, 1.5, size=truth.shape)
        cubes[name] = pred, truth
        for y0 in (0, 2, 4):  # rows arrive in blocks, as convert streams them
            groups(Rows(name, "net", y0, pred[y0 : y0 + 2], truth, np.arange(31)))
    summary = groups.summary()

    for label, family in ((1, "a"), (2, "b"), (3, "c")):
        pred = np.concatenate([cubes[n][0][labels[n] == label] for n in labels])
        truth = np.concatenate([cubes[n][1][labels[n] == label] for n in labels])
        entry = summary["family"][family]["net"]
        assert entry["pixels"] == len(truth)
        assert entry["mrae"] == pytest.approx(mrae(pred[None], truth[None]), rel=1e-12)
        assert entry["rmse"] == pytest.approx(rmse(pred[None], truth[None]), rel=1e-12)
        assert entry["sam"] == pytest.approx(sam(pred[None], truth[None]), rel=1e-12)
    held = summary["family"][HELD_OUT]["net"]
    assert held["pixels"] == sum(int(np.isin(label, (2, 3)).sum()) for label in labels.values())
    assert summary["family"][TRAINING]["net"]["pixels"] == int((labels["s1"] == 1).sum())
    assert "0" not in summary["family"]  # unlabelled pixels are in no family
    assert summary["light"]["daylight"]["net"]["pixels"] == 30 and summary["light"]["fluorescent"]["net"]["images"] == 1
    assert summary["light"]["fluorescent"]["net"]["mrae"] == pytest.approx(mrae(*cubes["s2"]), rel=1e-12)


def test_a_dataset_without_labels_is_one_line(tmp_path):
    with pytest.raises(GroupingError, match="needs family labels"):
        GroupedScores(tmp_path, "valid", ("family",))
    (tmp_path / "synth.json").write_text("{not json")
    with pytest.raises(GroupingError, match="unreadable"):
        GroupedScores(tmp_path, "valid", ("light",))


def test_eval_group_by_reports_families_and_lights(tmp_path):
    data = tmp_path / "set"
    made = hsrecon("synth", "-o", str(data), "--recipe", "3", "--scenes", "4", "--size", "32", "--seed", "2",
                   "--valid-fraction", "0.5", "--valid-families", "heldout", "-q")  # fmt: skip
    assert made.returncode == 0, made.stderr
    result = hsrecon("eval", "--data", str(data), "--group-by", "family", "--group-by", "light", "--group-by",
                     "family-light", "--plausible", "--json", str(tmp_path / "r.json"), "-q")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "by family" in result.stdout and "by light" in result.stdout
    report = json.loads((tmp_path / "r.json").read_text())
    labels = [np.asarray(Image.open(p)) for p in sorted((data / "Validation_Families").glob("*.png"))]
    legend = json.loads((data / "synth.json").read_text())["families"]
    heldout = json.loads((data / "synth.json").read_text())["family_pools"]["heldout"]
    expected = sum(int(np.isin(label, [legend.index(f) + 1 for f in heldout]).sum()) for label in labels)
    for method in ("network", "network+plausible"):
        assert report["groups"]["family"][HELD_OUT][method]["pixels"] == expected
    crossed = report["groups"]["family-light"]
    assert "by family-light" in result.stdout
    assert sum(v["network"]["pixels"] for k, v in crossed.items() if k.startswith(f"{HELD_OUT} / ")) == expected
    images = sum(entry["network"]["images"] for entry in report["groups"]["light"].values())
    assert images == report["methods"]["network"]["summary"]["images"] == 2
    assert_clean_failure(hsrecon("eval", "--data", str(data), "--group-by", "colour"), 2, "--group-by 'colour'")


def test_family_light_crosses_the_two(tmp_path, rng):
    """'held-out families / daylight' pools exactly the held-out pixels of the daylight scenes."""
    labels = {"s1": rng.integers(0, 4, size=(6, 5)), "s2": rng.integers(1, 4, size=(6, 5)), "s3": np.full((6, 5), 1)}
    _dataset(tmp_path, labels, {"s1": "D6500K", "s2": "FL2", "s3": "D5000K"})
    groups = GroupedScores(tmp_path, "valid", ("family-light",))
    cubes = {}
    for name in labels:
        truth = rng.uniform(0.05, 1, size=(6, 5, 31))
        cubes[name] = truth * rng.uniform(0.5, 1.5, size=truth.shape), truth
        groups(Rows(name, "net", 0, cubes[name][0], truth, np.arange(31)))
    summary = groups.summary()

    assert list(summary) == ["family-light"]  # the crossed grouping alone: no family or light table
    held_day = summary["family-light"][f"{HELD_OUT} / daylight"]["net"]
    pred = cubes["s1"][0][np.isin(labels["s1"], (2, 3))]
    truth = cubes["s1"][1][np.isin(labels["s1"], (2, 3))]
    assert held_day["pixels"] == len(truth) and held_day["images"] == 1  # s3 holds no held-out family
    assert held_day["mrae"] == pytest.approx(mrae(pred[None], truth[None]), rel=1e-12)
    assert held_day["sam"] == pytest.approx(sam(pred[None], truth[None]), rel=1e-12)
    assert summary["family-light"][f"{TRAINING} / daylight"]["net"]["images"] == 2
    assert summary["family-light"]["b / fluorescent"]["net"]["pixels"] == int((labels["s2"] == 2).sum())
    assert ("a / fluorescent" in summary["family-light"]) == bool((labels["s2"] == 1).any())
    with pytest.raises(GroupingError, match="family-light needs family labels"):
        GroupedScores(tmp_path / "none", "valid", ("family-light",))
