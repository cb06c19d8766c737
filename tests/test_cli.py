"""The command line as a user meets it: real subprocesses, exit codes, one-line errors, no tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from hsrecon import __version__
from hsrecon.weights import sha256_of

# 64-px windows side by side: the fastest conversion, where a test's subject is not the windowing.
NO_OVERLAP = ("--window", "64", "--stride", "64")


def hsrecon(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "hsrecon", *args], capture_output=True, text=True, cwd=cwd, timeout=300
    )


def assert_clean_failure(result: subprocess.CompletedProcess, code: int, text: str) -> None:
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("hsrecon: error:")
    assert text in lines[0]


def test_version():
    result = hsrecon("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"hsrecon {__version__}"


def test_help_lists_commands():
    result = hsrecon("--help")
    assert result.returncode == 0
    for command in ("info", "import-keras"):
        assert command in result.stdout


def test_info_json():
    result = hsrecon("info", "--json", "--device", "cpu", "--weights", "ntire2020-clean")
    assert result.returncode == 0, result.stderr
    facts = json.loads(result.stdout)
    assert facts["parameters"] == 233_059
    assert facts["trainable_parameters"] == 231_539
    assert facts["gflop_per_megapixel"] == pytest.approx(288.11, abs=0.01)
    assert facts["window_size"] == 64
    assert facts["input_space"] == "ntire2020-clean"
    assert facts["provenance"]["source"].startswith("dsabarinathan/LightWeightModel")
    assert facts["device"] == "cpu"
    assert list(facts["bundled_weights"]) == [
        "ntire2020-clean",
        "clean-v3",
        "clean-v3-ft",
        "clean-v3-auto",
        "camera",
        "camera-l2",
        "camera-v3",
        "rpr2-clean-provisional",
        "rpr2-daylight",
        "rpr2-incandescent",
        "rpr2-fluorescent",
        "rpr2-led",
        "rpr2-auto",
    ]


def test_info_of_the_default_is_the_authors_network_over_its_map():
    facts = json.loads(hsrecon("info", "--json", "--device", "cpu").stdout)
    assert facts["weights_version"] == "clean-v3-1"
    assert facts["parameters"] == 233_059 + 6 * 31  # the authors' values and the map's matrix
    assert facts["training"]["network_share"] == 0.25 and facts["training"]["init"] == "ntire2020-clean"


def test_info_table_shows_count_and_provenance():
    result = hsrecon("info", "--device", "cpu", "--weights", "ntire2020-clean")
    assert result.returncode == 0
    assert "233,059" in result.stdout
    assert "0de84ebed542c030701b704b7102c074bd7c223c" in result.stdout
    assert "trained window" in result.stdout and "windows (convert, eval)" in result.stdout
    assert "window: 192" in result.stdout  # the default weights' measured windows, beside the trained 64


def test_info_with_bad_weights(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_text("nonsense")
    assert_clean_failure(hsrecon("info", "--weights", str(bad)), 3, "not a safetensors file")


def test_info_with_unavailable_device():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert_clean_failure(hsrecon("info", "--device", "cuda"), 6, "no CUDA device")


def test_import_keras_cli(keras_reference_file, tmp_path):
    out = tmp_path / "w.safetensors"
    result = hsrecon("import-keras", str(keras_reference_file), "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert sha256_of(out) in result.stdout
    again = hsrecon("import-keras", str(keras_reference_file), "-o", str(out))
    assert_clean_failure(again, 5, "exists")


def test_import_keras_refuses_non_keras(tmp_path):
    src = tmp_path / "x.hdf5"
    src.write_text("hello")
    result = hsrecon("import-keras", str(src), "-o", str(tmp_path / "o.safetensors"))
    assert_clean_failure(result, 4, "not an HDF5 file")
    assert not (tmp_path / "o.safetensors").exists()


def test_option_choices_are_the_librarys():
    """The CLI's choice types (kept free of torch and numpy so --help is instant) list the library's names."""
    from hsrecon.cli import _common as cli
    from hsrecon.cli.eval import NTIRE2022_CROP
    from hsrecon.data import SPLITS, TRACKS
    from hsrecon.data.spectra import LIGHT_FAMILIES
    from hsrecon.evaluate import BASELINES
    from hsrecon.inference import PRECISIONS
    from hsrecon.io.base import DTYPES, FORMATS, INTERLEAVES
    from hsrecon.metrics import NTIRE2022_CROP as LIBRARY_CROP
    from hsrecon.model import ABLATION_SWITCHES
    from hsrecon.pixelfit import LIGHT_CHOICES, MODELS

    def values(kind):
        return tuple(member.value for member in kind)

    assert values(cli.CubeFormat) == tuple(FORMATS)
    assert values(cli.Interleave) == INTERLEAVES and values(cli.CubeDtype) == DTYPES
    assert values(cli.Precision) == tuple(PRECISIONS)
    assert values(cli.Split) == SPLITS and values(cli.Track) == TRACKS
    assert values(cli.Baseline) == BASELINES
    assert values(cli.Model) == ("lwrdan", *MODELS)
    assert values(cli.Light) == LIGHT_CHOICES and LIGHT_CHOICES[:-1] == LIGHT_FAMILIES
    assert sorted(member.switch for member in cli.Ablation) == sorted(ABLATION_SWITCHES)
    assert NTIRE2022_CROP == LIBRARY_CROP


def test_a_bad_choice_is_one_line_naming_the_choices():
    result = hsrecon("eval", "--data", ".", "--split", "test")
    assert_clean_failure(result, 2, "--split 'test': choose from valid, train")
    assert_clean_failure(hsrecon("synth", "-o", "x", "--only", "all"), 2, "--only 'all': choose from valid, train")
