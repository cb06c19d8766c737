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


def _outputs_of(items, out: Path) -> list[Path]:
    """Every file the items' outputs (all formats and the preview) would create."""
    from hsrecon.io import FORMATS, output_files
    from hsrecon.io.base import preview_path

    return [p for item in items for fmt in FORMATS for p in [*output_files(item.stem, fmt), preview_path(item.stem)]]


@pytest.mark.parametrize(
    "name",
    [
        "..png",  # stem "." would name the output folder itself (and write out.h5 beside it)
        "...png",  # stem ".." would name its parent
        "....png",
        "a..b.png",
        "..hidden.png",
        "C:\\Windows\\evil.png",  # absolute-looking on Windows, a plain name here
        "\\\\server\\share\\evil.png",
        "-rf.png",
        "new\nline.png",
        os.fsdecode(b"caf\xe9 \xff.png"),  # not UTF-8
    ],
)
def test_crafted_names_stay_inside_the_output_folder(tmp_path, name):
    root, out = tmp_path / "in", tmp_path / "out"
    for file, folder in [(root / name, root), (root / "sub" / name, root), (tmp_path / "elsewhere" / name, None)]:
        items = plan_outputs([(file, folder)], out)
        assert len(items) == 1
        for path in _outputs_of(items, out):
            assert path.resolve().parent.is_relative_to(out.resolve()), path
            assert path.name not in (".", "..") and path.parent != out.parent


def test_absolute_input_paths_keep_only_their_name(tmp_path):
    items = plan_outputs([(Path("/abs/deep/photo.png"), None)], tmp_path / "out")
    assert items[0].stem == tmp_path / "out" / "photo"


def test_a_symlinked_output_subfolder_cannot_carry_outputs_away(tmp_path):
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    os.symlink(elsewhere, out / "sub")
    inputs = [(tmp_path / "in" / "sub" / "x.png", tmp_path / "in"), (tmp_path / "in" / "y.png", tmp_path / "in")]
    with pytest.raises(ValueError, match="leave the output directory"):
        plan_outputs(inputs, out)
    problems: list[str] = []
    items = plan_outputs(inputs, out, problems)
    assert [item.source.name for item in items] == ["y.png"]
    assert len(problems) == 1 and "x.png: output name would leave the output directory" in problems[0]


def test_every_collision_is_resolved(tmp_path):
    root = tmp_path / "in"
    names = ["a.png", "a.jpg", "a_png.png", "a.PNG", "..png", "_.png"]
    items = plan_outputs([(root / name, root) for name in names], tmp_path / "out")
    stems = [item.stem.name for item in items]
    assert len(set(stems)) == len(stems), stems
    assert stems[:2] == ["a_png", "a_jpg"]  # the documented rule first


def test_a_fatal_error_type_stops_the_batch(tmp_path):
    items = [BatchItem(_image(tmp_path / f"{n}.png"), tmp_path / "o" / n) for n in ("a", "b")]

    class ExhaustedError(RuntimeError):
        pass

    def convert(item, image):
        raise ExhaustedError("the device is out of memory")

    with pytest.raises(ExhaustedError):
        run_batch(items, convert, formats=("h5",), fatal=(ExhaustedError,))
    summary = run_batch(items, convert, formats=("h5",))  # not declared fatal: each file fails alone
    assert len(summary.failed) == 2
