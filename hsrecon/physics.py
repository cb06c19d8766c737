"""Spectral physics: the 31 wavelengths, colour matching functions, and the NTIRE 2020 clean rendering.

Every table comes from colour-science's measured datasets, resampled with its own interpolation; nothing
spectral is typed in by hand. The NTIRE 2020 clean track rendered its RGB images as (see
``../shared/docs/formats.md``)::

    rgb = cube @ F / 256,   F = CIE 1964 10° x̄ ȳ z̄ at 400…700 nm, each column scaled to sum to 255
    png = uint8(clip(rgb, 0, 1) · 255)   (truncation)

so the "RGB" the default weights expect is XYZ-like, white-balanced to the equal-energy illuminant and
linear: a flat spectrum of value v renders to v·255/256 in every channel.
"""

from __future__ import annotations

import warnings
from functools import lru_cache

import numpy as np

__all__ = [
    "WAVELENGTHS_NM",
    "cmfs_cie1964_10deg",
    "load_colour",
    "ntire2020_clean_matrix",
    "quantize_ntire2020_clean",
    "render_ntire2020_clean",
]

WAVELENGTHS_NM: tuple[float, ...] = tuple(float(w) for w in range(400, 701, 10))


def load_colour():
    """Import colour-science without its warning about the optional matplotlib."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import colour
    return colour


def _spectral_shape():
    colour = load_colour()
    return colour.SpectralShape(WAVELENGTHS_NM[0], WAVELENGTHS_NM[-1], WAVELENGTHS_NM[1] - WAVELENGTHS_NM[0])


@lru_cache(maxsize=1)
def cmfs_cie1964_10deg() -> np.ndarray:
    """CIE 1964 10° colour matching functions x̄, ȳ, z̄ at the 31 wavelengths (31×3, float64)."""
    colour = load_colour()
    cmfs = colour.MSDS_CMFS["CIE 1964 10 Degree Standard Observer"].copy().align(_spectral_shape())
    values = np.asarray(cmfs.values, dtype=np.float64)
    values.setflags(write=False)
    return values


@lru_cache(maxsize=1)
def ntire2020_clean_matrix() -> np.ndarray:
    """The challenge's 31×3 projection F: the CIE 1964 10° CMFs with each column scaled to sum to 255."""
    cmfs = cmfs_cie1964_10deg()
    matrix = cmfs / cmfs.sum(axis=0, keepdims=True) * 255.0
    matrix.setflags(write=False)
    return matrix


def render_ntire2020_clean(cube: np.ndarray) -> np.ndarray:
    """Render an H×W×31 cube to the clean track's RGB, before quantisation: ``cube @ F / 256`` (float64)."""
    if cube.shape[-1] != len(WAVELENGTHS_NM):
        raise ValueError(f"expected {len(WAVELENGTHS_NM)} bands in the last axis, got shape {cube.shape}")
    return np.asarray(cube, dtype=np.float64) @ ntire2020_clean_matrix() / 256.0


def quantize_ntire2020_clean(rgb: np.ndarray) -> np.ndarray:
    """The clean track's 8-bit PNG values: ``uint8(clip(rgb, 0, 1) · 255)``, truncating as numpy's astype does."""
    return (np.clip(rgb, 0.0, 1.0) * 255.0).astype(np.uint8)
