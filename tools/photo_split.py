"""Score networks and per-pixel maps on a photo split with scale-invariant scores, per light.

A photo records no absolute radiance, so every method is scored after **one gain per image**: MRAE after the
gain that minimises it (a weighted median), RMSE after the least-squares gain; SAM needs no gain. The per-pixel
maps are fitted on the dataset's training split, on the photos decoded to clean space as the default weights
see them (``hsrecon eval --baseline linear-decoded``): a 3→31 least-squares map and one fitted to minimise MRAE.
Networks are run as ``convert`` runs them (blended windows). Run from the repository root::

    python -m tools.photo_split heldout --weights photo --weights camera-l2 --weights ntire2020-clean

It prints one markdown table (mean and median over images) and the mean MRAE / SAM per kind of light.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np

from hsrecon.baselines import fit_mrae_map
from hsrecon.data import discover
from hsrecon.data.ntire import Pair
from hsrecon.inputs import make_input_transform, network_space
from hsrecon.io import read_cube
from hsrecon.io.rgb import read_rgb
from hsrecon.metrics import gain_scores as metric_gain_scores
from hsrecon.metrics import sam

Method = Callable[[Pair], np.ndarray]  # a pair → the H×W×31 prediction


def gain_scores(pred: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    scores = metric_gain_scores(pred, gt)
    return {"mrae_g": scores.mrae_gain_mrae, "rmse_g": scores.rmse_gain_ls, "sam": sam(pred, gt)}


def _decoded(pair: Pair) -> np.ndarray:
    image = read_rgb(pair.rgb)
    return np.asarray(make_input_transform(image, "srgb")(image.pixels), dtype=np.float64)


def _training_pixels(pairs: list[Pair], step: int) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for pair in pairs:
        rgb = _decoded(pair)[::step, ::step]
        cube = read_cube(pair.cube)[0][::step, ::step]
        xs.append(rgb.reshape(-1, 3))
        ys.append(cube.reshape(-1, cube.shape[-1]).astype(np.float64))
    return np.concatenate(xs), np.concatenate(ys)


def per_pixel_methods(train: list[Pair], step: int, knn: int) -> dict[str, Method]:
    from tools.per_pixel_bounds import knn_predictors

    x, y = _training_pixels(train, step)
    least_squares = np.linalg.lstsq(x, y, rcond=None)[0]
    relative = fit_mrae_map(x, y, least_squares)
    methods: dict[str, Method] = {
        "3→31 LS map, decoded sRGB": lambda pair: _decoded(pair) @ least_squares,
        "3→31 MRAE-fitted map, decoded sRGB": lambda pair: _decoded(pair) @ relative,
    }
    if knn:
        for name, predict in knn_predictors(x, y, knn).items():
            methods[f"{name}, decoded sRGB"] = lambda pair, predict=predict: _per_pixel(pair, predict)
    return methods


def _per_pixel(pair: Pair, predict: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    rgb = _decoded(pair)
    return predict(rgb.reshape(-1, 3)).reshape(*rgb.shape[:2], -1)


def network_method(spec: str) -> Method:
    from hsrecon.pipeline import reconstruct
    from hsrecon.weights import load_weights

    weights = load_weights(spec)
    model = weights.build()
    space, _ = network_space(weights.meta.input_space, "srgb")

    def run(pair: Pair) -> np.ndarray:
        return reconstruct(read_rgb(pair.rgb).pixels, model, input_space=space, window=weights.meta.window_size)

    return run


def light_family(name: str) -> str:
    if name.startswith("D") and name.endswith("K"):
        return "daylight"
    if name.startswith("BB") or name in ("A", "60 A/W (Soft White)"):
        return "incandescent"
    if name.startswith("FL"):
        return "fluorescent"
    return "LED"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--weights", action="append", default=[], help="bundled name or file, repeatable")
    parser.add_argument("--step", type=int, default=4, help="training pixel grid step for the per-pixel fits")
    parser.add_argument("--knn", type=int, default=0, help="also k nearest training pixels (k), 0 for none")
    parser.add_argument("--json", type=Path, help="write every image's scores here")
    args = parser.parse_args()

    train = discover(args.data, split="train", track="realworld")
    valid = discover(args.data, split="valid", track="realworld")
    facts = {f["name"]: f for f in json.loads((args.data / "synth.json").read_text())["files"]}
    methods = per_pixel_methods(train, args.step, args.knn) | {spec: network_method(spec) for spec in args.weights}
    results: dict[str, list[dict]] = defaultdict(list)
    for pair in valid:
        truth = read_cube(pair.cube)[0]
        fact = facts[pair.cube.stem]
        for name, method in methods.items():
            scores = gain_scores(method(pair), truth)
            results[name].append({"image": pair.cube.stem, "light": light_family(fact["illuminant"]), **scores})
    print(f"{len(valid)} test images, per-pixel maps fitted on {len(train)} training images\n")
    print("| method | MRAE after gain (mean) | median | RMSE after gain | SAM ° (mean) | median |")
    print("|---|---|---|---|---|---|")
    for name, rows in results.items():
        m, r, s = (np.array([row[k] for row in rows]) for k in ("mrae_g", "rmse_g", "sam"))
        print(
            f"| {name} | {m.mean():.4f} | {np.median(m):.4f} | {r.mean():.4f} | {s.mean():.2f} | {np.median(s):.2f} |"
        )
    families = sorted({row["light"] for rows in results.values() for row in rows})
    print("\n| MRAE after gain / SAM ° | " + " | ".join(families) + " |")
    print("|---|" + "---|" * len(families))
    for name, rows in results.items():
        cells = []
        for family in families:
            picked = [row for row in rows if row["light"] == family]
            cells.append(f"{np.mean([r['mrae_g'] for r in picked]):.3f} / {np.mean([r['sam'] for r in picked]):.1f}"
                         f" ({len(picked)})")  # fmt: skip
        print(f"| {name} | " + " | ".join(cells) + " |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
