"""Every measured reflectance hsrecon can reach, each labelled with its material family, split for held-out tests.

Recipe 3 of the synthetic set (:mod:`hsrecon.data.recipe3`) is built to measure generalisation: whole families
are left out of training, so a model is scored on materials it never saw. A family is a pool of measured
spectra of one kind of material, taken from the sources below and resampled to 400–700 nm / 10 nm with
colour-science's ``align``:

==============  ===========================================================================  =========  ========
family          source                                                                       licence    split
==============  ===========================================================================  =========  ========
vegetation      earthlib canopies (PROSAIL simulations driven by measured leaf properties)   MIT        train
soil            earthlib soil, dirt, sand                                                    MIT        train
wood            earthlib bark, wood, leaf litter, non-photosynthetic vegetation, char        MIT        train
mineral         earthlib asphalt, roads, sidewalks, gravel, concrete and other pavements     MIT        train
print           colour-science's colour checkers and the RAW to ACES 190 patches (inks,      BSD-3      train
                dyes, prints)
paint           earthlib architectural paints                                                MIT        train
roofing         earthlib shingles, tiles, metal roofs                                        MIT        held out
test-colours    colour-science's CIE 1995 test colour samples and NIST CQS 9.0 samples       BSD-3      held out
colour-system   luxpy's 1269 matte Munsell chips and the CES of that category                GPL-3      held out
skin, textile,  luxpy's IES TM-30 / CIE 224:2017 colour evaluation samples (99 real objects)  GPL-3      held out
plastic,        by their category
nature,
printed,
ces-paint
==============  ===========================================================================  =========  ========

The luxpy families are read from its data files when luxpy is installed (``pip install hsrecon[spectra]``;
luxpy is GPL-3, so hsrecon never imports it and nothing derived from it is ever trained on or shipped:
they serve only as held-out test families; its 10 paint samples are their own held-out family, ``ces-paint``,
never earthlib's training ``paint``). Without luxpy those families are simply absent.

Spectra are in [0, 1] (earthlib's and luxpy's clipped, as in recipe 2) but for three of the 190 patches, which
reach 1.047 as measured (optical brighteners); duplicates within a family are kept (they are
what the source measured), duplicates across families do not occur in these sources.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from hsrecon.physics import align_to_bands, load_colour, measured_reflectances

__all__ = [
    "FAMILIES",
    "HELDOUT_FAMILIES",
    "TRAIN_FAMILIES",
    "FamilyLibrary",
    "family_library",
    "luxpy_folder",
]

TRAIN_FAMILIES: tuple[str, ...] = ("vegetation", "soil", "wood", "mineral", "print", "paint")
HELDOUT_FAMILIES: tuple[str, ...] = (
    "roofing", "test-colours", "colour-system", "skin", "textile", "plastic", "nature", "printed", "ces-paint",
)  # fmt: skip
FAMILIES: tuple[str, ...] = TRAIN_FAMILIES + HELDOUT_FAMILIES
"""Every family, in label order: a label map stores ``FAMILIES.index(family) + 1`` (0: no family)."""

_EARTHLIB_FAMILIES: dict[str, str] = {
    "canopy": "vegetation",
    "soil": "soil", "dirt": "soil", "sand": "soil",
    "bark": "wood", "wood": "wood", "litter": "wood", "npv": "wood", "char": "wood",
    "asphalt": "mineral", "road": "mineral", "parking_lot": "mineral", "sidewalk": "mineral", "driveway": "mineral",
    "bridge": "mineral", "manhole": "mineral", "gravel": "mineral", "other": "mineral", "mixed": "mineral",
    "comp_shingle": "roofing", "concrete_tile": "roofing", "tile": "roofing", "wood_shingle": "roofing",
    "metal": "roofing",
    "paint": "paint",
}  # fmt: skip
"""earthlib's ``LEVEL_3`` labels → families (its 2 glass spectra are left out: a transmitter, not a surface)."""

_CES_FAMILIES = ("nature", "skin", "textile", "ces-paint", "plastic", "printed", "colour-system")
"""IES TM-30's categories of its 99 colour evaluation samples, in the order of luxpy's ``R99info`` codes 1–7."""

_COLOUR_SAMPLE_SETS = (("SDS_TCS", "CIE 1995"), ("SDS_VS", "NIST CQS 9.0"))


@dataclass(frozen=True)
class FamilyLibrary:
    """Spectra (n×31, read-only), the family of each, and the rows of each family present."""

    spectra: np.ndarray
    families: tuple[str, ...]
    index: dict[str, np.ndarray]

    def members(self, family: str) -> np.ndarray:
        if family not in self.index:
            known = ", ".join(self.index)
            raise ValueError(f"family {family!r} is not available (available: {known}; luxpy adds the GPL-3 ones)")
        return self.index[family]

    def counts(self) -> dict[str, int]:
        return {name: len(rows) for name, rows in self.index.items()}

    def available(self, families: tuple[str, ...]) -> tuple[str, ...]:
        """Those of ``families`` this installation has (the luxpy ones may be missing)."""
        return tuple(name for name in families if name in self.index)


def luxpy_folder() -> Path | None:
    """luxpy's reflectance data folder, found without importing luxpy; None when it is not installed."""
    spec = importlib.util.find_spec("luxpy")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "data" / "rfls"
    return folder if folder.is_dir() else None


def _aligned(wavelengths: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Rows of spectra sampled at ``wavelengths`` → n×31 at 400…700 nm by colour-science's ``align``, in [0, 1]."""
    colour = load_colour()
    keep = (wavelengths >= 380) & (wavelengths <= 720)
    msds = colour.MultiSpectralDistributions(values[:, keep].T, wavelengths[keep])
    return np.clip(align_to_bands(msds).T, 0.0, 1.0)


def _earthlib() -> list[tuple[str, np.ndarray]]:
    from hsrecon.data.spectra import earthlib_spectra

    spectra, level3, _ = earthlib_spectra()
    return [(_EARTHLIB_FAMILIES[label], spectra[i]) for i, label in enumerate(level3) if label in _EARTHLIB_FAMILIES]


def _colour_science() -> list[tuple[str, np.ndarray]]:
    from colour.quality import datasets

    rows = [("print", spectrum) for spectrum in measured_reflectances()[0]]
    for table, edition in _COLOUR_SAMPLE_SETS:
        samples = getattr(datasets, table)[edition].values()
        rows += [("test-colours", np.clip(align_to_bands(sd), 0.0, None)) for sd in samples]
    return rows


def _luxpy(folder: Path) -> list[tuple[str, np.ndarray]]:
    """The Munsell chips and the 99 CES by category, from luxpy's files (wavelength in the first row/column)."""
    munsell = np.loadtxt(folder / "Munsell1269.dat", delimiter=",")  # 421 wavelengths × (1 + 1269)
    rows = [("colour-system", s) for s in _aligned(munsell[:, 0], munsell[:, 1:].T)]
    ces = np.loadtxt(folder / "IESTM30_18_R99_1nm.dat", delimiter=",")  # 471 wavelengths × (1 + 99)
    categories = np.loadtxt(folder / "IESTM30_15_R99info.dat", delimiter=",").astype(int)
    for spectrum, code in zip(_aligned(ces[:, 0], ces[:, 1:].T), categories, strict=True):
        rows.append((_CES_FAMILIES[code - 1], spectrum))
    return rows


@lru_cache(maxsize=2)
def family_library(with_luxpy: bool = True) -> FamilyLibrary:
    """Every family this installation can build (luxpy's only when installed and ``with_luxpy``)."""
    rows = _earthlib() + _colour_science()
    folder = luxpy_folder() if with_luxpy else None
    if folder is not None:
        rows += _luxpy(folder)
    families = tuple(family for family, _ in rows)
    spectra = np.stack([spectrum for _, spectrum in rows])
    spectra.setflags(write=False)
    index = {name: np.flatnonzero(np.asarray(families) == name) for name in FAMILIES}
    return FamilyLibrary(spectra=spectra, families=families, index={k: v for k, v in index.items() if v.size})
