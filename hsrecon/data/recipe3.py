"""Recipe 3 of the synthetic set: training data built to measure generalisation, with held-out families,
generators, lights and a camera.

A model earns its place only if it beats a per-pixel map on what it never saw (issue 24). Every scene here is
drawn from **pools**, and a pool is either the training one or the held-out one, per axis:

============  ======================================================  ==============================================
axis          training pool                                           held-out pool
============  ======================================================  ==============================================
families      vegetation, soil, wood, mineral, print, paint           roofing, test colours and, with luxpy, the
              (:data:`hsrecon.data.families.TRAIN_FAMILIES`)          Munsell chips and IES/CIE objects (skin,
                                                                      textile, plastic, nature, printed, paint)
generator     ``outdoor`` and ``indoor`` (recipe 2's layouts and      ``mosaic``: recipe 1's warped Voronoi regions
              class textures, :mod:`hsrecon.data.scenes`)             filled with flat, mixed, graded and textured
                                                                      materials of any family, no class looks
lights        recipe 2's training lamps (blackbody, CIE A, FL1–12,    recipe 2's held-out lamps (FL3.x, measured
              CIE LEDs, window daylight) and daylight                 LEDs, a measured bulb) and daylight
camera        recipe 2's training sensors, perturbed                  the Canon EOS 5D Mark II
============  ======================================================  ==============================================

Held-out families take the places that manufactured things take in a scene (boxes, balls, fabrics, charts, cars
and roofs); walls and painted objects keep the architectural paints of training (mostly pale and neutral, as
walls are, so the light's colour shows in the image), and the ground (soil, grass, litter, pavement) keeps its
training families, so a held-out scene mixes both and its **family label map** says which pixel is which. Each
scene is
rendered as the NTIRE 2020 clean track and photographed through recipe 2's camera (:mod:`hsrecon.data.photo`),
from the same cube, so the two tracks share their truth.

A training-pool scene draws a manufactured object's spectrum as one measured spectrum (70%) or a convex mixture of
two of the same family (30%): physically a sub-pixel mixture, and it fills the gaps between the few hundred
measured prints. Every draw comes from ``numpy.random.default_rng([seed, scene, …])``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hsrecon.data import recipe1
from hsrecon.data.families import FAMILIES, HELDOUT_FAMILIES, TRAIN_FAMILIES, FamilyLibrary, family_library
from hsrecon.data.fields import scale_to_p99
from hsrecon.data.recipe1 import MATERIALS, _material
from hsrecon.data.scenes import _Canvas, _indoor_lamp, make_photo_scene
from hsrecon.data.spectra import daylight

__all__ = [
    "AXES",
    "GENERATORS",
    "Recipe3Scene",
    "family_slots",
    "make_recipe3_scene",
]

GENERATORS: dict[str, tuple[str, ...]] = {"train": ("outdoor", "indoor"), "heldout": ("mosaic",)}
AXES = ("families", "generators", "lights", "sensors")
"""The axes a split's pool is chosen on (each ``train`` or ``heldout``)."""

_GROUND_SLOTS = {"vegetation": "vegetation", "soil": "soil", "wood": "wood", "litter": "wood", "pavement": "mineral"}
_TRAIN_MANUFACTURED = {"roof": ("mineral",), "paint": ("paint",), "dyed": ("print",)}
_HELDOUT_MANUFACTURED = {
    "roof": ("roofing",),
    "paint": ("paint",),  # walls stay architectural paints: held-out objects against the walls training knows
    "dyed": ("test-colours", "colour-system", "textile", "plastic", "nature", "printed", "skin", "ces-paint"),
}
_MIXTURE_SHARE = 0.3


def family_slots(pool: str, library: FamilyLibrary) -> dict[str, tuple[str, ...]]:
    """Recipe 2's material classes → the families (available here) each is filled from, for a pool."""
    if pool not in ("train", "heldout"):
        raise ValueError(f"families pool must be train or heldout, got {pool!r}")
    manufactured = _TRAIN_MANUFACTURED if pool == "train" else _HELDOUT_MANUFACTURED
    slots = {slot: (family,) for slot, family in _GROUND_SLOTS.items()}
    slots |= {slot: library.available(families) for slot, families in manufactured.items()}
    return slots


class _FamilyCanvas(_Canvas):
    """Recipe 2's canvas drawing from families, and labelling each pixel with its family.

    Each draw picks one family for the slot (uniformly among those available) and remembers it; the next
    ``paint`` labels its pixels with it (recipe 2's painters draw a region's spectra, then paint them).
    """

    def __init__(self, height: int, width: int, factor: int, *, library: FamilyLibrary, slots: dict, mix: bool):
        super().__init__(height, width, factor, library)  # type: ignore[arg-type]
        self.family_library, self.slots, self.mix = library, slots, mix
        self.families = np.zeros((height, width), dtype=np.uint8)
        self._family = 0

    def spectra(self, rng: np.random.Generator, name: str, count: int) -> np.ndarray:
        family = str(rng.choice(self.slots[name]))
        self._family = FAMILIES.index(family) + 1
        library = self.family_library
        picks = library.spectra[rng.choice(library.members(family), size=(count, 2))]
        if not self.mix:
            return picks[:, 0]
        weight = np.where(rng.random(count) < _MIXTURE_SHARE, rng.uniform(0.2, 0.8, size=count), 1.0)
        return weight[:, None] * picks[:, 0] + (1 - weight)[:, None] * picks[:, 1]

    def paint(self, mask: np.ndarray, name: str, reflectance: np.ndarray, shading=1.0) -> None:
        super().paint(mask, name, reflectance, shading)
        self.families[mask] = self._family


@dataclass
class Recipe3Scene:
    """A recipe-3 scene at its drawn resolution (``factor`` × the requested size), as recipe 2's, plus the family
    of each pixel (``families``: ``FAMILIES.index(f) + 1``) and its generator."""

    cube: np.ndarray
    white: np.ndarray
    families: np.ndarray
    generator: str
    lights: list[str]
    factor: int
    facts: dict[str, object] = field(default_factory=dict)


def make_recipe3_scene(
    rng: np.random.Generator, height: int, width: int, pools: dict[str, str], *, with_luxpy: bool = True
) -> Recipe3Scene:
    """One scene of ``height``×``width`` output pixels from ``pools`` (``families``, ``generators``, ``lights``:
    each ``train`` or ``heldout``; ``sensors`` is the camera's, :func:`hsrecon.data.photo.draw_photo_settings`)."""
    library = family_library(with_luxpy)
    slots = family_slots(pools["families"], library)
    generators = GENERATORS[pools["generators"]]
    generator = str(rng.choice(generators))
    mix = pools["families"] == "train"
    if generator == "mosaic":
        return _mosaic_scene(rng, height, width, library, slots, pools["lights"], mix)
    made: list = []

    def canvas_factory(h: int, w: int, factor: int):
        made.append(_FamilyCanvas(h, w, factor, library=library, slots=slots, mix=mix))
        return made[-1]

    scene = make_photo_scene(rng, height, width, lights=pools["lights"], canvas_factory=canvas_factory,
                             kinds=(generator,))  # fmt: skip
    families = made[0].families
    return Recipe3Scene(
        cube=scene.cube, white=scene.white, families=families, generator=generator, lights=scene.lights,
        factor=scene.factor, facts={**scene.facts, "generator": generator, "families": _shares(families)},
    )  # fmt: skip


def _shares(families: np.ndarray) -> dict[str, float]:
    counts = np.bincount(families.ravel(), minlength=len(FAMILIES) + 1)[1:] / families.size
    return {name: round(float(share), 4) for name, share in zip(FAMILIES, counts, strict=True) if share}


# --- the held-out generator: recipe 1's mosaic, drawn from families ---------------------------------------


def _mosaic_scene(
    rng: np.random.Generator, height: int, width: int, library: FamilyLibrary, slots: dict, lights: str, mix: bool
) -> Recipe3Scene:
    """Recipe 1's layout, shading and highlights (:mod:`hsrecon.data.recipe1`), each region of one family drawn
    from all the pool's families, lit by one of the pool's lights (indoor lamp or daylight)."""
    pool = sorted({family for families in slots.values() for family in families})
    textures = recipe1._textures(rng, height, width)
    labels = recipe1._layout(rng, height, width)
    reflectance, families = _mosaic_paint(rng, labels, library, pool, textures)
    shading, shading_facts = recipe1._shading(rng, labels, textures)
    specular, highlights = recipe1._highlights(rng, height, width)
    name, light = _mosaic_light(rng, lights)
    radiance = (reflectance * shading[..., None] + specular[..., None]) * light
    radiance, gain = scale_to_p99(radiance, rng)
    facts = {
        "kind": "mosaic", "generator": "mosaic", "lights": [name], "regions": int(labels.max() + 1),
        "highlights": highlights, **shading_facts, "gain": gain, "families": _shares(families),
    }  # fmt: skip
    return Recipe3Scene(
        cube=np.clip(radiance, 0.0, 1.0), white=light / light.max(), families=families, generator="mosaic",
        lights=[name], factor=1, facts=facts,
    )  # fmt: skip


def _mosaic_paint(
    rng: np.random.Generator, labels: np.ndarray, library: FamilyLibrary, pool: list[str], textures: list[np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Reflectance (H×W×31) and family labels: each region one family, its material as recipe 1 draws it."""
    height, width = labels.shape
    flat = labels.ravel()
    coords = np.stack(np.divmod(np.arange(flat.size), width), axis=1).astype(np.float64)
    reflectance = np.empty((flat.size, library.spectra.shape[1]))
    families = np.empty(flat.size, dtype=np.uint8)
    for region in range(labels.max() + 1):
        pixels = np.flatnonzero(flat == region)
        family = str(rng.choice(pool))
        kind = str(rng.choice(list(MATERIALS), p=list(MATERIALS.values())))
        texture = textures[int(rng.integers(len(textures)))].ravel()[pixels]
        candidates = library.spectra[library.members(family)]
        reflectance[pixels], _ = _material(rng, kind, candidates, coords[pixels], texture)
        families[pixels] = FAMILIES.index(family) + 1
    return reflectance.reshape(height, width, -1), families.reshape(height, width)


def _mosaic_light(rng: np.random.Generator, lights: str) -> tuple[str, np.ndarray]:
    """An indoor lamp of the pool (60%) or daylight at 4000–12000 K, max 1."""
    if rng.random() < 0.6:
        name, spectrum = _indoor_lamp(rng, lights)
    else:
        cct = rng.uniform(4000, 12000)
        name, spectrum = f"D{cct:.0f}K", daylight(cct)
    return name, spectrum / spectrum.max()


def heldout_families_present(library: FamilyLibrary | None = None) -> tuple[str, ...]:
    """The held-out families this installation can draw (luxpy's only when installed)."""
    return (library or family_library()).available(HELDOUT_FAMILIES)


def train_families_present(library: FamilyLibrary | None = None) -> tuple[str, ...]:
    return (library or family_library()).available(TRAIN_FAMILIES)
