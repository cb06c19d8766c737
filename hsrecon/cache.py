"""The per-user cache: what is built once per machine (the int8 network of a set of weights, colour tables
derived from colour-science) and reused by every later run, so that start-up stays under a second.

Where: ``$HSRECON_CACHE_DIR``, else ``$XDG_CACHE_HOME/hsrecon``, else ``~/.cache/hsrecon``. Each entry is one
file named by a key (:func:`cache_key`: a SHA-256 of everything the content depends on: the weights' digest,
the recipe's version, the library versions), so a changed input is a new name, never a stale hit, and no
entry is ever updated in place. Entries are written to a temporary beside their final name and renamed
(:func:`hsrecon.temps.atomic_file`): two runs building the same entry at once each write a complete
file, and the last rename wins with the same content; a reader sees a whole file or none.

The cache only saves time: an entry that cannot be read, fails its check, or cannot be written (read-only
home, full disk) is rebuilt in memory, with a note at most (``on_note``), and the run goes on. Nothing here
is a pickle: arrays are ``.npy`` read with ``allow_pickle=False``, networks ONNX graphs.
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

__all__ = [
    "CACHE_ENV",
    "cache_dir",
    "cache_key",
    "cached_array",
    "disk_cached",
    "read_entry",
    "source_digest",
    "write_entry",
]

CACHE_ENV = "HSRECON_CACHE_DIR"


def cache_dir() -> Path:
    """The cache folder (not created here): ``$HSRECON_CACHE_DIR``, ``$XDG_CACHE_HOME/hsrecon`` or
    ``~/.cache/hsrecon``."""
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "hsrecon"


def cache_key(*parts: object) -> str:
    """24 hex digits of the SHA-256 of ``parts`` (their ``repr``s, in order): an entry's name."""
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:24]


def read_entry(name: str) -> bytes | None:
    """An entry's bytes, or None when it is absent or unreadable."""
    try:
        return (cache_dir() / name).read_bytes()
    except OSError:
        return None


def write_entry(name: str, data: bytes) -> Path | None:
    """Store an entry atomically; its path, or None when the cache cannot be written (the run goes on)."""
    from hsrecon.temps import atomic_file

    final = cache_dir() / name
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(final) as temp:
            temp.write_bytes(data)
    except OSError:
        return None
    return final


@functools.cache
def source_digest(*modules: str) -> str:
    """The SHA-256 of the named hsrecon modules' source files: part of the key of anything they compute,
    so an edited formula is a new entry, not a stale one (a version number does not move between commits)."""
    digest = hashlib.sha256()
    root = Path(__file__).resolve().parent
    for module in modules:
        digest.update((root / (module.replace(".", "/") + ".py")).read_bytes())
    return digest.hexdigest()


@functools.cache
def _colour_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("colour-science")
    except PackageNotFoundError:
        return "unknown"


def cached_array(name: str, compute: Callable[[], np.ndarray], *, modules: tuple[str, ...]) -> np.ndarray:
    """``compute()`` (a float array derived from colour-science's datasets by the hsrecon ``modules``),
    stored once as ``.npy`` and read back by later runs: colour-science takes most of a second to import,
    the table a millisecond to read. Keyed by ``name``, the modules' source and colour-science's version.
    Read-only, like the tables the functions return."""
    entry = f"table-{name}-{cache_key(name, source_digest(*modules), _colour_version())}.npy"
    data = read_entry(entry)
    if data is not None:
        try:
            value = np.load(io.BytesIO(data), allow_pickle=False)
        except (ValueError, OSError, EOFError):
            value = None
        if value is not None and value.dtype.kind == "f" and np.isfinite(value).all():
            value.setflags(write=False)
            return value
    value = np.array(compute())
    buffer = io.BytesIO()
    np.save(buffer, value, allow_pickle=False)
    write_entry(entry, buffer.getvalue())
    value.setflags(write=False)
    return value


def disk_cached(
    name: str, *, modules: tuple[str, ...]
) -> Callable[[Callable[..., np.ndarray]], Callable[..., np.ndarray]]:
    """Decorate a function of hashable arguments returning a float table with :func:`cached_array` (its
    arguments are part of the key). Put it under ``functools.lru_cache``: the disk is read once a run."""

    def decorate(function: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
        @functools.wraps(function)
        def cached(*args: object) -> np.ndarray:
            suffix = "".join(f"-{arg}" for arg in args)
            return cached_array(name + suffix, lambda: function(*args), modules=modules)

        return cached

    return decorate
