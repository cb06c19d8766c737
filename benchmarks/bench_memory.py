"""Peak memory (RSS) and end-to-end throughput of ``convert`` against image size.

Each measurement runs in a fresh Python process (so one size's peak cannot hide another's) that reads a
synthetic PNG of the given size, converts it to ENVI with the library's ``convert_file`` (the CLI's own
path), and reports ``ru_maxrss`` at exit. Run from the repository root::

    python -m benchmarks.bench_memory --sizes 1 12 --json real.json               # the real network
    python -m benchmarks.bench_memory --sizes 1 12 48 108 --stand-in --json big.json

``--stand-in`` swaps the network for a per-pixel linear map 3 → 31 (numpy): reading, windowing, blending
and writing are the real code, so the memory they need is measured as it is, without waiting hours for
the network on a 2-core CPU (the network's own activations for one batch of windows are a fixed amount,
measured with the real runs at small sizes: docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def make_image(path: Path, megapixels: float, seed: int = 0) -> tuple[int, int]:
    """A textured 4:3 uint8 image of about ``megapixels``, written as PNG (fast compression)."""
    import imageio.v3 as iio

    height = round((megapixels * 1e6 * 3 / 4) ** 0.5)
    width = round(megapixels * 1e6 / height)
    rng = np.random.default_rng(seed)
    tile = (rng.random((256, 256, 3)) * 70 + 10).astype(np.uint8)
    image = np.tile(tile, (height // 256 + 1, width // 256 + 1, 1))[:height, :width]
    iio.imwrite(path, image, compress_level=1)
    return height, width


class StandIn:
    """A per-pixel linear map 3 → 31: the pipeline's shape contract at a tiny fraction of the cost."""

    def __init__(self) -> None:
        self.matrix = np.random.default_rng(0).random((3, 31)).astype(np.float32)

    def __call__(self, windows: np.ndarray) -> np.ndarray:
        return windows @ self.matrix


def child(image: Path, out: Path, stand_in: bool, windowing: list[int | None]) -> None:
    """Convert one image and print a JSON line: peak RSS (MB), seconds, megapixels."""
    from hsrecon.pipeline import convert_file
    from hsrecon.weights import load_weights

    weights = load_weights()
    window, stride, pad = windowing
    predict = StandIn() if stand_in else weights.predictor(window=weights.windowing(window).window)
    started = time.perf_counter()
    result = convert_file(
        image, out / image.stem, weights=weights, predict=predict, formats=("envi",), window=window, stride=stride,
        pad=pad,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    output_mb = result.height * result.width * 31 * 4 / 2**20
    print(json.dumps({"mp": result.megapixels, "seconds": seconds, "peak_rss_mb": peak_mb, "output_mb": output_mb}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=float, nargs="+", default=[1, 12])
    parser.add_argument("--stand-in", action="store_true")
    parser.add_argument("--window", type=int, default=None, help="default: the weights' windowing")
    parser.add_argument("--stride", type=int, default=None)
    parser.add_argument("--pad", type=int, default=None)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--workdir", type=Path, default=None, help="where images and cubes go (needs space)")
    parser.add_argument("--child", nargs=2, metavar=("IMAGE", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(Path(args.child[0]), Path(args.child[1]), args.stand_in, [args.window, args.stride, args.pad])
        return
    rows = []
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        print("| megapixels | network | peak RSS (MB) | output size (MB) | seconds | MP/s end to end |")
        print("|---|---|---|---|---|---|")
        for size in args.sizes:
            image = Path(tmp) / f"synthetic_{size:g}mp.png"
            make_image(image, size)
            command = [sys.executable, "-m", "benchmarks.bench_memory", "--child", str(image), tmp]
            command += ["--stand-in"] if args.stand_in else []
            for option in ("window", "stride", "pad"):
                value = getattr(args, option)
                command += [f"--{option}", str(value)] if value is not None else []
            line = subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
            row = json.loads(line) | {"network": "stand-in" if args.stand_in else "LWRDAN"}
            rows.append(row)
            for leftover in Path(tmp).glob("synthetic_*.*"):
                leftover.unlink()
            print(
                f"| {row['mp']:.1f} | {row['network']} | {row['peak_rss_mb']:.0f} | {row['output_mb']:.0f} "
                f"| {row['seconds']:.1f} | {row['mp'] / row['seconds']:.3f} |",
                flush=True,
            )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
