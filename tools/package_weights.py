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
``--over NETWORK --network-share S`` packages, instead of the map, the network over it
(:func:`hsrecon.model.over_prior`: S × the network plus (1 − S) × the map, one LWRDAN with a prior), scored
on the dataset's validation split (clean rendering); e.g.::

    python -m tools.package_weights --fit rpr2 --over ntire2020-clean --network-share 0.35 --data /work/v3train \
        -o blend.safetensors --version blend-1 \
        --dataset-command "hsrecon synth -o v3train --recipe 3 --scenes 2000 --size 128 --seed 31"

``--mix MAP=SHARE`` adds an already fitted map under the network at that share (the fitted one gets the rest);
the default ``clean-v3`` is the authors' network at 0.25, ``rpr2-clean-provisional`` (recipe 1) at 0.3 and a map
fitted on v3train at 0.45 (``weights/README.md`` has the command).

``--light auto`` with ``--over`` packages the network over a routed map: its prior's fitted part is chosen per
image by the router (``hsrecon.lightroute``), the ``--mix`` maps stay as they are; the start of ``clean-v3-auto``.
``--light auto`` alone packages a routed map (``hsrecon train --light auto``), scored on the whole validation split.
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
from dataclasses import replace
from pathlib import Path

from hsrecon.model import over_prior
from hsrecon.pixelfit import AUTO_LIGHT, LIGHT_CHOICES, MODELS, fit_pixel_map, fit_routed_map
from hsrecon.pixelweights import PixelMapMeta, PixelMapWeights
from hsrecon.weights import (
    PRIOR_ROUTES_KEY,
    Weights,
    WeightsMeta,
    load_model,
    load_weights,
    make_meta,
    save_weights,
    sha256_of,
)  # fmt: skip

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
        routing=meta.routing,
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


def _mixed_maps(args: argparse.Namespace) -> list[tuple[str, float, PixelMapWeights]]:
    """``--mix NAME=SHARE`` (repeatable): bundled or saved unrouted maps that join the fitted one under the network."""
    mixed = []
    for item in args.mix:
        name, _, share = item.partition("=")
        loaded = load_weights(name)
        if not isinstance(loaded, PixelMapWeights) or loaded.routes is not None:
            raise SystemExit(f"--mix {item}: not an unrouted per-pixel map")
        mixed.append((name, float(share), loaded))
    return mixed


def network_over_map(weights: PixelMapWeights, args: argparse.Namespace) -> tuple[dict, WeightsMeta]:
    """``--over NETWORK --network-share S [--mix MAP=SHARE ...]``: the network's tensors over the fitted map (with
    any ``--mix`` maps at their shares; the fitted map gets what is left), and their metadata (the network's window
    and input space; the map's fit and every share under ``training``)."""
    network = load_weights(args.over)
    if not isinstance(network, Weights):
        raise SystemExit(f"--over {args.over}: a per-pixel map, not a network")
    mixed = _mixed_maps(args)
    fitted_share = 1.0 - args.network_share - sum(share for _, share, _ in mixed)
    maps = [(f"{args.fit} fitted on {args.data.name}", fitted_share, weights), *mixed]
    for name, share, loaded in maps:
        if share <= 0 or loaded.meta.degree != weights.meta.degree or loaded.input_space != network.meta.input_space:
            raise SystemExit(
                f"{name}: share {share:g}, degree {loaded.meta.degree}, input {loaded.input_space}: each map needs a "
                f"positive share, degree {weights.meta.degree} and the network's input space"
            )
    prior = sum(share * loaded.matrix for _, share, loaded in maps) / (1.0 - args.network_share)
    model = over_prior(load_model(args.over), prior, weights.meta.degree, network_share=args.network_share)
    tensors = model.state_dict()
    if weights.routes is not None:  # --light auto: the fitted map's routes, each under the same shares
        routes = [share * (loaded.routes if loaded.routes is not None else loaded.matrix) for _, share, loaded in maps]
        tensors[PRIOR_ROUTES_KEY] = sum(routes)
    folder = args.data.name
    options = f"--over {args.over} --network-share {args.network_share}" + "".join(f" --mix {m}" for m in args.mix)
    light = f" --light {args.light}" if args.light else ""
    shares = {"network": args.network_share, **{name: round(share, 6) for name, share, _ in maps}}
    provenance = {
        "trainer": "hsrecon",
        "init": args.over,
        "method": " + ".join(f"{share:g} x {name}" for name, share in shares.items())
        + f" ({args.over}; root-polynomial degree {weights.meta.degree}; hsrecon.model.over_prior)",
        "dataset": args.dataset_command,
        "command": f"hsrecon train --model {args.fit} --data {folder} --track {args.track}{light} "
        f"-o {args.version}-map.safetensors",
        "packaged_by": f"python -m tools.package_weights --fit {args.fit}{light} {options} --data {folder} "
        f"--track {args.track} --version {args.version}",
        "status": args.status,
        "licence": f"{network.meta.provenance.get('license', 'MIT')} (network); MIT (hsrecon, the maps)",
    }
    facts = {key: weights.meta.training[key] for key in PIXEL_FACT_KEYS if key in weights.meta.training}
    training = {"init": args.over, "network_share": args.network_share, "shares": shares,
                "mixed_maps": {name: sha256_of(loaded.path) for name, _, loaded in mixed},
                "prior_fit": {"data": folder, **facts}}  # fmt: skip
    meta = make_meta(
        model, window_size=network.meta.window_size, input_space=network.meta.input_space,
        weights_version=args.version, wavelengths_nm=network.meta.wavelengths_nm, provenance=provenance,
        training=training, routing=weights.meta.routing,
    )  # fmt: skip
    return tensors, meta


def package_pixel_map(args: argparse.Namespace) -> None:
    """``--fit rpr2|rpr3``: fit on ``--data``, score on its validation split, write ``--output``."""
    if args.light == AUTO_LIGHT:
        weights = fit_routed_map(args.data, MODELS[args.fit], track=args.track, version=args.version)
    else:
        weights = fit_pixel_map(args.data, MODELS[args.fit], track=args.track, light=args.light, version=args.version)
    state, meta = network_over_map(weights, args) if args.over else (weights.state_dict, weights.meta)
    with tempfile.TemporaryDirectory() as folder:
        fitted = Path(folder) / "fitted.safetensors"
        save_weights(fitted, state, meta)
        if args.light and args.light != AUTO_LIGHT:
            key = f"synthetic valid, {args.track} rendering, scenes lit by {args.light} (pixels pooled)"
            metrics = {key: light_scores(fitted, args.data, args.track, args.light)}
        else:
            scores = eval_scores(fitted, args.data, args.track, "--no-plausible")["network"]
            metrics = {f"synthetic valid, {args.track} rendering": scores}
    if args.over:
        save_weights(args.output, state, replace(meta, metrics=metrics))
    else:
        save_weights(args.output, state, packaged_pixel_map(meta, args, metrics))
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
    parser.add_argument("--over", help="--fit: package this network (a bundled name or path) over the fitted map")
    parser.add_argument(
        "--network-share", type=float, default=0.0, help="--over: the network's share of the output, in [0, 1]"
    )
    parser.add_argument(
        "--mix", action="append", default=[], metavar="MAP=SHARE",
        help="--over: another unrouted map (bundled name or path) under the network at this share; repeatable",
    )  # fmt: skip
    parser.add_argument(
        "--status",
        default="provisional: fitted on a small recipe-1 synthetic set; to be refitted on training data v3",
        help="--fit: what the card says of the map",
    )
    args = parser.parse_args()
    if (args.checkpoint is None) == (args.fit is None):
        parser.error("give a checkpoint or --fit rpr2|rpr3, not both")
    if args.over and (not args.fit or args.light not in (None, AUTO_LIGHT)):
        parser.error("--over packages a network over one fitted map: give --fit rpr2|rpr3, with no --light or auto")
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
    save_weights(args.output, weights.file_tensors, packaged_meta(weights.meta, args, metrics))
    print(json.dumps(metrics, indent=1))
    print(f"{args.output}: sha256 {sha256_of(args.output)}")


if __name__ == "__main__":
    main()
