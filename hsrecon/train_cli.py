"""``hsrecon train``'s presentation: a progress bar with loss and ETA, one-line errors, the exit code."""

from __future__ import annotations

import os

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from hsrecon.cli import ExitCode, fail, stderr
from hsrecon.train import TrainConfig, train
from hsrecon.weights import WeightsError

__all__ = ["run_train"]


def run_train(config: TrainConfig) -> int:
    """Run a training; return its exit code."""
    quiet = int(os.environ.get("RANK", "0")) != 0
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

    try:
        try:
            result = train(config, on_step=show_step)
        finally:
            progress.stop()
    except WeightsError as error:
        raise fail(str(error), ExitCode.WEIGHTS) from None
    except (ValueError, OSError) as error:
        raise fail(str(error), ExitCode.INPUT) from None
    except KeyboardInterrupt:
        raise fail(f"interrupted: resume with --resume -o {config.output}", ExitCode.INTERRUPTED) from None
    if not quiet:
        stderr.print(
            f"trained to step {result.step}; best validation MRAE {result.best_mrae:.4f}; "
            f"weights {config.output / 'best.safetensors'} and {config.output / 'last.safetensors'}; log {result.log}",
            highlight=False,
        )
    return ExitCode.OK
