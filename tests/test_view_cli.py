"""``hsrecon view``, ``eval --report`` and ``convert --report`` as a user meets them: real subprocesses,
the URL on stdout, a clean stop on Ctrl-C, one-line errors with the documented exit codes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import h5py
import imageio.v3 as iio
import numpy as np
import pytest

from conftest import WAVELENGTHS
from conftest import write_cube as write


def hsrecon(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hsrecon", *args], capture_output=True, text=True, timeout=600)


def one_line_error(result: subprocess.CompletedProcess, code: int, text: str) -> None:
    assert result.returncode == code, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("hsrecon: error:") and text in lines[0], result.stderr


def start_view(*args: str) -> tuple[subprocess.Popen, str]:
    """``hsrecon view … --no-browser`` in the background; returns once it has printed its URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "hsrecon", "view", *args, "--no-browser"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # as from a terminal
    )
    url = process.stdout.readline().strip()  # blocks until the server is listening
    assert url.startswith("http://127.0.0.1:"), process.stderr.read() if process.poll() is not None else url
    return process, url


def stop(process: subprocess.Popen) -> str:
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    return stderr


def test_view_prints_its_url_serves_the_cube_and_stops_cleanly_on_ctrl_c(tmp_path, rng):
    cube = rng.random((12, 16, 31), dtype=np.float32)
    process, url = start_view(str(write(tmp_path / "scene", "envi", cube)))
    try:
        with urllib.request.urlopen(url + "api/meta", timeout=30) as response:
            meta = json.load(response)
        with urllib.request.urlopen(url + "api/spectrum?cube=0&x=15&y=11", timeout=30) as response:
            spectrum = json.load(response)
    finally:
        stderr = stop(process)
    assert meta["cubes"][0]["name"] == "scene.hdr"
    assert spectrum["values"] == [float(v) for v in cube[11, 15]]
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr and "stopped" in stderr


def test_ctrl_c_while_a_large_compressed_cube_is_being_read_stops_at_once(tmp_path, rng):
    """The overview of a gzip HDF5 cube is read in the background from the start; Ctrl-C in the middle of
    it ends the process (a thread left inside h5py at exit would hang it for good)."""
    with h5py.File(tmp_path / "big.h5", "w") as file:
        file.create_dataset(
            "cube", data=rng.random((512, 768, 31), dtype=np.float32), chunks=(64, 64, 31), compression="gzip"
        )
        file["wavelength"] = WAVELENGTHS
    process, url = start_view(str(tmp_path / "big.h5"))
    with urllib.request.urlopen(url + "api/progress?cube=0", timeout=30) as response:
        assert json.load(response)["rows"] == 512  # the read has started (or finished, on a fast machine)
    stderr = stop(process)
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr


def test_view_errors_are_one_line_with_documented_codes(tmp_path, rng):
    cube = rng.random((12, 16, 31), dtype=np.float32)
    a = write(tmp_path / "a", "h5", cube)
    b = write(tmp_path / "b", "h5", cube)
    small = write(tmp_path / "small", "h5", cube[:5])
    one_line_error(hsrecon("view", str(tmp_path / "missing.h5"), "--no-browser"), 4, "no such file")
    one_line_error(hsrecon("view", str(a), str(b), "--gt", str(a), "--no-browser"), 4, "give a folder")
    one_line_error(hsrecon("view", str(a), "--gt", str(small), "--no-browser"), 4, "16×5×31, but a.h5 is 16×12×31")
    (tmp_path / "x[red]y.h5").write_bytes(b"not a cube")
    one_line_error(hsrecon("view", str(tmp_path / "x[red]y.h5"), "--no-browser"), 4, "x[red]y.h5")  # printed as is
    process, url = start_view(str(a))
    try:
        port = url.split(":")[2].split("/")[0]
        one_line_error(hsrecon("view", str(a), "--port", port, "--no-browser"), 2, f"--port {port}: cannot listen")
    finally:
        stop(process)


@pytest.fixture()
def scored(tmp_path, rng):
    (tmp_path / "pred").mkdir()
    (tmp_path / "gt").mkdir()
    for name in ("one", "two"):
        truth = (rng.random((24, 32, 31), dtype=np.float32) * 0.8 + 0.1).astype(np.float32)
        write(tmp_path / "gt" / name, "h5", truth)
        write(tmp_path / "pred" / name, "h5", (truth * 1.1).astype(np.float32))
    return tmp_path


def test_eval_report_is_written_beside_the_table(scored):
    report = scored / "report.html"
    result = hsrecon("eval", "--pred", str(scored / "pred"), "--gt", str(scored / "gt"), "--report", str(report))
    assert result.returncode == 0, result.stderr
    text = report.read_text(encoding="utf-8")
    assert "one.h5" in text and "two.h5" in text and 'data-figure="band-mrae"' in text
    assert f"wrote {report}" in result.stderr
    missing = scored / "nowhere" / "r.html"
    one_line_error(
        hsrecon("eval", "--pred", str(scored / "pred"), "--gt", str(scored / "gt"), "--report", str(missing)),
        5,
        "no such directory",
    )


def test_convert_report_shows_converted_and_already_converted_inputs(tmp_path, rng):
    photos = tmp_path / "photos"
    photos.mkdir()
    iio.imwrite(photos / "tiny.png", (rng.random((64, 64, 3)) * 255).astype(np.uint8))
    (photos / "broken.png").write_bytes(b"not a png")
    out = tmp_path / "cubes"
    args = ["convert", str(photos), "-o", str(out), "--device", "cpu", "-q", "--report"]
    first = hsrecon(*args, str(tmp_path / "first.html"))
    assert first.returncode == 1, first.stderr  # broken.png failed, tiny.png converted
    text = (tmp_path / "first.html").read_text(encoding="utf-8")
    assert "tiny.png" in text and "converted" in text and "broken.png" in text and 'data-figure="spectra-0"' in text
    second = hsrecon(*args, str(tmp_path / "second.html"))
    text = (tmp_path / "second.html").read_text(encoding="utf-8")
    assert "skipped (already converted)" in text and 'data-figure="spectra-0"' in text, second.stderr
    one_line_error(hsrecon(*args, str(tmp_path / "none" / "r.html")), 5, "no such directory")
    assert not Path(tmp_path / "none").exists()
