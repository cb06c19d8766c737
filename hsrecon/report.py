"""HTML reports for ``hsrecon eval --report`` and ``hsrecon convert --report``: one self-contained file.

Everything the page needs is inside it: Plotly's JavaScript (the copy shipped in the ``plotly`` package),
the figures as JSON, the pictures as ``data:`` PNGs. A Content-Security-Policy in the page forbids every
network request, so it opens offline and can be mailed or archived as it is.

What goes in comes from two places:

- :class:`DetailCollector` watches an image's reconstructed rows stream past (with the truth beside them,
  when there is one; ``hsrecon.evaluate``'s ``on_rows``) and keeps only a strided sample, a thumbnail's
  worth (:data:`THUMBNAIL_SIDE` pixels on the longer side), plus the per-band error sums over every pixel.
  :func:`detail_from_cube_file` does the same from a cube file already written (``convert``), reading only
  the sample (:mod:`hsrecon.view.sources`).
- The scores themselves come from :meth:`hsrecon.evaluate.Report.to_dict`, read generically: a metric
  added there appears in the tables without a change here.

Spectra are shown at three pixels per image, picked from the sample by brightness (the truth's, else the
prediction's: the 10th, 50th and 90th percentile of the band mean), so every method is shown at the same
pixels. Error maps share one colour range over the whole report (0 to the 99th percentile of all pixels),
so images compare at a glance. All text from files (names, settings) is HTML-escaped.
"""

from __future__ import annotations

import base64
import html
import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from hsrecon.metrics import band_relative_errors, crop_region, pixel_mrae
from hsrecon.temps import atomic_file
from hsrecon.view.render import apply_colormap, colormap_stops, png_bytes
from hsrecon.view.sources import open_cube_source, overview_step

__all__ = [
    "THUMBNAIL_SIDE",
    "ConvertEntry",
    "DetailCollector",
    "EvalReportCollector",
    "ImageDetail",
    "Spectrum",
    "convert_entries",
    "detail_from_cube_file",
    "write_convert_report",
    "write_eval_report",
]

THUMBNAIL_SIDE = 256
MAX_IMAGE_SECTIONS = 200  # per-image sections (thumbnails, maps, spectra); the tables list every image
SPECTRUM_PERCENTILES = ((10, "dark"), (50, "median"), (90, "bright"))
ERROR_COLORMAP = "inferno"
PAGE_POLICY = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:"
PIN_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd")


@dataclass(frozen=True)
class Spectrum:
    """One pixel's spectrum (and the truth's), with why it was picked."""

    label: str
    x: int
    y: int
    values: list[float | None]
    truth: list[float | None] | None = None


@dataclass
class ImageDetail:
    """What the report shows of one image for one method, beyond its scores."""

    name: str
    method: str
    height: int
    width: int
    step: int  # the thumbnails sample every step-th pixel
    wavelengths_nm: list[float]
    preview_png: bytes  # the prediction in sRGB, at the truth's exposure when there is a truth
    truth_png: bytes | None = None
    error_map: np.ndarray | None = None  # each sampled pixel's MRAE
    band_mrae: list[float | None] | None = None  # per band over every (cropped) pixel
    spectra: list[Spectrum] = field(default_factory=list)


def _json_number(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _numbers(values: np.ndarray) -> list[float | None]:
    return [_json_number(float(v)) for v in values]


def _srgb_png(cube: np.ndarray, wavelengths: np.ndarray, white: float | None) -> bytes:
    from hsrecon.preview import cube_to_linear_srgb, encode_srgb, srgb_white

    try:
        linear = cube_to_linear_srgb(cube, wavelengths)
    except ValueError:  # no visible band: the band mean in gray instead
        mean = np.nanmean(cube, axis=-1)
        top = float(np.nanpercentile(mean, 99.5)) if np.isfinite(mean).any() else 1.0
        gray = np.clip(np.nan_to_num(mean / (top or 1.0)), 0, 1)
        return png_bytes(np.round(np.repeat(gray[..., None], 3, axis=-1) * 255).astype(np.uint8))
    return png_bytes(encode_srgb(linear, srgb_white(linear) if white is None else white))


def _srgb_white(cube: np.ndarray, wavelengths: np.ndarray) -> float | None:
    from hsrecon.preview import cube_to_linear_srgb, srgb_white

    try:
        return srgb_white(cube_to_linear_srgb(cube, wavelengths))
    except ValueError:
        return None


def _pick_spectra(pred: np.ndarray, truth: np.ndarray | None, step: int) -> list[Spectrum]:
    """Three sampled pixels by the brightness of the truth (else the prediction), with their spectra."""
    reference = truth if truth is not None else pred
    brightness = np.nanmean(np.where(np.isfinite(reference), reference, np.nan), axis=-1).ravel()
    finite = np.flatnonzero(np.isfinite(brightness))
    if finite.size == 0:
        return []
    order = finite[np.argsort(brightness[finite], kind="stable")]
    picked: list[Spectrum] = []
    seen: set[int] = set()
    for percentile, label in SPECTRUM_PERCENTILES:
        index = int(order[min(order.size - 1, round(percentile / 100 * (order.size - 1)))])
        if index in seen:
            continue
        seen.add(index)
        i, j = divmod(index, pred.shape[1])
        picked.append(
            Spectrum(
                label=label,
                x=j * step,
                y=i * step,
                values=_numbers(pred[i, j]),
                truth=None if truth is None else _numbers(truth[i, j]),
            )
        )
    return picked


class DetailCollector:
    """Collects one image's :class:`ImageDetail` from its rows, top to bottom (``update``), then ``finish``.

    Keeps a strided sample (every ``step``-th row and column, ``step`` from the image size and
    :data:`THUMBNAIL_SIDE`) and, with a truth, per-band sums of |pred − gt| / |gt| over the ``crop`` region
    (the scores' region): memory is a thumbnail's, whatever the image size.
    """

    def __init__(
        self,
        name: str,
        method: str,
        height: int,
        width: int,
        wavelengths_nm: Sequence[float],
        *,
        crop: int = 0,
        side: int = THUMBNAIL_SIDE,
    ) -> None:
        self.name, self.method = name, method
        self.height, self.width = height, width
        self.wavelengths = np.asarray(wavelengths_nm, dtype=np.float64)
        self.step = overview_step(height, width, side)
        self.rows, self.cols = crop_region(height, width, crop)
        self._pred: list[np.ndarray] = []
        self._truth: list[np.ndarray] = []
        self._sums = np.zeros(self.wavelengths.size)
        self._counts = np.zeros(self.wavelengths.size, dtype=np.int64)
        self._has_truth = False

    def update(self, y0: int, pred_rows: np.ndarray, truth_rows: np.ndarray | None = None) -> None:
        first = (-y0) % self.step
        self._pred.append(np.asarray(pred_rows[first :: self.step, :: self.step], dtype=np.float32))
        if truth_rows is None:
            return
        self._has_truth = True
        self._truth.append(np.asarray(truth_rows[first :: self.step, :: self.step], dtype=np.float32))
        lo, hi = max(y0, self.rows.start), min(y0 + pred_rows.shape[0], self.rows.stop)
        if lo < hi:
            sums, counts = band_relative_errors(
                pred_rows[lo - y0 : hi - y0, self.cols], truth_rows[lo - y0 : hi - y0, self.cols]
            )
            self._sums += sums
            self._counts += counts

    def finish(self) -> ImageDetail:
        pred = np.concatenate(self._pred) if self._pred else np.zeros((0, 0, self.wavelengths.size), np.float32)
        truth = np.concatenate(self._truth) if self._has_truth else None
        self._pred, self._truth = [], []
        white = _srgb_white(truth if truth is not None else pred, self.wavelengths)
        detail = ImageDetail(
            name=self.name,
            method=self.method,
            height=self.height,
            width=self.width,
            step=self.step,
            wavelengths_nm=[float(w) for w in self.wavelengths],
            preview_png=_srgb_png(pred, self.wavelengths, white),
            spectra=_pick_spectra(pred, truth, self.step),
        )
        if truth is not None:
            detail.truth_png = _srgb_png(truth, self.wavelengths, white)
            detail.error_map = pixel_mrae(pred, truth).astype(np.float32)
            with np.errstate(invalid="ignore", divide="ignore"):
                detail.band_mrae = _numbers(self._sums / self._counts)
        return detail


class EvalReportCollector:
    """The ``on_rows`` observer of :func:`hsrecon.evaluate.evaluate_pairs` / ``evaluate_files``.

    One :class:`DetailCollector` per (image, method), finished when the image's last row arrives. Past
    :data:`MAX_IMAGE_SECTIONS` images, only the per-band errors are kept (the report's curve covers every
    image; its sections stop there, and say so).
    """

    def __init__(self, *, crop: int = 0, max_images: int = MAX_IMAGE_SECTIONS) -> None:
        self.crop, self.max_images = crop, max_images
        self.details: dict[tuple[str, str], ImageDetail] = {}
        self._open: dict[tuple[str, str], DetailCollector] = {}
        self._images: list[str] = []

    def __call__(self, rows) -> None:  # rows: hsrecon.evaluate.Rows
        key = (rows.image, rows.method)
        if rows.y0 == 0:
            height, width = rows.truth.shape[:2]
            side = THUMBNAIL_SIDE if self._admit(rows.image) else 1
            self._open[key] = DetailCollector(
                rows.image, rows.method, height, width, rows.wavelengths_nm, crop=self.crop, side=side
            )
        collector = self._open.get(key)
        if collector is None:
            return
        h = rows.pred.shape[0]
        collector.update(rows.y0, rows.pred, rows.truth[rows.y0 : rows.y0 + h])
        if rows.y0 + h >= collector.height:
            detail = self._open.pop(key).finish()
            if not self._admit(rows.image):
                detail.preview_png, detail.truth_png, detail.error_map, detail.spectra = b"", None, None, []
            self.details[key] = detail

    def _admit(self, image: str) -> bool:
        if image not in self._images:
            self._images.append(image)
        return self._images.index(image) < self.max_images


def detail_from_cube_file(path: Path, name: str, *, side: int = THUMBNAIL_SIDE) -> ImageDetail:
    """An :class:`ImageDetail` of a written cube without truth, reading only the thumbnail's sample."""
    source = open_cube_source(Path(path))
    try:
        step = overview_step(source.height, source.width, side)
        sample = source.read(slice(0, source.height, step), slice(0, source.width, step))
        return ImageDetail(
            name=name,
            method="",
            height=source.height,
            width=source.width,
            step=step,
            wavelengths_nm=[float(w) for w in source.wavelengths_nm],
            preview_png=_srgb_png(sample, source.wavelengths_nm, None),
            spectra=_pick_spectra(sample, None, step),
        )
    finally:
        source.close()


# --- writing ------------------------------------------------------------------------------------------


def _plotly_js() -> str:
    return (resources.files("plotly") / "package_data" / "plotly.min.js").read_text(encoding="utf-8")


def _escape(value: object) -> str:
    return html.escape(str(value), quote=True)


def _cell(value: object) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.5g}" if math.isfinite(value) else str(value)
    if isinstance(value, dict | list):
        return _escape(json.dumps(value))
    return _escape(value)


def _table(rows: Sequence[Mapping[str, object]], *, first: str | None = None, css: str = "") -> str:
    """An HTML table of dicts: the union of their keys, in first-seen order (``first`` leading)."""
    columns: list[str] = [first] if first else []
    for row in rows:
        columns += [key for key in row if key not in columns]
    head = "".join(f"<th>{_escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{_cell(row.get(c))}</td>" for c in columns) + "</tr>" for row in rows)
    return f'<div class="scroll"><table class="{css}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _key_values(mapping: Mapping[str, object]) -> str:
    rows = "".join(f"<tr><th>{_escape(k)}</th><td>{_cell(v)}</td></tr>" for k, v in mapping.items())
    return f'<table class="facts"><tbody>{rows}</tbody></table>'


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{_escape(alt)}" src="data:image/png;base64,{data}">'


def _figure_json(figures: Mapping[str, dict]) -> str:
    """Figures as JSON inside a <script> element: ``</`` is written ``<\\/`` so no string can close it."""
    return json.dumps(figures, allow_nan=False).replace("</", "<\\/")


_STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 1200px; padding: 16px 24px; color: #1d1f23; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 18px; margin: 28px 0 8px; border-bottom: 1px solid #ddd; }
h3 { font-size: 15px; margin: 18px 0 6px; } .muted { color: #666; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { padding: 3px 8px; border-bottom: 1px solid #e4e4e4; text-align: left; white-space: nowrap; }
table.facts th { font-weight: 600; color: #444; } table.facts td { white-space: normal; }
.scroll { overflow-x: auto; }
.image { border-top: 1px solid #eee; padding-top: 6px; }
.thumbs { display: flex; flex-wrap: wrap; gap: 12px; align-items: flex-start; }
figure { margin: 0; } figcaption { font-size: 12px; color: #555; }
.thumb { position: relative; display: inline-block; line-height: 0; }
.thumb img { image-rendering: pixelated; border: 1px solid #ccc; width: 256px; height: auto; }
.mark { position: absolute; width: 10px; height: 10px; margin: -6px 0 0 -6px; border: 2px solid; border-radius: 50%;
  box-shadow: 0 0 0 1px #fff; }
.colorbar { display: inline-block; width: 140px; height: 10px; border: 1px solid #999; vertical-align: middle; }
.plot { width: 100%; height: 340px; } .plot.small { height: 300px; }
.failures li { color: #a00; }
"""


def _page(title: str, subtitle: str, body: str, figures: Mapping[str, dict]) -> str:
    from hsrecon import __version__

    generated = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    render = (
        "window.hsreport = {ready: false};"
        "const figures = JSON.parse(document.getElementById('figures').textContent);"
        "const config = {displaylogo: false, responsive: true};"
        "Promise.all(Array.from(document.querySelectorAll('[data-figure]')).map((div) => {"
        " const f = figures[div.dataset.figure]; return Plotly.newPlot(div, f.data, f.layout, config); }))"
        ".then(() => { window.hsreport = {ready: true, figures: Object.keys(figures).length}; "
        "document.body.dataset.ready = '1'; });"
    )
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{PAGE_POLICY}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_escape(title)}</title><style>{_STYLE}</style>"
        f"<script>{_plotly_js()}</script></head><body>"
        f'<h1>{_escape(title)}</h1><div class="muted">{_escape(subtitle)} · hsrecon {_escape(__version__)} · '
        f"{_escape(generated)}</div>{body}"
        f'<script type="application/json" id="figures">{_figure_json(figures)}</script>'
        f"<script>{render}</script></body></html>\n"
    )


def _layout(x_title: str, y_title: str, **extra) -> dict:
    return {
        "margin": {"l": 60, "r": 20, "t": 30, "b": 50},
        "xaxis": {"title": {"text": x_title}},
        "yaxis": {"title": {"text": y_title}, "rangemode": "tozero"},
        "legend": {"orientation": "h", "y": -0.25},
        **extra,
    }


def _marks(detail: ImageDetail) -> str:
    """Circles on a thumbnail at the pixels whose spectra are plotted, in the plot's colours."""
    spans = []
    for index, spectrum in enumerate(detail.spectra):
        left = 100 * (spectrum.x + 0.5) / detail.width
        top = 100 * (spectrum.y + 0.5) / detail.height
        colour = PIN_COLOURS[index % len(PIN_COLOURS)]
        spans.append(f'<span class="mark" style="left:{left:.3f}%;top:{top:.3f}%;border-color:{colour}"></span>')
    return "".join(spans)


def _thumb(png: bytes, caption: str, detail: ImageDetail, extra: str = "") -> str:
    return (
        f'<figure><div class="thumb">{_img(png, caption)}{_marks(detail)}</div>'
        f"<figcaption>{_escape(caption)}{extra}</figcaption></figure>"
    )


def _spectra_figure(details: Sequence[ImageDetail]) -> dict:
    """Truth (solid) and each method (dashed, dotted …) at the first detail's pixels, one colour per pixel."""
    dashes = ("dash", "dot", "dashdot", "longdash")
    data = []
    reference = details[0]
    for index, spectrum in enumerate(reference.spectra):
        colour = PIN_COLOURS[index % len(PIN_COLOURS)]
        where = f"{spectrum.label} ({spectrum.x}, {spectrum.y})"
        if spectrum.truth is not None:
            data.append(_trace(reference.wavelengths_nm, spectrum.truth, f"truth, {where}", colour, "solid"))
        for number, detail in enumerate(details):
            own = next((s for s in detail.spectra if (s.x, s.y) == (spectrum.x, spectrum.y)), None)
            if own is None:
                continue
            dash = dashes[number % len(dashes)] if spectrum.truth is not None else "solid"
            label = f"{detail.method}, {where}" if detail.method else where
            data.append(_trace(detail.wavelengths_nm, own.values, label, colour, dash))
    return {"data": data, "layout": _layout("wavelength (nm)", "value")}


def _trace(x: Sequence[float], y: Sequence[float | None], name: str, colour: str, dash: str) -> dict:
    line = {"color": colour, "dash": dash}
    return {"type": "scatter", "mode": "lines", "x": list(x), "y": list(y), "name": name, "line": line}


def _error_range(details: Sequence[ImageDetail]) -> float:
    maps = [d.error_map[np.isfinite(d.error_map)] for d in details if d.error_map is not None]
    values = np.concatenate(maps) if maps else np.zeros(0)
    top = float(np.percentile(values, 99)) if values.size else 1.0
    return top if top > 0 else 1.0


def _colorbar(top: float) -> str:
    stops = ", ".join(colormap_stops(ERROR_COLORMAP))
    return (
        f' <span class="muted">0</span> <span class="colorbar" style="background:linear-gradient(to right, {stops})">'
        f'</span> <span class="muted">{top:.3g}</span>'
    )


def _image_sections(details_by_image: Mapping[str, list[ImageDetail]], top: float) -> tuple[str, dict]:
    sections, figures = [], {}
    for number, (name, details) in enumerate(details_by_image.items()):
        shown = [d for d in details if d.preview_png]
        if not shown:
            continue
        first = shown[0]
        thumbs = []
        if first.truth_png is not None:
            thumbs.append(_thumb(first.truth_png, "truth (sRGB)", first))
        for detail in shown:
            label = f"{detail.method} (sRGB)" if detail.method else "sRGB"
            thumbs.append(_thumb(detail.preview_png, label, detail))
            if detail.error_map is not None:
                mapped = apply_colormap(detail.error_map, 0.0, top, ERROR_COLORMAP)
                thumbs.append(_thumb(png_bytes(mapped), f"{detail.method} MRAE per pixel", detail, _colorbar(top)))
        key = f"spectra-{number}"
        figures[key] = _spectra_figure(shown)
        size = f"{first.width}×{first.height}" + (f", every {first.step}th pixel shown" if first.step > 1 else "")
        sections.append(
            f'<section class="image"><h3>{_escape(name)}</h3><div class="muted">{_escape(size)}</div>'
            f'<div class="thumbs">{"".join(thumbs)}</div>'
            f'<div class="plot small" data-figure="{key}" data-image="{_escape(name)}"></div></section>'
        )
    return "".join(sections), figures


def _write(path: Path, text: str) -> Path:
    path = Path(path)
    with atomic_file(path) as temp:
        temp.write_text(text, encoding="utf-8")
    return path


def write_eval_report(
    path: Path,
    report,
    details: Mapping[tuple[str, str], ImageDetail],
    *,
    title: str = "hsrecon eval",
    max_images: int = MAX_IMAGE_SECTIONS,
) -> Path:
    """Write the evaluation ``report`` (a :class:`hsrecon.evaluate.Report`) with the collected ``details``
    as one self-contained HTML file, atomically."""
    data = report.to_dict()
    settings = dict(data["settings"])
    conventions = settings.pop("conventions", {})
    methods = data["methods"]
    scored = {(image["name"], method) for method, block in methods.items() for image in block["images"]}
    kept = {key: detail for key, detail in details.items() if key in scored}
    summary_rows = [{"method": m, **block["summary"]} for m, block in methods.items()]
    image_rows = [
        {"image": image["name"], "method": method, **{k: v for k, v in image.items() if k != "name"}}
        for method, block in methods.items()
        for image in block["images"]
    ]
    figures: dict[str, dict] = {"band-mrae": _band_figure(methods, kept)}
    by_image: dict[str, list[ImageDetail]] = {}
    for (image, _), detail in kept.items():
        by_image.setdefault(image, []).append(detail)
    sections, image_figures = _image_sections(by_image, _error_range(list(kept.values())))
    figures.update(image_figures)
    images_total = len({name for name, _ in scored})
    shown = sum(1 for ds in by_image.values() if any(d.preview_png for d in ds))
    note = f" (the first {shown} of {images_total})" if shown < images_total else ""
    failures = "".join(f"<li>{_escape(f['name'])}: {_escape(f['error'])}</li>" for f in data["failures"])
    body = (
        f"<h2>Summary</h2>{_table(summary_rows, first='method')}"
        '<h2>MRAE per band</h2><div class="muted">the mean over images of each image\'s MRAE in that band '
        "(the scores' region and conventions)</div>"
        '<div class="plot" data-figure="band-mrae"></div>'
        f"<h2>Images</h2>{_table(image_rows, first='image')}"
        + (f'<h2>Failed</h2><ul class="failures">{failures}</ul>' if failures else "")
        + f"<h2>Per image{_escape(note)}</h2>"
        '<div class="muted">thumbnails sample the image; the circles mark the pixels whose spectra are plotted '
        "(the 10th, 50th and 90th percentile of the truth's brightness); MRAE maps share one colour range</div>"
        f"{sections}"
        f"<h2>Conventions</h2>{_key_values(conventions)}"
        f"<h2>Settings</h2>{_key_values(settings)}"
    )
    subtitle = f"{images_total} images scored, {len(data['failures'])} failed"
    return _write(path, _page(title, subtitle, body, figures))


def _band_figure(methods: Mapping[str, dict], details: Mapping[tuple[str, str], ImageDetail]) -> dict:
    data = []
    for method in methods:
        curves = [d.band_mrae for (_, m), d in details.items() if m == method and d.band_mrae is not None]
        if not curves:
            continue
        values = np.asarray([[np.nan if v is None else v for v in c] for c in curves], dtype=np.float64)
        with np.errstate(invalid="ignore"):
            mean = np.nanmean(values, axis=0) if np.isfinite(values).any() else values[0]
        wavelengths = next(d.wavelengths_nm for (_, m), d in details.items() if m == method)
        data.append({"type": "scatter", "mode": "lines+markers", "x": wavelengths, "y": _numbers(mean), "name": method})
    return {"data": data, "layout": _layout("wavelength (nm)", "MRAE")}


@dataclass
class ConvertEntry:
    """One input of a convert batch: its facts (size, time, out-of-range share …) and what its cube looks like."""

    name: str
    facts: dict
    detail: ImageDetail | None = None
    problem: str | None = None  # why there is no detail (the cube could not be read back)


def convert_entries(converted: Sequence, skipped: Sequence, formats: Sequence[str]) -> list[ConvertEntry]:
    """The report's entries for a convert batch: each converted file (a :class:`hsrecon.pipeline.ConvertResult`)
    with its facts, and each skipped one (a :class:`hsrecon.batch.BatchItem`, already converted earlier), each
    with its cube read back from the first readable output (ENVI first: it is read fastest)."""
    from hsrecon.io import output_files

    order = sorted(formats, key=lambda fmt: fmt != "envi")
    entries = []
    for result in converted:
        cubes = [p for p in result.outputs if p.suffix.lower() in (".hdr", ".h5", ".mat")]
        cubes.sort(key=lambda p: p.suffix.lower() != ".hdr")
        facts = {
            "status": "converted",
            "size": f"{result.width}×{result.height}",
            "megapixels": round(result.megapixels, 3),
            "seconds": round(result.seconds, 2),
            "mp_per_s": round(result.megapixels / max(result.seconds, 1e-9), 3),
            "exposure": result.exposure,
            "out_of_range": result.out_of_range,
            "outputs": ", ".join(p.name for p in result.outputs),
        }
        entries.append(_entry(result.source.name, facts, cubes))
    for item in skipped:
        cubes = [output_files(item.stem, fmt)[-1] for fmt in order]  # the .hdr, .h5 or .mat
        entries.append(_entry(item.source.name, {"status": "skipped (already converted)"}, cubes))
    return entries


def _entry(name: str, facts: dict, cubes: Sequence[Path]) -> ConvertEntry:
    problem = "no cube output"
    for cube in cubes:
        try:
            return ConvertEntry(name, facts, detail_from_cube_file(cube, name))
        except (ValueError, OSError) as error:
            problem = (str(error) or type(error).__name__).splitlines()[0]
    return ConvertEntry(name, facts, None, problem)


def write_convert_report(
    path: Path,
    entries: Sequence[ConvertEntry],
    *,
    settings: Mapping[str, object],
    conventions: Mapping[str, object],
    failures: Sequence[tuple[str, str]] = (),
    title: str = "hsrecon convert",
) -> Path:
    """Write a convert batch's report (no truth): the table of inputs, previews, spectra at sampled pixels,
    the failures, the conventions; one self-contained HTML file, atomically."""
    rows = [{"input": e.name, **e.facts} for e in entries]
    sections, figures = [], {}
    for number, entry in enumerate(entries[:MAX_IMAGE_SECTIONS]):
        detail = entry.detail
        if detail is None:
            problem = _escape(entry.problem or "no cube")
            sections.append(
                f'<section class="image"><h3>{_escape(entry.name)}</h3><div class="muted">{problem}</div></section>'
            )
            continue
        key = f"spectra-{number}"
        figures[key] = _spectra_figure([detail])
        size = f"{detail.width}×{detail.height}" + (f", every {detail.step}th pixel shown" if detail.step > 1 else "")
        sections.append(
            f'<section class="image"><h3>{_escape(entry.name)}</h3><div class="muted">{_escape(size)}</div>'
            f'<div class="thumbs">{_thumb(detail.preview_png, "sRGB", detail)}'
            f'<div class="plot small" data-figure="{key}" data-image="{_escape(entry.name)}" '
            'style="flex:1;min-width:420px"></div></div></section>'
        )
    listed = "".join(f"<li>{_escape(name)}: {_escape(message)}</li>" for name, message in failures)
    converted = sum(1 for e in entries if e.facts.get("status") == "converted")
    note = f" (the first {MAX_IMAGE_SECTIONS} of {len(entries)})" if len(entries) > MAX_IMAGE_SECTIONS else ""
    body = (
        f"<h2>Inputs</h2>{_table(rows, first='input')}"
        + (f'<h2>Failed</h2><ul class="failures">{listed}</ul>' if listed else "")
        + f"<h2>Per image{_escape(note)}</h2>"
        '<div class="muted">previews sample the cube; the circles mark the pixels whose spectra are plotted '
        "(the 10th, 50th and 90th percentile of brightness)</div>"
        f"{''.join(sections)}"
        f"<h2>Conventions</h2>{_key_values(conventions)}"
        f"<h2>Settings</h2>{_key_values(settings)}"
    )
    subtitle = f"{converted} converted, {len(entries) - converted} already done, {len(failures)} failed"
    return _write(path, _page(title, subtitle, body, figures))
