"""The pieces under the hostile-use behaviour: signals as one interrupt, held back where a cut would leak;
names escaped for printing; temporaries' names that always fit."""

from __future__ import annotations

import os
import signal
import time

import pytest

from hsrecon.interrupts import Interrupted, deferred, exit_code_of, signals_interrupt
from hsrecon.printable import printable
from hsrecon.temps import TEMP_PATTERN, create_temp, remove_stale_temps, temp_name_for, temp_stem

pytestmark = pytest.mark.skipif(os.name != "posix", reason="signals to oneself are POSIX")


@pytest.fixture(autouse=True)
def _default_dispositions():
    """Each test starts from the default SIGHUP and SIGTERM handling, whatever the runner inherited: under
    ``nohup`` SIGHUP arrives ignored, and hsrecon rightly keeps it so (tested below), which would make a
    test that delivers SIGHUP to be interrupted pass or fail with how the suite was started."""
    if os.name != "posix":
        yield
        return
    previous = {signum: signal.signal(signum, signal.SIG_DFL) for signum in (signal.SIGHUP, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _deliver(signum: int) -> None:
    """Send ``signum`` to this process and give Python the instructions at which it runs its handler."""
    os.kill(os.getpid(), signum)
    for _ in range(1000):
        time.sleep(0)


def test_sigterm_raises_interrupted_once_with_the_shell_s_exit_code():
    with signals_interrupt():
        with pytest.raises(Interrupted) as caught:
            _deliver(signal.SIGTERM)
        assert caught.value.signal_name == "SIGTERM" and exit_code_of(caught.value) == 143
        _deliver(signal.SIGHUP)  # a second signal while cleaning up: ignored
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the old handlers are back
    assert exit_code_of(KeyboardInterrupt()) == 130


def test_a_signal_inside_deferred_is_raised_when_the_block_ends():
    steps = []
    with signals_interrupt(), pytest.raises(Interrupted):
        with deferred():
            _deliver(signal.SIGHUP)
            steps.append("the block went on")
            with deferred():  # nested: only the outermost end raises
                steps.append("inner")
            steps.append("after inner")
        steps.append("never")
    assert steps == ["the block went on", "inner", "after inner"]


def test_a_signal_ignored_at_start_stays_ignored():
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        with signals_interrupt():
            _deliver(signal.SIGHUP)  # nothing raised: nohup's choice is kept
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, previous)


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("plain name.png", "plain name.png"),
        ("café 写真.png", "café 写真.png"),
        ("C:\\photos\\a.png", "C:\\photos\\a.png"),  # no control characters: unchanged
        ("a\nhsrecon: error: forged", "a\\nhsrecon: error: forged"),
        ("x\x1b[2Ky", "x\\x1b[2Ky"),
        ("back\\slash\r", "back\\\\slash\\r"),  # with an escape, backslashes double: one reading only
        ("rtl\u202egnp.exe", "rtl\\u202egnp.exe"),
        ("zero\u200bwidth", "zero\\u200bwidth"),
        ("line\u2028sep", "line\\u2028sep"),
        (os.fsdecode(b"bad-\xff.png"), "bad-\\xff.png"),
    ],
)
def test_printable_escapes_what_could_forge_hide_or_restyle_a_line(text, shown):
    assert printable(text) == shown
    assert "\n" not in printable(text) and "\x1b" not in printable(text)


@pytest.mark.parametrize("name", ["n" * 241 + ".h5", "é" * 125 + ".h5", "x" * 255])
def test_a_temporary_fits_whenever_its_final_name_does(tmp_path, name):
    final = tmp_path / name
    temp = create_temp(final)
    try:
        assert len(os.fsencode(temp.path.name)) <= 255
        assert TEMP_PATTERN.fullmatch(temp.path.name)
        assert temp_stem(final) != name  # shortened, with the name's hash
    finally:
        temp.release()
    assert remove_stale_temps([final]) == [temp.path]  # found again from the final name alone
    assert list(tmp_path.iterdir()) == []


def test_short_names_keep_their_temporaries_as_before(tmp_path):
    assert temp_stem(tmp_path / "a.h5") == "a.h5"
    assert TEMP_PATTERN.fullmatch(temp_name_for(tmp_path / "a.h5"))["final"] == "a.h5"
    two_long = [tmp_path / ("n" * 250 + suffix) for suffix in (".h5", ".img")]
    assert temp_stem(two_long[0]) != temp_stem(two_long[1])  # same prefix, different hashes


def test_ctrl_c_while_the_command_line_loads_is_one_line_and_exit_130(tmp_path):
    """An interrupt in the first tenths of a second, while typer and rich are imported: made
    deterministic by a stand-in ``typer`` that is interrupted as it loads."""
    import subprocess
    import sys

    (tmp_path / "typer.py").write_text("raise KeyboardInterrupt\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(
        [sys.executable, "-m", "hsrecon", "--help"], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 130, result.stderr
    assert result.stderr.splitlines() == ["hsrecon: error: interrupted (SIGINT) while starting"]
