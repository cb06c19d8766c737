"""Inference speed against the hardware limit: end to end, model only, efficiency, and where the time goes.

For each image size and each device available, it converts a synthetic RGB PNG to ENVI with the
library's ``convert_file`` (read → window → infer → blend → write, the CLI's path) and reports:

- **end to end MP/s**: output megapixels / wall time of the whole conversion;
- **model-only MP/s**: output megapixels / time spent inside the network calls of that same conversion;
- **network GFLOP/s**: FLOPs the network executed (288.1 GFLOP per megapixel of *window* pixels, the
  overlap included) / model time;
- **efficiency**: network GFLOP/s ÷ the measured fp32 matmul rate of the same device, same threads, same
  run (``torch.mm`` of 2048² float32, best of 5) — the ceiling the network is measured against;
- **stages**: seconds in read, model, blend, the rest (transform, window extraction, blend weighting), and
  write, which runs on its own thread beside the others (so it is not part of their sum).

Run from the repository root::

    python -m benchmarks.bench_convert                       # 1, 12 and 48 MP, every device, default windows
    python -m benchmarks.bench_convert --sizes 1 --window 64 --stride 32 --pad 0 --json out.json   # the old ones

It prints one Markdown table and writes JSON (``--json``).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

import hsrecon.pipeline as pipeline_module
from hsrecon.inference import TorchPredictor
from hsrecon.io.rgb import read_rgb
from hsrecon.model import flops_per_pixel
from hsrecon.pipeline import convert_file
from hsrecon.weights import load_weights
from hsrecon.windows import RowBlender


def matmul_gflops(device: torch.device, size: int = 2048, repeats: int = 5) -> float:
    """The best fp32 matmul rate of ``device`` in GFLOP/s: the ceiling the network is compared with."""
    a = torch.rand(size, size, device=device)
    b = torch.rand(size, size, device=device)
    best = float("inf")
    for _ in range(repeats + 1):
        _sync(device)
        start = time.perf_counter()
        torch.mm(a, b)
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Stages:
    """Seconds per stage, filled by wrapping the pipeline's pieces for one run."""

    def __init__(self) -> None:
        self.seconds = {"read": 0.0, "rest": 0.0, "model": 0.0, "blend": 0.0, "write": 0.0}
        self.window_pixels = 0

    @contextmanager
    def timing(self, stage: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] += time.perf_counter() - start


@contextmanager
def instrumented(stages: Stages):
    """Time the blender by wrapping its methods for the duration (rows it finishes are only handed to the
    writer thread)."""
    add, finish = RowBlender.add, RowBlender.finish_rows

    def timed_add(self, y, x, tile, **options):
        with stages.timing("blend"):
            add(self, y, x, tile, **options)

    def timed_finish(self, upto):
        with stages.timing("blend"):
            finish(self, upto)

    RowBlender.add, RowBlender.finish_rows = timed_add, timed_finish
    try:
        yield
    finally:
        RowBlender.add, RowBlender.finish_rows = add, finish


class TimedPredictor:
    def __init__(self, predict: TorchPredictor, stages: Stages) -> None:
        self.predict, self.stages = predict, stages

    def __call__(self, windows: np.ndarray) -> np.ndarray:
        with self.stages.timing("model"):
            out = self.predict(windows)
            _sync(self.predict.device)
        self.stages.window_pixels += windows.shape[0] * windows.shape[1] * windows.shape[2]
        return out


class TimedWriters:
    """Wrap ``open_cube_writer`` so that ``write_rows`` and ``commit`` count as the write stage."""

    def __init__(self, stages: Stages) -> None:
        self.stages, self.original = stages, pipeline_module.open_cube_writer

    def __call__(self, *args, **kwargs):
        writer = self.original(*args, **kwargs)
        stages, write_rows, commit = self.stages, writer.write_rows, writer.commit

        def timed_write_rows(y0, rows):
            with stages.timing("write"):
                write_rows(y0, rows)

        def timed_commit():
            with stages.timing("write"):
                commit()

        writer.write_rows, writer.commit = timed_write_rows, timed_commit
        return writer


def make_image(path: Path, megapixels: float) -> None:
    import imageio.v3 as iio

    height = round((megapixels * 1e6 * 3 / 4) ** 0.5)
    width = round(megapixels * 1e6 / height)
    tile = (np.random.default_rng(0).random((256, 256, 3)) * 70 + 10).astype(np.uint8)
    iio.imwrite(path, np.tile(tile, (height // 256 + 1, width // 256 + 1, 1))[:height, :width], compress_level=1)


def run_one(image: Path, out: Path, weights, predict: TorchPredictor, windowing, args, flops: float) -> dict:
    stages = Stages()
    start = time.perf_counter()
    with stages.timing("read"):
        rgb = read_rgb(image)
    timed_writers = TimedWriters(stages)
    pipeline_module.open_cube_writer = timed_writers
    try:
        with instrumented(stages):
            result = convert_file(
                image, out / image.stem, weights=weights, predict=TimedPredictor(predict, stages), formats=("envi",),
                window=windowing.window, stride=windowing.stride, pad=windowing.pad, batch_size=args.batch_size,
                image=rgb, overwrite=True,
            )  # fmt: skip
    finally:
        pipeline_module.open_cube_writer = timed_writers.original
    total = time.perf_counter() - start
    accounted = sum(v for k, v in stages.seconds.items() if k not in ("rest", "write"))  # write: overlapped
    stages.seconds["rest"] = max(0.0, total - accounted)
    model_seconds = stages.seconds["model"]
    return {
        # Peak of the whole process so far: sizes run in increasing order, so it is this size's peak.
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "mp": result.megapixels,
        "end_to_end_mp_s": result.megapixels / total,
        "model_only_mp_s": result.megapixels / model_seconds,
        "network_gflop_s": stages.window_pixels * flops / model_seconds / 1e9,
        "stages_s": {k: round(v, 3) for k, v in stages.seconds.items()},
        "seconds": total,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=float, nargs="+", default=[1, 12, 48])
    parser.add_argument("--devices", nargs="+", default=None, help="default: cpu, and cuda when available")
    parser.add_argument("--window", type=int, default=None, help="default: the weights' own windowing")
    parser.add_argument("--stride", type=int, default=None)
    parser.add_argument("--pad", type=int, default=None)
    parser.add_argument("--weights", default=None, help="bundled name or path (default: the default weights)")
    parser.add_argument("--batch-size", type=int, default=None, help="default: the windowing's")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--plain", action="store_true", help="the model as loaded: no BN folding, no freezing")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    devices = args.devices or ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = []
    weights = load_weights(args.weights)
    windowing = weights.windowing(args.window, args.stride, args.pad)
    machine = platform.processor() or platform.machine()
    print(f"{machine}, torch {torch.__version__}, {torch.get_num_threads()} threads; {weights.name}, {windowing}")
    print("| device | MP | end to end MP/s | model-only MP/s | e2e / model | network GFLOP/s | matmul GFLOP/s "
          "| efficiency | peak RSS (MB) | read / model / blend / rest (s) | write, overlapped (s) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for device_name in devices:
            device = torch.device(device_name)
            if args.plain:
                predict = TorchPredictor(weights.build(), device=device, precision=args.precision)
            else:
                predict = weights.predictor(device=device, precision=args.precision, window=windowing.window)
            flops = flops_per_pixel(predict.model, windowing.window)  # what the prepared network executes
            predict(np.zeros((2, windowing.window, windowing.window, 3), np.float32))  # warm-up: allocations
            ceiling = matmul_gflops(device)
            for size in args.sizes:
                image = Path(tmp) / f"synthetic_{size:g}.png"
                make_image(image, size)
                row = run_one(image, Path(tmp), weights, predict, windowing, args, flops) | {
                    "device": device_name,
                    "matmul_gflop_s": ceiling,
                }
                row["efficiency"] = row["network_gflop_s"] / ceiling
                rows.append(row)
                s = row["stages_s"]
                print(
                    f"| {device_name} | {row['mp']:.1f} | {row['end_to_end_mp_s']:.3f} | {row['model_only_mp_s']:.3f} "
                    f"| {row['end_to_end_mp_s'] / row['model_only_mp_s']:.0%} | {row['network_gflop_s']:.1f} "
                    f"| {ceiling:.1f} | {row['efficiency']:.0%} | {row['peak_rss_mb']:.0f} "
                    f"| {s['read']:.1f} / {s['model']:.1f} / {s['blend']:.1f} / {s['rest']:.1f} | {s['write']:.1f} |",
                    flush=True,
                )
                for leftover in Path(tmp).iterdir():
                    leftover.unlink()
    if args.json:
        meta = {"machine": platform.platform(), "torch": torch.__version__, "threads": torch.get_num_threads(),
                "windowing": str(windowing)}  # fmt: skip
        args.json.write_text(json.dumps({"meta": meta | vars(args) | {"json": str(args.json)}, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
