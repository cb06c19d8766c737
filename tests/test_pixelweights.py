"""Per-pixel root-polynomial maps as weights: the file and its checked loading, the fast convert path, the
fit behind ``train --model rpr2`` and ``eval --baseline rpr2``, ``info``, and the bundled provisional map."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from test_io_rgb import _png as png
from typer.testing import CliRunner

from hsrecon.cli import app
from hsrecon.data import discover
from hsrecon.data.synth import make_synthetic_dataset
from hsrecon.evaluate import training_samples
from hsrecon.groups import main_lights
from hsrecon.io import read_cube
from hsrecon.io.rgb import read_rgb
from hsrecon.metrics import score
from hsrecon.pipeline import NonFiniteOutputError, convert_file, reconstruct, stream_reconstruct
from hsrecon.pixelfit import fit_pixel_map, pairs_lit_by
from hsrecon.pixelmap import (
    RootPolynomialMap,
    apply_map,
    fit_with_validation,
    root_polynomial_terms,
    term_count,
)
from hsrecon.pixelweights import PIXEL_WINDOWING, PixelMapMeta, PixelMapWeights
from hsrecon.weights import BUNDLED, WeightsError, as_weights, load_weights, save_weights, sha256_of

ROOT = Path(__file__).resolve().parent.parent


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def pixel_map(degree: int = 2, seed: int = 5) -> PixelMapWeights:
    """A map with spectra-like positive rows: every term adds a smooth positive spectrum."""
    rng = np.random.default_rng(seed)
    return PixelMapWeights.from_matrix(rng.uniform(0.01, 0.4, (term_count(degree), 31)), degree, weights_version="t")


def saved(path: Path, weights: PixelMapWeights) -> Path:
    return save_weights(path, weights.state_dict, weights.meta)


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory) -> Path:
    """Recipe 1 at 32×32: 9 training scenes (one of them the ridge's validation part), 3 to evaluate."""
    out = tmp_path_factory.mktemp("synth") / "tiny"
    make_synthetic_dataset(out, scenes=12, size=(32, 32), seed=3, camera=None, valid_fraction=0.25)
    return out


# --- the file: round trip, and what the loader refuses ----------------------------------------------------


def test_round_trip_is_exact_and_deterministic(tmp_path):
    weights = pixel_map(3)
    first, second = saved(tmp_path / "a.safetensors", weights), saved(tmp_path / "b.safetensors", weights)
    assert first.read_bytes() == second.read_bytes()
    loaded = load_weights(first)
    assert isinstance(loaded, PixelMapWeights) and loaded.meta == weights.meta
    assert torch.equal(loaded.matrix, weights.matrix) and loaded.matrix.dtype == torch.float32
    assert loaded.name == "a.safetensors (t)" and loaded.windowing() == PIXEL_WINDOWING
    assert as_weights(loaded) is loaded and as_weights(first).meta == weights.meta
    from_module = as_weights(RootPolynomialMap(weights.matrix, 3))
    assert torch.equal(from_module.matrix, weights.matrix) and from_module.degree == 3


def _craft(path: Path, meta: dict, tensors: dict | None = None) -> Path:
    good = pixel_map(2)
    save_file(tensors or {"matrix": good.matrix}, str(path), metadata={"hsrecon": json.dumps(meta)})
    return path


def _meta(**changes) -> dict:
    data = json.loads(pixel_map(2).meta.to_json())
    data.update(changes)
    return {key: value for key, value in data.items() if value is not None}


@pytest.mark.parametrize(
    ("meta", "tensors", "message"),
    [
        (_meta(degree=4), None, "degree: expected an integer from 1 to 3, found 4"),
        (_meta(degree=True), None, "degree: expected an integer"),
        (_meta(ridge=-1e-3), None, "ridge: expected a number in [0, 1e+06]"),
        (_meta(ridge=float("nan")), None, "ridge: expected a number"),
        (_meta(degree=None), None, "missing key 'degree'"),
        (_meta(input_space="srgb"), None, "a root-polynomial map takes ntire2020-clean values"),
        (_meta(input_space="cmyk"), None, "input_space: unknown input space"),
        (_meta(window_size=64), None, "unknown metadata keys ['window_size']"),
        (_meta(wavelengths_nm=[400, 390]), None, "wavelengths_nm: expected strictly increasing"),
        (_meta(format_version=2), None, "weights format hsrecon-weights v2 is newer"),
        (_meta(kind="mlp"), None, "weights of kind 'mlp', unknown to this hsrecon"),
        (_meta(), {"matrix": torch.zeros(13, 31)}, "matrix has shape (13, 31), a degree-2 map needs (6, 31)"),
        (
            _meta(wavelengths_nm=list(range(400, 700, 10))),
            None,
            "matrix has shape (6, 31), a degree-2 map needs (6, 30)",
        ),
        (_meta(), {"matrix": torch.zeros(6, 31), "bias": torch.zeros(31)}, "holds one tensor 'matrix'"),
        (_meta(), {"matrix": torch.zeros(6, 31, dtype=torch.int32)}, "not floating-point"),
        (_meta(), {"matrix": torch.full((6, 31), float("inf"))}, "matrix contains NaN or infinite values"),
    ],
)
def test_the_loader_refuses_a_crafted_file_in_one_line(tmp_path, meta, tensors, message):
    path = _craft(tmp_path / "crafted.safetensors", meta, tensors)
    with pytest.raises(WeightsError) as raised:
        load_weights(path)
    text = str(raised.value)
    assert message in text and text.startswith(str(path)) and "\n" not in text


def test_a_crafted_file_is_exit_code_3_before_any_work(tmp_path):
    path = _craft(tmp_path / "crafted.safetensors", _meta(degree=7))
    result = invoke("convert", str(tmp_path / "absent.png"), "-o", str(tmp_path / "out"), "-w", str(path))
    assert result.exit_code == 3 and "degree: expected an integer from 1 to 3" in result.stderr
    assert not (tmp_path / "out").exists()


# --- running it: the fast path, colour-science's terms, exposure invariance --------------------------------


@pytest.mark.parametrize("degree", [2, 3])
def test_convert_computes_colour_sciences_terms_times_the_matrix(tmp_path, rng, degree):
    weights = pixel_map(degree)
    rgb = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)  # 0s included: roots of zero
    iio.imwrite(tmp_path / "in.png", rgb)
    path = saved(tmp_path / "map.safetensors", weights)
    # several blocks, one of them a partial row band
    result = invoke("convert", str(tmp_path / "in.png"), "-o", str(tmp_path / "out"), "-w", str(path), "-f", "h5",
                    "--batch-size", "500", "--no-plausible", "-q")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    cube, _, attrs = read_cube(tmp_path / "out" / "in.h5")
    expected = root_polynomial_terms(rgb.reshape(-1, 3) / 255.0, degree) @ weights.matrix.double().numpy()
    np.testing.assert_allclose(cube.reshape(-1, 31), expected, rtol=2e-6, atol=1e-7)
    assert (attrs["window"], attrs["stride"], attrs["pad"]) == (1, 1, 0)


@pytest.mark.parametrize("degree", [2, 3])
def test_the_torch_module_and_the_cpu_path_agree(rng, degree):
    weights = pixel_map(degree)
    pixels = rng.uniform(-0.02, 1.1, (3000, 3)).astype(np.float32)
    on_cpu = apply_map(pixels, weights.matrix.numpy(), degree)
    module = RootPolynomialMap(weights.matrix, degree)
    np.testing.assert_allclose(module.map_pixels(torch.from_numpy(pixels)).numpy(), on_cpu, rtol=1e-5, atol=1e-6)
    nchw = torch.from_numpy(pixels.T.reshape(1, 3, 50, 60).copy())
    np.testing.assert_allclose(module(nchw)[0].numpy().reshape(31, -1).T, on_cpu, rtol=1e-5, atol=1e-6)


def test_exposure_invariance_through_the_whole_convert_path(tmp_path, rng):
    """Twice the light (a 16-bit PNG with every code doubled, none clipped) gives exactly twice the cube."""
    codes = rng.integers(0, 30000, (24, 40, 3), dtype=np.uint16)
    (tmp_path / "dim.png").write_bytes(png(codes, colour_type=2))
    (tmp_path / "bright.png").write_bytes(png(codes * 2, colour_type=2))
    weights = load_weights("rpr2-clean-provisional")
    cubes = {}
    for name in ("dim", "bright"):
        convert_file(tmp_path / f"{name}.png", tmp_path / "out" / name, weights=weights, formats=("h5",))
        cubes[name] = read_cube(tmp_path / "out" / f"{name}.h5")[0]
    np.testing.assert_allclose(cubes["bright"], 2 * cubes["dim"], rtol=1e-5, atol=1e-7)
    assert cubes["dim"].max() > 0.05  # a real signal, not zeros


def test_the_row_path_gives_what_one_pixel_windows_give(rng):
    """The per-pixel path (rows in blocks) against the general windowed path run with the same 1-pixel
    windows (a pad sends it through the general path: reflection, blending, cropping)."""
    weights = pixel_map(3)
    predict = weights.predictor()
    pixels = rng.uniform(0, 1, (7, 9, 3)).astype(np.float32)
    rows, windows = np.zeros((7, 9, 31), np.float32), np.zeros((7, 9, 31), np.float32)
    fast = stream_reconstruct(pixels, lambda r: r, predict, lambda y, r: rows.__setitem__(slice(y, y + len(r)), r),
                              window=1, stride=1, batch_size=20)  # fmt: skip
    stream_reconstruct(pixels, lambda r: r, predict, lambda y, r: windows.__setitem__(slice(y, y + len(r)), r),
                       window=1, stride=1, pad=1, batch_size=20)  # fmt: skip
    assert fast == 63
    np.testing.assert_array_equal(rows, windows)
    np.testing.assert_array_equal(rows, reconstruct(pixels, weights))


def test_a_non_finite_output_names_the_pixel(rng):
    def predict(windows):
        out = np.ones((*windows.shape[:-1], 31), np.float32)
        out.reshape(-1, 31)[2 * 9 + 4, 3] = np.nan  # pixel (2, 4)
        return out

    with pytest.raises(NonFiniteOutputError, match=r"window at \(2, 4\)"):
        stream_reconstruct(np.zeros((5, 9, 3), np.float32), lambda r: r, predict, lambda y, r: None,
                           window=1, stride=1, batch_size=1000)  # fmt: skip


def test_windows_and_notes_that_mean_nothing_to_a_map(tmp_path):
    weights = pixel_map(2)
    with pytest.raises(ValueError, match=r"^window 64: per-pixel weights read each pixel alone"):
        weights.windowing(64)
    notes: list[str] = []
    weights.predictor(precision="bf16", tta=True, on_note=notes.append)
    assert notes == ["a per-pixel map runs in float32 and is the same under flips: --precision bf16, --tta changes "
                     "nothing"]  # fmt: skip
    path = saved(tmp_path / "map.safetensors", weights)
    result = invoke("convert", str(tmp_path), "-o", str(tmp_path / "out"), "-w", str(path), "--stride", "8")
    assert result.exit_code == 2 and "--stride 8: per-pixel weights read each pixel alone" in result.stderr


# --- fitting: eval --baseline rpr2 and train --model rpr2 are the same fit --------------------------------


def test_eval_baseline_rpr2_is_the_direct_fit(tiny_set, tmp_path):
    train = discover(tiny_set, split="train")
    inputs, targets, skipped = training_samples(train, input_space="ntire2020-clean")
    fit = fit_with_validation(inputs, targets, 2)
    assert (skipped, fit.images, fit.valid_images) == ([], 9, 1)  # the 5th training image chose the ridge
    report = tmp_path / "r.json"
    weights = saved(tmp_path / "map.safetensors", pixel_map(2))  # a fast "network": the baseline is the subject
    result = invoke("eval", "--data", str(tiny_set), "-w", str(weights), "--baseline", "rpr2", "--json", str(report),
                    "-q")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    data = json.loads(report.read_text())
    facts = data["settings"]["baselines"]["rpr2"]
    assert facts["ridge"] == fit.ridge and facts["fit_images"] == 9 and facts["fit_space"] == "ntire2020-clean"
    np.testing.assert_array_equal(facts["matrix_6x31"], fit.matrix)
    images = data["methods"]["rpr2"]["images"]
    assert [image["name"] for image in images] == [pair.name for pair in discover(tiny_set)]
    for pair, image in zip(discover(tiny_set), images, strict=True):
        rgb = read_rgb(pair.rgb).pixels / 255.0
        direct = (root_polynomial_terms(rgb, 2) @ fit.matrix).astype(np.float32)
        expected = score(direct, read_cube(pair.cube)[0])
        assert image["mrae"] == pytest.approx(expected.mrae, rel=1e-6)
        assert image["sam"] == pytest.approx(expected.sam, rel=1e-5)
    assert data["methods"]["rpr2"]["summary"]["mrae_mean"] < 0.5


def test_train_model_rpr2_writes_the_baselines_map_and_eval_runs_it(tiny_set, tmp_path):
    run = tmp_path / "run"
    result = invoke("train", "--model", "rpr2", "--data", str(tiny_set), "-o", str(run))
    assert result.exit_code == 0, result.stderr
    assert "fitted rpr2 on 9 images" in result.stderr and "wrote" in result.stderr
    weights = load_weights(run / "best.safetensors")
    inputs, targets, _ = training_samples(discover(tiny_set, split="train"), input_space="ntire2020-clean")
    fit = fit_with_validation(inputs, targets, 2)
    np.testing.assert_array_equal(weights.matrix.numpy(), fit.matrix.astype(np.float32))
    assert weights.meta.ridge == fit.ridge and weights.meta.training["track"] == "clean"
    assert weights.meta.training["valid_mrae"] == fit.scores[fit.ridge]
    report = tmp_path / "r.json"
    result = invoke("eval", "--data", str(tiny_set), "-w", str(run / "best.safetensors"), "--baseline", "rpr2",
                    "--json", str(report), "-q")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    methods = json.loads(report.read_text())["methods"]
    # the shipped map (float32) scores what the float64 baseline scores
    assert methods["network"]["summary"]["mrae_mean"] == pytest.approx(methods["rpr2"]["summary"]["mrae_mean"], 1e-5)


def test_train_refuses_the_networks_options_for_a_map(tmp_path):
    result = invoke("train", "--model", "rpr3", "--data", str(tmp_path), "--max-steps", "10")
    assert result.exit_code == 2
    assert "--max-steps: trains the network; --model rpr3 is a closed-form fit" in result.stderr


# --- info, the bundled map, what a map cannot do -----------------------------------------------------------


def test_info_describes_the_map():
    result = invoke("info", "-w", "rpr2-clean-provisional", "--json")
    assert result.exit_code == 0, result.stderr
    facts = json.loads(result.stdout)
    assert (facts["kind"], facts["degree"], facts["matrix"]) == ("root-polynomial", 2, "6×31 (186 values)")
    assert facts["terms"] == "r, g, b, √(rg), √(gb), √(rb)"
    assert facts["windowing"] == {"window": 1, "stride": 1, "pad": 0, "edge": 0}
    assert facts["weights_version"] == "rpr2-clean-provisional-1" and facts["input_space"] == "ntire2020-clean"
    assert "rpr2-clean-provisional" in facts["bundled_weights"]
    table = invoke("info", "-w", "rpr2-clean-provisional").stdout
    assert "root-polynomial regression, degree 2" in table and "provisional" in table


def test_the_bundled_map_and_its_card():
    entry = BUNDLED["rpr2-clean-provisional"]
    weights = load_weights(entry.name)
    assert isinstance(weights, PixelMapWeights) and sha256_of(weights.path) == entry.sha256
    assert weights.meta.provenance["status"].startswith("provisional")
    card = (ROOT / "weights" / "README.md").read_text()
    section = re.split(r"^# Model card: ", card, flags=re.MULTILINE)
    (mine,) = [s for s in section if "(bundled name `rpr2-clean-provisional`" in s]
    assert entry.filename in mine and entry.sha256 in mine and weights.meta.provenance["dataset"] in mine
    scores = weights.meta.metrics["synthetic valid, clean rendering"]
    assert f"{scores['mrae_mean']:.4f}" in mine


def test_what_a_map_cannot_do_is_one_line(tiny_set, tmp_path):
    result = invoke("export", "--onnx", str(tmp_path / "m.onnx"), "-w", "rpr2-clean-provisional")
    assert result.exit_code == 2 and "a per-pixel map has no network to export" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "m.onnx").exists()
    path = tmp_path / "map.safetensors"
    saved(path, pixel_map(2))
    result = invoke("train", "--data", str(tiny_set), "-o", str(tmp_path / "run"), "--init", str(path))
    assert result.exit_code == 3 and "a per-pixel root-polynomial map, not a network to start from" in result.stderr


def test_meta_json_round_trip():
    meta = PixelMapMeta(degree=3, weights_version="x", ridge=1e-6, training={"a": 1})
    assert PixelMapMeta.from_json(meta.to_json()) == meta


# --- maps for one kind of light: `train --light`, the bundled rpr2-daylight … rpr2-led -------------------------

LIGHT_MAPS = {"daylight": "rpr2-daylight", "incandescent": "rpr2-incandescent", "fluorescent": "rpr2-fluorescent",
              "LED": "rpr2-led"}  # fmt: skip


def test_a_map_for_one_light_is_fitted_on_that_lights_scenes_only(tiny_set, tmp_path):
    """`--light daylight` fits on the 6 daylight training scenes of the 9 (synth.json says which), and gives the
    matrix the same fit on exactly those scenes gives."""
    lit = [pair for pair in discover(tiny_set, split="train") if main_lights(tiny_set)[pair.name] == "daylight"]
    assert len(lit) == 6
    result = invoke("train", "--model", "rpr2", "--light", "daylight", "--data", str(tiny_set), "-o",
                    str(tmp_path / "day.safetensors"))  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert "fitted rpr2 for scenes lit by daylight on 6 images" in result.stderr
    weights = load_weights(tmp_path / "day.safetensors")
    assert weights.meta.training["light"] == "daylight" and weights.meta.training["fit_images"] == 6
    inputs, targets, _ = training_samples(lit, input_space="ntire2020-clean")
    np.testing.assert_allclose(weights.matrix.numpy(), fit_with_validation(inputs, targets, 2).matrix, rtol=1e-5,
                               atol=1e-6)  # fmt: skip
    everything = fit_pixel_map(tiny_set, 2)
    assert "light" not in everything.meta.training and everything.meta.training["fit_images"] == 9


def test_what_a_map_for_one_light_refuses_is_one_line(tiny_set, tmp_path):
    bare = tmp_path / "bare"
    shutil.copytree(tiny_set, bare)
    (bare / "synth.json").unlink()
    cases = [
        (["--model", "rpr2", "--light", "daylight", "--data", str(bare)], 4, "needs each scene's light"),
        (["--model", "rpr2", "--light", "LED", "--data", str(tiny_set)], 0, ""),  # one LED scene: fits
        (["--data", str(tiny_set), "--light", "LED"], 2, "--light: fits a per-pixel map"),
        (["--model", "rpr2", "--light", "sodium", "--data", str(tiny_set)], 2, "sodium"),
    ]
    for index, (args, code, words) in enumerate(cases):
        result = invoke("train", *args, "-o", str(tmp_path / f"out{index}.safetensors"))
        assert result.exit_code == code, (args, result.stderr)
        if code:
            assert words in result.stderr and len(result.stderr.strip().splitlines()) <= 2, result.stderr
            assert not (tmp_path / f"out{index}.safetensors").exists()
    with pytest.raises(ValueError, match=r"no training scene lit by fluorescent light \(it has: daylight 6\)"):
        pairs_lit_by(tiny_set, [p for p in discover(tiny_set, split="train") if "0004" not in p.name
                                and "0005" not in p.name and "0001" not in p.name], "fluorescent")  # fmt: skip


@pytest.mark.parametrize("light", LIGHT_MAPS)
def test_each_bundled_light_map_and_its_card(light):
    entry = BUNDLED[LIGHT_MAPS[light]]
    weights = load_weights(entry.name)
    assert isinstance(weights, PixelMapWeights) and sha256_of(weights.path) == entry.sha256
    assert weights.meta.training["light"] == light and f"--light {light}" in weights.meta.provenance["command"]
    (key,) = weights.meta.metrics
    assert key.endswith(f"scenes lit by {light} (pixels pooled)") and weights.meta.metrics[key]["images"] >= 20
    card = (ROOT / "weights" / "README.md").read_text()
    (mine,) = [s for s in re.split(r"^# Model card: ", card, flags=re.MULTILINE) if "light by light" in s[:400]]
    assert entry.filename in mine and f"`{entry.name}` `{entry.sha256}`" in mine
    assert weights.meta.provenance["dataset"] in mine


def test_the_map_for_a_scenes_light_beats_the_others_on_it(tiny_set):
    """Scenes none of the maps saw (recipe 1, not recipe 3), each lit by one kind: that kind's map has the lowest
    MRAE and spectral angle of the four."""
    lights = main_lights(tiny_set)
    pairs = {pair.name: pair for split in ("train", "valid") for pair in discover(tiny_set, split=split)}
    for name in ("ARAD_HS_0001", "ARAD_HS_0004", "ARAD_HS_0010"):
        rgb, truth = read_rgb(pairs[name].rgb).pixels, read_cube(pairs[name].cube)[0]
        scores = {kind: score(reconstruct(rgb, weights=bundled), truth) for kind, bundled in LIGHT_MAPS.items()}
        own = lights[name]
        assert min(scores, key=lambda kind: scores[kind].mrae) == own, (name, scores)
        assert min(scores, key=lambda kind: scores[kind].sam) == own, (name, scores)
