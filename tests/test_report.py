"""hsrecon.report: the collected details are the cubes' (samples, per-band MRAE, spectra at the marked pixels),
and the HTML file is self-contained: it opens offline in headless Chromium with no request leaving the file,
and its plots hold the numbers they claim."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from conftest import WAVELENGTHS, keep_screenshot
from conftest import write_cube as write
from hsrecon.evaluate import Rows, evaluate_files
from hsrecon.metrics import mrae, pixel_mrae
from hsrecon.report import (
    ConvertEntry,
    DetailCollector,
    EvalReportCollector,
    detail_from_cube_file,
    write_convert_report,
    write_eval_report,
)


def scene(rng, height, width, noise=0.08):
    yy, xx = np.mgrid[0:height, 0:width]
    truth = np.stack([(np.sin(xx / 9 + k / 4) + 1.3) * (0.2 + yy / height) / 3 for k in range(31)], -1)
    truth = truth.astype(np.float32)
    pred = (truth * (1 + noise * rng.standard_normal(truth.shape))).astype(np.float32)
    return pred, truth


def test_collector_streamed_in_blocks_keeps_the_images_own_numbers(rng):
    """Uneven row blocks, a crop, a 600-pixel-wide image sampled every 3rd pixel: the per-band MRAE is
    the cropped region's, and every plotted spectrum is the cube's at the pixel it names."""
    pred, truth = scene(rng, 300, 600)
    collector = DetailCollector("x", "network", 300, 600, WAVELENGTHS, crop=20)
    y0 = 0
    for height in (7, 64, 1, 100, 128):
        collector.update(y0, pred[y0 : y0 + height], truth[y0 : y0 + height])
        y0 += height
    detail = collector.finish()
    assert detail.step == 3
    for band in (0, 15, 30):
        region = (slice(20, 280), slice(20, 580), slice(band, band + 1))
        assert detail.band_mrae[band] == pytest.approx(mrae(pred[region], truth[region]), rel=1e-9)
    np.testing.assert_allclose(detail.error_map, pixel_mrae(pred[::3, ::3], truth[::3, ::3]), rtol=1e-6)
    assert [s.label for s in detail.spectra] == ["dark", "median", "bright"]
    for spectrum in detail.spectra:
        assert spectrum.values == [float(v) for v in pred[spectrum.y, spectrum.x]]
        assert spectrum.truth == [float(v) for v in truth[spectrum.y, spectrum.x]]
    brightness = [np.mean(truth[s.y, s.x]) for s in detail.spectra]
    assert brightness == sorted(brightness)


@pytest.fixture()
def evaluated(tmp_path, rng):
    """Three scored pairs (one with a name that is HTML) and one prediction without truth."""
    (tmp_path / "pred").mkdir()
    (tmp_path / "gt").mkdir()
    cubes = {}
    for name, (height, width) in {"a": (40, 60), "b<i>": (70, 50), "c": (33, 90)}.items():
        pred, truth = scene(rng, height, width)
        write(tmp_path / "pred" / name, "h5", pred)
        write(tmp_path / "gt" / name, "mat", truth)
        cubes[f"{name}.h5"] = (pred, truth)
    write(tmp_path / "pred" / "orphan", "h5", scene(rng, 8, 8)[0])
    collector = EvalReportCollector()
    report = evaluate_files(
        tmp_path / "pred", tmp_path / "gt", settings={"pred": "<script>x</script>"}, on_rows=collector
    )
    path = write_eval_report(tmp_path / "report.html", report, collector.details)
    return path, report, collector, cubes


def test_eval_report_is_one_escaped_file_with_no_outside_references(evaluated):
    path, report, collector, _ = evaluated
    text = path.read_text(encoding="utf-8")
    assert "default-src 'none'" in text  # the page itself forbids every request
    assert not re.search(r"<(script|link|img|iframe)[^>]+(src|href)=\"(?!data:)", text)
    assert "b&lt;i&gt;.h5" in text and "<i>.h5" not in text
    assert "&lt;script&gt;x&lt;/script&gt;" in text and "<script>x</script>" not in text
    assert "orphan.h5" in text  # the failure is listed
    assert set(collector.details) == {("a.h5", "pred"), ("b<i>.h5", "pred"), ("c.h5", "pred")}
    assert len(report.failures) == 1


def test_eval_report_opens_offline_and_its_plots_hold_the_cubes_numbers(browser, evaluated):
    path, _, collector, cubes = evaluated
    context = browser.new_context(offline=True, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    requests: list[str] = []
    problems: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    try:
        page.goto(path.as_uri())
        page.wait_for_selector('body[data-ready="1"]')
        figures = page.evaluate(
            "Array.from(document.querySelectorAll('[data-figure]')).map(d => ({key: d.dataset.figure,"
            " image: d.dataset.image, traces: d.data.map(t => ({name: t.name, x: t.x, y: t.y}))}))"
        )
        keep_screenshot(page, "report-eval.png")
    finally:
        context.close()
    assert problems == []
    assert [url for url in requests if not url.startswith(("file:", "data:"))] == []
    by_key = {f["key"]: f["traces"] for f in figures}
    (band_curve,) = by_key["band-mrae"]
    expected = np.mean([collector.details[(name, "pred")].band_mrae for name in cubes], axis=0)
    np.testing.assert_allclose(band_curve["y"], expected, rtol=1e-12)
    assert band_curve["x"] == WAVELENGTHS.tolist()
    spectra = [f for f in figures if f["key"].startswith("spectra-")]
    assert sorted(f["image"] for f in spectra) == sorted(cubes)
    for figure in spectra:
        pred, truth = cubes[figure["image"]]
        assert len(figure["traces"]) == 6  # truth and prediction at three pixels
        for trace in figure["traces"]:
            x, y = map(int, re.search(r"\((\d+), (\d+)\)", trace["name"]).groups())
            source = truth if trace["name"].startswith("truth") else pred
            assert trace["y"] == [float(v) for v in source[y, x]], trace["name"]


def test_convert_report_shows_each_cube_read_back_from_its_file(browser, tmp_path, rng):
    pred, _ = scene(rng, 120, 500)
    cube_file = write(tmp_path / "photo", "envi", pred)
    detail = detail_from_cube_file(cube_file, "photo.jpg")
    assert detail.step == 2 and detail.truth_png is None and detail.band_mrae is None
    entries = [
        ConvertEntry(
            "photo.jpg", {"status": "converted", "size": "500×120", "seconds": 1.5, "out_of_range": 0.001}, detail
        ),
        ConvertEntry("other.png", {"status": "skipped"}, None, "other.hdr: cannot be read as a cube"),
    ]
    path = write_convert_report(
        tmp_path / "convert.html",
        entries,
        settings={"weights": "ntire2020-clean"},
        conventions={"out_of_range": "share of values outside [-0.05, 1.05]"},
        failures=[("broken.png", "broken.png: not a readable image")],
    )
    text = path.read_text(encoding="utf-8")
    assert "broken.png: not a readable image" in text and "cannot be read as a cube" in text
    context = browser.new_context(offline=True)
    page = context.new_page()
    try:
        page.goto(path.as_uri())
        page.wait_for_selector('body[data-ready="1"]')
        traces = page.evaluate("document.querySelector('[data-figure=\"spectra-0\"]').data.map(t => [t.name, t.y])")
        keep_screenshot(page, "report-convert.png")
    finally:
        context.close()
    assert len(traces) == 3
    for name, values in traces:
        x, y = map(int, re.search(r"\((\d+), (\d+)\)", name).groups())
        assert x % 2 == 0 and y % 2 == 0
        assert values == [float(v) for v in pred[y, x]]


def test_rows_observer_sees_every_row_of_every_scored_image(tmp_path, rng):
    seen: dict[str, list[int]] = {}
    pred, truth = scene(rng, 20, 30)
    (tmp_path / "p").mkdir()
    (tmp_path / "g").mkdir()
    write(tmp_path / "p" / "x", "h5", pred)
    write(tmp_path / "g" / "x", "h5", truth)

    def observe(rows: Rows) -> None:
        seen.setdefault(rows.image, []).append(rows.pred.shape[0])
        np.testing.assert_array_equal(rows.truth, truth)
        np.testing.assert_array_equal(rows.wavelengths_nm, WAVELENGTHS)

    evaluate_files(tmp_path / "p", tmp_path / "g", on_rows=observe)
    assert seen == {"x.h5": [20]}
    assert Path(tmp_path / "p" / "x.h5").is_file()


def test_convert_entries_read_back_converted_and_skipped_cubes(tmp_path, rng):
    """Converted files carry their facts; skipped ones (done earlier) are read back from their outputs; a
    missing or broken output is named, not fatal."""
    from types import SimpleNamespace

    from hsrecon.report import convert_entries

    pred, _ = scene(rng, 30, 40)
    hdr = write(tmp_path / "a", "envi", pred)
    write(tmp_path / "b", "h5", pred)
    (tmp_path / "c.h5").write_bytes(b"broken")
    result = SimpleNamespace(
        source=Path("photos/a.jpg"), outputs=[tmp_path / "a.img", hdr], width=40, height=30, megapixels=0.0012,
        seconds=0.5, exposure=1.25, out_of_range=0.003,
    )  # fmt: skip
    skipped = [SimpleNamespace(source=Path("photos/b.png"), stem=tmp_path / "b"),
               SimpleNamespace(source=Path("photos/c.png"), stem=tmp_path / "c")]  # fmt: skip
    a, b, c = convert_entries([result], skipped, ["envi", "h5"])
    assert (
        a.facts["status"] == "converted" and a.facts["out_of_range"] == 0.003 and a.facts["outputs"] == "a.img, a.hdr"
    )
    assert a.detail.spectra[0].values == [float(v) for v in pred[a.detail.spectra[0].y, a.detail.spectra[0].x]]
    assert b.facts["status"].startswith("skipped") and b.detail is not None and b.detail.width == 40
    assert c.detail is None and "c.h5" in c.problem
