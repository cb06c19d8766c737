"""Discovering (RGB, cube) pairs in tiny NTIRE 2020 and NTIRE 2022 (ARAD-1K) layouts built in tmp_path."""

from __future__ import annotations

from pathlib import Path

import h5py
import imageio.v3 as iio
import numpy as np
import pytest

from hsrecon.data import Pair, discover, pairing_key, scan
from hsrecon.io import open_cube_writer, read_cube
from hsrecon.physics import WAVELENGTHS_NM


def write_mat(stem: Path, cube: np.ndarray) -> Path:
    """A MATLAB v7.3 cube in NTIRE's layout (``cube`` H×W×31 as MATLAB sees it, ``bands``)."""
    with open_cube_writer(stem, "mat", height=cube.shape[0], width=cube.shape[1], wavelengths_nm=WAVELENGTHS_NM) as w:
        w.write_rows(0, cube)
    return stem.with_name(stem.name + ".mat")


def linear_scene(rng: np.random.Generator, matrix: np.ndarray, shape=(64, 96)) -> tuple[np.ndarray, np.ndarray]:
    """An 8-bit RGB image and the cube that is exactly ``(rgb / 255) @ matrix`` (so a linear map fits it)."""
    rgb = rng.integers(20, 251, (*shape, 3), dtype=np.uint8)
    return rgb, ((rgb / 255.0) @ matrix).astype(np.float32)


def make_ntire2020(
    root: Path,
    rng: np.random.Generator,
    *,
    train: tuple[int, ...] = (1, 2, 3),
    valid: tuple[int, ...] = (451, 452),
    shape: tuple[int, int] = (64, 96),
    matrix: np.ndarray | None = None,
) -> Path:
    """NTIRE 2020: Train_/Validation_ Spectral (.mat) + Clean (_clean.png) + RealWorld (_RealWorld.jpg)."""
    matrix = rng.uniform(0.05, 0.5, (3, 31)) if matrix is None else matrix
    for prefix, ids in (("Train", train), ("Validation", valid)):
        if not ids:
            continue
        for kind in ("Spectral", "Clean", "RealWorld"):
            (root / f"{prefix}_{kind}").mkdir(parents=True)
        for number in ids:
            name = f"ARAD_HS_{number:04d}"
            rgb, cube = linear_scene(rng, matrix, shape)
            write_mat(root / f"{prefix}_Spectral" / name, cube)
            iio.imwrite(root / f"{prefix}_Clean" / f"{name}_clean.png", rgb)
            iio.imwrite(root / f"{prefix}_RealWorld" / f"{name}_RealWorld.jpg", rgb, quality=90)
    return root


def make_arad1k(root: Path, rng: np.random.Generator, *, count: int = 6, valid: int = 2, shape=(24, 32)) -> Path:
    """NTIRE 2022: Train_Spec/ARAD_1K_NNNN.mat + Train_RGB/ARAD_1K_NNNN.jpg and split_txt lists."""
    (root / "Train_Spec").mkdir(parents=True)
    (root / "Train_RGB").mkdir()
    (root / "split_txt").mkdir()
    names = [f"ARAD_1K_{n:04d}" for n in range(1, count + 1)]
    matrix = rng.uniform(0.05, 0.5, (3, 31))
    for name in names:
        rgb, cube = linear_scene(rng, matrix, shape)
        write_mat(root / "Train_Spec" / name, cube)
        iio.imwrite(root / "Train_RGB" / f"{name}.jpg", rgb, quality=95)
    (root / "split_txt" / "train_list.txt").write_text("\n".join(names[:-valid]) + "\n")
    (root / "split_txt" / "valid_list.txt").write_text("\n".join(names[-valid:]) + "\n")
    return root


def test_ntire2020_pairs_each_split_and_track(tmp_path, rng):
    root = make_ntire2020(tmp_path / "NTIRE2020", rng)
    valid = discover(root)  # split="valid", track="clean"
    assert [p.name for p in valid] == ["ARAD_HS_0451", "ARAD_HS_0452"]
    assert valid[0] == Pair(
        rgb=root / "Validation_Clean" / "ARAD_HS_0451_clean.png",
        cube=root / "Validation_Spectral" / "ARAD_HS_0451.mat",
        name="ARAD_HS_0451",
    )
    train = discover(root, split="train", track="realworld")
    assert [p.rgb.name for p in train] == [f"ARAD_HS_000{i}_RealWorld.jpg" for i in (1, 2, 3)]
    assert all(p.cube.parent.name == "Train_Spectral" for p in train)


def test_cubes_read_as_height_width_bands(tmp_path, rng):
    root = make_ntire2020(tmp_path / "n", rng, train=(), valid=(451,), shape=(20, 28))
    pair = discover(root)[0]
    with h5py.File(pair.cube, "r") as file:
        assert file["cube"].shape == (31, 28, 20)  # MATLAB's H×W×31 as h5py sees it: reversed
    cube, wavelengths, _ = read_cube(pair.cube)
    assert cube.shape == (20, 28, 31)
    assert list(wavelengths) == list(WAVELENGTHS_NM)
    assert iio.imread(pair.rgb).shape == (20, 28, 3)


def test_ntire2020_reports_files_without_a_partner(tmp_path, rng):
    root = make_ntire2020(tmp_path / "n", rng, train=(), valid=(451, 452, 453), shape=(8, 8))
    (root / "Validation_Clean" / "ARAD_HS_0452_clean.png").unlink()
    (root / "Validation_Spectral" / "ARAD_HS_0453.mat").unlink()
    found = scan(root)
    assert [p.name for p in found.pairs] == ["ARAD_HS_0451"]
    assert len(found.unpaired) == 2
    assert "ARAD_HS_0452.mat: no RGB image" in found.unpaired[0]
    assert "ARAD_HS_0453_clean.png: no cube ARAD_HS_0453.mat" in found.unpaired[1]


def test_ntire2020_accepts_valid_prefix_and_any_case(tmp_path, rng):
    root = make_ntire2020(tmp_path / "n", rng, train=(1,), valid=(451,), shape=(8, 8))
    (root / "Validation_Spectral").rename(root / "Valid_Spectral")
    (root / "Validation_Clean").rename(root / "valid_clean")
    assert [p.name for p in discover(root)] == ["ARAD_HS_0451"]


def test_arad1k_follows_the_split_lists(tmp_path, rng):
    root = make_arad1k(tmp_path / "ARAD_1K", rng)
    valid = discover(root)
    assert [p.name for p in valid] == ["ARAD_1K_0005", "ARAD_1K_0006"]
    assert valid[0].rgb == root / "Train_RGB" / "ARAD_1K_0005.jpg"
    assert valid[0].cube == root / "Train_Spec" / "ARAD_1K_0005.mat"
    assert [p.name for p in discover(root, split="train")] == [f"ARAD_1K_000{i}" for i in range(1, 5)]
    cube, _, _ = read_cube(valid[0].cube)
    assert cube.shape == (24, 32, 31)


def test_arad1k_listed_name_without_files_is_reported(tmp_path, rng):
    root = make_arad1k(tmp_path / "a", rng, count=3, valid=1, shape=(8, 8))
    (root / "split_txt" / "valid_list.txt").write_text("ARAD_1K_0003\nARAD_1K_0999\n")
    found = scan(root)
    assert [p.name for p in found.pairs] == ["ARAD_1K_0003"]
    assert found.unpaired == ["ARAD_1K_0999: no cube ARAD_1K_0999.mat in Train_Spec"]


def test_arad1k_with_valid_folders_and_no_lists(tmp_path, rng):
    root = make_arad1k(tmp_path / "a", rng, count=3, valid=1, shape=(8, 8))
    for path in (root / "split_txt").iterdir():
        path.unlink()
    (root / "split_txt").rmdir()
    (root / "Valid_Spec").mkdir()
    (root / "Valid_RGB").mkdir()
    (root / "Train_Spec" / "ARAD_1K_0003.mat").rename(root / "Valid_Spec" / "ARAD_1K_0003.mat")
    (root / "Train_RGB" / "ARAD_1K_0003.jpg").rename(root / "Valid_RGB" / "ARAD_1K_0003.jpg")
    assert [p.cube.parent.name for p in discover(root)] == ["Valid_Spec"]
    assert [p.name for p in discover(root, split="train")] == ["ARAD_1K_0001", "ARAD_1K_0002"]


def test_a_folder_of_neither_layout_says_what_was_expected(tmp_path):
    (tmp_path / "photos").mkdir()
    with pytest.raises(ValueError, match="neither NTIRE layout") as error:
        discover(tmp_path)
    assert "Train_Spectral/" in str(error.value) and "Train_Spec/" in str(error.value)


def test_missing_split_and_wrong_track_are_clear(tmp_path, rng):
    root = make_ntire2020(tmp_path / "n", rng, train=(1,), valid=(), shape=(8, 8))
    with pytest.raises(ValueError, match="expected Validation_Spectral/ and Validation_Clean/"):
        discover(root)
    arad = make_arad1k(tmp_path / "a", rng, count=2, valid=1, shape=(8, 8))
    with pytest.raises(ValueError, match="one RGB set"):
        discover(arad, track="realworld")
    with pytest.raises(ValueError, match="unknown split"):
        discover(root, split="test")


def test_pairing_key_drops_the_track_suffix():
    assert pairing_key("ARAD_HS_0451_clean") == "ARAD_HS_0451"
    assert pairing_key("ARAD_HS_0451_RealWorld") == "ARAD_HS_0451"
    assert pairing_key("ARAD_HS_0451") == "ARAD_HS_0451"
    assert pairing_key("clean_scene") == "clean_scene"
