"""Spectral physics: the 31 wavelengths, colour matching functions, and the NTIRE 2020 clean rendering.

Every table comes from colour-science's measured datasets, resampled with its own interpolation; nothing
spectral is typed in by hand. The NTIRE 2020 clean track rendered its RGB images as (see
``../shared/docs/formats.md``)::

    rgb = cube @ F / 256,   F = CIE 1964 10° x̄ ȳ z̄ at 400…700 nm, each column scaled to sum to 255
    png = uint8(clip(rgb, 0, 1) · 255)   (truncation)

so the "RGB" the default weights expect is XYZ-like, white-balanced to the equal-energy illuminant and
linear: a flat spectrum of value v renders to v·255/256 in every channel.

The measured reflectances and illuminants the synthetic scenes and the camera model are built from are
served here too (:func:`measured_reflectances`, :func:`illuminant_spectrum`), aligned the same way.
"""

from __future__ import annotations

import warnings
from functools import lru_cache

import numpy as np

from hsrecon.cache import disk_cached

__all__ = [
    "REFLECTANCE_SETS",
    "WAVELENGTHS_NM",
    "align_to_bands",
    "cmfs_cie1964_10deg",
    "fit_white_preserving_matrix",
    "illuminant_spectrum",
    "load_colour",
    "measured_reflectances",
    "ntire2020_clean_matrix",
    "quantize_ntire2020_clean",
    "reflectance_set",
    "render_ntire2020_clean",
]

WAVELENGTHS_NM: tuple[float, ...] = tuple(float(w) for w in range(400, 701, 10))

RAWTOACES_190 = "rawtoaces 190 patches"
REFLECTANCE_SETS: tuple[str, ...] = ("BabelColor Average", "ColorChecker N Ohta", "ISO 17321-1", "PMC", RAWTOACES_190)
"""colour-science's measured reflectance sets: its ``SDS_COLOURCHECKERS`` (less the aliases
``babel_average`` and ``cc_ohta``) and the RAW to ACES v1 training patches (``190_Patches.csv``)."""


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
@disk_cached("cmfs-cie1964-10deg", modules=("physics",))  # start-up: no colour-science import once cached
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


def align_to_bands(spectral) -> np.ndarray:
    """A colour-science (multi-)spectral distribution at the 31 wavelengths, by its own ``align``.

    ``align`` interpolates (Sprague for uniform data) where a wavelength is not in the table and extrapolates
    (constant) beyond it; every table used here is measured at 5 or 10 nm over at least 400–700 nm except
    the Sigma camera (to 680 nm), so the values are the measured samples themselves. Returns float64,
    31 (or 31×n) values.
    """
    return np.asarray(spectral.copy().align(_spectral_shape()).values, dtype=np.float64)


def fit_white_preserving_matrix(source: np.ndarray, target: np.ndarray, white: np.ndarray | None = None) -> np.ndarray:
    """The 3×3 M minimising ``|source @ M.T − target|²`` with ``M @ (1, 1, 1) = white`` (default (1, 1, 1)).

    A colour matrix fitted on measured patches that still maps the white of ``source`` exactly to
    ``white``: neutrals stay neutral whatever the fit's residual. Solved row by row from the KKT system of
    ``min |A m − b|²`` subject to ``1·m = w``. ``source``, ``target``: n×3.
    """
    white = np.ones(3) if white is None else np.asarray(white, dtype=np.float64)
    kkt = np.zeros((4, 4))
    kkt[:3, :3] = source.T @ source
    kkt[:3, 3] = kkt[3, :3] = 1.0
    rows = [np.linalg.solve(kkt, np.r_[source.T @ target[:, j], white[j]])[:3] for j in range(3)]
    return np.stack(rows)


def reflectance_set(name: str) -> tuple[np.ndarray, tuple[str, ...]]:
    """One measured reflectance set (n×31, float64) and its patch names, negatives (rounding, ~1e-16) set to 0."""
    colour = load_colour()
    if name == RAWTOACES_190:
        msds = colour.characterisation.read_training_data_rawtoaces_v1()
        values, labels = align_to_bands(msds).T, tuple(msds.labels)
    elif name in REFLECTANCE_SETS:
        patches = colour.SDS_COLOURCHECKERS[name]
        values, labels = np.stack([align_to_bands(sd) for sd in patches.values()]), tuple(patches.keys())
    else:
        raise ValueError(f"unknown reflectance set {name!r}; choose one of {', '.join(REFLECTANCE_SETS)}")
    return np.clip(values, 0.0, None), labels


@lru_cache(maxsize=1)
def measured_reflectances() -> tuple[np.ndarray, tuple[str, ...]]:
    """Every distinct measured reflectance colour-science ships (n×31, read-only), labelled ``set: patch``.

    A spectrum equal (to 1e-9) to one already taken is dropped: ISO 17321-1 repeats ColorChecker N Ohta's
    values, so 268 spectra remain of 292. A few of the 190 patches exceed 1 slightly (up to 1.05: optical
    brighteners); they are kept as measured.
    """
    kept: list[np.ndarray] = []
    labels: list[str] = []
    for name in REFLECTANCE_SETS:
        values, patch_names = reflectance_set(name)
        for spectrum, patch in zip(values, patch_names, strict=True):
            if not any(np.max(np.abs(spectrum - other)) < 1e-9 for other in kept):
                kept.append(spectrum)
                labels.append(f"{name}: {patch}")
    table = np.stack(kept)
    table.setflags(write=False)
    return table, tuple(labels)


def illuminant_spectrum(name: str) -> np.ndarray:
    """A CIE illuminant or light source from colour-science (``SDS_ILLUMINANTS``, else ``SDS_LIGHT_SOURCES``)
    at the 31 wavelengths, as tabulated (relative power, typically 100 at 560 nm)."""
    colour = load_colour()
    for table in (colour.SDS_ILLUMINANTS, colour.SDS_LIGHT_SOURCES):
        if name in table:
            return align_to_bands(table[name])
    raise ValueError(f"unknown illuminant {name!r}: not in colour.SDS_ILLUMINANTS nor colour.SDS_LIGHT_SOURCES")
