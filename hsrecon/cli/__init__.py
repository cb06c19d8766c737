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

try:  # Typer from 0.2x on carries its own copy of click; before, click itself
    from typer._click.exceptions import ClickException
except ImportError:  # pragma: no cover - older Typer
    from click.exceptions import ClickException

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
    say what was kept; an interrupt anywhere else is one line and exit code 128 + the signal's number.

    Click's own errors (an unknown option, a missing one, a value of the wrong type) are caught here rather
    than printed by Typer (usage, a hint and a boxed error: five lines), so they read like every other
    error: one ``hsrecon: error:`` line and a note naming the help, exit code 2 (:func:`usage_error`)."""
    try:
        with signals_interrupt():
            code = app(standalone_mode=False)
    except INTERRUPTS as error:
        say("error", f"interrupted ({getattr(error, 'signal_name', 'SIGINT')})")
        sys.exit(exit_code_of(error))
    except ClickException as error:
        sys.exit(usage_error(error))
    except typer.Abort:  # end of input at a prompt (hsrecon asks none, but click may)
        say("error", "aborted")
        sys.exit(int(ExitCode.FAILED))
    sys.exit(code if isinstance(code, int) else int(ExitCode.OK))


def usage_error(error: ClickException) -> int:
    """Print click's error as ``hsrecon: error: <command>: <problem>`` and ``hsrecon: note: see '… --help'``;
    returns its exit code (2 for usage errors). A bare ``hsrecon`` (help shown, no error) prints nothing more."""
    if type(error).__name__ == "NoArgsIsHelpError":  # the help was printed as the error was made
        return error.exit_code
    context = getattr(error, "ctx", None)
    message = error.format_message().strip().rstrip(".")
    if message[:1].isupper() and message[1:2].islower():  # "Missing option" → "missing option"; not "--x"
        message = message[0].lower() + message[1:]
    command = context.info_name if context is not None and context.parent is not None else None
    say("error", f"{command}: {message}" if command else message)
    if context is not None:
        say("note", f"'{context.command_path} --help' lists the options")
    return error.exit_code
