"""Choose the windowing scheme by measurement: MRAE against ground truth first, speed second.

Scenes with ground truth: the sample scenes of ``tools/make_examples.py`` (measured reflectances, CIE
illuminants, rendered exactly as the NTIRE 2020 clean track), at the sizes given. For each scheme it
reports MRAE (mean |rec − gt| / gt over pixels with gt > 1e-3), RMSE, the seam ratio (mean |difference|
between neighbouring output pixels across window boundaries / elsewhere) and MP/s of the model+blend
stage on this machine. Run from the repository root::

    python -m benchmarks.bench_windows [--json out.json]

Schemes: the authors' own (non-overlapping 64×64 windows, edge windows zero-padded), hsrecon's blended
windows of 64 at strides 48, 32, 16, and larger windows (128, 256; their coordinate grid spans the larger
window, which the weights never saw in training).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from hsrecon.physics import quantize_ntire2020_clean, render_ntire2020_clean
from hsrecon.pipeline import stream_reconstruct
from hsrecon.weights import load_weights
from tools.make_examples import SCENES, make_scene

SCHEMES = [
    ("authors: 64, no overlap, zero-padded edges", 64, 64, True),
    ("64, stride 64 (shifted edges, no blend)", 64, 64, False),
    ("64, stride 48", 64, 48, False),
    ("64, stride 32", 64, 32, False),
    ("64, stride 16", 64, 16, False),
    ("128, stride 64", 128, 64, False),
    ("256, stride 128", 256, 128, False),
]


def authors_scheme(rgb: np.ndarray, predict, window: int = 64) -> np.ndarray:
    """The authors' test.py: non-overlapping windows, edge windows zero-padded to full size."""
    h, w = rgb.shape[:2]
    ph, pw = -(-h // window) * window, -(-w // window) * window
    padded = np.zeros((ph, pw, 3), np.float32)
    padded[:h, :w] = rgb
    out = np.zeros((ph, pw, 31), np.float32)
    for y in range(0, ph, window):
        tiles = np.stack([padded[y : y + window, x : x + window] for x in range(0, pw, window)])
        for x, tile in zip(range(0, pw, window), predict(tiles), strict=True):
            out[y : y + window, x : x + window] = tile
    return out[:h, :w]


def blended(rgb: np.ndarray, predict, window: int, stride: int) -> np.ndarray:
    out = np.empty((*rgb.shape[:2], 31), np.float32)
    stream_reconstruct(
        rgb,
        lambda r: r,
        predict,
        lambda y, r: out.__setitem__(slice(y, y + len(r)), r),
        window=window,
        stride=stride,
        batch_size=16,
    )
    return out


def seam_ratio(cube: np.ndarray, window: int, stride: int) -> float:
    """Mean |Δ| between horizontal neighbours straddling window edges / between all other neighbours."""
    w = cube.shape[1]
    starts = [*list(range(0, w - window + 1, stride)), w - window]
    edges = sorted({s for s in starts if s > 0} | {s + window for s in starts if s + window < w})
    diffs = np.abs(np.diff(cube, axis=1)).mean(axis=(0, 2))  # diffs[x-1] is between x-1 and x
    mask = np.zeros(w - 1, bool)
    mask[[e - 1 for e in edges]] = True
    return float(diffs[mask].mean() / diffs[~mask].mean())


def scores(pred: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    valid = gt > 1e-3
    return {
        "mrae": float(np.mean(np.abs(pred - gt)[valid] / gt[valid])),
        "rmse": float(np.sqrt(np.mean((pred.astype(np.float64) - gt) ** 2))),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    weights = load_weights()
    scenes = []
    for name, (h, w, collection, light, seed) in SCENES.items():
        cube = make_scene(h * 2, w * 2, collection, light, seed)  # twice the sample size: more windows
        rgb = quantize_ntire2020_clean(render_ntire2020_clean(cube)).astype(np.float32) / 255.0
        scenes.append((name, rgb, cube))
    rows = []
    print(f"torch threads: {torch.get_num_threads()}; scenes: {[(n, r.shape[:2]) for n, r, _ in scenes]}")
    print("| scheme | MRAE | RMSE | seam ratio | MP/s |")
    print("|---|---|---|---|---|")
    for label, window, stride, zero_pad in SCHEMES:
        results, seconds, megapixels, seams = [], 0.0, 0.0, []
        predict = weights.predictor(window=window)  # convert's inference form for this window
        for _, rgb, gt in scenes:
            start = time.perf_counter()
            pred = authors_scheme(rgb, predict) if zero_pad else blended(rgb, predict, window, stride)
            seconds += time.perf_counter() - start
            megapixels += rgb.shape[0] * rgb.shape[1] / 1e6
            results.append(scores(pred, gt))
            seams.append(seam_ratio(pred, window, stride))
        row = {
            "scheme": label,
            "window": window,
            "stride": stride,
            "mrae": float(np.mean([r["mrae"] for r in results])),
            "rmse": float(np.mean([r["rmse"] for r in results])),
            "seam_ratio": float(np.mean(seams)),
            "mp_per_s": megapixels / seconds,
        }
        rows.append(row)
        print(f"| {label} | {row['mrae']:.4f} | {row['rmse']:.4f} | {row['seam_ratio']:.3f} | {row['mp_per_s']:.3f} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
