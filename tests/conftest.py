"""Shared fixtures: the bundled model, and the authors' Keras file where the checkout has ../shared."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from hsrecon.weights import load_weights

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
KERAS_REFERENCE = ROOT.parent / "shared" / "reference" / "lwrdan_ntire2020_clean_keras.hdf5"


@pytest.fixture(scope="session")
def bundled_weights():
    return load_weights()


@pytest.fixture(scope="session")
def bundled_model(bundled_weights):
    return bundled_weights.build()


@pytest.fixture()
def keras_reference_file() -> Path:
    """The authors' HDF5 (in ../shared/reference/, as CI lays it out); tests needing it skip elsewhere."""
    if not KERAS_REFERENCE.is_file():
        pytest.skip(f"{KERAS_REFERENCE} not present (CI provides ../shared)")
    return KERAS_REFERENCE


@pytest.fixture()
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture(autouse=True)
def _deterministic_torch():
    torch.manual_seed(0)
    yield
