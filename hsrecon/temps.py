"""Temporary files beside outputs: created locked, renamed into place, and cleaned up after a kill.

Every output is written as ``.NAME.<8 hex>.tmp`` in the output folder and renamed to ``NAME`` when
complete. A process killed with SIGKILL (or a power cut, or an out-of-memory kill) cannot remove its
temporaries, so the next run must: :func:`remove_stale_temps` deletes the temporaries of the outputs it
is about to write. It must never delete a temporary that another live process is still writing (two
``torchrun`` ranks share one folder), so each temporary carries an exclusive ``flock`` for as long as
its writer lives; the kernel drops it when the process dies, however it dies. A temporary whose lock
can be taken is abandoned. Where ``flock`` does not exist (Windows) no lock is kept: an open file cannot
be deleted there, so a failed delete means "in use" just as well.

Only names of exactly this pattern, for the final names asked about, are ever deleted; regular files
only (a symlink or FIFO of that name is left alone). The same lock tells a second run converting into
the same folder that a file is being written by someone else (:func:`live_temps`).

A temporary's name is 14 bytes longer than its final name; where that would pass the file system's limit
on a name (255 bytes), the final name is shortened inside it (:func:`temp_stem`), so a temporary can be
made whenever its final name fits.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import secrets
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path

from hsrecon.interrupts import deferred

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "TEMP_PATTERN",
    "LockedTemp",
    "atomic_file",
    "create_temp",
    "live_temps",
    "remove_stale_temps",
    "temp_name_for",
    "temp_stem",
    "write_atomic",
]

TEMP_PATTERN = re.compile(r"\.(?P<final>.+)\.[0-9a-f]{8}\.tmp", re.DOTALL)
"""A temporary's name: ``.`` + the final name (see :func:`temp_stem`) + ``.`` + 8 lower-case hex digits
+ ``.tmp``."""

_TEMP_EXTRA_BYTES = len("..01234567.tmp")  # what a temporary's name adds around the final name
_DEFAULT_NAME_MAX = 255  # bytes per name on ext4, XFS, Btrfs, APFS, tmpfs


def _name_max(folder: Path) -> int:
    """The longest file name ``folder``'s file system takes, in bytes (eCryptfs: 143; most: 255)."""
    try:
        return int(os.pathconf(folder, "PC_NAME_MAX"))
    except (OSError, ValueError, AttributeError):
        return _DEFAULT_NAME_MAX


def temp_stem(final: Path) -> str:
    """What stands for ``final``'s name inside its temporaries' names: the name itself when the
    temporary's name then fits the file system's limit, else the longest prefix that does, ``~`` and
    8 hex digits of the name's SHA-256. So a temporary can be made whenever the final name fits, and
    the cleanup still finds it from the final name alone.
    """
    final = Path(final)
    encoded = os.fsencode(final.name)
    limit = _name_max(final.parent) - _TEMP_EXTRA_BYTES
    if len(encoded) <= limit:
        return final.name
    digest = "~" + hashlib.sha256(encoded).hexdigest()[:8]
    prefix, used = [], 0
    for char in final.name:  # whole characters, so a multi-byte one is never cut in two
        size = len(os.fsencode(char))
        if used + size > limit - len(digest):
            break
        prefix.append(char)
        used += size
    return "".join(prefix) + digest


def temp_name_for(final: Path) -> str:
    """A fresh random temporary name for ``final`` (same folder), matching :data:`TEMP_PATTERN`."""
    return f".{temp_stem(Path(final))}.{secrets.token_hex(4)}.tmp"


class LockedTemp:
    """An empty temporary created beside ``final``, exclusively locked until :meth:`release`.

    Created with ``os.open(..., 0o666)`` rather than ``mkstemp`` so that the umask, not a private 0600,
    decides the final file's permissions.
    """

    def __init__(self, final: Path) -> None:
        self.final = Path(final)
        self.path, self._fd = _create_locked(self.final)

    def release(self) -> None:
        """Drop the lock (after the rename, or after deleting the temporary). Safe to call twice."""
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)


def _create_locked(final: Path) -> tuple[Path, int | None]:
    """Create ``.NAME.<hex>.tmp`` with O_EXCL and lock it; retried if a cleaner removed it in between."""
    for _ in range(16):
        temp = final.with_name(temp_name_for(final))
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        if fcntl is None:
            os.close(fd)
            return temp, None
        if _lock_and_check(fd, temp):
            return temp, fd
        os.close(fd)  # another process's cleanup deleted it before the lock was taken: try a new name
    raise FileExistsError(errno.EEXIST, "cannot create a unique temporary file", str(final))


def _lock_and_check(fd: int, temp: Path) -> bool:
    """Lock ``fd``; True if ``temp`` still names the locked file (no cleaner removed it meanwhile)."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        # Held: another run's cleanup is deleting it. Any other error: a file system without flock, so
        # carry on unlocked (cleanups cannot lock it either, and leave it alone).
        return exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN)
    try:
        return os.stat(temp).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False


def create_temp(final: Path) -> LockedTemp:
    """A new locked temporary for ``final``; see :class:`LockedTemp`."""
    return LockedTemp(final)


@contextlib.contextmanager
def atomic_file(final: Path) -> Iterator[Path]:
    """Yield a locked temporary path; on success rename it to ``final`` (replacing it), else delete it.

    An interrupt (:mod:`hsrecon.interrupts`) is held back while the temporary is created, so it exists
    only once this function can remove it.
    """
    temp: LockedTemp | None = None
    try:
        with deferred():
            temp = create_temp(final)
        yield temp.path
        os.replace(temp.path, final)
    except BaseException:
        if temp is not None:
            with contextlib.suppress(OSError):
                temp.path.unlink(missing_ok=True)
        raise
    finally:
        if temp is not None:
            temp.release()


def write_atomic(final: Path, data: bytes) -> Path:
    """Write ``data`` to ``final`` through :func:`atomic_file`: the file is whole or absent (a full disk
    leaves the old one, and no temporary). Its mode is what the umask allows (0644 under the usual 022),
    like every other output. An ``OSError`` keeps its errno (``ENOSPC``, ``EDQUOT``, ``EROFS``)."""
    with atomic_file(Path(final)) as temp, open(temp, "wb") as handle:
        handle.write(data)
    return Path(final)


def remove_stale_temps(finals: Iterable[Path]) -> list[Path]:
    """Delete abandoned temporaries of the given final paths; return what was deleted.

    Each folder is listed once, however many finals it holds (a batch of 100,000 files stays linear).
    Errors are ignored: a temporary that cannot be removed is only clutter, never a wrong result.
    """
    removed = []
    for folder, stems in _stems_by_folder(finals).items():
        removed += [path for path in _temps_in(folder, stems) if _remove_if_abandoned(path)]
    return removed


def live_temps(finals: Iterable[Path]) -> list[Path]:
    """Temporaries of the given final paths that a live process is writing (it holds their lock).

    Another run converting the same file into the same folder: this one should leave that file to it.
    Always empty where there is no ``flock`` (nothing can tell a live writer from a dead one there).
    """
    if fcntl is None:
        return []
    found = []
    for folder, stems in _stems_by_folder(finals).items():
        found += [path for path in _temps_in(folder, stems) if _is_locked(path)]
    return found


def _stems_by_folder(finals: Iterable[Path]) -> dict[Path, set[str]]:
    wanted: dict[Path, set[str]] = {}
    for final in finals:
        final = Path(final)
        wanted.setdefault(final.parent, set()).add(temp_stem(final))
    return wanted


def _is_locked(path: Path) -> bool:
    """Whether another open file holds ``path``'s lock (a regular file only; nothing else is opened)."""
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return False
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as exc:
        return exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN)
    finally:
        os.close(fd)  # also drops the shared lock, if it was taken
    return False


def _temps_in(folder: Path, stems: set[str]) -> list[Path]:
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return []
    found = []
    for entry in entries:
        match = TEMP_PATTERN.fullmatch(entry.name)
        if match and match["final"] in stems:
            found.append(folder / entry.name)
    return found


def _remove_if_abandoned(path: Path) -> bool:
    """Delete ``path`` if it is a regular file nobody holds a lock on."""
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return False
        if fcntl is None:
            path.unlink()
            return True
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if os.stat(path).st_ino != os.fstat(fd).st_ino:
            return False
        path.unlink()
        return True
    except OSError:
        return False  # locked by a live writer, or no flock here: leave it
    finally:
        os.close(fd)
