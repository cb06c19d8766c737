"""Finding (RGB image, spectral cube) pairs in the NTIRE 2020 and NTIRE 2022 (ARAD-1K) folder layouts.

Only paths are found here; cubes are read by :func:`hsrecon.io.read_cube` (MATLAB v7.3 axis order handled
there) and images by :func:`hsrecon.io.rgb.read_rgb`. The layouts (``../shared/docs/formats.md``)::

    NTIRE 2020                                   NTIRE 2022 (ARAD-1K)
      Train_Spectral/ARAD_HS_0001.mat              Train_Spec/ARAD_1K_0001.mat
      Train_Clean/ARAD_HS_0001_clean.png           Train_RGB/ARAD_1K_0001.jpg
      Train_RealWorld/ARAD_HS_0001_RealWorld.jpg   split_txt/train_list.txt, valid_list.txt
      Validation_Spectral/, Validation_Clean/,     (optionally Valid_Spec/, Valid_RGB/)
      Validation_RealWorld/ (or Valid_*)

Folder names match case-insensitively. An image pairs with a cube when its stem, less a trailing
``_clean`` or ``_RealWorld`` (any case), equals the cube's stem. A cube without its image, an image
without its cube, or a listed name with neither, is reported in :attr:`Scan.unpaired`, never dropped
silently; a folder of neither layout, or without the requested split, is a ValueError saying what was
expected.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from hsrecon.io.rgb import IMAGE_SUFFIXES

__all__ = ["SPLITS", "TRACKS", "Pair", "Scan", "discover", "pairing_key", "scan", "track_space"]

SPLITS = ("valid", "train")
TRACKS = ("clean", "realworld")
_TRACK_SPACES = {"clean": "ntire2020-clean", "realworld": "srgb"}


def track_space(track: str) -> str:
    """The input space a track's RGB files hold (``hsrecon.inputs``): the clean rendering, or sRGB photos
    (NTIRE's RealWorld JPEGs and ``hsrecon synth``'s camera rendering)."""
    if track not in _TRACK_SPACES:
        raise ValueError(f"unknown track {track!r}; choose {' or '.join(TRACKS)}")
    return _TRACK_SPACES[track]


_TRACK_SUFFIX = re.compile(r"_(clean|realworld)$", re.IGNORECASE)

# NTIRE 2020 folder names, by split: the spectral folder, and the RGB folder per track.
_NTIRE2020 = {
    "train": (("Train_Spectral",), {"clean": ("Train_Clean",), "realworld": ("Train_RealWorld",)}),
    "valid": (
        ("Validation_Spectral", "Valid_Spectral"),
        {"clean": ("Validation_Clean", "Valid_Clean"), "realworld": ("Validation_RealWorld", "Valid_RealWorld")},
    ),
}
_ARAD_SPEC = {"train": "Train_Spec", "valid": "Valid_Spec"}
_ARAD_RGB = {"train": "Train_RGB", "valid": "Valid_RGB"}


@dataclass(frozen=True)
class Pair:
    """One scene: its RGB image, its ground-truth cube, and its name (the cube's stem)."""

    rgb: Path
    cube: Path
    name: str


@dataclass
class Scan:
    """What :func:`scan` found: the layout (``ntire2020`` or ``arad1k``), the pairs, and one line per
    file or listed name that has no partner."""

    layout: str
    split: str
    track: str
    pairs: list[Pair] = field(default_factory=list)
    unpaired: list[str] = field(default_factory=list)


def pairing_key(stem: str) -> str:
    """A file's stem less NTIRE's track suffix: ``ARAD_HS_0451_clean`` → ``ARAD_HS_0451``."""
    return _TRACK_SUFFIX.sub("", stem)


def _child(root: Path, names: tuple[str, ...] | str) -> Path | None:
    """The sub-folder of ``root`` with one of ``names`` (case-insensitive), or None."""
    wanted = {name.lower() for name in ((names,) if isinstance(names, str) else names)}
    for entry in sorted(root.iterdir()):
        if entry.is_dir() and entry.name.lower() in wanted:
            return entry
    return None


def _files(folder: Path, suffixes: frozenset[str] | set[str]) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in suffixes)


def _layout(root: Path) -> str:
    if any(_child(root, names[0]) for names in _NTIRE2020.values()):
        return "ntire2020"
    if _child(root, tuple(_ARAD_SPEC.values())) is not None:
        return "arad1k"
    raise ValueError(
        f"{root}: neither NTIRE layout: expected NTIRE 2020's Train_Spectral/ + Train_Clean/ and/or "
        "Validation_Spectral/ + Validation_Clean/ (or Train_RealWorld/, Validation_RealWorld/), or "
        "NTIRE 2022's Train_Spec/ + Train_RGB/ with split_txt/train_list.txt and valid_list.txt"
    )


def scan(root: Path, split: str = "valid", track: str = "clean") -> Scan:
    """All pairs of ``split`` (``valid`` or ``train``) and ``track`` (``clean`` or ``realworld``) under
    ``root``, sorted by name, with a line for each file that has no partner."""
    root = Path(root)
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose {' or '.join(SPLITS)}")
    if track not in TRACKS:
        raise ValueError(f"unknown track {track!r}; choose {' or '.join(TRACKS)}")
    if not root.is_dir():
        raise ValueError(f"{root}: not a folder")
    if _layout(root) == "ntire2020":
        return _scan_ntire2020(root, split, track)
    if track != "clean":
        raise ValueError(f"{root}: ARAD-1K (NTIRE 2022) has one RGB set (Train_RGB/); --track {track} is NTIRE 2020's")
    return _scan_arad1k(root, split)


def discover(root: Path, split: str = "valid", track: str = "clean") -> list[Pair]:
    """The complete pairs of a split (see :func:`scan` for the files left over); ValueError if none."""
    found = scan(root, split, track)
    if not found.pairs:
        raise ValueError(f"{root}: no {split} pairs found ({'; '.join(found.unpaired[:3]) or 'no files'})")
    return found.pairs


def _scan_ntire2020(root: Path, split: str, track: str) -> Scan:
    spectral_names, rgb_names = _NTIRE2020[split]
    spectral = _child(root, spectral_names)
    rgb_folder = _child(root, rgb_names[track])
    if spectral is None or rgb_folder is None:
        raise ValueError(
            f"{root}: no NTIRE 2020 {split} split for the {track} track: expected "
            f"{spectral_names[0]}/ and {rgb_names[track][0]}/"
        )
    cubes = {path.stem: path for path in _files(spectral, {".mat"})}
    images: dict[str, Path] = {}
    found = Scan("ntire2020", split, track)
    for image in _files(rgb_folder, IMAGE_SUFFIXES):
        key = pairing_key(image.stem)
        if key in images:
            found.unpaired.append(f"{image}: a second image for {key} (also {images[key].name}); ignored")
            continue
        images[key] = image
    for name in sorted(cubes.keys() | images.keys()):
        if name not in images:
            found.unpaired.append(f"{cubes[name]}: no RGB image for it in {rgb_folder}")
        elif name not in cubes:
            found.unpaired.append(f"{images[name]}: no cube {name}.mat for it in {spectral}")
        else:
            found.pairs.append(Pair(rgb=images[name], cube=cubes[name], name=name))
    return found


def _split_list(root: Path, split: str) -> Path | None:
    folder = _child(root, "split_txt")
    if folder is None:
        return None
    wanted = f"{split}_list.txt"
    return next((p for p in _files(folder, {".txt"}) if p.name.lower() == wanted), None)


def _read_list(path: Path) -> list[str]:
    """Scene names, one a line; a suffix (``.mat``, ``.jpg``) is tolerated and dropped."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(
            f"{path}: not UTF-8 text (byte 0x{error.object[error.start]:02x} at offset {error.start}); "
            "expected scene names, one a line"
        ) from None
    except OSError as error:
        raise ValueError(f"{path}: cannot be read ({error.strerror or error})") from None
    names = [line.strip() for line in text.splitlines()]
    return [Path(name).stem if Path(name).suffix else name for name in names if name]


def _scan_arad1k(root: Path, split: str) -> Scan:
    listing = _split_list(root, split)
    spec_folders = [f for f in (_child(root, _ARAD_SPEC[split]), _child(root, _ARAD_SPEC["train"])) if f]
    rgb_folders = [f for f in (_child(root, _ARAD_RGB[split]), _child(root, _ARAD_RGB["train"])) if f]
    if listing is not None:
        names = _read_list(listing)
    elif split == "valid" and _child(root, "Valid_Spec") is not None:
        names = [p.stem for p in _files(_child(root, "Valid_Spec"), {".mat"})]
    elif split == "train" and _child(root, "Train_Spec") is not None:
        valid = _child(root, "Valid_Spec")
        held_out = {p.stem for p in _files(valid, {".mat"})} if valid else set()
        names = [p.stem for p in _files(_child(root, "Train_Spec"), {".mat"}) if p.stem not in held_out]
    else:
        raise ValueError(
            f"{root}: no ARAD-1K {split} split: expected split_txt/{split}_list.txt "
            f"(names in Train_Spec/ and Train_RGB/) or {_ARAD_SPEC[split]}/ + {_ARAD_RGB[split]}/"
        )
    cubes = _index(spec_folders, {".mat"})
    images = _index(rgb_folders, IMAGE_SUFFIXES)
    found = Scan("arad1k", split, "clean")
    for name in sorted(dict.fromkeys(names)):
        cube, image = cubes.get(name), images.get(name)
        if cube is None:
            found.unpaired.append(f"{name}: no cube {name}.mat in {', '.join(f.name for f in spec_folders)}")
        elif image is None:
            found.unpaired.append(f"{cube}: no RGB image {name}.jpg in {', '.join(f.name for f in rgb_folders)}")
        else:
            found.pairs.append(Pair(rgb=image, cube=cube, name=name))
    return found


def _index(folders: list[Path], suffixes: frozenset[str] | set[str]) -> dict[str, Path]:
    """Scene name → file, the first folder winning (the split's own folder comes first)."""
    index: dict[str, Path] = {}
    for folder in folders:
        for path in _files(folder, suffixes):
            index.setdefault(pairing_key(path.stem), path)
    return index
