"""Recipe 2's camera: every photo from another camera, set up another way, as users' photos are.

:mod:`hsrecon.data.camera` models one camera with fixed settings (a perfect white-balance preset, one exposure,
the sRGB curve, JPEG 90). Here each scene draws its own (:func:`draw_photo_settings`):

==================  =====================================================================================
sensor              measured sensitivities (Nikon 5100, Sigma SD Merrill; the Canon EOS 5D Mark II is held
                    out for testing) or an ideal colorimetric sensor (the CIE 1931 2° observer); 70% of the
                    time randomly perturbed: each channel shifted by up to ±8 nm and multiplied by a smooth
                    random curve (±15%); the colour matrix is refitted for the perturbed sensor
noise               ISO: mean green 600–10000 photo-electrons (log-uniform), read noise 1.5–6 e⁻, Bayer RGGB,
                    Malvar (70%) or bilinear demosaicing; chroma noise reduction (60%: the colour-difference
                    channels blurred, σ 0.7–1.5 px, as camera pipelines do)
white balance       ``auto`` (40%): the camera estimates the light's colour temperature and corrects for the
                    blackbody (below 5000 K) or daylight of that temperature, with a random error (σ 2–8% per
                    channel ratio), so a lamp off that locus (fluorescent green, some LEDs) keeps its tint;
                    under warm light (below 4000 K) only 60–90% of the cast is removed, as phones keep it;
                    ``preset`` (20%): the camera preset nearest the light (tungsten 3200 K, fluorescent
                    4000 K, daylight, cloudy, shade), off by what the preset is off; ``grey-world`` (25%);
                    ``white-patch`` (15%): the brightest unclipped pixels
exposure            automatic (mean green to middle grey) with a bias of −0.8…+1.2 stops: highlights clip
tone                sRGB curve (50%) or a filmic S-curve (Hable's, white point 4–11: linear 2–5.5 maps to
                    white) before the sRGB curve
downscaling         scenes drawn at twice the size are averaged 2×2 in linear light, as a resizer does
JPEG                quality 70–95, 4:2:0
==================  =====================================================================================

Every draw comes from the caller's generator, so ``(seed, scene)`` fixes the photo.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from hsrecon.data.camera import (
    CANON_5D2,
    DEFAULT_CAMERA,
    CameraSettings,
    apply_white_balance,
    camera_sensitivities,
    decode_jpeg,
    demosaic,
    digitize,
    encode_jpeg,
    fit_colour_matrix,
    sensor_electrons,
)
from hsrecon.physics import WAVELENGTHS_NM, align_to_bands, load_colour

__all__ = [
    "IDEAL_SENSOR",
    "SENSOR_POOLS",
    "PhotoSettings",
    "chroma_denoise",
    "develop_photo",
    "downscale",
    "draw_photo_settings",
    "filmic",
    "gains_for",
    "sensor_sensitivities",
]

IDEAL_SENSOR = "CIE 1931 2° (ideal colorimetric)"
SENSOR_POOLS: dict[str, tuple[str, ...]] = {
    "train": (DEFAULT_CAMERA, "Sigma SDMerill (NPL)", IDEAL_SENSOR),
    "heldout": (CANON_5D2,),
}
"""Which sensors a split's photos are taken with: the held-out camera never appears in training data."""

AWB_MODES = {"auto": 0.4, "preset": 0.2, "grey-world": 0.25, "white-patch": 0.15}
PRESETS = {"tungsten": "BB3200K", "fluorescent": "BB4000K", "daylight": "D5500K", "cloudy": "D6500K", "shade": "D7500K"}
_PRESET_CCT = {"tungsten": 3200, "fluorescent": 4000, "daylight": 5500, "cloudy": 6500, "shade": 7500}
_GREEN = 1


@lru_cache(maxsize=8)
def sensor_sensitivities(name: str) -> np.ndarray:
    """A sensor's R, G, B sensitivities (31×3, read-only): a measured camera, or the CIE 1931 2° observer."""
    if name == IDEAL_SENSOR:
        colour = load_colour()
        values = align_to_bands(colour.MSDS_CMFS["CIE 1931 2 Degree Standard Observer"])
        values.setflags(write=False)
        return values
    return camera_sensitivities(name)


def _perturbed(rng: np.random.Generator, sensitivities: np.ndarray) -> np.ndarray:
    """Each channel shifted by up to ±8 nm and multiplied by a smooth random curve (three Gaussian bumps, ±15%)."""
    wavelengths = np.asarray(WAVELENGTHS_NM)
    out = np.empty_like(sensitivities)
    for channel in range(3):
        shifted = np.interp(wavelengths - rng.uniform(-8, 8), wavelengths, sensitivities[:, channel])
        centres, widths = rng.uniform(380, 720, size=3), rng.uniform(30, 120, size=3)
        bumps = np.exp(-(((wavelengths[:, None] - centres) / widths) ** 2)) @ rng.normal(0.0, 0.15, size=3)
        out[:, channel] = np.clip(shifted * np.exp(bumps), 0.0, None)
    return out


@dataclass
class PhotoSettings:
    """One photo's camera and processing, as drawn by :func:`draw_photo_settings`."""

    sensor: str
    perturbed: bool
    sensitivities: np.ndarray = field(repr=False)
    colour_matrix: np.ndarray = field(repr=False)
    mean_green_electrons: float
    read_noise_electrons: float
    demosaic: str
    white_balance: str
    awb_error: float  # σ of the auto white balance's log error per channel ratio
    awb_adaptation: float  # share of a warm light's cast the auto white balance removes (1: all)
    chroma_denoise: float  # σ in pixels of the colour-difference blur, 0 for none
    exposure_stops: float
    tone: str
    filmic_white: float
    jpeg_quality: int

    def facts(self) -> dict[str, object]:
        return {
            "sensor": self.sensor, "perturbed": self.perturbed, "iso_electrons": round(self.mean_green_electrons, 1),
            "read_noise": round(self.read_noise_electrons, 2), "demosaic": self.demosaic,
            "chroma_denoise": round(self.chroma_denoise, 3),
            "white_balance": self.white_balance, "exposure_stops": round(self.exposure_stops, 3), "tone": self.tone,
            "jpeg_quality": self.jpeg_quality,
        }  # fmt: skip


def draw_photo_settings(rng: np.random.Generator, sensors: str = "train") -> PhotoSettings:
    """A random camera and processing from the pool ``sensors`` (``train`` or ``heldout``)."""
    if sensors not in SENSOR_POOLS:
        raise ValueError(f"sensors must be one of {', '.join(SENSOR_POOLS)}, got {sensors!r}")
    name = str(rng.choice(SENSOR_POOLS[sensors]))
    sensitivities = sensor_sensitivities(name)
    perturbed = sensors == "train" and rng.random() < 0.7
    if perturbed:
        sensitivities = _perturbed(rng, sensitivities)
    return PhotoSettings(
        sensor=name,
        perturbed=perturbed,
        sensitivities=sensitivities,
        colour_matrix=fit_colour_matrix(sensitivities, name).matrix,
        mean_green_electrons=float(np.exp(rng.uniform(np.log(600), np.log(10000)))),
        read_noise_electrons=float(rng.uniform(1.5, 6.0)),
        demosaic="malvar" if rng.random() < 0.7 else "bilinear",
        white_balance=str(rng.choice(list(AWB_MODES), p=list(AWB_MODES.values()))),
        awb_error=float(rng.uniform(0.02, 0.08)),
        awb_adaptation=float(rng.uniform(0.6, 0.9)),
        chroma_denoise=float(rng.uniform(0.7, 1.5)) if rng.random() < 0.6 else 0.0,
        exposure_stops=float(rng.uniform(-0.8, 1.2)),
        tone="srgb" if rng.random() < 0.5 else "filmic",
        filmic_white=float(rng.uniform(4.0, 11.0)),
        jpeg_quality=int(rng.integers(70, 96)),
    )


# --- white balance ------------------------------------------------------------------------------------


def _cct(spectrum: np.ndarray) -> float:
    """Correlated colour temperature of a light (McCamy's formula on its CIE 1931 xy)."""
    colour = load_colour()
    xyz = spectrum @ align_to_bands(colour.MSDS_CMFS["CIE 1931 2 Degree Standard Observer"])
    return float(colour.temperature.xy_to_CCT(xyz[:2] / xyz.sum(), method="McCamy 1992"))


def gains_for(white_rgb: np.ndarray) -> np.ndarray:
    """White-balance gains (green = 1) that make ``white_rgb`` (a camera's response to a white) neutral."""
    white_rgb = np.where(white_rgb > 0, white_rgb, white_rgb[_GREEN])
    return white_rgb[_GREEN] / white_rgb


def white_balance_gains(
    rgb: np.ndarray, settings: PhotoSettings, white: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, dict[str, float]]:
    """Per-channel gains (green = 1) by the photo's white-balance mode; ``white`` is the scene light's spectrum."""
    from hsrecon.data.spectra import light_spectrum

    mode, sensitivities = settings.white_balance, settings.sensitivities
    unclipped = rgb[(rgb < 0.98).all(axis=-1)]
    unclipped = unclipped if len(unclipped) else rgb.reshape(-1, 3)
    cct = float(np.clip(_cct(white), 1500.0, 25000.0))
    if mode == "auto":
        locus = light_spectrum(f"BB{cct:.0f}K" if cct < 5000 else f"D{min(cct, 25000):.0f}K")
        estimate = (locus @ sensitivities) * np.exp(rng.normal(0.0, settings.awb_error, size=3) * [1, 0, 1])
        gains = gains_for(estimate)
        if cct < 4000:  # keep some of a warm light's cast, as phones and cameras do
            gains = gains**settings.awb_adaptation
    elif mode == "preset":
        preset = min(_PRESET_CCT, key=lambda key: abs(np.log(_PRESET_CCT[key] / cct)))
        gains = gains_for(light_spectrum(PRESETS[preset]) @ sensitivities)
    elif mode == "grey-world":
        gains = gains_for(unclipped.mean(axis=0))
    else:
        gains = gains_for(np.percentile(unclipped, 99.0, axis=0))
    return gains, {"light_cct": round(cct, 1)}


# --- tone ---------------------------------------------------------------------------------------------


def _hable(x: np.ndarray) -> np.ndarray:
    a, b, c, d, e, f = 0.15, 0.50, 0.10, 0.20, 0.02, 0.30
    return (x * (a * x + c * b) + d * e) / (x * (a * x + b) + d * f) - e / f


def filmic(linear: np.ndarray, white: float) -> np.ndarray:
    """Hable's filmic S-curve as he defines it: exposure bias 2, then divided by the curve at the white point
    ``white`` (in the curve's units), so linear ``white / 2`` maps to 1; a toe darkens the shadows a little."""
    exposure = 2.0
    return _hable(np.clip(linear, 0.0, None) * exposure) / _hable(np.asarray(white))


def _encode(linear: np.ndarray, settings: PhotoSettings) -> np.ndarray:
    colour = load_colour()
    if settings.tone == "filmic":
        linear = filmic(linear, settings.filmic_white)
    return np.round(np.asarray(colour.models.eotf_inverse_sRGB(np.clip(linear, 0.0, 1.0))) * 255.0).astype(np.uint8)


def chroma_denoise(rgb: np.ndarray, sigma: float) -> np.ndarray:
    """Blur the colour differences (R − G, B − G) and keep green's detail: chroma noise reduction."""
    if sigma <= 0:
        return rgb
    from scipy.ndimage import gaussian_filter

    green = rgb[..., _GREEN : _GREEN + 1]
    difference = gaussian_filter(rgb - green, sigma=(sigma, sigma, 0), mode="mirror")
    return np.clip(difference + green, 0.0, None)


def downscale(image: np.ndarray, factor: int) -> np.ndarray:
    """Average ``factor``×``factor`` blocks (H and W must be multiples of it)."""
    if factor == 1:
        return image
    height, width = image.shape[:2]
    return image.reshape(height // factor, factor, width // factor, factor, *image.shape[2:]).mean(axis=(1, 3))


def develop_photo(
    cube: np.ndarray, white: np.ndarray, settings: PhotoSettings, rng: np.random.Generator, factor: int = 1
) -> tuple[bytes, dict[str, object]]:
    """The JPEG file of ``cube`` (H×W×31 radiance at the drawn resolution, averaged down by ``factor``)."""
    sensor = CameraSettings(
        camera=DEFAULT_CAMERA,  # the name is not used below: the sensitivities are the drawn ones
        mean_green_electrons=settings.mean_green_electrons, read_noise_electrons=settings.read_noise_electrons,
    )  # fmt: skip
    raw = np.asarray(cube, dtype=np.float64) @ settings.sensitivities
    signal = digitize(sensor_electrons(raw, sensor, rng), sensor)
    rgb = chroma_denoise(demosaic(signal, settings.demosaic), settings.chroma_denoise)
    gains, facts = white_balance_gains(rgb, settings, white, rng)
    linear = apply_white_balance(rgb, gains) @ settings.colour_matrix.T
    stops = 2.0**settings.exposure_stops
    linear *= sensor.full_well_electrons / sensor.mean_green_electrons * 0.18 * stops
    image = _encode(downscale(linear, factor), settings)
    data = encode_jpeg(image, settings.jpeg_quality)
    facts |= {"clipped": round(float(np.mean(image == 255)), 5), "gains": [round(float(g), 4) for g in gains]}
    return data, facts


def read_photo(data: bytes) -> np.ndarray:
    """The JPEG's pixels as a reader sees them (Pillow)."""
    return decode_jpeg(data)
