"""Root-polynomial regression: colour-science's terms, torch's equal to them, exposure invariance, the fit."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hsrecon.pixelmap import (
    RootPolynomialMap,
    choose_ridge,
    fit_root_polynomial,
    root_polynomial_terms,
    term_count,
)


@pytest.mark.parametrize("degree", [1, 2, 3])
def test_torch_terms_equal_colour_sciences(degree, rng):
    rgb = rng.uniform(-0.05, 1.2, size=(500, 3))  # negative values (noise) included: signed roots
    expected = root_polynomial_terms(rgb, degree)
    module = RootPolynomialMap(np.zeros((term_count(degree), 31)), degree).double()
    got = module.terms(torch.from_numpy(rgb.T.reshape(1, 3, 20, 25).copy())).numpy()
    assert expected.shape == (500, term_count(degree))
    np.testing.assert_allclose(got.reshape(term_count(degree), -1).T, expected, rtol=1e-12, atol=1e-15)


def test_degree_two_terms_are_finlaysons():
    r, g, b = 0.1, 0.4, 0.9
    np.testing.assert_allclose(
        root_polynomial_terms(np.array([r, g, b]), 2), [r, g, b, np.sqrt(r * g), np.sqrt(g * b), np.sqrt(r * b)]
    )


@pytest.mark.parametrize("degree", [2, 3])
def test_map_is_exposure_invariant(degree, rng):
    matrix = rng.normal(size=(term_count(degree), 31))
    module = RootPolynomialMap(matrix, degree).double()
    x = torch.from_numpy(rng.uniform(0, 1, size=(2, 3, 8, 8)))
    torch.testing.assert_close(module(3.7 * x), 3.7 * module(x))


def test_fit_recovers_a_map_exactly(rng):
    rgb = rng.uniform(0.01, 1, size=(2000, 3))
    truth = rng.normal(size=(13, 31))
    spectra = root_polynomial_terms(rgb, 3) @ truth
    np.testing.assert_allclose(fit_root_polynomial(rgb, spectra, 3), truth, rtol=1e-6, atol=1e-8)


def test_ridge_is_chosen_on_validation(rng):
    rgb = rng.uniform(0.01, 1, size=(60, 3))
    spectra = rgb @ rng.uniform(0, 1, size=(3, 31)) + rng.normal(scale=0.05, size=(60, 31))  # few, noisy samples
    valid_rgb = rng.uniform(0.01, 1, size=(2000, 3))
    valid = (valid_rgb, valid_rgb @ np.ones((3, 31)) * 0.3)

    def mse(prediction, truth):
        return np.mean((prediction - truth) ** 2)

    best, matrix, scores = choose_ridge((rgb, spectra), valid, 3, mse)
    assert scores[best] == min(scores.values())
    assert matrix.shape == (13, 31)
    assert len(set(scores.values())) > 1  # the grid changes the fit


def test_bad_degree_and_matrix_are_refused():
    with pytest.raises(ValueError, match="degree 4"):
        term_count(4)
    with pytest.raises(ValueError, match="6×B matrix"):
        RootPolynomialMap(np.zeros((13, 31)), 2)
