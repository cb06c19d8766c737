"""The shipped camera models' cards tell the truth: ``hsrecon eval`` gives the numbers they quote.

The synthetic set the cards were scored on is regenerated here from its recipe in the weights' provenance
(``hsrecon synth``: each scene depends only on the seed and its number), evaluated in both renderings with
each bundled camera model, and compared with the scores stored in the weights file (written by
``tools/package_weights.py``) and with the tables in ``weights/README.md``. The training split is needed
too: the issue's bar, "under half the linear baseline's MRAE on the camera rendering", is checked against
least-squares maps fitted on it.
"""

from __future__ import annotations

import json
import re
import shlex
from functools import cache
from pathlib import Path

import pytest
from test_cli import hsrecon

from hsrecon.weights import BUNDLED, load_weights

ROOT = Path(__file__).resolve().parent.parent
CAMERA_MODELS = ("camera", "camera-l2")
RENDERINGS = {"realworld": "synthetic valid, realworld rendering", "clean": "synthetic valid, clean rendering"}
QUOTED = ("mrae_mean", "mrae_median", "rmse_mean", "psnr_mean", "sam_mean", "ssim_mean")
BASELINES = ("linear-stored", "linear-decoded")


def _card_section(name: str) -> str:
    """The part of weights/README.md that is ``name``'s model card."""
    card = (ROOT / "weights" / "README.md").read_text()
    sections = [s for s in re.split(r"^# Model card: ", card, flags=re.MULTILINE) if f"(bundled name `{name}`" in s]
    assert len(sections) == 1, f"weights/README.md has {len(sections)} model cards for {name}"
    return sections[0]


@pytest.fixture(scope="module")
def synthetic_set(tmp_path_factory):
    """The set named in the camera weights' provenance (both models were trained on it), regenerated."""
    recipes = {load_weights(name).meta.provenance["dataset"] for name in CAMERA_MODELS}
    assert len(recipes) == 1, recipes
    recipe = shlex.split(recipes.pop())
    assert recipe[:2] == ["hsrecon", "synth"], recipe
    out = tmp_path_factory.mktemp("synthetic")
    recipe[recipe.index("-o") + 1] = str(out)
    result = hsrecon(*recipe[1:], "--quiet")
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture(scope="module")
def evaluate(synthetic_set, tmp_path_factory):
    """``hsrecon eval``'s summaries for (weights, track), each run once; photos also get both baselines."""
    folder = tmp_path_factory.mktemp("reports")

    @cache
    def run(name: str, track: str) -> dict[str, dict]:
        report = folder / f"{name}-{track}.json"
        baselines = [arg for b in BASELINES for arg in ("--baseline", b)] if track == "realworld" else []
        # The cards' scores were measured before images were padded by reflection (docs/benchmarks.md has
        # both): with --pad 0 eval reproduces them to the last digit.
        result = hsrecon("eval", "--data", str(synthetic_set), "--weights", name, "--track", track,
                         *baselines, "--pad", "0", "--json", str(report), "--quiet")  # fmt: skip
        assert result.returncode == 0, result.stderr
        return {method: r["summary"] for method, r in json.loads(report.read_text())["methods"].items()}

    return run


@pytest.mark.parametrize("name", CAMERA_MODELS)
def test_camera_model_is_bundled_with_its_card(name):
    weights = load_weights(name)
    assert weights.meta.weights_version.startswith("camera-")
    assert weights.meta.input_space == "srgb"
    assert weights.meta.provenance["command"].startswith("hsrecon train --data ")
    card = _card_section(name)
    assert BUNDLED[name].filename in card and BUNDLED[name].sha256 in card
    assert weights.meta.provenance["command"] in card, "the card quotes the exact training command"


@pytest.mark.parametrize("track", RENDERINGS)
@pytest.mark.parametrize("name", CAMERA_MODELS)
def test_eval_reproduces_the_card(name, track, evaluate):
    measured = evaluate(name, track)["network"]
    stored = load_weights(name).meta.metrics[RENDERINGS[track]]
    assert measured["images"] == stored["images"] == 30
    for key in QUOTED:
        assert measured[key] == pytest.approx(stored[key], rel=1e-5), key
    row = re.search(rf"^\| {re.escape(RENDERINGS[track])} \|(.*)$", _card_section(name), flags=re.MULTILINE)
    assert row, f"no row for {RENDERINGS[track]} in {name}'s card"
    quoted = [float(cell) for cell in row.group(1).split("|") if cell.strip()]
    assert quoted == pytest.approx([measured[k] for k in QUOTED], abs=6e-3), "the card quotes eval (rounded)"


def test_camera_has_under_half_the_linear_baselines_mrae_on_photos(evaluate):
    summaries = evaluate("camera", "realworld")
    print({method: round(s["mrae_mean"], 4) for method, s in summaries.items()})
    for baseline in BASELINES:
        assert summaries["network"]["mrae_mean"] < 0.5 * summaries[baseline]["mrae_mean"], baseline


def test_camera_l2_has_the_lower_rmse_on_photos(evaluate):
    """Why two camera models: the MRAE-trained one pays in absolute error (weights/README.md)."""
    assert (
        evaluate("camera-l2", "realworld")["network"]["rmse_mean"]
        < evaluate("camera", "realworld")["network"]["rmse_mean"]
    )


def test_camera_v3_is_bundled_with_its_card_and_beats_camera_l2_on_an_unseen_camera(tmp_path):
    """camera-v3's file is the card's (SHA-256, version, commands), and on recipe-3 photos of the held-out camera
    and material families (a small set made here, seed 7) it has lower MRAE after gain and spectral angle than
    the model it was fine-tuned from (0.46 / 22.3° against 0.56 / 26.6°)."""
    from typer.testing import CliRunner

    from hsrecon.cli import app
    from hsrecon.weights import sha256_of

    entry = BUNDLED["camera-v3"]
    weights = load_weights("camera-v3")
    assert sha256_of(weights.path) == entry.sha256 and weights.meta.weights_version == "camera-v3-1"
    assert "--init camera-l2" in weights.meta.provenance["command"] and weights.input_space == "srgb"
    card = (ROOT / "weights" / "README.md").read_text()
    (mine,) = [s for s in card.split("# Model card: ") if "(bundled name `camera-v3`)" in s[:200]]
    assert entry.sha256 in mine and weights.meta.provenance["dataset"] in mine
    runner = CliRunner()
    made = runner.invoke(app, ["synth", "-o", str(tmp_path / "photos"), "--recipe", "3", "--scenes", "8", "--size",
                               "64", "--seed", "7", "--valid-fraction", "0.5", "--valid-sensors", "heldout",
                               "--valid-families", "heldout", "-q"])  # fmt: skip
    assert made.exit_code == 0, made.output
    scores = {}
    for name in ("camera-v3", "camera-l2"):
        report = tmp_path / f"{name}.json"
        result = runner.invoke(app, ["eval", "--data", str(tmp_path / "photos"), "--track", "realworld", "--weights",
                                     name, "--no-plausible", "--json", str(report), "--quiet"])  # fmt: skip
        assert result.exit_code == 0, result.output
        scores[name] = json.loads(report.read_text())["methods"]["network"]["summary"]
    assert scores["camera-v3"]["mrae_gain_mrae_mean"] < 0.9 * scores["camera-l2"]["mrae_gain_mrae_mean"]
    assert scores["camera-v3"]["sam_mean"] < scores["camera-l2"]["sam_mean"] - 2.0


@pytest.mark.parametrize(
    "recipe",
    [
        ["--recipe", "3", "--seed", "7", "--valid-families", "heldout"],  # materials no training scene has
        ["--seed", "8"],  # recipe 1, NTIRE-style
    ],
)
def test_the_default_is_clean_v3_with_its_card_and_beats_the_authors_weights(recipe, tmp_path):
    """Issue 24's rule for a new default: ahead of the old one (the authors' weights with their default options,
    --plausible) in MRAE and angle on held-out scenes. Measured on these small sets: MRAE 0.315 against 0.456 and
    0.143 against 0.208; SAM 13.6° against 14.4° and 7.2° against 8.7°."""
    from hsrecon.weights import DEFAULT_WEIGHTS, sha256_of

    entry = BUNDLED[DEFAULT_WEIGHTS]
    assert entry.name == "clean-v3" and sha256_of(load_weights().path) == entry.sha256
    card = _card_section("clean-v3")
    assert entry.sha256 in card and load_weights().meta.provenance["dataset"] in card
    assert "--network-share 0.25 --mix rpr2-clean-provisional=0.3" in card
    data = tmp_path / "set"
    made = hsrecon("synth", "-o", str(data), "--scenes", "8", "--size", "64", "--valid-fraction", "0.5", *recipe, "-q")
    assert made.returncode == 0, made.stderr
    scores = {}
    for name, weights in (("default", []), ("authors", ["--weights", "ntire2020-clean"])):
        report = tmp_path / f"{name}.json"
        result = hsrecon("eval", "--data", str(data), *weights, "--json", str(report), "--quiet")
        assert result.returncode == 0, result.stderr
        methods = json.loads(report.read_text())["methods"]
        scores[name] = methods["network+plausible" if name == "authors" else "network"]["summary"]
    assert scores["default"]["mrae_mean"] < 0.8 * scores["authors"]["mrae_mean"]
    assert scores["default"]["sam_mean"] < scores["authors"]["sam_mean"] - 0.5


def test_clean_v3_ft_is_bundled_with_its_card_and_beats_the_default_on_unseen_materials(tmp_path):
    """clean-v3-ft's file is the card's, and on recipe-3 scenes of held-out material families (a small set made
    here, seed 7) it is ahead of the default it was fine-tuned from: measured MRAE 0.303 against 0.315, SAM 12.7°
    against 13.6°; the per-pixel map fitted on the set's own four training scenes is far behind (0.496 / 21.3°)."""
    from hsrecon.weights import sha256_of

    entry = BUNDLED["clean-v3-ft"]
    weights = load_weights("clean-v3-ft")
    assert sha256_of(weights.path) == entry.sha256 and weights.meta.weights_version == "clean-v3-ft-1"
    command = weights.meta.provenance["command"]
    assert "--init clean-v3" in command and "--sam-weight 4" in command
    assert weights.meta.config.prior_degree == 2 and weights.windowing().window == 64
    card = _card_section("clean-v3-ft")
    assert entry.sha256 in card and weights.meta.provenance["dataset"] in card
    data = tmp_path / "set"
    made = hsrecon("synth", "-o", str(data), "--recipe", "3", "--scenes", "8", "--size", "64", "--seed", "7",
                   "--valid-fraction", "0.5", "--valid-families", "heldout", "-q")  # fmt: skip
    assert made.returncode == 0, made.stderr
    scores = {}
    for name in ("clean-v3-ft", "clean-v3"):
        report = tmp_path / f"{name}.json"
        result = hsrecon("eval", "--data", str(data), "--weights", name, "--baseline", "rpr2", "--json", str(report),
                         "--quiet")  # fmt: skip
        assert result.returncode == 0, result.stderr
        scores[name] = {m: r["summary"] for m, r in json.loads(report.read_text())["methods"].items()}
    tuned, default = scores["clean-v3-ft"]["network"], scores["clean-v3"]["network"]
    assert tuned["mrae_mean"] < default["mrae_mean"] and tuned["sam_mean"] < default["sam_mean"] - 0.5
    baseline = scores["clean-v3-ft"]["rpr2"]
    assert tuned["mrae_mean"] < 0.8 * baseline["mrae_mean"] and tuned["sam_mean"] < baseline["sam_mean"] - 5


def test_clean_v3_auto_is_bundled_with_its_card_and_leads_under_daylight_and_tungsten(tmp_path):
    """clean-v3-auto's file is the card's and routes its prior; on recipe-3 scenes of held-out material families (a
    small set made here, seed 7: 3 daylight and 4 tungsten validation scenes) it beats, under both lights and in
    both metrics, the default and rpr2-auto (the same light read, maps only). Measured: daylight 0.150 / 7.2°
    against 0.179 / 9.9° and 0.179 / 9.3°; tungsten 0.136 / 5.9° against 0.171 / 8.7° and 0.156 / 6.8°."""
    from hsrecon.weights import sha256_of

    entry = BUNDLED["clean-v3-auto"]
    weights = load_weights("clean-v3-auto")
    assert sha256_of(weights.path) == entry.sha256 and weights.meta.weights_version == "clean-v3-auto-1"
    assert weights.router.routes == ("daylight", "incandescent") and weights.routes.shape == (2, 6, 31)
    command = weights.meta.provenance["command"]
    assert "--light daylight --light incandescent" in command and "--sam-weight 4" in command
    card = _card_section("clean-v3-auto")
    assert entry.sha256 in card and command in card and weights.meta.provenance["dataset"] in card
    data = tmp_path / "set"
    made = hsrecon("synth", "-o", str(data), "--recipe", "3", "--scenes", "16", "--size", "64", "--seed", "7",
                   "--valid-fraction", "0.5", "--valid-families", "heldout", "-q")  # fmt: skip
    assert made.returncode == 0, made.stderr
    scores = {}
    for name in ("clean-v3-auto", "clean-v3", "rpr2-auto"):
        report = tmp_path / f"{name}.json"
        result = hsrecon("eval", "--data", str(data), "--weights", name, "--no-plausible", "--group-by", "light",
                         "--json", str(report), "--quiet")  # fmt: skip
        assert result.returncode == 0, result.stderr
        scores[name] = {light: m["network"] for light, m in json.loads(report.read_text())["groups"]["light"].items()}
    for light in ("daylight", "incandescent"):
        ours = scores["clean-v3-auto"][light]
        assert ours["images"] >= 3
        for other in ("clean-v3", "rpr2-auto"):
            theirs = scores[other][light]
            assert ours["mrae"] < 0.95 * theirs["mrae"] and ours["sam"] < theirs["sam"] - 0.5, (light, other)
