"""The per-user cache: entries built once and read back, rebuilt when damaged, never fatal when unwritable."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from hsrecon import cache
from hsrecon.cache import CACHE_ENV, cache_dir, cached_array, disk_cached


@pytest.fixture()
def private(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_the_cache_folder_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "mine"))
    assert cache_dir() == tmp_path / "mine"
    monkeypatch.delenv(CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "hsrecon"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "hsrecon"


def test_a_table_is_computed_once_then_read_back(private):
    calls = []

    def compute():
        calls.append(1)
        return np.linspace(0, 1, 31).reshape(31, 1) * np.array([1.0, 2.0, 3.0])

    first = cached_array("ramp", compute, modules=("physics",))
    second = cached_array("ramp", compute, modules=("physics",))
    assert len(calls) == 1 and np.array_equal(first, second) and not second.flags.writeable
    (entry,) = private.iterdir()
    assert entry.name.startswith("table-ramp-") and entry.suffix == ".npy"
    assert not [p for p in private.iterdir() if p.name.endswith(".tmp")]
    float32 = cached_array("lut", lambda: np.arange(4, dtype=np.float32), modules=("inputs",))
    assert float32.dtype == np.float32  # the table's own type is kept


@pytest.mark.parametrize("damage", [b"not a numpy file", "nan", "object"])
def test_a_damaged_entry_is_rebuilt(private, damage):
    compute = lambda: np.ones((31, 3))  # noqa: E731
    cached_array("ones", compute, modules=("physics",))
    (entry,) = private.iterdir()
    if damage == "nan":
        np.save(entry, np.full((31, 3), np.nan))
    elif damage == "object":
        np.save(entry, np.array([{"a": 1}], dtype=object), allow_pickle=True)  # never unpickled
    else:
        entry.write_bytes(damage)
    np.testing.assert_array_equal(cached_array("ones", compute, modules=("physics",)), np.ones((31, 3)))
    np.testing.assert_array_equal(np.load(entry), np.ones((31, 3)))  # and replaced


def test_an_unwritable_cache_only_costs_time(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv(CACHE_ENV, str(blocker / "cache"))  # a folder inside a file: cannot be made
    value = cached_array("x", lambda: np.zeros(3), modules=("physics",))
    assert np.array_equal(value, np.zeros(3))


def test_an_edited_formula_is_a_new_entry(private, monkeypatch):
    cached_array("t", lambda: np.zeros(2), modules=("physics",))
    monkeypatch.setattr(cache, "source_digest", lambda *modules: "edited")
    assert np.array_equal(cached_array("t", lambda: np.ones(2), modules=("physics",)), np.ones(2))
    assert len(list(private.iterdir())) == 2


def test_disk_cached_keys_on_the_arguments(private):
    @disk_cached("scaled", modules=("physics",))
    def scaled(factor: float) -> np.ndarray:
        return np.full(2, factor)

    assert scaled(2.0)[0] == 2.0 and scaled(3.0)[0] == 3.0 and scaled(2.0)[0] == 2.0
    assert len(list(private.iterdir())) == 2


def test_a_warm_cache_spares_convert_the_colour_science_import(private):
    """The clean rendering's matrix (what convert's round trip needs) comes from the cache in a later process,
    equal to colour-science's, without importing colour-science (most of a second of start-up)."""
    code = (
        "import sys; from hsrecon.physics import ntire2020_clean_matrix as m; import numpy as np; "
        "np.save(sys.argv[1], m()); print('colour' in sys.modules)"
    )
    runs = [
        subprocess.run([sys.executable, "-c", code, str(private.parent / f"{n}.npy")], capture_output=True, text=True)
        for n in (1, 2)
    ]
    assert [run.stdout.strip() for run in runs] == ["True", "False"], [run.stderr for run in runs]
    np.testing.assert_array_equal(np.load(private.parent / "1.npy"), np.load(private.parent / "2.npy"))
