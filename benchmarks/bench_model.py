"""Model-only speed of each inference optimisation, one step at a time, against the matmul ceiling.

Runs the network alone on batches of 64×64 windows (uniform noise) on the CPU and reports, per variant
and batch size, windows' MP/s, the GFLOP/s of the FLOPs that variant really executes, efficiency against
the fp32 matmul rate measured in the same run, and the largest output difference from the plain model
(relative to its largest output). Run from the repository root::

    python -m benchmarks.bench_model [--batch-sizes 8 16 32] [--onnx] [--compile] [--json out.json]

Variants: ``plain`` (as loaded: BatchNorm, NCHW), ``+channels-last``, ``+fold-bn``, ``+freeze-unet``
(:func:`hsrecon.inference.prepare_model`, the default of convert), optionally ``+torch.compile`` and
``onnxruntime`` (the graph ``hsrecon export`` writes: the inference form).
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.bench_convert import matmul_gflops
from hsrecon.inference import freeze_constant_branch
from hsrecon.model import flops_per_pixel, fold_batchnorm
from hsrecon.weights import load_model


def best_seconds(run, x: torch.Tensor, repeats: int) -> float:
    with torch.inference_mode():
        run(x)
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            run(x)
            best = min(best, time.perf_counter() - start)
    return best


def variants(with_compile: bool, with_onnx: bool) -> dict:
    plain = load_model()
    channels_last = copy.deepcopy(plain).to(memory_format=torch.channels_last)
    folded = fold_batchnorm(plain).to(memory_format=torch.channels_last)
    frozen, _ = freeze_constant_branch(fold_batchnorm(plain), 64)
    frozen = frozen.to(memory_format=torch.channels_last)
    found = {
        "plain": (plain, False, flops_per_pixel(plain)),
        "+channels-last": (channels_last, True, flops_per_pixel(plain)),
        "+fold-bn": (folded, True, flops_per_pixel(folded)),
        "+freeze-unet (convert's default)": (frozen, True, flops_per_pixel(frozen)),
    }
    if with_compile:
        found["+torch.compile"] = (torch.compile(frozen), True, flops_per_pixel(frozen))
    if with_onnx:  # the exported graph is the inference form (BN folded, U-net frozen), as hsrecon export writes it
        found["onnxruntime (exported inference form)"] = (onnx_runner(), False, flops_per_pixel(frozen))
    return found


def onnx_runner():
    import onnxruntime as ort

    from hsrecon.export import export_onnx

    path = Path(tempfile.mkdtemp()) / "model.onnx"
    export_onnx(None, path, window=64)  # the default weights' inference form, as hsrecon export writes it
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return lambda x: torch.from_numpy(session.run(None, {"rgb": x.contiguous().numpy()})[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[8, 16, 32])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--onnx", action="store_true")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    ceiling = matmul_gflops(torch.device("cpu"))
    reference_model = load_model()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, fp32 matmul {ceiling:.1f} GFLOP/s")
    print("| variant | batch | MP/s (windows) | executed GFLOP/MP | GFLOP/s | efficiency | max rel. Δ |")
    print("|---|---|---|---|---|---|---|")
    rows = []
    for name, (run, channels_last, flops) in variants(args.compile, args.onnx).items():
        for batch in args.batch_sizes:
            x = torch.rand(batch, 3, 64, 64, generator=torch.Generator().manual_seed(batch))
            with torch.inference_mode():
                reference = reference_model(x)
                out = run(x.contiguous(memory_format=torch.channels_last) if channels_last else x)
            delta = float((out - reference).abs().max() / reference.abs().max())
            seconds = best_seconds(
                run, x.contiguous(memory_format=torch.channels_last) if channels_last else x, args.repeats
            )
            mp_s = batch * 64 * 64 / 1e6 / seconds
            gflop_s = mp_s * 1e6 * flops / 1e9
            row = {"variant": name, "batch": batch, "mp_s": mp_s, "gflop_per_mp": flops * 1e6 / 1e9,
                   "gflop_s": gflop_s, "efficiency": gflop_s / ceiling, "max_rel_delta": delta}  # fmt: skip
            rows.append(row)
            print(f"| {name} | {batch} | {mp_s:.3f} | {row['gflop_per_mp']:.1f} | {row['gflop_s']:.1f} "
                  f"| {row['efficiency']:.0%} | {delta:.1e} |", flush=True)  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps({"matmul_gflop_s": ceiling, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
