"""Stopping cleanly on a signal: SIGINT (Ctrl-C), SIGTERM (``kill``, schedulers, containers) and SIGHUP
(a closed terminal or SSH session) all stop hsrecon the same way.

Python turns only SIGINT into an exception (``KeyboardInterrupt``); SIGTERM and SIGHUP kill it on the
spot, so no ``finally`` runs and every temporary of the file in progress stays on disk. Inside
:func:`signals_interrupt`, each of the three raises :class:`Interrupted` in the main thread, at the next
Python instruction: mid-file, mid-window, wherever the work is; every ``finally`` and ``__exit__`` on the
way out runs, so the writers delete their temporaries as they do on an error.

Two rules keep that safe:

- **A signal ignored when hsrecon started stays ignored.** ``nohup`` ignores SIGHUP, and a shell runs
  background jobs of a script with SIGINT ignored, on purpose: the job must outlive the terminal, or
  not be stopped by a Ctrl-C meant for the script. Every Unix program inherits and keeps that, and so
  does hsrecon (``kill -TERM`` still stops such a job cleanly).
- **Only the first signal interrupts.** Later ones, while the interrupted run removes its temporaries,
  are ignored, so a second Ctrl-C cannot cut the cleanup short; SIGKILL still stops it at once, and the
  next run removes what that leaves (``hsrecon.temps``).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

__all__ = ["INTERRUPTING_SIGNALS", "INTERRUPTS", "Interrupted", "deferred", "exit_code_of", "signals_interrupt"]

INTERRUPTING_SIGNALS: tuple[signal.Signals, ...] = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)


class Interrupted(BaseException):
    """The run was stopped by a signal; :attr:`exit_code` is the shell's convention, 128 + its number.

    A ``BaseException``, as ``KeyboardInterrupt`` is, so no ``except Exception`` swallows it and every
    ``finally`` and ``__exit__`` runs on the way out; but not a ``KeyboardInterrupt``, which Click would
    turn into "Aborted!" and exit code 1. Catch :data:`INTERRUPTS` to handle both.
    """

    def __init__(self, signum: int) -> None:
        self.signum = int(signum)
        self.signal_name = signal.Signals(signum).name
        super().__init__(self.signal_name)

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


INTERRUPTS: tuple[type[BaseException], ...] = (KeyboardInterrupt, Interrupted)
"""What a signal raises: :class:`Interrupted` inside :func:`signals_interrupt`, ``KeyboardInterrupt`` outside."""


def exit_code_of(interrupt: BaseException) -> int:
    """130 for a plain ``KeyboardInterrupt`` (Ctrl-C before the handlers were in place), else 128 + N."""
    return interrupt.exit_code if isinstance(interrupt, Interrupted) else 128 + int(signal.SIGINT)


class _State:
    """The main thread's interrupt state (handlers run in the main thread only)."""

    active = False  # inside signals_interrupt
    raised = False  # the one interrupt has been delivered (or is pending): later signals are ignored
    pending: int | None = None  # a signal that arrived inside deferred(), raised when it ends
    deferring = 0  # depth of deferred() blocks


def _handler(signum: int, frame: FrameType | None) -> None:
    if _State.raised:
        return  # cleaning up after the first one: let it finish
    _State.raised = True
    if _State.deferring:
        _State.pending = signum
        return
    raise Interrupted(signum)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Hold an interrupt back for the few instructions that must not be cut in two: creating a temporary
    and registering it for cleanup, or renaming a finished file into place and recording that it was.

    A signal inside the block is raised (as :class:`Interrupted`) when the block ends, so nothing is
    lost; only the main thread, where signals are handled, defers. Blocks nest.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _State.deferring += 1
    try:
        yield
    finally:
        _State.deferring -= 1
        if not _State.deferring and _State.pending is not None:
            signum, _State.pending = _State.pending, None
            raise Interrupted(signum)


@contextlib.contextmanager
def signals_interrupt() -> Iterator[None]:
    """Within the block, SIGINT, SIGTERM and SIGHUP raise :class:`Interrupted` once (see the module).

    Does nothing outside the main thread (only it can set handlers); the previous handlers come back
    when the block ends, however it ends.
    """
    if threading.current_thread() is not threading.main_thread() or _State.active:
        yield
        return
    _State.active, _State.raised, _State.pending = True, False, None
    previous = {}
    for signum in INTERRUPTING_SIGNALS:
        current = signal.getsignal(signum)
        if current is signal.SIG_IGN:
            continue  # ignored by whoever started us (nohup, a background job): keep it so
        previous[signum] = current
        signal.signal(signum, _handler)
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
        _State.active = False
