"""Metameric twins: how much of a lamp an image can show, against a smooth light of the same colour (issue 24).

Why: one root-polynomial map per kind of light would meet issue 24's bar if the kind were known
(``tools/light_bounds``), but every estimator of the kind from an image tells lamps (fluorescent tubes, LEDs)
from daylight of the same colour badly. This measures why, with no scene and no learning: each lamp of
recipe 3's pools is paired with its *twin*, the CIE daylight (4000–25000 K) or blackbody (1500–4000 K) whose
white has the closest chromaticity in the clean track's RGB. Every reflectance of the family library is then
rendered under both, at the exposure that takes a perfect white to 255 in its brightest channel, and compared:

- in the image: how many 8-bit steps the lamp moves each material's clean-track RGB from where the twin puts
  it (the largest channel's change), and the white's own chroma gap, in % of log-chroma;
- in the truth: how far the twin's radiance is from the lamp's, as MRAE and SAM per material (the error an
  estimator that cannot tell the two apart makes on one of them when it answers with the other). The MRAE is
  the same for every material (the reflectance cancels in it); SAM is not.

Run from the repository root (seconds)::

    python -m tools.light_twins

and paste the printed markdown.
"""

from __future__ import annotations

import argparse

import numpy as np

from hsrecon.data.families import family_library
from hsrecon.data.scenes import INDOOR_LIGHTS
from hsrecon.data.spectra import blackbody, daylight, light_spectrum
from hsrecon.physics import ntire2020_clean_matrix

SMOOTH = [(f"D{t}K", daylight(t)) for t in range(4000, 25001, 100)] + [
    (f"BB{t}K", blackbody(t)) for t in range(1500, 4001, 50)
]


def white_rgb(light: np.ndarray) -> np.ndarray:
    """The clean-track RGB (before scaling) of a perfect white under ``light``."""
    return light @ ntire2020_clean_matrix()


def log_chroma(rgb: np.ndarray) -> np.ndarray:
    return np.log(np.stack([rgb[..., 0] / rgb[..., 1], rgb[..., 2] / rgb[..., 1]], -1))


def twin_of(light: np.ndarray) -> tuple[str, np.ndarray, float]:
    """The smooth light whose white is closest in log-chroma to ``light``'s, and that distance."""
    target = log_chroma(white_rgb(light))
    gaps = [float(np.linalg.norm(log_chroma(white_rgb(spectrum)) - target)) for _, spectrum in SMOOTH]
    best = int(np.argmin(gaps))
    return SMOOTH[best][0], SMOOTH[best][1], gaps[best]


def rendered(reflectances: np.ndarray, light: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Radiances and clean-track RGB (0–1) of ``reflectances`` under ``light``, exposed so white's top channel is 1."""
    scale = 255.0 / white_rgb(light).max()
    radiance = reflectances * light * scale / 255.0
    return radiance, radiance @ ntire2020_clean_matrix()


def compare(reflectances: np.ndarray, lamp: np.ndarray, twin: np.ndarray) -> dict[str, np.ndarray]:
    """Per reflectance (none all zero): the RGB change in 8-bit steps, and the twin's radiance against the
    lamp's (MRAE, SAM °)."""
    lamp_radiance, lamp_rgb = rendered(reflectances, lamp)
    twin_radiance, twin_rgb = rendered(reflectances, twin)
    steps = 255.0 * np.abs(lamp_rgb - twin_rgb).max(1)
    positive = lamp_radiance > 0
    relative = np.where(positive, np.abs(twin_radiance - lamp_radiance) / np.where(positive, lamp_radiance, 1), 0)
    mrae = relative.sum(1) / np.maximum(positive.sum(1), 1)
    unit_twin = twin_radiance / np.linalg.norm(twin_radiance, axis=1, keepdims=True)
    unit_lamp = lamp_radiance / np.linalg.norm(lamp_radiance, axis=1, keepdims=True)
    # the angle as 2·atan(|u − v| / |u + v|): exact near 0°, where arccos of a dot product is not
    angle = 2 * np.arctan2(np.linalg.norm(unit_twin - unit_lamp, axis=1), np.linalg.norm(unit_twin + unit_lamp, axis=1))
    return {"steps": steps, "mrae": mrae, "sam": np.degrees(angle)}


def lamps() -> list[tuple[str, str, str]]:
    """(pool, kind, name) of every tabulated lamp of recipe 3's pools but CIE A-like bulbs (already smooth)."""
    return [
        (pool, kind, name)
        for pool, kinds in INDOOR_LIGHTS.items()
        for kind, names in kinds.items()
        if kind != "incandescent"
        for name in names
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args()
    reflectances = np.clip(family_library().spectra, 0.0, 1.0)
    reflectances = reflectances[reflectances.max(1) > 0]  # a black spectrum has no angle
    print(f"{len(reflectances)} reflectances of the family library; median (95th percentile) over them.\n")
    print("| pool | lamp | twin | white's chroma gap | RGB change, 8-bit steps | ≤ 2 steps | MRAE twin vs lamp | SAM |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for pool, _, name in lamps():
        lamp = light_spectrum(name)
        twin_name, twin, gap = twin_of(lamp)
        result = compare(reflectances, lamp, twin)
        steps, angle = result["steps"], result["sam"]
        cells = [
            f"{pool} | {name} | {twin_name} | {100 * gap:.1f}%",
            f"{np.median(steps):.2f} ({np.quantile(steps, 0.95):.2f}) | {(steps <= 2).mean():.0%}",
            f"{np.median(result['mrae']):.2f} | {np.median(angle):.1f}° ({np.quantile(angle, 0.95):.1f}°)",
        ]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
