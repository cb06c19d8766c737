"""Faults outside the inputs: full or read-only output, bad weights, missing CUDA, device out of memory,
non-finite network output. Each is one line on stderr, its own documented exit code, no traceback and
no partial file.

Most run ``hsrecon convert`` in-process (Typer's runner: the same code, without a second of start-up per
case); the real full and read-only file systems are small tmpfs mounts, tried only where this process
may mount (root in CI containers) and skipped elsewhere. HDF5 on a really full disk runs in a
subprocess, since a crash there would take the test runner with it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from test_cli import NO_OVERLAP, hsrecon
from typer.testing import CliRunner

from hsrecon.cli import ExitCode, app
from hsrecon.inference import DeviceOutOfMemoryError, TorchPredictor
from hsrecon.io.h5 import DeferredFailureFile, H5CubeWriter
from hsrecon.model import LWRDANConfig, build_model
from hsrecon.pipeline import stream_reconstruct
from hsrecon.weights import Weights, load_weights, make_meta, save_weights

# -- helpers ----------------------------------------------------------------------------------------------


# The windows these tests count were planned for: 64 px every 32, no pad (6 windows per 40×200 image).
OLD_WINDOWS = ("--window", "64", "--stride", "32", "--pad", "0")


def convert(*args: str):
    """``hsrecon convert ARGS -q`` in this process; returns Typer's result (exit code, stderr)."""
    return CliRunner().invoke(app, ["convert", *args, "-q"])


def assert_one_error(result, code: int, *fragments: str) -> str:
    """Exit ``code``, no exception escaped, stderr (notes aside) one ``hsrecon: error:`` line with the fragments."""
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == code, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith("hsrecon: note:")]
    assert len(lines) == 1 and lines[0].startswith("hsrecon: error:"), result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


@pytest.fixture()
def images(tmp_path) -> Path:
    """Two small images: ``a.png`` dim, ``b.png`` another dim texture."""
    folder = tmp_path / "in"
    folder.mkdir()
    rng = np.random.default_rng(3)
    for name in ("a", "b"):
        iio.imwrite(folder / f"{name}.png", (rng.random((40, 200, 3)) * 70 + 10).astype(np.uint8))
    return folder


@contextlib.contextmanager
def tmpfs(path: Path, options: str) -> Iterator[Path]:
    """A tmpfs mounted at ``path`` (skip the test where mounting is not allowed)."""
    if os.name != "posix" or os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    path.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode(errors='replace').strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


class FakeNet(torch.nn.Module):
    """Stands in for the network: a deterministic 31-band output, and out of memory above ``limit`` windows."""

    def __init__(self, limit: int | None = None, error: Exception | None = None, value: float | None = None) -> None:
        super().__init__()
        self.limit, self.error, self.value = limit, error, value
        self.refused = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.limit is not None and x.shape[0] > self.limit:
            self.refused += 1
            raise self.error or torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        out = x.mean(1, keepdim=True) * torch.linspace(0.5, 1.5, 31).view(1, 31, 1, 1)
        if self.value is not None and bool((x > 0.9).any()):
            out = out + self.value  # e.g. NaN for bright inputs only
        return out


def fake_predictor(monkeypatch, net: FakeNet) -> None:
    """Make ``hsrecon convert`` run ``net`` instead of the real network (the rest unchanged)."""

    def make(weights, **options):
        return TorchPredictor(net, device=options.get("device", "cpu"), on_note=options.get("on_note"))

    monkeypatch.setattr(Weights, "predictor", make)


# -- device out of memory ---------------------------------------------------------------------------------


def _reconstruct(predict, batch_size: int) -> np.ndarray:
    image = np.random.default_rng(0).random((50, 90, 3), dtype=np.float32)
    out = np.empty((50, 90, 31), np.float32)
    stream_reconstruct(
        image, lambda r: r, predict, lambda y, r: out.__setitem__(slice(y, y + len(r)), r),
        window=16, stride=8, batch_size=batch_size,
    )  # fmt: skip
    return out


def test_out_of_memory_halves_the_batch_and_gives_the_same_cube():
    notes: list[str] = []
    net = FakeNet(limit=2)
    predict = TorchPredictor(net, on_note=notes.append)
    cube = _reconstruct(predict, batch_size=16)
    np.testing.assert_array_equal(cube, _reconstruct(TorchPredictor(FakeNet()), batch_size=16))
    assert predict.max_batch == 2
    assert notes == [
        "cpu: out of memory with 16 windows per pass; retrying with 8",
        "cpu: out of memory with 8 windows per pass; retrying with 4",
        "cpu: out of memory with 4 windows per pass; retrying with 2",
    ]
    refused = net.refused
    _reconstruct(predict, batch_size=16)  # the size that worked is kept: no new failure
    assert net.refused == refused


@pytest.mark.parametrize(
    "error",
    [
        RuntimeError("CUDA out of memory. Tried to allocate 20.00 MiB"),
        RuntimeError("MPS backend out of memory (MPS allocated: 1.2 GB)"),
        RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 123 bytes"),
        MemoryError(),
    ],
)
def test_every_kind_of_out_of_memory_is_retried(error):
    predict = TorchPredictor(FakeNet(limit=3, error=error))
    _reconstruct(predict, batch_size=8)
    assert predict.max_batch == 2


def test_other_errors_are_not_mistaken_for_out_of_memory():
    predict = TorchPredictor(FakeNet(limit=3, error=RuntimeError("cuDNN error: CUDNN_STATUS_EXECUTION_FAILED")))
    with pytest.raises(RuntimeError, match="CUDNN_STATUS"):
        _reconstruct(predict, batch_size=8)
    assert predict.max_batch is None


def test_out_of_memory_at_one_window_is_an_error():
    with pytest.raises(DeviceOutOfMemoryError, match="even with one window"):
        _reconstruct(TorchPredictor(FakeNet(limit=0)), batch_size=4)


def test_convert_recovers_from_out_of_memory_with_a_note(images, tmp_path, monkeypatch):
    fake_predictor(monkeypatch, FakeNet(limit=2))
    result = CliRunner().invoke(
        app, ["convert", str(images), "-o", str(tmp_path / "out"), "-f", "h5", *OLD_WINDOWS, "-q"]
    )
    assert result.exit_code == 0, result.stderr
    notes = [line for line in result.stderr.splitlines() if line.strip()]
    assert notes == [
        "hsrecon: note: cpu: out of memory with 6 windows per pass; retrying with 3",  # 6 windows per image
        "hsrecon: note: cpu: out of memory with 3 windows per pass; retrying with 2",  # then kept for b.png
    ]
    assert files_in(tmp_path / "out") == ["a.h5", "b.h5"]


def test_convert_out_of_memory_at_one_window_stops_with_exit_6(images, tmp_path, monkeypatch):
    fake_predictor(monkeypatch, FakeNet(limit=0))
    result = convert(str(images), "-o", str(tmp_path / "out"), "-f", "h5", "--batch-size", "4", *OLD_WINDOWS)
    assert result.stderr.count("hsrecon: note:") == 2  # 4 → 2 → 1
    assert_one_error(result, 6, "out of memory", "--batch-size 4", "--window", "--device cpu")
    assert files_in(tmp_path / "out") == []  # the file in progress was removed, the batch stopped


# -- full and read-only output ------------------------------------------------------------------------------


def test_disk_full_in_a_writer_is_one_line_exit_5_and_no_partial_file(images, tmp_path, monkeypatch):
    def disk_full(self, y0, rows):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(H5CubeWriter, "_write_block", disk_full)
    fake_predictor(monkeypatch, FakeNet())
    result = convert(str(images), "-o", str(tmp_path / "out"), "-f", "h5")
    assert_one_error(result, 5, "a.h5", "No space left on device", "stopping")
    assert files_in(tmp_path / "out") == []


def test_disk_full_under_hdf5_is_kept_from_hdf5(images, tmp_path, monkeypatch):
    """The file system refuses a write in the middle of HDF5's own flushing: HDF5 never sees the error
    (it would break), the writer reports it, and the temporary is gone."""
    budget = {"bytes": 20_000}
    write_all = DeferredFailureFile._write_all

    def small_disk(self, view):
        budget["bytes"] -= len(view)
        if budget["bytes"] < 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        write_all(self, view)

    monkeypatch.setattr(DeferredFailureFile, "_write_all", small_disk)
    fake_predictor(monkeypatch, FakeNet())
    for fmt in ("h5", "mat"):
        budget["bytes"] = 20_000
        out = tmp_path / f"out_{fmt}"
        assert_one_error(convert(str(images), "-o", str(out), "-f", fmt), 5, f"a.{fmt}", "No space left on device")
        assert files_in(out) == []


@pytest.mark.parametrize("fmt", ["h5", "envi"])  # .mat is HDF5 written the same way
def test_a_really_full_disk(images, tmp_path, fmt):
    """A 1 MB tmpfs and a cube of 2.5 MB: through the real CLI, in a subprocess (HDF5 on a full disk
    used to print tracebacks from its destructors and crash the interpreter at exit)."""
    big = images / "big.png"
    iio.imwrite(big, (np.random.default_rng(1).random((128, 160, 3)) * 70 + 10).astype(np.uint8))
    with tmpfs(tmp_path / "small", "size=1m") as out:
        result = hsrecon(
            "convert",
            str(big),
            str(images / "a.png"),
            "-o",
            str(out),
            "-f",
            fmt,
            *NO_OVERLAP,
            "-q",
        )
        assert result.returncode == 5, result.stderr
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and "big" in lines[0] and "No space left on device" in lines[0], result.stderr
        assert files_in(out) == []


def test_read_only_output_folder(images, tmp_path, monkeypatch):
    fake_predictor(monkeypatch, FakeNet())
    folder = tmp_path / "ro"
    if os.name == "posix" and os.geteuid() != 0:
        folder.mkdir()
        folder.chmod(0o555)  # enough for anyone but root
        context: contextlib.AbstractContextManager = contextlib.nullcontext(folder)
    else:
        context = tmpfs(folder, "ro,size=1m")
    with context as out:
        result = convert(str(images), "-o", str(out), "-f", "h5")
        assert_one_error(result, 5, "a.h5")
        assert any(words in result.stderr for words in ("Read-only file system", "Permission denied"))
        assert files_in(out) == []


# -- weights and devices ------------------------------------------------------------------------------------


def _truncated(tmp_path: Path) -> Path:
    data = load_weights().path.read_bytes()
    path = tmp_path / "cut.safetensors"
    path.write_bytes(data[: len(data) // 2])
    return path


def _other_model(tmp_path: Path) -> Path:
    small = build_model(LWRDANConfig(widths=(4, 8, 16), dense_width=8))
    meta = make_meta(build_model(), window_size=64, input_space="ntire2020-clean", weights_version="x")
    return save_weights(tmp_path / "other.safetensors", small.state_dict(), meta)


def _not_safetensors(tmp_path: Path) -> Path:
    path = tmp_path / "notes.safetensors"
    path.write_text("not weights at all\n")
    return path


def _pickle(tmp_path: Path) -> Path:
    path = tmp_path / "model.pth"
    torch.save(build_model().state_dict(), path)
    return path


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (_truncated, "truncated"),
        (_other_model, "shape"),
        (_not_safetensors, "not a safetensors file"),
        (_pickle, "never loads"),
    ],
)
def test_bad_weights_are_exit_3_before_any_work(images, tmp_path, make, problem):
    weights = make(tmp_path)
    result = convert(str(images), "-o", str(tmp_path / "out"), "--weights", str(weights))
    assert_one_error(result, 3, str(weights), problem)
    assert not (tmp_path / "out").exists()


def test_cuda_where_there_is_none_is_exit_6(images, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    result = convert(str(images), "-o", str(tmp_path / "out"), "--device", "cuda")
    assert_one_error(result, 6, "no CUDA device")
    assert not (tmp_path / "out").exists()


# -- non-finite network output ------------------------------------------------------------------------------


def test_nan_from_the_network_fails_that_file_only(images, tmp_path, monkeypatch):
    iio.imwrite(images / "bright.png", np.full((40, 200, 3), 250, np.uint8))
    fake_predictor(monkeypatch, FakeNet(value=float("nan")))
    out = tmp_path / "out"
    result = convert(str(images), "-o", str(out), "-f", "h5", "-f", "envi", *OLD_WINDOWS)
    assert_one_error(result, 1, "bright.png", "non-finite values", "window at (0, 0)")
    assert files_in(out) == ["a.h5", "a.hdr", "a.img", "b.h5", "b.hdr", "b.img"]


def test_overflowing_weights_are_caught_per_file(images, tmp_path):
    """Real weights whose last convolution overflows float32: every file is refused, none written."""
    model = load_weights().build()
    with torch.no_grad():
        model.fusion.weight.fill_(3e38)
    meta = make_meta(model, window_size=64, input_space="ntire2020-clean", weights_version="overflow")
    weights = save_weights(tmp_path / "overflow.safetensors", model.state_dict(), meta)
    out = tmp_path / "out"
    result = convert(str(images), "-o", str(out), "-f", "h5", "--weights", str(weights), *NO_OVERLAP)
    assert result.exit_code == 1 and "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("hsrecon: error:")]
    assert len(errors) == 2 and all("non-finite values" in line for line in errors), result.stderr
    assert files_in(out) == []


def test_eval_out_of_memory_at_one_window_stops_with_exit_6(tmp_path, monkeypatch):
    from test_data_ntire import make_ntire2020

    data = make_ntire2020(tmp_path / "data", np.random.default_rng(2), train=(), valid=(451, 452))
    monkeypatch.setattr(Weights, "predictor", lambda weights, **options: TorchPredictor(FakeNet(limit=0)))
    args = ["eval", "--data", str(data), "--batch-size", "4", "--json", str(tmp_path / "r.json")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == ExitCode.DEVICE, result.stderr
    assert "out of memory even with one window" in result.stderr and "--batch-size 4 was halved" in result.stderr
    assert "Traceback" not in result.stderr and isinstance(result.exception, SystemExit)
    assert not (tmp_path / "r.json").exists(), "no report that looks complete"
