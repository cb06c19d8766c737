"""Spectral reconstruction metrics: MRAE, RMSE, PSNR, SAM and SSIM on H×W×B cubes, in float64.

Every function takes ``pred`` (the reconstruction) and ``gt`` (the ground truth), both H×W×B with the
bands last, and an explicit ``crop``: the number of pixels removed from every border before scoring
(0 = the whole image, the NTIRE 2020 convention; 128 = NTIRE 2022's ``[128:-128, 128:-128]``). The
formulas, the conventions and how they match the challenges' official code are in ``docs/metrics.md``.

Two ways to use them:

- the pure functions (:func:`mrae`, :func:`rmse`, :func:`psnr`, :func:`sam`, :func:`ssim`), the reference
  definitions, on whole arrays;
- :class:`MetricAccumulator`, which takes the cubes in row blocks, top to bottom, and gives all of them at
  the end (:class:`Scores`): a reconstruction can be scored as it streams out of the network, so a large
  cube never exists twice in memory, and never as a whole float64 copy. It gives the same numbers as the
  pure functions (to float64 summation order).

Conventions in one place: MRAE leaves out (and counts) values whose ground truth is exactly 0, where the
official formula divides by zero; SAM leaves out (and counts) pixels where either spectrum is all zeros,
where the angle is undefined; PSNR clips both cubes to [0, data_range] and uses data_range (1.0) as the
peak, as the MST++ toolbox does for NTIRE 2022; SSIM is Wang et al.'s (Gaussian window 11, σ 1.5,
K1 0.01, K2 0.03, data range 1.0), over the positions where the whole window fits in the image.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy.ndimage import correlate1d

__all__ = [
    "NTIRE2022_CROP",
    "SSIM_HALF_WINDOW",
    "MetricAccumulator",
    "Scores",
    "crop_region",
    "mrae",
    "psnr",
    "rmse",
    "sam",
    "score",
    "ssim",
]

NTIRE2022_CROP = 128
"""NTIRE 2022 scores the central ``[128:-128, 128:-128]`` of each 482×512 image (its Conf.py ``CROP``)."""

SSIM_SIGMA = 1.5
SSIM_HALF_WINDOW = 5  # an 11×11 window: Wang et al.'s fspecial('gaussian', 11, 1.5)
SSIM_K1, SSIM_K2 = 0.01, 0.03
BLOCK_ROWS = 64  # rows per block when :func:`score` streams whole arrays through the accumulator


@dataclass(frozen=True)
class Scores:
    """All metrics of one image (after the crop), and what each left out.

    ``values``: numbers compared (H·W·B of the cropped region). ``mrae_excluded``: values with
    ground truth exactly 0, left out of MRAE. ``sam_excluded``: pixels with an all-zero spectrum in
    either cube, left out of SAM. ``ssim`` is ``None`` when it was not asked for.
    """

    mrae: float
    rmse: float
    psnr: float
    sam: float
    ssim: float | None
    values: int
    mrae_excluded: int = 0
    sam_excluded: int = 0

    def as_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


# --- shared pieces ------------------------------------------------------------------------------------


def _check_pair(pred: np.ndarray, gt: np.ndarray) -> None:
    if pred.shape != gt.shape:
        raise ValueError(f"shapes differ: prediction {_shape(pred.shape)}, ground truth {_shape(gt.shape)}")
    if pred.ndim != 3:
        raise ValueError(f"expected H×W×B cubes, got shape {_shape(pred.shape)}")


def _shape(shape: tuple[int, ...]) -> str:
    return "×".join(str(n) for n in shape)


def crop_region(height: int, width: int, crop: int) -> tuple[slice, slice]:
    """The rows and columns kept by ``crop`` (pixels removed from every border); ValueError if none are."""
    if crop < 0:
        raise ValueError(f"crop must be 0 or more, got {crop}")
    if height - 2 * crop < 1 or width - 2 * crop < 1:
        raise ValueError(f"crop {crop} leaves no pixels of a {height}×{width} image")
    return slice(crop, height - crop), slice(crop, width - crop)


def _cropped(pred: np.ndarray, gt: np.ndarray, crop: int) -> tuple[np.ndarray, np.ndarray]:
    """Both cubes, checked and cropped, as float64 (the arithmetic is float64 whatever the inputs)."""
    pred, gt = np.asarray(pred), np.asarray(gt)
    _check_pair(pred, gt)
    rows, cols = crop_region(gt.shape[0], gt.shape[1], crop)
    return pred[rows, cols].astype(np.float64), gt[rows, cols].astype(np.float64)


def _relative_errors(pred: np.ndarray, gt: np.ndarray) -> tuple[float, int, int]:
    """(sum of |pred − gt| / |gt| over gt ≠ 0, how many such values, how many gt == 0 values)."""
    nonzero = gt != 0
    total = float(np.sum(np.abs(pred[nonzero] - gt[nonzero]) / np.abs(gt[nonzero])))
    counted = int(np.count_nonzero(nonzero))
    return total, counted, gt.size - counted


def _psnr_from_mse(mse: float, data_range: float) -> float:
    return math.inf if mse == 0 else 10.0 * math.log10(data_range**2 / mse)


def _angles_deg(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, int]:
    """Per-pixel spectral angles in degrees (pixels with a zero spectrum left out), and how many were.

    Kahan's form ``2·atan2(|u − v|, |u + v|)`` of unit vectors u, v: equal to ``arccos(u·v)`` in exact
    arithmetic, but accurate at small angles, where arccos of a rounded 1 − ε loses half the digits
    (a cube against itself gives exactly 0, not ~1e-6°).
    """
    a = pred.reshape(-1, pred.shape[-1])
    b = gt.reshape(-1, gt.shape[-1])
    norm_a = np.linalg.norm(a, axis=1)
    norm_b = np.linalg.norm(b, axis=1)
    keep = (norm_a != 0) & (norm_b != 0)
    u = a[keep] / norm_a[keep, None]
    v = b[keep] / norm_b[keep, None]
    angles = 2.0 * np.arctan2(np.linalg.norm(u - v, axis=1), np.linalg.norm(u + v, axis=1))
    return np.degrees(angles), int(keep.size - np.count_nonzero(keep))


def _gaussian_window() -> np.ndarray:
    """The normalised 1-D Gaussian (σ 1.5, 11 taps); its outer product is MATLAB's fspecial window."""
    offsets = np.arange(-SSIM_HALF_WINDOW, SSIM_HALF_WINDOW + 1, dtype=np.float64)
    weights = np.exp(-(offsets**2) / (2.0 * SSIM_SIGMA**2))
    return weights / weights.sum()


def _ssim_map(pred: np.ndarray, gt: np.ndarray, data_range: float) -> np.ndarray:
    """Wang et al.'s SSIM at every position of h×w×B float64 blocks where the whole window fits.

    The result is (h − 10)×(w − 10)×B (each band separately). Filtering is separable along rows and
    columns; the border mode never matters because only "valid" positions are kept.
    """
    window = _gaussian_window()
    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2

    def smooth(values: np.ndarray) -> np.ndarray:
        out = correlate1d(correlate1d(values, window, axis=0, mode="nearest"), window, axis=1, mode="nearest")
        h = SSIM_HALF_WINDOW
        return out[h:-h, h:-h]

    mu_x, mu_y = smooth(pred), smooth(gt)
    var_x = smooth(pred * pred) - mu_x * mu_x
    var_y = smooth(gt * gt) - mu_y * mu_y
    cov = smooth(pred * gt) - mu_x * mu_y
    numerator = (2.0 * mu_x * mu_y + c1) * (2.0 * cov + c2)
    denominator = (mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2)
    return numerator / denominator


def _check_ssim_size(height: int, width: int, crop: int) -> None:
    side = 2 * SSIM_HALF_WINDOW + 1
    if height - 2 * crop < side or width - 2 * crop < side:
        raise ValueError(
            f"SSIM needs at least {side}×{side} pixels after the crop; the image is {height}×{width} with crop {crop}"
        )


# --- the reference functions --------------------------------------------------------------------------


def mrae(pred: np.ndarray, gt: np.ndarray, *, crop: int = 0) -> float:
    """Mean relative absolute error, ``mean(|pred − gt| / |gt|)`` over all values with gt ≠ 0.

    NTIRE's computeMRAE divides by gt with no epsilon, so a single gt == 0 makes its score infinite (or
    NaN); here such values are left out (:class:`Scores` counts them). NaN if every gt is 0.
    """
    pred, gt = _cropped(pred, gt, crop)
    total, counted, _ = _relative_errors(pred, gt)
    return total / counted if counted else math.nan


def rmse(pred: np.ndarray, gt: np.ndarray, *, crop: int = 0) -> float:
    """Root mean squared error over all values, unclipped (as NTIRE's and MST++'s code)."""
    pred, gt = _cropped(pred, gt, crop)
    return float(np.sqrt(np.mean((pred - gt) ** 2)))


def psnr(pred: np.ndarray, gt: np.ndarray, *, crop: int = 0, data_range: float = 1.0, clip: bool = True) -> float:
    """Peak signal-to-noise ratio in dB, ``10·log10(data_range² / MSE)``, the MSE over all values.

    ``clip`` (default) first clips both cubes to [0, data_range], as MST++'s Loss_PSNR clamps to [0, 1]
    (so the peak is the data range, 1.0 for NTIRE cubes). +inf when the cubes are equal.
    """
    pred, gt = _cropped(pred, gt, crop)
    if clip:
        pred, gt = np.clip(pred, 0.0, data_range), np.clip(gt, 0.0, data_range)
    return _psnr_from_mse(float(np.mean((pred - gt) ** 2)), data_range)


def sam(pred: np.ndarray, gt: np.ndarray, *, crop: int = 0) -> float:
    """Mean spectral angle between the two cubes' pixel spectra, in degrees.

    A pixel whose spectrum is all zeros (in either cube) has no direction and is left out (counted in
    :class:`Scores`). Independent of each pixel's brightness: ``sam(k·pred, gt) == sam(pred, gt)``.
    NaN if every pixel is left out.
    """
    pred, gt = _cropped(pred, gt, crop)
    angles, _ = _angles_deg(pred, gt)
    return float(np.mean(angles)) if angles.size else math.nan


def ssim(pred: np.ndarray, gt: np.ndarray, *, crop: int = 0, data_range: float = 1.0) -> float:
    """Structural similarity (Wang et al. 2004), per band, averaged over bands and positions.

    Gaussian window 11×11, σ 1.5; C1 = (0.01·L)², C2 = (0.03·L)², L = ``data_range``; no
    sample-covariance correction; the mean over positions where the whole window lies inside the
    (cropped) image. Every band has the same number of positions, so this is also the mean of the
    per-band SSIMs. Needs at least 11×11 pixels after the crop.
    """
    pred, gt = np.asarray(pred), np.asarray(gt)
    _check_pair(pred, gt)
    _check_ssim_size(gt.shape[0], gt.shape[1], crop)
    pred, gt = _cropped(pred, gt, crop)
    return float(np.mean(_ssim_map(pred, gt, data_range)))


def score(
    pred: np.ndarray, gt: np.ndarray, *, crop: int = 0, data_range: float = 1.0, with_ssim: bool = True
) -> Scores:
    """Every metric of one image at once, through :class:`MetricAccumulator` in blocks of rows."""
    pred, gt = np.asarray(pred), np.asarray(gt)
    _check_pair(pred, gt)
    accumulator = MetricAccumulator(*gt.shape, crop=crop, data_range=data_range, with_ssim=with_ssim)
    for y0 in range(0, gt.shape[0], BLOCK_ROWS):
        accumulator.update(pred[y0 : y0 + BLOCK_ROWS], gt[y0 : y0 + BLOCK_ROWS])
    return accumulator.result()


# --- streaming ----------------------------------------------------------------------------------------


class MetricAccumulator:
    """All metrics of one H×W×B image from row blocks given top to bottom: ``update(pred_rows, gt_rows)``.

    Sums (in float64) are kept for the pointwise metrics; SSIM keeps the last 10 rows of the cropped
    region (its window's halo) and scores each window position exactly once, when its 11 rows have all
    arrived. Memory: one block plus 10 rows, whatever the image height.
    """

    def __init__(
        self,
        height: int,
        width: int,
        bands: int,
        *,
        crop: int = 0,
        data_range: float = 1.0,
        clip_psnr: bool = True,
        with_ssim: bool = True,
    ) -> None:
        self.shape = (int(height), int(width), int(bands))
        self.rows, self.cols = crop_region(self.shape[0], self.shape[1], crop)
        if with_ssim:
            _check_ssim_size(self.shape[0], self.shape[1], crop)
        self.crop, self.data_range, self.clip_psnr, self.with_ssim = crop, data_range, clip_psnr, with_ssim
        self._next_row = 0
        self._relative = 0.0
        self._relative_count = 0
        self._zero_gt = 0
        self._squared = 0.0
        self._squared_clipped = 0.0
        self._values = 0
        self._angles = 0.0
        self._angle_count = 0
        self._zero_norm = 0
        self._ssim_sum = 0.0
        self._ssim_count = 0
        self._halo: tuple[np.ndarray, np.ndarray] | None = None

    def update(self, pred_rows: np.ndarray, gt_rows: np.ndarray) -> None:
        """Add the next rows (h×W×B each) of both cubes; rows must come in order, each exactly once."""
        pred_rows, gt_rows = np.asarray(pred_rows), np.asarray(gt_rows)
        _check_pair(pred_rows, gt_rows)
        if pred_rows.shape[1:] != self.shape[1:]:
            raise ValueError(f"rows of shape {_shape(pred_rows.shape)} do not fit a {_shape(self.shape)} cube")
        y0, y1 = self._next_row, self._next_row + pred_rows.shape[0]
        if y1 > self.shape[0]:
            raise ValueError(f"rows {y0}..{y1 - 1} run past the image's {self.shape[0]} rows")
        self._next_row = y1
        first, last = max(y0, self.rows.start), min(y1, self.rows.stop)
        if first >= last:
            return
        pred = pred_rows[first - y0 : last - y0, self.cols].astype(np.float64)
        gt = gt_rows[first - y0 : last - y0, self.cols].astype(np.float64)
        self._add_pointwise(pred, gt)
        if self.with_ssim:
            self._add_ssim(pred, gt)

    def _add_pointwise(self, pred: np.ndarray, gt: np.ndarray) -> None:
        total, counted, zeros = _relative_errors(pred, gt)
        self._relative += total
        self._relative_count += counted
        self._zero_gt += zeros
        self._squared += float(np.sum((pred - gt) ** 2))
        if self.clip_psnr:
            diff = np.clip(pred, 0.0, self.data_range) - np.clip(gt, 0.0, self.data_range)
            self._squared_clipped += float(np.sum(diff**2))
        self._values += gt.size
        angles, excluded = _angles_deg(pred, gt)
        self._angles += float(np.sum(angles))
        self._angle_count += angles.size
        self._zero_norm += excluded

    def _add_ssim(self, pred: np.ndarray, gt: np.ndarray) -> None:
        """Score the window positions whose rows are now complete; keep the last 10 rows for the next."""
        if self._halo is not None:
            pred = np.concatenate([self._halo[0], pred])
            gt = np.concatenate([self._halo[1], gt])
        halo = 2 * SSIM_HALF_WINDOW
        if pred.shape[0] > halo:
            values = _ssim_map(pred, gt, self.data_range)
            self._ssim_sum += float(np.sum(values))
            self._ssim_count += values.size
            pred, gt = pred[-halo:], gt[-halo:]
        self._halo = (pred, gt)

    def result(self) -> Scores:
        """The scores, once every row has been given (ValueError otherwise)."""
        if self._next_row != self.shape[0]:
            raise ValueError(f"only {self._next_row} of {self.shape[0]} rows were given")
        mse = self._squared / self._values
        mse_clipped = self._squared_clipped / self._values if self.clip_psnr else mse
        return Scores(
            mrae=self._relative / self._relative_count if self._relative_count else math.nan,
            rmse=math.sqrt(mse),
            psnr=_psnr_from_mse(mse_clipped, self.data_range),
            sam=self._angles / self._angle_count if self._angle_count else math.nan,
            ssim=self._ssim_sum / self._ssim_count if self.with_ssim else None,
            values=self._values,
            mrae_excluded=self._zero_gt,
            sam_excluded=self._zero_norm,
        )
