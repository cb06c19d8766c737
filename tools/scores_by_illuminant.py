"""Per-illuminant scores of an ``hsrecon eval --json`` report on a synthetic set (``hsrecon synth``).

Why: on the synthetic sets the mean MRAE is ruled by the few scenes lit by spiky or blue-poor lamps
(``docs/data.md``); a table per illuminant shows whether a model wins everywhere or only on those. Recipe 2
names its lights by temperature (``D6204K``, ``BB2900K``), so ``--families`` groups them by kind (daylight,
incandescent, fluorescent, LED). Run from the repository root::

    hsrecon eval --data synth300 --weights camera --track realworld \\
        --baseline linear-stored --baseline linear-decoded --json report.json
    python -m tools.scores_by_illuminant report.json synth300
    python -m tools.scores_by_illuminant report.json heldout --families --score mrae_gain_mrae --score sam

and paste the printed markdown (the mean over the images of each illuminant, their count in the header).
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

from hsrecon.data.spectra import light_family


def scores_by_illuminant(
    report: dict, synth: dict, score: str = "mrae", families: bool = False
) -> dict[str, dict[str, list[float]]]:
    """{method: {illuminant: [per-image score, …]}} for the images the report scored."""
    illuminant = {scene["name"]: scene["illuminant"] for scene in synth["files"]}
    groups: dict[str, dict[str, list[float]]] = {}
    for method, results in report["methods"].items():
        by_light: dict[str, list[float]] = defaultdict(list)
        for image in results["images"]:
            light = illuminant[image["name"]]
            by_light[light_family(light) if families else light].append(image[score])
        groups[method] = dict(by_light)
    return groups


def mrae_by_illuminant(report: dict, synth: dict) -> dict[str, dict[str, list[float]]]:
    """{method: {illuminant: [per-image MRAE, …]}}: :func:`scores_by_illuminant` of the plain MRAE."""
    return scores_by_illuminant(report, synth)


def markdown(groups: dict[str, dict[str, list[float]]], digits: int = 3) -> str:
    lights = sorted({light for by_light in groups.values() for light in by_light})
    first = next(iter(groups.values()))
    header = " | ".join(f"{light} ({len(first.get(light, []))})" for light in lights)
    lines = [f"| method | {header} | all |", "|---|" + "---|" * (len(lights) + 1)]
    for method, by_light in groups.items():
        cells = [f"{sum(v) / len(v):.{digits}f}" if (v := by_light.get(light)) else "" for light in lights]
        everything = [m for values in by_light.values() for m in values]
        lines.append(f"| {method} | " + " | ".join(cells) + f" | {sum(everything) / len(everything):.{digits}f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path, help="hsrecon eval --json output")
    parser.add_argument("synth", type=Path, help="the synthetic set's folder (its synth.json)")
    parser.add_argument("--score", action="append", help="per-image field, repeatable (default: mrae)")
    parser.add_argument("--families", action="store_true", help="group lights by kind, not by name")
    args = parser.parse_args()
    report = json.loads(args.report.read_text())
    synth = json.loads((args.synth / "synth.json").read_text())
    for score in args.score or ["mrae"]:
        print(f"{score}:\n" if args.score else "", end="")
        digits = 2 if score == "sam" else 3
        print(markdown(scores_by_illuminant(report, synth, score, args.families), digits) + "\n")


if __name__ == "__main__":
    main()
