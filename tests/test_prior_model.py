"""Design (b) of issue 24: the network over a per-pixel root-polynomial prior (``LWRDANConfig.prior_degree``).

What it promises: untrained, it is exactly its prior; the prior's matrix travels in the weights file and
loading rebuilds it; training fits the prior on the training split before the first step; the authors'
network is untouched (no prior, same metadata).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from test_cli import assert_clean_failure, hsrecon
from test_data_ntire import make_ntire2020

from hsrecon.data import discover
from hsrecon.model import LWRDAN, LWRDANConfig, count_parameters
from hsrecon.pixelmap import RootPolynomialMap, choose_ridge, root_polynomial_terms
from hsrecon.train import TrainConfig, _mrae, _sample_pixels, fit_prior, train
from hsrecon.weights import WeightsError, load_weights, make_meta, save_weights

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
    facts = fit_prior(model, train_pairs, valid_pairs, seed=4)
    ridge, matrix, scores = choose_ridge(_sample_pixels(train_pairs, 4), _sample_pixels(valid_pairs, 5), 2, _mrae)
    assert facts["ridge"] == ridge and facts["valid_mrae"] == scores[ridge]
    np.testing.assert_allclose(model.prior.matrix.numpy(), matrix, rtol=1e-6)
    rgb, _ = _sample_pixels(valid_pairs, 5)
    with torch.no_grad():
        out = RootPolynomialMap(matrix, 2)(torch.from_numpy(rgb.T.reshape(1, 3, 1, -1).copy()).float())
    np.testing.assert_allclose(out.numpy().reshape(31, -1).T, root_polynomial_terms(rgb, 2) @ matrix, rtol=1e-4,
                               atol=1e-6)  # fmt: skip

    config = TrainConfig(data=tiny_set, output=tmp_path / "run", steps=2, batch_size=2, validate_every=2,
                         checkpoint_every=2, model={**SMALL, "prior_degree": 2}, seed=4)  # fmt: skip
    train(config)
    weights = load_weights(tmp_path / "run" / "last.safetensors")
    assert weights.meta.config.prior_degree == 2
    assert "'ridge'" in weights.meta.training["prior_fit"]
    assert torch.count_nonzero(weights.state_dict["prior.matrix"]) == 6 * 31


def test_prior_cli_choices_and_conflicts(tiny_set, tmp_path):
    assert_clean_failure(hsrecon("train", "--data", str(tiny_set), "-o", str(tmp_path / "a"), "--prior", "rpr4"),
                         2, "--prior 'rpr4': choose from rpr2, rpr3")  # fmt: skip
    assert_clean_failure(
        hsrecon("train", "--data", str(tiny_set), "-o", str(tmp_path / "b"), "--prior", "rpr2", "--init",
                "ntire2020-clean"), 2, "cannot start from --init",
    )  # fmt: skip
