"""A folder of small images against one large image of the same pixels: does a folder convert at the large rate?

It writes ``--files`` PNGs of ``--size`` (default 40 × 482×512, NTIRE's size) and one PNG of the same total
pixels, then times ``hsrecon convert`` of each, whole command, fresh process per run, alternating, and reports
the median. The folder is converted twice: with the default weights' windowing as shipped (the pad fitted per
image between 8 and 16, :meth:`hsrecon.windows.Windowing.for_image`) and with ``--pad 16`` (every image the
16-px pad, as before the fit). Start-up is in every run; it is the same for all three and small beside them.

Beside the times it prints the windows each route runs and the window pixels per image pixel, which is what
the fit changes: the network's work, not its speed.

Run from the repository root (an idle machine; numbers taken beside other work are not comparable)::

    python -m benchmarks.bench_folder                        # 40 × 482×512 against one 9.9 MP image, 3 runs
    python -m benchmarks.bench_folder --files 8 --runs 1     # quicker
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from hsrecon.weights import load_weights
from hsrecon.windows import Windowing, count_windows


def textured(height: int, width: int, seed: int) -> np.ndarray:
    """An 8-bit RGB image with photo-like texture (a tiled random pattern), the same for a given seed."""
    tile = (np.random.default_rng(seed).random((256, 256, 3)) * 70 + 10).astype(np.uint8)
    return np.tile(tile, (height // 256 + 1, width // 256 + 1, 1))[:height, :width]


def write_inputs(root: Path, files: int, height: int, width: int) -> tuple[Path, Path, tuple[int, int]]:
    """The folder of small PNGs and one large PNG of (about) the same pixel count; returns the large shape."""
    import imageio.v3 as iio

    folder, large = root / "small", root / "large"
    folder.mkdir()
    large.mkdir()
    for index in range(files):
        iio.imwrite(folder / f"img{index:03d}.png", textured(height, width, index), compress_level=1)
    pixels = files * height * width
    large_height = round((pixels * 3 / 4) ** 0.5)
    large_width = round(pixels / large_height)
    iio.imwrite(large / "large.png", textured(large_height, large_width, 0), compress_level=1)
    return folder, large, (large_height, large_width)


def time_convert(source: Path, out: Path, extra: list[str]) -> float:
    """Seconds for one ``hsrecon convert`` of ``source`` to ENVI, in a fresh process."""
    command = [sys.executable, "-m", "hsrecon", "convert", str(source), "-o", str(out), "--format", "envi"]
    start = time.perf_counter()
    subprocess.run([*command, "--overwrite", "--quiet", *extra], check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=40)
    parser.add_argument("--size", type=int, nargs=2, default=[482, 512], metavar=("HEIGHT", "WIDTH"))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    height, width = args.size
    windowing = load_weights().windowing()
    fixed = Windowing(windowing.window, windowing.stride, pad=16, edge=windowing.edge)
    routes = {
        "folder, pad fitted (default)": ("small", [], count_windows(height, width, windowing) * args.files),
        "folder, --pad 16 (before)": ("small", ["--pad", "16"], count_windows(height, width, fixed) * args.files),
    }
    with tempfile.TemporaryDirectory() as temporary:
        root = Path(temporary)
        folder, large, (large_height, large_width) = write_inputs(root, args.files, height, width)
        routes["one large image"] = ("large", [], count_windows(large_height, large_width, windowing))
        sources = {"small": folder, "large": large}
        pixels = {"small": args.files * height * width, "large": large_height * large_width}
        seconds: dict[str, list[float]] = {name: [] for name in routes}
        for _ in range(args.runs):
            for name, (source, extra, _windows) in routes.items():
                seconds[name].append(time_convert(sources[source], root / "out", extra))
    rows = []
    print(f"| route | images | windows | window px per image px | seconds (median of {args.runs}) | MP/s |")
    print("|---|---|---:|---:|---:|---:|")
    for name, (source, _extra, windows) in routes.items():
        median = statistics.median(seconds[name])
        shape = f"{args.files} × {height}×{width}" if source == "small" else f"1 × {large_height}×{large_width}"
        per_pixel = windows * windowing.window**2 / pixels[source]
        megapixels = pixels[source] / 1e6
        print(f"| {name} | {shape} | {windows} | {per_pixel:.2f} | {median:.2f} | {megapixels / median:.3f} |")
        rows.append({"route": name, "images": shape, "windows": windows, "seconds": seconds[name]})
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
