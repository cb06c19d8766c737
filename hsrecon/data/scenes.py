"""Recipe 2 of the synthetic set: scenes in which what a region looks like says what it is made of.

Recipe 1 (:mod:`hsrecon.data.synth`) draws every region's spectrum independently of its shape and texture, so a
pixel's spectrum is predictable from its own RGB only and no network can beat a per-pixel map on it
(``docs/training.md``). Here each region is painted with a **material class** (:mod:`hsrecon.data.spectra`:
vegetation, soil, wood, litter, pavement, roof, paint, dyed), and each class has its own look, as in the world:

============  =========================================================  ==========================================
class         texture                                                    shapes and neighbours
============  =========================================================  ==========================================
vegetation    leaf clumps (cells of 2–5 px, each its own canopy          tree crowns and shrubs (blobs with ragged
              spectrum, domed shading, dark gaps) or grass (fine         edges) casting shadows; meadows in the
              streaks mixing 2–3 canopy spectra)                         ground; potted plants indoors
soil          fine speckle (±10%) and low-frequency patches mixing two   ground regions
              soil spectra
litter        small flakes (cells of 1.5–4 px) of litter and wood        ground regions under trees
              spectra
wood          grain: noise stretched 1:10 along the piece                logs outdoors; floors, boxes indoors
pavement      flat, fine speckle (±6%), stains, dark cracks              straight roads with painted lane lines
roof          shingle rows: stripes of period 3–7 px                     rotated rectangles casting shadows
paint         flat                                                       walls, boxes, cars (with highlights)
dyed          flat, or woven (fabric) or striped in two dyes             balls and boxes with shading and
                                                                         highlights, fabrics, colour charts
============  =========================================================  ==========================================

Two kinds of scene: **outdoor** (55%): ground of soil, grass, litter and pavement, roads, roofs, trees, logs and
the odd car, lit by the sun (CIE daylight at 4000–7500 K) and the sky (daylight at 8000–20000 K, 10–40% of the
sun): shadowed areas are lit by the sky alone, so they are bluer; 20% are overcast (one diffuse daylight).
**Indoor** (45%): walls and floors of paint, wood or fabric, objects of dyed materials, a plant now and then,
lit by a lamp (blackbody 2400–3600 K, CIE A, fluorescent, LED) or window daylight, with a second light of
another kind over part of the scene 35% of the time. Which lamps appear is a parameter: the training pool and a
held-out pool share no spectrum (:data:`INDOOR_LIGHTS`).

Radiance = reflectance · Σ lights(x) · shading(x) + highlights carrying the local light (dichromatic model),
then one gain per scene as in recipe 1 (99th percentile in [0.45, 0.85], maximum ≤ 1). Scenes may be drawn at
twice the size and averaged down (the photo is downscaled the same way, :mod:`hsrecon.data.photo`).

Limits (``docs/data.md``): shapes are drawn, not photographed; no perspective, no sky (the cube is what the
ground and objects reflect), no inter-reflection; earthlib's canopies are PROSAIL simulations.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy.ndimage import gaussian_filter, shift
from scipy.spatial import cKDTree

from hsrecon.data.fields import band_noise, scale_to_p99, smooth_noise
from hsrecon.data.spectra import MATERIAL_CLASSES, MaterialLibrary, daylight, light_spectrum, material_library

__all__ = ["INDOOR_LIGHTS", "LIGHT_POOLS", "PhotoScene", "make_photo_scene"]

SCENE_KINDS = {"outdoor": 0.55, "indoor": 0.45}

_FL = [f"FL{i}" for i in range(1, 13)]
_LED = ["LED-B1", "LED-B2", "LED-B3", "LED-B4", "LED-B5", "LED-BH1", "LED-RGB1", "LED-V1", "LED-V2"]
_FL3 = [f"FL3.{i}" for i in range(1, 16)]
_LED_MEASURED = ["Phosphor LED YAG", "Luxeon WW 2880", "PHOS-1", "PHOS-2", "PHOS-3", "PHOS-4", "4-LED Yellow"]
INDOOR_LIGHTS: dict[str, dict[str, list[str]]] = {
    # kind of lamp → the tabulated spectra it is drawn from, per pool (blackbody and window daylight are drawn
    # by temperature and are in the training pool only)
    "train": {"fluorescent": _FL, "led": _LED, "incandescent": ["A"]},
    "heldout": {"fluorescent": _FL3, "led": _LED_MEASURED, "incandescent": ["60 A/W (Soft White)"]},
}
LIGHT_POOLS = tuple(INDOOR_LIGHTS)
_INDOOR_KINDS = {"train": {"blackbody": 0.3, "incandescent": 0.1, "fluorescent": 0.25, "led": 0.25, "window": 0.1},
                 "heldout": {"incandescent": 0.2, "fluorescent": 0.4, "led": 0.4}}  # fmt: skip


@dataclass
class PhotoScene:
    """A recipe-2 scene at its drawn resolution (``factor`` × the requested size).

    ``cube``: radiance H×W×31 float64, scaled; ``reflectance``: what each pixel is made of (H×W×31, before
    shading and light: measured spectra of its class, or convex mixtures of them); ``irradiance``: the light
    reaching each pixel (H×W×31, before the scene's gain); ``white``: the spectrum a white surface in full
    light sends back (what a camera's white-balance preset aims at), max 1; ``labels``: the material class
    index of each pixel (:data:`hsrecon.data.spectra.MATERIAL_CLASSES`); ``lights``: their names, main first.
    """

    cube: np.ndarray
    reflectance: np.ndarray
    irradiance: np.ndarray
    white: np.ndarray
    labels: np.ndarray
    kind: str
    lights: list[str]
    factor: int
    facts: dict[str, object] = field(default_factory=dict)


# --- canvas ---------------------------------------------------------------------------------------------


class _Canvas:
    """Reflectance, class labels and shading being painted, at the scene's drawn resolution."""

    def __init__(self, height: int, width: int, factor: int, library: MaterialLibrary) -> None:
        self.height, self.width, self.factor, self.library = height, width, factor, library
        self.reflectance = np.zeros((height, width, library.spectra.shape[1]))
        self.labels = np.zeros((height, width), dtype=np.uint8)
        self.shading = np.ones((height, width))  # orientation and texture shading (scalar)
        self.gloss = np.zeros((height, width))  # specular reflectance (of the local light)
        self.casters = np.zeros((height, width), dtype=bool)  # what casts a shadow on the ground
        self.y, self.x = np.mgrid[0:height, 0:width].astype(np.float64)

    def px(self, value: float) -> float:
        """A length in output pixels → drawn pixels."""
        return value * self.factor

    def spectra(self, rng: np.random.Generator, name: str, count: int) -> np.ndarray:
        rows = self.library.members(name)
        return self.library.spectra[rng.choice(rows, size=count, replace=len(rows) < count)]

    def paint(self, mask: np.ndarray, name: str, reflectance: np.ndarray, shading: np.ndarray | float = 1.0) -> None:
        self.reflectance[mask] = reflectance
        self.labels[mask] = MATERIAL_CLASSES.index(name)
        self.shading[mask] = shading if np.isscalar(shading) else np.asarray(shading)


def _noise(rng: np.random.Generator, canvas: _Canvas, period: float) -> np.ndarray:
    """Band-limited noise around ``period`` output pixels (a factor 1.5 either side)."""
    centre = 1.0 / canvas.px(period)
    return band_noise(rng, canvas.height, canvas.width, centre / 1.5, min(centre * 1.5, 0.75))


def _rotated(canvas: _Canvas, cy: float, cx: float, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates along (u) and across (v) a direction through (cy, cx)."""
    dy, dx = canvas.y - cy, canvas.x - cx
    return dx * np.cos(angle) + dy * np.sin(angle), -dx * np.sin(angle) + dy * np.cos(angle)


# --- class textures: (rng, canvas, mask) → reflectance of the masked pixels (n×31) and their shading ----------


def _cells(rng: np.random.Generator, canvas: _Canvas, mask: np.ndarray, size: float) -> tuple[np.ndarray, np.ndarray]:
    """Random cells of about ``size`` output pixels over the mask: (cell index, distance to the cell's seed / size)."""
    coords = np.stack([canvas.y[mask], canvas.x[mask]], axis=1)
    spacing = canvas.px(size)
    count = max(1, round(len(coords) / spacing**2))
    seeds = coords[rng.integers(len(coords), size=count)] + rng.uniform(-0.5, 0.5, size=(count, 2))
    distance, index = cKDTree(seeds).query(coords)
    return index, distance / spacing


def _foliage(rng, canvas, mask):
    palette = canvas.spectra(rng, "vegetation", int(rng.integers(3, 6)))
    index, distance = _cells(rng, canvas, mask, rng.uniform(2.0, 5.0))
    pick = rng.integers(len(palette), size=index.max() + 1)
    albedo = rng.uniform(0.7, 1.25, size=index.max() + 1)
    dome = np.clip(1.0 - rng.uniform(0.4, 0.8) * distance**2, 0.12, 1.0)  # a clump is lit on top, dark between
    return palette[pick[index]], albedo[index] * dome


def _grass(rng, canvas, mask):
    palette = canvas.spectra(rng, "vegetation", int(rng.integers(2, 4)))
    angle = rng.uniform(0, np.pi)
    blades = _stretched_noise(rng, canvas, rng.uniform(1.5, 3.0), 6.0, angle)[mask]
    mix = _noise(rng, canvas, rng.uniform(6, 20))[mask]
    t = 1.0 / (1.0 + np.exp(-2.0 * mix))
    spectra = (1 - t)[:, None] * palette[0] + t[:, None] * palette[1 % len(palette)]
    if len(palette) > 2:
        w = np.clip(blades, 0, None)[:, None] * 0.5
        spectra = (1 - w) * spectra + w * palette[2]
    return spectra, np.clip(1.0 + 0.22 * blades, 0.45, 1.5)


def _stretched_noise(rng, canvas, period: float, stretch: float, angle: float) -> np.ndarray:
    """Noise of ``period`` across a direction and ``stretch`` times longer along it (grain, blades, streaks)."""
    fy = np.fft.fftfreq(canvas.height)[:, None]
    fx = np.fft.rfftfreq(canvas.width)[None, :]
    along = fx * np.cos(angle) + fy * np.sin(angle)
    across = -fx * np.sin(angle) + fy * np.cos(angle)
    centre = 1.0 / canvas.px(period)
    radius = np.hypot(along * stretch, across)
    band = (radius > centre / 2) & (radius < centre * 2)
    shape = (canvas.height, canvas.width // 2 + 1)
    noise = np.fft.irfft2(
        (rng.normal(size=shape) + 1j * rng.normal(size=shape)) * band, s=(canvas.height, canvas.width)
    )
    std = noise.std()
    return (noise - noise.mean()) / std if std > 0 else noise


def _soil(rng, canvas, mask):
    palette = canvas.spectra(rng, "soil", 2)
    t = 1.0 / (1.0 + np.exp(-2.5 * smooth_noise(rng, canvas.height, canvas.width, rng.uniform(2, 6))[mask]))
    spectra = (1 - t)[:, None] * palette[0] + t[:, None] * palette[1]
    speckle = _noise(rng, canvas, rng.uniform(1.2, 2.5))[mask]
    return spectra, np.clip(1.0 + 0.1 * speckle, 0.6, 1.4)


def _litter(rng, canvas, mask):
    palette = np.concatenate([canvas.spectra(rng, "litter", 3), canvas.spectra(rng, "wood", 1)])
    index, distance = _cells(rng, canvas, mask, rng.uniform(1.5, 4.0))
    pick = rng.integers(len(palette), size=index.max() + 1)
    albedo = rng.uniform(0.6, 1.2, size=index.max() + 1)
    return palette[pick[index]], albedo[index] * np.clip(1.1 - 0.5 * distance, 0.4, 1.0)


def _wood(rng, canvas, mask, angle: float | None = None):
    palette = canvas.spectra(rng, "wood", 2)
    angle = rng.uniform(0, np.pi) if angle is None else angle
    grain = _stretched_noise(rng, canvas, rng.uniform(1.5, 4.0), 10.0, angle)[mask]
    t = np.clip(0.5 + 0.3 * grain, 0, 1)
    spectra = (1 - t)[:, None] * palette[0] + t[:, None] * palette[1]
    return spectra, np.clip(1.0 + 0.15 * grain, 0.55, 1.4)


def _pavement(rng, canvas, mask):
    spectrum = canvas.spectra(rng, "pavement", 1)[0]
    speckle = _noise(rng, canvas, rng.uniform(1.0, 2.0))[mask]
    stains = smooth_noise(rng, canvas.height, canvas.width, rng.uniform(3, 8))[mask]
    shading = np.clip(1.0 + 0.06 * speckle + 0.08 * stains, 0.5, 1.4)
    crack = np.abs(_noise(rng, canvas, rng.uniform(10, 30)))[mask] < rng.uniform(0.0, 0.04)
    shading[crack] *= 0.35
    return np.broadcast_to(spectrum, (mask.sum(), len(spectrum))), shading


def _roof(rng, canvas, mask, angle: float | None = None):
    spectrum = canvas.spectra(rng, "roof", 1)[0]
    angle = rng.uniform(0, np.pi) if angle is None else angle
    _, across = _rotated(canvas, 0.0, 0.0, angle)
    phase = (across[mask] / canvas.px(rng.uniform(3.0, 7.0))) % 1.0
    rows = 1.0 - 0.3 * np.exp(-(((phase - 0.9) / 0.08) ** 2))  # a dark line where each row overlaps the next
    return np.broadcast_to(spectrum, (mask.sum(), len(spectrum))), rows * (1 + 0.05 * _noise(rng, canvas, 1.5)[mask])


def _flat(name: str):
    def painter(rng, canvas, mask):
        spectrum = canvas.spectra(rng, name, 1)[0]
        return np.broadcast_to(spectrum, (mask.sum(), len(spectrum))), 1.0

    return painter


def _fabric(rng, canvas, mask):
    """A woven dyed fabric: one dye with a weave, or two dyes in stripes or checks."""
    palette = canvas.spectra(rng, "dyed", 2)
    angle = rng.uniform(0, np.pi)
    u, v = _rotated(canvas, 0.0, 0.0, angle)
    weave = np.sin(u[mask] * np.pi / canvas.factor) * np.sin(v[mask] * np.pi / canvas.factor)
    pattern = rng.choice(["plain", "stripes", "checks"], p=[0.4, 0.3, 0.3])
    period = canvas.px(rng.uniform(4, 12))
    if pattern == "plain":
        t = np.zeros(mask.sum())
    elif pattern == "stripes":
        t = ((u[mask] / period) % 1.0 < 0.5).astype(np.float64)
    else:
        t = (((u[mask] / period) % 1.0 < 0.5) ^ ((v[mask] / period) % 1.0 < 0.5)).astype(np.float64)
    spectra = (1 - t)[:, None] * palette[0] + t[:, None] * palette[1]
    return spectra, 1.0 + 0.08 * weave


TEXTURES = {
    "foliage": ("vegetation", _foliage),
    "grass": ("vegetation", _grass),
    "soil": ("soil", _soil),
    "litter": ("litter", _litter),
    "wood": ("wood", _wood),
    "pavement": ("pavement", _pavement),
    "roof": ("roof", _roof),
    "paint": ("paint", _flat("paint")),
    "dyed": ("dyed", _flat("dyed")),
    "fabric": ("dyed", _fabric),
}


def _fill(rng, canvas: _Canvas, mask: np.ndarray, texture: str, shading: np.ndarray | float = 1.0, **kw) -> None:
    if not mask.any():
        return
    name, painter = TEXTURES[texture]
    spectra, texture_shading = painter(rng, canvas, mask, **kw)
    extra = shading[mask] if isinstance(shading, np.ndarray) else shading
    canvas.paint(mask, name, spectra, texture_shading * extra)


# --- shapes ---------------------------------------------------------------------------------------------


def _blob(rng, canvas: _Canvas, cy: float, cx: float, radius: float, ragged: float) -> np.ndarray:
    """A disc with a ragged edge (noise on its radius): a tree crown or a shrub seen from above."""
    distance = np.hypot(canvas.y - cy, canvas.x - cx)
    edge = radius * (1.0 + ragged * _noise(rng, canvas, max(radius / canvas.factor / 2, 2.0)))
    return distance <= edge


def _box(canvas: _Canvas, cy: float, cx: float, half_u: float, half_v: float, angle: float) -> np.ndarray:
    u, v = _rotated(canvas, cy, cx, angle)
    return (np.abs(u) <= half_u) & (np.abs(v) <= half_v)


def _sphere_shading(canvas: _Canvas, cy, cx, ry, rx, light_dir: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lambertian shading of an ellipsoid seen from above, and the cosine of its highlight (for a spot)."""
    ny, nx = (canvas.y - cy) / ry, (canvas.x - cx) / rx
    nz = np.sqrt(np.clip(1.0 - ny**2 - nx**2, 0.0, 1.0))
    normal = np.stack([ny, nx, nz], axis=-1)
    cosine = normal @ light_dir
    half = light_dir + np.array([0.0, 0.0, 1.0])
    half /= np.linalg.norm(half)
    return np.clip(0.15 + 0.85 * cosine, 0.08, 1.0), np.clip(normal @ half, 0.0, 1.0)


def _light_direction(rng) -> np.ndarray:
    azimuth, elevation = rng.uniform(0, 2 * np.pi), rng.uniform(0.35, 1.2)
    return np.array([np.cos(elevation) * np.sin(azimuth), np.cos(elevation) * np.cos(azimuth), np.sin(elevation)])


def _voronoi(rng, canvas: _Canvas, per_window: float) -> np.ndarray:
    """Warped Voronoi regions, ``per_window`` per 64×64 output pixels."""
    count = max(2, round(per_window * canvas.height * canvas.width / (64 * canvas.factor) ** 2))
    amplitude = rng.uniform(0.03, 0.12) * min(canvas.height, canvas.width)
    y = canvas.y + amplitude * smooth_noise(rng, canvas.height, canvas.width)
    x = canvas.x + amplitude * smooth_noise(rng, canvas.height, canvas.width)
    seeds = rng.uniform((0.0, 0.0), (canvas.height, canvas.width), size=(count, 2))
    _, labels = cKDTree(seeds).query(np.stack([y.ravel(), x.ravel()], axis=1))
    return labels.reshape(canvas.height, canvas.width)


def _centre(rng, canvas: _Canvas) -> tuple[float, float]:
    return rng.uniform(0, canvas.height), rng.uniform(0, canvas.width)


# --- outdoor --------------------------------------------------------------------------------------------

_GROUND = {"grass": 0.3, "soil": 0.35, "litter": 0.15, "pavement": 0.2}


def _outdoor_layout(rng, canvas: _Canvas, sun: np.ndarray) -> dict[str, int]:
    regions = _voronoi(rng, canvas, rng.uniform(0.5, 3.0))
    textures = rng.choice(list(_GROUND), size=regions.max() + 1, p=list(_GROUND.values()))
    for region, texture in enumerate(textures):
        _fill(rng, canvas, regions == region, str(texture), rng.uniform(0.85, 1.0))
    counts = {"roads": int(rng.integers(0, 3)), "roofs": int(rng.integers(0, 4)), "trees": int(rng.integers(0, 7))}
    counts |= {"logs": int(rng.integers(0, 3)), "cars": int(rng.integers(0, 3))}
    for _ in range(counts["roads"]):
        cy, cx = _centre(rng, canvas)
        angle = rng.uniform(0, np.pi)
        _, across = _rotated(canvas, cy, cx, angle)
        half = canvas.px(rng.uniform(3, 10))
        road = np.abs(across) <= half
        _fill(rng, canvas, road, "pavement")
        if rng.random() < 0.6:  # a painted line along the middle, dashed or not
            along, _ = _rotated(canvas, cy, cx, angle)
            line = (np.abs(across) <= canvas.px(rng.uniform(0.5, 1.2))) & road
            if rng.random() < 0.5:
                line &= (along / canvas.px(rng.uniform(4, 10))) % 1.0 < 0.5
            _fill(rng, canvas, line, "paint")
    for _ in range(counts["roofs"]):
        cy, cx = _centre(rng, canvas)
        angle = rng.uniform(0, np.pi)
        roof = _box(canvas, cy, cx, canvas.px(rng.uniform(6, 22)), canvas.px(rng.uniform(6, 22)), angle)
        _fill(rng, canvas, roof, "roof", rng.uniform(0.6, 1.0), angle=angle)
        canvas.casters |= roof
    for _ in range(counts["logs"]):
        cy, cx = _centre(rng, canvas)
        angle = rng.uniform(0, np.pi)
        log = _box(canvas, cy, cx, canvas.px(rng.uniform(6, 18)), canvas.px(rng.uniform(1, 3)), angle)
        _fill(rng, canvas, log, "wood", rng.uniform(0.7, 1.0), angle=angle)
    for _ in range(counts["cars"]):
        cy, cx = _centre(rng, canvas)
        ry, rx = canvas.px(rng.uniform(2, 5)), canvas.px(rng.uniform(4, 9))
        car = _box(canvas, cy, cx, rx, ry, rng.uniform(0, np.pi))
        shading, spot = _sphere_shading(canvas, cy, cx, 2 * ry, 2 * rx, sun)
        _fill(rng, canvas, car, str(rng.choice(["paint", "dyed"])), 0.5 + 0.5 * shading)
        canvas.gloss[car] += rng.uniform(0.05, 0.5) * spot[car] ** rng.uniform(20, 80)
        canvas.casters |= car
    for _ in range(counts["trees"]):
        cy, cx = _centre(rng, canvas)
        radius = canvas.px(rng.uniform(4, 18))
        crown = _blob(rng, canvas, cy, cx, radius, rng.uniform(0.1, 0.35))
        shading, _ = _sphere_shading(canvas, cy, cx, radius, radius, sun)
        _fill(rng, canvas, crown, "foliage", 0.4 + 0.6 * shading)
        canvas.casters |= crown
    return counts


def _cast_shadows(rng, canvas: _Canvas, sun: np.ndarray) -> np.ndarray:
    """Sun visibility (H×W, 0 in shadow): the casters' masks shifted away from the sun, softened a little."""
    length = canvas.px(rng.uniform(2, 10)) / np.tan(max(np.arcsin(sun[2]), 0.2))
    direction = -sun[:2] / (np.linalg.norm(sun[:2]) or 1.0)
    shadow = shift(canvas.casters.astype(np.float64), direction * length, order=1, mode="constant")
    shadow = gaussian_filter(shadow, canvas.px(rng.uniform(0.3, 1.2)))
    return np.clip(1.0 - shadow * ~canvas.casters, 0.0, 1.0)


def _outdoor_light(rng, canvas: _Canvas, sun_dir: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[str], dict]:
    """(irradiance H×W×31, white 31, light names, facts): sun + sky, or overcast daylight."""
    if rng.random() < 0.2:
        cct = rng.uniform(6000, 8000)
        light = daylight(cct)
        ambient = np.clip(1.0 + 0.08 * smooth_noise(rng, canvas.height, canvas.width), 0.7, 1.3)
        return ambient[..., None] * light, light, [f"D{cct:.0f}K"], {"overcast": True}
    sun_cct, sky_cct, sky = rng.uniform(4000, 7500), rng.uniform(8000, 20000), rng.uniform(0.1, 0.4)
    sun, sky_light = daylight(sun_cct), daylight(sky_cct)
    visible = _cast_shadows(rng, canvas, sun_dir)
    irradiance = visible[..., None] * sun + sky * sky_light
    white = sun + sky * sky_light
    names = [f"D{sun_cct:.0f}K", f"D{sky_cct:.0f}K"]
    return (
        irradiance,
        white / white.max(),
        names,
        {"overcast": False, "sky_ratio": sky, "shadowed": float(np.mean(visible < 0.5))},
    )


# --- indoor ---------------------------------------------------------------------------------------------


def _indoor_layout(rng, canvas: _Canvas, light_dir: np.ndarray) -> dict[str, int]:
    angle = rng.uniform(-0.3, 0.3) + (np.pi / 2 if rng.random() < 0.5 else 0.0)
    _, across = _rotated(canvas, *_centre(rng, canvas), angle)
    splits = np.sort(rng.uniform(across.min(), across.max(), size=int(rng.integers(0, 3))))
    parts = np.searchsorted(splits, across)
    for part in range(len(splits) + 1):
        texture = str(rng.choice(["paint", "wood", "fabric", "dyed"], p=[0.5, 0.2, 0.15, 0.15]))
        _fill(rng, canvas, parts == part, texture, rng.uniform(0.6, 1.0))
    counts = {"balls": 0, "boxes": 0, "fabrics": 0, "plants": 0, "charts": 0}
    for _ in range(int(rng.integers(2, 9))):
        kind = str(rng.choice(["balls", "boxes", "fabrics", "plants", "charts"], p=[0.35, 0.3, 0.15, 0.12, 0.08]))
        counts[kind] += 1
        cy, cx = _centre(rng, canvas)
        if kind == "balls":
            ry = rx = canvas.px(rng.uniform(4, 16))
            ball = np.hypot(canvas.y - cy, canvas.x - cx) <= ry
            shading, spot = _sphere_shading(canvas, cy, cx, ry, rx, light_dir)
            _fill(rng, canvas, ball, str(rng.choice(["dyed", "paint"], p=[0.8, 0.2])), shading)
            canvas.gloss[ball] += rng.uniform(0.0, 0.8) * spot[ball] ** rng.uniform(15, 100)
        elif kind == "boxes":
            angle = rng.uniform(0, np.pi)
            box = _box(canvas, cy, cx, canvas.px(rng.uniform(4, 20)), canvas.px(rng.uniform(4, 20)), angle)
            texture = str(rng.choice(["dyed", "paint", "wood"], p=[0.6, 0.2, 0.2]))
            _fill(rng, canvas, box, texture, rng.uniform(0.4, 1.0), **({"angle": angle} if texture == "wood" else {}))
        elif kind == "fabrics":
            box = _box(
                canvas, cy, cx, canvas.px(rng.uniform(8, 30)), canvas.px(rng.uniform(8, 30)), rng.uniform(0, np.pi)
            )
            folds = 1.0 + 0.15 * _stretched_noise(rng, canvas, rng.uniform(6, 14), 4.0, rng.uniform(0, np.pi))
            _fill(rng, canvas, box, "fabric", np.clip(folds, 0.6, 1.3))
        elif kind == "plants":
            radius = canvas.px(rng.uniform(5, 14))
            plant = _blob(rng, canvas, cy, cx, radius, rng.uniform(0.2, 0.4))
            shading, _ = _sphere_shading(canvas, cy, cx, radius, radius, light_dir)
            _fill(rng, canvas, plant, "foliage", 0.4 + 0.6 * shading)
        else:
            _chart(rng, canvas, cy, cx)
    return counts


def _chart(rng, canvas: _Canvas, cy: float, cx: float) -> None:
    """A grid of dyed patches on a dark frame, like a colour checker."""
    rows, cols = int(rng.integers(3, 6)), int(rng.integers(4, 7))
    cell = canvas.px(rng.uniform(3, 6))
    angle = rng.uniform(-0.3, 0.3)
    u, v = _rotated(canvas, cy, cx, angle)
    frame = (np.abs(u) <= cols * cell / 2 + cell / 4) & (np.abs(v) <= rows * cell / 2 + cell / 4)
    _fill(rng, canvas, frame, "paint", 0.3)
    col, row = np.floor(u / cell + cols / 2), np.floor(v / cell + rows / 2)
    inside = (np.abs((u / cell + cols / 2) % 1 - 0.5) < 0.4) & (np.abs((v / cell + rows / 2) % 1 - 0.5) < 0.4)
    patches = canvas.spectra(rng, "dyed", rows * cols)
    for index in range(rows * cols):
        mask = frame & inside & (row == index // cols) & (col == index % cols)
        if mask.any():
            canvas.paint(mask, "dyed", patches[index], 1.0)


def _indoor_lamp(rng, pool: str) -> tuple[str, np.ndarray]:
    kinds = _INDOOR_KINDS[pool]
    kind = str(rng.choice(list(kinds), p=list(kinds.values())))
    if kind == "blackbody":
        name = f"BB{rng.uniform(2400, 3600):.0f}K"
    elif kind == "window":
        name = f"D{rng.uniform(5000, 7500):.0f}K"
    else:
        name = str(rng.choice(INDOOR_LIGHTS[pool][kind]))
    return name, light_spectrum(name)


def _indoor_light(rng, canvas: _Canvas, pool: str) -> tuple[np.ndarray, np.ndarray, list[str], dict]:
    """(irradiance, white, names, facts): a lamp with falloff, and sometimes a second light over part of the scene."""
    name, lamp = _indoor_lamp(rng, pool)
    ly, lx = rng.uniform(-0.5, 1.5) * canvas.height, rng.uniform(-0.5, 1.5) * canvas.width
    reach = rng.uniform(0.5, 2.0) * max(canvas.height, canvas.width)
    falloff = 1.0 / (1.0 + ((canvas.y - ly) ** 2 + (canvas.x - lx) ** 2) / reach**2)
    irradiance = (falloff / falloff.max())[..., None] * lamp
    names, facts = [name], {"second_light": False}
    if rng.random() < 0.35:
        other, spectrum = _indoor_lamp(rng, pool)
        angle = rng.uniform(0, 2 * np.pi)
        ramp = np.cos(angle) * canvas.x / canvas.width + np.sin(angle) * canvas.y / canvas.height
        ramp = np.clip(
            (ramp - ramp.min()) / (np.ptp(ramp) or 1.0) * rng.uniform(1.0, 2.0) - rng.uniform(0.0, 0.8), 0, 1
        )
        irradiance = irradiance + rng.uniform(0.2, 0.8) * ramp[..., None] * spectrum
        names.append(other)
        facts = {"second_light": True}
    return irradiance, lamp, names, facts


# --- the scene ------------------------------------------------------------------------------------------


def make_photo_scene(
    rng: np.random.Generator,
    height: int,
    width: int,
    *,
    lights: str = "train",
    canvas_factory: Callable[[int, int, int], _Canvas] | None = None,
    kinds: tuple[str, ...] | None = None,
) -> PhotoScene:
    """One recipe-2 scene of ``height``×``width`` output pixels (drawn at 1× or 2×; see the module docstring).

    ``lights``: ``train`` or ``heldout``, the pool indoor lamps are drawn from (daylight is in both).
    ``canvas_factory(height, width, factor)`` builds the canvas the scene is painted on (recipe 3 passes one
    that draws from held-out or training material families and labels them); ``kinds`` restricts the kinds of
    scene (default: both, by :data:`SCENE_KINDS`). Neither changes the random draws of the default scene.
    """
    if lights not in INDOOR_LIGHTS:
        raise ValueError(f"lights must be one of {', '.join(INDOOR_LIGHTS)}, got {lights!r}")
    factor = 2 if rng.random() < 0.4 else 1
    if canvas_factory is None:
        canvas = _Canvas(height * factor, width * factor, factor, material_library())
    else:
        canvas = canvas_factory(height * factor, width * factor, factor)
    shares = {kind: SCENE_KINDS[kind] for kind in kinds or SCENE_KINDS}
    total = sum(shares.values())
    kind = str(rng.choice(list(shares), p=[share / total for share in shares.values()]))
    light_dir = _light_direction(rng)
    if kind == "outdoor":
        counts = _outdoor_layout(rng, canvas, light_dir)
        irradiance, white, names, light_facts = _outdoor_light(rng, canvas, light_dir)
    else:
        counts = _indoor_layout(rng, canvas, light_dir)
        irradiance, white, names, light_facts = _indoor_light(rng, canvas, lights)
    radiance = canvas.reflectance * canvas.shading[..., None] * irradiance + canvas.gloss[..., None] * irradiance
    radiance, gain = scale_to_p99(radiance, rng)
    present = np.bincount(canvas.labels.ravel(), minlength=len(MATERIAL_CLASSES)) / canvas.labels.size
    facts = {
        "kind": kind,
        "lights": names,
        "factor": factor,
        **counts,
        **light_facts,
        "classes": {
            name: round(float(share), 4) for name, share in zip(MATERIAL_CLASSES, present, strict=True) if share
        },
        "gain": gain,
    }
    return PhotoScene(
        cube=np.clip(radiance, 0.0, 1.0), reflectance=canvas.reflectance, irradiance=irradiance,
        white=white / white.max(), labels=canvas.labels, kind=kind,
        lights=names, factor=factor, facts=facts,
    )  # fmt: skip
