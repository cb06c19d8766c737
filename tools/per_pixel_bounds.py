"""How far a per-pixel method gets on a dataset: linear maps fitted for L2 and for MRAE, and k-nearest neighbours.

Why: a network that beats the least-squares baseline might only be optimising a different loss, and a
dataset whose spectra are not predictable from spatial context caps every method near the best per-pixel
map. This fits, on the training split's pixels, in the input space given (``srgb``: the photos decoded as
the default weights see them; ``ntire2020-clean``: the stored values / 255):

- ``linear LS``: the 3→31 least-squares map (what ``hsrecon eval --baseline`` scores);
- ``linear MRAE``: the 3→31 map minimising mean relative absolute error (``hsrecon.baselines.fit_mrae_map``:
  iteratively reweighted least squares, 30 rounds, each band on its own; ``hsrecon eval --baseline
  linear-mrae`` scores the same fit);
- ``k-NN mean`` / ``k-NN weighted median``: the k nearest training pixels in RGB (a non-parametric per-pixel
  map, no linearity assumed); their mean minimises L2, their median weighted by 1/value minimises MRAE;

and scores each on the validation split's whole images with hsrecon's metrics. Run from the repository
root (about 2 minutes on 2 CPU cores for the 300-scene set)::

    python -m tools.per_pixel_bounds synth300 --track realworld --space srgb

and paste the printed markdown.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree

from hsrecon.baselines import fit_mrae_map
from hsrecon.data import discover
from hsrecon.data.ntire import Pair
from hsrecon.inputs import make_input_transform
from hsrecon.io import read_cube
from hsrecon.io.rgb import read_rgb
from hsrecon.metrics import score

Predict = Callable[[np.ndarray], np.ndarray]  # N×3 input → N×31 spectra


def _pixels(pair: Pair, space: str, step: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(h×w×3 input in ``space``, h×w×31 ground truth) on a ``step`` grid of one image."""
    image = read_rgb(pair.rgb)
    cube, _, _ = read_cube(pair.cube)
    rgb = np.asarray(make_input_transform(image, space)(image.pixels[::step, ::step]), dtype=np.float64)
    return rgb, cube[::step, ::step].astype(np.float64)


def weighted_median(values: np.ndarray, floor: float = 1e-6) -> np.ndarray:
    """N×k×B → N×B: per band, the median of the k values weighted by 1/value (the MRAE-optimal choice among
    them); values below ``floor`` weigh as ``floor``."""
    ordered = np.sort(values, axis=1)
    cumulative = np.cumsum(1.0 / np.maximum(ordered, floor), axis=1)
    below = (cumulative < cumulative[:, -1:, :] / 2).sum(axis=1, keepdims=True)
    return np.take_along_axis(ordered, below, axis=1)[:, 0]


def knn_predictors(x: np.ndarray, y: np.ndarray, k: int) -> dict[str, Predict]:
    tree = cKDTree(x)

    def neighbours(rgb: np.ndarray) -> np.ndarray:
        return y[tree.query(rgb, k=k)[1]]  # N×k×B

    return {
        f"{k}-NN mean": lambda rgb: neighbours(rgb).mean(axis=1),
        f"{k}-NN weighted median": lambda rgb: weighted_median(neighbours(rgb)),
    }


def score_images(pairs: Sequence[Pair], space: str, predict: Predict) -> tuple[float, float, float]:
    """(MRAE mean, MRAE median, RMSE mean) over whole images."""
    mrae, rmse = [], []
    for pair in pairs:
        rgb, truth = _pixels(pair, space)
        spectra = predict(rgb.reshape(-1, 3)).reshape(truth.shape)
        scores = score(spectra.astype(np.float32), truth.astype(np.float32))
        mrae.append(scores.mrae)
        rmse.append(scores.rmse)
    return float(np.mean(mrae)), float(np.median(mrae)), float(np.mean(rmse))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--track", default="realworld")
    parser.add_argument("--space", default="srgb", help="input space the maps see (srgb, ntire2020-clean)")
    parser.add_argument("--step", type=int, default=2, help="training pixel grid step (2: a quarter of them)")
    parser.add_argument("-k", type=int, default=64)
    args = parser.parse_args()

    train = discover(args.data, split="train", track=args.track)
    valid = discover(args.data, split="valid", track=args.track)
    samples = [_pixels(pair, args.space, args.step) for pair in train]
    x = np.concatenate([rgb.reshape(-1, 3) for rgb, _ in samples])
    y = np.concatenate([truth.reshape(-1, truth.shape[-1]) for _, truth in samples])
    least_squares = np.linalg.lstsq(x, y, rcond=None)[0]
    relative = fit_mrae_map(x, y, least_squares)
    methods: dict[str, Predict] = {
        "linear LS": lambda rgb: rgb @ least_squares,
        "linear MRAE": lambda rgb: rgb @ relative,
        **knn_predictors(x, y, args.k),
    }
    print(f"{len(x)} training pixels from {len(train)} images; {len(valid)} validation images; space {args.space}\n")
    print("| per-pixel method | MRAE mean | MRAE median | RMSE |\n|---|---|---|---|")
    for name, predict in methods.items():
        mean, median, rmse = score_images(valid, args.space, predict)
        print(f"| {name} | {mean:.3f} | {median:.3f} | {rmse:.4f} |", flush=True)


if __name__ == "__main__":
    main()
