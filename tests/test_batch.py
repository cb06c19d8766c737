"""Batches: input collection (symlink loops), safe output names, sharding, skip/fail/stop semantics."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from hsrecon.batch import BatchItem, OutputFatalError, collect_inputs, plan_outputs, run_batch, shard


def _image(path):
    iio.imwrite(path, np.full((8, 8, 3), 40, np.uint8))
    return path


def test_symlink_loop_and_non_images(tmp_path):
    root = tmp_path / "in"
    (root / "a" / "b").mkdir(parents=True)
    _image(root / "one.png")
    _image(root / "a" / "b" / "two.jpg")
    (root / "notes.txt").write_text("not an image")
    os.symlink(root, root / "a" / "loop")  # a loop: must not be followed
    found, problems = collect_inputs([root], recursive=True)
    assert problems == []
    assert sorted(p.relative_to(root).as_posix() for p, _ in found) == ["a/b/two.jpg", "one.png"]
    flat, _ = collect_inputs([root])
    assert [p.name for p, _ in flat] == ["one.png"]


def test_output_names_keep_structure_and_resolve_collisions(tmp_path):
    root = tmp_path / "in"
    inputs = [
        (root / "x.png", root),
        (root / "x.jpg", root),
        (root / "sub" / "y.tif", root),
        (tmp_path / "z.bmp", None),
    ]
    items = plan_outputs(inputs, tmp_path / "out")
    assert [item.stem.relative_to(tmp_path / "out").as_posix() for item in items] == ["x_png", "x_jpg", "sub/y", "z"]


def test_crafted_name_cannot_escape(tmp_path):
    with pytest.raises(ValueError, match="leave the output directory"):
        plan_outputs([(tmp_path / "in" / ".." / ".." / "evil.png", tmp_path / "in")], tmp_path / "out")


def test_shard_partitions():
    items = [BatchItem(Path(f"{i}.png"), Path(str(i))) for i in range(7)]
    parts = [shard(items, k, 3) for k in range(3)]
    assert sorted(i.source.name for part in parts for i in part) == sorted(i.source.name for i in items)
    assert [len(p) for p in parts] == [3, 2, 2]
    with pytest.raises(ValueError):
        shard(items, 3, 3)


def test_bad_inputs_fail_alone_and_full_disk_stops(tmp_path):
    good = _image(tmp_path / "good.png")
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n broken")
    items = [BatchItem(good, tmp_path / "o" / "good"), BatchItem(bad, tmp_path / "o" / "bad")]
    done = []
    summary = run_batch(items, lambda item, image: done.append(item.source.name) or item, formats=("h5",))
    assert done == ["good.png"]
    assert len(summary.failed) == 1 and "bad.png" in summary.failed[0][1]

    def disk_full(item, image):
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OutputFatalError, match="No space left"):
        run_batch(items[:1], disk_full, formats=("h5",))
