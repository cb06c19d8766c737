"""Recipe 1 of the synthetic set: one scene from measured spectra (:func:`make_scene`).

NTIRE data cannot be downloaded here, so the camera model is trained on scenes that are physically honest
about spectra and optics (though not about natural-scene statistics; ``docs/data.md`` lists the limits):

- **Materials**: every pixel's reflectance is a measured spectrum from colour-science (268 distinct ones:
  ColorChecker sets, PMC, RAW to ACES' 190 patches; :func:`hsrecon.physics.measured_reflectances`), or a
  convex mixture of two or three of them (sub-pixel mixing is linear in radiance).
- **Layout**: a Voronoi partition in warped, stretched coordinates plus a few ellipses and rectangles on
  top. Each region is one material, a fixed mixture, a gradient between two materials, or a texture (two
  materials mixed by band-limited noise).
- **Light**: one CIE illuminant per scene (mostly daylight D50–D75, some A, fluorescent, LED), a smooth
  falloff from a light position, a shading factor per region (surface orientation), soft cast shadows,
  fine shading texture, and a few small specular highlights carrying the illuminant's spectrum (the
  dichromatic model).
- **Scale**: ``radiance = (reflectance · shading + specular) · E / max(E)``, then one gain per scene so
  its 99th-percentile value is a random level in [0.45, 0.85], lowered if needed so the maximum is ≤ 1,
  like NTIRE's normalised cubes.

Its random fields, layout and shading are shared with recipe 3 (:mod:`hsrecon.data.recipe3`); writing a
whole dataset is :mod:`hsrecon.data.synth`'s.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
from scipy.ndimage import gaussian_filter
from scipy.spatial import cKDTree

from hsrecon.data.fields import band_noise as _band_noise
from hsrecon.data.fields import scale_to_p99
from hsrecon.data.fields import shape_mask as _shape_mask
from hsrecon.data.fields import smooth_noise as _smooth_noise
from hsrecon.physics import illuminant_spectrum, measured_reflectances

__all__ = ["ILLUMINANTS", "MATERIALS", "Scene", "make_scene", "value_stats"]

ILLUMINANTS: dict[str, float] = {
    "D50": 0.17,
    "D55": 0.17,
    "D65": 0.17,
    "D75": 0.17,
    "A": 0.12,
    "FL2": 0.04,
    "FL7": 0.04,
    "FL11": 0.04,
    "LED-B3": 0.04,
    "LED-V1": 0.04,
}
"""Scene illuminants (colour-science ``SDS_ILLUMINANTS`` names) and their probabilities."""

MATERIALS: dict[str, float] = {"flat": 0.4, "mixture": 0.15, "gradient": 0.2, "texture": 0.25}
_TEXTURE_FIELDS = 4


@dataclass
class Scene:
    """One synthetic scene: its radiance cube (H×W×31 float32, in [0, 1]), its light, and what it holds."""

    cube: np.ndarray
    illuminant: str
    illuminant_spectrum: np.ndarray
    facts: dict[str, object] = field(default_factory=dict)


# -- random fields ------------------------------------------------------------------------------------


def _textures(rng: np.random.Generator, height: int, width: int) -> list[np.ndarray]:
    """A few band-limited fields with random centre frequencies (periods of ~3 to ~24 pixels)."""
    fields = []
    for _ in range(_TEXTURE_FIELDS):
        centre = float(np.exp(rng.uniform(np.log(1 / 24), np.log(1 / 3))))
        fields.append(_band_noise(rng, height, width, centre / 1.5, centre * 1.5))
    return fields


# -- layout -------------------------------------------------------------------------------------------


def _voronoi(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Region labels: nearest of k random seeds in warped, anisotropically stretched coordinates."""
    per_window = rng.uniform(1.0, 8.0)  # regions per 64×64 window
    count = max(2, round(per_window * height * width / 4096))
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    amplitude = rng.uniform(0.0, 0.08) * min(height, width)
    y += amplitude * _smooth_noise(rng, height, width)
    x += amplitude * _smooth_noise(rng, height, width)
    stretch = np.exp(rng.uniform(-0.7, 0.7))
    seeds = rng.uniform((0.0, 0.0), (height, width), size=(count, 2)) * (1.0, stretch)
    _, labels = cKDTree(seeds).query(np.stack([y.ravel(), x.ravel() * stretch], axis=1))
    return labels.reshape(height, width).astype(np.int32)


def _layout(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Voronoi regions with 0–4 occluding shapes on top (each a region of its own)."""
    labels = _voronoi(rng, height, width)
    for _ in range(int(rng.integers(0, 5))):
        labels[_shape_mask(rng, height, width)] = labels.max() + 1
    return np.unique(labels, return_inverse=True)[1].reshape(height, width).astype(np.int32)


# -- materials ----------------------------------------------------------------------------------------


def _material(
    rng: np.random.Generator, kind: str, library: np.ndarray, coords: np.ndarray, texture: np.ndarray
) -> tuple[np.ndarray, list[int]]:
    """The reflectances (n×31) of one region's pixels, and the library spectra it used."""
    count = {"flat": 1, "mixture": int(rng.integers(2, 4))}.get(kind, 2)
    chosen = [int(i) for i in rng.choice(len(library), size=count, replace=False)]
    spectra = library[chosen]
    if kind == "flat":
        return np.broadcast_to(spectra[0], (len(coords), spectra.shape[1])), chosen
    if kind == "mixture":
        return np.broadcast_to(rng.dirichlet(np.ones(count)) @ spectra, (len(coords), spectra.shape[1])), chosen
    if kind == "gradient":
        angle = rng.uniform(0, 2 * np.pi)
        along = coords @ np.array([np.sin(angle), np.cos(angle)])
        span = np.ptp(along)
        t = (along - along.min()) / span if span > 0 else np.zeros(len(coords))
        t = t * t * (3 - 2 * t)  # smoothstep
    else:
        t = 1.0 / (1.0 + np.exp(-rng.uniform(1.0, 4.0) * (texture + rng.uniform(-0.5, 0.5))))
    return (1 - t)[:, None] * spectra[0] + t[:, None] * spectra[1], chosen


def _paint(
    rng: np.random.Generator, labels: np.ndarray, library: np.ndarray, textures: list[np.ndarray]
) -> tuple[np.ndarray, Counter, set[int]]:
    """Reflectance image (H×W×31) from the region labels: one material per region."""
    height, width = labels.shape
    flat = labels.ravel()
    coords = np.stack(np.divmod(np.arange(flat.size), width), axis=1).astype(np.float64)
    reflectance = np.empty((flat.size, library.shape[1]))
    kinds: Counter = Counter()
    used: set[int] = set()
    order = np.argsort(flat, kind="stable")
    starts = np.searchsorted(flat[order], np.arange(labels.max() + 2))
    for region in range(labels.max() + 1):
        pixels = order[starts[region] : starts[region + 1]]
        kind = str(rng.choice(list(MATERIALS), p=list(MATERIALS.values())))
        texture = textures[int(rng.integers(len(textures)))].ravel()[pixels]
        reflectance[pixels], chosen = _material(rng, kind, library, coords[pixels], texture)
        kinds[kind] += 1
        used.update(chosen)
    return reflectance.reshape(height, width, -1), kinds, used


# -- light --------------------------------------------------------------------------------------------


def _falloff(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Irradiance from a light at a random position (possibly off-image): 1/(1 + (d/r)²), max 1."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    ly, lx = rng.uniform(-0.5, 1.5) * height, rng.uniform(-0.5, 1.5) * width
    reach = rng.uniform(0.4, 2.0) * max(height, width)
    light = 1.0 / (1.0 + ((y - ly) ** 2 + (x - lx) ** 2) / reach**2)
    return light / light.max()


def _shadows(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, int]:
    """0–2 soft cast shadows (blurred shapes) that let through 25–60% of the light."""
    transmission = np.ones((height, width))
    count = int(rng.integers(0, 3))
    for _ in range(count):
        mask = gaussian_filter(_shape_mask(rng, height, width).astype(np.float64), rng.uniform(0.5, 4.0))
        transmission *= 1.0 - (1.0 - rng.uniform(0.25, 0.6)) * mask
    return transmission, count


def _shading(
    rng: np.random.Generator, labels: np.ndarray, textures: list[np.ndarray]
) -> tuple[np.ndarray, dict[str, int]]:
    """Shading (H×W): light falloff × region orientation × soft shadows × smooth and fine variation."""
    height, width = labels.shape
    orientation = rng.uniform(0.35, 1.0, size=labels.max() + 1)[labels]
    smooth = np.clip(1.0 + 0.12 * _smooth_noise(rng, height, width, cycles=4.0), 0.6, 1.4)
    rough = rng.uniform(0.0, 0.25, size=labels.max() + 1) * (rng.random(labels.max() + 1) < 0.3)
    fine = 1.0 + np.clip(rough[labels] * textures[int(rng.integers(len(textures)))], -0.6, 0.6)
    shadows, count = _shadows(rng, height, width)
    shading = _falloff(rng, height, width) * orientation * smooth * fine * shadows
    return shading, {"shadows": count, "rough_regions": int(np.count_nonzero(rough))}


def _highlights(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, int]:
    """0–3 small specular highlights: Gaussian spots (σ 0.6–2.5 px) of 0.1–0.6 (reflectance units)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    specular = np.zeros((height, width))
    count = int(rng.integers(0, 4))
    for _ in range(count):
        cy, cx, sigma = rng.uniform(0, height), rng.uniform(0, width), rng.uniform(0.6, 2.5)
        specular += rng.uniform(0.1, 0.6) * np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * sigma**2))
    return specular, count


def _choose_illuminant(rng: np.random.Generator) -> tuple[str, np.ndarray]:
    name = str(rng.choice(list(ILLUMINANTS), p=list(ILLUMINANTS.values())))
    spectrum = illuminant_spectrum(name)
    return name, spectrum / spectrum.max()


# -- scene --------------------------------------------------------------------------------------------


def make_scene(rng: np.random.Generator, height: int, width: int, *, noise: float = 0.0) -> Scene:
    """One synthetic radiance scene (see the module docstring); ``noise`` adds Gaussian noise of that σ
    to the cube itself (sensor-independent, e.g. to mimic a noisy spectral camera; 0 by default)."""
    library, _ = measured_reflectances()
    textures = _textures(rng, height, width)
    labels = _layout(rng, height, width)
    reflectance, kinds, used = _paint(rng, labels, library, textures)
    shading, light_facts = _shading(rng, labels, textures)
    specular, highlights = _highlights(rng, height, width)
    name, light = _choose_illuminant(rng)
    radiance = (reflectance * shading[..., None] + specular[..., None]) * light
    radiance, gain = scale_to_p99(radiance, rng)
    if noise > 0:
        radiance = radiance + rng.normal(0.0, noise, size=radiance.shape)
    cube = np.clip(radiance, 0.0, 1.0).astype(np.float32)
    facts = {
        "illuminant": name,
        "regions": int(labels.max() + 1),
        "materials": dict(sorted(kinds.items())),
        "spectra_used": len(used),
        "highlights": highlights,
        **light_facts,
        "gain": gain,
        **value_stats(cube),
    }
    return Scene(cube=cube, illuminant=name, illuminant_spectrum=light, facts=facts)


def value_stats(cube: np.ndarray) -> dict[str, float]:
    return {
        "min": float(cube.min()),
        "mean": float(cube.mean(dtype=np.float64)),
        "p99": float(np.percentile(cube, 99)),
        "max": float(cube.max()),
    }


# -- the dataset --------------------------------------------------------------------------------------
