"""``hsrecon eval`` and :mod:`hsrecon.evaluate` on tiny NTIRE fixtures and on convert's own outputs."""

from __future__ import annotations

import csv
import json

import imageio.v3 as iio
import numpy as np
import pytest
from test_cli import NO_OVERLAP, hsrecon
from test_data_ntire import linear_scene, make_ntire2020, write_mat
from typer.testing import CliRunner

from hsrecon.cli import app
from hsrecon.data import discover
from hsrecon.evaluate import NetworkMethod, evaluate_pairs, fit_linear_baseline, pair_cube_files
from hsrecon.io import open_cube_writer, read_cube
from hsrecon.metrics import score
from hsrecon.physics import WAVELENGTHS_NM
from hsrecon.pipeline import reconstruct

MATRIX = np.random.default_rng(7).uniform(0.05, 0.5, (3, 31))  # cube = (rgb / 255) @ MATRIX in the fixtures


def invoke(*args: str):
    """The command in-process (fast); stdout and stderr apart, as a user sees them."""
    return CliRunner().invoke(app, list(args))


def write_h5(stem, cube: np.ndarray):
    with open_cube_writer(stem, "h5", height=cube.shape[0], width=cube.shape[1], wavelengths_nm=WAVELENGTHS_NM) as w:
        w.write_rows(0, cube)


@pytest.fixture()
def ntire2020(tmp_path, rng):
    return make_ntire2020(tmp_path / "NTIRE2020", rng, matrix=MATRIX)


def test_data_table_json_and_csv(ntire2020, tmp_path, bundled_model):
    report, table = tmp_path / "report.json", tmp_path / "scores.csv"
    result = hsrecon(
        "eval", "--data", str(ntire2020), *NO_OVERLAP, "--baseline", "linear", "--device", "cpu",
        "--weights", "ntire2020-clean", "--json", str(report), "--csv", str(table), "-q",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    for text in ("ARAD_HS_0451", "ARAD_HS_0452", "network", "linear", "mean", "median", "p95", "MRAE", "SSIM"):
        assert text in result.stdout
    assert "2 scored, 0 failed; whole images (NTIRE 2020)" in result.stdout
    data = json.loads(report.read_text())
    assert data["settings"]["conventions"]["crop"] == 0
    assert (data["settings"]["window"], data["settings"]["stride"]) == (64, 64)
    network = data["methods"]["network"]
    for pair, image in zip(discover(ntire2020), network["images"], strict=True):
        assert image["name"] == pair.name and image["seconds"] > 0
        gt, _, _ = read_cube(pair.cube)
        cube = reconstruct(iio.imread(pair.rgb), bundled_model, window=64, stride=64)
        expected = score(cube, gt).as_dict()
        for metric in ("mrae", "rmse", "psnr", "sam", "ssim", "mrae_gain_mrae", "rmse_gain_ls", "gain_ls"):
            # another process: the network's float32 output may differ in its last bits
            assert image[metric] == pytest.approx(expected[metric], rel=1e-6), metric
        assert image["mrae_gain_mrae"] <= image["mrae"] and image["rmse_gain_ls"] <= image["rmse"]
    mraes = [image["mrae"] for image in network["images"]]
    assert network["summary"]["mrae_mean"] == pytest.approx(np.mean(mraes), rel=1e-12)
    assert network["summary"]["mrae_p95"] == pytest.approx(np.percentile(mraes, 95), rel=1e-12)
    # the cube is exactly linear in the RGB, so the least-squares baseline recovers it
    linear = data["methods"]["linear"]
    assert linear["summary"]["mrae_mean"] < 1e-5
    assert data["settings"]["baselines"]["linear"]["fit_images"] == 3
    rows = list(csv.DictReader(table.open()))
    # network, network+plausible (on by default for clean renderings: what convert writes) and linear, per image
    assert [row["status"] for row in rows].count("ok") == 6
    assert data["settings"]["plausible"] is True and len(data["methods"]["network+plausible"]["images"]) == 2
    mean_row = next(r for r in rows if r["method"] == "network" and r["name"] == "mean")
    assert float(mean_row["mrae"]) == pytest.approx(network["summary"]["mrae_mean"], rel=1e-12)
    after_gain = [image["mrae_gain_mrae"] for image in network["images"]]
    assert float(mean_row["mrae_gain_mrae"]) == pytest.approx(np.mean(after_gain), rel=1e-12)


def test_library_scores_equal_the_metrics_on_the_same_arrays(ntire2020, bundled_weights):
    pairs = discover(ntire2020)
    network = NetworkMethod(bundled_weights.predictor(window=64), window=64, stride=64)
    report = evaluate_pairs(pairs, {"network": network}, input_space="ntire2020-clean", crop=4)
    for pair, result in zip(pairs, report.results["network"], strict=True):
        gt, _, _ = read_cube(pair.cube)
        # the same weights object as NetworkMethod's (so the same proven frozen U-net), NetworkMethod's windows
        cube = reconstruct(iio.imread(pair.rgb), bundled_weights, window=64, stride=64, pad=0)
        assert result.scores.as_dict() == pytest.approx(score(cube, gt, crop=4).as_dict(), rel=1e-12)
    assert report.failures == []


def test_linear_baseline_recovers_a_linear_map(ntire2020):
    baseline = fit_linear_baseline(discover(ntire2020, split="train"), input_space="ntire2020-clean")
    np.testing.assert_allclose(baseline.matrix, MATRIX, rtol=1e-5)  # the cubes are stored as float32
    assert (baseline.images, baseline.skipped) == (3, ())
    report = evaluate_pairs(discover(ntire2020), {"linear": baseline}, input_space="ntire2020-clean")
    assert [r.scores.mrae < 1e-6 for r in report.results["linear"]] == [True, True]


def _baseline_mraes(root, tmp_path, *options: str) -> dict[str, float]:
    report = tmp_path / "r.json"
    names = ("linear", "linear-stored", "linear-decoded")
    baselines = [arg for name in names for arg in ("--baseline", name)]
    result = invoke(
        "eval",
        "--data",
        str(root),
        *options,
        *baselines,
        *NO_OVERLAP,
        "--json",
        str(report),
        "-q",
    )
    assert result.exit_code == 0, result.stderr
    data = json.loads(report.read_text())
    assert list(data["settings"]["baselines"]) == list(names)
    return {name: data["methods"][name]["summary"]["mrae_mean"] for name in names}


def test_the_three_linear_baselines_differ_only_in_the_space_they_are_fitted_in(ntire2020, tmp_path):
    # clean track: stored values are clean space, so all three are the same exact fit of MATRIX
    clean = _baseline_mraes(ntire2020, tmp_path, "--device", "cpu")
    assert max(clean.values()) < 1e-5
    # real-world track, default weights: the network (and 'linear') sees the decoded photo
    photo = _baseline_mraes(ntire2020, tmp_path, "--track", "realworld", "--device", "cpu")
    assert photo["linear"] == photo["linear-decoded"]
    # the cubes are linear in the stored values (up to JPEG's loss on noise), not in the decoded ones
    assert photo["linear-stored"] < 0.5 * photo["linear-decoded"]  # measured 0.16 vs 0.35
    # camera weights are fed the stored values: 'linear' is the stored fit
    camera = _baseline_mraes(ntire2020, tmp_path, "--track", "realworld", "--weights", "camera", "--device", "cpu")
    assert camera["linear"] == camera["linear-stored"] == photo["linear-stored"]
    assert camera["linear-decoded"] == photo["linear-decoded"]


def test_plausible_mrae_map_and_otsu_beside_the_network(ntire2020, tmp_path, bundled_weights):
    report = tmp_path / "r.json"
    result = invoke(
        "eval", "--data", str(ntire2020), "--plausible", "--baseline", "linear-mrae", "--baseline", "otsu2018",
        "--window", "64", "--stride", "64", "--device", "cpu", "--weights", "ntire2020-clean", "--json", str(report),
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    for text in ("network+plausible", "linear-mrae", "otsu2018", "MRAE g*", "RMSE g*", "after each image's best gain"):
        assert text in result.stdout
    data = json.loads(report.read_text())
    assert list(data["methods"]) == ["network", "network+plausible", "linear-mrae", "otsu2018"]
    assert data["settings"]["plausible"] is True
    assert data["settings"]["baselines"]["linear-mrae"]["method"] == "linear 3→31 minimum MRAE (IRLS)"
    assert "Otsu 2018" in data["settings"]["baselines"]["otsu2018"]["method"]
    # the fixtures' cubes are exactly linear in the RGB: the MRAE-fitted map finds that map too
    assert data["methods"]["linear-mrae"]["summary"]["mrae_mean"] < 1e-4
    np.testing.assert_allclose(data["settings"]["baselines"]["linear-mrae"]["matrix_3x31"], MATRIX, rtol=1e-3)
    # the projected network output is scored from the same reconstruction, projected
    pairs = discover(ntire2020)
    for pair, image in zip(pairs, data["methods"]["network+plausible"]["images"], strict=True):
        gt, _, _ = read_cube(pair.cube)
        cube = reconstruct(iio.imread(pair.rgb), bundled_weights, window=64, stride=64, plausible=True)
        assert image["mrae_gain_mrae"] == pytest.approx(score(cube, gt).mrae_gain_mrae, rel=1e-5)
    # weights whose output's rendering is unknown: refused before any work
    import dataclasses

    from hsrecon.weights import save_weights

    meta = dataclasses.replace(bundled_weights.meta, input_space="srgb")
    photo = save_weights(tmp_path / "photo.safetensors", bundled_weights.state_dict, meta)
    result = invoke("eval", "--data", str(ntire2020), "--plausible", "--weights", str(photo), "--device", "cpu")
    assert result.exit_code == 2 and "--plausible needs weights that take clean-space input" in result.stderr


def test_pred_gt_on_convert_outputs_in_three_formats(tmp_path, rng):
    rgb, truth = linear_scene(rng, MATRIX, (64, 64))
    (tmp_path / "in").mkdir()
    (tmp_path / "gt").mkdir()
    iio.imwrite(tmp_path / "in" / "scene.png", rgb)
    write_mat(tmp_path / "gt" / "scene", truth)
    out = tmp_path / "out"
    converted = hsrecon(
        "convert",
        str(tmp_path / "in"),
        "-o",
        str(out),
        "-f",
        "envi",
        "-f",
        "mat",
        "-f",
        "h5",
        *NO_OVERLAP,
        "--weights",
        "ntire2020-clean",
        "--no-plausible",  # the raw network on random values (projecting them aims at codes, not at this truth)
        "-q",
    )
    assert converted.returncode == 0, converted.stderr
    report = tmp_path / "files.json"
    result = hsrecon("eval", "--pred", str(out), "--gt", str(tmp_path / "gt"), "--json", str(report), "-q")
    assert result.returncode == 0, result.stderr
    images = json.loads(report.read_text())["methods"]["pred"]["images"]
    assert [image["name"] for image in images] == ["scene.h5", "scene.hdr", "scene.mat"]
    expected = score(read_cube(out / "scene.h5")[0], truth).as_dict()
    for image in images:  # the same cube in each format: the same scores
        assert {k: image[k] for k in expected} == pytest.approx(expected, rel=1e-12)
        assert image["seconds"] is None
    assert 0 < expected["mrae"] < 1 and 0 < expected["ssim"] < 1


def test_missing_and_misshaped_pairs_are_counted(tmp_path, rng):
    pred, gt = tmp_path / "pred", tmp_path / "gt"
    pred.mkdir()
    gt.mkdir()
    cube = rng.uniform(0.1, 1, (24, 24, 31)).astype(np.float32)
    noisy = (cube + rng.normal(0, 0.02, cube.shape)).astype(np.float32)
    write_h5(pred / "ARAD_HS_0451_clean", noisy)  # NTIRE's _clean suffix pairs with ARAD_HS_0451
    write_mat(gt / "ARAD_HS_0451", cube)
    write_h5(pred / "same", cube)
    write_mat(gt / "same", cube)
    write_h5(pred / "small", cube[:16])  # mis-shaped
    write_mat(gt / "small", cube)
    write_h5(pred / "extra", cube)  # no ground truth
    write_mat(gt / "orphan", cube)  # no prediction
    report = tmp_path / "r.json"
    result = invoke("eval", "--pred", str(pred), "--gt", str(gt), "--json", str(report), "-q")
    assert result.exit_code == 1, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("hsrecon: error:")]
    assert len(errors) == 3
    assert any("extra.h5: no ground truth named extra.*" in line for line in errors)
    assert any("orphan.mat: no prediction named orphan.*" in line for line in errors)
    assert any("small.h5: shape 16×24×31, ground truth small.mat is 24×24×31" in line for line in errors)
    assert "Traceback" not in result.stderr
    assert "2 scored, 3 failed" in result.stdout
    data = json.loads(report.read_text())
    images = {image["name"]: image for image in data["methods"]["pred"]["images"]}
    assert set(images) == {"ARAD_HS_0451_clean.h5", "same.h5"}
    assert images["ARAD_HS_0451_clean.h5"]["mrae"] == pytest.approx(score(noisy, cube).mrae, rel=1e-12)
    assert images["same.h5"]["psnr"] is None  # +inf (a perfect match) is null in JSON
    assert images["same.h5"]["mrae"] == 0.0
    assert len(data["failures"]) == 3


def test_pair_cube_files_scores_each_format_and_flags_ambiguous_truth(tmp_path, rng):
    pred, gt = tmp_path / "pred", tmp_path / "gt"
    pred.mkdir()
    gt.mkdir()
    cube = rng.uniform(0.1, 1, (12, 12, 31)).astype(np.float32)
    write_h5(pred / "a", cube)
    write_mat(pred / "a", cube)
    write_h5(gt / "a", cube)
    write_h5(pred / "b", cube)
    write_h5(gt / "b", cube)
    write_mat(gt / "b", cube)
    pairs, failures = pair_cube_files(pred, gt)
    assert [(p.name, g.name) for p, g in pairs] == [("a.h5", "a.h5"), ("a.mat", "a.h5")]
    assert [f.message.split(": ", 1)[1] for f in failures] == ["several ground-truth files for b (b.h5, b.mat)"]


def test_ntire2022_crop_on_small_images_fails_each_pair(tmp_path, rng):
    pred, gt = tmp_path / "pred", tmp_path / "gt"
    pred.mkdir()
    gt.mkdir()
    write_h5(pred / "a", rng.uniform(0.1, 1, (40, 40, 31)).astype(np.float32))
    write_h5(gt / "a", rng.uniform(0.1, 1, (40, 40, 31)).astype(np.float32))
    result = invoke("eval", "--pred", str(pred), "--gt", str(gt), "--ntire2022", "-q")
    assert result.exit_code == 1
    assert "crop 128 leaves no pixels of a 40×40 image" in result.stderr
    assert "[128:-128, 128:-128] (NTIRE 2022)" in result.stdout


@pytest.mark.parametrize(
    ("args", "code", "text"),
    [
        ((), 2, "give --data DIR"),
        (("--data", ".", "--pred", "."), 2, "not both"),
        (("--pred", ".", "--gt", ".", "--baseline", "linear"), 2, "--baseline: only with --data"),
        (("--pred", ".", "--gt", ".", "--plausible"), 2, "--plausible: only with --data"),
        (("--pred", ".", "--gt", ".", "--ntire2022", "--crop", "5"), 2, "conflicts with --crop 5"),
        (("--pred", "nowhere", "--gt", "."), 4, "nowhere: not a folder"),
        (("--pred", ".", "--gt", ".", "--json", "missing/r.json"), 5, "no such directory"),
    ],
)
def test_usage_errors_are_one_line(args, code, text):
    result = invoke("eval", *args)
    assert result.exit_code == code, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("hsrecon: error:") and text in lines[0], result.stderr


def test_data_errors_are_one_line(tmp_path, rng):
    (tmp_path / "photos").mkdir()
    result = invoke("eval", "--data", str(tmp_path / "photos"), "--device", "cpu")
    assert result.exit_code == 4 and "neither NTIRE layout" in result.stderr
    valid_only = make_ntire2020(tmp_path / "v", rng, train=(), valid=(451,), shape=(16, 16))
    result = invoke("eval", "--data", str(valid_only), "--baseline", "linear", "--device", "cpu", "-q")
    assert result.exit_code == 4, result.stderr
    assert "--baseline linear needs a training split" in result.stderr
    assert "expected Train_Spectral/ and Train_Clean/" in result.stderr
    result = invoke("eval", "--data", str(valid_only), "--baseline", "quadratic", "--device", "cpu")
    assert result.exit_code == 2 and "choose from linear" in result.stderr


def test_data_with_an_unpaired_cube_scores_the_rest(tmp_path, rng):
    root = make_ntire2020(tmp_path / "n", rng, train=(), valid=(451, 452), shape=(32, 32))
    (root / "Validation_Clean" / "ARAD_HS_0452_clean.png").unlink()
    report = tmp_path / "r.json"
    result = invoke(
        "eval", "--data", str(root), "--window", "64", "--stride", "32", "--device", "cpu", "--json", str(report), "-q"
    )
    assert result.exit_code == 1, result.stderr
    assert "ARAD_HS_0452.mat: no RGB image for it" in result.stderr
    assert "1 scored, 1 failed" in result.stdout
    data = json.loads(report.read_text())
    assert [image["name"] for image in data["methods"]["network"]["images"]] == ["ARAD_HS_0451"]
    assert len(data["failures"]) == 1 and "no RGB image" in data["failures"][0]["error"]


def test_the_default_weights_on_a_dataset_hsrecon_did_not_make_get_one_note(ntire2020, tmp_path):
    """NTIRE 2020 itself scores best with the authors' weights alone: eval says so once when it scores the default
    there; given weights, or a set made by hsrecon synth (synth.json), it says nothing of it."""
    hint = "for the paper's numbers on NTIRE 2020 data give --weights ntire2020-clean"
    default = invoke("eval", "--data", str(ntire2020), *NO_OVERLAP, "--device", "cpu", "-q")
    assert default.exit_code == 0, default.stderr
    assert default.stderr.count(hint) == 1 and "the default weights, clean-v3" in default.stderr
    named = invoke("eval", "--data", str(ntire2020), *NO_OVERLAP, "--device", "cpu", "--weights", "clean-v3", "-q")
    assert named.exit_code == 0 and hint not in named.stderr
    (ntire2020 / "synth.json").write_text("{}")
    made_here = invoke("eval", "--data", str(ntire2020), *NO_OVERLAP, "--device", "cpu", "-q")
    assert made_here.exit_code == 0, made_here.stderr
    assert hint not in made_here.stderr
