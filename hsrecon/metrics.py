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

Scale-free scores, for reconstructions whose absolute scale means nothing (a photo records no absolute
radiance): MRAE and RMSE after one best non-negative gain per image, for two gains, the least-squares one
(:func:`ls_gain`, RMSE-optimal) and the MRAE-optimal one (:func:`mrae_gain`, a weighted median of the
ratios gt/pred). :func:`gain_scores` computes them exactly on whole arrays; the accumulator computes the
least-squares ones exactly from three sums, and the MRAE ones from a fixed-size histogram of the ratios
that gives the exact MRAE at a gain within a bin's width of the optimum, plus a certified bound on the
distance to the exact optimum (:class:`GainScores`, ``docs/metrics.md``). SAM needs no gain: it is
independent of each pixel's brightness.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy.ndimage import correlate1d

__all__ = [
    "NTIRE2022_CROP",
    "SSIM_HALF_WINDOW",
    "GainAccumulator",
    "GainScores",
    "MetricAccumulator",
    "PointwiseSums",
    "Scores",
    "band_relative_errors",
    "crop_region",
    "gain_scores",
    "ls_gain",
    "mrae",
    "mrae_gain",
    "pixel_mrae",
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
    either cube, left out of SAM. ``ssim`` is ``None`` when it was not asked for. The ``gain_*``,
    ``*_gain_ls`` and ``*_gain_mrae`` fields are the scale-free scores (:class:`GainScores`), ``None``
    when they were not asked for.
    """

    mrae: float
    rmse: float
    psnr: float
    sam: float
    ssim: float | None
    values: int
    mrae_excluded: int = 0
    sam_excluded: int = 0
    gain_ls: float | None = None
    mrae_gain_ls: float | None = None
    rmse_gain_ls: float | None = None
    gain_mrae: float | None = None
    mrae_gain_mrae: float | None = None
    rmse_gain_mrae: float | None = None
    gain_bound: float | None = None

    def as_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


@dataclass(frozen=True)
class GainScores:
    """MRAE and RMSE of ``gain · pred`` against ``gt`` for the two best non-negative gains of one image.

    ``gain_ls`` minimises the squared error (Σ pred·gt / Σ pred², or 0 when that is negative or pred is
    all zeros); ``gain_mrae`` minimises MRAE (the weighted median of gt/pred, weights |pred/gt|).
    ``mrae_gain_mrae`` is the headline "MRAE after gain", ``rmse_gain_ls`` the "RMSE after gain".

    ``bound``: 0 for the exact computation (:func:`gain_scores`). From the streaming
    :class:`GainAccumulator`, the largest possible difference between each reported MRAE and the exact
    one: ``mrae_gain_mrae`` is the exact MRAE at the reported ``gain_mrae`` (which lies within one
    histogram bin, a factor 2^(1/1024), of the optimum) and exceeds the optimal MRAE by at most
    ``bound``; ``mrae_gain_ls`` is within ``bound`` of the exact MRAE at ``gain_ls``. The RMSEs are
    exact for the gains reported.
    """

    gain_ls: float
    mrae_gain_ls: float
    rmse_gain_ls: float
    gain_mrae: float
    mrae_gain_mrae: float
    rmse_gain_mrae: float
    bound: float = 0.0

    def fields(self) -> dict[str, float]:
        """The :class:`Scores` fields these fill."""
        values = asdict(self)
        values["gain_bound"] = values.pop("bound")
        return values


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


@dataclass
class PointwiseSums:
    """Running sums of the pointwise metrics (MRAE, RMSE, SAM) over any set of pixels, in any order: what
    scores pooled over a group of pixels across images (:mod:`hsrecon.groups`) add up. The same definitions
    as :class:`MetricAccumulator` (MRAE over truth ≠ 0, SAM over non-zero spectra, Kahan's angle)."""

    relative: float = 0.0
    relative_count: int = 0
    squared: float = 0.0
    values: int = 0
    angles: float = 0.0
    angle_count: int = 0

    def add(self, pred: np.ndarray, gt: np.ndarray) -> None:
        """Add n×B spectra of both (float64 preferred)."""
        pred, gt = np.asarray(pred, dtype=np.float64), np.asarray(gt, dtype=np.float64)
        total, counted, _ = _relative_errors(pred, gt)
        self.relative += total
        self.relative_count += counted
        self.squared += float(np.sum((pred - gt) ** 2))
        self.values += gt.size
        angles, _ = _angles_deg(pred, gt)
        self.angles += float(np.sum(angles))
        self.angle_count += angles.size

    def result(self) -> dict[str, float | int | None]:
        def ratio(total: float, count: int) -> float | None:
            return total / count if count else None

        rmse = ratio(self.squared, self.values)
        return {
            "mrae": ratio(self.relative, self.relative_count),
            "rmse": None if rmse is None else math.sqrt(rmse),
            "sam": ratio(self.angles, self.angle_count),
            "pixels": self.angle_count,
        }


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


def _best_nonnegative_ls_gain(pred_gt: float, pred_sq: float) -> float:
    """argmin over g ≥ 0 of Σ (g·pred − gt)²: Σ pred·gt / Σ pred², 0 when negative or pred is all zeros."""
    return max(pred_gt / pred_sq, 0.0) if pred_sq > 0 else 0.0


def ls_gain(pred: np.ndarray, gt: np.ndarray, *, crop: int = 0) -> float:
    """The non-negative gain g minimising the squared error of ``g · pred`` (so the RMSE), exactly."""
    pred, gt = _cropped(pred, gt, crop)
    return _best_nonnegative_ls_gain(float(np.sum(pred * gt)), float(np.sum(pred * pred)))


def mrae_gain(pred: np.ndarray, gt: np.ndarray, *, crop: int = 0) -> float:
    """The non-negative gain g minimising MRAE of ``g · pred``, exactly (a sort of all the values).

    MRAE(g) = mean over gt ≠ 0 of |pred/gt| · |g − gt/pred| (+1 where pred = 0): a weighted median of the
    ratios gt/pred with weights |pred/gt|. Where it is negative (pred and gt mostly of opposite signs)
    the best non-negative gain is 0. NaN when every gt is 0.
    """
    pred, gt = _cropped(pred, gt, crop)
    nonzero = gt != 0
    if not nonzero.any():
        return math.nan
    return _weighted_median_gain(pred[nonzero], gt[nonzero])


def _weighted_median_gain(pred: np.ndarray, gt: np.ndarray) -> float:
    """The smallest ratio t = gt/pred at which the cumulative weight |pred/gt| reaches half the total.

    There MRAE's slope, Σ_{t_i ≤ t} w_i − Σ_{t_i > t} w_i, turns non-negative, so it is a minimiser.
    """
    both = pred != 0
    if not both.any():
        return 0.0
    ratios = gt[both] / pred[both]
    order = np.argsort(ratios, kind="stable")
    ratios = ratios[order]
    cumulative = np.cumsum(np.abs(pred[both] / gt[both])[order])
    index = int(np.searchsorted(cumulative, cumulative[-1] / 2.0))
    return max(float(ratios[min(index, ratios.size - 1)]), 0.0)


def gain_scores(pred: np.ndarray, gt: np.ndarray, *, crop: int = 0) -> GainScores:
    """MRAE and RMSE after the least-squares and after the MRAE-optimal non-negative gain, exactly.

    Whole arrays in memory (the reference); :class:`GainAccumulator` gives the same from row blocks.
    """
    pred, gt = _cropped(pred, gt, crop)
    by_ls = _best_nonnegative_ls_gain(float(np.sum(pred * gt)), float(np.sum(pred * pred)))
    nonzero = gt != 0
    by_mrae = _weighted_median_gain(pred[nonzero], gt[nonzero]) if nonzero.any() else math.nan

    def relative_error(gain: float) -> float:
        if not nonzero.any():
            return math.nan
        return float(np.mean(np.abs(gain * pred[nonzero] - gt[nonzero]) / np.abs(gt[nonzero])))

    def squared_error(gain: float) -> float:
        return float(np.sqrt(np.mean((gain * pred - gt) ** 2))) if math.isfinite(gain) else math.nan

    return GainScores(
        gain_ls=by_ls,
        mrae_gain_ls=relative_error(by_ls),
        rmse_gain_ls=squared_error(by_ls),
        gain_mrae=by_mrae,
        mrae_gain_mrae=relative_error(by_mrae),
        rmse_gain_mrae=squared_error(by_mrae),
    )


def score(
    pred: np.ndarray,
    gt: np.ndarray,
    *,
    crop: int = 0,
    data_range: float = 1.0,
    with_ssim: bool = True,
    with_gain: bool = True,
) -> Scores:
    """Every metric of one image at once, through :class:`MetricAccumulator` in blocks of rows."""
    pred, gt = np.asarray(pred), np.asarray(gt)
    _check_pair(pred, gt)
    accumulator = MetricAccumulator(
        *gt.shape, crop=crop, data_range=data_range, with_ssim=with_ssim, with_gain=with_gain
    )
    for y0 in range(0, gt.shape[0], BLOCK_ROWS):
        accumulator.update(pred[y0 : y0 + BLOCK_ROWS], gt[y0 : y0 + BLOCK_ROWS])
    return accumulator.result()


# --- streaming ----------------------------------------------------------------------------------------


GAIN_BINS_PER_OCTAVE = 1024
GAIN_OCTAVES = (-32, 32)  # ratios gt/pred outside 2^-32 … 2^32 share the end bins (still exact, wider)


class GainAccumulator:
    """The scale-free scores (:class:`GainScores`) of one image from blocks of values in any order.

    Least squares: three sums give the gain and the RMSE at any gain exactly. They are taken around the
    first block's own least-squares gain g₀ (Σ (g₀·pred − gt)², Σ pred·(g₀·pred − gt), Σ pred²), not as
    Σ gt² − 2g·Σ pred·gt + g²·Σ pred², whose cancellation loses half the digits of a small RMSE.

    MRAE: with t = gt/pred and w = |pred/gt|, ``N · MRAE(g) = Σ w·|g − t|`` (+1 per value with pred = 0),
    a convex piecewise-linear function of g. The ratios go into a fixed histogram, 1024 bins per octave
    (ratios ≤ 0 in one more bin below them), which keeps per bin the sum of w, the count, and the smallest
    and largest ratio. Since ``w·t = ±1``, ``Σ w·|g − t| = g·(W_below − W_above) − (S_below − S_above)``
    with W the weights and S the signed counts on either side of g: exact wherever no ratio lies on both
    sides, i.e. at every bin's smallest and largest ratio and anywhere between bins. The reported
    ``gain_mrae`` is the best of those points: its MRAE is exact. Inside the one bin where the slope
    changes sign, the two tangents bound the true minimum from below; the difference is ``bound``
    (at most that bin's weight times its ratio range over N; 0 when its ratios are all equal).
    ``mrae_gain_ls`` is exact unless ``gain_ls`` falls inside a bin's ratio range, where it is the
    middle of the chord (above) and the tangents (below), within ``bound``. Memory: 2 MB, whatever
    the image size.
    """

    def __init__(self) -> None:
        low, high = GAIN_OCTAVES
        slots = 1 + (high - low) * GAIN_BINS_PER_OCTAVE  # slot 0 holds ratios ≤ 0
        self._weight = np.zeros(slots)
        self._count = np.zeros(slots)
        self._smallest = np.full(slots, np.inf)
        self._largest = np.full(slots, -np.inf)
        self._anchor: float | None = None  # g₀: the first block's least-squares gain
        self._residual_sq = self._residual_cross = self._pred_sq = 0.0
        self._values = self._counted = self._zero_pred = 0
        # set by result(): totals and cumulative sums over the slots, in order of the ratios
        self._totals = (0.0, 0.0)
        self._cum_weight = self._cum_signed = np.zeros(slots + 1)

    @staticmethod
    def _slots(ratios: np.ndarray) -> np.ndarray:
        """Histogram slot of each ratio: 0 for ratios ≤ 0, else 1 + its log₂ bin (clipped to the ends)."""
        low, high = GAIN_OCTAVES
        last = (high - low) * GAIN_BINS_PER_OCTAVE - 1
        positive = ratios > 0
        everywhere = bool(positive.all())
        with np.errstate(divide="ignore", invalid="ignore"):
            bins = np.log2(ratios if everywhere else np.where(positive, ratios, 1.0))
        bins -= low
        bins *= GAIN_BINS_PER_OCTAVE
        np.clip(bins, 0, last, out=bins)
        slots = bins.astype(np.int64) + 1  # truncation is the floor: the values are ≥ 0
        if not everywhere:
            slots[~positive] = 0
        return slots

    def update(self, pred: np.ndarray, gt: np.ndarray) -> None:
        """Add values of both cubes (same shape, float64 preferred); each value exactly once."""
        pred, gt = np.asarray(pred, dtype=np.float64).ravel(), np.asarray(gt, dtype=np.float64).ravel()
        pred_sq = float(pred @ pred)
        if self._anchor is None and pred_sq > 0:
            self._anchor = _best_nonnegative_ls_gain(float(pred @ gt), pred_sq)
        residual = (self._anchor or 0.0) * pred - gt
        self._residual_sq += float(residual @ residual)
        self._residual_cross += float(pred @ residual)
        self._pred_sq += pred_sq
        self._values += gt.size
        if not gt.all():  # the common case, no zeros, skips the copies
            pred, gt = pred[gt != 0], gt[gt != 0]
        self._counted += gt.size
        if not pred.all():
            both = pred != 0
            self._zero_pred += gt.size - int(np.count_nonzero(both))
            pred, gt = pred[both], gt[both]
        ratios = gt / pred
        slots = self._slots(ratios)
        self._weight += np.bincount(slots, weights=np.abs(pred / gt), minlength=self._weight.size)
        self._count += np.bincount(slots, minlength=self._count.size)
        np.minimum.at(self._smallest, slots, ratios)
        np.maximum.at(self._largest, slots, ratios)

    def _relative_sum(self, gain: np.ndarray | float, weight_below, signed_below) -> np.ndarray | float:
        """Σ w·|g − t| given the weight and signed count of the ratios below g (none straddling it)."""
        total_weight, total_signed = self._totals
        return gain * (2.0 * weight_below - total_weight) - (2.0 * signed_below - total_signed)

    def _ls_gain(self) -> float:
        """argmin over g ≥ 0 of Σ (g·pred − gt)² = R + 2(g − g₀)·C + (g − g₀)²·P."""
        if self._pred_sq <= 0:
            return 0.0
        return max((self._anchor or 0.0) - self._residual_cross / self._pred_sq, 0.0)

    def _rmse_at(self, gain: float) -> float:
        if not self._values:
            return math.nan
        step = gain - (self._anchor or 0.0)
        total = self._residual_sq + 2.0 * step * self._residual_cross + step * step * self._pred_sq
        return math.sqrt(max(total, 0.0) / self._values)

    def result(self) -> GainScores:
        by_ls = self._ls_gain()
        if self._counted == 0:
            nan = math.nan
            return GainScores(by_ls, nan, self._rmse_at(by_ls), nan, nan, nan)
        signed = self._count.copy()
        signed[0] = -signed[0]  # ratios ≤ 0 are pred and gt of opposite signs: w·t = −1
        self._totals = float(self._weight.sum()), float(signed.sum())
        self._cum_weight = np.concatenate([[0.0], np.cumsum(self._weight)])
        self._cum_signed = np.concatenate([[0.0], np.cumsum(signed)])
        by_mrae, best, lower = self._mrae_optimum()
        at_ls, half_width = self._relative_sum_at(by_ls)
        extra, counted = self._zero_pred, self._counted
        return GainScores(
            gain_ls=by_ls,
            mrae_gain_ls=float(at_ls + extra) / counted,
            rmse_gain_ls=self._rmse_at(by_ls),
            gain_mrae=by_mrae,
            mrae_gain_mrae=(best + extra) / counted,
            rmse_gain_mrae=self._rmse_at(by_mrae),
            bound=max(best - lower, half_width, 0.0) / counted,
        )

    def _mrae_optimum(self) -> tuple[float, float, float]:
        """(best gain found, its exact Σ w·|g − t|, a lower bound on the minimum over g ≥ 0)."""
        occupied = np.flatnonzero(self._count[1:] > 0) + 1
        smallest, largest = self._smallest[occupied], self._largest[occupied]
        below, through = occupied, occupied + 1  # cumulative indices: slots < k, slots ≤ k
        at_smallest = self._relative_sum(smallest, self._cum_weight[below], self._cum_signed[below])
        at_largest = self._relative_sum(largest, self._cum_weight[through], self._cum_signed[through])
        at_zero = float(self._relative_sum(0.0, self._cum_weight[1], self._cum_signed[1]))
        gains = np.concatenate([[0.0], smallest, largest])
        values = np.concatenate([[at_zero], at_smallest, at_largest])
        pick = int(np.argmin(values))
        best = float(values[pick])
        # Inside a bin whose slope turns from negative to positive, bound the minimum by the tangents.
        total_weight = self._totals[0]
        slope_in = 2.0 * self._cum_weight[below] - total_weight  # just left of the bin's smallest ratio
        slope_out = 2.0 * self._cum_weight[through] - total_weight  # just right of its largest
        turning = (slope_in < 0) & (slope_out > 0) & (largest > smallest)
        lower = best
        for i in np.flatnonzero(turning):
            crossing = (at_largest[i] - at_smallest[i] + slope_in[i] * smallest[i] - slope_out[i] * largest[i]) / (
                slope_in[i] - slope_out[i]
            )
            crossing = min(max(crossing, smallest[i]), largest[i])
            lower = min(lower, float(at_smallest[i] + slope_in[i] * (crossing - smallest[i])))
        return float(gains[pick]), best, lower

    def _relative_sum_at(self, gain: float) -> tuple[float, float]:
        """Σ w·|g − t| at one gain: (value, half-width of its bracket; 0 where exact)."""
        if gain <= 0:
            return float(self._relative_sum(0.0, self._cum_weight[1], self._cum_signed[1])), 0.0
        k = int(self._slots(np.array([gain]))[0])
        smallest, largest = self._smallest[k], self._largest[k]
        if self._count[k] == 0 or gain <= smallest:
            return float(self._relative_sum(gain, self._cum_weight[k], self._cum_signed[k])), 0.0
        if gain >= largest:
            return float(self._relative_sum(gain, self._cum_weight[k + 1], self._cum_signed[k + 1])), 0.0
        at_smallest = float(self._relative_sum(smallest, self._cum_weight[k], self._cum_signed[k]))
        at_largest = float(self._relative_sum(largest, self._cum_weight[k + 1], self._cum_signed[k + 1]))
        chord = at_smallest + (at_largest - at_smallest) * (gain - smallest) / (largest - smallest)
        slope_in = 2.0 * self._cum_weight[k] - self._totals[0]
        slope_out = 2.0 * self._cum_weight[k + 1] - self._totals[0]
        tangent = max(at_smallest + slope_in * (gain - smallest), at_largest + slope_out * (gain - largest))
        return (chord + tangent) / 2.0, (chord - tangent) / 2.0


class MetricAccumulator:
    """All metrics of one H×W×B image from row blocks given top to bottom: ``update(pred_rows, gt_rows)``.

    Sums (in float64) are kept for the pointwise metrics; SSIM keeps the last 10 rows of the cropped
    region (its window's halo) and scores each window position exactly once, when its 11 rows have all
    arrived; the scale-free scores (``with_gain``) keep a :class:`GainAccumulator` (2 MB). Memory: one
    block plus 10 rows plus that, whatever the image height.
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
        with_gain: bool = True,
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
        self._gain = GainAccumulator() if with_gain else None

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
        if self._gain is not None:
            self._gain.update(pred, gt)

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
            **(self._gain.result().fields() if self._gain is not None else {}),
        )


# --- where the error is: per pixel and per band -------------------------------------------------------


def pixel_mrae(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Each pixel's MRAE (h×w float64): the mean of |pred − gt| / |gt| over its bands with gt ≠ 0.

    The image's MRAE convention per pixel (gt == 0 values left out); NaN where every band's truth is 0.
    The image's MRAE is the mean over all values, not the mean of this map (pixels with excluded values
    weigh less there).
    """
    pred, gt = np.asarray(pred, dtype=np.float64), np.asarray(gt, dtype=np.float64)
    _check_pair(pred, gt)
    nonzero = gt != 0
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = np.where(nonzero, np.abs(pred - gt) / np.abs(np.where(nonzero, gt, 1.0)), 0.0)
        return relative.sum(axis=-1) / nonzero.sum(axis=-1)


def band_relative_errors(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per band: the sum of |pred − gt| / |gt| over values with gt ≠ 0, and how many there were (float64,
    int64); sums over row blocks divided at the end give each band's MRAE, the image's convention per band."""
    pred, gt = np.asarray(pred, dtype=np.float64), np.asarray(gt, dtype=np.float64)
    _check_pair(pred, gt)
    nonzero = gt != 0
    relative = np.where(nonzero, np.abs(pred - gt) / np.abs(np.where(nonzero, gt, 1.0)), 0.0)
    bands = gt.shape[-1]
    return relative.reshape(-1, bands).sum(axis=0), nonzero.reshape(-1, bands).sum(axis=0).astype(np.int64)
