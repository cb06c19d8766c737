"""hsrecon.view.catalog: pairing cubes with truth and photos, the images and spectra it serves, the scores;
and the per-pixel / per-band error maps of hsrecon.metrics it uses."""

from __future__ import annotations

import io

import imageio.v3 as iio
import numpy as np
import pytest
from PIL import Image

from conftest import WAVELENGTHS
from conftest import write_cube as write
from hsrecon.io import open_cube_writer
from hsrecon.metrics import band_relative_errors, mrae, pixel_mrae, score
from hsrecon.view import catalog as catalog_module
from hsrecon.view.catalog import ImageRequest, build_catalog
from hsrecon.view.render import apply_colormap, colormap_lut, stretch_range


@pytest.fixture()
def pair(rng):
    truth = (rng.random((40, 52, 31), dtype=np.float32) * 0.8 + 0.05).astype(np.float32)
    pred = (truth * (1 + 0.1 * rng.standard_normal(truth.shape))).astype(np.float32)
    return pred, truth


def png(tmp_path, name, height, width):
    path = tmp_path / name
    iio.imwrite(path, np.zeros((height, width, 3), dtype=np.uint8))
    return path


def test_folders_pair_by_name_and_missing_partners_are_noted(tmp_path, pair):
    pred, truth = pair
    for sub in ("pred", "gt", "rgb"):
        (tmp_path / sub).mkdir()
    write(tmp_path / "pred" / "a_clean", "h5", pred)
    write(tmp_path / "pred" / "b", "envi", pred)
    write(tmp_path / "gt" / "a", "mat", truth)
    write(tmp_path / "gt" / "b", "h5", truth)
    png(tmp_path / "rgb", "a_clean.png", 40, 52)
    catalog, notes = build_catalog([tmp_path / "pred"], truth=tmp_path / "gt", photo=tmp_path / "rgb")
    try:
        a, b = catalog.entries
        assert (a.name, a.truth.path.name, a.photo.path.name) == ("a_clean.h5", "a.mat", "a_clean.png")
        assert (b.name, b.truth.path.name, b.photo) == ("b.hdr", "b.h5", None)
        assert len(notes) == 1 and "b.hdr" in notes[0] and "no photo" in notes[0]
        described = catalog.describe()["cubes"][0]
        assert described["truth"] == "a.mat" and str(tmp_path) not in str(described)  # names, never paths
    finally:
        catalog.close()


def test_unusable_partners_are_one_line_errors(tmp_path, pair, rng):
    pred, truth = pair
    a = write(tmp_path / "a", "h5", pred)
    b = write(tmp_path / "b", "h5", pred)
    with pytest.raises(ValueError, match="single ground-truth file for 2 cubes"):
        build_catalog([a, b], truth=a)
    small = write(tmp_path / "small", "h5", truth[:30])
    with pytest.raises(ValueError, match=r"52×30×31, but a\.h5 is 52×40×31"):
        build_catalog([a], truth=small)
    with pytest.raises(ValueError, match=r"60×40, but a\.h5 is 52×40"):
        build_catalog([a], photo=png(tmp_path, "p.png", 40, 60))
    with open_cube_writer(tmp_path / "shifted", "h5", height=40, width=52, wavelengths_nm=WAVELENGTHS + 5) as writer:
        writer.write_rows(0, truth)
    with pytest.raises(ValueError, match="other wavelengths"):
        build_catalog([a], truth=tmp_path / "shifted.h5")
    with pytest.raises(ValueError, match="no such file"):
        build_catalog([tmp_path / "nothing.h5"])


def test_spectrum_answers_values_truth_and_pixel_mrae_exactly(tmp_path, pair):
    pred, truth = pair
    catalog, _ = build_catalog([write(tmp_path / "p", "envi", pred)], truth=write(tmp_path / "t", "mat", truth))
    answer = catalog.entry(0).spectrum(7, 33)
    assert (answer["x"], answer["y"]) == (7, 33)
    assert answer["values"] == [float(v) for v in pred[33, 7]]  # float32 → JSON number, nothing rounded
    assert answer["truth"] == [float(v) for v in truth[33, 7]]
    p, t = pred[33, 7].astype(np.float64), truth[33, 7].astype(np.float64)
    assert answer["mrae"] == pytest.approx(float(np.mean(np.abs(p - t) / t)), rel=1e-12)
    catalog.close()


def decode(image_png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(image_png)))


def test_band_layer_is_the_band_through_the_stretch_and_colour_map(tmp_path, pair):
    pred, _ = pair
    catalog, _ = build_catalog([write(tmp_path / "p", "envi", pred, interleave="bil")])
    entry = catalog.entry(0)
    request = ImageRequest("band", 0, 0, 1, 52, 40, band=12, colormap="gray", low_percent=0, high_percent=100)
    entry.check(request)
    image = entry.render(request, catalog)
    band = pred[..., 12].astype(np.float64)
    assert (image.lo, image.hi) == (band.min(), band.max())
    expected = np.round((band - band.min()) / (band.max() - band.min()) * 255)
    got = decode(image.png)
    assert got.shape == (40, 52, 4)
    np.testing.assert_array_equal(got[..., 0], expected)
    np.testing.assert_array_equal(got[..., 3], 255)
    # fixed lo/hi are used as given; viridis is plotly's
    fixed = ImageRequest("band", 0, 0, 1, 52, 40, band=3, colormap="viridis", lo=0.2, hi=0.6)
    rendered = decode(entry.render(fixed, catalog).png)
    np.testing.assert_array_equal(rendered, apply_colormap(pred[..., 3], 0.2, 0.6, "viridis"))
    assert colormap_lut("viridis")[0].tolist() == [68, 1, 84]  # plotly's viridis starts at #440154
    catalog.close()


def test_zoomed_regions_and_sub_grids_of_the_overview_agree_with_the_file(tmp_path, pair, monkeypatch):
    """With a 13-pixel overview (step 4) a request on the overview's grid is cut from it, any other is read;
    both give the file's pixels."""
    pred, truth = pair
    monkeypatch.setattr(catalog_module, "OVERVIEW_MAX_SIDE", 13)
    catalog, _ = build_catalog([write(tmp_path / "p", "h5", pred)], truth=write(tmp_path / "t", "h5", truth))
    entry = catalog.entry(0)
    assert entry.overview_step == 4
    for request in (
        ImageRequest("mrae", 0, 0, 4, 13, 10, colormap="gray", lo=0.0, hi=0.5),  # the overview itself
        ImageRequest("mrae", 8, 4, 8, 5, 4, colormap="gray", lo=0.0, hi=0.5),  # a sub-grid of it
        ImageRequest("mrae", 3, 5, 1, 40, 30, colormap="gray", lo=0.0, hi=0.5),  # full resolution
    ):
        entry.check(request)
        rows, cols = request.row_slice, request.col_slice
        expected = apply_colormap(pixel_mrae(pred[rows, cols], truth[rows, cols]), 0.0, 0.5, "gray")
        np.testing.assert_array_equal(decode(entry.render(request, catalog).png), expected)
    catalog.close()


def test_srgb_exposure_is_the_whole_images_at_every_zoom(tmp_path, pair):
    from hsrecon.preview import cube_to_srgb

    pred, _ = pair
    catalog, _ = build_catalog([write(tmp_path / "p", "h5", pred)])
    entry = catalog.entry(0)
    whole = decode(entry.render(ImageRequest("srgb", 0, 0, 1, 52, 40), catalog).png)
    np.testing.assert_array_equal(whole, cube_to_srgb(pred))
    part = decode(entry.render(ImageRequest("srgb", 10, 20, 1, 8, 6), catalog).png)
    np.testing.assert_array_equal(part, whole[20:26, 10:18])
    catalog.close()


def test_requests_it_cannot_answer_are_refused(tmp_path, pair):
    pred, _ = pair
    catalog, _ = build_catalog([write(tmp_path / "p", "h5", pred)])
    entry = catalog.entry(0)
    bad = {
        "layer 'mrae'": ImageRequest("mrae", 0, 0, 1, 5, 5),
        "layer 'photo'": ImageRequest("photo", 0, 0, 1, 5, 5),
        "layer 'x'": ImageRequest("x", 0, 0, 1, 5, 5),
        "band 31": ImageRequest("band", 0, 0, 1, 5, 5, band=31),
        "outside": ImageRequest("srgb", 0, 0, 2, 27, 5),
        "at most": ImageRequest("srgb", 0, 0, 1, 5000, 5000),
        "percentiles": ImageRequest("band", 0, 0, 1, 5, 5, low_percent=50, high_percent=50),
    }
    for message, request in bad.items():
        with pytest.raises(ValueError, match=message):
            entry.check(request)
    with pytest.raises(IndexError):
        catalog.entry(1)
    catalog.close()


def test_scores_are_hsrecon_evals_for_the_pair(tmp_path, pair):
    pred, truth = pair
    catalog, _ = build_catalog([write(tmp_path / "p", "envi", pred)], truth=write(tmp_path / "t", "h5", truth))
    first = catalog.scores(0)
    assert first["state"] in ("computing", "done")
    catalog._executor.shutdown(wait=True)  # the worker has finished: no clock involved
    answer = catalog.scores(0)
    assert answer["state"] == "done"
    expected = score(pred, truth).as_dict()
    for name, value in expected.items():
        assert answer["scores"][name] == pytest.approx(value, rel=1e-12), name
    catalog.close()


def test_pixel_and_band_errors_follow_the_mrae_convention(rng):
    truth = rng.random((6, 7, 5)) + 0.1
    pred = truth * (1 + 0.2 * rng.standard_normal(truth.shape))
    # no zeros: every pixel weighs the same, so the map's mean is the image's MRAE
    assert np.mean(pixel_mrae(pred, truth)) == pytest.approx(mrae(pred, truth), rel=1e-12)
    sums, counts = band_relative_errors(pred, truth)
    for band in range(5):
        assert sums[band] / counts[band] == pytest.approx(mrae(pred[..., band : band + 1], truth[..., band : band + 1]))
    truth[0, 0, :2] = 0  # zero truth is left out, as in the image's MRAE
    truth[1, 1, :] = 0
    got = pixel_mrae(pred, truth)
    assert got[0, 0] == pytest.approx(np.mean(np.abs(pred[0, 0, 2:] - truth[0, 0, 2:]) / truth[0, 0, 2:]))
    assert np.isnan(got[1, 1]) and np.isfinite(np.delete(got.ravel(), 1 * 7 + 1)).all()
    sums, counts = band_relative_errors(pred, truth)
    assert counts.tolist() == [40, 40, 41, 41, 41]
    assert stretch_range(np.array([np.nan, 1.0, 1.0]), 0, 100)[1] > 1.0  # a flat band still stretches
