"""Root-polynomial regression (Finlayson, Mackiewicz & Hurlbert 2015): the per-pixel map a network must beat.

A pixel's spectrum is predicted from its own three values alone, as a linear map of the **root-polynomial
terms** of its RGB: degree 2 gives ``[r, g, b, √rg, √gb, √rb]`` (6 terms), degree 3 adds the cube roots of
``rg², gb², rb², gr², bg², br², rgb`` (13 terms). Every term is 1-homogeneous, so scaling the light scales the
prediction by the same factor (the map is exposure-invariant) and no bias term is used. On measured real
scenes such a map, fitted on a few synthetic scenes, beat the authors' network in MRAE (issue 24), so it is both
a baseline beside every model and the prior design (b) networks start from.

The terms are colour-science's (``colour.characterisation.polynomial_expansion_Finlayson2015``, signed roots);
:func:`root_polynomial_terms` calls it, and :class:`RootPolynomialMap` computes the same terms in torch for
inference (the tests hold the two equal), because colour's version costs ~0.4 s per megapixel in numpy
against a few milliseconds in torch.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import nn

from hsrecon.physics import load_colour

__all__ = [
    "DEGREES",
    "RIDGE_GRID",
    "RootPolynomialMap",
    "choose_ridge",
    "fit_root_polynomial",
    "root_polynomial_terms",
    "term_count",
]

DEGREES = (1, 2, 3)
RIDGE_GRID = (0.0, 1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2)
"""Ridge strengths tried by :func:`choose_ridge`, relative to the mean diagonal of the terms' Gram matrix."""

# Each term as (channel indices multiplied, root): colour-science's order for root_polynomial_expansion=True.
_TERMS: dict[int, tuple[tuple[tuple[int, ...], int], ...]] = {
    1: (((0,), 1), ((1,), 1), ((2,), 1)),
    2: (((0,), 1), ((1,), 1), ((2,), 1), ((0, 1), 2), ((1, 2), 2), ((0, 2), 2)),
    3: (
        ((0,), 1), ((1,), 1), ((2,), 1), ((0, 1), 2), ((1, 2), 2), ((0, 2), 2),
        ((0, 1, 1), 3), ((1, 2, 2), 3), ((0, 2, 2), 3), ((1, 0, 0), 3), ((2, 1, 1), 3), ((2, 0, 0), 3),
        ((0, 1, 2), 3),
    ),
}  # fmt: skip


def term_count(degree: int) -> int:
    """How many root-polynomial terms a degree has (3, 6, 13)."""
    _check_degree(degree)
    return len(_TERMS[degree])


def _check_degree(degree: int) -> None:
    if degree not in _TERMS:
        raise ValueError(f"root-polynomial degree {degree}: must be one of {', '.join(map(str, DEGREES))}")


def root_polynomial_terms(rgb: np.ndarray, degree: int) -> np.ndarray:
    """…×3 values → …×terms root-polynomial expansion (float64), by colour-science."""
    _check_degree(degree)
    load_colour()  # imports colour-science quietly (its optional-dependency notices)
    from colour.characterisation import polynomial_expansion_Finlayson2015

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # colour's domain-range notices
        return np.asarray(polynomial_expansion_Finlayson2015(np.asarray(rgb, dtype=np.float64), degree, True))


def fit_root_polynomial(rgb: np.ndarray, spectra: np.ndarray, degree: int, ridge: float = 0.0) -> np.ndarray:
    """The terms×B matrix minimising ``|terms(rgb) · M − spectra|² + λ|M|²`` (λ = ``ridge`` × mean Gram diagonal).

    ``rgb`` n×3 and ``spectra`` n×B, in any units (the map is linear in the spectra and 1-homogeneous in the
    RGB). A relative ridge keeps the choice independent of the data's scale.
    """
    terms = root_polynomial_terms(rgb, degree)
    gram = terms.T @ terms
    strength = ridge * float(np.trace(gram)) / len(gram)
    return np.linalg.solve(gram + strength * np.eye(len(gram)), terms.T @ np.asarray(spectra, dtype=np.float64))


def choose_ridge(
    train: tuple[np.ndarray, np.ndarray],
    valid: tuple[np.ndarray, np.ndarray],
    degree: int,
    score,
    grid: tuple[float, ...] = RIDGE_GRID,
) -> tuple[float, np.ndarray, dict[float, float]]:
    """(best ridge, its matrix fitted on ``train``, validation score per ridge): the ridge with the lowest
    ``score(prediction, truth)`` on ``valid``, each a (rgb n×3, spectra n×B) pair."""
    results: dict[float, float] = {}
    matrices: dict[float, np.ndarray] = {}
    valid_terms = root_polynomial_terms(valid[0], degree)
    for ridge in grid:
        matrices[ridge] = fit_root_polynomial(*train, degree, ridge)
        results[ridge] = float(score(valid_terms @ matrices[ridge], np.asarray(valid[1], dtype=np.float64)))
    best = min(results, key=lambda key: (results[key], key))
    return best, matrices[best], results


class RootPolynomialMap(nn.Module):
    """N×3×H×W → N×B×H×W: the root-polynomial terms of each pixel times a fitted terms×B matrix.

    The same terms as :func:`root_polynomial_terms` (signed roots), computed in the input's dtype on its
    device. ``matrix`` is a buffer, so it travels with ``state_dict`` and ``.to()``.
    """

    def __init__(self, matrix: torch.Tensor | np.ndarray, degree: int) -> None:
        super().__init__()
        _check_degree(degree)
        if isinstance(matrix, torch.Tensor):  # possibly on the meta device (loaders count shapes there)
            matrix = matrix.to(torch.float32)
        else:
            matrix = torch.as_tensor(np.asarray(matrix), dtype=torch.float32)
        if matrix.ndim != 2 or matrix.shape[0] != term_count(degree):
            raise ValueError(f"a degree-{degree} map needs a {term_count(degree)}×B matrix, got {tuple(matrix.shape)}")
        self.degree = degree
        self.register_buffer("matrix", matrix)

    @property
    def bands(self) -> int:
        return int(self.matrix.shape[1])

    def terms(self, x: torch.Tensor) -> torch.Tensor:
        """N×3×H×W → N×terms×H×W."""
        channels = x.unbind(1)
        out = []
        for indices, root in _TERMS[self.degree]:
            product = channels[indices[0]]
            for index in indices[1:]:
                product = product * channels[index]
            out.append(product if root == 1 else torch.sign(product) * product.abs().pow(1.0 / root))
        return torch.stack(out, dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("nthw,tb->nbhw", self.terms(x), self.matrix.to(x.dtype))
