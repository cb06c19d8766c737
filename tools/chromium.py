"""The system Chromium that the browser tests, ``benchmarks.bench_view`` and ``tools.make_viewer_screenshot``
drive through Playwright (Playwright's own browser download is never used), and the flags it runs with."""

from __future__ import annotations

import os
import shutil

__all__ = ["FLAGS", "executable"]

# Headless, offline and quiet: no sandbox (CI runs as root), no GPU, no network of its own.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def executable() -> str | None:
    """The system Chromium (Debian's ``chromium``; ``HSRECON_CHROMIUM`` names another), or None."""
    for name in (os.environ.get("HSRECON_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name) if name else None
        if found:
            return found
    return None
