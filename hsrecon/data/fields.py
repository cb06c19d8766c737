"""Random fields the synthetic scenes are drawn with (band-limited noise, simple shapes) and their one gain.

Shared by both recipes (:mod:`hsrecon.data.synth`, :mod:`hsrecon.data.scenes`); the first recipe's scenes are
byte-reproducible, so these functions' draws must not change.
"""

from __future__ import annotations

import numpy as np

__all__ = ["P99_RANGE", "band_noise", "scale_to_p99", "shape_mask", "smooth_noise"]

# One gain per scene puts the radiance's 99th percentile at a uniform random level in this range.
P99_RANGE = (0.45, 0.85)


def band_noise(rng: np.random.Generator, height: int, width: int, low: float, high: float) -> np.ndarray:
    """Gaussian noise whose spatial frequencies lie in [low, high] cycles/pixel, zero mean, unit std.

    Periodic (made by FFT); a band holding no frequency of the grid gives zeros.
    """
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.rfftfreq(width)[None, :]
    radius = np.hypot(fy, fx)
    band = (radius >= low) & (radius <= high) & (radius > 0)
    shape = (height, width // 2 + 1)
    spectrum = (rng.normal(size=shape) + 1j * rng.normal(size=shape)) * band
    noise = np.fft.irfft2(spectrum, s=(height, width))
    std = noise.std()
    return (noise - noise.mean()) / std if std > 0 else np.zeros((height, width))


def smooth_noise(rng: np.random.Generator, height: int, width: int, cycles: float = 3.0) -> np.ndarray:
    """Low-frequency noise: at most ``cycles`` periods across the image's longer side."""
    return band_noise(rng, height, width, 0.0, max(cycles, 1.5) / max(height, width))


def shape_mask(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A random ellipse or rotated rectangle, 5–35% of the shorter side in radius."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    cy, cx = rng.uniform(0, height), rng.uniform(0, width)
    ry, rx = rng.uniform(0.05, 0.35, size=2) * min(height, width)
    angle = rng.uniform(0, np.pi)
    u = (x - cx) * np.cos(angle) + (y - cy) * np.sin(angle)
    v = -(x - cx) * np.sin(angle) + (y - cy) * np.cos(angle)
    if rng.random() < 0.5:
        return (u / rx) ** 2 + (v / ry) ** 2 <= 1.0
    return (np.abs(u) <= rx) & (np.abs(v) <= ry)


def scale_to_p99(radiance: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """One gain: the 99th percentile to a random level in :data:`P99_RANGE`, the maximum at most 1."""
    p99 = float(np.percentile(radiance, 99))
    gain = rng.uniform(*P99_RANGE) / p99 if p99 > 0 else 1.0
    peak = float(radiance.max()) * gain
    if peak > 1.0:
        gain /= peak
    return radiance * gain, gain
