"""Choosing a per-pixel map by the light an image shows (issue 24, ``docs/training.md``, "light by light").

Why: a root-polynomial map fitted on scenes of one kind of light beats one map for every light by a wide
margin when the light is known (``tools/light_bounds``), but a user rarely says what lit a photo. Whether an
image was lit by daylight or by an incandescent lamp shows in its colours as a whole: on recipe 3's held-out
sets a logistic regression on eight log-chroma statistics tells the two apart in 93–98% of scenes. Lamps with
spiky spectra (fluorescent tubes, LEDs) do not show that way — their images are nearly metameric to a smooth
light of the same colour (``tools/light_twins``) — so a router chooses among maps of lights an image can
reveal, and blends them by its posterior: the blend of root-polynomial maps is itself one map (the spectra
are linear in the matrix), so a routed image runs exactly as fast as an unrouted one.

A network's per-pixel prior (``hsrecon.model``, ``prior_degree``) can be routed the same way (``clean-v3-auto``):
its file holds one prior matrix per route, and the predictor runs, per image, the network over the blended
matrix (:meth:`hsrecon.inference.TorchPredictor.for_image`); training reads each image's posterior once and
adds the difference to the fixed prior (``hsrecon.train.Routing``).

The router sees a strided sample of the image (at most :data:`SAMPLE_PIXELS` pixels) in the values the map
itself receives, so it is fitted and applied on the same numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

__all__ = [
    "FEATURE_NAMES", "SAMPLE_PIXELS", "LightRouter", "RoutedImage", "blend_routes", "fit_router", "image_sample",
    "light_features",
]  # fmt: skip

FEATURE_NAMES = (
    "log R/G, all pixels", "log B/G, all pixels",
    "log R/G, brightest 10%", "log B/G, brightest 10%",
    "log R/G, brightest 2%", "log B/G, brightest 2%",
    "log R/G, 99.5th percentiles", "log B/G, 99.5th percentiles",
)  # fmt: skip
"""The router's inputs, in order: grey-world and bright-pixel chroma, and the chroma of each channel's
99.5th percentile (a white-patch estimate that one clipped pixel cannot move)."""
SAMPLE_PIXELS = 1 << 16
"""Pixels the router reads of an image at most (every k-th row and column): its statistics settle long before."""
_FLOOR = 1e-4  # keeps black pixels' chroma finite


def light_features(pixels: np.ndarray) -> np.ndarray:
    """The :data:`FEATURE_NAMES` of ``pixels`` (n×3, the map's input values): 8 float64 values."""
    pixels = np.asarray(pixels, dtype=np.float64).reshape(-1, 3) + _FLOOR
    brightness = pixels.sum(1)
    values: list[float] = []
    for share in (1.0, 0.1, 0.02):
        mean = pixels[brightness >= np.quantile(brightness, 1.0 - share)].mean(0)
        values += [np.log(mean[0] / mean[1]), np.log(mean[2] / mean[1])]
    peak = np.quantile(pixels, 0.995, axis=0)
    values += [np.log(peak[0] / peak[1]), np.log(peak[2] / peak[1])]
    return np.array(values)


def image_sample(
    pixels: np.ndarray, transform: Callable[[np.ndarray], np.ndarray], limit: int = SAMPLE_PIXELS
) -> np.ndarray:
    """Every k-th row and column of an H×W×3 image, through ``transform`` (the map's input), as n×3, with k
    the smallest step that leaves at most ``limit`` pixels."""
    height, width = pixels.shape[:2]
    step = max(1, int(np.ceil(np.sqrt(height * width / limit))))
    return np.asarray(transform(pixels[::step, ::step]), dtype=np.float64).reshape(-1, 3)


@dataclass(frozen=True)
class LightRouter:
    """A multinomial logistic regression from :func:`light_features` to the kind of light among ``routes``:
    standardised features (``mean``, ``scale``), ``coef`` (routes × features) and ``intercept``."""

    routes: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: np.ndarray

    def posterior(self, features: np.ndarray) -> np.ndarray:
        """The probability of each route given one image's features (sums to 1)."""
        logits = self.coef @ ((np.asarray(features, dtype=np.float64) - self.mean) / self.scale) + self.intercept
        weights = np.exp(logits - logits.max())
        return weights / weights.sum()

    def to_json(self) -> dict:
        """What the weights' metadata stores of it (``routing``): plain lists of numbers."""
        return {
            "routes": list(self.routes),
            "features": list(FEATURE_NAMES),
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "coef": self.coef.tolist(),
            "intercept": self.intercept.tolist(),
        }

    @classmethod
    def from_json(cls, data: dict) -> LightRouter:
        """The router a weights file's ``routing`` describes (checked by the weights schema before)."""
        arrays = {key: np.asarray(data[key], dtype=np.float64) for key in ("mean", "scale", "coef", "intercept")}
        return cls(routes=tuple(data["routes"]), **arrays)


def blend_routes(posterior: np.ndarray, routes: torch.Tensor) -> torch.Tensor:
    """The posterior-weighted mean of one matrix per route (routes × terms × bands → terms × bands, float32):
    a blend of per-pixel maps is itself one map, so a routed image runs as fast as an unrouted one."""
    weights = torch.as_tensor(np.asarray(posterior), dtype=torch.float32, device=routes.device)
    return torch.einsum("k,kij->ij", weights, routes.to(torch.float32))


@dataclass(frozen=True)
class RoutedImage:
    """What a router read of one image: the posterior over its routes and the matrix they blend to."""

    light: dict[str, float]
    matrix: torch.Tensor

    @classmethod
    def read(
        cls,
        router: LightRouter,
        routes: torch.Tensor,
        pixels: np.ndarray,
        transform: Callable[[np.ndarray], np.ndarray],
    ) -> RoutedImage:
        """Read ``pixels`` (H×W×3, through ``transform``, the values the map receives) and blend ``routes``."""
        posterior = router.posterior(light_features(image_sample(pixels, transform)))
        light = {route: round(float(p), 4) for route, p in zip(router.routes, posterior, strict=True)}
        return cls(light=light, matrix=blend_routes(posterior, routes))


def fit_router(
    features: np.ndarray, labels: Sequence[int], routes: Sequence[str], penalty: float = 1e-2
) -> LightRouter:
    """Fit a :class:`LightRouter` on images' features (n × 8) and route indices, by L-BFGS on the mean
    cross-entropy plus ``penalty`` × the squared coefficients (float64, deterministic: same data, same bytes).
    ValueError when a route has no image."""
    features = np.asarray(features, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    missing = [route for index, route in enumerate(routes) if not (labels == index).any()]
    if missing:
        raise ValueError(f"no training image for the route(s) {', '.join(missing)}")
    mean, scale = features.mean(0), features.std(0)
    scale = np.where(scale > 0, scale, 1.0)
    inputs = torch.tensor((features - mean) / scale)
    targets = torch.tensor(labels)
    coef = torch.zeros((len(routes), features.shape[1]), dtype=torch.float64, requires_grad=True)
    intercept = torch.zeros(len(routes), dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.LBFGS([coef, intercept], max_iter=500, tolerance_grad=1e-10, line_search_fn="strong_wolfe")

    def loss() -> torch.Tensor:
        optimiser.zero_grad()
        value = torch.nn.functional.cross_entropy(inputs @ coef.T + intercept, targets) + penalty * coef.square().sum()
        value.backward()
        return value

    optimiser.step(loss)
    return LightRouter(tuple(routes), mean, scale, coef.detach().numpy().copy(), intercept.detach().numpy().copy())
