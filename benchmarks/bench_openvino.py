"""OpenVINO as the CPU engine: fp32, bf16 and NNCF int8 against torch fp32, for issue 25's int8 question.

``benchmarks.bench_int8`` measured ONNX Runtime; this measures the other engine the issue names, on the same
graph (the inference form exported NHWC, as ``bench_int8`` exports it), the same calibration windows
(recipe-1 scenes of seed 101, both input spaces) and the same held-out cubes (2 synthetic scenes of seed 202
and the first bundled example, both renderings, whole images in the weights' own blended windows):

- OpenVINO fp32 and bf16 (``INFERENCE_PRECISION_HINT``; bf16 is native only with AVX512-BF16 or AMX);
- NNCF post-training int8 (``nncf.quantize``, mixed preset: symmetric weights, asymmetric activations), every
  convolution; with the first (1×1 on RGB and coordinates) and last (the output) kept fp32; and only the
  dense branch's 3×3, 5×5 and 7×7 convolutions int8 (the least sensitive, 35% of the FLOPs).

Per row: model-only speed against torch fp32 (batches of 2 windows, alternating pairs, median ratio, 2
threads each) and each held-out cube's deviation from torch fp32 (mean |x − fp32| / mean |fp32|, %).
OpenVINO and NNCF are not hsrecon dependencies: ``pip install openvino nncf`` first. Run from the
repository root (a few minutes on 2 idle cores)::

    python -m benchmarks.bench_openvino
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from benchmarks.bench_int8 import examples, export_onnx, speed_ratio, synthetic, whole_cube, windows
from hsrecon.weights import Weights, load_weights

WINDOW = 192
THREADS = 2


def compiled(core, model, precision: str) -> Callable[[np.ndarray], np.ndarray]:
    config = {"INFERENCE_NUM_THREADS": THREADS, "INFERENCE_PRECISION_HINT": precision, "PERFORMANCE_HINT": "LATENCY"}
    request = core.compile_model(model, "CPU", config).create_infer_request()
    return lambda batch: request.infer({0: np.ascontiguousarray(batch, np.float32)})[0].copy()


def deviations(weights: Weights, reference: Callable, candidate: Callable, held_out: list[dict]) -> list[float]:
    found = []
    for scene in held_out:
        for key, space in (("clean", "ntire2020-clean"), ("srgb", "srgb")):
            expected = whole_cube(weights, reference, scene[key], space)
            got = whole_cube(weights, candidate, scene[key], space)
            found.append(float(np.abs(got - expected).mean() / np.abs(expected).mean()))
    return found


def main() -> None:
    import nncf
    import openvino as ov

    torch.set_num_threads(THREADS)
    weights = load_weights()
    reference = weights.predictor()
    calibration = windows(weights, synthetic(101, 4, 384), WINDOW)
    held_out = synthetic(202, 2, 384) + examples()[:1]
    core = ov.Core()
    with tempfile.TemporaryDirectory() as folder:
        graph = core.read_model(str(export_onnx(weights, WINDOW, Path(folder) / "lwrdan.onnx")))
    convolutions = [op.get_friendly_name() for op in graph.get_ordered_ops() if op.get_type_name() == "Convolution"]
    dataset = nncf.Dataset(list(calibration[:, None]))
    rows = {"OpenVINO fp32": compiled(core, graph, "f32"), "OpenVINO bf16": compiled(core, graph, "bf16")}
    recipes = {
        "NNCF int8, every convolution": None,
        "NNCF int8, first and output fp32": [convolutions[0], convolutions[-1]],
        "NNCF int8, conv2–conv4 only (first, head, output fp32)": [convolutions[0], *convolutions[-2:]],
    }
    for name, ignored in recipes.items():
        options = {} if ignored is None else {"ignored_scope": nncf.IgnoredScope(names=ignored)}
        quantised = nncf.quantize(graph, dataset, subset_size=len(calibration),
                                  preset=nncf.QuantizationPreset.MIXED, **options)  # fmt: skip
        rows[name] = compiled(core, quantised, "f32")
    print(f"OpenVINO {ov.__version__}, NNCF {nncf.__version__}; {len(calibration)} calibration windows")
    print("| engine, recipe | speed ×torch fp32 | Δ held-out cubes (synthetic clean/srgb ×2, example clean/srgb) |")
    print("|---|---:|---|")
    batch = calibration[:2]
    for name, predict in rows.items():
        ratio = speed_ratio(reference, predict, batch, 15)
        spread = ", ".join(f"{d:.2%}" for d in deviations(weights, reference, predict, held_out))
        print(f"| {name} | {ratio:.2f}× | {spread} |")


if __name__ == "__main__":
    main()
