"""Measured reflectances grouped into material classes, and light sources at any colour temperature.

The second synthetic recipe (:mod:`hsrecon.data.scenes`) paints each region with a *class* of material
(vegetation, soil, bark and litter, pavement, roofing, paint, dyed objects), so that what a region looks like
(its texture, shape and neighbours) says which spectra it may hold. The spectra are measured, never typed in:

- **earthlib** (PyPI, MIT): 7,261 field and lab reflectances, 400–2450 nm at 10 nm, shipped in its wheel as an
  ENVI spectral library (``earthlib/data/spectra.sli``, opened with SPy) with class labels per spectrum in
  ``spectra.csv`` (``LEVEL_3``: soil, canopy, asphalt, comp_shingle, paint, bark, …). Its 2,000 canopy spectra
  are PROSAIL simulations (``LEVEL_4`` = simulated); the rest are measured.
- **colour-science**: every distinct reflectance of its colour checkers and the RAW to ACES 190 training
  patches (:func:`hsrecon.physics.measured_reflectances`), plus the CIE test colour samples (CIE 1995) and the
  NIST CQS 9.0 samples: manufactured colours (dyes, pigments, prints).

All are resampled to 400–700 nm / 10 nm with colour-science's own ``align`` (for earthlib's 10 nm grid these are
the measured samples themselves); earthlib's are clipped to [0, 1], colour-science's keep their measured values
(three RAW to ACES patches reach 1.047: optical brighteners).

Light: CIE daylight at any correlated colour temperature (colour-science's D-series generator), Planck's
blackbody, and the tabulated CIE and measured sources (fluorescent, LED, …) of ``colour.SDS_ILLUMINANTS`` and
``colour.SDS_LIGHT_SOURCES`` (:func:`light_spectrum`).
"""

from __future__ import annotations

import csv
import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from hsrecon.physics import align_to_bands, load_colour, measured_reflectances

__all__ = [
    "EARTHLIB_CLASSES",
    "MATERIAL_CLASSES",
    "MaterialLibrary",
    "blackbody",
    "daylight",
    "earthlib_folder",
    "earthlib_spectra",
    "light_family",
    "light_spectrum",
    "material_library",
]

EARTHLIB_CLASSES: dict[str, str] = {
    # earthlib LEVEL_3 → material class
    "canopy": "vegetation",
    "soil": "soil",
    "dirt": "soil",
    "sand": "soil",
    "bark": "wood",
    "wood": "wood",
    "litter": "litter",
    "npv": "litter",
    "char": "litter",
    "asphalt": "pavement",
    "road": "pavement",
    "parking_lot": "pavement",
    "sidewalk": "pavement",
    "driveway": "pavement",
    "bridge": "pavement",
    "manhole": "pavement",
    "gravel": "pavement",
    "other": "pavement",
    "mixed": "pavement",
    "comp_shingle": "roof",
    "concrete_tile": "roof",
    "tile": "roof",
    "wood_shingle": "roof",
    "metal": "roof",
    "paint": "paint",
}
"""earthlib's ``LEVEL_3`` labels → the classes scenes are painted with (its 2 glass spectra are left out)."""

MATERIAL_CLASSES: tuple[str, ...] = ("vegetation", "soil", "wood", "litter", "pavement", "roof", "paint", "dyed")
"""``dyed``: colour-science's manufactured colours (charts, RAW to ACES patches, CIE and CQS test samples)."""

_COLOUR_SAMPLE_SETS = (("SDS_TCS", "CIE 1995"), ("SDS_VS", "NIST CQS 9.0"))


def earthlib_folder() -> Path:
    """The installed earthlib package's data folder (found without importing earthlib and its dependencies)."""
    spec = importlib.util.find_spec("earthlib")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the earthlib package is not installed: pip install earthlib (a dependency of hsrecon)")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


@lru_cache(maxsize=1)
def earthlib_spectra() -> tuple[np.ndarray, tuple[str, ...], tuple[str, ...]]:
    """earthlib's library at the 31 wavelengths: (n×31 float64 in [0, 1], LEVEL_3 labels, LEVEL_4 labels).

    Read with SPy (``spectral.io.envi.open``); its band centres are in micrometres. Resampled with
    colour-science's ``align`` through a MultiSpectralDistributions in nanometres.
    """
    from spectral.io import envi

    colour = load_colour()
    folder = earthlib_folder()
    library = envi.open(str(folder / "spectra.sli.hdr"), str(folder / "spectra.sli"))
    scale = 1000.0 if str(library.bands.band_unit).lower().startswith("micro") else 1.0
    wavelengths = np.asarray(library.bands.centers, dtype=np.float64) * scale
    keep = (wavelengths >= 390) & (wavelengths <= 710)  # a margin around 400–700 for the interpolator
    values = np.asarray(library.spectra, dtype=np.float64)[:, keep]
    msds = colour.MultiSpectralDistributions(values.T, wavelengths[keep])
    aligned = np.clip(align_to_bands(msds).T, 0.0, 1.0)
    with open(folder / "spectra.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    # The two files list the spectra in the same order; earthlib 1.1.0 spells one name differently in each
    # ("burncham" / "burnedcham"), so the check allows a handful of mismatches, not a shuffled table.
    names = [name.strip() for name in library.names]
    mismatched = sum(a != row["NAME"] for a, row in zip(names, rows, strict=False))
    if len(rows) != len(names) or mismatched > 3:
        raise ValueError(f"{folder}: spectra.csv does not list the library's {len(names)} spectra in order")
    return aligned, tuple(row["LEVEL_3"] for row in rows), tuple(row["LEVEL_4"] for row in rows)


def _colour_samples() -> list[np.ndarray]:
    """The CIE test colour samples and NIST CQS samples colour-science ships (measured reflectances)."""
    from colour.quality import datasets

    spectra = []
    for table, edition in _COLOUR_SAMPLE_SETS:
        spectra += [align_to_bands(sd) for sd in getattr(datasets, table)[edition].values()]
    return spectra


@dataclass(frozen=True)
class MaterialLibrary:
    """Reflectances (n×31, read-only) and the material class of each; ``members(c)`` indexes one class."""

    spectra: np.ndarray
    classes: tuple[str, ...]
    simulated: np.ndarray  # bool per spectrum: earthlib's PROSAIL canopies
    index: dict[str, np.ndarray]  # class → the rows of ``spectra`` that hold it

    def members(self, name: str) -> np.ndarray:
        if name not in self.index:
            raise ValueError(f"unknown material class {name!r}; choose one of {', '.join(MATERIAL_CLASSES)}")
        return self.index[name]

    def counts(self) -> dict[str, int]:
        return {name: len(rows) for name, rows in self.index.items()}


@lru_cache(maxsize=1)
def material_library() -> MaterialLibrary:
    """earthlib's classed spectra, then colour-science's manufactured colours as ``dyed`` (duplicates dropped)."""
    earth, level3, level4 = earthlib_spectra()
    keep = [i for i, label in enumerate(level3) if label in EARTHLIB_CLASSES]
    dyed = list(measured_reflectances()[0])
    for spectrum in _colour_samples():
        spectrum = np.clip(spectrum, 0.0, None)
        if not any(np.max(np.abs(spectrum - other)) < 1e-9 for other in dyed):
            dyed.append(spectrum)
    spectra = np.concatenate([earth[keep], np.stack(dyed)])
    classes = tuple(EARTHLIB_CLASSES[level3[i]] for i in keep) + ("dyed",) * len(dyed)
    simulated = np.array([level4[i] == "simulated" for i in keep] + [False] * len(dyed))
    spectra.setflags(write=False)
    simulated.setflags(write=False)
    index = {name: np.flatnonzero(np.asarray(classes) == name) for name in MATERIAL_CLASSES}
    return MaterialLibrary(spectra=spectra, classes=classes, simulated=simulated, index=index)


# --- light ------------------------------------------------------------------------------------------------


def daylight(cct: float) -> np.ndarray:
    """CIE daylight (D series) at correlated colour temperature ``cct`` K (4000–25000), 31 values, max 1."""
    colour = load_colour()
    if not 4000 <= cct <= 25000:
        raise ValueError(f"CIE daylight is defined for 4000–25000 K, got {cct}")
    sd = colour.sd_CIE_illuminant_D_series(colour.temperature.CCT_to_xy_CIE_D(cct))
    values = align_to_bands(sd)
    return values / values.max()


def blackbody(temperature: float) -> np.ndarray:
    """Planck's law at ``temperature`` K (colour-science's ``sd_blackbody``), 31 values, max 1."""
    colour = load_colour()
    values = align_to_bands(colour.sd_blackbody(float(temperature)))
    return values / values.max()


@lru_cache(maxsize=128)
def _tabulated(name: str) -> np.ndarray:
    colour = load_colour()
    for table in (colour.SDS_ILLUMINANTS, colour.SDS_LIGHT_SOURCES):
        if name in table:
            values = align_to_bands(table[name])
            values = np.clip(values, 0.0, None) / values.max()
            values.setflags(write=False)
            return values
    raise ValueError(f"unknown light {name!r}: not in colour.SDS_ILLUMINANTS nor colour.SDS_LIGHT_SOURCES")


def light_spectrum(name: str) -> np.ndarray:
    """A light by name, 31 values with maximum 1: ``D6500K`` (daylight), ``BB2800K`` (blackbody), or a table name."""
    if name.endswith("K") and name[:-1].lstrip("DB").replace(".", "", 1).isdigit():
        if name.startswith("D") and not name.startswith("BB"):
            return daylight(float(name[1:-1]))
        if name.startswith("BB"):
            return blackbody(float(name[2:-1]))
    return _tabulated(name).copy()


LIGHT_FAMILIES = ("daylight", "incandescent", "fluorescent", "LED")


def light_family(name: str) -> str:
    """The kind of a light named as :func:`light_spectrum` takes it (and recipe 1's CIE names): one of
    :data:`LIGHT_FAMILIES`. CIE A, blackbodies and measured tungsten bulbs are incandescent."""
    if name.startswith("D") and (name.endswith("K") or name[1:].isdigit()):
        return "daylight"
    if name.startswith("BB") or name in ("A", "60 A/W (Soft White)"):
        return "incandescent"
    if name.startswith("FL"):
        return "fluorescent"
    return "LED"
