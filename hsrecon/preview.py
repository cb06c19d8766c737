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

from hsrecon.physics import WAVELENGTHS_NM, align_to_bands, load_colour
from hsrecon.temps import atomic_file

__all__ = ["cube_to_linear_srgb", "cube_to_srgb", "encode_srgb", "srgb_white", "write_preview"]


@lru_cache(maxsize=8)
def _cube_to_linear_srgb_matrix(wavelengths_nm: tuple[float, ...] = tuple(WAVELENGTHS_NM)) -> np.ndarray:
    """B×3: cube → XYZ (CIE 1931 2°, ȳ summing to 1) → linear sRGB.

    hsrecon's 31 bands take the table by :func:`hsrecon.physics.align_to_bands`; other wavelengths take
    it at the band centres (colour-science interpolates its 1 nm table), weighted by each band's width,
    zero outside its 360–830 nm. ValueError when no band is visible.
    """
    colour = load_colour()
    cmfs = colour.MSDS_CMFS["CIE 1931 2 Degree Standard Observer"]
    if tuple(wavelengths_nm) == tuple(WAVELENGTHS_NM):
        values = align_to_bands(cmfs)
    else:
        centres = np.asarray(wavelengths_nm, dtype=np.float64)
        visible = (centres >= cmfs.wavelengths[0]) & (centres <= cmfs.wavelengths[-1])
        values = np.zeros((centres.size, 3))
        values[visible] = cmfs[centres[visible]]
        widths = np.gradient(centres) if centres.size > 1 else np.ones(1)
        values *= (widths / widths.max())[:, None]
    if not values[:, 1].sum() > 0:
        raise ValueError(f"no visible band between {cmfs.wavelengths[0]:g} and {cmfs.wavelengths[-1]:g} nm")
    to_xyz = values / values[:, 1].sum()
    xyz_to_srgb = np.asarray(colour.models.RGB_COLOURSPACE_sRGB.matrix_XYZ_to_RGB)
    return to_xyz @ xyz_to_srgb.T


def cube_to_linear_srgb(
    cube: np.ndarray, wavelengths_nm: np.ndarray | None = None, *, dtype: type = np.float64
) -> np.ndarray:
    """An H×W×B cube → H×W×3 linear sRGB, before any exposure. Bands at ``wavelengths_nm`` (default:
    hsrecon's 31, 400–700 nm); ValueError when none is visible. ``dtype`` float32 halves the memory and
    time of a display-only rendering (the viewer's); previews are computed in float64."""
    key = tuple(WAVELENGTHS_NM) if wavelengths_nm is None else tuple(float(w) for w in wavelengths_nm)
    with np.errstate(invalid="ignore", over="ignore"):  # a cube with ±inf (the viewer shows any): NaN, quietly
        return np.asarray(cube, dtype=dtype) @ _cube_to_linear_srgb_matrix(key).astype(dtype)


def srgb_white(linear: np.ndarray) -> float:
    """The linear value shown as white: the 99.5th percentile of each pixel's brightest channel.

    A viewer computes it once, on the whole image, and keeps it for every zoomed region, so colours
    do not change as the user zooms.
    """
    peaks = linear.max(axis=-1) if linear.size else np.zeros(0)
    peaks = peaks[np.isfinite(peaks)]  # NaN or infinity in a cube must not set (or break) the exposure
    scale = float(np.percentile(peaks, 99.5)) if peaks.size else 1.0
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
