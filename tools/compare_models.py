"""The comparison table of ``docs/model.md``: every model and the linear baseline, scored by ``hsrecon eval``.

Each row is scored on the validation split of a synthetic set (``hsrecon synth``) in both renderings: the
camera's (``realworld``, the sRGB JPEGs of ``hsrecon.data.camera``) and the NTIRE 2020 clean one. The linear
baselines are ``hsrecon eval --baseline linear-stored --baseline linear-decoded``: least-squares 3→31 maps
fitted on the same set's training split, in the same rendering, on the files' values as stored and on them
converted to clean space (the same on the clean rendering). Run from the repository root (a few minutes on
a laptop CPU)::

    python -m tools.compare_models --data synth300 \\
        "authors' (NTIRE 2020 clean)=ntire2020-clean" "camera (shipped)=camera" \\
        "ablation: full model, 2000 steps=runs/abl_full/last.safetensors" ...

and paste the printed markdown. ``LABEL=WEIGHTS`` takes a bundled name or a path.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tools.package_weights import TRACKS, eval_scores

BASELINES = {
    "linear-stored": "linear 3→31 least squares on the stored values (sRGB JPEG / 255)",
    "linear-decoded": "linear 3→31 least squares on the photos decoded to clean space (sRGB curve undone)",
}


def _cells(scores: dict[str, float]) -> str:
    mrae, median, rmse, psnr = (scores[key] for key in ("mrae_mean", "mrae_median", "rmse_mean", "psnr_mean"))
    return f"{mrae:.3f} | {median:.3f} | {rmse:.4f} | {psnr:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("models", nargs="+", help="LABEL=WEIGHTS")
    args = parser.parse_args()

    rows: list[tuple[str, dict[str, dict]]] = []
    for index, entry in enumerate(args.models):
        label, weights = entry.split("=", 1)
        extra = [arg for name in BASELINES for arg in ("--baseline", name)] if index == 0 else []
        by_track = {track: eval_scores(weights, args.data, track, *extra) for track in TRACKS}
        rows.append((label, {track: by_track[track]["network"] for track in TRACKS}))
        if index == 0:
            baselines = [(BASELINES[name], {t: by_track[t][name] for t in TRACKS}) for name in BASELINES]
    rows[:0] = baselines
    header = " | ".join(f"{t}: MRAE mean | median | RMSE | PSNR" for t in TRACKS)
    print(f"| model | {header} |")
    print("|---|" + "---|" * 4 * len(TRACKS))
    for label, scores in rows:
        print(f"| {label} | " + " | ".join(_cells(scores[t]) for t in TRACKS) + " |")


if __name__ == "__main__":
    main()
