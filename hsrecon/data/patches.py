"""Random training windows from (RGB, cube) pairs, reproducible from (seed, sample number) alone.

Each sample is a pure function of its global number: which image, where the window sits and which of
the 8 flips/rotations applies all come from a generator seeded with ``(seed, number)``. So the data
order needs no iterator state: training resumed at step ``s`` draws exactly the samples an uninterrupted
run would have drawn, DataLoader workers and distributed ranks included.

The coordinate channels do **not** follow the flips/rotations: the network computes them from the
window it is given, as at inference, so an augmented window is simply another window (``docs/data.md``).

Images are read when needed and a few are kept (an LRU cache), never the whole set: NTIRE cubes are
482×512×31 float32 (30 MB) each.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from hsrecon.data.ntire import Pair
from hsrecon.io import cube_info, read_cube
from hsrecon.io.base import check_finite, integer_values_note
from hsrecon.io.rgb import probe_size, read_rgb

__all__ = ["PatchDataset", "check_pairs", "load_pair"]


def load_pair(pair: Pair) -> tuple[np.ndarray, np.ndarray]:
    """(RGB as float32 value/max in [0, 1], cube float32), both H×W×C, checked to match in size and the
    cube to be finite (a NaN would make every later loss NaN)."""
    image = read_rgb(pair.rgb)
    try:
        cube, _, _ = read_cube(pair.cube, image_shape=image.pixels.shape[:2])
    except (ValueError, OSError) as error:
        if str(pair.cube) in str(error):
            raise
        raise ValueError(f"{pair.cube}: unreadable cube ({error})") from None  # an error that names no file
    except Exception as error:  # a damaged file can fail deep inside h5py/SciPy with any exception
        raise ValueError(f"{pair.cube}: unreadable cube ({type(error).__name__}: {error})") from None
    rgb = image.pixels.astype(np.float32) / np.float32(image.max_code)
    if rgb.shape[:2] != cube.shape[:2]:
        raise ValueError(f"{pair.rgb}: {rgb.shape[:2]} pixels but its cube {pair.cube.name} is {cube.shape[:2]}")
    check_finite(pair.cube, cube, "cube", "a training or validation cube must be finite")
    return rgb, cube


def _declared_bands(shape: tuple[int, ...], image_shape: tuple[int, int]) -> int | None:
    """The band count of a cube declaring ``shape`` (any axis order) for an image of ``image_shape``: the
    axis left when the image's height and width are taken out; None when they are not both there."""
    rest = list(shape)
    for size in image_shape:
        if size not in rest:
            return None
        rest.remove(size)
    return rest[0] if len(rest) == 1 else None


_INTEGER_ADVICE = "divide by the white level first: the network learns to give what the cubes hold"


def _check_pair(pair: Pair, bands: int, window: int | None) -> str | None:
    """ValueError naming the file when ``pair`` cannot be trained on, from headers alone; an integer
    cube's note, else None."""
    height, width = probe_size(pair.rgb)
    try:
        info = cube_info(pair.cube)
    except (ValueError, OSError):
        raise
    except Exception as error:  # a damaged header can trip h5py or SciPy in ways of their own
        raise ValueError(f"{pair.cube}: unreadable cube ({type(error).__name__}: {error})") from None
    if info.dtype.kind not in "fiu":
        raise ValueError(f"{pair.cube}: its cube holds values of type {info.dtype}, not real numbers")
    found = _declared_bands(info.shape, (height, width))
    if found is None:
        raise ValueError(f"{pair.cube}: cube of shape {info.describe()} does not fit its image {pair.rgb.name} "
                         f"({height}×{width})")  # fmt: skip
    if found != bands:
        raise ValueError(f"{pair.cube}: {found} bands (shape {info.describe()}); the network makes {bands}")
    if window is not None and min(height, width) < window:
        raise ValueError(f"{pair.rgb}: {height}×{width}, smaller than the {window}-pixel training window")
    return integer_values_note(pair.cube, info.dtype, "cube", "trained", _INTEGER_ADVICE)


def check_pairs(pairs: Sequence[Pair], *, bands: int, window: int | None = None) -> list[str]:
    """Check every pair from its files' headers before training reads any: the cube's band count (a
    30-band cube among 31-band ones would fail deep in torch), its type, its size against its image, and
    the image against the training ``window``. ValueError naming the first file that cannot be used;
    returns notes (integer cubes, trained on as stored: one note, naming the first and counting the rest).
    NaN and infinity need the values: :func:`load_pair` refuses them when the file is read."""
    notes = [note for pair in pairs if (note := _check_pair(pair, bands, window))]
    if len(notes) > 1:
        notes = [f"{notes[0]}; and {len(notes) - 1} more cube(s) of this set stored as integers"]
    return notes


def _dihedral(array: np.ndarray, k: int) -> np.ndarray:
    """The k-th of the 8 flips/rotations of an H×W×C array."""
    array = array[:, ::-1] if k >= 4 else array
    return np.rot90(array, k % 4)


class PatchDataset(Dataset):
    """``length`` random ``window``×``window`` (RGB, cube) samples; item ``i`` is sample ``offset + i``."""

    def __init__(
        self,
        pairs: Sequence[Pair],
        *,
        window: int = 64,
        seed: int = 0,
        length: int = 1,
        offset: int = 0,
        augment: bool = True,
        cache_images: int = 8,
        samples_per_image: int = 16,
        label: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> None:
        if not pairs:
            raise ValueError("no training pairs")
        self.pairs = list(pairs)
        self.window, self.seed, self.length, self.offset = window, seed, length, offset
        self.augment = augment
        self.cache_images = cache_images
        self.samples_per_image = samples_per_image
        self.label = label
        self._cache: OrderedDict[Path, tuple[np.ndarray, ...]] = OrderedDict()

    def __len__(self) -> int:
        return self.length

    def _image(self, index: int) -> tuple[np.ndarray, ...]:
        pair = self.pairs[index]
        if pair.rgb in self._cache:
            self._cache.move_to_end(pair.rgb)
            return self._cache[pair.rgb]
        loaded = load_pair(pair)
        if min(loaded[0].shape[:2]) < self.window:
            raise ValueError(f"{pair.rgb}: smaller than the {self.window}-pixel training window")
        if self.label is not None:
            loaded = (*loaded, self.label(loaded[0]))
        self._cache[pair.rgb] = loaded
        while len(self._cache) > self.cache_images:
            self._cache.popitem(last=False)
        return loaded

    def sample(self, number: int) -> tuple[torch.Tensor, ...]:
        """Sample ``number``: (RGB 3×w×w, cube 31×w×w), float32; with ``label``, a third item: what it says
        of the whole image the window was cut from (a routed prior's posterior), the same for all its windows."""
        # Runs of ``samples_per_image`` consecutive samples share an image, so an image read from disk
        # serves a whole batch or more instead of one window.
        run = np.random.default_rng([self.seed, 0, number // self.samples_per_image])
        rgb, cube, *label = self._image(int(run.integers(len(self.pairs))))
        rng = np.random.default_rng([self.seed, 1, number])
        y = int(rng.integers(rgb.shape[0] - self.window + 1))
        x = int(rng.integers(rgb.shape[1] - self.window + 1))
        k = int(rng.integers(8)) if self.augment else 0
        views = [_dihedral(a[y : y + self.window, x : x + self.window], k) for a in (rgb, cube)]
        windows = tuple(torch.from_numpy(np.ascontiguousarray(v.transpose(2, 0, 1))) for v in views)
        return windows + tuple(torch.from_numpy(np.asarray(value)) for value in label)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, ...]:
        return self.sample(self.offset + index)
