"""Start-up of ``hsrecon convert``: how long a run takes before (and besides) its images, and where it goes.

Two measurements, each in fresh processes (start-up is a property of a new process):

1. **Whole commands**, alternating, medians of ``--runs``: the interpreter alone (``python -c pass``),
   ``import torch`` alone (a library hsrecon needs, not its own time), ``hsrecon --version``, and
   ``hsrecon convert`` of a 32×32 PNG (one window: the run is nearly all start-up). **hsrecon's own
   start-up** = convert − ``import torch``, pair by pair.
2. **Stages**, one process each run, timed inside it (wall and CPU seconds): the command line (typer,
   rich, the command modules), torch, the rest of the library, loading the weights (read, SHA-256, checks),
   the inference form (BatchNorm folded; the U-net frozen, from the file's proven fact or by the 16 probe
   windows), the colour tables (hsrecon.cache, or colour-science), and the first batch (oneDNN's kernels are
   built on first use). Run with ``--cold`` for what a first run on a machine pays: an empty cache and
   weights under a digest no fact is recorded for (so they are probed).

Run from the repository root::

    python -m benchmarks.bench_startup [--runs 5] [--weights ntire2020-clean] [--cold]

Every run's cache is a temporary folder (``HSRECON_CACHE_DIR``), filled by one run first unless ``--cold``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STAGES = r"""
import json, sys, time
marks = []
def mark(name):
    marks.append((name, time.perf_counter(), time.process_time()))
mark("start")
import hsrecon.cli.convert
mark("command line (typer, rich, hsrecon.cli)")
import torch
mark("import torch")
import hsrecon.batch, hsrecon.pipeline
mark("library (hsrecon.batch and what it imports)")
from hsrecon.weights import load_weights
weights = load_weights(sys.argv[1])
if sys.argv[2] == "cold":  # another digest: the file's facts are not known, the probes run
    import dataclasses
    weights = dataclasses.replace(weights, digest=None)
mark("load weights (read, SHA-256, checks)")
predict = weights.predictor(window=weights.window)
mark("inference form (fold BatchNorm, freeze the U-net)")
from hsrecon.inputs import make_input_transform
from hsrecon.plausible import rendering_for
import numpy as np
image = np.zeros((32, 32, 3), np.uint8)
rendering_for(weights.transform(image))
mark("colour tables (cache or colour-science)")
predict(np.zeros((1, weights.window, weights.window, 3), np.float32))
mark("first batch (one window, kernels built)")
predict(np.zeros((1, weights.window, weights.window, 3), np.float32))
mark("second batch (one window)")
print(json.dumps([(n, t - marks[i][1], c - marks[i][2]) for i, (n, t, c) in enumerate(marks[1:])]))
"""


def timed(command: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def whole_commands(runs: int, weights: str, folder: Path, env: dict[str, str]) -> dict[str, list[float]]:
    import numpy as np
    from PIL import Image

    image = folder / "tiny.png"
    Image.fromarray((np.random.default_rng(0).random((32, 32, 3)) * 80).astype(np.uint8)).save(image)
    python = sys.executable
    convert = [python, "-m", "hsrecon", "convert", str(image), "-o", str(folder / "out"), "-q", "--overwrite",
               "--weights", weights]  # fmt: skip
    commands = {
        "python -c pass": [python, "-c", "pass"],
        "python -c 'import torch'": [python, "-c", "import torch"],
        "hsrecon --version": [python, "-m", "hsrecon", "--version"],
        "hsrecon convert (32×32 PNG)": convert,
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    for command in commands.values():
        timed(command, env)  # warm-up: the page cache, and for convert the hsrecon cache
    for _ in range(runs):
        for name, command in commands.items():
            times[name].append(timed(command, env))
    return times


def stages(runs: int, weights: str, cold: bool, env: dict[str, str]) -> list[list[tuple[str, float, float]]]:
    found = []
    for _ in range(runs):
        if cold:
            env = {**env, "HSRECON_CACHE_DIR": tempfile.mkdtemp(prefix="hsrecon-cold-")}
        result = subprocess.run([sys.executable, "-c", STAGES, weights, "cold" if cold else "warm"], env=env,
                                check=True, capture_output=True, text=True)  # fmt: skip
        found.append(json.loads(result.stdout.strip().splitlines()[-1]))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--weights", default="ntire2020-clean")
    parser.add_argument("--cold", action="store_true", help="an empty cache and unknown digest in every run")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        env = {**os.environ, "HSRECON_CACHE_DIR": str(Path(folder) / "cache")}
        times = {} if args.cold else whole_commands(args.runs, args.weights, Path(folder), env)
        staged = stages(args.runs, args.weights, args.cold, env)
    if times:
        print("| command | median s | min s | max s |\n|---|---|---|---|")
        for name, values in times.items():
            print(f"| {name} | {statistics.median(values):.2f} | {min(values):.2f} | {max(values):.2f} |")
        own = [c - t for c, t in zip(times["hsrecon convert (32×32 PNG)"], times["python -c 'import torch'"],
                                     strict=True)]  # fmt: skip
        print(f"\nhsrecon's own start-up (convert − import torch, pair by pair): median "
              f"{statistics.median(own):.2f} s, min {min(own):.2f}, max {max(own):.2f}\n")  # fmt: skip
    print(f"| stage ({'cold: empty cache, probed' if args.cold else 'warm cache, proven facts'}) | wall s | CPU s |")
    print("|---|---|---|")
    for index, (name, _, _) in enumerate(staged[0]):
        wall = statistics.median(run[index][1] for run in staged)
        cpu = statistics.median(run[index][2] for run in staged)
        print(f"| {name} | {wall:.3f} | {cpu:.3f} |")
    if args.json:
        args.json.write_text(json.dumps({"commands": times, "stages": staged, "args": vars(args) | {
            "json": str(args.json)}}, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
