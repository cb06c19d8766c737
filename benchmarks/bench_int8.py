"""int8 on the CPU: how fast, and how far from fp32, per engine, recipe and held-out set; and why.

The question (issue 25): can the default weights run int8 on the CPU at ≥ 1.4× the fp32 speed end to end,
with cubes within 0.5% of fp32 (mean |int8 − fp32| / mean |fp32|)? This script measures, for the default
weights in their own windows (192 px):

1. **Post-training static quantisation with ONNX Runtime** (the ``onnx`` extra): the inference form exported
   (as ``hsrecon export`` does, NHWC in and out), QDQ, int8 weights per output channel, uint8 activations,
   calibrated on windows of synthetic scenes (:func:`hsrecon.data.synth.make_scene`, seed 101) in both
   input spaces (the clean-track PNG and the camera's JPEG read as ``srgb``). Recipes: every convolution;
   the first (1×1, on RGB and coordinates) kept fp32; the last (fusion, the output) kept fp32; both; and
   percentile (99.999) ranges instead of min/max. Per recipe: model-only speed against torch fp32 (batches
   of 2 windows, the two runs alternating, median of the per-pair ratios, at each ``--threads``), and the
   whole-image cubes' deviation from fp32 on each held-out set (the bundled ``examples/`` in both
   renderings, and synthetic scenes of another seed, 202, in both), with the MRAE against their truth.
2. **Where the error comes from** (torch, simulated: values rounded exactly as int8 would round them, no
   speed): each layer's weights alone (int8 per output channel, with bias correction), and each layer's
   input alone (uint8, min/max of the calibration windows), on the held-out synthetic windows' interior.

Run from the repository root (a few minutes on 2 idle cores; the numbers are in docs/benchmarks.md)::

    python -m benchmarks.bench_int8 [--threads 1 2] [--calibration-scenes 6] [--held-out-scenes 4] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from hsrecon.data.camera import render_camera
from hsrecon.data.synth import make_scene
from hsrecon.io import read_cube
from hsrecon.io.rgb import read_rgb
from hsrecon.metrics import mrae
from hsrecon.physics import quantize_ntire2020_clean, render_ntire2020_clean
from hsrecon.pipeline import stream_reconstruct
from hsrecon.weights import Weights, load_weights

CALIBRATION_SEED, HELD_OUT_SEED = 101, 202
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SPACES = {"clean": "ntire2020-clean", "srgb": "srgb"}
MARGIN = 8  # the windows' interior in the sensitivity table (their edge is left out of the blend anyway)


# --- data -------------------------------------------------------------------------------------------------


def synthetic(seed: int, count: int, size: int) -> list[dict]:
    """Scenes of recipe 1: truth, the clean-track PNG's codes, and the camera's sRGB JPEG (decoded)."""
    scenes = []
    for index in range(count):
        rng = np.random.default_rng([seed, index])
        scene = make_scene(rng, size, size)
        clean = quantize_ntire2020_clean(render_ntire2020_clean(scene.cube))
        photo = render_camera(scene.cube, rng=rng, illuminant=scene.illuminant_spectrum)
        scenes.append({"truth": scene.cube, "clean": clean, "srgb": photo})
    return scenes


def examples() -> list[dict]:
    """The bundled examples: truth, the clean-track PNG and the sRGB rendering of each."""
    found = []
    for truth in sorted((EXAMPLES / "truth").glob("*.h5")):
        cube, _, _ = read_cube(truth)
        images = {key: read_rgb(EXAMPLES / key / f"{truth.stem}.png").pixels for key in SPACES}
        found.append({"truth": cube, **images})
    return found


def windows(weights: Weights, scenes: list[dict], window: int) -> np.ndarray:
    """Non-overlapping windows of every scene in both input spaces, as the network sees them (NHWC)."""
    found = []
    for scene in scenes:
        for key, space in SPACES.items():
            image = scene[key]
            x = weights.transform(image, space)(image)
            for y0 in range(0, image.shape[0] - window + 1, window):
                for x0 in range(0, image.shape[1] - window + 1, window):
                    found.append(x[y0 : y0 + window, x0 : x0 + window])
    return np.ascontiguousarray(np.stack(found), dtype=np.float32)


def whole_cube(weights: Weights, predict: Callable, image: np.ndarray, space: str) -> np.ndarray:
    """``hsrecon.pipeline.reconstruct`` with another predictor: the weights' own windows, blended."""
    cube = np.empty((*image.shape[:2], weights.bands), np.float32)

    def emit(y0: int, rows: np.ndarray) -> None:
        cube[y0 : y0 + rows.shape[0]] = rows

    transform = weights.transform(image, space)
    stream_reconstruct(image, transform, predict, emit, bands=weights.bands, windowing=weights.windowing())
    return cube


# --- ONNX Runtime ------------------------------------------------------------------------------------------


class _NHWC(torch.nn.Module):
    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


def export_onnx(weights: Weights, window: int, path: Path) -> Path:
    """The inference form as ONNX, NHWC in and out, batch dynamic (the graph every engine here runs)."""
    model = weights.inference_model(window).to(memory_format=torch.contiguous_format).eval()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _NHWC(model), (torch.zeros(2, window, window, 3),), str(path), input_names=["rgb"],
            output_names=["cube"], dynamic_axes={"rgb": {0: "batch"}, "cube": {0: "batch"}}, opset_version=17,
            dynamo=False,
        )  # fmt: skip
    return path


def export_nhwc(weights: Weights, window: int, path: Path) -> Path:
    """:func:`export_onnx`, pre-processed for quantisation as ONNX Runtime advises."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    raw = export_onnx(weights, window, path.with_suffix(".raw.onnx"))
    quant_pre_process(str(raw), str(path), skip_symbolic_shape=True)
    return path


def quantise(
    source: Path,
    target: Path,
    calibration: np.ndarray,
    exclude: list[str],
    percentile: bool,
    op_types: list[str] | None = None,
) -> Path:
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{"rgb": calibration[i : i + 2]} for i in range(0, len(calibration), 2)])

        def get_next(self) -> dict | None:
            return next(self.batches, None)

    quantize_static(
        str(source), str(target), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, nodes_to_exclude=exclude,
        calibrate_method=CalibrationMethod.Percentile if percentile else CalibrationMethod.MinMax,
        op_types_to_quantize=op_types,
    )  # fmt: skip
    return target


def ort_predictor(path: Path, threads: int) -> Callable[[np.ndarray], np.ndarray]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return lambda batch: session.run(None, {"rgb": np.ascontiguousarray(batch, dtype=np.float32)})[0]


def speed_ratio(baseline: Callable, candidate: Callable, batch: np.ndarray, rounds: int) -> float:
    """Median over alternating pairs of (baseline seconds ÷ candidate seconds): > 1, the candidate is faster."""
    baseline(batch), candidate(batch)  # warm-up: kernels, allocations
    ratios = []
    for _ in range(rounds):
        start = time.perf_counter()
        baseline(batch)
        middle = time.perf_counter()
        candidate(batch)
        ratios.append((middle - start) / (time.perf_counter() - middle))
    return float(np.median(ratios))


# --- the sensitivity table (simulated rounding in torch) --------------------------------------------------


def _round_weights(weight: torch.Tensor) -> torch.Tensor:
    scale = weight.abs().amax(dim=(1, 2, 3), keepdim=True) / 127
    return torch.round(weight / scale).clamp(-127, 127) * scale


def _round_input(x: torch.Tensor, low: float, high: float) -> torch.Tensor:
    low, high = min(low, 0.0), max(high, 0.0)
    scale = (high - low) / 255
    zero = round(-low / scale)
    return (torch.clamp(torch.round(x / scale) + zero, 0, 255) - zero) * scale


@torch.no_grad()
def sensitivity(weights: Weights, window: int, calibration: np.ndarray, held_out: np.ndarray) -> list[dict]:
    """Each convolution's int8 error alone: its weights (bias-corrected), or its input, rounded."""
    model = weights.inference_model(window).eval()
    dense, fusion, constant = model.dense, model.fusion, model.unet.value
    layers = {"conv1 (1×1)": dense.conv1, "conv2": dense.conv2, "conv3": dense.conv3, "conv4": dense.conv4,
              "head": dense.head, "fusion (output)": fusion}  # fmt: skip

    def run(x: torch.Tensor, rounded_weights: dict, rounded_input: str | None, ranges: dict) -> tuple:
        def conv(name: str, inp: torch.Tensor) -> torch.Tensor:
            layer = layers[name]
            if name == rounded_input:
                inp = _round_input(inp, *ranges[name])
            weight, bias = rounded_weights.get(name, (layer.weight, layer.bias))
            return F.conv2d(inp, weight, bias, padding=layer.padding)

        inputs = {"conv1 (1×1)": model.coords(x)}
        c1 = F.relu(conv("conv1 (1×1)", inputs["conv1 (1×1)"]))
        inputs["conv2"] = c1
        c2 = F.relu(conv("conv2", c1))
        inputs["conv3"] = torch.cat([c1, c2], 1)
        c3 = F.relu(conv("conv3", inputs["conv3"]))
        inputs["conv4"] = torch.cat([c2, c3], 1)
        c4 = F.relu(conv("conv4", inputs["conv4"]))
        inputs["head"] = torch.cat([c1, c2, c3, c4], 1)
        inputs["fusion (output)"] = conv("head", inputs["head"]) + constant
        return conv("fusion (output)", inputs["fusion (output)"]), inputs

    calib = torch.from_numpy(calibration).permute(0, 3, 1, 2)
    held = torch.from_numpy(held_out).permute(0, 3, 1, 2)
    _, seen = run(calib, {}, None, {})
    ranges = {name: (float(t.min()), float(t.max())) for name, t in seen.items()}
    reference, _ = run(held, {}, None, {})
    inner = (..., slice(MARGIN, -MARGIN), slice(MARGIN, -MARGIN))

    def deviation(output: torch.Tensor) -> float:
        return float((output[inner] - reference[inner]).abs().mean() / reference[inner].abs().mean())

    rows = []
    for name, layer in layers.items():
        rounded = _round_weights(layer.weight)
        change = F.conv2d(seen[name], rounded - layer.weight, None, padding=layer.padding).mean(dim=(0, 2, 3))
        corrected = {name: (rounded, layer.bias - change)}  # bias correction: the mean change taken back out
        rows.append({
            "layer": name,
            "share_of_flops": float(layer.weight.numel() / sum(lyr.weight.numel() for lyr in layers.values())),
            "weights_rounded": deviation(run(held, corrected, None, ranges)[0]),
            "input_rounded": deviation(run(held, {}, name, ranges)[0]),
        })  # fmt: skip
    return rows


# --- main -------------------------------------------------------------------------------------------------

CONV, CONV_RELU = ["Conv"], ["Conv", "Relu"]
RECIPES = {  # name: (convolutions kept fp32, percentile ranges, operator types quantised: None for ORT's default)
    "every convolution": ([], False, None),
    "every convolution, percentile ranges": ([], True, None),
    "first conv fp32": (["first"], False, None),
    "output conv fp32": (["fusion"], False, None),
    "first and output conv fp32": (["first", "fusion"], False, None),
    "convolutions only": ([], False, CONV),
    "convolutions only, percentile ranges": ([], True, CONV),
    "convolutions only, first and output fp32": (["first", "fusion"], False, CONV),
    "convolutions and ReLU, first and output fp32, percentile": (["first", "fusion"], True, CONV_RELU),
}
"""ONNX Runtime's default QDQ also quantises elementwise operators (the attention's Mul, Add, Concat…); the
"convolutions only" recipes give it ``op_types_to_quantize=["Conv"]``. With ``Relu`` quantised too, ONNX
Runtime folds each ReLU into its convolution's output range, so that range is [0, max] (twice the levels)."""


def _conv_names(path: Path) -> dict[str, str]:
    import onnx

    convs = [node.name for node in onnx.load(str(path)).graph.node if node.op_type == "Conv"]
    return {"first": convs[0], "fusion": convs[-1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--calibration-scenes", type=int, default=6)
    parser.add_argument("--held-out-scenes", type=int, default=4)
    parser.add_argument("--size", type=int, default=384, help="synthetic scene side (a multiple of the window)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating timing pairs per recipe")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--recipes", nargs="+", choices=list(RECIPES), default=list(RECIPES), help="which to run")
    parser.add_argument("--no-sensitivity", action="store_true", help="skip the per-layer table")
    args = parser.parse_args()
    weights = load_weights()
    window = weights.window
    calibration = windows(weights, synthetic(CALIBRATION_SEED, args.calibration_scenes, args.size), window)
    held_synthetic = synthetic(HELD_OUT_SEED, args.held_out_scenes, args.size)
    held_sets = {"examples": examples(), "synthetic (seed 202)": held_synthetic}
    fp32 = weights.predictor(window=window)
    references = {
        (set_name, key): [whole_cube(weights, fp32, scene[key], space) for scene in scenes]
        for set_name, scenes in held_sets.items()
        for key, space in SPACES.items()
    }
    torch_threads = torch.get_num_threads()
    print(f"torch {torch.__version__}; {weights.name}, window {window}; {len(calibration)} calibration windows")
    rows = []
    header = "| recipe | " + " | ".join(f"speed ×fp32, {n} thr." for n in args.threads)
    header += " | " + " | ".join(f"Δ {s} {k}" for s in held_sets for k in SPACES) + " |"
    print(header)
    print("|---" * (1 + len(args.threads) + 2 * len(held_sets)) + "|")
    with tempfile.TemporaryDirectory() as folder:
        source = export_nhwc(weights, window, Path(folder) / "fp32.onnx")
        names = _conv_names(source)
        for recipe in args.recipes:
            kept, percentile, op_types = RECIPES[recipe]
            target = Path(folder) / "int8.onnx"
            quantise(source, target, calibration, [names[k] for k in kept], percentile, op_types)
            row = {"recipe": recipe, "speed": {}, "deviation": {}, "mrae": {}}
            for threads in args.threads:
                torch.set_num_threads(threads)
                row["speed"][threads] = speed_ratio(fp32, ort_predictor(target, threads), calibration[:2], args.rounds)
            torch.set_num_threads(torch_threads)
            int8 = ort_predictor(target, torch_threads)
            for (set_name, key), cubes in references.items():
                scenes = held_sets[set_name]
                ours = [whole_cube(weights, int8, scene[key], SPACES[key]) for scene in scenes]
                row["deviation"][f"{set_name} {key}"] = float(
                    sum(np.abs(a - b).sum() for a, b in zip(ours, cubes, strict=True))
                    / sum(np.abs(b).sum() for b in cubes)
                )
                before = np.mean([mrae(c, s["truth"]) for c, s in zip(cubes, scenes, strict=True)])
                after = np.mean([mrae(c, s["truth"]) for c, s in zip(ours, scenes, strict=True)])
                row["mrae"][f"{set_name} {key}"] = (float(before), float(after))
            rows.append(row)
            cells = [f"{row['speed'][n]:.2f}×" for n in args.threads]
            cells += [f"{100 * v:.2f}%" for v in row["deviation"].values()]
            print(f"| {recipe} | " + " | ".join(cells) + " |", flush=True)
    print("\nMRAE against the truth, fp32 → int8 (last recipe):")
    for key, (before, after) in rows[-1]["mrae"].items():
        print(f"  {key}: {before:.4f} → {after:.4f} ({100 * (after / before - 1):+.2f}%)")
    table = (
        []
        if args.no_sensitivity
        else sensitivity(weights, window, calibration, windows(weights, held_synthetic, window))
    )
    if table:
        print("\n| layer | share of the FLOPs | weights int8 (bias-corrected) | input uint8 |")
        print("|---|---|---|---|")
    for entry in table:
        print(f"| {entry['layer']} | {100 * entry['share_of_flops']:.0f}% | {100 * entry['weights_rounded']:.2f}% "
              f"| {100 * entry['input_rounded']:.2f}% |")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps({"recipes": rows, "sensitivity": table, "args": vars(args) | {
            "json": str(args.json)}}, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
