"""The README's screenshot of ``hsrecon view`` (docs/img/viewer.png), made the way the browser tests drive it.

Serves the cubes in this process, opens the page in the system Chromium (headless, Playwright), pins a
few pixels of the first cube and saves the page as a 256-colour PNG (small enough to commit). Run from
the repository root, after converting the bundled examples::

    hsrecon convert examples/srgb -o cubes --format envi --input-space srgb
    python -m tools.make_viewer_screenshot cubes --gt examples/truth --rgb examples/srgb -o docs/img/viewer.png
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

from PIL import Image

from tools import chromium

PINS = ((0.17, 0.3), (0.5, 0.55), (0.83, 0.8))  # where to click, as fractions of the image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("cubes", type=Path, nargs="+")
    parser.add_argument("--gt", type=Path, default=None)
    parser.add_argument("--rgb", type=Path, default=None)
    parser.add_argument("-o", "--output", type=Path, default=Path("docs/img/viewer.png"))
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    from hsrecon.view.catalog import build_catalog
    from hsrecon.view.server import make_server

    catalog, _ = build_catalog(args.cubes, truth=args.gt, photo=args.rgb)
    server = make_server(catalog)
    server.start_in_thread()
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium.executable(), args=chromium.FLAGS)
            page = browser.new_context(viewport={"width": 1280, "height": 720}, bypass_csp=True).new_page()
            page.goto(server.url)
            page.wait_for_function("window.hsview && window.hsview.ready && window.hsview.pending === 0")
            box = page.locator("#cube-overview").bounding_box()
            for number, (fx, fy) in enumerate(PINS, start=1):
                page.mouse.click(box["x"] + fx * box["width"], box["y"] + fy * box["height"])
                page.wait_for_function(f"window.hsview.pins.length === {number}")
            if catalog.entries[0].truth is not None:
                page.wait_for_function("window.hsview.scores !== undefined")
            png = page.screenshot()
            browser.close()
    finally:
        server.shutdown()
        server.server_close()
        catalog.close()
    image = Image.open(io.BytesIO(png)).convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    image.save(args.output, optimize=True)
    print(f"wrote {args.output} ({args.output.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
