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

    python -m benchmarks.bench_view cubes/photo12mp.hdr --cold --json view.json
    python -m benchmarks.bench_view cubes/photo12mp.h5 --cold
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import resource
import shutil
import statistics
import time
from pathlib import Path

import numpy as np

FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


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


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "max": max(values), "min": min(values)}


def measure(cube: Path, truth: Path | None, clicks: int, cold: bool, seed: int) -> dict:
    from playwright.sync_api import sync_playwright

    from hsrecon.view.catalog import build_catalog
    from hsrecon.view.server import make_server

    files = cube_files(cube) + ([] if truth is None else cube_files(truth))
    if cold:
        evict(files)
    started = time.perf_counter()
    catalog, _ = build_catalog([cube], truth=truth)
    server = make_server(catalog)
    open_s = time.perf_counter() - started
    server.warm_up().join()  # as the command does while the browser starts
    server.start_in_thread()
    entry = catalog.entry(0)
    rng = np.random.default_rng(seed)
    pixels = [(int(rng.integers(entry.cube.width)), int(rng.integers(entry.cube.height))) for _ in range(clicks)]
    inside, outside, hover = [], [], []
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=shutil.which("chromium"), args=FLAGS)
            page = browser.new_context(viewport={"width": 1600, "height": 1000}, bypass_csp=True).new_page()
            started = time.perf_counter()
            page.goto(server.url)
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
            connection = http.client.HTTPConnection("127.0.0.1", server.port)
            begun = time.perf_counter()
            connection.request("GET", f"/{server.token}/api/spectrum?cube=0&x={x}&y={y}")
            assert connection.getresponse().read()
            api.append(1000 * (time.perf_counter() - begun))
            connection.close()
    finally:
        server.shutdown()
        server.server_close()
        catalog.close()
    return {
        "cube": str(cube),
        "truth": None if truth is None else str(truth),
        "size": f"{entry.cube.width}×{entry.cube.height}×{entry.cube.bands}",
        "megapixels": round(entry.cube.width * entry.cube.height / 1e6, 2),
        "layout": entry.cube.layout,
        "cold": cold,
        "open_s": round(open_s, 3),
        "first_view_s": round(first_view_s, 2),
        "settled_s": round(settled_s, 2),
        "hover_ms": {k: round(v, 1) for k, v in summary(hover).items()},
        "click_ms_page": {k: round(v, 1) for k, v in summary(inside).items()},
        "click_ms_outside": {k: round(v, 1) for k, v in summary(outside).items()},
        "spectrum_api_ms": {k: round(v, 2) for k, v in summary(api).items()},
        "clicks": clicks,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("cube", type=Path)
    parser.add_argument("--gt", type=Path, default=None, help="a ground-truth cube (the page then reads both)")
    parser.add_argument("--clicks", type=int, default=20)
    parser.add_argument("--cold", action="store_true", help="evict the files from the page cache before each read")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    result = measure(args.cube, args.gt, args.clicks, args.cold, args.seed)
    print(json.dumps(result, indent=2, ensure_ascii=False))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
