"""Choose the windows by measurement: accuracy, seams, the image border and speed, per set of weights.

For each scheme (window, stride, pad, edge: ``WxS+P-E``, e.g. ``192x172+16-7``: windows of 192 px every
172 px, the image padded by 16 px of reflection, each window's outer 7 px left out of the blend where
another window covers them) and the weights given, it reports:

- **MRAE** on a validation set with ground truth: synthetic scenes (:func:`hsrecon.data.synth.make_scene`,
  measured reflectances under CIE illuminants) from a seed no bundled model was trained on, rendered as
  the weights expect (the NTIRE 2020 clean track, or the camera's JPEG for weights trained on photos);
  and its change relative to the first scheme (the reference: today's default).
- **Seam**: on a smooth 16-bit ramp (every pixel's true neighbour difference alike), the per-column (and
  per-row) mean absolute neighbour difference of the cube, each divided by the median of its 31
  neighbours; the largest ratio in the interior (more than 16 px from the border). 1 = no seam.
- **Border**: the same ramp converted twice: a crop on its own, and the whole ramp with 64 px of real
  context around the crop; mean |a − b| / mean |b| over the crop's outer 8-px ring (and over its interior,
  for scale). 0 = the outer pixels get what ample real context gives them. The same on the first two
  validation scenes (textured: reflection is a worse guess of the context there).
- **MP/s** of the whole reconstruction (transform, network, blending) on the validation scenes.

Run from the repository root (the first scheme is the reference)::

    python -m benchmarks.bench_windows --weights ntire2020-clean --schemes 64x32+0 64x32+16 256x224+16
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import numpy as np
import torch

from hsrecon.data.camera import decode_jpeg, render_camera_jpeg
from hsrecon.data.synth import make_scene
from hsrecon.metrics import score
from hsrecon.physics import quantize_ntire2020_clean, render_ntire2020_clean
from hsrecon.pipeline import stream_reconstruct
from hsrecon.weights import Weights, load_weights

VALIDATION_SEED = 2026  # the bundled models were trained and validated on seeds 11, 12, 13 (weights/README.md)
RING = 8
CONTEXT = 64


def parse_scheme(text: str) -> tuple[int, int, int, int]:
    """``WxS+P-E`` → (window, stride, pad, edge); ``+P`` and ``-E`` default to 0."""
    text, _, edge = text.partition("-")
    size, _, pad = text.partition("+")
    window, stride = (int(part) for part in size.split("x"))
    return window, stride, int(pad or 0), int(edge or 0)


def validation_set(weights: Weights, count: int, height: int, width: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``count`` (image as the weights expect it, ground-truth cube) pairs."""
    rng = np.random.default_rng(VALIDATION_SEED)
    pairs = []
    for _ in range(count):
        scene = make_scene(rng, height, width)
        if weights.input_space == "ntire2020-clean":
            image = quantize_ntire2020_clean(render_ntire2020_clean(scene.cube))
        else:  # weights trained on camera photos: the camera's sRGB JPEG, white-balanced for the scene's light
            image = decode_jpeg(render_camera_jpeg(scene.cube, rng=rng, illuminant=scene.illuminant_spectrum))
        pairs.append((image, scene.cube))
    return pairs


def ramp(height: int, width: int) -> np.ndarray:
    """A smooth 16-bit image: every channel a different slow gradient in both directions (0.04–0.3 of full
    scale, the range of a clean-track rendering), so neighbour differences are small and even."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    u, v = x / width, y / height
    channels = [0.04 + 0.26 * u * (0.6 + 0.4 * v), 0.04 + 0.2 * v + 0.06 * u, 0.3 - 0.2 * u * v - 0.04 * v]
    return np.round(np.stack(channels, axis=-1) * 65535).astype(np.uint16)


def reconstruct(weights: Weights, predict, image: np.ndarray, scheme: tuple[int, int, int, int]) -> np.ndarray:
    window, stride, pad, edge = scheme
    cube = np.empty((*image.shape[:2], weights.bands), np.float32)
    transform = weights.transform(image, exposure=1.0)

    def emit(y0: int, rows: np.ndarray) -> None:
        cube[y0 : y0 + rows.shape[0]] = rows

    stream_reconstruct(
        image, transform, predict, emit, bands=weights.bands, window=window, stride=stride, pad=pad, edge=edge
    )
    return cube


def seam_ratio(cube: np.ndarray, margin: int = 16, half: int = 15) -> float:
    """Largest (neighbour difference ÷ median of its 2·half+1 neighbours) over columns and rows."""
    ratios = []
    for axis in (1, 0):
        step = np.abs(np.diff(cube.astype(np.float64), axis=axis)).mean(axis=(1 - axis, 2))
        for i in range(margin + half, len(step) - margin - half):
            ratios.append(step[i] / np.median(step[i - half : i + half + 1]))
    return float(max(ratios))


def border_deviation(alone: np.ndarray, with_context: np.ndarray) -> tuple[float, float]:
    """(outer ring, interior): mean |a − b| / mean |b| of the crop converted alone against with context."""
    ring = np.ones(alone.shape[:2], bool)
    ring[RING:-RING, RING:-RING] = False
    difference = np.abs(alone.astype(np.float64) - with_context)
    return (
        float(difference[ring].mean() / np.abs(with_context[ring]).mean()),
        float(difference[~ring].mean() / np.abs(with_context[~ring]).mean()),
    )


def measure(weights: Weights, scheme: str, scenes, seam_image: np.ndarray) -> dict:
    parsed = window, stride, pad, edge = parse_scheme(scheme)
    predict = weights.predictor(window=window)
    started, megapixels, scores = time.perf_counter(), 0.0, []
    for image, truth in scenes:
        scores.append(score(reconstruct(weights, predict, image, parsed), truth, with_ssim=False))
        megapixels += image.shape[0] * image.shape[1] / 1e6
    seconds = time.perf_counter() - started
    whole = reconstruct(weights, predict, seam_image, parsed)
    crop = seam_image[CONTEXT:-CONTEXT, CONTEXT:-CONTEXT]
    ring, interior = border_deviation(
        reconstruct(weights, predict, crop, parsed), whole[CONTEXT:-CONTEXT, CONTEXT:-CONTEXT]
    )
    scene_rings = []
    for image, _ in scenes[:2]:
        context = reconstruct(weights, predict, image, parsed)[CONTEXT:-CONTEXT, CONTEXT:-CONTEXT]
        alone = reconstruct(weights, predict, image[CONTEXT:-CONTEXT, CONTEXT:-CONTEXT], parsed)
        scene_rings.append(border_deviation(alone, context)[0])
    return {
        "scheme": scheme,
        "window": window,
        "stride": stride,
        "pad": pad,
        "edge": edge,
        "frozen_unet": type(predict.model.unet).__name__ == "FrozenBranch",
        "mrae": float(np.mean([s.mrae for s in scores])),
        "rmse": float(np.mean([s.rmse for s in scores])),
        "seam": seam_ratio(whole),
        "border_ring": ring,
        "border_interior": interior,
        "border_ring_scenes": float(np.mean(scene_rings)),
        "mp_s": megapixels / seconds,
        "windows_per_pixel": (window / stride) ** 2,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default=None, help="bundled name or path (default: the default weights)")
    parser.add_argument("--schemes", nargs="+", default=["64x32+0", "64x32+16", "128x112+16", "256x224+16"])
    parser.add_argument("--scenes", type=int, default=6)
    parser.add_argument("--size", type=int, nargs=2, default=[384, 512], metavar=("H", "W"))
    parser.add_argument("--ramp", type=int, nargs=2, default=[512, 640], metavar=("H", "W"))
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    weights = load_weights(args.weights)
    scenes = validation_set(weights, args.scenes, *args.size)
    seam_image = ramp(*args.ramp)
    print(f"{weights.name}; torch threads {torch.get_num_threads()}; {args.scenes} scenes of {args.size}, seed "
          f"{VALIDATION_SEED}; ramp {args.ramp}")  # fmt: skip
    print("| scheme (window×stride+pad−edge) | windows/px | U-net frozen | MRAE | ΔMRAE | seam | border ring | "
          "border interior | border ring, scenes | MP/s |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|")
    rows = []
    for scheme in args.schemes:
        row = measure(weights, scheme, scenes, seam_image)
        row["mrae_change"] = row["mrae"] / rows[0]["mrae"] - 1 if rows else 0.0
        rows.append(row)
        print(
            f"| {scheme} | {row['windows_per_pixel']:.2f} | {'yes' if row['frozen_unet'] else 'no'} "
            f"| {row['mrae']:.5f} | {100 * row['mrae_change']:+.2f}% | {row['seam']:.3f} "
            f"| {100 * row['border_ring']:.2f}% | {100 * row['border_interior']:.2f}% "
            f"| {100 * row['border_ring_scenes']:.2f}% | {row['mp_s']:.3f} |",
            flush=True,
        )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if args.json:
        meta = {"weights": weights.name, "threads": torch.get_num_threads(), "peak_rss_mb": peak} | vars(args)
        args.json.write_text(json.dumps({"meta": {k: str(v) for k, v in meta.items()}, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
