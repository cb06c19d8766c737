"""Model-only speed per window size, batch size and precision, through the weights' own predictor.

The predictor is what convert runs (BatchNorm folded, channels-last, the U-net frozen where the probes
prove it constant for that window size), so this says which batch of which window keeps the network
closest to the machine's limit; ``benchmarks.bench_convert`` then measures the whole conversion.
Configurations are interleaved over rounds (a machine that drifts affects them alike) and each reports
its best round, in MP/s of *window* pixels (the overlap not taken off). ``--bf16`` adds the same
configurations under CPU bf16 autocast, with their largest and mean difference from fp32.

Run from the repository root::

    python -m benchmarks.bench_batches --configs 64x16 64x32 192x2 192x4 192x8 224x2 --bf16
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from hsrecon.weights import load_weights


def rate(predict, windows: np.ndarray, seconds: float) -> float:
    """MP/s of window pixels of ``predict`` on ``windows`` over about ``seconds`` (after one warm-up call)."""
    predict(windows)
    start, calls = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        predict(windows)
        calls += 1
    return calls * windows[..., 0].size / 1e6 / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", default=None, help="bundled name or path (default: the default weights)")
    parser.add_argument("--configs", nargs="+", default=["64x16", "64x32", "192x2", "192x4", "192x8"])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--bf16", action="store_true", help="also under CPU bf16 autocast")
    args = parser.parse_args()
    weights = load_weights(args.weights)
    configs = [tuple(int(part) for part in text.split("x")) for text in args.configs]
    predictors = {size: weights.predictor(window=size) for size in sorted({size for size, _ in configs})}
    inputs = {(s, b): np.random.default_rng(0).random((b, s, s, 3), dtype=np.float32) * 0.3 for s, b in configs}
    precisions = ["fp32", "bf16"] if args.bf16 else ["fp32"]
    best: dict[tuple, float] = {}
    for _ in range(args.rounds):
        for precision in precisions:
            for size, batch in configs:
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
                    measured = rate(predictors[size], inputs[size, batch], args.seconds)
                key = (size, batch, precision)
                best[key] = max(best.get(key, 0.0), measured)
    print(f"{weights.name}; torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("| window | batch | U-net | precision | MP/s of window pixels | max / mean rel. diff from fp32 |")
    print("|---|---|---|---|---|---|")
    for (size, batch, precision), value in best.items():
        frozen = "frozen" if "Frozen" in repr(predictors[size].model) else "live"
        diff = ""
        if precision == "bf16":
            reference = predictors[size](inputs[size, batch])
            with torch.autocast("cpu", dtype=torch.bfloat16):
                low = np.asarray(predictors[size](inputs[size, batch]), dtype=np.float32)
            error, scale = np.abs(low - reference), np.abs(reference)
            diff = f"{error.max() / scale.max():.2e} / {error.mean() / scale.mean():.2e}"
        print(f"| {size} | {batch} | {frozen} | {precision} | {value:.3f} | {diff} |")


if __name__ == "__main__":
    main()
