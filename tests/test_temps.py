"""Temporaries: a killed run's are removed, a live writer's never, and nothing but hsrecon's own names.

The cleanup decides "abandoned" by trying the temporary's lock, so these tests hold locks from a
second process (a killed process's locks vanish with it; a live one's stay).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hsrecon.batch import BatchItem, run_batch
from hsrecon.io import atomic_file, open_cube_writer, output_files, remove_stale_temps
from hsrecon.temps import TEMP_PATTERN, create_temp, temp_name_for

pytestmark = pytest.mark.skipif(os.name != "posix", reason="liveness is a flock on POSIX")
WAVELENGTHS = np.arange(400.0, 701.0, 10.0)


def test_temporary_names_match_the_pattern(tmp_path):
    name = temp_name_for(tmp_path / "photo.h5")
    match = TEMP_PATTERN.fullmatch(name)
    assert match and match["final"] == "photo.h5"
    temp = create_temp(tmp_path / "photo.h5")
    assert temp.path.parent == tmp_path and TEMP_PATTERN.fullmatch(temp.path.name)
    temp.release()
    temp.release()


def test_abandoned_temporaries_of_the_named_outputs_are_removed(tmp_path):
    finals = [tmp_path / "a.h5", tmp_path / "a.img", tmp_path / "a.hdr"]
    stale = [tmp_path / temp_name_for(final) for final in finals]
    for path in stale:
        path.write_bytes(b"half a cube")
    removed = remove_stale_temps(finals)
    assert sorted(removed) == sorted(stale)
    assert list(tmp_path.iterdir()) == []


def test_only_hsrecon_names_for_these_outputs_are_touched(tmp_path):
    keep = [
        ".b.h5.0123abcd.tmp",  # another output's temporary
        ".a.h5.0123ABCD.tmp",  # not our hex
        ".a.h5.0123abc.tmp",  # 7 digits
        "a.h5.0123abcd.tmp",  # no leading dot
        ".a.h5.0123abcd.tmp.bak",
        ".a.h5.tmp",
        "a.h5",  # the output itself
        "notes.txt",
    ]
    for name in keep:
        (tmp_path / name).write_text("someone's")
    os.symlink("/etc/hostname", tmp_path / ".a.h5.deadbeef.tmp")  # our pattern, but not a regular file
    os.mkfifo(tmp_path / ".a.h5.feedf00d.tmp")  # opening a FIFO would block: must not be opened
    assert remove_stale_temps([tmp_path / "a.h5"]) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*keep, ".a.h5.deadbeef.tmp", ".a.h5.feedf00d.tmp"])


def _hold_lock(path: Path) -> subprocess.Popen:
    """Another process that holds ``path``'s lock until its stdin closes (a live writer)."""
    code = (
        "import fcntl, os, sys\n"
        "fd = os.open(sys.argv[1], os.O_RDWR)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "print('locked', flush=True)\n"
        "sys.stdin.read()\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert process.stdout.readline().strip() == "locked"
    return process


def test_a_live_writers_temporary_is_left_alone(tmp_path):
    temp = tmp_path / temp_name_for(tmp_path / "a.h5")
    temp.write_bytes(b"being written")
    holder = _hold_lock(temp)
    try:
        assert remove_stale_temps([tmp_path / "a.h5"]) == []
        assert temp.exists()
    finally:
        holder.stdin.close()
        holder.wait()
    assert remove_stale_temps([tmp_path / "a.h5"]) == [temp]  # its process ended: now abandoned


def test_an_open_writer_in_this_process_is_alive(tmp_path):
    for fmt in ("h5", "envi", "mat"):
        writer = open_cube_writer(tmp_path / "a", fmt, height=2, width=2, wavelengths_nm=WAVELENGTHS)
        assert remove_stale_temps(output_files(tmp_path / "a", fmt)) == []
        writer.write_rows(0, np.zeros((2, 2, 31), np.float32))
        writer.commit()
        assert sorted(p.name for p in tmp_path.iterdir() if TEMP_PATTERN.fullmatch(p.name)) == []


def test_atomic_file_renames_on_success_and_removes_on_failure(tmp_path):
    final = tmp_path / "x.preview.png"
    with atomic_file(final) as temp:
        temp.write_bytes(b"png")
    assert final.read_bytes() == b"png"
    with pytest.raises(RuntimeError), atomic_file(final) as temp:
        temp.write_bytes(b"half")
        raise RuntimeError("interrupted")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.preview.png"]


def test_a_batch_removes_what_a_killed_run_left_even_for_finished_outputs(tmp_path):
    """A killed ``--overwrite`` run leaves temporaries beside complete outputs that a later run skips."""
    stem = tmp_path / "out" / "a"
    stem.parent.mkdir()
    with open_cube_writer(stem, "h5", height=1, width=1, wavelengths_nm=WAVELENGTHS) as writer:
        writer.write_rows(0, np.zeros((1, 1, 31), np.float32))
    stale = stem.parent / temp_name_for(stem.with_name("a.h5"))
    stale.write_bytes(b"")
    preview = stem.parent / temp_name_for(stem.with_name("a.preview.png"))
    preview.write_bytes(b"")
    summary = run_batch([BatchItem(tmp_path / "a.png", stem)], lambda item, image: None, formats=("h5",))
    assert len(summary.skipped) == 1
    assert sorted(p.name for p in stem.parent.iterdir()) == ["a.h5"]
