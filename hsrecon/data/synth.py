"""A synthetic training set from measured spectra, written in the NTIRE 2020 layout.

Recipe 1's scenes come from measured spectra under CIE lights (:mod:`hsrecon.data.recipe1`), recipe 2's from
material classes with their own looks (:mod:`hsrecon.data.scenes`), recipe 3's from labelled material families
(:mod:`hsrecon.data.recipe3`); this module writes a whole set of any of them, atomically.

Each scene is rendered twice: the NTIRE 2020 clean track exactly (:mod:`hsrecon.physics`) and a real
camera (:mod:`hsrecon.data.camera`). Scene ``i`` depends only on ``(seed, i)``; one scene is in memory at a time.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np

from hsrecon.data.camera import DEFAULT_CAMERA, CameraSettings, render_camera_jpeg
from hsrecon.data.fields import P99_RANGE
from hsrecon.data.recipe1 import ILLUMINANTS, MATERIALS, Scene, make_scene, value_stats
from hsrecon.interrupts import deferred
from hsrecon.io.base import memory_budget
from hsrecon.physics import (
    REFLECTANCE_SETS,
    WAVELENGTHS_NM,
    load_colour,
    measured_reflectances,
    quantize_ntire2020_clean,
    render_ntire2020_clean,
)
from hsrecon.temps import temp_name_for, write_atomic

__all__ = [
    "ILLUMINANTS", "RECIPES", "DatasetExistsError", "Scene", "check_recipe", "make_scene", "make_synthetic_dataset",
    "scene_name",
]  # fmt: skip

RECIPES = (1, 2, 3)
"""Recipe 1: this module's scenes and one camera (the bundled ``camera`` models' data); recipe 2: material classes
with their own looks and a different camera per photo (:mod:`hsrecon.data.scenes`; no model trained on it ships);
recipe 3: recipe 2's scenes and cameras drawn from material families, with families, a layout generator, lamps
and a camera that can be held out of training (:mod:`hsrecon.data.recipe3`)."""

_FOLDERS = {
    "train": ("Train_Spectral", "Train_Clean", "Train_RealWorld"),
    "valid": ("Validation_Spectral", "Validation_Clean", "Validation_RealWorld"),
}


def scene_name(index: int) -> str:
    """NTIRE 2020's naming: scene 1 is ``ARAD_HS_0001``."""
    return f"ARAD_HS_{index:04d}"


def _validation_count(scenes: int, fraction: float) -> int:
    """At least one validation scene when a fraction is asked for, and always at least one training scene."""
    if fraction <= 0 or scenes < 2:
        return 0
    return min(scenes - 1, max(1, round(scenes * fraction)))


class DatasetExistsError(FileExistsError):
    """The output folder holds files already: writing into it would mix two datasets (one scene name in
    both splits, a ``synth.json`` describing only the second). ``overwrite`` replaces a set ``synth``
    wrote as a whole; a folder of anything else is never replaced."""


SCENE_BYTES_PER_PIXEL = {1: 1536, 2: 6144, 3: 6144}
"""Peak memory of one scene per output pixel, measured with a margin (recipe 1: about 930 bytes, six
H×W×31 float64 arrays at most; recipe 2 draws some scenes at twice the size, four times the pixels)."""


def _check_memory(size: tuple[int, int], recipe: int) -> None:
    """ValueError before anything is made when one scene would not fit the memory budget (a 100000-pixel
    square would ask for terabytes, and a 20000 one for minutes of swapping before failing)."""
    needed = int(size[0]) * int(size[1]) * SCENE_BYTES_PER_PIXEL[recipe]
    budget = memory_budget()
    if needed > budget:
        raise ValueError(
            f"size {size[0]}×{size[1]}: one scene needs about {needed / 2**30:,.1f} GiB, over the memory budget "
            f"of {budget / 2**30:.1f} GiB (half the machine's memory)"
        )


def _check_split_has_scenes(only: str | None, splits: list[str], scenes: int, valid_fraction: float) -> None:
    """ValueError when ``only`` asks for a split the set does not have (no scene would be written)."""
    if only is not None and only not in splits:
        where = "in validation" if only == "valid" else "for training"
        raise ValueError(
            f"only {only!r}: {scenes} scene(s) with a validation fraction of {valid_fraction:g} put none {where}, "
            "so there is nothing to write"
        )


def _check_output(out: Path, overwrite: bool) -> None:
    """Refuse an output that is not a folder, or a folder with files in it unless ``overwrite`` and it
    is a set ``synth`` wrote (its ``synth.json`` and NTIRE folders, nothing else)."""
    if out.exists() and not out.is_dir():
        raise DatasetExistsError(f"{out}: exists and is not a folder")
    entries = sorted(entry.name for entry in out.iterdir()) if out.is_dir() else []
    if not entries:
        return
    if not overwrite:
        raise DatasetExistsError(
            f"{out}: not empty ({', '.join(entries[:3])}{', …' if len(entries) > 3 else ''}); writing into it would "
            "mix two datasets: choose an empty or new folder, or --overwrite to replace the set there as a whole"
        )
    if "synth.json" not in entries or any(name.lower() not in _DATASET_ENTRIES for name in entries):
        raise DatasetExistsError(
            f"{out}: not a dataset hsrecon synth wrote (it holds {', '.join(entries[:3])}); --overwrite replaces "
            "only those: remove it yourself or choose another folder"
        )


def _check_arguments(scenes: int, size: tuple[int, int], seed: int, valid_fraction: float) -> None:
    if scenes < 1:
        raise ValueError(f"scenes must be at least 1, got {scenes}")
    if len(size) != 2 or any(int(s) < 8 or int(s) % 4 for s in size):
        raise ValueError(f"size must be (height, width), each a multiple of 4 and at least 8, got {size}")
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    if not 0 <= valid_fraction < 1:
        raise ValueError(f"valid_fraction must be in [0, 1), got {valid_fraction}")


def check_recipe(
    recipe: int,
    valid_sensors: str = "train",
    valid_lights: str = "train",
    valid_families: str = "train",
    valid_generators: str = "train",
) -> None:
    """ValueError naming the option when the recipe or a validation pool is not one this module makes."""
    if recipe not in RECIPES:
        raise ValueError(f"recipe must be one of {', '.join(map(str, RECIPES))}, got {recipe!r}")
    pools = {"valid_sensors": valid_sensors, "valid_lights": valid_lights, "valid_families": valid_families,
             "valid_generators": valid_generators}  # fmt: skip
    for label, pool in pools.items():
        if pool not in ("train", "heldout"):
            raise ValueError(f"{label} must be train or heldout, got {pool!r}")
    if recipe != 3 and "heldout" in (valid_families, valid_generators):
        raise ValueError("held-out families and generators (valid_families, valid_generators) need recipe 3")


def _camera_settings(camera: str | CameraSettings | None) -> CameraSettings | None:
    if camera is None or isinstance(camera, CameraSettings):
        return camera
    return CameraSettings(camera=camera)


def _write_png(path: Path, image: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(image, mode="RGB").save(path, format="PNG")


def _write_scene(
    out: Path, split: str, name: str, scene: Scene, camera: CameraSettings | None, rng: np.random.Generator
) -> dict[str, object]:
    """The scene's three files; returns what the summary records about them."""
    from hsrecon.io import open_cube_writer

    spectral, clean, realworld = (out / folder for folder in _FOLDERS[split])
    height, width = scene.cube.shape[:2]
    attrs = {"source": "hsrecon synth", "illuminant": scene.illuminant}
    with open_cube_writer(
        spectral / name, "mat", height=height, width=width, wavelengths_nm=WAVELENGTHS_NM, attrs=attrs, overwrite=True
    ) as writer:
        writer.write_rows(0, scene.cube)
    rgb = quantize_ntire2020_clean(render_ntire2020_clean(scene.cube))
    _write_png(clean / f"{name}_clean.png", rgb)
    facts: dict[str, object] = {"clean_mean": float(rgb.mean() / 255)}
    if camera is not None:
        data = render_camera_jpeg(scene.cube, rng=rng, settings=camera, illuminant=scene.illuminant_spectrum)
        (realworld / f"{name}_RealWorld.jpg").write_bytes(data)
        facts["jpeg_bytes"] = len(data)
    return facts


def _write_cube_and_clean(out: Path, split: str, name: str, cube: np.ndarray, attrs: dict) -> dict[str, object]:
    from hsrecon.io import open_cube_writer

    spectral, clean, _ = (out / folder for folder in _FOLDERS[split])
    height, width = cube.shape[:2]
    with open_cube_writer(
        spectral / name, "mat", height=height, width=width, wavelengths_nm=WAVELENGTHS_NM, attrs=attrs, overwrite=True
    ) as writer:
        writer.write_rows(0, cube)
    rgb = quantize_ntire2020_clean(render_ntire2020_clean(cube))
    _write_png(clean / f"{name}_clean.png", rgb)
    return {"clean_mean": float(rgb.mean() / 255)}


def _write_photo_scene(
    out: Path, split: str, name: str, rngs: tuple[np.random.Generator, ...], size: tuple[int, int], pools: dict
) -> dict[str, object]:
    """Recipe 2: a scene of :mod:`hsrecon.data.scenes` photographed by :mod:`hsrecon.data.photo`; its facts."""
    from hsrecon.data.photo import develop_photo, downscale, draw_photo_settings
    from hsrecon.data.scenes import make_photo_scene

    scene_rng, settings_rng, camera_rng = rngs
    scene = make_photo_scene(scene_rng, *size, lights=pools["lights"])
    settings = draw_photo_settings(settings_rng, pools["sensors"])
    data, photo_facts = develop_photo(scene.cube, scene.white, settings, camera_rng, scene.factor)
    cube = downscale(scene.cube, scene.factor).astype(np.float32)
    attrs = {"source": "hsrecon synth --recipe 2", "illuminant": scene.lights[0]}
    facts = _write_cube_and_clean(out, split, name, cube, attrs)
    (out / _FOLDERS[split][2] / f"{name}_RealWorld.jpg").write_bytes(data)
    return {
        "illuminant": scene.lights[0], **scene.facts, **settings.facts(), **photo_facts, **facts,
        "jpeg_bytes": len(data), **value_stats(cube),
    }  # fmt: skip


def _write_recipe3_scene(
    out: Path, split: str, name: str, rngs: tuple[np.random.Generator, ...], size: tuple[int, int], pools: dict
) -> dict[str, object]:
    """Recipe 3: a scene of :mod:`hsrecon.data.recipe3`, its clean rendering, its photo and its family labels."""
    from hsrecon.data.photo import develop_photo, downscale, draw_photo_settings
    from hsrecon.data.recipe3 import make_recipe3_scene

    scene_rng, settings_rng, camera_rng = rngs
    scene = make_recipe3_scene(scene_rng, *size, pools)
    settings = draw_photo_settings(settings_rng, pools["sensors"])
    data, photo_facts = develop_photo(scene.cube, scene.white, settings, camera_rng, scene.factor)
    cube = quantize_cube(downscale(scene.cube, scene.factor))
    attrs = {"source": "hsrecon synth --recipe 3", "illuminant": scene.lights[0]}
    facts = _write_cube_and_clean(out, split, name, cube, attrs)
    (out / _FOLDERS[split][2] / f"{name}_RealWorld.jpg").write_bytes(data)
    families = scene.families[:: scene.factor, :: scene.factor]
    _write_labels(out / LABEL_FOLDERS[split] / f"{name}_families.png", families)
    return {
        "illuminant": scene.lights[0], **scene.facts, "pools": pools, **settings.facts(), **photo_facts, **facts,
        "jpeg_bytes": len(data), **value_stats(cube),
    }  # fmt: skip


CUBE_LEVELS = 4095
"""Recipe 3's cubes are stored as a 12-bit spectral camera stores them: multiples of 1/4095 of full scale."""


def quantize_cube(cube: np.ndarray) -> np.ndarray:
    """``round(cube · 4095) / 4095`` as float32: a measured cube's floor, so no band holds 1e-9 of a light.

    Without it a lamp with a near-empty band (LEDs at 400 nm) leaves truth values of ~1e-9, and MRAE, a
    relative error, turns a 0.001 miss there into 10⁶: one pixel would rule a whole split's mean. A real
    camera reads such a band as 0 (left out of MRAE) or as one step of its converter.
    """
    return (np.round(np.asarray(cube, dtype=np.float64) * CUBE_LEVELS) / CUBE_LEVELS).astype(np.float32)


LABEL_FOLDERS = {"train": "Train_Families", "valid": "Validation_Families"}
"""Recipe 3's per-pixel family labels: ``NAME_families.png``, 8-bit grey, ``FAMILIES.index(family) + 1`` (0: none)."""

_DATASET_ENTRIES = frozenset(
    {"synth.json", *(name.lower() for names in (*_FOLDERS.values(), LABEL_FOLDERS.values()) for name in names)}
)
"""What a folder ``synth`` wrote holds: ``--overwrite`` replaces such a folder, and no other."""


def _write_labels(path: Path, labels: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(np.ascontiguousarray(labels, dtype=np.uint8), mode="L").save(path, format="PNG")


def _summary_v3(seed: int, scenes: int, size: tuple[int, int], valid_fraction: float, pools: dict) -> dict:
    from hsrecon.data.families import FAMILIES, HELDOUT_FAMILIES, TRAIN_FAMILIES, family_library
    from hsrecon.data.recipe3 import GENERATORS

    summary = _summary_v2(seed, scenes, size, valid_fraction, pools)
    library = family_library()
    summary |= {
        "recipe": 3,
        "pools": {"train": dict.fromkeys(pools, "train"), "valid": pools},
        "families": list(FAMILIES),
        "family_labels": "Train_Families/NAME_families.png (8-bit): FAMILIES.index(family) + 1, 0 for none",
        "family_pools": {"train": list(TRAIN_FAMILIES), "heldout": list(library.available(HELDOUT_FAMILIES))},
        "family_counts": library.counts(),
        "generators": GENERATORS,
    }
    summary.pop("materials", None)
    summary["files"] = []
    return summary


def _summary(
    seed: int, scenes: int, size: tuple[int, int], valid_fraction: float, camera: CameraSettings | None
) -> dict[str, object]:
    from hsrecon import __version__

    library, _ = measured_reflectances()
    return {
        "generator": "hsrecon.data.synth",
        "hsrecon_version": __version__,
        "colour_science_version": load_colour().__version__,
        "numpy_version": np.__version__,
        "seed": seed,
        "scenes": scenes,
        "size": list(size),
        "valid_fraction": valid_fraction,
        "camera": None if camera is None else asdict(camera),
        "reflectance_sets": list(REFLECTANCE_SETS),
        "distinct_reflectances": len(library),
        "illuminants": ILLUMINANTS,
        "materials": MATERIALS,
        "scaling": "radiance = (reflectance * shading + specular) * E / max(E); one gain per scene puts "
        f"the 99th percentile at a uniform random level in {list(P99_RANGE)}, lowered so the maximum is <= 1",
        "per_scene_seed": "numpy.random.default_rng([seed, index]) for the scene, [seed, index, 1] for the camera",
        "files": [],
    }


def _summary_v2(seed: int, scenes: int, size: tuple[int, int], valid_fraction: float, pools: dict) -> dict:
    from hsrecon import __version__
    from hsrecon.data.photo import AWB_MODES, SENSOR_POOLS
    from hsrecon.data.scenes import INDOOR_LIGHTS, SCENE_KINDS
    from hsrecon.data.spectra import material_library

    return {
        "generator": "hsrecon.data.synth",
        "recipe": 2,
        "hsrecon_version": __version__,
        "colour_science_version": load_colour().__version__,
        "numpy_version": np.__version__,
        "seed": seed,
        "scenes": scenes,
        "size": list(size),
        "valid_fraction": valid_fraction,
        "pools": {"train": {"sensors": "train", "lights": "train"}, "valid": pools},
        "sensors": {name: list(members) for name, members in SENSOR_POOLS.items()},
        "indoor_lights": INDOOR_LIGHTS,
        "scene_kinds": SCENE_KINDS,
        "white_balance": AWB_MODES,
        "materials": material_library().counts(),
        "per_scene_seed": "numpy.random.default_rng([seed, index]) for the scene, [seed, index, 1] for the camera's "
        "settings, [seed, index, 2] for its noise",
        "files": [],
    }


def _aggregate(files: list[dict]) -> dict[str, object]:
    means = [f["mean"] for f in files]
    return {
        "min": min(f["min"] for f in files),
        "max": max(f["max"] for f in files),
        "mean_of_means": float(np.mean(means)),
        "mean_p99": float(np.mean([f["p99"] for f in files])),
        "illuminant_counts": dict(sorted(Counter(f["illuminant"] for f in files).items())),
        "splits": dict(Counter(f["split"] for f in files)),
    }


def make_synthetic_dataset(
    out: Path,
    *,
    scenes: int,
    size: tuple[int, int] = (128, 128),
    seed: int,
    valid_fraction: float = 0.1,
    camera: str | CameraSettings | None = DEFAULT_CAMERA,
    noise: float = 0.0,
    only: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    recipe: int = 1,
    valid_sensors: str = "train",
    valid_lights: str = "train",
    valid_families: str = "train",
    valid_generators: str = "train",
    overwrite: bool = False,
) -> dict[str, object]:
    """Write ``scenes`` synthetic scenes of ``size`` (H, W) under ``out`` in the NTIRE 2020 layout.

    The last ``round(scenes · valid_fraction)`` scenes (at least one when asked for) go to ``Validation_*``,
    the rest to ``Train_*``: ``*_Spectral/ARAD_HS_NNNN.mat`` (v7.3, ``cube`` + ``bands``),
    ``*_Clean/ARAD_HS_NNNN_clean.png`` (the NTIRE 2020 clean rendering of the cube as stored, float32) and,
    unless ``camera`` is None, ``*_RealWorld/ARAD_HS_NNNN_RealWorld.jpg`` (the camera model, white-balanced
    for the scene's illuminant). ``synth.json`` records the parameters, versions and per-scene facts; the
    same dict is returned. ``progress(done, total)`` is called after each scene.

    The set is made in a hidden folder beside ``out`` and renamed to ``out`` when whole, so an interrupted
    run leaves nothing that looks like a dataset. ``out`` may be missing or empty; a folder with files in it
    is refused (:class:`DatasetExistsError`: two sets in one folder would mix) unless ``overwrite``, which
    replaces a set ``synth`` wrote as a whole (and nothing else). A scene too large for half the machine's
    memory, or an ``only`` split without scenes, is a ValueError before anything is made.

    Each scene depends only on ``(seed, its number)``, so ``only="valid"`` writes just the validation
    scenes of the full set, identical to theirs in the full set (e.g. to check published numbers).

    ``recipe=2`` (:mod:`hsrecon.data.scenes`, :mod:`hsrecon.data.photo`): material classes with their own
    looks, several lights, a different camera and processing per photo; ``camera`` and ``noise`` do not apply.
    Its training scenes always use the training pools of sensors and indoor lights; ``valid_sensors`` and
    ``valid_lights`` (``train`` or ``heldout``) choose the validation scenes' pools, for held-out tests.
    Recipe 1 stays byte for byte what it was (the bundled ``camera`` cards were scored on it).

    ``recipe=3`` (:mod:`hsrecon.data.recipe3`): recipe 2's scenes drawn from material families, each pixel's
    family written to ``*_Families/NAME_families.png``; ``valid_families`` and ``valid_generators`` choose
    the validation scenes' families and layout generator, with the sensors and lights as in recipe 2.
    """
    _check_arguments(scenes, size, seed, valid_fraction)
    if only not in (None, *_FOLDERS):
        raise ValueError(f"only must be one of {', '.join(_FOLDERS)}, got {only!r}")
    check_recipe(recipe, valid_sensors, valid_lights, valid_families, valid_generators)
    height, width = (int(s) for s in size)
    _check_memory((height, width), recipe)
    n_valid = _validation_count(scenes, valid_fraction)
    splits = ["train"] * (scenes - n_valid) + ["valid"] * n_valid
    _check_split_has_scenes(only, splits, scenes, valid_fraction)
    out = Path(out)
    _check_output(out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    valid_pools = {"sensors": valid_sensors, "lights": valid_lights}
    if recipe == 3:
        valid_pools |= {"families": valid_families, "generators": valid_generators}
    with deferred():  # made and known together, so the cleanup below always finds it
        building = out.parent / temp_name_for(out)
        building.mkdir()
    try:
        summary = _write_dataset(
            building, splits, seed=seed, size=(height, width), valid_fraction=valid_fraction, camera=camera,
            noise=noise, only=only, progress=progress, recipe=recipe, valid_pools=valid_pools,
        )  # fmt: skip
        _publish(building, out)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    return summary


def _write_dataset(
    out: Path, splits: list[str], *, seed: int, size: tuple[int, int], valid_fraction: float,
    camera: str | CameraSettings | None, noise: float, only: str | None,
    progress: Callable[[int, int], None] | None, recipe: int, valid_pools: dict[str, str],
) -> dict[str, object]:  # fmt: skip
    """Every scene of ``splits`` (``only`` one of them) and ``synth.json`` into the folder ``out``."""
    height, width = size
    scenes = len(splits)
    settings = _camera_settings(camera) if recipe == 1 else CameraSettings()
    wanted = set(splits) if only is None else {only}
    for split in wanted:
        folders = _FOLDERS[split][: 3 if settings is not None else 2] + ((LABEL_FOLDERS[split],) if recipe == 3 else ())
        for folder in folders:
            (out / folder).mkdir(parents=True, exist_ok=True)
    if recipe == 1:
        summary = _summary(seed, scenes, (height, width), valid_fraction, settings)
    elif recipe == 2:
        summary = _summary_v2(seed, scenes, (height, width), valid_fraction, valid_pools)
    else:
        summary = _summary_v3(seed, scenes, (height, width), valid_fraction, valid_pools)
    summary |= {"only": only} if only else {}
    for index, split in enumerate(splits, start=1):
        if split not in wanted:
            continue
        name = scene_name(index)
        if recipe == 1:
            scene = make_scene(np.random.default_rng([seed, index]), height, width, noise=noise)
            written = _write_scene(out, split, name, scene, settings, np.random.default_rng([seed, index, 1]))
            record = {**scene.facts, **written}
        else:
            pools = valid_pools if split == "valid" else dict.fromkeys(valid_pools, "train")
            rngs = tuple(np.random.default_rng([seed, index, *tail]) for tail in ((), (1,), (2,)))
            write = _write_photo_scene if recipe == 2 else _write_recipe3_scene
            record = write(out, split, name, rngs, (height, width), pools)
        summary["files"].append({"name": name, "split": split, **record})
        if progress is not None:
            progress(index, scenes)
    summary["statistics"] = _aggregate(summary["files"])
    write_atomic(out / "synth.json", (json.dumps(summary, indent=1) + "\n").encode("utf-8"))
    return summary


def _publish(building: Path, out: Path) -> None:
    """Rename the finished set to ``out``: over an empty or missing folder in one rename; over a set being
    replaced (``overwrite``, checked) by moving that one aside first, then deleting it."""
    old = None
    with deferred():  # the renames are not cut in two by a signal
        if out.is_dir() and any(out.iterdir()):
            old = out.parent / temp_name_for(out)
            os.rename(out, old)
        os.rename(building, out)
    if old is not None:
        with contextlib.suppress(OSError):
            shutil.rmtree(old)
