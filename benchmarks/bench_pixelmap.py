"""Per-pixel maps against the network: MP/s of ``hsrecon.reconstruct`` (in memory: transform → model → rows, no
file written) for each set of weights, in turns in one process so a busy machine slows them alike.

The map reads each pixel alone (1-pixel windows, run as row blocks: :func:`hsrecon.pipeline.stream_reconstruct`);
the network runs its measured windows with their overlap and blending. Run from the repository root::

    python -m benchmarks.bench_pixelmap                      # 1 MP, default network vs the bundled map, 3 rounds
    python -m benchmarks.bench_pixelmap --megapixels 4 --rounds 5 --json out.json

It prints one Markdown table (median MP/s over the rounds, and each model's ratio to the network's) and
writes JSON (``--json``). ``convert``'s own MP/s adds reading the image and writing the cube (124 bytes per
pixel in float32), which for a map is most of the time: ``docs/benchmarks.md`` has both.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch

from hsrecon.pipeline import reconstruct
from hsrecon.pixelmap import fit_root_polynomial
from hsrecon.pixelweights import PixelMapWeights
from hsrecon.weights import load_weights


def test_image(megapixels: float, seed: int = 0) -> np.ndarray:
    """A smooth random uint8 image of about ``megapixels`` (4:3), the same for every model."""
    height = round((megapixels * 1e6 * 3 / 4) ** 0.5)
    width = round(megapixels * 1e6 / height)
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, (height // 16 + 1, width // 16 + 1, 3))
    return np.repeat(np.repeat(coarse, 16, axis=0), 16, axis=1)[:height, :width].astype(np.uint8)


def rpr3_map() -> PixelMapWeights:
    """A degree-3 map (the bundled one is degree 2): fitted on random pixels, only its cost matters here."""
    rng = np.random.default_rng(1)
    rgb = rng.uniform(0.01, 1, (4096, 3))
    return PixelMapWeights.from_matrix(fit_root_polynomial(rgb, rgb @ rng.uniform(0, 1, (3, 31)), 3), 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megapixels", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()

    image = test_image(args.megapixels)
    models = {"network (ntire2020-clean)": load_weights(), "rpr2-clean-provisional": load_weights(
        "rpr2-clean-provisional"), "rpr3 (degree 3)": rpr3_map()}  # fmt: skip
    rates: dict[str, list[float]] = {name: [] for name in models}
    for weights in models.values():  # warm-up: first-use costs (imports, the inference form) not counted
        reconstruct(image[:64, :64], weights)
    for _ in range(args.rounds):
        for name, weights in models.items():
            started = time.perf_counter()
            reconstruct(image, weights)
            rates[name].append(image.shape[0] * image.shape[1] / 1e6 / (time.perf_counter() - started))
    network = statistics.median(rates["network (ntire2020-clean)"])
    print(f"{image.shape[1]}×{image.shape[0]} px, {args.rounds} rounds in turn, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")  # fmt: skip
    print("| model | MP/s (median) | min–max | × the network |\n|---|---:|---:|---:|")
    for name, values in rates.items():
        median = statistics.median(values)
        print(f"| {name} | {median:.3g} | {min(values):.3g}–{max(values):.3g} | {median / network:.0f}× |")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"shape": image.shape[:2], "rates": rates}, handle, indent=1)


if __name__ == "__main__":
    main()
