"""Physically plausible output: make each reconstructed spectrum render back to the input pixel exactly.

An RGB pixel says exactly one thing about the spectrum behind it: its rendering. The network's output
need not agree with that (it renders back to a colour near the input, not the input), so ``--plausible``
replaces each output spectrum x by the closest spectrum (Euclidean) that does:

    x' = x + F (FᵀF)⁻¹ (rgb − Fᵀx)

with F (31×3) the known rendering and rgb the pixel's value in F's units. This is a per-pixel post-step
after blending (read → window → infer → blend → **project** → write); it changes nothing the input
cannot see (the component of x in F's null space) and costs one 31×3 product per pixel.

The rendering (:func:`rendering_for`) follows from the input space the file is read in:

- ``ntire2020-clean``: the clean track's own rendering, ``cube @ F / 256`` with F the CIE 1964 10° CMFs
  scaled to sum to 255 (``hsrecon.physics``), and rgb = exposure · code / max_code. The track *truncates*
  to 8 bits, so an integer code c stands for the interval [c, c + 1): the target is its centre c + 0.5.
- ``srgb`` and ``linear``: a photo's rendering, CIE 1931 2° XYZ → linear sRGB, scaled so that a D65-lit
  white at the network's radiance scale gives (1, 1, 1); rgb = exposure · (linear value). A photo's
  encoder rounds, so the code itself is the bin centre. The exposure is the one the input transform
  used: the output is in that scale ("up to the exposure").

A channel at full scale (the code max_code) was clipped: the scene was at least that bright. Such a
channel is constrained only from below: if the output renders darker it is raised to the clip level,
else left as it is. (That is the minimum-norm change giving that rendering, not the exact projection
onto the inequality; clipped pixels are few in a well-exposed photo.)

:class:`RoundTripError` measures how far any cube's rendering is from its input, in 8-bit code units of
the file's own encoding, over unclipped channels: a free quality signal for every converted image (~0
after the projection, by construction).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from hsrecon.cache import disk_cached
from hsrecon.inputs import InputTransform, canonical_space, d65_white_scale
from hsrecon.physics import align_to_bands, load_colour, ntire2020_clean_matrix

__all__ = [
    "Rendering",
    "RoundTripError",
    "check_weights_space",
    "photo_rendering_matrix",
    "project",
    "rendering_for",
    "rendering_is_known",
]

CODES_8BIT = 255.0


@lru_cache(maxsize=1)
@disk_cached("photo-rendering", modules=("physics", "inputs", "plausible"))  # start-up: see hsrecon.cache
def photo_rendering_matrix() -> np.ndarray:
    """31×3 F with ``linear_srgb = spectrum @ F``: CIE 1931 2° XYZ, then sRGB's XYZ→RGB matrix (D65 white).

    Scaled per channel so that D65 at the network's radiance scale (D65 · k, k making it as luminous in
    ȳ10 as a flat spectrum of 1, as ``hsrecon.inputs`` defines it) renders to exactly (1, 1, 1): the
    31-sample sums are not quite colour-science's 1 nm integrals, and the constant diagonal makes white
    white again (each column changes by well under 1%).
    """
    colour = load_colour()
    cmfs = align_to_bands(colour.MSDS_CMFS["CIE 1931 2 Degree Standard Observer"])
    xyz_to_rgb = np.asarray(colour.RGB_COLOURSPACES["sRGB"].matrix_XYZ_to_RGB)
    matrix = cmfs @ xyz_to_rgb.T
    d65 = align_to_bands(colour.SDS_ILLUMINANTS["D65"])
    white = (d65 * d65_white_scale(d65)) @ matrix
    matrix = matrix / white
    matrix.setflags(write=False)
    return matrix


@dataclass(frozen=True)
class Rendering:
    """How an input pixel relates to a spectrum: ``rgb = spectrum @ matrix``, rgb in the target's units.

    ``offset`` is added to integer codes before scaling (0.5: the quantiser truncated, so the code's bin
    centre; 0: it rounded). ``encoding`` is how the file's codes relate to rgb/exposure: ``"linear"``
    (code/max_code) or ``"srgb"`` (the sRGB curve).
    """

    matrix: np.ndarray  # 31×3 float64
    exposure: float
    max_code: float
    offset: float
    encoding: str
    _pseudo_inverse: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # F (FᵀF)⁻¹, transposed for row vectors: x' = x + residual @ this
        gram = self.matrix.T @ self.matrix
        object.__setattr__(self, "_pseudo_inverse", np.linalg.solve(gram, self.matrix.T))

    def codes(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(each channel's value in the file's encoding, [0, 1], at its bin centre; clipped-channel mask)."""
        values = np.asarray(pixels)
        clipped = values >= self.max_code
        offset = self.offset if np.issubdtype(values.dtype, np.integer) else 0.0
        return (values.astype(np.float64) + offset) / self.max_code, clipped

    def target(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(the rgb each pixel's spectrum must render to, float64; clipped-channel mask)."""
        pixels = np.asarray(pixels)
        if self.encoding == "srgb" and pixels.dtype in (np.uint8, np.uint16):  # a table: 5× faster
            table = _srgb_table(np.iinfo(pixels.dtype).max + 1, self.max_code, self.offset)
            return self.exposure * table[pixels], pixels >= self.max_code
        encoded, clipped = self.codes(pixels)
        return self.exposure * self.decode(encoded), clipped

    def decode(self, encoded: np.ndarray) -> np.ndarray:
        if self.encoding == "linear":
            return encoded
        return np.asarray(load_colour().models.eotf_sRGB(encoded), dtype=np.float64)

    def encode(self, linear: np.ndarray) -> np.ndarray:
        """The inverse of :meth:`decode` on [0, 1] (values outside are clipped: a file cannot hold them)."""
        linear = np.clip(linear, 0.0, 1.0)
        if self.encoding == "linear":
            return linear
        return np.asarray(load_colour().models.eotf_inverse_sRGB(linear), dtype=np.float64)

    def render(self, rows: np.ndarray) -> np.ndarray:
        """h×W×31 spectra → h×W×3 rgb (float64), in the target's units."""
        return np.asarray(rows, dtype=np.float64) @ self.matrix


@lru_cache(maxsize=8)
@disk_cached("srgb-bin-centres", modules=("plausible",))
def _srgb_table(codes: int, max_code: float, offset: float) -> np.ndarray:
    """Linear value (float64) of every integer code at its bin centre: eotf_sRGB((code + offset) / max_code)."""
    table = np.asarray(load_colour().models.eotf_sRGB((np.arange(codes) + offset) / max_code), dtype=np.float64)
    table.setflags(write=False)
    return table


def rendering_for(transform: InputTransform) -> Rendering:
    """The rendering behind a file read through ``transform`` (its space, full scale and exposure)."""
    if transform.space == "ntire2020-clean":
        matrix = ntire2020_clean_matrix() / 256.0
        return Rendering(matrix, transform.exposure, transform.max_code, offset=0.5, encoding="linear")
    encoding = "srgb" if transform.space == "srgb" else "linear"
    return Rendering(photo_rendering_matrix(), transform.exposure, transform.max_code, offset=0.0, encoding=encoding)


def rendering_is_known(weights_space: str) -> bool:
    """Whether the output of weights trained on ``weights_space`` input relates to the input file through
    :func:`rendering_for`: true for clean-space weights (the bundled ones), whatever the file holds, since
    every input transform ends in clean space at a known exposure. Weights trained on raw photo values
    output spectra in their training data's scale, which no exposure relates to the file."""
    return canonical_space(weights_space) == "ntire2020-clean"


def check_weights_space(weights_space: str, name: str = "these weights") -> None:
    """ValueError, one line, when ``--plausible`` cannot apply to weights trained on ``weights_space``."""
    if not rendering_is_known(weights_space):
        raise ValueError(
            f"--plausible needs weights that take clean-space input (their output's rendering is known); "
            f"{name} take {weights_space}"
        )


def project(rows: np.ndarray, pixels: np.ndarray, rendering: Rendering) -> np.ndarray:
    """The closest spectra to ``rows`` (h×W×31) that render to ``pixels`` (h×W×3, the file's codes).

    Clipped channels are raised to the clip level when the output renders below it, else kept.
    Returns float32, the dtype of the pipeline's rows.
    """
    rows = np.asarray(rows, dtype=np.float32)
    target, clipped = rendering.target(pixels)
    residual = target - rows @ rendering.matrix.astype(np.float32)  # float32 GEMM, float64 residual
    residual[clipped] = np.maximum(residual[clipped], 0.0)
    return rows + (residual @ rendering._pseudo_inverse).astype(np.float32)


@dataclass
class RoundTripError:
    """How far cubes render from their input, in 8-bit code units of the file's encoding, as rows stream.

    Per channel: the cube's rendering divided by the exposure, clipped to [0, 1], encoded as the file is
    (sRGB curve or linear), times 255, minus the input code (at its bin centre) scaled to 0…255. Channels
    clipped in the input are left out and counted. ``rms`` and ``max`` are over all other channels.
    """

    rendering: Rendering
    squared: float = 0.0
    largest: float = 0.0
    counted: int = 0
    clipped: int = 0

    def __call__(self, rows: np.ndarray, pixels: np.ndarray) -> None:
        encoded, clipped = self.rendering.codes(pixels)
        rendered = self.rendering.encode(self.rendering.render(rows) / self.rendering.exposure)
        difference = (rendered - encoded)[~clipped] * CODES_8BIT
        self.squared += float(np.sum(difference * difference))
        if difference.size:
            self.largest = max(self.largest, float(np.abs(difference).max()))
        self.counted += difference.size
        self.clipped += int(np.count_nonzero(clipped))

    @property
    def rms(self) -> float:
        return math.sqrt(self.squared / self.counted) if self.counted else math.nan

    @property
    def max(self) -> float:
        return self.largest if self.counted else math.nan
