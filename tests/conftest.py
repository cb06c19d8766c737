"""Shared fixtures: the bundled model, and the authors' Keras file where the checkout has ../shared."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from hsrecon.weights import load_weights
from tools import chromium

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
KERAS_REFERENCE = ROOT.parent / "shared" / "reference" / "lwrdan_ntire2020_clean_keras.hdf5"


@pytest.fixture(scope="session")
def bundled_weights():
    """The authors' weights (``ntire2020-clean``), which most tests pin: the port, its windows and facts."""
    return load_weights("ntire2020-clean")


@pytest.fixture(scope="session")
def bundled_model(bundled_weights):
    return bundled_weights.build()


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory):
    """hsrecon's per-user cache (hsrecon.cache) in a folder of this test session's, for the library and the
    commands it starts alike: tests never read what an earlier session (or the user's runs) left there."""
    previous = os.environ.get("HSRECON_CACHE_DIR")
    os.environ["HSRECON_CACHE_DIR"] = str(tmp_path_factory.mktemp("hsrecon-cache"))
    yield
    if previous is None:
        os.environ.pop("HSRECON_CACHE_DIR", None)
    else:
        os.environ["HSRECON_CACHE_DIR"] = previous


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


# --- headless Chromium, for the browser tests (test_view_browser.py, test_report.py) ---------------------

ARTIFACTS = ROOT / "artifacts"  # screenshots the browser tests keep (git-ignored)


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium driven by Playwright (its own browser download is never used); skipped, with the
    reason, where Playwright or Chromium is missing, unless HSRECON_REQUIRE_CHROMIUM is set (.ci/run
    installs both and sets it, so there a missing browser fails instead of skipping)."""
    missing = pytest.fail if os.environ.get("HSRECON_REQUIRE_CHROMIUM") else pytest.skip  # CI sets it
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("playwright is not installed (pip install '.[test]')")
    executable = chromium.executable()
    if executable is None:
        missing("no Chromium found: apt-get install chromium (as .ci/run does), or set HSRECON_CHROMIUM")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=chromium.FLAGS)
        yield launched
        launched.close()


def keep_screenshot(page, name: str) -> Path:
    """Save a screenshot under artifacts/ (CI keeps it) and return its path."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path))
    return path


# --- cube files for the viewer and report tests --------------------------------------------------------

WAVELENGTHS = np.arange(400.0, 701.0, 10.0)


def write_cube(stem: Path, fmt: str, cube: np.ndarray, **options) -> Path:
    """Write ``cube`` (H×W×31) as ``stem`` in ``fmt`` with hsrecon's writer; the file a reader opens."""
    from hsrecon.io import open_cube_writer

    height, width, _ = cube.shape
    with open_cube_writer(stem, fmt, height=height, width=width, wavelengths_nm=WAVELENGTHS, **options) as writer:
        writer.write_rows(0, cube)
    return writer.paths[-1] if fmt == "envi" else writer.paths[0]
