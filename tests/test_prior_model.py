"""Design (b) of issue 24: the network over a per-pixel root-polynomial prior (``LWRDANConfig.prior_degree``).

What it promises: untrained, it is exactly its prior; the prior's matrix travels in the weights file and
loading rebuilds it; training fits the prior on the training split before the first step; the authors'
network is untouched (no prior, same metadata).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from test_cli import assert_clean_failure, hsrecon
from test_data_ntire import make_ntire2020

from hsrecon.data import discover
from hsrecon.data.patches import load_pair
from hsrecon.evaluate import fit_root_polynomial_baseline
from hsrecon.model import LWRDAN, LWRDANConfig, count_parameters, over_prior
from hsrecon.pixelmap import RootPolynomialMap, root_polynomial_terms
from hsrecon.train import TrainConfig, _build_model, fit_prior, train
from hsrecon.weights import BUNDLED, WeightsError, load_weights, make_meta, save_weights

SMALL = {"widths": (4, 8, 16), "dense_width": 8, "blocks": (1, 1, 1, 1, 1)}


def _prior_model(degree: int = 2) -> LWRDAN:
    model = LWRDAN(LWRDANConfig(**SMALL, prior_degree=degree)).eval()
    with torch.no_grad():
        model.prior.matrix.copy_(torch.randn_like(model.prior.matrix))
    return model


def test_untrained_it_is_its_prior():
    model = _prior_model(3)
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), model.prior(x), rtol=0, atol=0)
    assert model.prior.matrix.shape == (13, 31)


def test_the_prior_travels_in_the_weights_file(tmp_path):
    model = _prior_model(2)
    torch.nn.init.normal_(model.fusion.weight, std=0.01)  # a trained network corrects its prior
    meta = make_meta(model, window_size=64, input_space="ntire2020-clean", weights_version="prior-test")
    path = save_weights(tmp_path / "prior.safetensors", model.state_dict(), meta)
    loaded = load_weights(path)
    assert loaded.meta.config.prior_degree == 2
    assert loaded.meta.num_params == count_parameters(model) == count_parameters(LWRDAN(LWRDANConfig(**SMALL))) + 186
    rebuilt = loaded.build()
    torch.testing.assert_close(rebuilt.prior.matrix, model.prior.matrix, rtol=0, atol=0)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), model(x), rtol=0, atol=0)
        fast = loaded.inference_model()(x)
    torch.testing.assert_close(fast, model(x), rtol=1e-4, atol=1e-5)


def test_the_authors_network_has_no_prior(bundled_weights):
    assert "prior_degree" not in LWRDANConfig().to_dict()
    assert bundled_weights.meta.config.prior_degree == 0
    assert not any(key.startswith("prior.") for key in bundled_weights.state_dict)


@pytest.mark.parametrize("degree", [4, -1, 2.5])
def test_a_crafted_prior_degree_is_one_line(tmp_path, degree):
    model = _prior_model(2)
    meta = json.loads(make_meta(model, window_size=64, input_space="ntire2020-clean", weights_version="x").to_json())
    meta["config"]["prior_degree"] = degree
    path = tmp_path / "crafted.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, path, metadata={"hsrecon": json.dumps(meta)})
    with pytest.raises(WeightsError, match=r"config\.prior_degree") as caught:
        load_weights(path)
    assert "\n" not in str(caught.value)


@pytest.fixture()
def tiny_set(tmp_path):
    return make_ntire2020(tmp_path / "data", np.random.default_rng(8), train=(1, 2, 3), valid=(451,), shape=(64, 64))


def test_training_fits_the_prior_on_the_training_split_first(tiny_set, tmp_path):
    model = LWRDAN(LWRDANConfig(**SMALL, prior_degree=2))
    train_pairs, valid_pairs = discover(tiny_set, "train"), discover(tiny_set, "valid")
    facts = fit_prior(model, train_pairs)
    fit = fit_root_polynomial_baseline(train_pairs, degree=2, input_space="ntire2020-clean").fit
    assert facts["ridge"] == fit.ridge and facts["valid_mrae"] == fit.scores[fit.ridge]
    np.testing.assert_allclose(model.prior.matrix.numpy(), fit.matrix, rtol=1e-6)
    rgb = load_pair(valid_pairs[0])[0].reshape(-1, 3).astype(np.float64)  # what training feeds: value/max
    with torch.no_grad():
        out = RootPolynomialMap(fit.matrix, 2)(torch.from_numpy(rgb.T.reshape(1, 3, 1, -1).copy()).float())
    np.testing.assert_allclose(out.numpy().reshape(31, -1).T, root_polynomial_terms(rgb, 2) @ fit.matrix, rtol=1e-4,
                               atol=1e-6)  # fmt: skip

    config = TrainConfig(data=tiny_set, output=tmp_path / "run", steps=2, batch_size=2, validate_every=2,
                         checkpoint_every=2, model={**SMALL, "prior_degree": 2}, seed=4)  # fmt: skip
    train(config)
    weights = load_weights(tmp_path / "run" / "last.safetensors")
    assert weights.meta.config.prior_degree == 2
    assert "'ridge'" in weights.meta.training["prior_fit"]
    assert torch.count_nonzero(weights.state_dict["prior.matrix"]) == 6 * 31


def test_prior_cli_rejects_unknown_degree(tiny_set, tmp_path):
    assert_clean_failure(hsrecon("train", "--data", str(tiny_set), "-o", str(tmp_path / "a"), "--prior", "rpr4"),
                         2, "--prior 'rpr4': choose from rpr2, rpr3")  # fmt: skip


def test_prior_over_init_keeps_features_and_starts_as_its_prior(tiny_set, tmp_path):
    """--prior with --init (design (b) fine-tuned): the authors' features kept, the correction zeroed."""
    config = TrainConfig(data=tiny_set, output=tmp_path / "run", init="ntire2020-clean", model={"prior_degree": 2})
    model, needs_fit = _build_model(config)
    loaded = load_weights("ntire2020-clean").state_dict
    assert needs_fit
    assert torch.count_nonzero(model.fusion.weight) == 0 and torch.count_nonzero(model.fusion.bias) == 0
    kept = [name for name in loaded if not name.startswith("fusion.")]
    assert kept and all(torch.equal(model.state_dict()[name], loaded[name]) for name in kept)


# --- a network over a prior at a share: over_prior, and the bundled clean-v3 ---------------------------------


@pytest.mark.parametrize("share", [0.0, 0.35, 1.0])
def test_over_prior_is_the_share_weighted_mixture_of_network_and_map(share):
    torch.manual_seed(3)
    network = LWRDAN(LWRDANConfig(**SMALL)).eval()
    matrix = torch.randn(6, 31)
    x = torch.rand(2, 3, 32, 32)
    mixed = over_prior(network, matrix, 2, network_share=share)
    with torch.no_grad():
        expected = share * network(x) + (1 - share) * RootPolynomialMap(matrix, 2)(x)
        got = mixed.eval()(x)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    assert mixed.config.prior_degree == 2 and network.config.prior_degree == 0  # the network is left alone
    assert not mixed.training  # the mode it was given


def test_over_prior_refuses_a_share_out_of_range_and_a_network_with_a_prior():
    network = LWRDAN(LWRDANConfig(**SMALL))
    with pytest.raises(ValueError, match=r"share must be in \[0, 1\], got 1.5"):
        over_prior(network, torch.zeros(6, 31), 2, network_share=1.5)
    with pytest.raises(ValueError, match="already has a per-pixel prior"):
        over_prior(_prior_model(), torch.zeros(6, 31), 2, network_share=0.5)


def test_clean_v3_is_the_authors_network_at_its_share_over_its_map(bundled_weights):
    """The bundled blend, checked against its parts on a real example: 0.35 × the authors' network (their
    tensors, but for the last convolution's scale) + the map its prior holds (0.45 × the v3 fit + 0.3 ×
    rpr2-clean-provisional)."""
    from hsrecon.io.rgb import read_rgb
    from hsrecon.pipeline import reconstruct
    from hsrecon.pixelweights import PixelMapWeights

    blend = load_weights("clean-v3")
    share = blend.meta.training["network_share"]
    assert share == 0.25 and blend.meta.training["init"] == "ntire2020-clean"
    assert blend.meta.training["prior_fit"]["data"] == "v3train"
    authors = bundled_weights.state_dict
    for name, tensor in blend.state_dict.items():
        if name.startswith("fusion."):
            torch.testing.assert_close(tensor, share * authors[name], rtol=1e-6, atol=0)
        elif name != "prior.matrix":
            assert torch.equal(tensor, authors[name]), name
    recipe_1 = load_weights("rpr2-clean-provisional")
    assert blend.meta.training["mixed_maps"] == {"rpr2-clean-provisional": BUNDLED["rpr2-clean-provisional"].sha256}
    assert blend.meta.training["prior_fit"]["fit_images"] == 1800  # v3train's training split
    shares = blend.meta.training["shares"]
    assert shares == {"network": 0.25, "rpr2 fitted on v3train": 0.45, "rpr2-clean-provisional": 0.3}
    v3_matrix = (blend.state_dict["prior.matrix"] - shares["rpr2-clean-provisional"] * recipe_1.matrix) / 0.45
    v3_map = PixelMapWeights.from_matrix(v3_matrix, 2)
    image = read_rgb(Path(__file__).resolve().parent.parent / "examples" / "clean" / "colorchecker_d65.png").pixels
    expected = 0.25 * reconstruct(image, bundled_weights) + 0.3 * reconstruct(image, recipe_1)
    expected += 0.45 * reconstruct(image, v3_map)
    got = reconstruct(image, blend)
    assert np.abs(got - expected).max() < 1e-5 * np.abs(expected).max()


def test_package_weights_mixes_the_network_and_maps_at_the_shares_given(tiny_set, tmp_path):
    """``tools/package_weights --over --network-share --mix``: the recipe clean-v3 was made with, on a tiny set."""
    import subprocess
    import sys

    from hsrecon.pixelfit import fit_pixel_map

    out = tmp_path / "mixed.safetensors"
    command = [sys.executable, "-m", "tools.package_weights", "--fit", "rpr2", "--over", "ntire2020-clean",
               "--network-share", "0.25", "--mix", "rpr2-clean-provisional=0.3", "--data", str(tiny_set),
               "-o", str(out), "--version", "mixed-1", "--dataset-command", "made by the test"]  # fmt: skip
    root = Path(__file__).resolve().parent.parent
    result = subprocess.run(command, capture_output=True, text=True, cwd=root, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    mixed = load_weights(out)
    assert mixed.meta.training["shares"] == {
        "network": 0.25,
        "rpr2 fitted on data": 0.45,
        "rpr2-clean-provisional": 0.3,
    }
    assert mixed.meta.metrics["synthetic valid, clean rendering"]["images"] == 1
    fitted = fit_pixel_map(tiny_set, 2).matrix
    expected = 0.45 * fitted + 0.3 * load_weights("rpr2-clean-provisional").matrix
    torch.testing.assert_close(mixed.state_dict["prior.matrix"], expected, rtol=1e-5, atol=1e-6)
    authors = load_weights("ntire2020-clean").state_dict
    torch.testing.assert_close(mixed.state_dict["fusion.weight"], 0.25 * authors["fusion.weight"])

    before = out.read_bytes()
    command[command.index("rpr2-clean-provisional=0.3")] = "rpr2-clean-provisional=0.8"  # 0.25 + 0.8 > 1
    result = subprocess.run(command, capture_output=True, text=True, cwd=root, timeout=600)
    assert result.returncode != 0 and "each map needs a positive share" in result.stderr
    assert out.read_bytes() == before  # refused before anything was written
