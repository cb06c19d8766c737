"""``hsrecon train --model rpr2|rpr3``: a per-pixel root-polynomial map fitted in closed form, written as weights.

The network's training options (steps, learning rates, device, …) mean nothing to a least-squares fit: one
given on the command line is refused in one line (exit code 2) rather than silently ignored.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from hsrecon.cli._common import INTERRUPTS, ExitCode, fail, interrupted, safe, say, stderr

__all__ = ["MAP_OPTIONS", "fit_map", "weights_path"]

MAP_OPTIONS = ("data", "output", "track", "model", "light")
"""The ``train`` options a per-pixel map uses; every other one is the network's."""


def weights_path(output: Path) -> Path:
    """Where the weights go: ``output`` itself when it names a ``.safetensors`` file, else ``output/best.safetensors``
    (a run folder, as a network's training writes)."""
    return output if output.suffix == ".safetensors" else output / "best.safetensors"


def _refuse_network_options(ctx: typer.Context, model: str) -> None:
    for param in ctx.command.params:
        if param.name in MAP_OPTIONS or param.name is None:
            continue
        source = ctx.get_parameter_source(param.name)
        if source is not None and source.name in ("COMMANDLINE", "ENVIRONMENT"):
            flag = max(param.opts, key=len)
            raise fail(f"{flag}: trains the network; --model {model} is a closed-form fit and takes only "
                       "--data, --output, --track and --light", ExitCode.USAGE)  # fmt: skip


def fit_map(ctx: typer.Context, model: str, data: Path, output: Path, track: str, light: str | None = None) -> ExitCode:
    """Fit the per-pixel map ``model`` on ``data``'s training split and write it (progress on stderr)."""
    _refuse_network_options(ctx, model)
    from hsrecon.pixelfit import AUTO_LIGHT, fit_pixel_map, fit_routed_map, model_degree
    from hsrecon.weights import save_weights

    target = weights_path(output)
    if target.is_dir():
        raise fail(f"{target}: is a directory", ExitCode.OUTPUT)
    progress = Progress(TextColumn(f"fit {model}"), BarColumn(), MofNCompleteColumn(), TextColumn("images"),
                        TimeElapsedColumn(), console=stderr)  # fmt: skip
    task = progress.add_task("read", total=None)
    try:
        with progress:
            routed = light == AUTO_LIGHT
            weights = (fit_routed_map if routed else fit_pixel_map)(
                data, model_degree(model), track=track, **({} if routed else {"light": light}),
                on_start=lambda images: progress.update(task, total=images),
                on_image=lambda pair: progress.advance(task),
                on_skip=lambda line: say("note", f"left out {line}", progress.console),
            )  # fmt: skip
        target.parent.mkdir(parents=True, exist_ok=True)
        save_weights(target, weights.state_dict, weights.meta)
    except ValueError as error:
        raise fail(str(error), ExitCode.INPUT) from None
    except OSError as error:
        raise fail(f"{target}: cannot write ({error.strerror or error})", ExitCode.OUTPUT) from None
    except INTERRUPTS as error:
        raise interrupted(error, "nothing was written; rerun to fit (it takes seconds)") from None
    facts = weights.meta.training
    stderr.print(
        safe(
            f"fitted {model}{_for_light(light)} on {facts['fit_images']} "
            f"images ({facts['fit_pixels']:,} pixels) of {data}; ridge "
            f"{weights.meta.ridge:g} chosen on {facts['valid_pixels']:,} pixels of {facts['valid_images']} images "
            f"set aside (MRAE {facts['valid_mrae']:.4f} there); wrote {target}"
        ),
        highlight=False,
    )
    return ExitCode.OK


def _for_light(light: str | None) -> str:
    if light is None:
        return ""
    if light == "auto":  # pixelfit.AUTO_LIGHT (not imported here: --help stays free of numpy)
        return " with a map per kind of light an image shows, chosen by its colours,"
    return f" for scenes lit by {light}"
