"""The NTIRE 2020 clean rendering, against its definition (../shared/docs/formats.md)."""

from __future__ import annotations

import numpy as np

from hsrecon.physics import (
    WAVELENGTHS_NM,
    cmfs_cie1964_10deg,
    load_colour,
    ntire2020_clean_matrix,
    quantize_ntire2020_clean,
    render_ntire2020_clean,
)


def test_wavelengths():
    assert WAVELENGTHS_NM == tuple(float(w) for w in range(400, 701, 10))
    assert len(WAVELENGTHS_NM) == 31


def test_matrix_columns_sum_to_255():
    matrix = ntire2020_clean_matrix()
    assert matrix.shape == (31, 3)
    np.testing.assert_allclose(matrix.sum(axis=0), 255.0, rtol=0, atol=1e-10)


def test_cmfs_are_the_measured_table_at_10nm():
    colour = load_colour()
    table = colour.MSDS_CMFS["CIE 1964 10 Degree Standard Observer"]
    measured = np.array([table[w] for w in WAVELENGTHS_NM])
    np.testing.assert_allclose(cmfs_cie1964_10deg(), measured, rtol=0, atol=1e-12)
    # ȳ peaks near 555–560 nm.
    assert WAVELENGTHS_NM[int(np.argmax(cmfs_cie1964_10deg()[:, 1]))] in (550.0, 560.0)


def test_flat_spectrum_renders_to_v_255_over_256():
    for value in (0.0, 0.25, 1.0):
        cube = np.full((2, 3, 31), value)
        np.testing.assert_allclose(render_ntire2020_clean(cube), value * 255 / 256, atol=1e-12)


def test_measured_spectra_follow_the_definition():
    colour = load_colour()
    shape = colour.SpectralShape(400, 700, 10)
    patches = colour.SDS_COLOURCHECKERS["BabelColor Average"]
    cube = np.stack([sd.copy().align(shape).values for sd in list(patches.values())[:6]])[None]
    cmfs = cmfs_cie1964_10deg()
    expected = np.einsum("hwb,bc->hwc", cube, cmfs) / cmfs.sum(axis=0) * 255 / 256
    np.testing.assert_allclose(render_ntire2020_clean(cube), expected, rtol=1e-12)


def test_quantization_truncates():
    rgb = np.array([[-0.1, 0.0, 0.5, 0.99999, 1.0, 2.0]])
    assert quantize_ntire2020_clean(rgb).tolist() == [[0, 0, 127, 254, 255, 255]]
