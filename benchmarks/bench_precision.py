"""bf16 on the CPU against fp32: model speed, end-to-end convert speed, and how far the cubes move.

Issue 25 asks for a precision past the fp32 ceiling on the CPU within 0.5% of fp32 (mean |x − fp32| /
mean |fp32|) and ≥ 1.4× end to end. int8 does not hold 0.5% (``bench_int8``); on a CPU with native bf16
(AVX512-BF16 or AMX) :func:`hsrecon.inference.cpu_bfloat16` does: the dense convolutions in bf16, the
first and last in float32. For the default weights in their own 192-px windows this script measures:

1. **model only**: :meth:`Weights.predictor` at ``bf16`` and at ``fp32``, batches of 2 windows, the two
   alternating, median of the per-pair ratios (and plain autocast, to show why it is not used);
2. **cubes**: whole-image deviation from fp32 on each held-out set (the bundled examples and synthetic
   scenes of seed 202, each in both input spaces), and MRAE against the truth, fp32 → bf16;
3. **end to end**: ``hsrecon convert`` of a synthetic PNG (``--megapixels``, default 4) in a fresh
   process per run, ``--precision fp32`` and ``bf16`` alternating, median wall time of each.

Run from the repository root on an idle machine (a few minutes on 2 cores)::

    python -m benchmarks.bench_precision [--megapixels 4] [--runs 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.bench_convert import make_image
from benchmarks.bench_int8 import CALIBRATION_SEED, HELD_OUT_SEED, SPACES, examples, speed_ratio, synthetic, whole_cube
from benchmarks.bench_int8 import windows as scene_windows
from hsrecon.inference import has_native_bfloat16
from hsrecon.metrics import mrae
from hsrecon.weights import load_weights


def _autocast(weights, window: int):
    """The network under plain CPU autocast (what ``--precision bf16`` did before): for comparison only."""
    model = weights.inference_model(window).eval()

    def predict(batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            x = torch.from_numpy(np.ascontiguousarray(batch)).permute(0, 3, 1, 2)
            return model(x.contiguous(memory_format=torch.channels_last)).float().permute(0, 2, 3, 1).numpy()

    return predict


def cube_table(weights, predictors: dict, held_sets: dict) -> dict:
    """Per predictor and held-out set: deviation from fp32 and MRAE (fp32, this) against the truth."""
    fp32 = weights.predictor(window=weights.window)
    table: dict = {name: {} for name in predictors}
    for set_name, scenes in held_sets.items():
        for key, space in SPACES.items():
            references = [whole_cube(weights, fp32, scene[key], space) for scene in scenes]
            before = np.mean([mrae(c, s["truth"]) for c, s in zip(references, scenes, strict=True)])
            for name, predict in predictors.items():
                cubes = [whole_cube(weights, predict, scene[key], space) for scene in scenes]
                deviation = sum(np.abs(a - b).sum() for a, b in zip(cubes, references, strict=True))
                after = np.mean([mrae(c, s["truth"]) for c, s in zip(cubes, scenes, strict=True)])
                table[name][f"{set_name} {key}"] = {
                    "deviation": float(deviation / sum(np.abs(b).sum() for b in references)),
                    "mrae_fp32": float(before),
                    "mrae": float(after),
                }
    return table


def end_to_end(megapixels: float, runs: int) -> dict:
    """Median wall seconds of ``hsrecon convert`` per precision, fresh processes, alternating."""
    times: dict[str, list[float]] = {"fp32": [], "bf16": []}
    with tempfile.TemporaryDirectory() as folder:
        image = Path(folder) / "image.png"
        make_image(image, megapixels)
        for _ in range(runs):
            for precision in times:
                command = [sys.executable, "-m", "hsrecon", "convert", str(image), "-o", str(Path(folder) / precision),
                           "--precision", precision, "--device", "cpu", "--overwrite", "--quiet"]  # fmt: skip
                start = time.perf_counter()
                subprocess.run(command, check=True, capture_output=True)
                times[precision].append(time.perf_counter() - start)
    medians = {precision: float(np.median(seconds)) for precision, seconds in times.items()}
    return {"megapixels": megapixels, "seconds": times, "median_s": medians,
            "speedup": medians["fp32"] / medians["bf16"]}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megapixels", type=float, default=4.0)
    parser.add_argument("--runs", type=int, default=3, help="end-to-end runs per precision")
    parser.add_argument("--rounds", type=int, default=7, help="alternating model-only timing pairs")
    parser.add_argument("--held-out-scenes", type=int, default=4)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    weights = load_weights()
    window = weights.window
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU capability "
          f"{torch.backends.cpu.get_cpu_capability()}, native bf16: {has_native_bfloat16()}")  # fmt: skip
    predictors = {"bf16 (first and last conv fp32)": weights.predictor(window=window, precision="bf16"),
                  "bf16 autocast (everything)": _autocast(weights, window)}  # fmt: skip
    batch = scene_windows(weights, synthetic(CALIBRATION_SEED, 1, 2 * window), window)[:2]
    fp32 = weights.predictor(window=window)
    speeds = {name: speed_ratio(fp32, predict, batch, args.rounds) for name, predict in predictors.items()}
    held_sets = {"examples": examples(), "synthetic (seed 202)": synthetic(HELD_OUT_SEED, args.held_out_scenes, 384)}
    cubes = cube_table(weights, predictors, held_sets)
    sets = list(next(iter(cubes.values())))
    print("\n| recipe | model speed ×fp32 | " + " | ".join(f"Δ {s}" for s in sets) + " |")
    print("|---" * (2 + len(sets)) + "|")
    for name in predictors:
        cells = [f"{100 * cubes[name][s]['deviation']:.2f}%" for s in sets]
        print(f"| {name} | {speeds[name]:.2f}× | " + " | ".join(cells) + " |")
    print("\nMRAE against the truth, fp32 → bf16 (first and last conv fp32):")
    for s in sets:
        entry = cubes["bf16 (first and last conv fp32)"][s]
        change = 100 * (entry["mrae"] / entry["mrae_fp32"] - 1)
        print(f"  {s}: {entry['mrae_fp32']:.4f} → {entry['mrae']:.4f} ({change:+.2f}%)")
    e2e = end_to_end(args.megapixels, args.runs)
    medians = e2e["median_s"]
    print(f"\nhsrecon convert, {args.megapixels:g} MP PNG, median of {args.runs}: fp32 {medians['fp32']:.2f} s, "
          f"bf16 {medians['bf16']:.2f} s: {e2e['speedup']:.2f}×")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps({"speed": speeds, "cubes": cubes, "end_to_end": e2e,
                                         "native_bf16": has_native_bfloat16()}, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
