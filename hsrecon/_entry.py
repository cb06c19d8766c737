"""The ``hsrecon`` command's entry point, kept free of imports so an interrupt while the command line
loads (typer, rich: a few tenths of a second) is one line and exit code 130, like one at any later moment,
and not a traceback from the middle of an import."""

from __future__ import annotations

import sys

INTERRUPTED = 130  # 128 + SIGINT, as hsrecon.interrupts.exit_code_of gives for it


def main() -> None:
    """Load the command line, then run it (:func:`hsrecon.cli.main` handles interrupts from then on)."""
    try:
        from hsrecon.cli import main as run
    except KeyboardInterrupt:
        sys.stderr.write("hsrecon: error: interrupted (SIGINT) while starting\n")
        sys.exit(INTERRUPTED)
    run()
