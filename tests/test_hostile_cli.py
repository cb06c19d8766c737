"""Hostile use of the command line, round 2: names, options, environment, signals, and runs side by side.

What a user (or a scheduler, or an attacker naming files) does to ``hsrecon convert`` beyond the inputs'
contents. Each case: the documented exit code, one ``hsrecon: error:`` line where something is wrong,
no traceback, no temporary left, and the other files of the batch converted.
"""

from __future__ import annotations

import builtins
import fcntl
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
from test_cli import assert_clean_failure, hsrecon
from test_faults import FakeNet, fake_predictor, files_in
from typer.testing import CliRunner

from hsrecon.cli import app
from hsrecon.io import is_complete, read_cube
from hsrecon.temps import TEMP_PATTERN, temp_name_for

pytestmark = pytest.mark.skipif(os.name != "posix", reason="signals, flock and byte names are POSIX")


def _image(path: Path, height: int = 24, width: int = 40, seed: int = 0) -> Path:
    iio.imwrite(path, (np.random.default_rng(seed).random((height, width, 3)) * 70 + 10).astype(np.uint8))
    return path


def _temporaries(folder: Path) -> list[str]:
    return [name for _, _, names in os.walk(folder) for name in names if TEMP_PATTERN.fullmatch(name)]


def _errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("hsrecon: error:")]


@pytest.fixture()
def two(tmp_path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    _image(folder / "a.png", seed=1)
    _image(folder / "b.png", seed=2)
    return folder


# --- 6: names are printed as one line each, as they are ---------------------------------------------------


def test_control_characters_and_markup_in_names_cannot_forge_or_restyle_lines(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    forged = "x\nhsrecon: error: forged.png"
    _image(folder / forged)
    (folder / "bad\x1b[31mred.png").write_bytes(b"not an image")
    (folder / "[bold red]m.png").write_bytes(b"not an image either")
    (folder / "tab\there\u202egnp.png").write_bytes(b"")
    out = tmp_path / "out"
    result = hsrecon("convert", str(folder), "-o", str(out), "-f", "h5", "--stride", "64")
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    errors = _errors(result.stderr)
    assert len(errors) == 3, result.stderr
    assert not any(line.startswith("hsrecon: error: forged") for line in result.stderr.splitlines())
    assert any("bad\\x1b[31mred.png: not a readable image" in line for line in errors), errors
    assert any("[bold red]m.png: not a readable image" in line for line in errors), errors
    assert any("tab\\there\\u202egnp.png: not a readable image (empty file)" in line for line in errors), errors
    assert "x\\nhsrecon: error: forged" in result.stderr  # the summary table names it, escaped
    assert "\x1b[31m" not in result.stderr
    assert (out / "x\nhsrecon: error: forged.h5").is_file()  # the file itself keeps its name


# --- 8: option values that cannot work are refused before any work -----------------------------------------


@pytest.mark.parametrize(
    ("option", "fragment"),
    [
        (["--window", "100000"], "--window 100000: must be a multiple of 4 from 4 to 1024"),
        (["--window", "0"], "--window 0: must be a multiple of 4 from 4 to 1024"),
        (["--stride", "0"], "--stride 0: must be between 1 and the window (192)"),
        (["--pad", "-1"], "--pad -1: must be from 0 to 1024"),
        (["--pad", "5000"], "--pad 5000: must be from 0 to 1024"),
        (["--exposure", "inf"], "--exposure 'inf': must be a positive finite number"),
        (["--exposure", "nan"], "--exposure 'nan': must be a positive finite number"),
        (["--batch-size", "0"], "--batch-size 0: must be at least 1"),
        (["--batch-size", "100000"], "--batch-size 100000: at most 28 windows of 192 px (2^20 pixels per pass)"),
    ],
)
def test_impossible_option_values_exit_2(two, tmp_path, option, fragment):
    out = tmp_path / "out"
    result = hsrecon("convert", str(two), "-o", str(out), *option)
    assert_clean_failure(result, 2, fragment)
    assert not out.exists()


# --- 9: a format twice, and "exists" in the CLI's words ---------------------------------------------------


def test_the_same_format_twice_is_written_once(two, tmp_path):
    out = tmp_path / "out"
    result = hsrecon("convert", str(two), "-o", str(out), "-f", "h5", "-f", "h5", "--stride", "64", "-q")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert files_in(out) == ["a.h5", "b.h5"]


def test_an_existing_incomplete_output_names_the_overwrite_option(two, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.h5").write_bytes(b"someone's notes, not a cube")
    result = hsrecon("convert", str(two), "-o", str(out), "-f", "h5", "--stride", "64", "-q")
    assert result.returncode == 1
    assert _errors(result.stderr) == [
        f"hsrecon: error: {out / 'a.h5'}: exists but is not a complete output; remove it, or pass --overwrite "
        "to replace it"
    ]
    assert (out / "a.h5").read_bytes() == b"someone's notes, not a cube"
    assert is_complete(out / "b", "h5") and _temporaries(out) == []


# --- 10: sharding from the environment -------------------------------------------------------------------


def _environment(**variables: str) -> dict[str, str]:
    names = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "TORCHELASTIC_RUN_ID", "GROUP_RANK", "LOCAL_WORLD_SIZE")
    environment = {key: value for key, value in os.environ.items() if key not in names}
    return {**environment, **variables}


def _convert_with(environment: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "hsrecon", "convert", *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=300,
    )


@pytest.mark.parametrize(
    ("variables", "fragment"),
    [
        ({"RANK": "abc", "WORLD_SIZE": "2"}, "RANK='abc' in the environment: expected a whole number"),
        ({"RANK": "5", "WORLD_SIZE": "2"}, "RANK=5, WORLD_SIZE=2 in the environment: RANK must be from 0 to"),
        ({"RANK": "0", "WORLD_SIZE": "0"}, "RANK=0, WORLD_SIZE=0 in the environment"),
        ({"RANK": "1"}, "RANK is set in the environment but WORLD_SIZE is not"),
        ({"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "x"}, "LOCAL_RANK='x' in the environment"),
    ],
)
def test_impossible_sharding_variables_exit_2(two, tmp_path, variables, fragment):
    result = _convert_with(_environment(**variables), str(two), "-o", str(tmp_path / "out"), "-q")
    assert_clean_failure(result, 2, fragment)


def test_a_stray_share_in_the_environment_is_said(two, tmp_path):
    out = tmp_path / "out"
    args = (str(two), "-o", str(out), "-f", "h5", "--stride", "64")
    result = _convert_with(_environment(RANK="1", WORLD_SIZE="2"), *args)
    assert result.returncode == 0, result.stderr
    notes = [line for line in result.stderr.splitlines() if line.startswith("hsrecon: note:")]
    assert notes == [
        "hsrecon: note: RANK=1 and WORLD_SIZE=2 are set in the environment (not by torchrun): converting only "
        "share 2 of 2 of the files; unset them to convert all"
    ]
    assert "share 2 of 2 (RANK/WORLD_SIZE in the environment)" in result.stderr  # the summary's caption
    assert files_in(out) == ["b.h5"]
    under_torchrun = _convert_with(_environment(RANK="0", WORLD_SIZE="2", LOCAL_RANK="0"), *args)
    assert under_torchrun.returncode == 0, under_torchrun.stderr
    assert "hsrecon: note:" not in under_torchrun.stderr and "share 1 of 2 (torchrun rank 0)" in under_torchrun.stderr
    assert files_in(out) == ["a.h5", "b.h5"]


# --- 11: SIGTERM and SIGHUP stop like Ctrl-C; an ignored signal stays ignored --------------------------------


def _stop_mid_file(
    args: list[str], out: Path, sent: signal.Signals, ignored: tuple = (), after: tuple[str, ...] = ()
) -> subprocess.Popen:
    """Start ``hsrecon ARGS`` with ``ignored`` signals ignored (as nohup does), SIGSTOP it once its
    temporaries exist (and the files ``after`` are finished), check it is mid-file, send ``sent`` and
    continue it (see the Ctrl-C test)."""

    def ready() -> bool:
        # ``after`` first: once those files are final, any temporary seen next belongs to the file in progress
        # (checking temporaries first could see the last of ``after``'s, just before its rename)
        return out.is_dir() and all((out / name).is_file() for name in after) and bool(_temporaries(out))

    def dispositions() -> None:
        for number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(number, signal.SIG_IGN if number in ignored else signal.SIG_DFL)

    process = subprocess.Popen(
        [sys.executable, "-m", "hsrecon", *args], stderr=subprocess.PIPE, text=True, preexec_fn=dispositions
    )
    try:
        deadline = time.monotonic() + 300
        while not ready():
            assert process.poll() is None, "the run ended before it wrote anything"
            assert time.monotonic() < deadline, "the run never started writing"
            time.sleep(0.002)
        process.send_signal(signal.SIGSTOP)
        assert _temporaries(out), "stopped mid-file"
    except BaseException:
        process.kill()  # never leave a stopped child behind a failed test
        process.communicate()
        raise
    process.send_signal(sent)
    process.send_signal(signal.SIGCONT)
    return process


@pytest.fixture(scope="module")
def big_and_small(tmp_path_factory) -> Path:
    """``a.png`` small (converted first, in well under a second), ``b.png`` 1536×1536 (seconds of work)."""
    folder = tmp_path_factory.mktemp("signals")
    _image(folder / "a.png", 16, 16, seed=3)
    _image(folder / "b.png", 1536, 1536, seed=4)
    return folder


@pytest.mark.parametrize(("sent", "code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_sigterm_and_sighup_stop_cleanly(big_and_small, tmp_path, sent, code):
    out = tmp_path / "out"
    args = ["convert", str(big_and_small), "-o", str(out), "-f", "envi", "-f", "h5", "-q"]
    process = _stop_mid_file(args, out, sent, after=("a.h5", "a.hdr"))
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == code, stderr
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"hsrecon: error: interrupted ({sent.name}): finished"), stderr
    assert _temporaries(out) == []
    assert files_in(out) == ["a.h5", "a.hdr", "a.img"]  # the finished file is kept, b's partial removed


def test_a_signal_ignored_at_start_stays_ignored(tmp_path):
    """``nohup hsrecon …``: SIGHUP is ignored on purpose, so the run carries on to the end."""
    folder = tmp_path / "in"
    folder.mkdir()
    _image(folder / "a.png", 256, 256, seed=5)
    out = tmp_path / "out"
    process = _stop_mid_file(["convert", str(folder), "-o", str(out), "-f", "h5", "-q"], out, signal.SIGHUP, (1,))
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr
    assert files_in(out) == ["a.h5"]


# --- 11: temporaries: of every format swept, and short enough whenever the name is --------------------------


def test_stale_temporaries_of_any_format_are_swept_and_long_names_convert(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    long_name = "n" * 247 + ".png"  # 251 characters: its outputs' names fit (250), a plain temporary's not
    _image(folder / long_name)
    _image(folder / "a.png")
    out = tmp_path / "out"
    out.mkdir()
    stale = [temp_name_for(out / name) for name in ("a.img", "a.hdr", "a.mat", "a.preview.png", "n" * 247 + ".h5")]
    for name in stale:
        (out / name).write_bytes(b"left by a run killed while it wrote other formats")
    assert max(len(name) for name in stale) <= 255
    result = hsrecon("convert", str(folder), "-o", str(out), "-f", "h5", "-f", "envi", "--stride", "64", "-q")
    assert result.returncode == 0, result.stderr
    assert _temporaries(out) == []
    expected = [f"{stem}{suffix}" for stem in ("a", "n" * 247) for suffix in (".h5", ".hdr", ".img")]
    assert files_in(out) == sorted(expected)
    assert read_cube(out / ("n" * 247 + ".h5"))[0].shape == (24, 40, 31)


# --- 12: two runs into one folder -------------------------------------------------------------------------


def test_an_output_another_run_finishes_just_before_this_one_opens_it_is_kept(two, tmp_path, monkeypatch):
    """Deterministic: the other run's a.h5 lands between this run's choice of formats and its writer's
    opening (the window in which two real runs raced once); this run leaves it, with a note, exit 0."""
    import shutil

    import hsrecon.batch as batch

    fake_predictor(monkeypatch, FakeNet())
    first = tmp_path / "first"
    assert CliRunner().invoke(app, ["convert", str(two), "-o", str(first), "-f", "h5", "-q"]).exit_code == 0
    out = tmp_path / "out"
    original, calls = batch.pending_formats, []

    def other_run_commits_meanwhile(stem, formats, overwrite=False):
        pending = original(stem, formats, overwrite)
        calls.append(stem.name)
        if stem.name == "a" and calls.count("a") == 2:  # 1: is it done? 2: which formats to write
            shutil.copy(first / "a.h5", out / "a.h5")
        return pending

    monkeypatch.setattr(batch, "pending_formats", other_run_commits_meanwhile)
    result = CliRunner().invoke(app, ["convert", str(two), "-o", str(out), "-f", "h5", "-q"])
    assert result.exit_code == 0, result.stderr
    assert result.stderr.splitlines() == [
        f"hsrecon: note: {two / 'a.png'}: a.h5 was finished meanwhile by another run; left as it is"
    ]
    assert files_in(out) == ["a.h5", "b.h5"]
    assert calls.count("a") == 2


def test_a_file_another_run_is_writing_is_left_to_it(two, tmp_path, monkeypatch):
    """Deterministic: this test holds a live lock on a temporary of a.h5, as a running process would."""
    fake_predictor(monkeypatch, FakeNet())
    out = tmp_path / "out"
    out.mkdir()
    held = out / temp_name_for(out / "a.h5")
    fd = os.open(held, os.O_WRONLY | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        result = CliRunner().invoke(app, ["convert", str(two), "-o", str(out), "-f", "h5", "-q"])
    finally:
        os.close(fd)
    assert result.exit_code == 0, result.stderr
    assert result.stderr.splitlines() == [
        f"hsrecon: note: {two / 'a.png'}: being written by another run ({held.name}); left to it"
    ]
    assert files_in(out) == sorted(["b.h5", held.name])  # the other run's temporary untouched
    again = CliRunner().invoke(app, ["convert", str(two), "-o", str(out), "-f", "h5", "-q"])
    assert again.exit_code == 0 and files_in(out) == ["a.h5", "b.h5"]  # its writer gone: swept, then converted


def test_two_runs_into_one_folder_at_once_both_succeed(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for index in range(4):
        _image(folder / f"{index}.png", 128, 128, seed=index)
    out = tmp_path / "out"
    args = [sys.executable, "-m", "hsrecon", "convert", str(folder), "-o", str(out), "-f", "h5", "-f", "envi", "-q"]
    runs = [subprocess.Popen(args, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(run.wait(timeout=300), run.stderr.read()) for run in runs]
    for code, stderr in results:
        assert code == 0, stderr
        assert _errors(stderr) == [] and "Traceback" not in stderr, stderr
        assert all("another" in line for line in stderr.splitlines()), stderr  # notes only, if any
    assert _temporaries(out) == []
    assert files_in(out) == sorted(f"{index}{suffix}" for index in range(4) for suffix in (".h5", ".hdr", ".img"))
    alone = tmp_path / "alone"
    assert hsrecon("convert", str(folder), "-o", str(alone), "-f", "h5", "-q").returncode == 0
    for index in range(4):
        for suffix in (".h5", ".hdr"):
            np.testing.assert_array_equal(read_cube(out / f"{index}{suffix}")[0], read_cube(alone / f"{index}.h5")[0])


# --- 13: a run never converts its own outputs --------------------------------------------------------------


def test_previews_written_into_the_input_folder_are_not_inputs_next_time(two, monkeypatch):
    fake_predictor(monkeypatch, FakeNet())
    args = ["convert", str(two), "-o", str(two), "-f", "h5", "--preview", "-q"]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.stderr
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0, again.stderr
    assert again.stderr.splitlines() == [
        "hsrecon: note: 2 of the inputs are outputs of the others (e.g. a.preview.png): not converted"
    ]
    assert files_in(two) == ["a.h5", "a.png", "a.preview.png", "b.h5", "b.png", "b.preview.png"]


def test_a_recursive_walk_does_not_enter_the_output_folder(two, monkeypatch):
    fake_predictor(monkeypatch, FakeNet())
    out = two / "cubes"
    args = ["convert", str(two), "-o", str(out), "-r", "--glob", "*", "-f", "h5", "--preview", "-q"]
    assert CliRunner().invoke(app, args).exit_code == 0
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0 and again.stderr == "", again.stderr
    assert files_in(out) == ["a.h5", "a.preview.png", "b.h5", "b.preview.png"]


# --- 5: unreadable inputs fail alone; an unlistable folder is said ------------------------------------------


def test_an_unreadable_file_and_an_unlistable_folder_are_one_line_each(two, tmp_path, monkeypatch):
    """Root reads every file, so permission is refused here the way the kernel would refuse it."""
    fake_predictor(monkeypatch, FakeNet())
    (two / "locked").mkdir()
    _image(two / "locked" / "c.png")
    refused = {two / "b.png", two / "locked"}
    real_open, real_scandir = builtins.open, os.scandir

    def refuse(path: object) -> None:
        if isinstance(path, str | bytes | os.PathLike) and Path(os.fsdecode(path)) in refused:
            raise PermissionError(13, "Permission denied", os.fsdecode(path))

    def guarded_open(file, *args, **kwargs):
        refuse(file)
        return real_open(file, *args, **kwargs)

    def guarded_scandir(path="."):
        refuse(path)
        return real_scandir(path)

    monkeypatch.setattr(builtins, "open", guarded_open)
    monkeypatch.setattr(os, "scandir", guarded_scandir)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["convert", str(two), "-o", str(out), "-r", "-f", "h5", "-q"])
    assert result.exit_code == 1, result.stderr
    assert sorted(_errors(result.stderr)) == [
        f"hsrecon: error: {two / 'b.png'}: cannot be read (Permission denied)",
        f"hsrecon: error: {two / 'locked'}: cannot list this folder (Permission denied); its files are left out",
    ]
    assert files_in(out) == ["a.h5"]
