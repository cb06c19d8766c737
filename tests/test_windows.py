"""Windows and blending, independent of the network: coverage, weights, identity, streaming order."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hsrecon.pipeline import stream_reconstruct
from hsrecon.windows import (
    RowBlender,
    RowSource,
    Windowing,
    axis_starts,
    blend_weights,
    count_windows,
    pad_to_window,
    plan_windows,
    reflect_index,
)


@given(length=st.integers(1, 400), size=st.sampled_from([4, 8, 16, 64]), data=st.data())
def test_axis_starts_cover_and_stay_inside(length, size, data):
    stride = data.draw(st.integers(1, size))
    if length < size:
        with pytest.raises(ValueError, match="pad it first"):
            axis_starts(length, size, stride)
        return
    starts = axis_starts(length, size, stride)
    assert starts[0] == 0 and starts[-1] == length - size
    assert all(b - a <= stride for a, b in itertools.pairwise(starts))  # no gaps
    assert starts == sorted(set(starts))
    covered = np.zeros(length, bool)
    for s in starts:
        covered[s : s + size] = True
    assert covered.all()


def test_bad_stride():
    with pytest.raises(ValueError, match="gaps"):
        axis_starts(100, 16, 17)
    with pytest.raises(ValueError, match="positive"):
        axis_starts(100, 16, 0)


def test_plan_windows_raster_order():
    windows = plan_windows(100, 70, size=64, stride=32)
    assert [(w.y, w.x) for w in windows] == [(0, 0), (0, 6), (32, 0), (32, 6), (36, 0), (36, 6)]


def test_blend_weights():
    flat = blend_weights(64, 64)
    assert flat.shape == (64, 64) and (flat == 1).all()
    bump = blend_weights(64, 32)
    assert bump.min() > 0 and bump.max() <= 1
    assert np.allclose(bump, bump.T) and np.allclose(bump, bump[::-1])
    # Half-window shifts of the 1-D ramp sum to exactly one.
    ramp = np.sqrt(np.diag(bump))  # the 1-D ramp: the weight is its outer product
    assert np.allclose(ramp[:32] + ramp[32:], 1.0, atol=1e-6)


def test_pad_to_window():
    rows = np.arange(6, dtype=np.float32).reshape(1, 2, 3)
    padded = pad_to_window(rows, 5, axis=1)
    assert padded.shape == (1, 5, 3)
    assert np.array_equal(padded[0, :, 0], [0, 3, 0, 3, 0])  # reflection
    single = pad_to_window(np.ones((1, 1, 3)), 4, axis=0)
    assert single.shape == (4, 1, 3) and (single == 1).all()


def _identity_predict(windows: np.ndarray) -> np.ndarray:
    return windows.copy()


@settings(max_examples=60, deadline=None)
@given(
    height=st.integers(1, 150),
    width=st.integers(1, 150),
    size=st.sampled_from([8, 16, 32]),
    stride_fraction=st.sampled_from([0.25, 0.5, 0.75, 1.0]),
    batch=st.integers(1, 7),
)
def test_identity_model_returns_the_input(height, width, size, stride_fraction, batch):
    """Full coverage, weights normalised to one, rows emitted once and in order: identity in, identity out."""
    rng = np.random.default_rng(height * 1000 + width)
    image = rng.random((height, width, 3), dtype=np.float32)
    out = np.full((height, width, 3), np.nan, np.float32)
    emitted = []

    def emit(y0, rows):
        assert np.isnan(out[y0 : y0 + rows.shape[0]]).all(), "row emitted twice"
        emitted.append(y0)
        out[y0 : y0 + rows.shape[0]] = rows

    stream_reconstruct(
        image,
        lambda rows: rows,
        _identity_predict,
        emit,
        bands=3,
        window=size,
        stride=max(1, int(size * stride_fraction)),
        batch_size=batch,
    )
    assert emitted == sorted(emitted)
    np.testing.assert_allclose(out, image, rtol=0, atol=1e-6)


def test_window_dependent_model_is_blended_not_cut():
    """A predictor whose output depends on the position inside the window (like CoordConv) is blended:
    with overlap the output changes smoothly; without overlap it jumps at every window edge."""
    size = 16

    def positional(windows: np.ndarray) -> np.ndarray:
        ramp = np.linspace(0, 1, size, dtype=np.float32)[None, None, :, None]
        return windows + ramp

    image = np.zeros((size, 80, 1), np.float32)
    for stride, expect_jump in ((size, True), (size // 2, False)):
        out = np.empty_like(image)
        stream_reconstruct(
            image,
            lambda r: r,
            positional,
            lambda y, r, out=out: out.__setitem__(slice(y, y + len(r)), r),
            bands=1,
            window=size,
            stride=stride,
        )
        steps = np.abs(np.diff(out[0, :, 0]))
        assert (steps.max() > 0.5) == expect_jump


def test_row_blender_refuses_out_of_order_windows():
    blender = RowBlender(8, 1, blend_weights(4, 4), lambda y, r: None)
    blender.add(0, 0, np.ones((4, 4, 1), np.float32))
    blender.add(0, 4, np.ones((4, 4, 1), np.float32))
    blender.finish_rows(4)
    with pytest.raises(ValueError, match="after rows"):
        blender.add(0, 0, np.ones((4, 4, 1), np.float32))


def test_memory_is_a_band_not_the_image(monkeypatch):
    """The blender's buffer stays a few windows tall however tall the image is."""
    largest = {}
    original = RowBlender._ensure_capacity

    def spy(self, end_row):
        original(self, end_row)
        largest[self.id] = max(largest.get(self.id, 0), self.acc.shape[0])

    monkeypatch.setattr(RowBlender, "_ensure_capacity", spy)
    for height in (64, 640, 6400):
        monkeypatch.setattr(RowBlender, "id", height, raising=False)
        image = np.zeros((height, 32, 3), np.float32)
        stream_reconstruct(
            image, lambda r: r, _identity_predict, lambda y, r: None, bands=3, window=16, stride=8, batch_size=4
        )
    assert largest[64] == largest[640] == largest[6400] <= 64


@pytest.mark.parametrize(
    ("height", "width", "pad", "size"), [(5, 7, 3, 4), (1, 9, 4, 8), (6, 1, 2, 16), (40, 30, 16, 8)]
)
def test_row_source_is_the_image_reflected_around(height, width, pad, size):
    """The canvas is numpy's reflection of the whole image by ``pad`` (and on to a window), made band by band."""
    image = np.random.default_rng(0).random((height, width, 3)).astype(np.float32)
    source = RowSource(image, lambda rows: rows * 2, size, pad)
    canvas = np.concatenate([source(y, min(y + 3, source.padded_height)) for y in range(0, source.padded_height, 3)])
    rows, cols = source.padded_height - height - pad, source.padded_width - width - pad
    mode = "reflect" if min(height, width) > 1 else "edge"
    if mode == "edge":
        expected = (
            2
            * image[reflect_index(np.arange(-pad, height + rows), height)][
                :, reflect_index(np.arange(-pad, width + cols), width)
            ]
        )
    else:
        expected = 2 * np.pad(image, ((pad, rows), (pad, cols), (0, 0)), mode=mode)
    np.testing.assert_array_equal(canvas, expected)


def test_blend_weights_with_an_edge_fade_across_the_overlap_and_sum_to_one():
    weights = blend_weights(192, 172, edge=7)
    profile = np.sqrt(np.diag(weights)).astype(np.float64)
    assert (profile[:7] < 1e-5).all() and (profile[27:165] == 1).all()  # the edge, then the core as is
    np.testing.assert_allclose(profile[172:] + profile[:20], 1.0, atol=1e-5)  # neighbours' overlap: one
    assert np.array_equal(blend_weights(64, 32, edge=0), blend_weights(64, 32))
    with pytest.raises(ValueError, match="leaves no ramp"):
        blend_weights(64, 56, edge=4)


def test_count_windows_counts_the_pad():
    assert count_windows(100, 100, Windowing(64, 32)) == 3 * 3  # starts 0, 32, 36
    assert count_windows(100, 100, Windowing(64, 32, pad=16)) == 4 * 4  # a 132-px canvas: 0, 32, 64, 68
    assert count_windows(1, 1, Windowing(64, 32, pad=16)) == 1


def test_the_stream_holds_one_window_of_rows_and_hands_on_small_pieces(monkeypatch):
    """Memory flat in the image: the blend buffer stays one window high even when a batch spans two bands
    of windows, and finished rows go to the writer at most EMIT_ROWS at a time."""
    from hsrecon.windows import EMIT_ROWS

    heights: list[int] = []
    original = RowBlender._ensure_capacity

    def recording(self, end_row):
        original(self, end_row)
        heights.append(self.acc.shape[0])

    monkeypatch.setattr(RowBlender, "_ensure_capacity", recording)
    pixels = np.random.default_rng(3).integers(0, 256, (300, 90, 3), dtype=np.uint8)
    pieces: list[tuple[int, int]] = []
    stream_reconstruct(
        pixels, lambda rows: rows.astype(np.float32) / 255, lambda x: np.repeat(x.mean(-1, keepdims=True), 4, -1),
        lambda y0, rows: pieces.append((y0, rows.shape[0])), bands=4, windowing=Windowing(64, 40, 8, 4),
        batch_size=3,
    )  # fmt: skip
    assert max(heights) == 64
    assert max(height for _, height in pieces) <= EMIT_ROWS
    assert [y0 for y0, _ in pieces] == list(itertools.accumulate([0] + [h for _, h in pieces[:-1]]))
    assert sum(height for _, height in pieces) == 300


def test_a_small_image_gets_the_least_pad_that_saves_windows():
    measured = Windowing(192, 172, pad=16, edge=7, least_pad=8)  # the default weights' own
    fitted = measured.for_image(482, 512)  # an NTIRE-size image: 3x4 windows with 16 px of pad, 3x3 with 12
    assert fitted == Windowing(192, 172, pad=12, edge=7)
    assert count_windows(482, 512, Windowing(192, 172, pad=16, edge=7)) == 12
    assert count_windows(482, 512, measured) == count_windows(482, 512, fitted) == 9
    assert measured.for_image(3000, 4000).pad == 16  # nothing to save: the measured pad, not the least
    assert measured.for_image(100, 150).pad == 16  # one window whatever the pad
    assert fitted.for_image(482, 512) is fitted and fitted.for_image(3000, 4000) is fitted  # fixed once fitted
    assert Windowing(192, 172, pad=16, edge=7).for_image(482, 512).pad == 16  # no least pad: as given


@given(height=st.integers(1, 900), width=st.integers(1, 900))
@settings(max_examples=200, deadline=None)
def test_the_fitted_pad_never_costs_windows_and_stays_in_its_range(height, width):
    measured = Windowing(192, 172, pad=16, edge=7, least_pad=8)
    fitted = measured.for_image(height, width)
    assert 8 <= fitted.pad <= 16 and fitted.least_pad is None
    counts = {pad: count_windows(height, width, Windowing(192, 172, pad, 7)) for pad in range(8, 17)}
    assert count_windows(height, width, fitted) == min(counts.values())
    assert all(counts[pad] > counts[fitted.pad] for pad in range(fitted.pad + 1, 17))  # the largest such pad
