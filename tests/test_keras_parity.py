"""The PyTorch port against the Keras model's own results (tests/fixtures/keras_reference.npz).

The fixture was made once by tools/make_keras_reference.py, which rebuilds the authors' graph in
TensorFlow/Keras from the HDF5 file's model_config. It holds final outputs *and* intermediates: with the
published weights the U-net's contribution to the output is numerically nil, so only the intermediates
can show that the U-net is ported right.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import FIXTURES
from hsrecon.keras_import import import_keras_model
from hsrecon.model import LWRDAN, fold_batchnorm

REFERENCE = np.load(FIXTURES / "keras_reference.npz")
META = json.loads(str(REFERENCE["meta"]))
SETS = META["input_sets"]
RDAB_MODULES = [
    "unet.enc1.blocks.0",
    "unet.enc1.blocks.1",
    "unet.enc2.blocks.0",
    "unet.enc2.blocks.1",
    "unet.bottleneck.blocks.0",
    "unet.bottleneck.blocks.1",
    "unet.dec2.blocks.0",
    "unet.dec2.blocks.1",
    "unet.dec1.blocks.0",
]
TAPS = {"coords": "coords", "K_x": "dense.head", "K_x_1": "unet.head"} | {
    f"rdab_{i}": name for i, name in enumerate(RDAB_MODULES)
}


def run_with_taps(model: LWRDAN, nhwc: np.ndarray) -> dict[str, np.ndarray]:
    """Run the model and capture the output of each tapped module, as NHWC like the fixture."""
    modules = dict(model.named_modules())
    captured: dict[str, torch.Tensor] = {}
    handles = [
        modules[path].register_forward_hook(lambda _m, _i, out, key=key: captured.__setitem__(key, out))
        for key, path in TAPS.items()
    ]
    try:
        with torch.no_grad():
            captured["op0"] = model(torch.from_numpy(nhwc).permute(0, 3, 1, 2))
    finally:
        for handle in handles:
            handle.remove()
    return {key: value.permute(0, 2, 3, 1).numpy() for key, value in captured.items()}


@pytest.fixture(scope="module")
def bundled_results(bundled_model):
    return {name: run_with_taps(bundled_model, REFERENCE[f"{name}/input"]) for name in SETS}


def test_fixture_covers_the_unet():
    # The noise input must drive the U-net's RDABs (else the intermediate checks would prove little).
    for i in range(9):
        assert np.abs(REFERENCE[f"noise64/rdab_{i}"]).max() > 0.01
    assert len(SETS) == 3


@pytest.mark.parametrize("name", SETS)
def test_final_output_matches_keras(bundled_results, name):
    ours, theirs = bundled_results[name]["op0"], REFERENCE[f"{name}/op0"]
    assert ours.shape == theirs.shape
    assert np.abs(ours - theirs).max() <= 1e-4


@pytest.mark.parametrize("name", SETS)
@pytest.mark.parametrize("tap", sorted(set(TAPS) - {"op0"}))
def test_intermediate_matches_keras(bundled_results, name, tap):
    ours, theirs = bundled_results[name][tap], REFERENCE[f"{name}/{tap}"]
    assert ours.shape == theirs.shape
    scale = np.abs(theirs).max()
    assert np.abs(ours - theirs).max() <= 1e-3 * scale


def test_folded_model_matches_keras(bundled_model):
    folded = fold_batchnorm(bundled_model)
    for name in SETS:
        out = run_with_taps(folded, REFERENCE[f"{name}/input"])["op0"]
        assert np.abs(out - REFERENCE[f"{name}/op0"]).max() <= 1e-4


def test_direct_import_matches_keras(keras_reference_file):
    """The HDF5 imported afresh (not the shipped safetensors) reproduces Keras too."""
    model = import_keras_model(keras_reference_file)
    results = run_with_taps(model, REFERENCE["noise64/input"])
    assert np.abs(results["op0"] - REFERENCE["noise64/op0"]).max() <= 1e-4
    for i in range(9):
        reference = REFERENCE[f"noise64/rdab_{i}"]
        assert np.abs(results[f"rdab_{i}"] - reference).max() <= 1e-3 * np.abs(reference).max()


def test_wrong_port_would_be_caught(bundled_model):
    """Swap the coordinate channels (a classic porting error): the fixture must notice."""
    import copy

    broken = copy.deepcopy(bundled_model)
    original = broken.coords.forward
    broken.coords.forward = lambda x: original(x)[:, [0, 1, 2, 4, 3]]
    out = run_with_taps(broken, REFERENCE["rect48x64/input"])["op0"]
    assert np.abs(out - REFERENCE["rect48x64/op0"]).max() > 10 * 1e-4  # ten times the tolerance
