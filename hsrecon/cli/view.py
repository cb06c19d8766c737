"""``hsrecon view``: the cubes in the browser, served from 127.0.0.1 behind a random token until Ctrl-C.

The work is :mod:`hsrecon.view` (the catalog of cubes, the server); this module opens them, prints the
URL on stdout (so a script can read it), notes and errors on stderr, and stops cleanly on Ctrl-C (exit
code 0: that is how a viewer is meant to end). Nothing here imports torch.
"""

from __future__ import annotations

import webbrowser
from pathlib import Path
from typing import Annotated, Optional

import typer

from hsrecon.cli._common import INTERRUPTS, ExitCode, fail, safe, say, stderr, stdout

__all__ = ["view"]


def view(
    cubes: Annotated[
        list[Path], typer.Argument(help="Cube files (.hdr/.img, .mat, .h5) and/or folders of them.", show_default=False)
    ],
    gt: Annotated[
        Optional[Path],
        typer.Option("--gt", help="Ground truth: a cube file (for one cube) or a folder, paired by name."),
    ] = None,
    rgb: Annotated[
        Optional[Path],
        typer.Option("--rgb", help="The photo shown beside each cube: a file (for one cube) or a folder, by name."),
    ] = None,
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1 (default 0: a free one).", min=0, max=65535)] = 0,
    browser: Annotated[
        bool, typer.Option("--browser/--no-browser", help="Open the page in the default web browser.")
    ] = True,
) -> None:
    """Look at cubes in the browser: bands, a pixel's spectrum on click, truth and error maps (docs/view.md)."""
    from hsrecon.view.catalog import build_catalog
    from hsrecon.view.server import make_server

    try:
        catalog, notes = build_catalog(cubes, truth=gt, photo=rgb)
    except (ValueError, OSError) as error:
        raise fail(_one_line(error), ExitCode.INPUT) from None
    for note in notes:
        say("note", note)
    try:
        server = make_server(catalog, port=port)
    except OSError as error:
        catalog.close()
        raise fail(f"--port {port}: cannot listen on 127.0.0.1 ({error.strerror or error})", ExitCode.USAGE) from None
    try:  # from here on, Ctrl-C (or SIGTERM, SIGHUP) at any moment is the normal end
        server.warm_up()
        catalog.prefetch(0)
        stdout.print(safe(server.url), highlight=False, soft_wrap=True)
        count = len(catalog.entries)
        stderr.print(f"hsrecon view: {count} cube{'s' * (count != 1)}, read-only; Ctrl-C stops", highlight=False)
        if browser and not _open(server.url):
            stderr.print("hsrecon: note: no web browser found; open the URL above", highlight=False)
        server.serve_forever()
    except INTERRUPTS:
        pass
    finally:
        server.server_close()
        catalog.close()  # waits for reads in progress, refuses the rest: nothing is left inside a file library
    stderr.print("hsrecon view: stopped", highlight=False)


def _open(url: str) -> bool:
    try:
        return webbrowser.open(url)
    except webbrowser.Error:
        return False


def _one_line(error: BaseException) -> str:
    return (str(error) or type(error).__name__).strip().splitlines()[0]
