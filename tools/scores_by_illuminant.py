"""Per-illuminant MRAE of an ``hsrecon eval --json`` report on a synthetic set (``hsrecon synth``).

Why: on the synthetic set the mean MRAE is ruled by the few scenes lit by spiky or blue-poor lamps
(``docs/data.md``); a table per illuminant shows whether a model wins everywhere or only on those.
Run from the repository root::

    hsrecon eval --data synth300 --weights camera --track realworld \\
        --baseline linear-stored --baseline linear-decoded --json report.json
    python -m tools.scores_by_illuminant report.json synth300

and paste the printed markdown (MRAE mean over the images of each illuminant, their count in the header).
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path


def mrae_by_illuminant(report: dict, synth: dict) -> dict[str, dict[str, list[float]]]:
    """{method: {illuminant: [per-image MRAE, …]}} for the images the report scored."""
    illuminant = {scene["name"]: scene["illuminant"] for scene in synth["files"]}
    groups: dict[str, dict[str, list[float]]] = {}
    for method, results in report["methods"].items():
        by_light: dict[str, list[float]] = defaultdict(list)
        for image in results["images"]:
            by_light[illuminant[image["name"]]].append(image["mrae"])
        groups[method] = dict(by_light)
    return groups


def markdown(groups: dict[str, dict[str, list[float]]]) -> str:
    lights = sorted({light for by_light in groups.values() for light in by_light})
    first = next(iter(groups.values()))
    header = " | ".join(f"{light} ({len(first.get(light, []))})" for light in lights)
    lines = [f"| method | {header} | all |", "|---|" + "---|" * (len(lights) + 1)]
    for method, by_light in groups.items():
        cells = [f"{sum(v) / len(v):.3f}" if (v := by_light.get(light)) else "" for light in lights]
        everything = [m for values in by_light.values() for m in values]
        lines.append(f"| {method} | " + " | ".join(cells) + f" | {sum(everything) / len(everything):.3f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path, help="hsrecon eval --json output")
    parser.add_argument("synth", type=Path, help="the synthetic set's folder (its synth.json)")
    args = parser.parse_args()
    report = json.loads(args.report.read_text())
    synth = json.loads((args.synth / "synth.json").read_text())
    print(markdown(mrae_by_illuminant(report, synth)))


if __name__ == "__main__":
    main()
