"""Make the bundled examples in ``examples/``: synthetic scenes with their ground-truth cubes.

Why synthetic: NTIRE images cannot be redistributed or downloaded here. Each scene is built from measured
reflectance spectra (colour-science's ColorChecker sets), lit by a measured CIE illuminant, with smooth
shading, and rendered

- exactly as the NTIRE 2020 clean track did (``hsrecon.physics``) → ``examples/clean/NAME.png``, the input
  space the default weights expect;
- as an ordinary sRGB image (CIE 1931 2° → XYZ → sRGB, D65 white, sRGB curve, 8-bit) →
  ``examples/srgb/NAME.png``, for ``--input-space srgb``;

and the cube itself is kept as ``examples/truth/NAME.h5`` (float16, the hsrecon .h5 layout) so a user can
measure the error of a conversion. Deterministic; run from the repository root::

    python -m tools.make_examples                      # the three committed scenes (SCENES)
    python -m tools.make_examples --synthetic 4 --seed 0 -o /tmp/more   # + scenes of hsrecon synth

The committed three keep their simple layout (a wavy grid of patches) because measured tables in
``docs/input-spaces.md``, ``docs/model.md`` and ``docs/benchmarks.md`` were made on them; ``--synthetic N``
adds ``synth_0001`` … scenes from :func:`hsrecon.data.synth.make_scene`, the generator of the training set
(every measured reflectance set, Voronoi regions, gradients, textures, shadows, highlights, varied light).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import imageio.v3 as iio
import numpy as np

from hsrecon.data.synth import make_scene as make_synthetic_scene
from hsrecon.io import open_cube_writer
from hsrecon.physics import (
    WAVELENGTHS_NM,
    align_to_bands,
    illuminant_spectrum,
    load_colour,
    quantize_ntire2020_clean,
    reflectance_set,
    render_ntire2020_clean,
)

SCENES = {
    # name: (height, width, reflectance set, illuminant, seed)
    "colorchecker_d65": (192, 256, "BabelColor Average", "D65", 1),
    "ohta_a_shaded": (240, 320, "ColorChecker N Ohta", "A", 2),
    "mixed_f2_small": (100, 150, "BabelColor Average", "FL2", 3),
}


def _illuminant(name: str) -> np.ndarray:
    values = illuminant_spectrum(name)
    return values / values.max()


def make_scene(height: int, width: int, collection: str, illuminant: str, seed: int) -> np.ndarray:
    """An H×W×31 radiance cube: a wavy grid of patches, soft mixing between rows of them, shading."""
    rng = np.random.default_rng(seed)
    reflectances, _ = reflectance_set(collection)
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
    cube = cube * shading[..., None] * _illuminant(illuminant) * 0.8
    return np.clip(cube, 0, None).astype(np.float32)


def render_srgb(cube: np.ndarray) -> np.ndarray:
    """The cube as an ordinary 8-bit sRGB image: its 99th-percentile brightest channel at 0.9."""
    colour = load_colour()
    cmfs = align_to_bands(colour.MSDS_CMFS["CIE 1931 2 Degree Standard Observer"])
    xyz = cube.astype(np.float64) @ (cmfs / cmfs[:, 1].sum())
    linear = xyz @ np.asarray(colour.models.RGB_COLOURSPACE_sRGB.matrix_XYZ_to_RGB).T
    linear = np.clip(linear * 0.9 / np.percentile(linear.max(axis=-1), 99), 0, 1)
    return np.round(colour.models.eotf_inverse_sRGB(linear) * 255).astype(np.uint8)


def write_truth(path_stem: Path, cube: np.ndarray) -> None:
    height, width = cube.shape[:2]
    attrs = {"source": "tools/make_examples.py", "content": "ground-truth radiance cube of a synthetic scene"}
    with open_cube_writer(
        path_stem, "h5", height=height, width=width, wavelengths_nm=WAVELENGTHS_NM, dtype="float16",
        attrs=attrs, overwrite=True,
    ) as writer:  # fmt: skip
        writer.write_rows(0, cube)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path, default=Path("examples"))
    parser.add_argument("--synthetic", type=int, default=0, metavar="N", help="add N scenes of hsrecon synth")
    parser.add_argument("--seed", type=int, default=0, help="seed of the --synthetic scenes")
    parser.add_argument("--size", type=int, nargs=2, default=(192, 256), metavar=("H", "W"))
    args = parser.parse_args()
    for folder in ("clean", "srgb", "truth"):
        (args.output / folder).mkdir(parents=True, exist_ok=True)
    scenes = [(name, lambda spec=spec: make_scene(*spec)) for name, spec in SCENES.items()]
    for index in range(1, args.synthetic + 1):
        rng = np.random.default_rng([args.seed, index])
        scenes.append((f"synth_{index:04d}", lambda rng=rng: make_synthetic_scene(rng, *args.size).cube))
    for name, build in scenes:
        cube = build()
        clean = quantize_ntire2020_clean(render_ntire2020_clean(cube))
        iio.imwrite(args.output / "clean" / f"{name}.png", clean)
        iio.imwrite(args.output / "srgb" / f"{name}.png", render_srgb(cube))
        write_truth(args.output / "truth" / name, cube)
        size = f"{clean.shape[1]}x{clean.shape[0]}"
        print(f"{name}: {size}, clean mean {clean.mean():.1f}/255, cube max {cube.max():.3f}")


if __name__ == "__main__":
    main()
