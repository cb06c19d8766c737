"""A quick sRGB look at a cube, so a user can eyeball a conversion next to its input.

The cube is integrated against the CIE 1931 2° colour matching functions (colour-science's measured
table) to XYZ, converted to linear sRGB, scaled so its 99.5th percentile is white (a cube carries no
display brightness), encoded with the sRGB curve and written as an 8-bit PNG, atomically.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import imageio.v3 as iio
import numpy as np

from hsrecon.io.temps import atomic_file
from hsrecon.physics import align_to_bands, load_colour

__all__ = ["cube_to_linear_srgb", "cube_to_srgb", "encode_srgb", "srgb_white", "write_preview"]


@lru_cache(maxsize=1)
def _cube_to_linear_srgb_matrix() -> np.ndarray:
    """31×3: cube → XYZ (CIE 1931 2°, ȳ summing to 1) → linear sRGB."""
    colour = load_colour()
    cmfs = align_to_bands(colour.MSDS_CMFS["CIE 1931 2 Degree Standard Observer"])
    to_xyz = cmfs / cmfs[:, 1].sum()
    xyz_to_srgb = np.asarray(colour.models.RGB_COLOURSPACE_sRGB.matrix_XYZ_to_RGB)
    return to_xyz @ xyz_to_srgb.T


def cube_to_linear_srgb(cube: np.ndarray) -> np.ndarray:
    """An H×W×31 cube → H×W×3 linear sRGB (float64), before any exposure."""
    return np.asarray(cube, dtype=np.float64) @ _cube_to_linear_srgb_matrix()


def srgb_white(linear: np.ndarray) -> float:
    """The linear value shown as white: the 99.5th percentile of each pixel's brightest channel.

    A viewer computes it once, on the whole image, and keeps it for every zoomed region, so colours
    do not change as the user zooms.
    """
    scale = float(np.percentile(linear.max(axis=-1), 99.5)) if linear.size else 1.0
    return scale if scale > 0 and np.isfinite(scale) else 1.0


def encode_srgb(linear: np.ndarray, white: float) -> np.ndarray:
    """Linear sRGB → 8-bit sRGB: ``white`` maps to 255, values beyond it clip, the sRGB curve applied."""
    colour = load_colour()
    linear = np.clip(np.nan_to_num(linear / white), 0.0, 1.0)
    encoded = colour.models.eotf_inverse_sRGB(linear)
    return np.round(np.clip(encoded, 0.0, 1.0) * 255.0).astype(np.uint8)


def cube_to_srgb(cube: np.ndarray, white: float | None = None) -> np.ndarray:
    """An H×W×31 cube → an H×W×3 uint8 sRGB image, auto-exposed (99.5th percentile → white) unless
    ``white`` (a linear value, :func:`srgb_white`) is given."""
    linear = cube_to_linear_srgb(cube)
    return encode_srgb(linear, srgb_white(linear) if white is None else white)


def write_preview(path: Path, cube: np.ndarray) -> Path:
    """Write the sRGB preview of ``cube`` to ``path`` (temporary name, then rename)."""
    with atomic_file(path) as temp:
        iio.imwrite(temp, cube_to_srgb(cube), extension=".png")
    return path
