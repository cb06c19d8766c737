"""The shipped camera model's card tells the truth: ``hsrecon eval`` gives the numbers it quotes.

The synthetic validation split the card was scored on is regenerated here from its recipe
(``hsrecon synth --only valid``: each scene depends only on the seed and its number), evaluated in both
renderings with the bundled ``camera`` weights, and compared with the scores stored in the weights file
(written by ``tools/package_weights.py``) and with the table in ``weights/README.md``.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
from test_cli import hsrecon

from hsrecon.weights import BUNDLED, load_weights

ROOT = Path(__file__).resolve().parent.parent
RENDERINGS = {"realworld": "synthetic valid, realworld rendering", "clean": "synthetic valid, clean rendering"}


@pytest.fixture(scope="module")
def camera():
    return load_weights("camera")


@pytest.fixture(scope="module")
def validation_split(camera, tmp_path_factory):
    """The validation scenes of the set named in the weights' provenance, regenerated."""
    recipe = shlex.split(camera.meta.provenance["dataset"])
    assert recipe[:2] == ["hsrecon", "synth"], recipe
    out = tmp_path_factory.mktemp("synthetic")
    output_at = recipe.index("-o") + 1
    recipe[output_at] = str(out)
    result = hsrecon(*recipe[1:], "--only", "valid", "--quiet")
    assert result.returncode == 0, result.stderr
    return out


def test_camera_is_bundled_with_its_card(camera):
    assert "camera" in BUNDLED
    assert camera.meta.weights_version.startswith("camera-")
    assert camera.meta.input_space == "srgb"
    assert camera.meta.provenance["command"].startswith("hsrecon train --data ")
    card = (ROOT / "weights" / "README.md").read_text()
    assert BUNDLED["camera"].filename in card and BUNDLED["camera"].sha256 in card
    assert camera.meta.provenance["command"] in card, "the card quotes the exact training command"


@pytest.mark.parametrize("track", RENDERINGS)
def test_eval_reproduces_the_card(camera, validation_split, track, tmp_path):
    report = tmp_path / "report.json"
    result = hsrecon("eval", "--data", str(validation_split), "--weights", "camera", "--track", track,
                     "--json", str(report), "--quiet")  # fmt: skip
    assert result.returncode == 0, result.stderr
    measured = json.loads(report.read_text())["methods"]["network"]["summary"]
    stored = camera.meta.metrics[RENDERINGS[track]]
    assert measured["images"] == stored["images"] == 30
    for key in ("mrae_mean", "mrae_median", "rmse_mean", "psnr_mean", "sam_mean", "ssim_mean"):
        assert measured[key] == pytest.approx(stored[key], rel=1e-5), key
    card = (ROOT / "weights" / "README.md").read_text()
    row = re.search(rf"^\| {re.escape(RENDERINGS[track])} \|(.*)$", card, flags=re.MULTILINE)
    assert row, f"no row for {RENDERINGS[track]} in weights/README.md"
    quoted = [float(cell) for cell in row.group(1).split("|") if cell.strip()]
    expected = [measured[k] for k in ("mrae_mean", "mrae_median", "rmse_mean", "psnr_mean", "sam_mean", "ssim_mean")]
    assert quoted == pytest.approx(expected, abs=6e-3), "weights/README.md quotes eval's numbers (rounded)"
