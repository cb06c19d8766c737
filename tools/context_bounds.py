"""How much a per-pixel map would gain if it knew what only context can tell: the light, the material.

Why: a network beats a per-pixel 3→31 map only where a pixel's surroundings carry information its RGB does not.
On a recipe-2 set (``hsrecon synth --recipe 2``) the scenes can be regenerated from their seed, so the kind of
light and the material class of every pixel are known. This fits least-squares maps on decoded photos (as
``hsrecon eval --baseline linear-decoded``) once per group — nothing, scene kind, material class, kind of light,
light and class — and on ideal photos (perfect white balance, no noise, clipping or tone curve), and scores each
on the test set's validation photos after one best gain per image. Run from the repository root::

    python -m tools.context_bounds --train photo2k --test dev_sensor --train-scenes 600

and paste the printed markdown (mean MRAE after gain and SAM; MRAE after gain per kind of light).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from hsrecon.data import discover
from hsrecon.data.photo import downscale, draw_photo_settings, gains_for
from hsrecon.data.scenes import make_photo_scene
from hsrecon.data.spectra import LIGHT_FAMILIES, light_family
from hsrecon.inputs import make_input_transform, srgb_to_clean_matrix
from hsrecon.io import read_cube
from hsrecon.io.rgb import read_rgb
from hsrecon.metrics import gain_scores, sam
from tools.per_pixel_bounds import knn_predictors

Key = Callable[[dict, int], object]  # (scene, class index) → the group whose map applies


def _scenes(root: Path, split: str, step: int, limit: int | None) -> list[dict]:
    """Decoded photo, truth, labels, light and ideal photo of each scene of ``split``, on a ``step`` grid."""
    summary = json.loads((root / "synth.json").read_text())
    if summary.get("recipe") != 2:
        raise SystemExit(f"{root}: not a recipe-2 set (hsrecon synth --recipe 2)")
    pools = summary["pools"][split]
    height, width = summary["size"]
    grid = (slice(None, None, step), slice(None, None, step))
    out = []
    for pair in discover(root, split=split, track="realworld")[:limit]:
        index = int(pair.cube.stem.rsplit("_", 1)[1])
        scene = make_photo_scene(np.random.default_rng([summary["seed"], index]), height, width, lights=pools["lights"])
        settings = draw_photo_settings(np.random.default_rng([summary["seed"], index, 1]), pools["sensors"])
        cube = downscale(scene.cube, scene.factor)
        balanced = (cube @ settings.sensitivities) * gains_for(scene.white @ settings.sensitivities)
        ideal = balanced @ settings.colour_matrix.T @ srgb_to_clean_matrix().T
        image = read_rgb(pair.rgb)
        decoded = np.asarray(make_input_transform(image, "srgb")(image.pixels), dtype=np.float64)
        out.append({
            "photo": decoded[grid], "ideal": ideal[grid], "truth": read_cube(pair.cube)[0][grid].astype(np.float64),
            "labels": scene.labels[:: scene.factor, :: scene.factor][grid], "light": light_family(scene.lights[0]),
            "kind": scene.kind,
        })  # fmt: skip
    return out


def _fit(train: list[dict], key: Key, source: str) -> dict[object, np.ndarray]:
    groups: dict[object, tuple[list, list]] = {}
    for scene in train:
        for label in np.unique(scene["labels"]):
            mask = scene["labels"] == label
            xs, ys = groups.setdefault(key(scene, int(label)), ([], []))
            xs.append(scene[source][mask])
            ys.append(scene["truth"][mask])
    return {k: np.linalg.lstsq(np.concatenate(x), np.concatenate(y), rcond=None)[0] for k, (x, y) in groups.items()}


def _score(test: list[dict], predict: Callable[[dict], np.ndarray]) -> list[tuple[float, float, str]]:
    rows = []
    for scene in test:
        prediction = predict(scene)
        rows.append((gain_scores(prediction, scene["truth"]).mrae_gain_mrae, sam(prediction, scene["truth"]),
                     scene["light"]))  # fmt: skip
    return rows


def grouped_maps(train: list[dict], test: list[dict], key: Key, source: str = "photo") -> list[tuple]:
    """Per-image (MRAE after gain, SAM, light) of least-squares maps fitted per group of ``key``."""
    maps, fallback = _fit(train, key, source), _fit(train, lambda scene, label: 0, source)[0]

    def predict(scene: dict) -> np.ndarray:
        out = np.empty_like(scene["truth"])
        for label in np.unique(scene["labels"]):
            mask = scene["labels"] == label
            out[mask] = scene[source][mask] @ maps.get(key(scene, int(label)), fallback)
        return out

    return _score(test, predict)


def _row(name: str, rows: list[tuple], lights: list[str]) -> str:
    per_light = [np.mean([r[0] for r in rows if r[2] == light]) for light in lights]
    cells = [f"{np.mean([r[0] for r in rows]):.3f}", f"{np.mean([r[1] for r in rows]):.1f}"]
    return f"| {name} | " + " | ".join(cells + [f"{v:.3f}" for v in per_light]) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=Path, required=True, help="recipe-2 set whose training split fits the maps")
    parser.add_argument("--test", type=Path, required=True, help="recipe-2 set whose validation split is scored")
    parser.add_argument("--train-scenes", type=int, default=600)
    parser.add_argument("--step", type=int, default=4, help="training pixel grid step")
    parser.add_argument("-k", type=int, default=64)
    args = parser.parse_args()

    train = _scenes(args.train, "train", args.step, args.train_scenes)
    test = _scenes(args.test, "valid", 1, None)
    lights = [light for light in LIGHT_FAMILIES if any(scene["light"] == light for scene in test)]
    counts = [sum(scene["light"] == light for scene in test) for light in lights]
    print(f"maps fitted on {len(train)} training scenes, scored on {len(test)} test photos\n")
    print("| per-pixel least-squares map fitted per … | MRAE after gain | SAM ° | "
          + " | ".join(f"{light} ({n})" for light, n in zip(lights, counts, strict=True)) + " |")  # fmt: skip
    print("|---|" + "---:|" * (2 + len(lights)))
    variants: dict[str, Key] = {
        "nothing (one map)": lambda scene, label: 0,
        "scene kind": lambda scene, label: scene["kind"],
        "material class": lambda scene, label: label,
        "kind of light": lambda scene, label: scene["light"],
        "kind of light and material class": lambda scene, label: (scene["light"], label),
    }
    for name, key in variants.items():
        print(_row(name, grouped_maps(train, test, key), lights), flush=True)
    print(_row("nothing, on ideal photos", grouped_maps(train, test, lambda s, c: 0, "ideal"), lights))
    x = np.concatenate([scene["photo"].reshape(-1, 3) for scene in train])
    y = np.concatenate([scene["truth"].reshape(-1, 31) for scene in train])
    knn = knn_predictors(x[::4], y[::4], args.k)[f"{args.k}-NN mean"]
    rows = _score(test, lambda scene: knn(scene["photo"].reshape(-1, 3)).reshape(scene["truth"].shape))
    print(_row(f"nothing, {args.k} nearest training pixels", rows, lights))


if __name__ == "__main__":
    main()
