"""The wheel carries the weights and their licence; installed hsrecon finds them without the source tree."""

from __future__ import annotations

import subprocess
import sys
import zipfile

import pytest

from conftest import ROOT


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    (path,) = out.glob("hsrecon-*.whl")
    return path


def test_wheel_contains_weights_card_and_licence(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in (
        "lwrdan_ntire2020_clean.safetensors",
        "lwrdan_clean_v3.safetensors",
        "lwrdan_camera.safetensors",
        "lwrdan_camera_l2.safetensors",
        "rpr2_clean_provisional.safetensors",
        "LICENSE-LightWeightModel",
        "README.md",
    ):
        assert f"hsrecon/_weights/{name}" in names
    assert not any(name.startswith("tests/") for name in names)


def test_installed_package_finds_bundled_weights(wheel, tmp_path):
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    code = (
        "from hsrecon.weights import load_weights as l; w = l(); print(w.path); print(w.meta.num_params); "
        "l('ntire2020-clean'); l('camera'); l('camera-l2'); "
        "print(l('rpr2-clean-provisional').path.parent == w.path.parent == l('rpr2-led').path.parent)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp_path,  # not the checkout: only the unpacked wheel is importable
        env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"},
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    path, count, same_folder = result.stdout.split()
    assert path.startswith(str(site / "hsrecon" / "_weights"))
    assert count == "233245" and same_folder == "True"  # the default: the authors' 233,059 values + its map's 186


def test_wheel_carries_the_viewers_page(wheel):
    """The page's files are loaded with importlib.resources; Plotly's script comes from the plotly package."""
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in ("index.html", "viewer.js", "viewer.css"):
        assert f"hsrecon/view/static/{name}" in names
