"""Turn a training run's checkpoint into a bundled weights file with its provenance and measured scores.

A checkpoint (``RUN/best.safetensors``) already holds the network and the training settings, but with this
machine's paths in them. This tool rewrites the metadata for shipping: the dataset as the command that
regenerates it, the exact training command, the hardware and wall time, and the validation scores that
``hsrecon eval`` gives on the dataset's validation split in each rendering (so the model card's numbers
are, by construction, ``hsrecon eval``'s; ``tests/test_model_card.py`` re-runs eval and compares)::

    python -m tools.package_weights /work/runs/camera_long/best.safetensors \\
        -o weights/lwrdan_camera.safetensors --version camera-1 --data /work/synth300 \\
        --dataset-command "hsrecon synth -o synth300 --scenes 300 --size 128 --seed 11" \\
        --train-command "hsrecon train --data synth300 -o runs/camera --track realworld --max-steps 9000 ..." \\
        --hardware "2-core x86-64 CPU (AVX-512), 1 thread" --minutes 101

The output depends only on the checkpoint and the arguments, so it is byte for byte reproducible.

A per-pixel root-polynomial map is fitted and packaged in the same call (``--fit rpr2`` instead of a
checkpoint): the fit ``hsrecon train --model rpr2`` makes (seconds), its metadata rewritten for shipping the
same way, scored on the dataset's validation split (clean rendering). Refitting the bundled map on other
data is this one command with another ``--data`` / ``--dataset-command`` / ``--version``::

    python -m tools.package_weights --fit rpr2 --data /work/synth40 \\
        -o weights/rpr2_clean_provisional.safetensors --version rpr2-clean-provisional-1 \\
        --dataset-command "hsrecon synth -o synth40 --scenes 40 --size 128 --seed 5"

then put the printed SHA-256 in ``hsrecon.weights.BUNDLED`` and the scores in ``weights/README.md``.
``--light auto`` packages a routed map (``hsrecon train --light auto``), scored on the whole validation split.
``--light KIND`` fits on the scenes of that kind of main light only (``hsrecon train --light``) and scores the
validation scenes of that light (``hsrecon eval --group-by light``: their pixels pooled)::

    python -m tools.package_weights --fit rpr2 --light incandescent --data /work/v3train \
        -o weights/rpr2_incandescent.safetensors --version rpr2-incandescent-1 --status "..." \
        --dataset-command "hsrecon synth -o v3train --recipe 3 --scenes 2000 --size 128 --seed 31"
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from hsrecon.pixelfit import AUTO_LIGHT, LIGHT_CHOICES, MODELS, fit_pixel_map, fit_routed_map
from hsrecon.pixelweights import PixelMapMeta
from hsrecon.weights import WeightsMeta, load_weights, save_weights, sha256_of

TRACKS = ("realworld", "clean")
SCORES = ("mrae_mean", "mrae_median", "mrae_p95", "rmse_mean", "psnr_mean", "sam_mean", "ssim_mean")
# Settings of the run that describe the recipe (the rest are this machine's paths and switches).
RECIPE_KEYS = (
    "track", "steps", "batch_size", "lr_start", "lr_end", "ssim_weight", "mrae_weight", "seed", "init", "window",
    "validate_every", "input_space", "step", "sam_weight", "gain_invariant", "samples_per_image",
)  # fmt: skip


def eval_report(weights: Path | str, data: Path, track: str, *extra: str) -> dict:
    """``hsrecon eval``'s JSON report on the validation split of ``data`` for ``track``."""
    with tempfile.TemporaryDirectory() as folder:
        report = Path(folder) / "report.json"
        command = [sys.executable, "-m", "hsrecon", "eval", "--data", str(data), "--weights", str(weights)]
        command += ["--track", track, "--json", str(report), "--quiet", *extra]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        return json.loads(report.read_text())


def eval_scores(weights: Path | str, data: Path, track: str, *extra: str) -> dict[str, dict[str, float]]:
    """``hsrecon eval``'s summary per method on the validation split of ``data`` for ``track``."""
    return {
        name: {"images": method["summary"]["images"], **{key: method["summary"][key] for key in SCORES}}
        for name, method in eval_report(weights, data, track, *extra)["methods"].items()
    }


def light_scores(weights: Path, data: Path, track: str, light: str) -> dict[str, float]:
    """``hsrecon eval --group-by light``'s pooled scores of ``data``'s validation scenes lit by ``light``."""
    group = eval_report(weights, data, track, "--group-by", "light")["groups"]["light"][light]["network"]
    return {key: group[key] for key in ("images", "pixels", "mrae", "rmse", "sam")}


def packaged_meta(meta: WeightsMeta, args: argparse.Namespace, metrics: dict) -> WeightsMeta:
    training = {key: meta.training[key] for key in RECIPE_KEYS if key in meta.training}
    init = args.init or meta.provenance.get("init", "scratch")
    if "init" in training:
        training["init"] = init
    provenance = {
        "trainer": meta.provenance.get("trainer", "hsrecon"),
        "init": init,
        "dataset": args.dataset_command,
        "command": args.train_command,
        "hardware": args.hardware,
        "wall_minutes": args.minutes,
        "licence": "MIT (hsrecon)",
    }
    return WeightsMeta(
        config=meta.config,
        window_size=meta.window_size,
        input_space=meta.input_space,
        weights_version=args.version,
        wavelengths_nm=meta.wavelengths_nm,
        num_params=meta.num_params,
        trainable_params=meta.trainable_params,
        provenance=provenance,
        training=training,
        metrics=metrics,
    )


# What a packaged map's training facts keep (the rest names this machine's folders).
PIXEL_FACT_KEYS = ("layout", "split", "track", "file_space", "fit_space", "terms", "degree", "ridge", "ridge_chosen_by",
                   "ridges_tried", "valid_mrae_per_ridge", "valid_mrae", "fit_images", "fit_pixels", "valid_images",
                   "valid_pixels", "skipped", "light", "routes", "router_images",
                   "router_training_accuracy")  # fmt: skip


def packaged_pixel_map(meta: PixelMapMeta, args: argparse.Namespace, metrics: dict) -> PixelMapMeta:
    """A fitted map's metadata for shipping: the dataset as its command, the exact fit command, the scores."""
    folder = args.data.name
    light = f" --light {args.light}" if args.light else ""
    command = f"hsrecon train --model {args.fit} --data {folder} --track {args.track}{light}"
    command += f" -o {args.version}.safetensors"
    provenance = {
        "trainer": meta.provenance["trainer"],
        "method": meta.provenance["method"],
        "dataset": args.dataset_command,
        "command": command,
        "packaged_by": f"python -m tools.package_weights --fit {args.fit} --data {folder} --track {args.track}"
        f"{light} --version {args.version}",
        "status": args.status,
        "licence": "MIT (hsrecon)",
    }
    training = {"data": folder, **{key: meta.training[key] for key in PIXEL_FACT_KEYS if key in meta.training}}
    return PixelMapMeta(
        degree=meta.degree,
        weights_version=args.version,
        ridge=meta.ridge,
        input_space=meta.input_space,
        wavelengths_nm=meta.wavelengths_nm,
        provenance=provenance,
        training=training,
        metrics=metrics,
        routing=meta.routing,
    )


def package_pixel_map(args: argparse.Namespace) -> None:
    """``--fit rpr2|rpr3``: fit on ``--data``, score on its validation split, write ``--output``."""
    if args.light == AUTO_LIGHT:
        weights = fit_routed_map(args.data, MODELS[args.fit], track=args.track, version=args.version)
    else:
        weights = fit_pixel_map(args.data, MODELS[args.fit], track=args.track, light=args.light, version=args.version)
    with tempfile.TemporaryDirectory() as folder:
        fitted = Path(folder) / "fitted.safetensors"
        save_weights(fitted, weights.state_dict, weights.meta)
        if args.light and args.light != AUTO_LIGHT:
            key = f"synthetic valid, {args.track} rendering, scenes lit by {args.light} (pixels pooled)"
            metrics = {key: light_scores(fitted, args.data, args.track, args.light)}
        else:
            scores = eval_scores(fitted, args.data, args.track)["network"]
            metrics = {f"synthetic valid, {args.track} rendering": scores}
    save_weights(args.output, weights.state_dict, packaged_pixel_map(weights.meta, args, metrics))
    print(json.dumps(metrics, indent=1))
    print(f"{args.output}: sha256 {sha256_of(args.output)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path, nargs="?", help="a training run's weights (not with --fit)")
    parser.add_argument("--fit", choices=sorted(MODELS), help="fit and package a per-pixel map instead")
    parser.add_argument("-o", "--output", type=Path, required=True)
    parser.add_argument("--version", required=True, help="weights_version, e.g. camera-1")
    parser.add_argument("--data", type=Path, required=True, help="the dataset folder (its validation split is scored)")
    parser.add_argument("--dataset-command", required=True)
    parser.add_argument("--train-command")
    parser.add_argument("--hardware")
    parser.add_argument("--minutes", type=float)
    parser.add_argument(
        "--init", help="what the last stage started from, as --train-command names it (default: the run's --init)"
    )
    parser.add_argument("--track", default="clean", choices=TRACKS, help="--fit: the rendering to fit on")
    parser.add_argument(
        "--light", choices=LIGHT_CHOICES, help="--fit: the scenes of this main light only; auto: a routed map"
    )
    parser.add_argument(
        "--status",
        default="provisional: fitted on a small recipe-1 synthetic set; to be refitted on training data v3",
        help="--fit: what the card says of the map",
    )
    args = parser.parse_args()
    if (args.checkpoint is None) == (args.fit is None):
        parser.error("give a checkpoint or --fit rpr2|rpr3, not both")
    if args.fit:
        package_pixel_map(args)
        return
    missing = [flag for flag in ("train_command", "hardware", "minutes") if getattr(args, flag) is None]
    if missing:
        parser.error(f"a checkpoint needs --{', --'.join(m.replace('_', '-') for m in missing)}")

    weights = load_weights(args.checkpoint)
    metrics = {
        f"synthetic valid, {track} rendering": eval_scores(args.checkpoint, args.data, track)["network"]
        for track in TRACKS
    }
    save_weights(args.output, weights.state_dict, packaged_meta(weights.meta, args, metrics))
    print(json.dumps(metrics, indent=1))
    print(f"{args.output}: sha256 {sha256_of(args.output)}")


if __name__ == "__main__":
    main()
