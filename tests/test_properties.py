"""Property tests: any small cube round-trips bit-exactly through every writer, and blending is a weighted mean.

The tiler's coverage and the identity-model property are in ``test_windows.py``; here are the writers
(any shape, any float32 value but NaN, any split into row blocks) and two blending properties it lacks:
with any window, stride and image size the blend weights at every pixel sum to one, and each output
pixel lies between the smallest and largest window value that covers it.
"""

from __future__ import annotations

import itertools
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from hsrecon.io import is_complete, open_cube_writer, read_cube
from hsrecon.pipeline import stream_reconstruct

BANDS = 31
WAVELENGTHS = np.arange(400.0, 701.0, 10.0)
# float32 of every kind the network could emit and more: signed zeros, subnormals, tiny and huge
# magnitudes, infinities (stored like any other value); NaN is refused upstream, so not generated.
FLOAT32 = st.floats(width=32, allow_nan=False, allow_infinity=True, allow_subnormal=True)
EDGE_VALUES = st.sampled_from([0.0, -0.0, 1e-45, -1e-45, 1.1754944e-38, 3.4028235e38, -3.4028235e38, 1.0, -0.5])


@st.composite
def cubes(draw) -> np.ndarray:
    height, width = draw(st.integers(1, 12)), draw(st.integers(1, 12))
    return draw(arrays(np.float32, (height, width, BANDS), elements=FLOAT32 | EDGE_VALUES))


@st.composite
def row_blocks(draw, height: int) -> list[tuple[int, int]]:
    """A random split of ``height`` rows into consecutive blocks, written in a random order."""
    cuts = sorted(draw(st.sets(st.integers(1, height - 1), max_size=height - 1))) if height > 1 else []
    edges = [0, *cuts, height]
    blocks = list(itertools.pairwise(edges))
    return draw(st.permutations(blocks))


WRITER_CASES = [("envi", "bsq"), ("envi", "bil"), ("envi", "bip"), ("mat", "bsq"), ("h5", "bsq")]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cube=cubes(), data=st.data(), case=st.sampled_from(WRITER_CASES))
def test_any_cube_round_trips_bit_exactly(cube, data, case):
    fmt, interleave = case
    blocks = data.draw(row_blocks(cube.shape[0]))
    with tempfile.TemporaryDirectory() as folder:
        stem = Path(folder) / "cube"
        with open_cube_writer(
            stem, fmt, height=cube.shape[0], width=cube.shape[1], wavelengths_nm=WAVELENGTHS, interleave=interleave
        ) as writer:
            for y0, y1 in blocks:
                writer.write_rows(y0, cube[y0:y1])
        assert is_complete(stem, fmt)
        got, wavelengths, _ = read_cube(writer.path)
        assert sorted(p.name for p in Path(folder).iterdir()) == sorted(p.name for p in writer.paths)
    assert got.dtype == np.float32 and got.shape == cube.shape
    np.testing.assert_array_equal(got.view(np.uint32), cube.view(np.uint32))  # bits, so -0.0 ≠ 0.0
    np.testing.assert_array_equal(wavelengths, WAVELENGTHS)


@settings(max_examples=40, deadline=None)
@given(
    height=st.integers(1, 70),
    width=st.integers(1, 70),
    size=st.sampled_from([4, 8, 12, 16, 64]),
    data=st.data(),
)
def test_blend_weights_sum_to_one_and_outputs_stay_within_their_windows(height, width, size, data):
    """Each window outputs one constant (its own number): every pixel must get a convex mix of the
    constants of the windows covering it, and all-ones windows must give exactly one everywhere."""
    stride = data.draw(st.integers(1, size))
    counter = iter(range(1, 1_000_000))

    def constant_per_window(windows: np.ndarray) -> np.ndarray:
        values = np.array([next(counter) for _ in range(len(windows))], np.float32)
        return np.broadcast_to(values[:, None, None, None], (*windows.shape[:3], 2)).copy()

    def ones(windows: np.ndarray) -> np.ndarray:
        return np.ones((*windows.shape[:3], 2), np.float32)

    image = np.zeros((height, width, 3), np.float32)
    for predict in (ones, constant_per_window):
        out = np.full((height, width, 2), np.nan, np.float32)
        windows = stream_reconstruct(
            image, lambda r: r, predict, lambda y, r, out=out: out.__setitem__(slice(y, y + len(r)), r),
            bands=2, window=size, stride=stride, batch_size=5,
        )  # fmt: skip
        assert np.isfinite(out).all()
        if predict is ones:
            np.testing.assert_allclose(out, 1.0, rtol=0, atol=1e-6)
        else:
            slack = 1e-5 * windows  # float32 rounding of sums of values up to the window count
            assert out.min() >= 1 - slack and out.max() <= windows + slack
            assert np.all(np.diff(out[..., 0], axis=1) >= -slack)  # windows are numbered left to right


@settings(max_examples=40, deadline=None)
@given(
    height=st.integers(1, 70),
    width=st.integers(1, 70),
    size=st.sampled_from([4, 8, 16, 24]),
    pad=st.integers(0, 20),
    data=st.data(),
)
def test_padded_windows_with_an_edge_give_every_pixel_a_convex_mix(height, width, size, pad, data):
    """With reflection around the image and windows' edges left out of the blend, every pixel still gets
    exactly one from all-ones windows and a convex mix of the covering windows' constants, once."""
    stride = data.draw(st.integers(1, size))
    ramp = min(size - stride, size // 2)
    edge = data.draw(st.integers(0, max(0, (ramp - 1) // 2)))
    counter = iter(range(1, 1_000_000))

    def constant_per_window(windows: np.ndarray) -> np.ndarray:
        values = np.array([next(counter) for _ in range(len(windows))], np.float32)
        return np.broadcast_to(values[:, None, None, None], (*windows.shape[:3], 2)).copy()

    image = np.zeros((height, width, 3), np.float32)
    for predict in (lambda windows: np.ones((*windows.shape[:3], 2), np.float32), constant_per_window):
        out = np.full((height, width, 2), np.nan, np.float32)
        rows: list[int] = []

        def emit(y, r, out=out, rows=rows):
            rows.extend(range(y, y + len(r)))
            out[y : y + len(r)] = r

        windows = stream_reconstruct(image, lambda r: r, predict, emit, bands=2, window=size, stride=stride, pad=pad,
                                     edge=edge, batch_size=5)  # fmt: skip
        assert rows == list(range(height))  # every row once, in order
        assert np.isfinite(out).all()
        if predict is not constant_per_window:
            np.testing.assert_allclose(out, 1.0, rtol=0, atol=1e-5)
        else:
            slack = 1e-4 * windows
            assert out.min() >= 1 - slack and out.max() <= windows + slack
