"""A real camera's rendering of a spectral cube: the kind of RGB photo users actually have.

The NTIRE 2020 clean rendering (:mod:`hsrecon.physics`) is an idealised, noise-free projection. A photo goes
through a camera instead, and this module models each step, in order, with measured data from colour-science:

1. **Spectral response.** ``raw = cube @ S`` with ``S`` (31×3) a camera's measured spectral sensitivities
   (``colour.MSDS_CAMERA_SENSITIVITIES``; the Canon EOS 5D Mark II from colour-science's RAW to ACES
   files), aligned to 400–700/10 nm by colour-science. No Δλ factor: the scale is set by the exposure.
2. **Exposure.** Automatic: raw values are scaled to photo-electrons so that the mean green is
   ``mean_green_electrons`` (5000 by default, as NTIRE's real-world track did); or fixed with
   ``electrons_per_unit``.
3. **Sensor.** An RGGB Bayer mosaic; Poisson shot noise (variance = signal in electrons); Gaussian read
   noise; clipping at the full well; an ADC of ``adc_bits``.
4. **Demosaicing.** Malvar–He–Cutler gradient-corrected interpolation (default) or bilinear.
5. **White balance** from the illuminant's own camera response when it is known, else grey-world; gains
   normalised to a minimum of 1 and clipped after, as dcraw does, so saturated highlights stay neutral.
6. **Colour matrix** camera → linear sRGB (3×3), fitted by least squares on colour-science's measured
   reflectances under D65 (:func:`camera_colour_matrix` says how, and reports the residual).
7. **Tone.** A fixed gain maps the exposure's mean green to ``brightness`` (0.18: middle grey), then the
   sRGB transfer curve, rounding to 8 bits, and optionally JPEG (Pillow, in memory).

Every random draw comes from the caller's ``numpy.random.Generator``, so a seed fixes the photo.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy.ndimage import convolve

from hsrecon.physics import (
    WAVELENGTHS_NM,
    align_to_bands,
    fit_white_preserving_matrix,
    illuminant_spectrum,
    load_colour,
    measured_reflectances,
)

__all__ = [
    "CAMERAS",
    "DEFAULT_CAMERA",
    "CameraSettings",
    "ColourMatrixFit",
    "apply_white_balance",
    "bayer_masks",
    "camera_colour_matrix",
    "camera_raw_rgb",
    "camera_sensitivities",
    "decode_jpeg",
    "demosaic",
    "digitize",
    "encode_jpeg",
    "fit_colour_matrix",
    "render_camera",
    "render_camera_jpeg",
    "sensor_electrons",
    "white_balance_gains",
]

CANON_5D2 = "Canon EOS 5D Mark II (rawtoaces)"
DEFAULT_CAMERA = "Nikon 5100 (NPL)"
CAMERAS: tuple[str, ...] = (DEFAULT_CAMERA, "Sigma SDMerill (NPL)", CANON_5D2)
"""Cameras with measured sensitivities in colour-science. The Sigma table stops at 680 nm (690 and 700 nm
repeat 680's values); the other two cover 380–780 nm."""

DEMOSAIC_METHODS = ("malvar", "bilinear")
WHITE_BALANCE = ("auto", "illuminant", "grey-world", "none")

_GREEN = 1


@dataclass(frozen=True)
class CameraSettings:
    """Everything that decides a photo apart from the scene and the random draws.

    ``white_balance``: ``auto`` uses the illuminant when one is passed to :func:`render_camera`, grey-world
    otherwise. ``electrons_per_unit`` (electrons per unit of ``cube @ S``) fixes the exposure instead of
    the automatic one. ``jpeg_quality`` None keeps the lossless 8-bit image.
    """

    camera: str = DEFAULT_CAMERA
    mean_green_electrons: float = 5000.0
    electrons_per_unit: float | None = None
    full_well_electrons: float = 30000.0
    read_noise_electrons: float = 5.0
    adc_bits: int = 12
    demosaic: str = "malvar"
    white_balance: str = "auto"
    brightness: float = 0.18
    jpeg_quality: int | None = 90

    def __post_init__(self) -> None:
        if self.camera not in CAMERAS:
            raise ValueError(f"unknown camera {self.camera!r}; choose one of {', '.join(CAMERAS)}")
        if self.demosaic not in DEMOSAIC_METHODS:
            raise ValueError(f"demosaic must be one of {', '.join(DEMOSAIC_METHODS)}, got {self.demosaic!r}")
        if self.white_balance not in WHITE_BALANCE:
            raise ValueError(f"white_balance must be one of {', '.join(WHITE_BALANCE)}, got {self.white_balance!r}")
        if not 0 < self.mean_green_electrons < self.full_well_electrons:
            raise ValueError("need 0 < mean_green_electrons < full_well_electrons")
        if self.jpeg_quality is not None and not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be 1..100 or None, got {self.jpeg_quality}")


# -- spectral response --------------------------------------------------------------------------------


def _canon_msds():
    colour = load_colour()
    from colour.characterisation.aces_it import ROOT_RESOURCES_RAWTOACES

    path = Path(ROOT_RESOURCES_RAWTOACES) / "CANON_EOS_5DMark_II_RGB_Sensitivities.csv"
    sds = colour.io.read_sds_from_csv_file(str(path))
    return colour.colorimetry.sds_and_msds_to_msds(list(sds.values()))


def camera_msds(camera: str):
    """The camera's measured sensitivities as colour-science holds them (a multi-spectral distribution)."""
    colour = load_colour()
    if camera == CANON_5D2:
        return _canon_msds()
    if camera in colour.MSDS_CAMERA_SENSITIVITIES and camera in CAMERAS:
        return colour.MSDS_CAMERA_SENSITIVITIES[camera]
    raise ValueError(f"unknown camera {camera!r}; choose one of {', '.join(CAMERAS)}")


@lru_cache(maxsize=8)
def camera_sensitivities(camera: str = DEFAULT_CAMERA) -> np.ndarray:
    """The camera's R, G, B sensitivities at the 31 wavelengths (31×3, read-only), by colour-science's align."""
    values = align_to_bands(camera_msds(camera))
    values.setflags(write=False)
    return values


def camera_raw_rgb(cube: np.ndarray, camera: str = DEFAULT_CAMERA) -> np.ndarray:
    """The noise-free camera response ``cube @ S`` (…×3, float64): what the sensor integrates at each pixel."""
    cube = np.asarray(cube, dtype=np.float64)
    if cube.shape[-1] != len(WAVELENGTHS_NM):
        raise ValueError(f"expected {len(WAVELENGTHS_NM)} bands in the last axis, got shape {cube.shape}")
    return cube @ camera_sensitivities(camera)


# -- colour matrix ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ColourMatrixFit:
    """The camera → linear sRGB matrix and how well it fits the measured reflectances it was fitted on."""

    camera: str
    matrix: np.ndarray = field(repr=False)
    patches: int
    rms: float
    max_abs: float
    delta_e2000_mean: float
    delta_e2000_max: float


def _srgb_linear_under(reflectances: np.ndarray, light: np.ndarray) -> np.ndarray:
    """Reference colours: CIE 1931 2° XYZ of the lit reflectances → linear sRGB, the white mapped to (1, 1, 1)."""
    colour = load_colour()
    cmfs = align_to_bands(colour.MSDS_CMFS["CIE 1931 2 Degree Standard Observer"])
    to_srgb = np.asarray(colour.models.RGB_COLOURSPACE_sRGB.matrix_XYZ_to_RGB)
    rgb = (reflectances * light) @ cmfs @ to_srgb.T
    white = light @ cmfs @ to_srgb.T
    return rgb / white


def _delta_e2000(srgb_a: np.ndarray, srgb_b: np.ndarray) -> np.ndarray:
    colour = load_colour()
    space = colour.models.RGB_COLOURSPACE_sRGB
    white = space.whitepoint

    def lab(rgb: np.ndarray) -> np.ndarray:
        xyz = rgb @ np.asarray(space.matrix_RGB_to_XYZ).T
        return colour.XYZ_to_Lab(xyz, white)

    return np.asarray(colour.delta_E(lab(srgb_a), lab(srgb_b), method="CIE 2000"))


@lru_cache(maxsize=8)
def camera_colour_matrix(camera: str = DEFAULT_CAMERA) -> ColourMatrixFit:
    """Fit the 3×3 camera → linear sRGB matrix on all measured reflectances (268) lit by CIE D65.

    Camera side: each reflectance's raw response under D65, white-balanced so a perfect white is (1, 1, 1).
    Target: the same reflectance's CIE 1931 2° XYZ under D65 in linear sRGB, also white → (1, 1, 1).
    Fit: linear least squares with the constraint that every row sums to 1 (white maps to white), so a
    neutral stays neutral after white balance whatever the illuminant. One matrix for all illuminants, as a
    camera with a single (daylight) calibration would use.
    """
    return fit_colour_matrix(camera_sensitivities(camera), camera)


def fit_colour_matrix(sensitivities: np.ndarray, camera: str = "custom") -> ColourMatrixFit:
    """:func:`camera_colour_matrix` for any sensitivities (31×3): e.g. a randomly perturbed camera."""
    reflectances, _ = measured_reflectances()
    light = illuminant_spectrum("D65")
    raw = (reflectances * light) @ sensitivities / (light @ sensitivities)
    target = _srgb_linear_under(reflectances, light)
    matrix = fit_white_preserving_matrix(raw, target)  # rows sum to 1: white stays white
    matrix.setflags(write=False)
    fitted = raw @ matrix.T
    residual = fitted - target
    delta_e = _delta_e2000(np.clip(fitted, 0, None), np.clip(target, 0, None))
    return ColourMatrixFit(
        camera=camera,
        matrix=matrix,
        patches=len(reflectances),
        rms=float(np.sqrt(np.mean(residual**2))),
        max_abs=float(np.max(np.abs(residual))),
        delta_e2000_mean=float(np.mean(delta_e)),
        delta_e2000_max=float(np.max(delta_e)),
    )


# -- sensor -------------------------------------------------------------------------------------------


def bayer_masks(height: int, width: int) -> np.ndarray:
    """Boolean masks (3×H×W) of the R, G, B sites of an RGGB mosaic (R at row 0, column 0)."""
    y, x = np.mgrid[0:height, 0:width]
    red = (y % 2 == 0) & (x % 2 == 0)
    blue = (y % 2 == 1) & (x % 2 == 1)
    return np.stack([red, ~(red | blue), blue])


def _exposure(raw: np.ndarray, settings: CameraSettings) -> float:
    """Electrons per unit of raw response: fixed, or so the mean green is ``mean_green_electrons``."""
    if settings.electrons_per_unit is not None:
        return float(settings.electrons_per_unit)
    mean_green = float(np.mean(raw[..., _GREEN]))
    return settings.mean_green_electrons / mean_green if mean_green > 0 else 0.0


def sensor_electrons(raw: np.ndarray, settings: CameraSettings, rng: np.random.Generator) -> np.ndarray:
    """The RGGB mosaic in electrons (H×W float64): exposure, Poisson shot noise, Gaussian read noise, full well.

    Read noise may take a dark pixel below zero; the ADC clips it (no black-level offset is modelled).
    """
    masks = bayer_masks(*raw.shape[:2])
    mosaic = np.einsum("hwc,chw->hw", raw, masks) * _exposure(raw, settings)
    electrons = rng.poisson(np.clip(mosaic, 0, None)).astype(np.float64)
    electrons += rng.normal(0.0, settings.read_noise_electrons, size=electrons.shape)
    return np.minimum(electrons, settings.full_well_electrons)


def digitize(electrons: np.ndarray, settings: CameraSettings) -> np.ndarray:
    """ADC: electrons → integer codes of ``adc_bits`` → [0, 1] (1 = full well)."""
    top = 2**settings.adc_bits - 1
    codes = np.clip(np.round(electrons / settings.full_well_electrons * top), 0, top)
    return codes / top


# -- demosaicing --------------------------------------------------------------------------------------

_BILINEAR_G = np.array([[0, 1, 0], [1, 4, 1], [0, 1, 0]]) / 4
_BILINEAR_RB = np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]]) / 4
# Malvar, He & Cutler (ICASSP 2004), "High-quality linear interpolation for demosaicing of Bayer-patterned
# color images": bilinear plus a Laplacian correction from the channel sampled at the site.
# fmt: off
_MHC_G_AT_RB = np.array([
    [ 0,  0, -1,  0,  0],
    [ 0,  0,  2,  0,  0],
    [-1,  2,  4,  2, -1],
    [ 0,  0,  2,  0,  0],
    [ 0,  0, -1,  0,  0],
]) / 8
_MHC_ROW = np.array([  # red (blue) at a green site whose row neighbours are red (blue); transposed for columns
    [ 0,  0, 0.5,  0,  0],
    [ 0, -1,   0, -1,  0],
    [-1,  4,   5,  4, -1],
    [ 0, -1,   0, -1,  0],
    [ 0,  0, 0.5,  0,  0],
]) / 8
_MHC_DIAG = np.array([  # red at a blue site, blue at a red site
    [   0, 0, -1.5, 0,    0],
    [   0, 2,    0, 2,    0],
    [-1.5, 0,    6, 0, -1.5],
    [   0, 2,    0, 2,    0],
    [   0, 0, -1.5, 0,    0],
]) / 8
# fmt: on


def _conv(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    # 'mirror' (d c b | a b c d) keeps the Bayer phase across the border, so edges interpolate like the inside.
    return convolve(image, kernel, mode="mirror")


def _demosaic_bilinear(mosaic: np.ndarray, masks: np.ndarray) -> np.ndarray:
    kernels = (_BILINEAR_RB, _BILINEAR_G, _BILINEAR_RB)
    return np.stack([_conv(mosaic * mask, kernel) for mask, kernel in zip(masks, kernels, strict=True)], axis=-1)


def _demosaic_malvar(mosaic: np.ndarray, masks: np.ndarray) -> np.ndarray:
    height, width = mosaic.shape
    y, x = np.mgrid[0:height, 0:width]
    green_in_red_row = (y % 2 == 0) & (x % 2 == 1)
    green_in_blue_row = (y % 2 == 1) & (x % 2 == 0)
    along_row, along_col = _conv(mosaic, _MHC_ROW), _conv(mosaic, _MHC_ROW.T)
    diagonal = _conv(mosaic, _MHC_DIAG)
    red_mask, green_mask, blue_mask = masks
    green = np.where(green_mask, mosaic, _conv(mosaic, _MHC_G_AT_RB))
    red = np.select([red_mask, green_in_red_row, green_in_blue_row], [mosaic, along_row, along_col], diagonal)
    blue = np.select([blue_mask, green_in_blue_row, green_in_red_row], [mosaic, along_row, along_col], diagonal)
    return np.clip(np.stack([red, green, blue], axis=-1), 0.0, None)


def demosaic(mosaic: np.ndarray, method: str = "malvar") -> np.ndarray:
    """An RGGB mosaic (H×W) to H×W×3: ``malvar`` (gradient-corrected, sharper) or ``bilinear``."""
    masks = bayer_masks(*mosaic.shape)
    if method == "malvar":
        return _demosaic_malvar(mosaic, masks)
    if method == "bilinear":
        return _demosaic_bilinear(mosaic, masks)
    raise ValueError(f"demosaic must be one of {', '.join(DEMOSAIC_METHODS)}, got {method!r}")


# -- development --------------------------------------------------------------------------------------


def white_balance_gains(rgb: np.ndarray, settings: CameraSettings, illuminant: np.ndarray | None = None) -> np.ndarray:
    """Per-channel gains (green = 1) that make the illuminant (or, grey-world, the image mean) neutral."""
    mode = settings.white_balance
    if mode == "auto":
        mode = "grey-world" if illuminant is None else "illuminant"
    if mode == "none":
        return np.ones(3)
    if mode == "illuminant":
        if illuminant is None:
            raise ValueError("white_balance='illuminant' needs the illuminant's spectrum")
        reference = np.asarray(illuminant, dtype=np.float64) @ camera_sensitivities(settings.camera)
    else:
        reference = rgb.reshape(-1, 3).mean(axis=0)
    reference = np.where(reference > 0, reference, reference[_GREEN])
    return reference[_GREEN] / reference


def apply_white_balance(rgb: np.ndarray, gains: np.ndarray) -> np.ndarray:
    """Apply gains scaled to a minimum of 1, clip at the sensor's white, rescale to green = 1 (dcraw's way)."""
    scaled = gains / gains.min()
    return np.minimum(rgb * scaled, 1.0) / scaled[_GREEN]


def _to_srgb8(linear: np.ndarray) -> np.ndarray:
    colour = load_colour()
    encoded = colour.models.eotf_inverse_sRGB(np.clip(linear, 0.0, 1.0))
    return np.round(np.asarray(encoded) * 255.0).astype(np.uint8)


def _develop(
    cube: np.ndarray, settings: CameraSettings, rng: np.random.Generator, illuminant: np.ndarray | None
) -> np.ndarray:
    """Steps 1–7 of the module docstring, less JPEG: an H×W×3 uint8 sRGB image."""
    raw = camera_raw_rgb(cube, settings.camera)
    signal = digitize(sensor_electrons(raw, settings, rng), settings)
    rgb = demosaic(signal, settings.demosaic)
    rgb = apply_white_balance(rgb, white_balance_gains(rgb, settings, illuminant))
    linear = rgb @ camera_colour_matrix(settings.camera).matrix.T
    linear *= settings.full_well_electrons / settings.mean_green_electrons * settings.brightness
    return _to_srgb8(linear)


def _settings(camera: str | None, settings: CameraSettings | None) -> CameraSettings:
    settings = settings or CameraSettings()
    return settings if camera is None else replace(settings, camera=camera)


def encode_jpeg(rgb: np.ndarray, quality: int) -> bytes:
    """Pillow's baseline JPEG of an H×W×3 uint8 image (4:2:0 chroma, as cameras and Pillow default to)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8), mode="RGB").save(
        buffer, format="JPEG", quality=int(quality), subsampling="4:2:0"
    )
    return buffer.getvalue()


def decode_jpeg(data: bytes) -> np.ndarray:
    """Decode JPEG bytes with Pillow (as :func:`hsrecon.io.rgb.read_rgb` does) to H×W×3 uint8."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"))


def render_camera_jpeg(
    cube: np.ndarray,
    *,
    rng: np.random.Generator,
    camera: str | None = None,
    settings: CameraSettings | None = None,
    illuminant: np.ndarray | None = None,
) -> bytes:
    """The camera's JPEG file for ``cube`` (the bytes :func:`render_camera` decodes); needs ``jpeg_quality``."""
    settings = _settings(camera, settings)
    if settings.jpeg_quality is None:
        raise ValueError("render_camera_jpeg needs settings.jpeg_quality")
    return encode_jpeg(_develop(cube, settings, rng, illuminant), settings.jpeg_quality)


def render_camera(
    cube: np.ndarray,
    *,
    rng: np.random.Generator,
    camera: str | None = None,
    settings: CameraSettings | None = None,
    illuminant: np.ndarray | None = None,
) -> np.ndarray:
    """Photograph an H×W×31 radiance cube with a real camera model: H×W×3 uint8 sRGB.

    ``camera`` overrides ``settings.camera``; ``illuminant`` (31 values, any scale) lets the camera white
    balance for the scene's light, as a correct white-balance preset would. Deterministic given ``rng``'s
    state; the image is JPEG-compressed and decoded when ``settings.jpeg_quality`` is set.
    """
    settings = _settings(camera, settings)
    image = _develop(cube, settings, rng, illuminant)
    if settings.jpeg_quality is None:
        return image
    return decode_jpeg(encode_jpeg(image, settings.jpeg_quality))
