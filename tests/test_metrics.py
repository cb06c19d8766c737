"""The metrics on cubes worked out by hand, against independent float64 numpy, and streamed vs whole."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hsrecon import metrics
from hsrecon.inference import TorchPredictor
from hsrecon.metrics import MetricAccumulator, mrae, psnr, rmse, sam, score, ssim

# A 1×2 image with 2 bands, small enough to score on paper.
#   pixel 1: gt (0.50, 0.25), pred (0.55, 0.20)    pixel 2: gt (1.00, 0.50), pred (1.00, 0.75)
HAND_GT = np.array([[[0.50, 0.25], [1.00, 0.50]]])
HAND_PRED = np.array([[[0.55, 0.20], [1.00, 0.75]]])


def test_mrae_by_hand():
    # |pred − gt| / gt = 0.05/0.50, 0.05/0.25, 0/1.00, 0.25/0.50 = 0.1, 0.2, 0.0, 0.5 → mean 0.8 / 4 = 0.2
    assert mrae(HAND_PRED, HAND_GT) == pytest.approx(0.2, abs=1e-15)


def test_rmse_and_psnr_by_hand():
    # squared errors 0.0025, 0.0025, 0, 0.0625 → MSE 0.0675 / 4 = 0.016875 → RMSE 0.1299038…
    assert rmse(HAND_PRED, HAND_GT) == pytest.approx(0.12990381056766578, abs=1e-15)
    # all values lie in [0, 1], so clipping changes nothing: PSNR = 10·log10(1 / 0.016875) = 17.72756 dB
    assert psnr(HAND_PRED, HAND_GT) == pytest.approx(17.72756, abs=1e-5)


def test_sam_by_hand():
    # In 2 bands a spectrum's direction is atan(b2 / b1):
    #   pixel 1: atan(0.20/0.55) = 19.9831°, atan(0.25/0.50) = 26.5651° → 6.5820°
    #   pixel 2: atan(0.75/1.00) = 36.8699°, atan(0.50/1.00) = 26.5651° → 10.3048°     mean 8.4434°
    assert sam(HAND_PRED, HAND_GT) == pytest.approx(8.4434, abs=1e-4)


def test_sam_right_angles_and_zero_spectra():
    # gt (1, 1) vs pred (2, 2): 0°;  (1, 0) vs (1, 1): 45°;  (0, 1) vs (1, 0): 90°;  (1, √3) vs (1, 0): 60°
    # a fifth pixel with an all-zero ground truth has no direction: left out and counted → (0+45+90+60)/4
    gt = np.array([[[1, 1], [1, 0], [0, 1], [1, math.sqrt(3)], [0, 0]]], dtype=float)
    pred = np.array([[[2, 2], [1, 1], [1, 0], [1, 0], [0.3, 0.1]]], dtype=float)
    assert sam(pred, gt) == pytest.approx(48.75, abs=1e-12)
    assert score(pred, gt, with_ssim=False).sam_excluded == 1


def test_mrae_leaves_out_zero_ground_truth_and_counts_it():
    # gt 0 would make NTIRE's formula infinite; the other three values give 0.1, 0.2, 0.5 → 0.8 / 3
    gt = np.array([[[0.50, 0.25], [0.0, 0.50]]])
    pred = np.array([[[0.55, 0.20], [0.3, 0.75]]])
    assert mrae(pred, gt) == pytest.approx(0.8 / 3, abs=1e-15)
    scores = score(pred, gt, with_ssim=False)
    assert scores.mrae == pytest.approx(0.8 / 3, abs=1e-15)
    assert (scores.mrae_excluded, scores.values) == (1, 4)
    assert math.isnan(mrae(pred, np.zeros_like(gt)))


def test_psnr_clips_to_the_data_range_and_is_infinite_when_equal():
    gt = np.full((1, 2, 2), 0.5)
    pred = gt.copy()
    pred[0, 0, 0] = 1.7  # clipped to 1.0: error 0.5, MSE 0.25 / 4 → 10·log10(16) = 12.0412 dB
    assert psnr(pred, gt) == pytest.approx(10 * math.log10(16), abs=1e-12)
    assert psnr(pred, gt, clip=False) == pytest.approx(10 * math.log10(4 / 1.44), abs=1e-12)
    assert psnr(gt, gt) == math.inf


def test_metrics_against_independent_numpy(rng):
    gt = rng.uniform(0.05, 1.0, (23, 17, 31))
    pred = np.clip(gt + rng.normal(0, 0.05, gt.shape), 0.001, None).astype(np.float32)
    p64 = pred.astype(np.float64)
    assert mrae(pred, gt) == pytest.approx(np.mean(np.abs(p64 - gt) / gt), rel=1e-12)
    assert rmse(pred, gt) == pytest.approx(np.sqrt(np.mean((p64 - gt) ** 2)), rel=1e-12)
    mse = np.mean((np.clip(p64, 0, 1) - np.clip(gt, 0, 1)) ** 2)
    assert psnr(pred, gt) == pytest.approx(10 * np.log10(1 / mse), rel=1e-12)
    cosine = np.sum(p64 * gt, axis=2) / (np.linalg.norm(p64, axis=2) * np.linalg.norm(gt, axis=2))
    assert sam(pred, gt) == pytest.approx(np.degrees(np.arccos(np.clip(cosine, -1, 1))).mean(), abs=1e-6)


def test_sam_of_a_cube_with_itself_is_zero_and_scale_free(rng):
    cube = rng.uniform(0, 1, (9, 11, 31))
    assert sam(cube, cube) == 0.0
    other = rng.uniform(0, 1, cube.shape)
    brightness = rng.uniform(0.1, 10, (9, 11, 1))  # every pixel scaled by its own factor
    assert sam(cube * 3.7, other) == pytest.approx(sam(cube, other), rel=1e-12)
    assert sam(cube * brightness, other * 0.25) == pytest.approx(sam(cube, other), rel=1e-12)


def test_crop_leaves_out_the_border(rng):
    gt = rng.uniform(0.1, 1, (20, 24, 4))
    pred = gt.copy()
    pred[:3] += 0.3
    pred[:, -3:] *= 2.0  # only the 3-pixel border differs
    assert mrae(pred, gt) > 0.05
    for function in (mrae, rmse, sam):
        assert function(pred, gt, crop=3) == 0.0
    assert psnr(pred, gt, crop=3) == math.inf
    assert ssim(pred, gt, crop=3) == pytest.approx(1.0, abs=1e-12)
    assert mrae(pred, gt, crop=2) > 0  # the crop is exactly N pixels
    scores = score(pred, gt, crop=3)
    assert (scores.mrae, scores.values) == (0.0, 14 * 18 * 4)
    with pytest.raises(ValueError, match="leaves no pixels"):
        mrae(pred, gt, crop=10)


def test_ntire2022_crop_is_the_official_central_region():
    # NTIRE 2022's Conf.py: CROP = [128:-128, 128:-128] of the 482×512 images → 226×256 pixels
    rows, cols = metrics.crop_region(482, 512, metrics.NTIRE2022_CROP)
    assert (rows.stop - rows.start, cols.stop - cols.start) == (226, 256)
    assert (rows.start, cols.start) == (128, 128)


# --- SSIM -----------------------------------------------------------------------------------------------


def _ssim_reference(x: np.ndarray, y: np.ndarray) -> float:
    """Wang et al.'s SSIM written out window by window (no filtering library), float64, one band."""
    g = np.exp(-(np.arange(-5, 6) ** 2) / (2 * 1.5**2))
    w = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = 0.01**2, 0.03**2
    values = []
    for i in range(x.shape[0] - 10):
        for j in range(x.shape[1] - 10):
            a, b = x[i : i + 11, j : j + 11], y[i : i + 11, j : j + 11]
            mu_a, mu_b = np.sum(w * a), np.sum(w * b)
            var_a, var_b = np.sum(w * (a - mu_a) ** 2), np.sum(w * (b - mu_b) ** 2)
            cov = np.sum(w * (a - mu_a) * (b - mu_b))
            values.append((2 * mu_a * mu_b + c1) * (2 * cov + c2) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)))
    return float(np.mean(values))


def test_ssim_of_identical_cubes_is_one(rng):
    cube = rng.uniform(0, 1, (16, 20, 3))
    assert ssim(cube, cube) == pytest.approx(1.0, abs=1e-12)


def test_ssim_of_constant_images():
    # No variance: SSIM = (2ab + C1) / (a² + b² + C1) with C1 = 0.01² → (0.25 + 1e-4) / (0.3125 + 1e-4)
    a, b = np.full((12, 12, 2), 0.5), np.full((12, 12, 2), 0.25)
    assert ssim(a, b) == pytest.approx(0.2501 / 0.3126, abs=1e-12)


def test_ssim_against_a_window_by_window_reference(rng):
    gt = rng.uniform(0, 1, (17, 15, 3))
    pred = np.clip(gt + rng.normal(0, 0.1, gt.shape), 0, 1)
    expected = np.mean([_ssim_reference(pred[:, :, b], gt[:, :, b]) for b in range(3)])
    assert ssim(pred, gt) == pytest.approx(expected, abs=1e-12)
    # a constant shift leaves only the luminance term: (2μx(μx + c) + C1) / (μx² + (μx + c)² + C1)
    shifted = gt + 0.2
    assert ssim(shifted, gt) == pytest.approx(
        np.mean([_ssim_reference(shifted[:, :, b], gt[:, :, b]) for b in range(3)]), abs=1e-12
    )
    assert ssim(shifted, gt) < 1.0


def test_ssim_needs_a_whole_window():
    with pytest.raises(ValueError, match="11×11"):
        ssim(np.ones((10, 30, 2)), np.ones((10, 30, 2)))


# --- streaming ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("block", [1, 4, 11, 29])
@pytest.mark.parametrize("crop", [0, 3])
def test_accumulator_equals_the_reference_functions(rng, block, crop):
    gt = rng.uniform(0.02, 1, (29, 18, 5)).astype(np.float32)
    pred = (gt + rng.normal(0, 0.05, gt.shape)).astype(np.float32)
    accumulator = MetricAccumulator(*gt.shape, crop=crop)
    for y0 in range(0, gt.shape[0], block):
        accumulator.update(pred[y0 : y0 + block], gt[y0 : y0 + block])
    result = accumulator.result()
    assert result.mrae == pytest.approx(mrae(pred, gt, crop=crop), rel=1e-12)
    assert result.rmse == pytest.approx(rmse(pred, gt, crop=crop), rel=1e-12)
    assert result.psnr == pytest.approx(psnr(pred, gt, crop=crop), rel=1e-12)
    assert result.sam == pytest.approx(sam(pred, gt, crop=crop), rel=1e-12)
    assert result.ssim == pytest.approx(ssim(pred, gt, crop=crop), rel=1e-12)
    assert result.values == (29 - 2 * crop) * (18 - 2 * crop) * 5


def test_accumulator_wants_every_row_once():
    accumulator = MetricAccumulator(12, 12, 2, with_ssim=False)
    accumulator.update(np.ones((5, 12, 2)), np.ones((5, 12, 2)))
    with pytest.raises(ValueError, match="only 5 of 12 rows"):
        accumulator.result()
    with pytest.raises(ValueError, match="run past"):
        accumulator.update(np.ones((8, 12, 2)), np.ones((8, 12, 2)))
    with pytest.raises(ValueError, match="shapes differ"):
        mrae(np.ones((2, 2, 3)), np.ones((2, 3, 3)))


# --- the self-ensemble ----------------------------------------------------------------------------------


def test_tta_of_a_per_pixel_model_equals_no_tta(rng):
    # A 1×1 convolution treats every pixel alike, so each flip/rotation gives the same cube back.
    model = torch.nn.Conv2d(3, 31, kernel_size=1)
    windows = rng.uniform(0, 1, (4, 16, 16, 3)).astype(np.float32)
    plain = TorchPredictor(model, tta=False)(windows)
    ensemble = TorchPredictor(model, tta=True)(windows)
    np.testing.assert_allclose(ensemble, plain, rtol=0, atol=1e-6)
    # ...whereas a model that sees neighbours is changed by it: the ensemble really runs the 8 views
    spatial = torch.nn.Conv2d(3, 31, kernel_size=3, padding=1)
    assert np.abs(TorchPredictor(spatial, tta=True)(windows) - TorchPredictor(spatial)(windows)).max() > 1e-3


# --- scale-free scores: MRAE and RMSE after one best gain per image ---------------------------------------


def test_gain_scores_by_hand():
    # gt (1, 2, 4), pred (1, 1, 1): ratios gt/pred 1, 2, 4 with MRAE weights pred/gt 1, 1/2, 1/4 (total 1.75).
    # The weighted median is 1 (its weight alone passes half the total): MRAE(1) = (0 + 1/2 + 3/4)/3 = 5/12,
    # less than MRAE(2) = (1 + 0 + 1/2)/3 = 1/2. Least squares: Σ pred·gt / Σ pred² = 7/3, with errors
    # 4/3, 1/3, −5/3 → RMSE √(42/27); MRAE (4/3 + 1/6 + 5/12)/3 = 23/36.
    gt = np.array([[[1.0, 2.0, 4.0]]])
    pred = np.ones_like(gt)
    for result in (metrics.gain_scores(pred, gt), score(pred, gt, with_ssim=False)):
        fields = result.fields() if isinstance(result, metrics.GainScores) else result.as_dict()
        assert fields["gain_mrae"] == 1.0
        assert fields["mrae_gain_mrae"] == pytest.approx(5 / 12, abs=1e-15)
        assert fields["rmse_gain_mrae"] == pytest.approx(math.sqrt((0 + 1 + 9) / 3), abs=1e-15)
        assert fields["gain_ls"] == pytest.approx(7 / 3, abs=1e-15)
        assert fields["rmse_gain_ls"] == pytest.approx(math.sqrt(42 / 27), abs=1e-15)
        assert fields["mrae_gain_ls"] == pytest.approx(23 / 36, abs=1e-15)
        assert fields["gain_bound"] == 0.0  # every bin of the streamed histogram holds one ratio
    assert metrics.ls_gain(pred, gt) == pytest.approx(7 / 3, abs=1e-15)
    assert metrics.mrae_gain(pred, gt) == 1.0


def test_gain_undoes_a_global_scale(rng):
    gt = rng.uniform(0.01, 1, (13, 9, 31))
    scores = score(gt * 0.25, gt, with_ssim=False)  # a power of two: every ratio is exactly 4
    assert (scores.gain_mrae, scores.mrae_gain_mrae, scores.gain_bound) == (4.0, 0.0, 0.0)
    assert scores.gain_ls == 4.0 and scores.rmse_gain_ls == 0.0 and scores.mrae > 0.7
    # float32 rounding spreads the ratios of 0.37·gt over a few units in the last place: still ~0
    scores = score((gt * 0.37).astype(np.float32), gt, with_ssim=False)
    assert scores.gain_mrae == pytest.approx(1 / 0.37, rel=1e-6)
    assert scores.mrae_gain_mrae < 1e-7 and scores.gain_bound < 1e-7 and scores.rmse_gain_ls < 1e-7


def test_mrae_gain_is_the_minimum_over_gains(rng):
    gt = rng.uniform(0.02, 1, (11, 7, 5))
    pred = gt * rng.lognormal(0, 0.4, gt.shape) * 3.0
    exact = metrics.gain_scores(pred, gt)
    gains = np.linspace(0.01, 1.0, 2001)
    brute = min(mrae(g * pred, gt) for g in gains)
    assert exact.mrae_gain_mrae <= brute + 1e-15
    assert exact.mrae_gain_mrae == pytest.approx(mrae(exact.gain_mrae * pred, gt), abs=1e-15)
    assert exact.rmse_gain_ls <= min(rmse(g * pred, gt) for g in gains) + 1e-15
    assert exact.mrae_gain_ls >= exact.mrae_gain_mrae and exact.rmse_gain_mrae >= exact.rmse_gain_ls


@pytest.mark.parametrize("block", [1, 7, 29])
@pytest.mark.parametrize("crop", [0, 3])
@pytest.mark.parametrize("noise", [0.3, 1e-4])
def test_streamed_gain_scores_are_within_their_bound(rng, block, crop, noise):
    gt = rng.uniform(0.02, 1, (29, 18, 31))
    pred = (gt * rng.lognormal(0, noise, gt.shape) * 0.61).astype(np.float32)
    accumulator = MetricAccumulator(*gt.shape, crop=crop, with_ssim=False)
    for y0 in range(0, gt.shape[0], block):
        accumulator.update(pred[y0 : y0 + block], gt[y0 : y0 + block])
    streamed, exact = accumulator.result(), metrics.gain_scores(pred, gt, crop=crop)
    p64 = pred.astype(np.float64)  # gain · pred in float64, as the scores compute it
    assert streamed.gain_ls == pytest.approx(exact.gain_ls, rel=1e-12)
    assert streamed.rmse_gain_ls == pytest.approx(exact.rmse_gain_ls, rel=1e-9)
    # the reported MRAE is the exact MRAE at the reported gain, and no more than the bound above the optimum
    assert streamed.mrae_gain_mrae == pytest.approx(mrae(streamed.gain_mrae * p64, gt, crop=crop), abs=1e-10)
    assert exact.mrae_gain_mrae - 1e-12 <= streamed.mrae_gain_mrae <= exact.mrae_gain_mrae + streamed.gain_bound
    assert abs(streamed.mrae_gain_ls - exact.mrae_gain_ls) <= streamed.gain_bound + 1e-12
    assert streamed.gain_mrae == pytest.approx(exact.gain_mrae, rel=2 ** (1 / 1024) - 1 + 1e-12)
    # the bound: at most a bin's relative width (2^(1/1024) − 1 = 6.8e-4) times the share of values in it,
    # which for realistic errors (ratios spread over many bins) is far below the digits reported
    assert streamed.gain_bound < (1e-6 if noise > 0.1 else 2 ** (1 / 1024) - 1)
    assert streamed.rmse_gain_mrae == pytest.approx(rmse(streamed.gain_mrae * p64, gt, crop=crop), rel=1e-9)


def test_gain_scores_with_zeros_signs_and_extreme_ratios():
    # gt = 0 is left out (as in MRAE); pred = 0 costs 1 at any gain; ratios far outside 2^±32 still count.
    gt = np.array([[[0.0, 0.5, 0.5, 2.0, 1.0, 1.0]]])
    pred = np.array([[[0.3, 0.0, 1e-12, 1.0, 1.0, 1.0]]])
    exact = metrics.gain_scores(pred, gt)
    streamed = score(pred, gt, with_ssim=False)
    # weights 2e-12, 1/2, 1, 1 at ratios 5e11, 2, 1, 1: the median is 1; MRAE (1 + ~1 + 1/2 + 0 + 0) / 5
    assert exact.gain_mrae == 1.0 and streamed.gain_mrae == 1.0
    assert exact.mrae_gain_mrae == pytest.approx(2.5 / 5, abs=1e-11)
    assert streamed.mrae_gain_mrae == pytest.approx(exact.mrae_gain_mrae, abs=1e-15)
    assert streamed.mrae_excluded == 1 and streamed.gain_bound == 0.0
    # a prediction of the opposite sign: the best non-negative gain is 0, where MRAE is 1
    gt = np.full((2, 2, 3), 0.5)
    for result in (metrics.gain_scores(-gt, gt).fields(), score(-gt, gt, with_ssim=False).as_dict()):
        assert (result["gain_ls"], result["gain_mrae"]) == (0.0, 0.0)
        assert result["mrae_gain_mrae"] == 1.0 and result["mrae_gain_ls"] == 1.0
    assert math.isnan(metrics.gain_scores(gt, np.zeros_like(gt)).mrae_gain_mrae)
    assert score(gt, gt, with_ssim=False, with_gain=False).gain_mrae is None
