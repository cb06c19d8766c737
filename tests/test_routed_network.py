"""A network whose per-pixel prior is routed by the image's light (``hsrecon.lightroute``): its file, its
per-image prior in convert and eval, its training (``--init`` a routed file, ``--light``), and what refuses it."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from test_pixelweights import assert_refused_in_one_line
from typer.testing import CliRunner

from hsrecon.cli import app
from hsrecon.data import discover
from hsrecon.data.synth import make_synthetic_dataset
from hsrecon.export import export_onnx
from hsrecon.groups import main_lights
from hsrecon.io import read_cube
from hsrecon.lightroute import FEATURE_NAMES, LightRouter, light_features
from hsrecon.model import over_prior, with_prior_matrix
from hsrecon.pipeline import convert_file, reconstruct
from hsrecon.train import Routing, TrainConfig, _lit_by
from hsrecon.weights import (
    PRIOR_ROUTES_KEY,
    Weights,
    describe,
    load_model,
    load_weights,
    make_meta,
    save_weights,
)

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args))


def router() -> LightRouter:
    """Reddish images (log R/G of all pixels above 0) go to the second route; no other feature counts."""
    coef = np.zeros((2, len(FEATURE_NAMES)))
    coef[1, 0] = 8.0
    return LightRouter(("daylight", "incandescent"), np.zeros(8), np.ones(8), coef, np.zeros(2))


def routed_network(path: Path, seed: int = 7) -> Path:
    """The authors' network at a quarter of the output over a routed prior whose two matrices differ."""
    rng = np.random.default_rng(seed)
    routes = torch.from_numpy(rng.uniform(0.0, 0.25, (2, 6, 31))).float()
    model = over_prior(load_model("ntire2020-clean"), routes.mean(0) / 0.75, 2, network_share=0.25)
    source = load_weights("ntire2020-clean").meta
    meta = make_meta(model, window_size=source.window_size, input_space=source.input_space, weights_version="t",
                     routing=router().to_json())  # fmt: skip
    return save_weights(path, model.state_dict() | {PRIOR_ROUTES_KEY: routes}, meta)


def tinted(rng: np.random.Generator, tint: list[float], size: tuple[int, int] = (40, 52)) -> np.ndarray:
    return (rng.uniform(40, 140, (*size, 1)) * np.array(tint)).clip(0, 255).astype(np.uint8)


def without_routes(weights: Weights, matrix: torch.Tensor) -> Weights:
    """The same network with one fixed prior matrix: what the routed one should run for an image."""
    state = weights.state_dict | {"prior.matrix": matrix}
    return Weights(path=None, meta=replace(weights.meta, routing={}), state_dict=state, tuned=weights.tuned)


def test_each_image_runs_the_network_over_its_blended_prior(tmp_path):
    rng = np.random.default_rng(3)
    weights = load_weights(routed_network(tmp_path / "routed.safetensors"))
    assert weights.router.routes == ("daylight", "incandescent") and weights.routes.shape == (2, 6, 31)
    cubes = []
    for tint, route in (([1.6, 1.0, 0.6], "incandescent"), ([0.6, 1.0, 1.5], "daylight")):
        rgb = tinted(rng, tint)
        posterior = weights.router.posterior(light_features(rgb.reshape(-1, 3) / 255.0))
        assert posterior.max() > 0.95  # one route clearly, so the two images' priors differ
        chosen = weights.predictor().for_image(rgb, weights.transform(rgb, None))
        assert chosen.light[route] > 0.95 and chosen.for_image(rgb, weights.transform(rgb, None)) is chosen
        matrix = torch.einsum("k,kij->ij", torch.from_numpy(posterior).float(), weights.routes)
        expected = reconstruct(rgb, without_routes(weights, matrix))
        cube = reconstruct(rgb, weights)
        np.testing.assert_allclose(cube, expected, rtol=1e-5, atol=1e-6)
        cubes.append(cube)
    every_light = reconstruct(rgb, without_routes(weights, weights.state_dict["prior.matrix"]))
    assert np.abs(cubes[1] - every_light).max() > 1e-3  # the route changed the cube


def test_convert_records_the_light_the_router_read_and_runs_its_prior(tmp_path):
    weights = load_weights(routed_network(tmp_path / "routed.safetensors"))
    rgb = tinted(np.random.default_rng(4), [1.6, 1.0, 0.6], (24, 28))
    iio.imwrite(tmp_path / "warm.png", rgb)
    result = convert_file(tmp_path / "warm.png", tmp_path / "out" / "warm", weights=weights, formats=("h5",))
    cube, _, attrs = read_cube(result.outputs[0])
    route, share = attrs["light"].split(", ")[1].split()
    assert route == "incandescent" and float(share) > 0.95, attrs["light"]
    np.testing.assert_allclose(cube, reconstruct(rgb, weights), rtol=1e-5, atol=1e-6)


def test_with_prior_matrix_shares_every_other_layer():
    model = load_model("clean-v3")
    matrix = torch.ones(6, 31)
    routed = with_prior_matrix(model, matrix)
    assert routed.dense is model.dense and routed.unet is model.unet and routed.prior is not model.prior
    assert torch.equal(routed.prior.matrix, matrix) and not torch.equal(model.prior.matrix, matrix)
    with pytest.raises(ValueError, match="no per-pixel prior"):
        with_prior_matrix(load_model("ntire2020-clean"), matrix)


def test_the_file_round_trips_and_an_unrouted_file_reads_as_before(tmp_path):
    path = routed_network(tmp_path / "routed.safetensors")
    weights = load_weights(path)
    again = save_weights(tmp_path / "again.safetensors", weights.file_tensors, weights.meta)
    assert again.read_bytes() == path.read_bytes()
    plain = load_weights("clean-v3")
    assert plain.routes is None and plain.router is None and "routing" not in json.loads(plain.meta.to_json())
    carried = Weights.from_model(weights.build())
    assert carried.meta.routing == weights.meta.routing and torch.equal(carried.routes, weights.routes)
    facts = describe(weights, "cpu")
    assert facts["prior_routes"].startswith("daylight, incandescent: the prior's maps weighed per image")
    assert "prior_routes" not in describe(plain, "cpu")


def _craft(path: Path, change, tensors_change=None) -> Path:
    good = load_weights(routed_network(path.with_name("good.safetensors")))
    meta = json.loads(good.meta.to_json())
    change(meta)
    tensors = good.file_tensors
    if tensors_change is not None:
        tensors_change(tensors)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path), metadata={"hsrecon": json.dumps(meta)})
    return path


def _unprior(meta: dict) -> None:
    meta["config"].pop("prior_degree")


@pytest.mark.parametrize(
    ("change", "tensors_change", "message"),
    [
        (_unprior, None, "routing: only a network with a per-pixel prior"),
        (lambda m: None, lambda t: t.pop(PRIOR_ROUTES_KEY), "routed weights without their 'prior.routes' tensor"),
        (lambda m: None, lambda t: t.update({PRIOR_ROUTES_KEY: torch.zeros(3, 6, 31)}), "prior.routes has shape"),
        (lambda m: None, lambda t: t.update({PRIOR_ROUTES_KEY: torch.full((2, 6, 31), float("nan"))}), "NaN"),
        (lambda m: m.pop("routing"), None, "1 unexpected"),
        (lambda m: m["routing"].update(coef=[[0.0] * 8]), None, "routing.coef: expected 2 rows"),
        (lambda m: m["routing"].update(features=[f"f{i}" for i in range(8)]), None, "not the features"),
    ],
)
def test_the_loader_refuses_a_crafted_routed_network_in_one_line(tmp_path, change, tensors_change, message):
    assert_refused_in_one_line(_craft(tmp_path / "crafted.safetensors", change, tensors_change), message)


def test_onnx_export_refuses_a_routed_prior(tmp_path):
    path = routed_network(tmp_path / "routed.safetensors")
    with pytest.raises(ValueError, match="prior is routed"):
        export_onnx(path, tmp_path / "x.onnx")
    result = invoke("export", "--weights", str(path), "--onnx", str(tmp_path / "x.onnx"))
    assert result.exit_code == 2 and "chosen per image" in result.stderr and not (tmp_path / "x.onnx").exists()


def test_training_adds_each_windows_routed_prior_to_the_models_own(tmp_path):
    """The loss sees, for each window, the network over its own image's blended prior: what convert runs."""
    weights = load_weights(routed_network(tmp_path / "routed.safetensors"))
    model = weights.build()
    routing = Routing(router=weights.router, routes=weights.routes)
    rgb = torch.rand(2, 3, 16, 16)
    posterior = torch.tensor([[0.9, 0.1], [0.2, 0.8]])
    with torch.no_grad():
        routed = model(rgb) + routing.offset(model.prior, rgb, posterior)
        for index in range(2):
            matrix = torch.einsum("k,kij->ij", posterior[index], weights.routes)
            alone = with_prior_matrix(model, matrix)(rgb[index : index + 1])
            torch.testing.assert_close(routed[index : index + 1], alone, rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def lit_set(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "lit"
    make_synthetic_dataset(out, scenes=12, size=(64, 64), seed=3, camera=None, valid_fraction=0.25)
    return out


def test_light_filters_the_scenes_a_network_trains_and_validates_on(lit_set):
    kinds = main_lights(lit_set)
    pairs = discover(lit_set, split="train")
    daylight = _lit_by(lit_set, pairs, ["daylight"])
    assert daylight and all(kinds[pair.name] == "daylight" for pair in daylight)
    both = _lit_by(lit_set, pairs, ["daylight", "incandescent"])
    assert [p.name for p in both] == [p.name for p in pairs if kinds[p.name] in ("daylight", "incandescent")]
    assert _lit_by(lit_set, pairs, []) == pairs
    with pytest.raises(ValueError, match="no training scene lit by fluorescent"):
        _lit_by(lit_set, daylight, ["fluorescent"])
    with pytest.raises(ValueError, match="no training scene lit by fluorescent"):
        _lit_by(lit_set, daylight, ["daylight", "fluorescent"])
    assert _lit_by(lit_set, daylight, ["daylight", "fluorescent"], every=False) == daylight


def test_train_from_a_routed_network_keeps_its_routes(lit_set, tmp_path):
    init = routed_network(tmp_path / "routed.safetensors")
    run = tmp_path / "run"
    result = invoke("train", "--data", str(lit_set), "-o", str(run), "--init", str(init), "--light", "daylight",
                    "--light", "incandescent", "--max-steps", "2", "--validate-every", "2", "--batch-size", "2",
                    "--samples-per-image", "1", "--ssim-weight", "0", "--mrae-weight", "1",
                    "--device", "cpu")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    trained, start = load_weights(run / "last.safetensors"), load_weights(init)
    assert trained.meta.routing == start.meta.routing and torch.equal(trained.routes, start.routes)
    assert torch.equal(trained.state_dict["prior.matrix"], start.state_dict["prior.matrix"])  # fixed in training
    assert trained.meta.training["lights"] == "['daylight', 'incandescent']"
    config = TrainConfig(data=lit_set, output=run, lights=("daylight",))
    assert config.lights == ["daylight"]


def test_what_light_refuses_for_a_network_is_one_line(lit_set, tmp_path):
    for args, words in (
        (["--light", "auto"], "--light auto: the network's prior is routed when its --init weights are"),
        (["--light", "fluorescent"], "no training scene lit by fluorescent"),
        (["--model", "rpr2", "--light", "daylight", "--light", "LED"], "a per-pixel map is fitted for one kind"),
    ):
        result = invoke("train", "--data", str(lit_set), "-o", str(tmp_path / "out"), "--max-steps", "1", *args)
        assert result.exit_code in (2, 4) and words in result.stderr, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) <= 2, result.stderr


def test_package_weights_routes_the_fitted_maps_share_under_the_network(lit_set, tmp_path):
    """``--light auto --over``: the fitted map's share becomes one matrix per route (the routed fit's), the
    ``--mix`` map stays under every route, and the file says how to route (clean-v3-auto's start)."""
    import subprocess
    import sys

    from hsrecon.pixelfit import fit_routed_map

    out = tmp_path / "routed.safetensors"
    command = [sys.executable, "-m", "tools.package_weights", "--fit", "rpr2", "--light", "auto", "--over",
               "ntire2020-clean", "--network-share", "0.25", "--mix", "rpr2-clean-provisional=0.3", "--data",
               str(lit_set), "-o", str(out), "--version", "routed-1",
               "--dataset-command", "made by the test"]  # fmt: skip
    root = Path(__file__).resolve().parent.parent
    result = subprocess.run(command, capture_output=True, text=True, cwd=root, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    routed, fitted = load_weights(out), fit_routed_map(lit_set, 2)
    assert routed.meta.routing == fitted.meta.routing and "--light auto" in routed.meta.provenance["packaged_by"]
    provisional = load_weights("rpr2-clean-provisional").matrix
    torch.testing.assert_close(routed.routes, 0.45 * fitted.routes + 0.3 * provisional, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(routed.state_dict["prior.matrix"], 0.45 * fitted.matrix + 0.3 * provisional)
