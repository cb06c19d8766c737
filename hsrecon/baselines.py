"""Per-pixel baselines a network has to beat: a 3→31 map fitted for MRAE, and colour-science's Otsu 2018.

A network that only beats the least-squares 3→31 map (:class:`hsrecon.evaluate.LinearBaseline`) may just
be optimising another loss; and a user converting photos today would reach for a well-kept colour
library first. So ``hsrecon eval`` also scores:

- the **MRAE-fitted linear map** (:func:`fit_mrae_map`): the 3→B matrix minimising mean relative absolute
  error, by iteratively reweighted least squares from the least-squares solution;
- **Otsu et al. 2018** (:class:`Otsu2018Baseline`), colour-science's per-pixel reflectance recovery
  (``colour.recovery.XYZ_to_sd_Otsu2018``: a tree of chromaticity clusters, each with a mean and three
  basis spectra fitted to measured reflectances), the reflectance lit by the illuminant the input's white
  stands for. The per-pixel arithmetic here is colour-science's own, vectorised over pixels (the library
  call takes one colour at a time); the tests compare it with the library call.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from hsrecon.inputs import (
    InputTransform,
    canonical_space,
    d65_white_scale,
    make_input_transform,
    srgb_to_clean_matrix,
)
from hsrecon.physics import WAVELENGTHS_NM, cmfs_cie1964_10deg, illuminant_spectrum, load_colour

__all__ = ["IRLS_ROUNDS", "Otsu2018Baseline", "fit_mrae_map", "otsu2018_reflectance"]

IRLS_ROUNDS = 30
_RESIDUAL_FLOOR = 1e-6  # IRLS weight 1/|residual| needs a floor where a value is already fitted exactly
_BLOCK_ROWS = 64

# emit(y0, rows) receives reconstructed rows (h×W×B float32), top to bottom, each once.
Emit = Callable[[int, np.ndarray], None]


def fit_mrae_map(
    x: np.ndarray, y: np.ndarray, start: np.ndarray | None = None, rounds: int = IRLS_ROUNDS
) -> np.ndarray:
    """The 3×B matrix m minimising Σ |x·m − y| / |y| for each band, by iteratively reweighted least squares.

    Each round solves, band by band, the least squares weighted by 1 / (|y| · max(|residual|, 1e-6)), the
    standard IRLS for a weighted L1 loss; it starts from ``start`` (default: the least-squares map).
    Values with y = 0 are left out, as MRAE leaves them out. 30 rounds settle the MRAE to ~1e-4 relative
    on the synthetic sets (measured in tools/per_pixel_bounds.py's runs).
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    matrix = np.linalg.lstsq(x, y, rcond=None)[0] if start is None else np.array(start, dtype=np.float64)
    scale = np.where(y != 0, np.abs(y), np.inf)  # weight 0 where y = 0
    for _ in range(rounds):
        weights = 1.0 / (scale * np.maximum(np.abs(x @ matrix - y), _RESIDUAL_FLOOR))
        for band in range(y.shape[1]):
            root = np.sqrt(weights[:, band])
            matrix[:, band] = np.linalg.lstsq(x * root[:, None], y[:, band] * root, rcond=None)[0]
    return matrix


# --- Otsu et al. 2018, vectorised -------------------------------------------------------------------------


@dataclass(frozen=True)
class _OtsuSolver:
    """colour-science's Otsu 2018 for one observer and illuminant, prepared for many pixels at once.

    Per cluster: the 3×3 matrix from basis weights to XYZ, inverted, and the cluster mean's XYZ, computed
    with ``colour.sd_to_XYZ`` exactly as ``XYZ_to_sd_Otsu2018`` does for each call.
    """

    selector: np.ndarray  # rows (origin, direction, lesser index, greater index)
    basis: np.ndarray  # clusters × 3 × S
    means: np.ndarray  # clusters × S
    inverse: np.ndarray  # clusters × 3 × 3
    mean_xyz: np.ndarray  # clusters × 3
    bands: np.ndarray  # indices of 400, 410, …, 700 nm in the dataset's wavelengths

    def select(self, xy: np.ndarray) -> np.ndarray:
        """The cluster of each chromaticity (n×2), walking the dataset's selector tree for all at once."""
        cluster = np.full(len(xy), -1, dtype=np.int64)
        node = np.zeros(len(xy), dtype=np.int64)
        active = np.arange(len(xy))
        while active.size:
            origin, direction, lesser, greater = self.selector[node[active]].T
            side = xy[active, direction.astype(np.int64)] <= origin
            step = np.where(side, lesser, greater).astype(np.int64)
            leaf = step >= 0  # a non-negative index is a cluster, a negative one the next row
            cluster[active[leaf]] = step[leaf]
            node[active[~leaf]] = -step[~leaf]
            active = active[~leaf]
        return cluster

    def __call__(self, xyz: np.ndarray) -> np.ndarray:
        """n×3 XYZ (white Y = 1) → n×31 reflectances at 400…700 nm, clipped to [0, 1] as colour does."""
        colour = load_colour()
        clusters = self.select(np.asarray(colour.XYZ_to_xy(xyz), dtype=np.float64))
        out = np.empty((len(xyz), self.bands.size))
        for index in np.unique(clusters):
            members = clusters == index
            weights = (xyz[members] - self.mean_xyz[index]) @ self.inverse[index].T
            spectra = weights @ self.basis[index] + self.means[index]
            out[members] = spectra[:, self.bands]
        return np.clip(out, 0.0, 1.0)


@lru_cache(maxsize=2)
def _otsu_solver(observer: str) -> _OtsuSolver:
    """``"cie1931-d65"`` (colour-science's defaults) or ``"cie1964-e"`` (the clean track's observer, white E)."""
    colour = load_colour()
    from colour.recovery import SPECTRAL_SHAPE_OTSU2018
    from colour.recovery.otsu2018 import DATASET_REFERENCE_OTSU2018

    dataset = DATASET_REFERENCE_OTSU2018

    if observer == "cie1931-d65":
        cmfs = colour.MSDS_CMFS["CIE 1931 2 Degree Standard Observer"].copy().align(SPECTRAL_SHAPE_OTSU2018)
        illuminant = colour.SDS_ILLUMINANTS["D65"].copy().align(cmfs.shape)
    else:
        cmfs = colour.MSDS_CMFS["CIE 1964 10 Degree Standard Observer"].copy().align(SPECTRAL_SHAPE_OTSU2018)
        illuminant = colour.SDS_ILLUMINANTS["E"].copy().align(cmfs.shape)
    wavelengths = dataset.shape.wavelengths

    def xyz_of(values: np.ndarray) -> np.ndarray:
        with colour.domain_range_scale("ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return colour.sd_to_XYZ(colour.SpectralDistribution(values, wavelengths), cmfs, illuminant) / 100

    basis, means = np.asarray(dataset.basis_functions), np.asarray(dataset.means)
    to_xyz = np.stack([np.stack([xyz_of(b) for b in cluster], axis=1) for cluster in basis])
    bands = np.searchsorted(wavelengths, WAVELENGTHS_NM)
    if not np.allclose(wavelengths[bands], WAVELENGTHS_NM):
        raise RuntimeError("colour-science's Otsu 2018 dataset does not sample 400…700 nm every 10 nm")
    return _OtsuSolver(
        selector=np.asarray(dataset.selector_array),
        basis=basis,
        means=means,
        inverse=np.linalg.inv(to_xyz),
        mean_xyz=np.stack([xyz_of(m) for m in means]),
        bands=bands,
    )


def otsu2018_reflectance(xyz: np.ndarray, *, observer: str = "cie1931-d65") -> np.ndarray:
    """Reflectances (…×31, 400…700 nm) of XYZ values (…×3, white Y = 1) by Otsu et al. 2018.

    The same numbers as ``colour.recovery.XYZ_to_sd_Otsu2018(XYZ, cmfs, illuminant)`` (clip on) at those
    wavelengths, for many pixels at once. ``observer``: ``"cie1931-d65"`` (the library's defaults) or
    ``"cie1964-e"`` (CIE 1964 10°, equal-energy illuminant: the NTIRE clean track's rendering).
    """
    xyz = np.asarray(xyz, dtype=np.float64)
    flat = _otsu_solver(observer)(xyz.reshape(-1, 3))
    return flat.reshape(*xyz.shape[:-1], flat.shape[-1])


@lru_cache(maxsize=1)
def _clean_to_xyz10() -> np.ndarray:
    """Per-channel factors from clean-space values to CIE 1964 XYZ with equal-energy white at Y = 1.

    The clean rendering scales each CMF column to sum to 255 and divides by 256, so a flat spectrum of 1
    renders to 255/256 in every channel; XYZ normalises all three by ȳ's sum instead.
    """
    sums = cmfs_cie1964_10deg().sum(axis=0)
    return (256.0 / 255.0) * sums / sums[1]


@lru_cache(maxsize=1)
def _d65_radiance() -> np.ndarray:
    """D65 at the 31 bands, at the network's radiance scale (white as luminous as a flat spectrum of 1)."""
    d65 = illuminant_spectrum("D65")
    return d65 * d65_white_scale(d65)


@dataclass(frozen=True)
class Otsu2018Baseline:
    """Otsu et al. 2018 reflectance recovery × the illuminant, per pixel, as a method for hsrecon.evaluate.

    ``file_space`` is what the RGB files hold:

    - ``srgb`` / ``linear`` (photos): the pixel, decoded to linear sRGB at exposure 1 (white = 1), becomes
      CIE 1931 XYZ through sRGB's matrix; Otsu with colour-science's defaults (CIE 1931 2°, D65) gives the
      reflectance, and the output is reflectance × D65, at the network's radiance scale times the input
      transform's exposure (so it is in the same scale as the network's output).
    - ``ntire2020-clean``: the clean values are CIE 1964 10° XYZ up to a per-channel factor and an
      equal-energy white; Otsu with that observer and illuminant E gives the reflectance, which is also
      the radiance (a flat spectrum of 1 renders to white).
    """

    file_space: str

    def __call__(self, pixels: np.ndarray, transform: InputTransform, emit: Emit) -> None:
        space = canonical_space(self.file_space)
        if transform.space != space:
            transform = make_input_transform(pixels, space, max_code=transform.max_code)
        for y0 in range(0, pixels.shape[0], _BLOCK_ROWS):
            clean = np.asarray(transform(pixels[y0 : y0 + _BLOCK_ROWS]), dtype=np.float64) / transform.exposure
            emit(y0, (transform.exposure * self._radiance(clean, space)).astype(np.float32))

    @staticmethod
    def _radiance(clean: np.ndarray, space: str) -> np.ndarray:
        """Clean-space values at exposure 1 → radiance spectra (h×W×31, float64)."""
        if space == "ntire2020-clean":
            return otsu2018_reflectance(clean * _clean_to_xyz10(), observer="cie1964-e")
        colour = load_colour()
        linear = clean @ np.linalg.inv(srgb_to_clean_matrix()).T  # undo the input transform's 3×3 step
        xyz = linear @ np.asarray(colour.RGB_COLOURSPACES["sRGB"].matrix_RGB_to_XYZ).T
        return otsu2018_reflectance(xyz, observer="cie1931-d65") * _d65_radiance()
