"""Make the bundled sample images in ``samples/``: NTIRE 2020 clean-track renderings of synthetic scenes.

Why synthetic: NTIRE images cannot be redistributed or downloaded here. Each scene is built from measured
reflectance spectra (colour-science's ColorChecker sets), lit by a measured CIE illuminant, with smooth
shading, and rendered exactly as the challenge's clean track did (``hsrecon.physics``), so the samples
are in the input space the default weights expect. Deterministic: run from the repository root::

    python tools/make_samples.py            # rewrites samples/*.png and samples/README.md's table

The cubes behind the samples are written too (``--cubes DIR``, .npy) for checks against ground truth.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import imageio.v3 as iio
import numpy as np

from hsrecon.physics import WAVELENGTHS_NM, load_colour, quantize_ntire2020_clean, render_ntire2020_clean

SCENES = {
    # name: (height, width, reflectance set, illuminant, seed)
    "colorchecker_d65": (192, 256, "BabelColor Average", "D65", 1),
    "ohta_a_shaded": (240, 320, "ColorChecker N Ohta", "A", 2),
    "mixed_f2_small": (100, 150, "BabelColor Average", "FL2", 3),
}


def _spectra(colour, collection: str) -> np.ndarray:
    """The set's reflectances at the 31 wavelengths (n×31), with colour-science's interpolation."""
    shape = colour.SpectralShape(WAVELENGTHS_NM[0], WAVELENGTHS_NM[-1], 10)
    return np.stack([sd.copy().align(shape).values for sd in colour.SDS_COLOURCHECKERS[collection].values()])


def _illuminant(colour, name: str) -> np.ndarray:
    shape = colour.SpectralShape(WAVELENGTHS_NM[0], WAVELENGTHS_NM[-1], 10)
    values = colour.SDS_ILLUMINANTS[name].copy().align(shape).values
    return values / values.max()


def make_scene(height: int, width: int, collection: str, illuminant: str, seed: int) -> np.ndarray:
    """An H×W×31 radiance cube: a jittered grid of patches, soft mixing at their edges, shading, noise."""
    colour = load_colour()
    rng = np.random.default_rng(seed)
    reflectances = _spectra(colour, collection)
    rows, cols = 4, 6
    labels = rng.permutation(len(reflectances))[: rows * cols].reshape(rows, cols)
    y, x = np.mgrid[0:height, 0:width]
    cell_y = np.clip((y / height * rows + 0.15 * np.sin(x / 17.0)).astype(int), 0, rows - 1)
    cell_x = np.clip((x / width * cols + 0.15 * np.cos(y / 13.0)).astype(int), 0, cols - 1)
    cube = reflectances[labels[cell_y, cell_x]]
    blend = 0.5 + 0.5 * np.sin(2 * np.pi * x / width)[..., None]
    other = reflectances[labels[(cell_y + 1) % rows, cell_x]]
    cube = cube * (0.85 + 0.15 * blend) + other * 0.15 * (1 - blend)
    shading = 0.35 + 0.65 * np.exp(-(((x - 0.6 * width) / width) ** 2 + ((y - 0.4 * height) / height) ** 2) * 1.5)
    cube = cube * shading[..., None] * _illuminant(colour, illuminant) * 0.8
    cube = cube * (1 + 0.01 * rng.standard_normal(cube.shape))
    return np.clip(cube, 0, None).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path, default=Path("samples"))
    parser.add_argument("--cubes", type=Path, default=None, help="also write the ground-truth cubes (.npy) here")
    args = parser.parse_args()
    args.output.mkdir(parents=True, exist_ok=True)
    for name, spec in SCENES.items():
        cube = make_scene(*spec)
        rgb = quantize_ntire2020_clean(render_ntire2020_clean(cube))
        iio.imwrite(args.output / f"{name}.png", rgb)
        if args.cubes:
            args.cubes.mkdir(parents=True, exist_ok=True)
            np.save(args.cubes / f"{name}.npy", cube)
        print(f"{name}.png  {rgb.shape[1]}x{rgb.shape[0]}  rgb mean {rgb.mean():.1f}/255  cube max {cube.max():.3f}")


if __name__ == "__main__":
    main()
