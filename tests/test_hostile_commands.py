"""Hostile use, round 3: ``train``, ``synth``, ``eval --data``, ``view`` and every command's usage errors keep
the promises ``convert`` keeps (issue 26; its items are numbered in the section titles).

Each case: the documented exit code (docs/cli.md), one ``hsrecon: error:`` line (notes and a progress bar
aside), no traceback or raw Python warning, nothing half-written, no false success. Refusals run the CLI as
a subprocess; cases that need a fault injected (a full disk) or training steps run it in this process
through Typer's runner (the same code, without a second of torch's start-up per case).
"""

from __future__ import annotations

import errno
import json
import os
import urllib.request
import warnings
from pathlib import Path

import h5py
import imageio.v3 as iio
import numpy as np
import pytest
import scipy.io
import torch
from test_cli import hsrecon
from test_data_ntire import make_arad1k, make_ntire2020
from test_train import SMALL
from test_view_cli import start_view, stop
from typer.testing import CliRunner

import hsrecon.temps as temps
from hsrecon.cli import app
from hsrecon.data.synth import make_synthetic_dataset
from hsrecon.io import open_cube_writer, read_cube
from hsrecon.model import LWRDAN, LWRDANConfig
from hsrecon.physics import WAVELENGTHS_NM
from hsrecon.temps import TEMP_PATTERN
from hsrecon.train import TrainConfig, _save_checkpoint
from hsrecon.weights import load_weights

pytestmark = pytest.mark.skipif(os.name != "posix", reason="file modes and signals are POSIX")

# A run as short as the CLI allows: 64×64 windows of 64×64 images, two per step, one validation image.
SHORT = ("--batch-size", "2", "--valid-images", "1", "--device", "cpu")


# --- helpers -----------------------------------------------------------------------------------------------


def assert_refused(result, code: int, *fragments: str) -> str:
    """A subprocess (or Typer runner) result: exit ``code``; stderr, notes and a progress bar aside, is one
    ``hsrecon: error:`` line holding the fragments; no traceback, no Python warning. Returns the line."""
    returncode = getattr(result, "returncode", getattr(result, "exit_code", None))
    assert returncode == code, result.stderr
    assert "Traceback" not in result.stderr and "Warning" not in result.stderr, result.stderr
    lines = [
        line
        for line in result.stderr.splitlines()
        if line.strip() and not line.startswith(("hsrecon: note:", "train ", "scenes "))
    ]
    assert len(lines) == 1 and lines[0].startswith("hsrecon: error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def run_cli(*args: str):
    """``hsrecon ARGS`` in this process, Python's warnings made errors (a raw warning fails the case)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = CliRunner().invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result


@pytest.fixture()
def small_network(monkeypatch) -> None:
    """In-process training runs build test_train's small network (what these cases check, files and lines,
    does not depend on its size; a step costs a tenth of the published network's)."""
    import hsrecon.train as training

    def build(config: TrainConfig) -> tuple[LWRDAN, bool]:  # (network, whether a prior needs fitting): none
        return LWRDAN(LWRDANConfig.from_dict(SMALL | config.model)), False

    monkeypatch.setattr(training, "_build_model", build)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def temporaries(folder: Path) -> list[str]:
    return [p.name for p in folder.rglob("*") if TEMP_PATTERN.fullmatch(p.name)]


def strict_json_lines(path: Path) -> list[dict]:
    """Every line of ``path`` as JSON that any parser reads: NaN or Infinity fail."""

    def refuse(constant: str) -> None:
        raise AssertionError(f"{path}: non-standard JSON constant {constant}")

    return [json.loads(line, parse_constant=refuse) for line in path.read_text().splitlines()]


def replace_cube(path: Path, cube: np.ndarray, wavelengths=WAVELENGTHS_NM) -> None:
    """Put ``cube`` in place of the MATLAB v7.3 file ``path`` (hsrecon's writer, any band count)."""
    path.unlink()
    with open_cube_writer(
        path.with_suffix(""), "mat", height=cube.shape[0], width=cube.shape[1], wavelengths_nm=wavelengths
    ) as writer:
        writer.write_rows(0, cube)


def replace_with_v5(path: Path, cube: np.ndarray, **options) -> None:
    """Put ``cube`` (any dtype: complex, uint16) in place of ``path`` as a MATLAB v5 file, as SciPy writes it."""
    path.unlink()
    scipy.io.savemat(path, {"cube": cube}, **options)


@pytest.fixture()
def tiny(tmp_path) -> Path:
    """NTIRE 2020 layout, every track: two 64×64 training scenes (the training window) and one validation."""
    return make_ntire2020(tmp_path / "data", np.random.default_rng(3), train=(1, 2), valid=(451,), shape=(64, 64))


@pytest.fixture()
def one_scene(tmp_path) -> Path:
    """One training scene: every training window comes from it, so its cube is read at the first step."""
    return make_ntire2020(tmp_path / "one", np.random.default_rng(4), train=(7,), valid=(451,), shape=(64, 64))


def train_cube(root: Path, number: int) -> Path:
    return root / "Train_Spectral" / f"ARAD_HS_{number:04d}.mat"


# --- 1: synth into an existing set ------------------------------------------------------------------------


def test_synth_refuses_a_folder_with_a_set_and_overwrite_replaces_it_whole(tmp_path):
    out = tmp_path / "mix"
    make_synthetic_dataset(out, scenes=4, size=(16, 16), seed=1, valid_fraction=0.25, camera=None)
    before = snapshot(out)
    again = hsrecon("synth", "-o", str(out), "--scenes", "3", "--size", "16", "--seed", "2", "-q")
    assert_refused(again, 5, f"{out}: not empty", "--overwrite")
    assert snapshot(out) == before  # untouched: no scene of seed 2 mixed in
    replaced = hsrecon("synth", "-o", str(out), "--scenes", "3", "--size", "16", "--seed", "2", "--overwrite", "-q")
    assert replaced.returncode == 0 and replaced.stderr == "", replaced.stderr
    summary = json.loads((out / "synth.json").read_text())
    assert summary["seed"] == 2 and summary["scenes"] == 3
    assert sorted(p.name for p in (out / "Train_Spectral").iterdir()) == ["ARAD_HS_0001.mat", "ARAD_HS_0002.mat"]
    assert sorted(p.name for p in (out / "Validation_Spectral").iterdir()) == ["ARAD_HS_0003.mat"]
    assert not any("ARAD_HS_0004" in name for name in snapshot(out))  # nothing of the first set is left
    assert sorted(os.listdir(tmp_path)) == ["mix"]  # neither the old set nor a temporary beside it


def test_synth_overwrite_never_replaces_a_folder_it_did_not_write(tmp_path):
    home = tmp_path / "home"
    (home / "thesis").mkdir(parents=True)
    (home / "thesis" / "chapter1.tex").write_text("months of work")
    (home / "synth.json").write_text("{}")
    result = hsrecon("synth", "-o", str(home), "--scenes", "2", "--size", "8", "--overwrite", "-q")
    assert_refused(result, 5, f"{home}: not a dataset hsrecon synth wrote")
    assert (home / "thesis" / "chapter1.tex").read_text() == "months of work"
    assert sorted(os.listdir(tmp_path)) == ["home"]


def test_an_interrupted_synth_leaves_nothing(tmp_path):
    def interrupt(done: int, total: int) -> None:
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        make_synthetic_dataset(tmp_path / "set", scenes=4, size=(8, 8), seed=0, camera=None, progress=interrupt)
    assert os.listdir(tmp_path) == []


# --- 2: --resume keeps the run's settings -----------------------------------------------------------------


@pytest.fixture()
def clean_run(tiny, tmp_path) -> Path:
    """A clean-track run's checkpoint at step 2, saved with exactly the settings ``train … --max-steps 2
    --validate-every 2 SHORT`` gives, so the CLI's --resume compares like with like (the weights are a fresh
    network's: only the checkpoint's settings are read before a refusal)."""
    run = tmp_path / "run"
    config = TrainConfig(
        data=tiny, output=run, steps=2, batch_size=2, validate_every=2, checkpoint_every=2, valid_images=1, device="cpu"
    )
    run.mkdir()
    model = LWRDAN()
    _save_checkpoint(run / "last", model, torch.optim.Adam(model.parameters()), 2, config, {"best_mrae": 0.5})
    (run / "log.jsonl").write_text('{"step": 1, "loss": 0.9}\n{"step": 2, "loss": 0.8}\n')
    return run


def test_resume_with_settings_that_change_the_training_is_refused_naming_them(tiny, clean_run):
    before = snapshot(clean_run)
    result = hsrecon(
        "train",
        "--data",
        str(tiny),
        "-o",
        str(clean_run),
        "--resume",
        "--max-steps",
        "2",
        "--validate-every",
        "2",
        "--valid-images",
        "1",
        "--device",
        "cpu",
        "--seed",
        "5",
        "--batch-size",
        "4",
        "--lr-start",
        "0.1",
        "--track",
        "realworld",
    )
    line = assert_refused(result, 2, "--resume with other settings than the run's")
    for named in ("seed 0 → 5", "batch_size 2 → 4", "lr_start 0.001 → 0.1", "track 'clean' → 'realworld'"):
        assert named in line, line
    assert snapshot(clean_run) == before  # the weights still say what they were trained on


def test_resume_of_another_network_or_of_nothing_and_a_second_run_into_a_run(tiny, clean_run, tmp_path):
    common = ("--data", str(tiny), "--max-steps", "2", "--validate-every", "2", *SHORT)
    before = snapshot(clean_run)
    ablated = run_cli("train", *common, "-o", str(clean_run), "--resume", "--ablate", "cbam")
    assert_refused(ablated, 2, "model {} → {'attention': False}")
    nothing = run_cli("train", *common, "-o", str(tmp_path / "fresh"), "--resume")
    assert_refused(nothing, 2, "no checkpoint to resume from", "leave out --resume")
    assert not (tmp_path / "fresh").exists()
    second = run_cli("train", *common, "-o", str(clean_run))
    assert_refused(second, 5, f"{clean_run}: holds a training run already", "--resume")
    assert snapshot(clean_run) == before


# --- 3 and 6: numbers out of range, and runs that would train nothing ---------------------------------------


@pytest.mark.parametrize(
    ("option", "fragment"),
    [
        (["--max-steps", "0"], "--max-steps 0: must be at least 1"),
        (["--max-minutes", "-1"], "--max-minutes -1.0: must be a positive finite number"),
        (["--max-minutes", "nan"], "--max-minutes nan: must be a positive finite number"),
        (["--valid-images", "0"], "--valid-images 0: must be at least 1"),
        (["--validate-every", "0"], "--validate-every 0: must be at least 1"),
        (["--batch-size", "0"], "--batch-size 0: must be at least 1"),
        (["--workers", "-1"], "--workers -1: must be 0 or more"),
        (["--lr-start", "nan"], "--lr-start nan: must be a positive finite number"),
        (["--lr-end", "-1e-5"], "--lr-end -1e-05: must be a positive finite number"),
        (["--seed", "-2"], "--seed -2: must be 0 or more"),
        (["--ssim-weight", "inf"], "--ssim-weight inf: must be a finite number, 0 or more"),
    ],
)
def test_every_numeric_training_option_is_checked_before_the_run_folder_exists(tiny, tmp_path, option, fragment):
    run = tmp_path / "run"
    assert_refused(hsrecon("train", "--data", str(tiny), "-o", str(run), *option), 2, fragment)
    assert not run.exists()


def test_a_run_always_trains_a_step_names_only_its_files_and_notes_integer_cubes(one_scene, tmp_path, small_network):
    """3: ``--max-minutes`` too short for a step still trains one (and saves it); 13: integer cubes get eval's
    note; 17: checkpoints and log get the umask's mode, as convert's outputs do (not a private 0600)."""
    cubes = (train_cube(one_scene, 7), one_scene / "Validation_Spectral" / "ARAD_HS_0451.mat")
    for cube in cubes:
        replace_with_v5(cube, np.round(read_cube(cube)[0] * 4095).astype(np.uint16))
    run = tmp_path / "run"
    result = run_cli("train", "--data", str(one_scene), "-o", str(run), "--max-minutes", "1e-9", *SHORT)
    assert result.exit_code == 0, result.stderr
    notes = [line for line in result.stderr.splitlines() if line.startswith("hsrecon: note:")]
    assert [
        note.split(": cube stored as uint16: trained on its stored values, not scaled to [0, 1]")[0] for note in notes
    ] == [f"hsrecon: note: {cube}" for cube in cubes]
    assert "trained to step 1; best validation MRAE " in result.stderr
    assert f"weights {run / 'best.safetensors'} and {run / 'last.safetensors'}" in result.stderr
    assert load_weights(run / "last.safetensors").meta.training["step"] == 1
    assert [record["step"] for record in strict_json_lines(run / "log.jsonl")] == [1, 1]  # the step, its validation
    umask = os.umask(0)
    os.umask(umask)
    for name in ("best.safetensors", "best.state.safetensors", "last.safetensors", "last.state.safetensors"):
        assert (run / name).stat().st_mode & 0o777 == 0o666 & ~umask, name
    assert (run / "log.jsonl").stat().st_mode & 0o777 == 0o666 & ~umask


# --- 4, 5 and 13: eval --data checks the truth as eval --pred/--gt does -------------------------------------


def test_eval_data_fails_a_non_finite_or_complex_truth_and_notes_an_integer_one(tmp_path):
    data = make_ntire2020(
        tmp_path / "data", np.random.default_rng(5), train=(), valid=(451, 452, 453, 454), shape=(24, 24)
    )
    spectral = data / "Validation_Spectral"
    infinite = read_cube(spectral / "ARAD_HS_0451.mat")[0]
    infinite[3, 4, 5], infinite[20, 1, 30] = np.inf, -np.inf
    replace_cube(spectral / "ARAD_HS_0451.mat", infinite)
    truth = read_cube(spectral / "ARAD_HS_0452.mat")[0]
    replace_with_v5(spectral / "ARAD_HS_0452.mat", (truth + 0.25j).astype(np.complex64))
    replace_with_v5(
        spectral / "ARAD_HS_0453.mat", np.round(read_cube(spectral / "ARAD_HS_0453.mat")[0] * 4095).astype(np.uint16)
    )
    report = tmp_path / "r.json"
    result = hsrecon(
        "eval", "--data", str(data), "--window", "24", "--stride", "24", "--pad", "0", "-q", "--json", str(report)
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr and "Warning" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("hsrecon: error:")]
    assert len(errors) == 2, result.stderr
    assert (
        "ARAD_HS_0451.mat: 2 of 17,856 ground-truth values are NaN or infinite (the first at row 3, column 4, "
        "band 5); not scored" in errors[0]
    )
    assert "ARAD_HS_0452.mat: 'cube' holds complex numbers, not real ones" in errors[1]
    notes = [line for line in result.stderr.splitlines() if line.startswith("hsrecon: note:")]
    assert any("ARAD_HS_0453.mat: ground truth stored as uint16: scored on its stored values" in n for n in notes)
    scored = json.loads(report.read_text())
    network = scored["methods"]["network"]
    assert [image["name"] for image in network["images"]] == ["ARAD_HS_0453", "ARAD_HS_0454"]
    assert all(value is not None for key, value in network["summary"].items() if key.endswith("_mean"))
    assert any("stored as uint16" in note for note in scored["notes"])


def test_eval_pred_gt_refuses_a_complex_cube_naming_it(tmp_path):
    pred, gt = tmp_path / "pred", tmp_path / "gt"
    pred.mkdir()
    gt.mkdir()
    rng = np.random.default_rng(6)
    for name in ("a", "b"):
        cube = rng.random((16, 16, 31), dtype=np.float32) + 0.1
        scipy.io.savemat(gt / f"{name}.mat", {"cube": cube})
        scipy.io.savemat(pred / f"{name}.mat", {"cube": cube * 1.1})
    scipy.io.savemat(pred / "a.mat", {"cube": (rng.random((16, 16, 31)) * (1 + 1j)).astype(np.complex64)})
    result = hsrecon("eval", "--pred", str(pred), "--gt", str(gt), "-q")
    assert_refused(result, 1, f"{pred / 'a.mat'}: 'cube' holds complex numbers, not real ones")
    assert "1 scored, 1 failed" in result.stdout


def test_train_refuses_a_complex_training_cube_naming_it(one_scene, tmp_path, small_network):
    cube = train_cube(one_scene, 7)
    replace_with_v5(cube, read_cube(cube)[0].astype(np.complex64))
    result = run_cli("train", "--data", str(one_scene), "-o", str(tmp_path / "run"), "--max-steps", "2", *SHORT)
    assert_refused(result, 4, f"{cube}: 'cube' holds complex numbers, not real ones")


# --- 7: cubes of another band count -----------------------------------------------------------------------


def test_a_cube_of_30_bands_is_refused_before_training_naming_it(tiny, tmp_path):
    def cut_a_band(path: Path) -> None:
        replace_cube(path, read_cube(path)[0][..., 1:], WAVELENGTHS_NM[1:])

    run = tmp_path / "run"
    cut_a_band(train_cube(tiny, 2))
    result = hsrecon("train", "--data", str(tiny), "-o", str(run), "--max-steps", "2", *SHORT)
    assert_refused(result, 4, f"{train_cube(tiny, 2)}: 30 bands (shape 64×64×30); the network makes 31")
    for path in (train_cube(tiny, 1), tiny / "Validation_Spectral" / "ARAD_HS_0451.mat"):
        cut_a_band(path)  # all of them: the first is named
    every = run_cli("train", "--data", str(tiny), "-o", str(run), "--max-steps", "2", *SHORT)
    assert_refused(every, 4, f"{train_cube(tiny, 1)}: 30 bands")
    assert not run.exists()


# --- 8: NaN in a training cube, and a loss that becomes NaN --------------------------------------------------


def test_a_training_cube_with_nan_is_refused_when_read_naming_it(one_scene, tmp_path):
    path = train_cube(one_scene, 7)
    cube = read_cube(path)[0]
    cube[10, 20, 7] = np.nan
    replace_cube(path, cube)
    run = tmp_path / "run"
    result = hsrecon("train", "--data", str(one_scene), "-o", str(run), "--max-steps", "3", *SHORT)
    assert_refused(
        result,
        4,
        f"{path}: 1 of 126,976 cube values are NaN or infinite (the first at row 10, column 20, "
        "band 7); a training or validation cube must be finite",
    )
    assert not list(run.glob("*.safetensors"))
    assert not (run / "log.jsonl").exists() or strict_json_lines(run / "log.jsonl") == []


def test_a_loss_that_becomes_nan_stops_the_run_in_one_line_and_the_log_stays_json(one_scene, tmp_path, small_network):
    run = tmp_path / "run"
    result = run_cli(
        "train",
        "--data",
        str(one_scene),
        "-o",
        str(run),
        "--max-steps",
        "4",
        "--lr-start",
        "1e12",
        "--lr-end",
        "1e12",
        *SHORT,
    )
    assert_refused(result, 1, "step 2: the loss is nan", "stopped, no checkpoint was written", "--lr-start")
    assert [record["step"] for record in strict_json_lines(run / "log.jsonl")] == [1]
    assert not list(run.glob("*.safetensors"))


# --- 9: a full disk while a checkpoint is written ------------------------------------------------------------


@pytest.mark.parametrize(("failing_write", "step", "state_step", "kept"), [(2, 1, 1, None), (5, 2, 1, 1)])
def test_a_full_disk_while_checkpointing_is_exit_5_and_keeps_whole_files(
    tiny, tmp_path, monkeypatch, small_network, failing_write, step, state_step, kept
):
    """Checkpoint files in write order: step 1's last state (1) and weights (2), best state (3) and weights (4);
    step 2's last state (5), weights (6). The disk fills part-way through one of them."""
    real_open, writes = open, []

    class FullDisk:
        def __init__(self, handle) -> None:
            self.handle = handle

        def write(self, data: bytes) -> int:
            self.handle.write(data[: len(data) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        def __enter__(self):
            return self

        def __exit__(self, *exc) -> None:
            self.handle.close()

    def filling_open(path, mode="r", *args, **kwargs):
        handle = real_open(path, mode, *args, **kwargs)
        writes.append(path)
        return FullDisk(handle) if len(writes) == failing_write else handle

    monkeypatch.setattr(temps, "open", filling_open, raising=False)
    run = tmp_path / "run"
    result = run_cli("train", "--data", str(tiny), "-o", str(run), "--max-steps", "3", "--validate-every", "1", *SHORT)
    line = assert_refused(result, 5, f"cannot write the step-{step} checkpoint (No space left on device)", "--resume")
    assert line.startswith(f"hsrecon: error: {run / 'last.'}")
    assert temporaries(run) == []
    monkeypatch.undo()
    with open(run / "last.state.safetensors", "rb") as handle:  # whole: its header reads, and says its step
        header = json.loads(handle.read(int.from_bytes(handle.read(8), "little")))
    assert json.loads(header["__metadata__"]["hsrecon_train"])["step"] == state_step
    if kept is not None:
        assert load_weights(run / "last.safetensors").meta.training["step"] == kept
        assert load_weights(run / "best.safetensors").meta.training["step"] == kept
    else:
        assert sorted(p.name for p in run.iterdir()) == ["last.state.safetensors", "log.jsonl"]


# --- 10: an error in a loader process -----------------------------------------------------------------------


def test_a_corrupt_cube_read_by_a_loader_process_is_one_short_line_naming_it_first(one_scene, tmp_path):
    path = train_cube(one_scene, 7)
    replace_with_v5(path, read_cube(path)[0], do_compression=True)
    path.write_bytes(path.read_bytes()[:-300])  # its header still reads; its compressed data does not
    result = hsrecon(
        "train", "--data", str(one_scene), "-o", str(tmp_path / "run"), "--max-steps", "2", "--workers", "1", *SHORT
    )
    line = assert_refused(result, 4, "not a readable MAT-file")
    assert line.startswith(f"hsrecon: error: {path}: ") and len(line) < 300, line
    assert "worker" not in line and "Original" not in line


# --- 11 and 12: synth checks what it is asked before making anything ------------------------------------------


@pytest.mark.parametrize(
    ("option", "fragment"),
    [
        (["--size", "100000"], "size 100000×100000: one scene needs about"),
        (["--size", "24000"], "over the memory budget"),
        (["--valid-fraction", "0", "--only", "valid"], "put none in validation, so there is nothing to write"),
        (["--scenes", "1", "--only", "valid"], "1 scene(s) with a validation fraction of 0.1 put none in validation"),
    ],
)
def test_synth_refuses_what_it_cannot_make_before_making_anything(tmp_path, option, fragment):
    out = tmp_path / "parent" / "set"
    assert_refused(hsrecon("synth", "-o", str(out), *option), 2, fragment)
    assert not (tmp_path / "parent").exists()


# --- 14: usage errors, every command --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["convert", "ok.png"], "convert: missing option '--output' / '-o'"),
        (["convert", "--bogus", "x", "-o", "y"], "convert: no such option: --bogus"),
        (["eval", "--data", "d", "--window", "many"], "eval: invalid value for '--window'"),
        (["synth", "--scenes", "2"], "synth: missing option '--output' / '-o'"),
        (["train", "--data", "d", "--batch-size", "8.5"], "train: invalid value for '--batch-size'"),
        (["view"], "view: missing argument"),
        (["info", "--json", "yes"], "info: got unexpected extra argument"),
        (["export"], "export: missing option"),
        (["import-keras"], "import-keras: missing argument"),
        (["cnovert", "a.png"], "no such command 'cnovert'"),
    ],
)
def test_a_usage_error_is_one_line_and_a_hint(args, fragment):
    result = hsrecon(*args)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 2, result.stderr
    assert lines[0].startswith("hsrecon: error: ") and fragment in lines[0], lines[0]
    assert lines[1].startswith("hsrecon: note: ") and "--help' lists the options" in lines[1], lines[1]
    assert result.stdout == ""


# --- 15: the viewer's terminal -------------------------------------------------------------------------------


def test_viewer_requests_on_infinite_values_and_extreme_stretches_write_nothing_to_the_terminal(tmp_path, rng):
    cube = rng.random((12, 16, 31))  # float64: the viewer's float32 turns 1.5e308 into infinity
    cube[2, 3, :] = np.inf
    cube[5, 6, 4:9] = -np.inf
    cube[7, 8, 10] = np.nan
    cube[9, 9, 5] = 1.5e308
    path = tmp_path / "scene.h5"
    with h5py.File(path, "w") as file:
        file["cube"] = cube
        file["wavelength"] = np.asarray(WAVELENGTHS_NM)
    process, url = start_view(str(path))
    region = "x0=0&y0=0&step=1&cols=16&rows=12"
    try:
        for query in (
            f"layer=srgb&{region}",
            f"layer=band&band=5&{region}",
            f"layer=band&band=5&lo=-1e308&hi=1e308&{region}",
            f"layer=band&band=0&lo=-1.7e308&hi=1.7e308&cmap=gray&{region}",
        ):
            with urllib.request.urlopen(f"{url}api/image?cube=0&{query}", timeout=60) as response:
                assert response.status == 200 and response.read(8) == b"\x89PNG\r\n\x1a\n", query
    finally:
        stderr = stop(process)
    assert process.returncode == 0, stderr
    assert [line for line in stderr.splitlines() if line.strip() and not line.startswith("hsrecon view:")] == [], stderr


def test_an_extreme_stretch_still_maps_values_across_the_colour_map():
    from hsrecon.view.render import apply_colormap, colormap_lut

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rgba = apply_colormap(np.array([[-1e308, 0.0, 1e308, np.inf]]), -1e308, 1e308, "gray")
    assert rgba[0, :3, 0].tolist() == [0, 128, 255] and rgba[0, 3, 3] == 0  # ends, middle; infinity transparent
    assert colormap_lut("gray")[128, 0] == 128


# --- 16: a split list that is not UTF-8 ----------------------------------------------------------------------


def test_a_split_list_that_is_not_utf8_is_named(tmp_path):
    data = make_arad1k(tmp_path / "arad", np.random.default_rng(7), count=3, valid=1)
    listing = data / "split_txt" / "valid_list.txt"
    listing.write_bytes(b"ARAD_1K_0003\n\xff\xfe broken\n")
    result = hsrecon("eval", "--data", str(data), "-q")
    assert_refused(result, 4, f"{listing}: not UTF-8 text (byte 0xff at offset 13)")
    (data / "split_txt" / "train_list.txt").write_bytes(b"\xffARAD_1K_0001\n")
    trained = run_cli("train", "--data", str(data), "-o", str(tmp_path / "run"), "--max-steps", "1", *SHORT)
    assert_refused(trained, 4, "train_list.txt: not UTF-8 text (byte 0xff at offset 0)")
    assert not (tmp_path / "run").exists()


# --- 17: the smaller ones ---------------------------------------------------------------------------------------


def test_info_on_a_folder_of_weights_says_it_is_a_folder(tmp_path):
    (tmp_path / "w.safetensors").mkdir()
    assert_refused(
        hsrecon("info", "--weights", str(tmp_path / "w.safetensors")), 3, "w.safetensors: a folder, not a weights file"
    )


def test_convert_with_nothing_to_convert_says_so_and_makes_nothing(tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    iio.imwrite(inputs / "a.png", np.full((8, 8, 3), 60, np.uint8))
    out = tmp_path / "out"
    result = hsrecon(
        "convert", str(inputs), "-o", str(out), "--glob", "*.TIF", "--precision", "bf16", "--device", "cpu"
    )
    assert_refused(result, 4, f"{inputs}: no image file matching '*.TIF' to convert")
    assert "hsrecon: note: --precision bf16 on the CPU" in result.stderr  # and it is said before any work
    assert not out.exists()
