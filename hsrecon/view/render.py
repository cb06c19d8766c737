"""Pixels for people: a band through a colour map with a contrast stretch, a cube in sRGB, PNG bytes.

Colour maps are plotly's (``plotly.colors``, sampled to 256 entries), except ``gray``, a plain linear
ramp from black to white (plotly's own gray is not linear), so a gray band image's pixel values are the
stretched data values. The stretch maps ``lo`` → the map's first colour and ``hi`` → its last, clipping
beyond; ``lo`` and ``hi`` are normally percentiles of the whole image (:func:`stretch_range`), so a
zoomed view keeps the colours of the whole view. Non-finite values are transparent.
"""

from __future__ import annotations

import io
from functools import lru_cache

import numpy as np

__all__ = ["COLORMAPS", "apply_colormap", "colormap_lut", "colormap_stops", "png_bytes", "stretch_range"]

COLORMAPS = ("viridis", "gray", "inferno", "magma", "cividis", "turbo")
LUT_SIZE = 256


@lru_cache(maxsize=len(COLORMAPS))
def colormap_lut(name: str) -> np.ndarray:
    """The colour map ``name`` as a 256×3 uint8 table (ValueError for a name not in :data:`COLORMAPS`)."""
    if name not in COLORMAPS:
        raise ValueError(f"colour map {name!r}: choose from {', '.join(COLORMAPS)}")
    if name == "gray":
        ramp = np.arange(LUT_SIZE, dtype=np.uint8)
        return np.stack([ramp, ramp, ramp], axis=1)
    from plotly import colors

    sampled = colors.sample_colorscale(colors.get_colorscale(name), np.linspace(0.0, 1.0, LUT_SIZE))
    rgb = [colors.unlabel_rgb(colour) for colour in sampled]
    return np.clip(np.round(np.asarray(rgb, dtype=np.float64)), 0, 255).astype(np.uint8)


def colormap_stops(name: str, count: int = 11) -> list[str]:
    """``count`` CSS colours evenly along the map, for a colour bar (a CSS gradient)."""
    lut = colormap_lut(name)
    picks = np.round(np.linspace(0, LUT_SIZE - 1, count)).astype(int)
    return [f"rgb({r}, {g}, {b})" for r, g, b in lut[picks]]


def stretch_range(values: np.ndarray, low_percent: float, high_percent: float) -> tuple[float, float]:
    """(lo, hi): the given percentiles of the finite values (numpy's linear interpolation).

    ``hi`` is nudged above ``lo`` when they meet (a flat band), so the stretch never divides by zero.
    (0.0, 1.0) when there is no finite value at all.
    """
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return 0.0, 1.0
    lo, hi = (float(v) for v in np.percentile(finite, [low_percent, high_percent]))
    if hi <= lo:
        hi = lo + max(abs(lo) * 1e-6, 1e-12)
    return lo, hi


def apply_colormap(values: np.ndarray, lo: float, hi: float, name: str) -> np.ndarray:
    """h×w values → h×w×4 uint8 RGBA: ``lo..hi`` spread over the map, clipped; non-finite transparent."""
    lut = colormap_lut(name)
    values = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(values)
    # Halves: hi - lo and value - lo stay finite for any finite doubles (lo=-1e308, hi=1e308 would overflow).
    half_span = hi / 2 - lo / 2 if hi > lo else 0.5
    with np.errstate(over="ignore", invalid="ignore"):  # an infinite lo or hi: every value at one end
        scaled = np.nan_to_num((np.where(finite, values, lo) / 2 - lo / 2) / half_span, nan=0.0)
    index = np.round(np.clip(scaled, 0.0, 1.0) * (LUT_SIZE - 1)).astype(np.intp)
    rgba = np.empty((*values.shape, 4), dtype=np.uint8)
    rgba[..., :3] = lut[index]
    rgba[..., 3] = np.where(finite, 255, 0)
    return rgba


def png_bytes(image: np.ndarray) -> bytes:
    """An h×w×3 or h×w×4 uint8 image as PNG (fast compression: these are served, not archived)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()
