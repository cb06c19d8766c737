"""Measure what the published weights actually use: each branch's share of the output, and the coordinates.

Run from the repository root (prints a Markdown table for docs/model.md)::

    python -m tools.branch_contributions

Inputs: the sample scenes of ``tools/make_examples.py`` (clean-track renderings of measured reflectances,
with their ground-truth cubes), cut into the authors' non-overlapping 64×64 windows, and uniform noise.
The final conv is linear, so ``fusion(dense + unet) = W∗dense + W∗unet + b`` splits exactly.
"""

from __future__ import annotations

import numpy as np
import torch

from hsrecon.physics import quantize_ntire2020_clean, render_ntire2020_clean
from hsrecon.weights import load_model
from tools.make_examples import SCENES, make_scene


def windows_64(rgb: np.ndarray, cube: np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
    """Non-overlapping 64×64 windows (the part of the image they tile), as N×3×64×64 and N×64×64×31."""
    h, w = (rgb.shape[0] // 64) * 64, (rgb.shape[1] // 64) * 64
    tiles = [(y, x) for y in range(0, h, 64) for x in range(0, w, 64)]
    x = np.stack([rgb[y : y + 64, x : x + 64] for y, x in tiles])
    gt = np.stack([cube[y : y + 64, x : x + 64] for y, x in tiles])
    return torch.from_numpy(x).permute(0, 3, 1, 2).float(), gt


@torch.no_grad()
def decompose(model, x: torch.Tensor) -> dict[str, torch.Tensor]:
    coords = model.coords(x)
    dense, unet = model.dense(coords), model.unet(coords)
    linear = lambda t: torch.nn.functional.conv2d(t, model.fusion.weight, padding=2)  # noqa: E731
    flat = coords.clone()
    flat[:, 3:] = 0.0
    return {
        "full": model(x),
        "dense_part": linear(dense),
        "unet_part": linear(unet),
        "no_unet": model.fusion(dense),
        "unet_const": model.fusion(dense + unet.mean(dim=(0, 2, 3), keepdim=True)),
        "no_coords": model.fusion(model.dense(flat) + model.unet(flat)),
    }


def mrae(pred: np.ndarray, gt: np.ndarray) -> float:
    return float(np.mean(np.abs(pred - gt) / np.maximum(gt, 1e-6)))


def main() -> None:
    model = load_model()
    rows = []
    inputs = {}
    for name, spec in SCENES.items():
        cube = make_scene(*spec)
        rgb = quantize_ntire2020_clean(render_ntire2020_clean(cube)).astype(np.float32) / 255.0
        inputs[name] = windows_64(rgb, cube)
    inputs["uniform noise"] = (torch.rand(8, 3, 64, 64, generator=torch.Generator().manual_seed(0)), None)
    print(
        "| input | mean abs(dense part) | mean abs(U-net part) | U-net part, spread | max abs Δ, U-net removed "
        "| max abs Δ, U-net → its mean | max abs Δ, coords zeroed | MRAE | MRAE, coords zeroed |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name, (x, gt) in inputs.items():
        out = {k: v.permute(0, 2, 3, 1).numpy() for k, v in decompose(model, x).items()}
        spread = float(out["unet_part"].std(axis=(0, 1, 2)).max())
        row = [
            name,
            f"{np.abs(out['dense_part']).mean():.4f}",
            f"{np.abs(out['unet_part']).mean():.4f}",
            f"{spread:.2e}",
            f"{np.abs(out['full'] - out['no_unet']).max():.4f}",
            f"{np.abs(out['full'] - out['unet_const']).max():.2e}",
            f"{np.abs(out['full'] - out['no_coords']).max():.4f}",
            f"{mrae(out['full'], gt):.4f}" if gt is not None else "–",
            f"{mrae(out['no_coords'], gt):.4f}" if gt is not None else "–",
        ]
        rows.append(row)
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
