"""The ``hsrecon`` command: a Typer app whose commands are thin layers over the library.

One module per command (rembg's ``commands/``): each declares its typed options, parses them, makes one
library call, and renders the result with rich. Errors the user can fix become one line on stderr and a
documented exit code (:mod:`hsrecon.cli._common`, ``docs/cli.md``), never a traceback. torch is imported
inside the commands, so ``hsrecon --help`` and ``--version`` answer at once.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from hsrecon import __version__
from hsrecon.cli import convert, export, import_keras, info, synth, train, view
from hsrecon.cli import eval as eval_command
from hsrecon.cli._common import ExitCode, say, stdout
from hsrecon.interrupts import INTERRUPTS, exit_code_of, signals_interrupt

__all__ = ["ExitCode", "app", "main"]

app = typer.Typer(
    name="hsrecon",
    help="RGB photos → 31-band hyperspectral cubes (400–700 nm) with a small neural network.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version_callback(value: bool) -> None:
    if value:
        stdout.print(f"hsrecon {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version_callback, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """RGB photos → 31-band hyperspectral cubes (400–700 nm)."""


app.command("info")(info.info)
app.command("import-keras")(import_keras.import_keras)
app.command("export")(export.export)
app.command("convert")(convert.convert)
app.command("eval")(eval_command.evaluate)
app.command("synth")(synth.synth)
app.command("train")(train.train)
app.command("view")(view.view)


def main() -> None:
    """Console-script entry point (``hsrecon``, ``python -m hsrecon``, ``torchrun -m hsrecon``): run the app
    with SIGINT, SIGTERM and SIGHUP all stopping it cleanly (:mod:`hsrecon.interrupts`). The long commands
    say what was kept; an interrupt anywhere else is one line and exit code 128 + the signal's number."""
    try:
        with signals_interrupt():
            app()
    except INTERRUPTS as error:
        say("error", f"interrupted ({getattr(error, 'signal_name', 'SIGINT')})")
        sys.exit(exit_code_of(error))
