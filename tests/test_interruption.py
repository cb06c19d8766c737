"""Kill ``hsrecon convert`` with SIGKILL, rerun it, and get exactly what an uninterrupted run gives.

SIGKILL is the hard case: the process runs no cleanup at all, so whatever it had half written is still
there. The rerun must skip finished outputs (untouched), redo the rest, remove the killed run's
temporaries, and end with outputs identical to an uninterrupted run and nothing else in the folder.
(Ctrl-C, which does run cleanup, is tested in ``test_convert_cli.py``.)
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from test_cli import hsrecon

from hsrecon.io import is_complete, read_cube
from hsrecon.temps import TEMP_PATTERN

NAMES = ("a", "b", "c", "d")
FORMATS = ("h5", "envi")
pytestmark = pytest.mark.skipif(os.name != "posix", reason="SIGKILL is POSIX")


def _args(inputs: Path, out: Path) -> list[str]:
    return ["convert", str(inputs), "-o", str(out), *(f"--format={fmt}" for fmt in FORMATS), "-q"]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """Four textured images, big enough that each takes a good fraction of a second."""
    folder = tmp_path_factory.mktemp("inputs")
    rng = np.random.default_rng(11)
    for name in NAMES:
        iio.imwrite(folder / f"{name}.png", (rng.random((128, 256, 3)) * 70 + 10).astype(np.uint8))
    return folder


@pytest.fixture(scope="module")
def reference(inputs, tmp_path_factory) -> dict[str, np.ndarray]:
    """The cubes of an uninterrupted run."""
    out = tmp_path_factory.mktemp("reference")
    result = hsrecon(*_args(inputs, out))
    assert result.returncode == 0, result.stderr
    return {name: read_cube(out / f"{name}.h5")[0] for name in NAMES}


def temporaries(out: Path) -> list[str]:
    return [name for _, _, names in os.walk(out) for name in names if TEMP_PATTERN.fullmatch(name)]


def finished(out: Path) -> list[str]:
    return [name for name in NAMES if all(is_complete(out / name, fmt) for fmt in FORMATS)]


def kill_when(args: list[str], ready: Callable[[], bool], timeout: float = 180) -> None:
    """Start ``hsrecon ARGS`` and SIGKILL it as soon as ``ready()`` holds (polled every few ms)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "hsrecon", *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + timeout
    try:
        while not ready():
            assert process.poll() is None, "the run finished before it could be killed"
            assert time.monotonic() < deadline, "the run never reached the point to kill it at"
            time.sleep(0.003)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert process.returncode == -signal.SIGKILL


def stamps(out: Path, names: list[str]) -> dict[str, int]:
    files = [out / f"{name}{suffix}" for name in names for suffix in (".h5", ".hdr", ".img")]
    return {file.name: file.stat().st_mtime_ns for file in files}


def test_killed_mid_batch_then_mid_file_resumes_to_identical_outputs(inputs, reference, tmp_path):
    out = tmp_path / "out"

    kill_when(_args(inputs, out), lambda: bool(finished(out)))  # mid-batch: the first output is complete
    first = finished(out)
    assert first and len(first) < len(NAMES)
    before = stamps(out, first)

    left = set(temporaries(out))  # what the first killed run left behind (if it was inside a file)
    kill_when(_args(inputs, out), lambda: bool(set(temporaries(out)) - left))  # mid-file: new temporaries
    assert not left & set(temporaries(out)), "the second run removed the first one's temporaries"
    assert temporaries(out), "a killed run cannot clean up: its temporaries are still there"
    assert stamps(out, first) == before, "finished outputs were skipped, not redone"
    second = finished(out)
    before = stamps(out, second)

    result = hsrecon(*_args(inputs, out))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert stamps(out, second) == before
    assert temporaries(out) == []
    expected = sorted(f"{name}{suffix}" for name in NAMES for suffix in (".h5", ".hdr", ".img"))
    assert sorted(os.listdir(out)) == expected
    for name in NAMES:
        for suffix in (".h5", ".hdr"):
            cube, _, _ = read_cube(out / f"{name}{suffix}")
            np.testing.assert_array_equal(cube, reference[name], err_msg=f"{name}{suffix}")


def test_a_file_killed_between_formats_gets_only_the_missing_ones(tmp_path, monkeypatch):
    """Killed after the .h5 was renamed into place but before the ENVI pair: the rerun must write the
    ENVI pair and leave the .h5 alone (it used to refuse it as existing)."""
    from test_faults import FakeNet, fake_predictor, files_in
    from typer.testing import CliRunner

    from hsrecon.cli import app

    fake_predictor(monkeypatch, FakeNet())
    folder = tmp_path / "in"
    folder.mkdir()
    iio.imwrite(folder / "a.png", np.full((20, 30, 3), 60, np.uint8))
    out = tmp_path / "out"
    args = ["convert", str(folder), "-o", str(out), "-f", "h5", "-f", "envi", "--preview", "-q"]
    assert CliRunner().invoke(app, args).exit_code == 0
    (out / "a.hdr").unlink()  # as if killed before the ENVI header's rename
    (out / "a.preview.png").unlink()
    stamp = (out / "a.h5").stat().st_mtime_ns
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.stderr
    assert (out / "a.h5").stat().st_mtime_ns == stamp
    assert files_in(out) == ["a.h5", "a.hdr", "a.img", "a.preview.png"]


def test_only_an_orphaned_envi_data_file_of_this_cubes_size_is_replaced(tmp_path):
    from hsrecon.io import CubeWriteError, open_cube_writer

    def write(stem: Path) -> None:
        with open_cube_writer(stem, "envi", height=2, width=3, wavelengths_nm=np.arange(31.0) + 400) as writer:
            writer.write_rows(0, np.ones((2, 3, 31), np.float32))

    (tmp_path / "orphan.img").write_bytes(bytes(2 * 3 * 31 * 4))  # killed between the two renames
    write(tmp_path / "orphan")
    np.testing.assert_array_equal(read_cube(tmp_path / "orphan.hdr")[0], 1.0)
    (tmp_path / "other.img").write_bytes(b"someone's disk image")
    with pytest.raises(CubeWriteError, match="exists"):
        write(tmp_path / "other")
    assert (tmp_path / "other.img").read_bytes() == b"someone's disk image"


def _train_args(data: Path, out: Path, *extra: str) -> list[str]:
    steps = ["--max-steps", "12", "--validate-every", "4", "--batch-size", "2", "--seed", "3"]
    return ["train", "--data", str(data), "-o", str(out), *steps, *extra]


def _logged_steps(out: Path) -> list[int]:
    log = out / "log.jsonl"
    if not log.exists():
        return []
    lines = [line for line in log.read_text().splitlines() if line.endswith("}")]  # the last may be half written
    return [json.loads(line)["step"] for line in lines if '"loss"' in line]


def test_train_killed_mid_epoch_resumes_to_the_weights_of_an_uninterrupted_run(tmp_path):
    from test_data_ntire import make_ntire2020

    from hsrecon.weights import load_weights

    data = make_ntire2020(tmp_path / "data", np.random.default_rng(5), train=(1, 2), valid=(451,))
    reference = hsrecon(*_train_args(data, tmp_path / "reference"))
    assert reference.returncode == 0, reference.stderr

    out = tmp_path / "killed"
    kill_when(_train_args(data, out), lambda: len(_logged_steps(out)) >= 6)  # past the step-4 checkpoint
    killed_at = max(_logged_steps(out))
    assert 6 <= killed_at < 12
    result = hsrecon(*_train_args(data, out, "--resume"))
    assert result.returncode == 0, result.stderr

    expected = load_weights(tmp_path / "reference" / "last.safetensors").state_dict
    resumed = load_weights(out / "last.safetensors").state_dict
    assert expected.keys() == resumed.keys()
    for key, value in expected.items():
        assert torch.equal(value, resumed[key]), key
    assert _logged_steps(out) == list(range(1, 13)), "the log reads as one run: no step twice"
    assert temporaries(out) == []
