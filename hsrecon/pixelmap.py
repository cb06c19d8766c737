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
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from hsrecon.physics import load_colour

__all__ = [
    "APPLY_CHUNK",
    "DEGREES",
    "RIDGE_GRID",
    "VALID_EVERY",
    "PixelMapFit",
    "RootPolynomialMap",
    "apply_map",
    "carve_validation",
    "choose_ridge",
    "fit_root_polynomial",
    "fit_with_validation",
    "pixel_terms",
    "relative_error",
    "root_polynomial_terms",
    "term_count",
    "term_names",
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


def term_names(degree: int) -> tuple[str, ...]:
    """The terms in order, as a reader writes them: ``r``, ``√(rg)``, ``∛(rgg)``."""
    _check_degree(degree)
    roots = {1: "", 2: "√", 3: "∛"}
    return tuple(
        f"{roots[root]}({''.join('rgb'[i] for i in indices)})" if root > 1 else "rgb"[indices[0]]
        for indices, root in _TERMS[degree]
    )


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


def _signed_root_terms(channels: tuple, degree: int, library) -> list:
    """The terms of :func:`root_polynomial_terms` from the three channels (arrays of one shape and dtype),
    signed roots, computed with ``library`` (numpy or torch: the same arithmetic in either)."""
    out = []
    for indices, root in _TERMS[degree]:
        product = channels[indices[0]]
        for index in indices[1:]:
            product = product * channels[index]
        out.append(product if root == 1 else library.copysign(library.abs(product) ** (1.0 / root), product))
    return out


def pixel_terms(pixels: np.ndarray, degree: int) -> np.ndarray:
    """n×3 pixels → terms×n, in the pixels' dtype, by numpy (:func:`root_polynomial_terms` is the reference,
    in float64; this is its arithmetic on arrays of any float type, for :func:`apply_map`)."""
    _check_degree(degree)
    channels = tuple(np.ascontiguousarray(pixels.T))
    return np.stack(_signed_root_terms(channels, degree, np))


APPLY_CHUNK = 2048
"""Pixels per product in :func:`apply_map`: small enough that the BLAS runs it on one thread, in cache."""


def apply_map(pixels: np.ndarray, matrix: np.ndarray, degree: int) -> np.ndarray:
    """…×3 pixels → …×B spectra, ``terms(pixels) @ matrix`` in the arrays' dtype, on the CPU.

    In chunks of :data:`APPLY_CHUNK` pixels: numpy's elementwise arithmetic runs on one thread and a small
    matrix product does too, so nothing waits for a second thread. On a 2-core machine shared with other
    work, one 65,536-pixel product that wakes every BLAS thread measured 10× slower than the same product
    in chunks (and torch's threaded elementwise operations 10–100× slower); the other core is left to
    convert's reader and writer."""
    flat = pixels.reshape(-1, pixels.shape[-1])
    out = np.empty((len(flat), matrix.shape[1]), dtype=np.result_type(flat, matrix))
    for start in range(0, len(flat), APPLY_CHUNK):
        part = slice(start, start + APPLY_CHUNK)
        np.matmul(pixel_terms(flat[part], degree).T, matrix, out=out[part])
    return out.reshape(*pixels.shape[:-1], matrix.shape[1])


class RootPolynomialMap(nn.Module):
    """N×3×H×W → N×B×H×W: the root-polynomial terms of each pixel times a fitted terms×B matrix.

    The same terms as :func:`root_polynomial_terms` (signed roots), computed in the input's dtype on its
    device. ``matrix`` is a buffer, so it travels with ``state_dict`` and ``.to()``. :meth:`map_pixels` does
    the same on channels-last pixels (…×3 → …×B), the layout convert's rows come in.
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
        return torch.stack(_signed_root_terms(x.unbind(1), self.degree, torch), dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("nthw,tb->nbhw", self.terms(x), self.matrix.to(x.dtype))

    def map_pixels(self, x: torch.Tensor) -> torch.Tensor:
        """…×3 → …×B, channels last. The terms are stacked first (terms × pixels, each a contiguous row)
        and multiplied transposed, so no pixel-major copy of the terms is made."""
        flat = x.reshape(-1, 3)
        terms = torch.stack(_signed_root_terms(flat.unbind(1), self.degree, torch))
        return (terms.mT @ self.matrix.to(x.dtype)).reshape(*x.shape[:-1], self.bands)


# --- fitting on a dataset's pixels, the ridge chosen on pixels the fit did not see ----------------------

VALID_EVERY = 5
"""Every 5th training image (the 5th, 10th, …) is the validation part the ridge is chosen on."""


def relative_error(prediction: np.ndarray, truth: np.ndarray) -> float:
    """MRAE over all values with truth ≠ 0 (the challenges' convention, pooled over pixels)."""
    prediction, truth = np.asarray(prediction, dtype=np.float64), np.asarray(truth, dtype=np.float64)
    nonzero = truth != 0
    return float(np.mean(np.abs(prediction[nonzero] - truth[nonzero]) / np.abs(truth[nonzero])))


def carve_validation(counts: list[int]) -> list[np.ndarray]:
    """Per image, which of its ``counts[i]`` samples are validation (boolean masks): whole images, every
    :data:`VALID_EVERY`-th (the last one when there are fewer than that, but at least two), so the ridge
    is chosen on scenes the fit never saw; a single image gives every other sample instead."""
    if len(counts) == 1:
        return [np.arange(counts[0]) % 2 == 1]
    held = {i for i in range(len(counts)) if i % VALID_EVERY == VALID_EVERY - 1} or {len(counts) - 1}
    return [np.full(count, i in held) for i, count in enumerate(counts)]


@dataclass(frozen=True)
class PixelMapFit:
    """A root-polynomial map fitted on a dataset's samples: the ridge chosen on the validation part
    (:func:`carve_validation`) by MRAE, then the matrix refitted on every sample with that ridge."""

    degree: int
    matrix: np.ndarray  # terms×B, float64
    ridge: float
    scores: dict[float, float]  # validation MRAE per ridge tried
    images: int
    pixels: int
    valid_images: int
    valid_pixels: int

    def facts(self) -> dict:
        """What a report or a weights file records of the fit (JSON-ready)."""
        return {
            "degree": self.degree,
            "ridge": self.ridge,
            "ridge_chosen_by": "lowest MRAE on the validation part; then refitted on every sample",
            "ridges_tried": list(self.scores),
            "valid_mrae_per_ridge": [float(f"{score:.6g}") for score in self.scores.values()],
            "fit_images": self.images,
            "fit_pixels": self.pixels,
            "valid_images": self.valid_images,
            "valid_pixels": self.valid_pixels,
        }


def fit_with_validation(
    inputs: list[np.ndarray], targets: list[np.ndarray], degree: int, grid: tuple[float, ...] = RIDGE_GRID
) -> PixelMapFit:
    """Fit a degree-``degree`` map on per-image samples (``inputs[i]`` n×3, ``targets[i]`` n×B): the ridge
    from ``grid`` with the lowest validation MRAE, the matrix from every sample with it."""
    masks = carve_validation([len(x) for x in inputs])
    x, y, held = np.concatenate(inputs), np.concatenate(targets), np.concatenate(masks)
    ridge, _, scores = choose_ridge((x[~held], y[~held]), (x[held], y[held]), degree, relative_error, grid)
    whole = sum(bool(mask.all()) for mask in masks)
    return PixelMapFit(
        degree=degree, matrix=fit_root_polynomial(x, y, degree, ridge), ridge=ridge, scores=scores,
        images=len(inputs), pixels=len(x), valid_images=whole, valid_pixels=int(held.sum()),
    )  # fmt: skip
