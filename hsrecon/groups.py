"""Scores grouped by what a dataset's labels say: the material family of each pixel, the light of each image.

"Does the model work on materials and lights it never saw?" should be one command. Recipe 3 of ``hsrecon synth``
(:mod:`hsrecon.data.recipe3`) labels every pixel with its material family (``*_Families/NAME_families.png``,
legend in ``synth.json``) and records every scene's lights; :class:`GroupedScores` watches the reconstructed
rows go past (``hsrecon.evaluate``'s ``on_rows``) and pools each group's pixels:

- ``family``: every family present, and two aggregates when ``synth.json`` names the pools: ``held-out
  families`` and ``training families``;
- ``light``: the kind of each image's main light (daylight, incandescent, fluorescent, LED;
  :func:`hsrecon.data.spectra.light_family`);
- ``family-light``: the two crossed, ``FAMILY / LIGHT`` (the aggregates too): "held-out families / daylight"
  is the synthetic cut closest to a check on real objects under daylight and tungsten, which a mean over
  lamp-lit scenes hides.

A group's scores pool its pixels over all images (MRAE over truth ≠ 0, RMSE, SAM: :class:`PointwiseSums`), so a
family seen in a corner of many images counts by its pixels, not by its images; the per-image means of
``hsrecon eval``'s summary remain the NTIRE convention.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from hsrecon.metrics import PointwiseSums

__all__ = ["GROUPINGS", "HELD_OUT", "TRAINING", "GroupedScores", "GroupingError", "main_lights"]

GROUPINGS = ("family", "light", "family-light")
_NEEDS = {"family": ("family",), "light": ("light",), "family-light": ("family", "light")}
"""The labels each grouping reads: a family label map per image, the main light per scene."""
_CROSSED = " / "  # "held-out families / daylight": a family-light group's name
HELD_OUT, TRAINING = "held-out families", "training families"
_LABEL_FOLDERS = {"train": "Train_Families", "valid": "Validation_Families"}


class GroupingError(ValueError):
    """A dataset without the labels a grouping needs; one line naming what is missing."""


class GroupedScores:
    """The ``on_rows`` observer that pools each (grouping, group, method)'s pixels; :meth:`summary` reports."""

    def __init__(self, root: Path, split: str, groupings: tuple[str, ...]) -> None:
        self.root, self.split, self.groupings = Path(root), split, tuple(dict.fromkeys(groupings))
        unknown = [g for g in self.groupings if g not in GROUPINGS]
        if unknown:
            raise GroupingError(f"unknown grouping {unknown[0]!r}: choose from {', '.join(GROUPINGS)}")
        self.summary_file = _read_summary(self.root)
        self.legend: list[str] = list(self.summary_file.get("families") or [])
        pools = self.summary_file.get("family_pools") or {}
        self.heldout, self.training = set(pools.get("heldout", ())), set(pools.get("train", ()))
        self.lights = _main_lights(self.summary_file)
        for grouping in self.groupings:
            if "family" in _NEEDS[grouping] and not self.legend:
                raise GroupingError(
                    f"{self.root}: --group-by {grouping} needs family labels (hsrecon synth --recipe 3)"
                )
            if "light" in _NEEDS[grouping] and not self.lights:
                raise GroupingError(
                    f"{self.root}: --group-by {grouping} needs each scene's light (hsrecon synth's synth.json)"
                )
        self.sums: dict[tuple[str, str, str], PointwiseSums] = defaultdict(PointwiseSums)
        self.images: dict[tuple[str, str, str], set[str]] = defaultdict(set)
        self._labels: dict[str, np.ndarray | None] = {}

    def __call__(self, rows) -> None:  # rows: hsrecon.evaluate.Rows
        h = rows.pred.shape[0]
        pred = np.asarray(rows.pred, dtype=np.float64)
        truth = np.asarray(rows.truth[rows.y0 : rows.y0 + h], dtype=np.float64)
        if "light" in self.groupings and rows.image in self.lights:
            self._add(("light", self.lights[rows.image], rows.method), rows.image, pred, truth)
        crossed = "family-light" in self.groupings and rows.image in self.lights
        if "family" in self.groupings or crossed:
            labels = self._family_labels(rows.image, rows.truth.shape[:2])
            if labels is not None:
                self._add_families(rows, labels[rows.y0 : rows.y0 + h], pred, truth, crossed)

    def _add(self, key: tuple[str, str, str], image: str, pred: np.ndarray, truth: np.ndarray) -> None:
        self.sums[key].add(pred.reshape(-1, pred.shape[-1]), truth.reshape(-1, truth.shape[-1]))
        self.images[key].add(image)

    def _add_families(self, rows, labels: np.ndarray, pred: np.ndarray, truth: np.ndarray, crossed: bool) -> None:
        for label in np.unique(labels):
            if not 0 < label <= len(self.legend):
                continue
            family = self.legend[label - 1]
            where = labels == label
            targets = [family] + [name for name, pool in ((HELD_OUT, self.heldout), (TRAINING, self.training))
                                  if family in pool]  # fmt: skip
            for group in targets:
                if "family" in self.groupings:
                    self._add(("family", group, rows.method), rows.image, pred[where], truth[where])
                if crossed:
                    key = ("family-light", f"{group}{_CROSSED}{self.lights[rows.image]}", rows.method)
                    self._add(key, rows.image, pred[where], truth[where])

    def _family_labels(self, image: str, shape: tuple[int, int]) -> np.ndarray | None:
        if image not in self._labels:
            path = self.root / _LABEL_FOLDERS.get(self.split, "") / f"{image}_families.png"
            self._labels[image] = _read_labels(path, shape)
        return self._labels[image]

    def summary(self) -> dict[str, dict[str, dict[str, dict]]]:
        """{grouping: {group: {method: {mrae, rmse, sam, pixels, images}}}}, groups in a stable order."""
        out: dict[str, dict[str, dict[str, dict]]] = {grouping: {} for grouping in self.groupings}
        for (grouping, group, method), sums in sorted(self.sums.items(), key=lambda item: _order(item[0])):
            entry = sums.result() | {"images": len(self.images[(grouping, group, method)])}
            out[grouping].setdefault(group, {})[method] = entry
        return out


def _order(key: tuple[str, str, str]) -> tuple:
    grouping, group, method = key
    return grouping, group.split(_CROSSED)[0] in (HELD_OUT, TRAINING), group, method


def main_lights(root: Path) -> dict[str, str]:
    """Scene name → the kind of its main light (:data:`hsrecon.data.spectra.LIGHT_FAMILIES`), from the dataset's
    ``synth.json``; empty for a dataset without one (NTIRE's own). GroupingError when it cannot be read."""
    return _main_lights(_read_summary(Path(root)))


def _read_summary(root: Path) -> dict:
    path = root / "synth.json"
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise GroupingError(f"{path}: unreadable ({type(error).__name__})") from None


def _main_lights(summary: dict) -> dict[str, str]:
    """Scene name → the kind of its main light, from synth.json's per-scene facts."""
    from hsrecon.data.spectra import light_family

    lights = {}
    for entry in summary.get("files") or ():
        if isinstance(entry, dict) and isinstance(entry.get("name"), str) and isinstance(entry.get("illuminant"), str):
            lights[entry["name"]] = light_family(entry["illuminant"])
    return lights


def _read_labels(path: Path, shape: tuple[int, int]) -> np.ndarray | None:
    """A label map of ``shape`` pixels, or None when the image has none (scored in no family)."""
    if not path.is_file():
        return None
    from PIL import Image

    try:
        with Image.open(path) as image:
            labels = np.asarray(image.convert("L"))
    except OSError as error:
        raise GroupingError(f"{path}: unreadable label map ({error})") from None
    if labels.shape != tuple(shape):
        raise GroupingError(f"{path}: {labels.shape[0]}×{labels.shape[1]} labels for a {shape[0]}×{shape[1]} image")
    return labels
