"""``hsrecon synth``: a synthetic training set from measured reflectances and illuminants."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from hsrecon.cli._common import ExitCode, Pool, Split, fail, one_of, safe, stderr, stdout

__all__ = ["synth"]


def synth(
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder to write (NTIRE 2020 layout).")],
    scenes: Annotated[int, typer.Option(help="Number of scenes (the last 10% go to validation).")] = 100,
    size: Annotated[int, typer.Option(help="Scene height and width in pixels (a multiple of 4).")] = 128,
    seed: Annotated[int, typer.Option(help="Same seed, same dataset, byte for byte.")] = 0,
    valid_fraction: Annotated[float, typer.Option(help="Share of scenes for validation.")] = 0.1,
    camera: Annotated[
        Optional[str], typer.Option(help="Camera for the RealWorld track (default: the model's default camera).")
    ] = None,
    no_camera: Annotated[bool, typer.Option("--no-camera", help="Only the clean rendering.")] = False,
    only: Annotated[
        Optional[Split],
        typer.Option(
            parser=one_of(Split, "--only"),
            help="Write only this split (train or valid), the same scenes as in the full set.",
        ),
    ] = None,
    recipe: Annotated[
        int,
        typer.Option(
            help="1: the camera models' set; 2: material classes, many cameras; 3: material families with held-out "
            "families, layouts, lights and camera (docs/data.md)."
        ),
    ] = 1,
    valid_sensors: Annotated[
        Pool,
        typer.Option(
            parser=one_of(Pool, "--valid-sensors"),
            help="Recipe 2: cameras of the validation scenes, train or heldout (a camera training never sees).",
        ),
    ] = Pool.TRAIN,
    valid_lights: Annotated[
        Pool,
        typer.Option(
            parser=one_of(Pool, "--valid-lights"),
            help="Recipe 2: indoor lamps of the validation scenes, train or heldout (lamps training never sees).",
        ),
    ] = Pool.TRAIN,
    valid_families: Annotated[
        Pool,
        typer.Option(
            parser=one_of(Pool, "--valid-families"),
            help="Recipe 3: material families of the validation scenes' objects, train or heldout (docs/data.md).",
        ),
    ] = Pool.TRAIN,
    valid_generators: Annotated[
        Pool,
        typer.Option(
            parser=one_of(Pool, "--valid-generators"),
            help="Recipe 3: layout of the validation scenes, train (outdoor, indoor) or heldout (mosaic).",
        ),
    ] = Pool.TRAIN,
    overwrite: Annotated[
        bool,
        typer.Option(
            help="Replace the set already in OUTPUT (one synth wrote) as a whole; without it, a folder "
            "with files in it is refused."
        ),
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Make a synthetic training set from measured reflectances and illuminants (docs/data.md)."""
    from rich.progress import Progress

    from hsrecon.data.camera import DEFAULT_CAMERA
    from hsrecon.data.synth import DatasetExistsError, check_recipe, make_synthetic_dataset

    if size % 4 or size < 4:
        raise fail(f"--size {size}: must be a positive multiple of 4", ExitCode.USAGE)
    try:
        check_recipe(recipe, valid_families=valid_families.value, valid_generators=valid_generators.value)
    except ValueError as error:
        raise fail(str(error), ExitCode.USAGE) from None
    progress = Progress(console=stderr, disable=quiet)
    task = None

    def advance(done: int, total: int) -> None:
        """Start the bar at the first scene, so an error found before any work prints alone."""
        nonlocal task
        if task is None:
            progress.start()
            task = progress.add_task("scenes", total=total)
        progress.update(task, completed=done)

    try:
        try:
            summary = make_synthetic_dataset(
                output, scenes=scenes, size=(size, size), seed=seed, valid_fraction=valid_fraction,
                camera=None if no_camera else (camera or DEFAULT_CAMERA), only=only.value if only else None,
                recipe=recipe, valid_sensors=valid_sensors.value, valid_lights=valid_lights.value,
                valid_families=valid_families.value, valid_generators=valid_generators.value,
                overwrite=overwrite, progress=advance,
            )  # fmt: skip
        finally:
            if task is not None:
                progress.stop()
    except ValueError as error:
        raise fail(str(error), ExitCode.USAGE) from None
    except DatasetExistsError as error:
        raise fail(str(error), ExitCode.OUTPUT) from None
    except OSError as error:
        raise fail(f"{output}: cannot write ({error.strerror or error}); nothing was left", ExitCode.OUTPUT) from None
    done = f"wrote {len(summary['files'])} scenes to {output} (seed {seed}); see {output / 'synth.json'}"
    stdout.print(safe(done), highlight=False)
