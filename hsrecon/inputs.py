"""Input spaces: what an RGB file's values mean, and how they become the network's input.

The default weights were trained on the NTIRE 2020 clean track, whose RGB is not a photo's RGB: it is
``cube @ F / 256`` with F the CIE 1964 10° colour matching functions scaled to sum to 255 per channel
(``hsrecon.physics``), i.e. linear, XYZ-like, not white balanced, stored as ``PNG value / 255``. Every input
space ends in that "clean space" as float32:

- ``ntire2020-clean`` (alias ``ntire-clean``): the file is such a rendering; ``x = exposure · value / max_code``.
- ``srgb``: an ordinary photo; undo the sRGB transfer curve, map linear sRGB to clean space with a 3×3
  matrix, scale by the exposure.
- ``linear``: linear sRGB primaries (no transfer curve), same matrix and exposure.

The matrix is fitted at first use from measured reflectances lit by D65 (colour-science's datasets), with
D65-lit white mapped exactly to D65's clean colour; photos carry no absolute brightness, so ``srgb`` and
``linear`` need an exposure, chosen automatically from the image unless given. The derivation, the
fit's residual and the measurement behind the automatic exposure are in ``docs/input-spaces.md``.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from hsrecon.cache import disk_cached
from hsrecon.io.rgb import RGBImage
from hsrecon.physics import (
    align_to_bands,
    cmfs_cie1964_10deg,
    fit_white_preserving_matrix,
    load_colour,
    render_ntire2020_clean,
)

__all__ = [
    "AUTO_PERCENTILE",
    "AUTO_SAMPLE_PIXELS",
    "AUTO_TARGET",
    "INPUT_SPACES",
    "FedBySpace",
    "InputTransform",
    "auto_exposure",
    "canonical_space",
    "d65_clean_white",
    "d65_white_scale",
    "make_input_transform",
    "matrix_fit_report",
    "network_space",
    "photo_evidence",
    "srgb_to_clean_matrix",
]

INPUT_SPACES: tuple[str, ...] = ("ntire2020-clean", "srgb", "linear")
_ALIASES = {"ntire-clean": "ntire2020-clean"}

# Auto exposure: the 99th percentile of the brightest channel (clean space, exposure 1) is scaled to this.
# Measured with the default weights (docs/input-spaces.md): the brightest round level at which no output
# value of five natural photos leaves [-0.05, 1.05]; brighter inputs give slightly better spectral shape on
# scenes with ground truth, until the outputs leave the range.
AUTO_TARGET = 0.3
AUTO_PERCENTILE = 99.0
AUTO_SAMPLE_PIXELS = 1 << 18  # a regular grid of at most this many pixels: cheap on a 100 MP image

# Reflectance sets for the matrix: fitted on the first, the others held out to check it.
_FIT_SET = "rawtoaces 190 patches"
_HELD_OUT_SETS = ("BabelColor Average", "ColorChecker N Ohta", "PMC")


def canonical_space(name: str) -> str:
    """The canonical name of an input space (aliases and case accepted); ValueError listing valid names."""
    key = str(name).strip().lower()
    key = _ALIASES.get(key, key)
    if key not in INPUT_SPACES:
        valid = ", ".join([*INPUT_SPACES, *_ALIASES])
        raise ValueError(f"unknown input space {name!r}; valid: {valid}")
    return key


def network_space(weights_space: str, file_space: str | None = None) -> tuple[str, str | None]:
    """Which transform feeds files holding ``file_space`` to weights trained on ``weights_space``.

    Returns (space to give :func:`make_input_transform`, a warning to say once or None). The transforms
    all end in the clean rendering's space, so for clean-space weights (the default) the file's space is
    converted. Weights trained on another space (e.g. a camera model, ``srgb``) learned that space's own
    values: files in the same space are fed as value/max (the ``ntire2020-clean`` transform is exactly
    that), and files in yet another space are fed the same way with a warning, since no conversion
    between two non-clean spaces is known. ``file_space`` None means "the weights' own".
    """
    weights_space = str(weights_space).strip().lower()
    weights_space = _ALIASES.get(weights_space, weights_space)
    file_space = canonical_space(file_space) if file_space is not None else None
    if weights_space == "ntire2020-clean":
        return file_space or "ntire2020-clean", None
    if file_space is None or file_space == weights_space:
        return "ntire2020-clean", None
    return "ntire2020-clean", (
        f"the weights expect {weights_space} input and the files are declared {file_space}: "
        "no conversion between them is known, values are fed as value/max"
    )


def photo_evidence(image: RGBImage) -> str | None:
    """Why ``image`` looks like an ordinary photo rather than a clean-track rendering, or None.

    An ordinary photo is sRGB-encoded and white-balanced; the clean track's renderings are linear PNGs
    with no camera behind them. Evidence: EXIF camera tags (make/model), or an 8-bit JPEG (the clean
    track never used JPEG; its real-world track, which is photo-like, did).
    """
    if image.camera:
        return f"its EXIF names a camera ({image.camera})"
    if image.format == "JPEG" and image.pixels.dtype == np.uint8:
        return "it is an 8-bit JPEG"
    return None


# --- the linear-sRGB → clean-space matrix -------------------------------------------------------------


def _reflectances(colour, name: str):
    """A reflectance set as colour-science MultiSpectralDistributions."""
    if name == _FIT_SET:
        return colour.characterisation.read_training_data_rawtoaces_v1()
    return colour.colorimetry.sds_and_msds_to_msds(list(colour.SDS_COLOURCHECKERS[name].values()))


def d65_white_scale(d65_31: np.ndarray) -> float:
    """The factor k making D65-lit perfect white as luminous (ȳ10) as a flat spectrum of radiance 1."""
    ybar = cmfs_cie1964_10deg()[:, 1]
    return float(ybar.sum() / (d65_31 * ybar).sum())


def _srgb_and_clean(colour, msds) -> tuple[np.ndarray, np.ndarray]:
    """For reflectances lit by D65: linear sRGB (white ≈ 1) and the clean rendering (n×3 each, float64).

    sRGB by colour-science's standard route: CIE 1931 2° XYZ under D65 (perfect white Y = 1), then the
    sRGB XYZ→RGB matrix (D65 white, no adaptation needed). Clean: radiance = reflectance · D65 · k at the
    31 wavelengths, rendered by ``render_ntire2020_clean``.
    """
    cmfs_2deg = colour.MSDS_CMFS["CIE 1931 2 Degree Standard Observer"]
    d65 = colour.SDS_ILLUMINANTS["D65"]
    fine = cmfs_2deg.shape
    xyz = colour.msds_to_XYZ(
        msds.copy().align(fine), cmfs=cmfs_2deg, illuminant=d65.copy().align(fine), method="Integration"
    )
    rgb = (np.asarray(xyz) / 100.0) @ np.asarray(colour.RGB_COLOURSPACES["sRGB"].matrix_XYZ_to_RGB).T
    d65_31 = align_to_bands(d65)
    radiance = align_to_bands(msds).T * d65_31 * d65_white_scale(d65_31)
    return rgb, render_ntire2020_clean(radiance)


@lru_cache(maxsize=1)
def _fit() -> tuple[np.ndarray, dict[str, tuple[int, float, float]]]:
    colour = load_colour()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # colour-science's notes about extrapolating short spectra
        pairs = {name: _srgb_and_clean(colour, _reflectances(colour, name)) for name in (_FIT_SET, *_HELD_OUT_SETS)}
        white = d65_clean_white()
    matrix = fit_white_preserving_matrix(*pairs[_FIT_SET], white)  # sRGB white → D65's clean colour
    report = {}
    for name, (rgb, clean) in pairs.items():
        error = rgb @ matrix.T - clean
        report[name] = (len(rgb), float(np.sqrt(np.mean(error**2))), float(np.abs(error).max()))
    matrix.setflags(write=False)
    return matrix, report


@lru_cache(maxsize=1)
def d65_clean_white() -> np.ndarray:
    """The clean rendering of a perfect white lit by D65 at the luminance of a flat spectrum of radiance 1.

    This is where sRGB white (1, 1, 1) lands at exposure 1: not grey, because the clean rendering is not
    white balanced (its grey is the equal-energy spectrum), and D65 is bluer than equal energy.
    """
    colour = load_colour()
    d65_31 = align_to_bands(colour.SDS_ILLUMINANTS["D65"])
    white = render_ntire2020_clean(d65_31 * d65_white_scale(d65_31))
    white.setflags(write=False)
    return white


@lru_cache(maxsize=1)
@disk_cached("srgb-to-clean", modules=("physics", "inputs"))  # start-up: no colour-science import once cached
def srgb_to_clean_matrix() -> np.ndarray:
    """The 3×3 M with ``clean = M · linear_srgb`` (column vectors), fitted once and cached (read-only)."""
    return _fit()[0]


def matrix_fit_report() -> dict[str, tuple[int, float, float]]:
    """For the fit set and each held-out set: (patches, RMS error, max |error|) in clean units (white ≈ 1)."""
    return dict(_fit()[1])


# --- the transform --------------------------------------------------------------------------------------


@lru_cache(maxsize=8)
@disk_cached("srgb-decoding", modules=("inputs",))
def _srgb_decoding_lut(codes: int, max_code: float) -> np.ndarray:
    """Linear value of every integer code 0…codes−1 (sRGB EOTF of code / max_code), float32."""
    colour = load_colour()
    lut = np.asarray(colour.models.eotf_sRGB(np.arange(codes, dtype=np.float64) / max_code), dtype=np.float32)
    lut.setflags(write=False)
    return lut


def _srgb_decode(pixels: np.ndarray, max_code: float) -> np.ndarray:
    """Linear sRGB (float32) from encoded values: a table lookup for 8/16-bit codes, the formula otherwise."""
    if pixels.dtype in (np.uint8, np.uint16):
        return _srgb_decoding_lut(np.iinfo(pixels.dtype).max + 1, max_code)[pixels]
    colour = load_colour()
    return np.asarray(colour.models.eotf_sRGB(pixels.astype(np.float32) / np.float32(max_code)), dtype=np.float32)


def _apply_matrix(values: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """``values @ matrix.T`` as one float32 GEMM over all pixels."""
    flat = values.reshape(-1, 3)
    out = flat @ np.ascontiguousarray(matrix.T, dtype=np.float32)
    return out.reshape(values.shape)


@dataclass(frozen=True)
class InputTransform:
    """Turns rows of an image into the network's input (clean space, float32); picklable, stateless."""

    space: str
    max_code: float
    exposure: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "space", canonical_space(self.space))  # aliases accepted, stored canonical
        for name in ("max_code", "exposure"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive finite number, got {value!r}")

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        """h×W×3 values (integer or float, any rows of the image) → h×W×3 float32 in clean space."""
        pixels = np.asarray(pixels)
        if pixels.ndim != 3 or pixels.shape[-1] != 3:
            raise ValueError(f"expected h×W×3 pixels, got shape {pixels.shape}")
        if self.space == "ntire2020-clean":
            out = pixels.astype(np.float32) / np.float32(self.max_code)  # exactly value/255 when exposure is 1
            if self.exposure != 1.0:
                out *= np.float32(self.exposure)
            return out
        matrix = srgb_to_clean_matrix() * self.exposure
        if self.space == "srgb":
            return _apply_matrix(_srgb_decode(pixels, self.max_code), matrix)
        return _apply_matrix(pixels.astype(np.float32), matrix / self.max_code)


# --- exposure -------------------------------------------------------------------------------------------


def _default_max_code(dtype: np.dtype) -> float:
    if dtype == np.uint8:
        return 255.0
    if dtype == np.uint16:
        return 65535.0
    if np.issubdtype(dtype, np.floating):
        return 1.0
    raise ValueError(f"cannot tell the full-scale value of {dtype} pixels; pass max_code")


def _subsample(pixels: np.ndarray, max_pixels: int) -> np.ndarray:
    """A regular grid of at most ``max_pixels`` pixels (a strided view): deterministic and cheap."""
    height, width = pixels.shape[:2]
    step = max(1, math.ceil(math.sqrt(height * width / max_pixels)))
    return pixels[::step, ::step]


def auto_exposure(pixels: np.ndarray, space: str, max_code: float) -> float:
    """The exposure that puts the image's bright end at :data:`AUTO_TARGET` (1 for ntire2020-clean).

    Statistic: the :data:`AUTO_PERCENTILE`-th percentile, over a subsample, of each pixel's brightest
    channel after conversion at exposure 1. A percentile, not the maximum, so that a few specular
    highlights or clipped pixels do not darken the whole picture. A black image gets exposure 1.
    """
    space = canonical_space(space)
    if space == "ntire2020-clean":
        return 1.0
    sample = InputTransform(space, float(max_code), 1.0)(_subsample(np.asarray(pixels), AUTO_SAMPLE_PIXELS))
    brightest = sample.max(axis=2)
    brightest = brightest[np.isfinite(brightest)]
    level = float(np.percentile(brightest, AUTO_PERCENTILE)) if brightest.size else 0.0
    return AUTO_TARGET / level if level > 0 else 1.0


def make_input_transform(
    image: RGBImage | np.ndarray, space: str, *, max_code: float | None = None, exposure: float | None = None
) -> InputTransform:
    """The transform for ``image`` in ``space``; ``exposure=None`` chooses it from the image (auto)."""
    space = canonical_space(space)
    if isinstance(image, RGBImage):
        pixels, file_max = image.pixels, image.max_code
    else:
        pixels = np.asarray(image)
        file_max = _default_max_code(pixels.dtype) if max_code is None else max_code
    max_code = float(file_max if max_code is None else max_code)
    if exposure is None:
        exposure = auto_exposure(pixels, space, max_code)
    return InputTransform(space=space, max_code=max_code, exposure=float(exposure))


class FedBySpace:
    """How files reach a model that takes ``self.input_space``: the one rule every kind of weights follows
    (networks and per-pixel maps alike), so the two never drift apart."""

    input_space: str

    def feed_space(self, file_space: str | None = None) -> tuple[str, str | None]:
        """(input transform's space, warning or None) for files holding ``file_space`` (None: the weights'
        own); :func:`network_space` says how each pair is handled."""
        return network_space(self.input_space, file_space)

    def transform(
        self,
        image: RGBImage | np.ndarray,
        file_space: str | None = None,
        *,
        exposure: float | None = None,
        max_code: float | None = None,
    ) -> InputTransform:
        """The transform taking ``image`` (holding ``file_space``) to these weights' input."""
        space, _ = self.feed_space(file_space)
        return make_input_transform(image, space, max_code=max_code, exposure=exposure)
