"""``hsrecon train``: the paper's recipe, with a progress bar (loss, learning rate, ETA) and one-line errors."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from hsrecon.cli._common import (
    INTERRUPTS,
    Ablation,
    DeviceOption,
    ExitCode,
    Light,
    Model,
    Prior,
    Track,
    device_or_exit,
    fail,
    interrupted,
    one_of,
    safe,
    say,
    stderr,
)

__all__ = ["train"]


def train(
    ctx: typer.Context,
    data: Annotated[Path, typer.Option("--data", help="Dataset folder in an NTIRE 2020 or 2022 layout.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Run folder: checkpoints and log.")] = Path(
        "runs/train"
    ),
    model: Annotated[
        Model,
        typer.Option(
            parser=one_of(Model, "--model"),
            help="lwrdan (the network, the paper's recipe), or a per-pixel root-polynomial map fitted in closed "
            "form in seconds, rpr2 or rpr3 (degree 2 or 3), written to RUN/best.safetensors (docs/training.md).",
        ),
    ] = Model.LWRDAN,
    track: Annotated[
        Track,
        typer.Option(parser=one_of(Track, "--track"), help="clean or realworld (which RGB images to learn from)."),
    ] = Track.CLEAN,
    light: Annotated[
        Optional[list[Light]],
        typer.Option(
            parser=one_of(Light, "--light"),
            help="Train and validate on the scenes whose main light is of this kind only (daylight, incandescent, "
            "fluorescent, LED; from hsrecon synth's synth.json). A per-pixel map takes one: a map for a known light, "
            "or auto: a daylight and an incandescent map, weighed per image by its colours. The network takes "
            "one or more (repeat the option): a network for those lights (docs/training.md).",
        ),
    ] = None,
    steps: Annotated[
        int, typer.Option("--max-steps", help="Training steps (the learning rate decays over them).")
    ] = 100_000,
    max_minutes: Annotated[Optional[float], typer.Option(help="Stop after this many minutes.")] = None,
    batch_size: Annotated[int, typer.Option(help="Windows per step (per process).")] = 8,
    lr_start: Annotated[float, typer.Option(help="Initial Adam learning rate.")] = 1e-3,
    lr_end: Annotated[float, typer.Option(help="Final learning rate (exponential decay).")] = 1e-5,
    ssim_weight: Annotated[float, typer.Option(help="Weight of the (1 − SSIM) term.")] = 1.0,
    mrae_weight: Annotated[float, typer.Option(help="Weight of an optional MRAE term.")] = 0.0,
    sam_weight: Annotated[float, typer.Option(help="Weight of an optional spectral-angle term (radians).")] = 0.0,
    gain_invariant: Annotated[
        bool, typer.Option(help="Take the MRAE term after one best gain per window (photos: no absolute scale).")
    ] = False,
    seed: Annotated[int, typer.Option(help="Seed: same seed, same run.")] = 0,
    init: Annotated[
        Optional[str], typer.Option(help="Start from these weights (fine-tuning), e.g. ntire2020-clean.")
    ] = None,
    resume: Annotated[bool, typer.Option(help="Continue from OUTPUT/last, bit for bit.")] = False,
    device: DeviceOption = "auto",
    amp: Annotated[bool, typer.Option(help="Mixed precision (CUDA only).")] = False,
    workers: Annotated[int, typer.Option(help="Data loading processes.")] = 0,
    validate_every: Annotated[int, typer.Option(help="Steps between validations and checkpoints.")] = 1000,
    valid_images: Annotated[Optional[int], typer.Option(help="Use only the first N validation images.")] = None,
    samples_per_image: Annotated[
        int, typer.Option(help="Consecutive windows cut from one image (1: every window of a batch from its own).")
    ] = 16,
    cache_images: Annotated[int, typer.Option(help="Training images kept in memory (small sets: all of them).")] = 8,
    dropout: Annotated[
        Optional[float], typer.Option(help="Dropout rate of the U-net's deep path (default: the model's, 0.2).")
    ] = None,
    ablate: Annotated[
        Optional[list[Ablation]],
        typer.Option(
            parser=one_of(Ablation, "--ablate"),
            help="Paper's ablations, from scratch: coordconv (no coordinate channels), cbam (no attention).",
        ),
    ] = None,
    prior: Annotated[
        Optional[Prior],
        typer.Option(
            parser=one_of(Prior, "--prior"),
            help="Train the network over a per-pixel root-polynomial map (rpr2, rpr3), fitted first on the "
            "training split: the network learns the correction (docs/training.md); with --init, the given "
            "network's features are kept and its correction starts at zero.",
        ),
    ] = None,
) -> None:
    """Train LWRDAN with the paper's recipe (L2 + 1 − SSIM, Adam 1e-3 → 1e-5, 64×64 windows, batch 8), or fit a
    per-pixel root-polynomial map (--model rpr2|rpr3)."""
    if model is not Model.LWRDAN:
        from hsrecon.cli.fit_map import fit_map

        if light and len(light) > 1:
            raise fail("--light: a per-pixel map is fitted for one kind of light (or auto)", ExitCode.USAGE)
        chosen = light[0].value if light else None
        raise typer.Exit(code=int(fit_map(ctx, model.value, data, output, track.value, chosen)))
    if light and Light.AUTO in light:
        raise fail("--light auto: the network's prior is routed when its --init weights are (python -m "
                   "tools.package_weights --light auto --over …); give kinds of light to train on",
                   ExitCode.USAGE)  # fmt: skip
    _check_ranges(
        at_least_one={"--max-steps": steps, "--batch-size": batch_size, "--validate-every": validate_every,
                      "--samples-per-image": samples_per_image, "--valid-images": valid_images},
        zero_or_more={"--workers": workers, "--cache-images": cache_images, "--seed": seed},
        positive={"--lr-start": lr_start, "--lr-end": lr_end, "--max-minutes": max_minutes},
        weights={"--ssim-weight": ssim_weight, "--mrae-weight": mrae_weight, "--sam-weight": sam_weight},
    )  # fmt: skip
    if dropout is not None and not 0 <= dropout <= 0.99:  # the weights' metadata schema allows [0, 0.99]
        raise fail(f"--dropout {dropout}: must be a number from 0 to 0.99", ExitCode.USAGE)
    if ablate and init:
        raise fail("--ablate builds a different network; it cannot start from --init weights", ExitCode.USAGE)
    target = device_or_exit(device)
    from hsrecon.train import TrainConfig  # torch: only once the command line is known to be good

    config = TrainConfig(
        data=data, output=output, track=track.value, steps=steps, max_minutes=max_minutes, batch_size=batch_size,
        lr_start=lr_start, lr_end=lr_end, ssim_weight=ssim_weight, mrae_weight=mrae_weight, seed=seed, init=init,
        resume=resume, device=str(target), amp=amp, workers=workers,
        validate_every=validate_every, checkpoint_every=validate_every, valid_images=valid_images,
        sam_weight=sam_weight, gain_invariant=gain_invariant, samples_per_image=samples_per_image,
        cache_images=cache_images, lights=sorted({kind.value for kind in light or ()}),
        model={name.switch: False for name in ablate or ()} | ({"dropout": dropout} if dropout is not None else {})
        | ({"prior_degree": prior.degree} if prior else {}),
    )  # fmt: skip
    raise typer.Exit(code=int(_run(config)))


_MAX_SEED = 2**63 - 1  # torch.manual_seed takes a 64-bit seed


def _check_ranges(
    *, at_least_one: dict, zero_or_more: dict, positive: dict[str, float | None], weights: dict[str, float]
) -> None:
    """Every numeric option in its range, before the run folder is made or anything is read: one line
    naming the option, exit code 2. None is an option left at its default."""
    for flag, value in at_least_one.items():
        if value is not None and value < 1:
            raise fail(f"{flag} {value}: must be at least 1", ExitCode.USAGE)
    for flag, value in zero_or_more.items():
        if value < 0:
            raise fail(f"{flag} {value}: must be 0 or more", ExitCode.USAGE)
    if zero_or_more["--seed"] > _MAX_SEED:
        raise fail(f"--seed {zero_or_more['--seed']}: must be below 2^63", ExitCode.USAGE)
    for flag, value in positive.items():
        if value is not None and not (0 < value < math.inf):
            raise fail(f"{flag} {value}: must be a positive finite number", ExitCode.USAGE)
    for flag, value in weights.items():
        if not 0 <= value < math.inf:
            raise fail(f"{flag} {value}: must be a finite number, 0 or more", ExitCode.USAGE)


def _run(config) -> ExitCode:
    """Run the training with a progress bar; errors become one line and their exit code."""
    from hsrecon.train import CheckpointWriteError, DivergedError, ResumeError, RunExistsError
    from hsrecon.train import train as run_training
    from hsrecon.weights import WeightsError

    quiet = os.environ.get("RANK", "0").strip() not in ("0", "")  # only rank 0 shows progress
    progress = Progress(
        TextColumn("train"), BarColumn(), MofNCompleteColumn(), TextColumn("loss {task.fields[loss]:.4f}"),
        TextColumn("lr {task.fields[lr]:.2e}"), TimeRemainingColumn(), console=stderr, disable=quiet,
    )  # fmt: skip
    task = None

    def show_step(step: int, loss: float, lr: float) -> None:
        """Start the bar at the first step, so errors found while loading data or weights print alone."""
        nonlocal task
        if task is None:
            progress.start()
            task = progress.add_task("train", total=config.steps, loss=float("nan"), lr=config.lr_start)
        progress.update(task, completed=step, loss=loss, lr=lr)

    def note(text: str) -> None:
        say("note", text, progress.console)

    try:
        try:
            result = run_training(config, on_step=show_step, on_note=note)
        finally:
            if task is not None:  # a bar never started would still print an empty line
                progress.stop()
    except WeightsError as error:
        raise fail(str(error), ExitCode.WEIGHTS) from None
    except ResumeError as error:
        raise fail(str(error), ExitCode.USAGE) from None
    except (RunExistsError, CheckpointWriteError) as error:
        raise fail(str(error), ExitCode.OUTPUT) from None
    except DivergedError as error:
        raise fail(str(error), ExitCode.FAILED) from None
    except (ValueError, OSError) as error:
        raise fail(str(error), ExitCode.INPUT) from None
    except INTERRUPTS as error:
        raise interrupted(error, f"resume with --resume -o {config.output}") from None
    if not quiet:
        stderr.print(safe(_summary(config, result)), highlight=False)
    return ExitCode.OK


def _summary(config, result) -> str:
    """What the run left, naming only files that are there (a run that never validated has no best)."""
    files = (config.output / "best.safetensors", config.output / "last.safetensors")
    weights = " and ".join(str(path) for path in files if path.exists())
    best = f"best validation MRAE {result.best_mrae:.4f}" if math.isfinite(result.best_mrae) else "not validated"
    return f"trained to step {result.step}; {best}; weights {weights}; log {result.log}"
