"""The viewer in headless Chromium: click a pixel and the plot holds that pixel's values; the band slider
shows that band; zooming serves full resolution; pins export as CSV; the page runs under its CSP.

Waits are for states the page sets (``window.hsview``: what each image shows, the pins), never for time.
Positions to click are computed from the image element's box on screen, not from the page's own maths.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from conftest import WAVELENGTHS, keep_screenshot
from conftest import write_cube as write
from hsrecon.metrics import pixel_mrae, score
from hsrecon.preview import cube_to_linear_srgb, cube_to_srgb, srgb_white
from hsrecon.view import catalog as catalog_module
from hsrecon.view.catalog import build_catalog
from hsrecon.view.server import make_server

H, W = 30, 40
SETTLED = "window.hsview && window.hsview.ready && window.hsview.pending === 0"


@pytest.fixture()
def scene(tmp_path, rng):
    """A prediction (ENVI), its truth (.h5) and a photo, all 40×30."""
    truth = (rng.random((H, W, 31), dtype=np.float32) * 0.8 + 0.05).astype(np.float32)
    pred = (truth * (1 + 0.1 * rng.standard_normal(truth.shape))).astype(np.float32)
    photo = rng.integers(0, 256, size=(H, W, 3), dtype=np.uint8)
    iio.imwrite(tmp_path / "scene.png", photo)
    paths = {
        "pred": write(tmp_path / "scene", "envi", pred),
        "truth": write(tmp_path / "truth", "h5", truth),
        "photo": tmp_path / "scene.png",
    }
    return {"pred": pred, "truth": truth, "photo": photo, "paths": paths}


@pytest.fixture()
def serve():
    """serve(catalog) → its URL; the server and catalog are closed after the test."""
    started = []

    def start(catalog):
        server = make_server(catalog)
        server.start_in_thread()
        started.append((server, catalog))
        return server.url

    yield start
    for server, catalog in started:
        server.shutdown()
        server.server_close()
        catalog.close()


@pytest.fixture()
def page(browser):
    # Playwright's wait_for_function evaluates strings in the page, which the viewer's CSP forbids; the
    # CSP itself is checked in test_the_page_runs_under_its_content_security_policy.
    context = browser.new_context(viewport={"width": 1280, "height": 760}, bypass_csp=True, accept_downloads=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    assert not errors, errors


def screen_point(page, slot: str, x: int, y: int) -> tuple[float, float]:
    """The screen position of the centre of image pixel (x, y), from the slot's image element box."""
    shown = page.evaluate(f"window.hsview.images[{slot!r}]")
    box = page.locator(f"#{slot}").bounding_box()
    per_pixel_x = box["width"] / (shown["cols"] * shown["step"])
    per_pixel_y = box["height"] / (shown["rows"] * shown["step"])
    return box["x"] + (x - shown["x0"] + 0.5) * per_pixel_x, box["y"] + (y - shown["y0"] + 0.5) * per_pixel_y


def shown_pixels(page, slot: str) -> np.ndarray:
    """The RGBA pixels of the image the slot's element shows, read back through a canvas."""
    flat = page.evaluate(
        """(id) => {
            const img = document.getElementById(id);
            const canvas = document.createElement("canvas");
            canvas.width = img.naturalWidth;
            canvas.height = img.naturalHeight;
            const context = canvas.getContext("2d");
            context.drawImage(img, 0, 0);
            const data = context.getImageData(0, 0, canvas.width, canvas.height).data;
            return [canvas.width, canvas.height, Array.from(data)];
        }""",
        slot,
    )
    width, height, data = flat
    return np.asarray(data, dtype=np.uint8).reshape(height, width, 4)


def plotted(page, kind: str, pin: int | None = None) -> dict:
    """The Plotly trace of the given kind (and pin number) as the plot holds it."""
    traces = page.evaluate("document.getElementById('spectrum-plot').data.map(t => ({x: t.x, y: t.y, meta: t.meta}))")
    found = [t for t in traces if t["meta"]["kind"] == kind and (pin is None or t["meta"].get("pin") == pin)]
    assert len(found) == 1, traces
    return found[0]


def test_clicking_a_pixel_plots_that_pixels_spectrum_and_truth(page, serve, scene):
    catalog, _ = build_catalog([scene["paths"]["pred"]], truth=scene["paths"]["truth"], photo=scene["paths"]["photo"])
    page.goto(serve(catalog))
    page.wait_for_function(SETTLED)
    assert page.evaluate("window.hsview.images['cube-overview'].step") == 1
    for number, (x, y) in enumerate([(29, 7), (3, 22)], start=1):
        page.mouse.click(*screen_point(page, "cube-overview", x, y))
        page.wait_for_function(f"window.hsview.pins.length === {number}")
        pin = page.evaluate(f"window.hsview.pins[{number - 1}]")
        assert (pin["x"], pin["y"]) == (x, y)
        trace = plotted(page, "pin", number)
        assert trace["x"] == WAVELENGTHS.tolist()
        assert trace["y"] == [float(v) for v in scene["pred"][y, x]]  # exactly the file's float32 values
        assert plotted(page, "pin-truth", number)["y"] == [float(v) for v in scene["truth"][y, x]]
        expected_mrae = pixel_mrae(scene["pred"][y : y + 1, x : x + 1], scene["truth"][y : y + 1, x : x + 1])[0, 0]
        assert pin["mrae"] == pytest.approx(float(expected_mrae), rel=1e-12)
        assert f"x {x}, y {y}" in page.locator("#readout").inner_text()
    assert page.locator("#pins-table tbody tr").count() == 2
    # hovering (no click) draws the pixel under the pointer too
    page.mouse.move(*screen_point(page, "cube-overview", 11, 13))
    page.wait_for_function("window.hsview.hover && window.hsview.hover.x === 11 && window.hsview.hover.y === 13")
    assert plotted(page, "hover")["y"] == [float(v) for v in scene["pred"][13, 11]]
    assert plotted(page, "hover-truth")["y"] == [float(v) for v in scene["truth"][13, 11]]
    # the photo pane shows the photo, pixel for pixel
    page.wait_for_function("window.hsview.images['photo-overview'] !== undefined && window.hsview.pending === 0")
    assert page.locator("#photo-pane").is_visible()
    np.testing.assert_array_equal(shown_pixels(page, "photo-overview")[..., :3], scene["photo"])
    # the image's scores are hsrecon eval's
    page.wait_for_function("window.hsview.scores !== undefined")
    expected = score(scene["pred"], scene["truth"])
    assert page.evaluate("window.hsview.scores.mrae") == pytest.approx(expected.mrae, rel=1e-12)
    assert page.evaluate("window.hsview.scores.sam") == pytest.approx(expected.sam, rel=1e-12)
    assert page.evaluate("window.hsview.lastClickMs") < 5000
    keep_screenshot(page, "viewer-pins.png")


def test_pinned_spectra_export_as_csv(page, serve, scene):
    catalog, _ = build_catalog([scene["paths"]["pred"]], truth=scene["paths"]["truth"])
    page.goto(serve(catalog))
    page.wait_for_function(SETTLED)
    for number, (x, y) in enumerate([(0, 0), (39, 29)], start=1):
        page.mouse.click(*screen_point(page, "cube-overview", x, y))
        page.wait_for_function(f"window.hsview.pins.length === {number}")
    with page.expect_download() as download:
        page.locator("#export-button").click()
    text = Path(download.value.path()).read_text(encoding="utf-8")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == [
        "wavelength_nm",
        "scene.hdr x=0 y=0",
        "scene.hdr x=0 y=0 truth",
        "scene.hdr x=39 y=29",
        "scene.hdr x=39 y=29 truth",
    ]
    table = np.asarray(rows[1:], dtype=np.float64)
    np.testing.assert_array_equal(table[:, 0], WAVELENGTHS)
    np.testing.assert_array_equal(table[:, 1], scene["pred"][0, 0])
    np.testing.assert_array_equal(table[:, 2], scene["truth"][0, 0])
    np.testing.assert_array_equal(table[:, 3], scene["pred"][29, 39])
    np.testing.assert_array_equal(table[:, 4], scene["truth"][29, 39])


def test_band_slider_shows_that_bands_image(page, serve, scene):
    catalog, _ = build_catalog([scene["paths"]["pred"]], truth=scene["paths"]["truth"])
    page.goto(serve(catalog))
    page.wait_for_function(SETTLED)
    page.locator("#colormap-select").select_option("gray")
    page.locator("#stretch-low").fill("0")
    page.locator("#stretch-low").press("Tab")
    page.locator("#stretch-high").fill("100")
    page.locator("#stretch-high").press("Tab")
    slider = page.locator("#band-slider")
    slider.focus()
    page.keyboard.press("Home")
    for _ in range(4):
        page.keyboard.press("ArrowRight")
    page.wait_for_function(
        "(() => { const s = window.hsview.images['cube-overview'];"
        " return s.layer === 'band' && s.band === 4 && window.hsview.pending === 0; })()"
    )
    assert page.locator("#band-label").inner_text() == "440 nm"
    band = scene["pred"][..., 4].astype(np.float64)
    shown = page.evaluate("window.hsview.images['cube-overview']")
    assert (shown["lo"], shown["hi"]) == (band.min(), band.max())
    expected = np.round((band - band.min()) / (band.max() - band.min()) * 255)
    pixels = shown_pixels(page, "cube-overview")
    np.testing.assert_array_equal(pixels[..., 0], expected)  # the 440 nm band, stretched min → black, max → white
    keep_screenshot(page, "viewer-band.png")
    # the MRAE map layer: each pixel's MRAE through the same stretch
    page.locator("input[name=layer][value=mrae]").check()
    page.wait_for_function("window.hsview.images['cube-overview'].layer === 'mrae' && window.hsview.pending === 0")
    errors = pixel_mrae(scene["pred"], scene["truth"])
    expected = np.round((errors - errors.min()) / (errors.max() - errors.min()) * 255)
    np.testing.assert_array_equal(shown_pixels(page, "cube-overview")[..., 0], expected)


def test_zooming_in_serves_full_resolution_and_clicks_still_hit_their_pixel(page, serve, tmp_path, rng, monkeypatch):
    """A 96×128 cube with a 32-pixel overview (every 4th pixel): the wheel zooms in, the page asks for the
    visible region at one pixel per pixel, and a click on the zoomed image pins the pixel under it."""
    monkeypatch.setattr(catalog_module, "OVERVIEW_MAX_SIDE", 32)
    cube = (rng.random((96, 128, 31), dtype=np.float32) * 0.9).astype(np.float32)
    catalog, _ = build_catalog([write(tmp_path / "big", "h5", cube)])
    page.set_viewport_size({"width": 900, "height": 600})
    page.goto(serve(catalog))
    page.wait_for_function(SETTLED)
    assert page.evaluate("window.hsview.images['cube-overview'].step") == 4
    box = page.locator("#cube-pane").bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.7, box["y"] + box["height"] * 0.6)
    for _ in range(4):
        page.mouse.wheel(0, -400)
    page.wait_for_function(
        "(() => { const d = window.hsview.images['cube-detail'];"
        " return d && d.step === 1 && d.x0 > 0 && window.hsview.pending === 0; })()"
    )
    detail = page.evaluate("window.hsview.images['cube-detail']")
    rows = slice(detail["y0"], detail["y0"] + detail["rows"])
    cols = slice(detail["x0"], detail["x0"] + detail["cols"])
    white = srgb_white(cube_to_linear_srgb(cube[::4, ::4]))  # the exposure is the whole image's, from its overview
    np.testing.assert_array_equal(shown_pixels(page, "cube-detail")[..., :3], cube_to_srgb(cube, white)[rows, cols])
    x, y = detail["x0"] + detail["cols"] // 2, detail["y0"] + detail["rows"] // 3
    page.mouse.click(*screen_point(page, "cube-detail", x, y))
    page.wait_for_function("window.hsview.pins.length === 1")
    pin = page.evaluate("window.hsview.pins[0]")
    assert (pin["x"], pin["y"]) == (x, y)
    assert pin["values"] == [float(v) for v in cube[y, x]]


def test_the_page_runs_under_its_content_security_policy(browser, serve, scene):
    """No CSP bypass here: the page, Plotly included, loads and plots a click with no error or violation."""
    catalog, _ = build_catalog([scene["paths"]["pred"]])
    context = browser.new_context(viewport={"width": 1280, "height": 760})
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    try:
        response = page.goto(serve(catalog))
        assert "script-src 'self'" in response.headers["content-security-policy"]
        page.wait_for_selector('body[data-ready="1"]')
        box = page.locator("#cube-overview").bounding_box()
        page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.wait_for_selector("#pins-table tbody tr")
        page.wait_for_selector("#spectrum-plot .scatterlayer .trace")
    finally:
        context.close()
    assert problems == []
