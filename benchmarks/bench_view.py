"""How fast ``hsrecon view`` answers on a real cube: opening it, the first image, and click → spectrum.

Runs the viewer's server in this process, drives the system Chromium headless (Playwright, as the browser
tests do) and measures, for the cube given:

- ``open_s``: building the catalog (headers only; what ``hsrecon view`` does before printing the URL);
- ``first_view_s``: from loading the page to the whole-image overview on screen (the one step that reads
  a strided sample of the whole file); ``settled_s``: until no image is pending (a sharper one included,
  when the screen shows more pixels than the overview has);
- ``hover_ms``: from the pointer moving onto a pixel to its spectrum drawn (the page's state updated), as
  seen from here, at ``--clicks`` pixels drawn at random: the read of a pixel nobody looked at before;
- ``click_ms``: from the click on that pixel to its spectrum pinned and plotted, both as the page measures
  it (pointerup → Plotly done, ``hsview.lastClickMs``) and as seen from here (click sent → the page's
  click count changed);
- ``spectrum_api_ms``: the spectrum request alone (HTTP GET on loopback), at the same number of pixels.

``--cold`` evicts the cube files from the page cache (``posix_fadvise(DONTNEED)``, those files only)
before opening and before every click and request, so each read goes to the disk. Run from the
repository root::

    python -m benchmarks.bench_view cubes/photo12mp.hdr --cold --command --json view.json
    python -m benchmarks.bench_view cubes/photo12mp.h5 --cold --command

``--command`` starts ``hsrecon view --no-browser`` as a user would and talks to it over loopback (its
peak memory read from ``/proc``); without it the server runs in this process.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from tools import chromium


def evict(paths: list[Path]) -> None:
    """Drop these files' pages from the page cache, so the next read comes from the disk."""
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fdatasync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def cube_files(path: Path) -> list[Path]:
    return [path.with_suffix(".img"), path] if path.suffix.lower() == ".hdr" else [path]


def _vm_hwm_mb(pid: int) -> float:
    """A process's peak resident memory (Linux's VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "max": max(values), "min": min(values)}


@contextlib.contextmanager
def serving(cube: Path, truth: Path | None, command: bool) -> Iterator[dict]:
    """The viewer for ``cube``: in this process, or (``command``) as ``hsrecon view --no-browser``, the
    way a user starts it. Yields its URL, the cube's size and layout, and ``open_s``, the time until the
    URL is known (with ``command``: Python's start-up and imports included)."""
    started = time.perf_counter()
    if command:
        args = [sys.executable, "-m", "hsrecon", "view", str(cube), "--no-browser"]
        process = subprocess.Popen([*args, *(["--gt", str(truth)] if truth else [])], stdout=subprocess.PIPE, text=True)
        url = process.stdout.readline().strip()
        open_s = time.perf_counter() - started
        try:
            with urllib.request.urlopen(url + "api/meta") as response:
                described = json.load(response)["cubes"][0]
            yield {"url": url, "open_s": open_s, "peak_mb": lambda: _vm_hwm_mb(process.pid), **described}
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=120)
        return
    from hsrecon.view.catalog import build_catalog
    from hsrecon.view.server import make_server

    catalog, _ = build_catalog([cube], truth=truth)
    server = make_server(catalog)
    open_s = time.perf_counter() - started
    server.warm_up().join()  # as the command does while the browser starts
    catalog.prefetch(0)
    server.start_in_thread()
    try:
        peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # noqa: E731 - this process
        yield {"url": server.url, "open_s": open_s, "peak_mb": peak, **catalog.entry(0).describe()}
    finally:
        server.shutdown()
        server.server_close()
        catalog.close()


def measure(cube: Path, truth: Path | None, clicks: int, cold: bool, seed: int, command: bool) -> dict:

    files = cube_files(cube) + ([] if truth is None else cube_files(truth))
    if cold:
        evict(files)
    with serving(cube, truth, command) as served:
        return _measure(served, files, clicks, cold, seed) | {
            "cube": str(cube),
            "truth": None if truth is None else str(truth),
            "via": "hsrecon view (a subprocess)" if command else "the library, in this process",
            "open_s": round(served["open_s"], 3),
            "server_peak_rss_mb": round(served["peak_mb"]()),
        }


def _measure(served: dict, files: list[Path], clicks: int, cold: bool, seed: int) -> dict:
    from playwright.sync_api import sync_playwright

    url, width, height = served["url"], served["width"], served["height"]
    rng = np.random.default_rng(seed)
    pixels = [(int(rng.integers(width)), int(rng.integers(height))) for _ in range(clicks)]
    inside, outside, hover = [], [], []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium.executable(), args=chromium.FLAGS)
        page = browser.new_context(viewport={"width": 1600, "height": 1000}, bypass_csp=True).new_page()
        page.set_default_timeout(600_000)  # a compressed cube's first view takes what it takes
        started = time.perf_counter()
        page.goto(url)
        page.wait_for_function("window.hsview && window.hsview.ready")
        first_view_s = time.perf_counter() - started
        page.wait_for_function("window.hsview.pending === 0")
        settled_s = time.perf_counter() - started
        shown = page.evaluate("window.hsview.images['cube-overview']")
        box = page.locator("#cube-overview").bounding_box()
        scale = box["width"] / (shown["cols"] * shown["step"])
        for number, (x, y) in enumerate(pixels, start=1):
            if cold:
                evict(files)
            point = (box["x"] + (x + 0.5) * scale, box["y"] + (y + 0.5) * scale)
            moved = time.perf_counter()
            page.mouse.move(*point)  # the pointer reaches the pixel: the page asks for its spectrum
            page.wait_for_function(
                f"window.hsview.hover && window.hsview.hover.x === {x} && window.hsview.hover.y === {y}"
            )
            hover.append(1000 * (time.perf_counter() - moved))
            clicked = time.perf_counter()
            page.mouse.click(*point)
            page.wait_for_function(f"window.hsview.clicks === {number}")
            outside.append(1000 * (time.perf_counter() - clicked))
            inside.append(page.evaluate("window.hsview.lastClickMs"))
            pin = page.evaluate(f"window.hsview.pins[{number - 1}]")
            assert (pin["x"], pin["y"]) == (x, y), (pin["x"], pin["y"], x, y)
        browser.close()
    api = []
    for x, y in pixels:
        if cold:
            evict(files)
        begun = time.perf_counter()
        with urllib.request.urlopen(f"{url}api/spectrum?cube=0&x={x}&y={y}") as response:
            assert response.read()
        api.append(1000 * (time.perf_counter() - begun))
    return {
        "size": f"{width}×{height}×{served['bands']}",
        "megapixels": round(width * height / 1e6, 2),
        "layout": served["layout"],
        "cold": cold,
        "first_view_s": round(first_view_s, 2),
        "settled_s": round(settled_s, 2),
        "hover_ms": {k: round(v, 1) for k, v in summary(hover).items()},
        "click_ms_page": {k: round(v, 1) for k, v in summary(inside).items()},
        "click_ms_outside": {k: round(v, 1) for k, v in summary(outside).items()},
        "spectrum_api_ms": {k: round(v, 2) for k, v in summary(api).items()},
        "clicks": clicks,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("cube", type=Path)
    parser.add_argument("--gt", type=Path, default=None, help="a ground-truth cube (the page then reads both)")
    parser.add_argument("--clicks", type=int, default=20)
    parser.add_argument("--cold", action="store_true", help="evict the files from the page cache before each read")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--command", action="store_true", help="run `hsrecon view` as a user does (a subprocess)")
    args = parser.parse_args()
    result = measure(args.cube, args.gt, args.clicks, args.cold, args.seed, args.command)
    print(json.dumps(result, indent=2, ensure_ascii=False))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
