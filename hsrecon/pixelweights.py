"""Per-pixel weights: a root-polynomial map (:mod:`hsrecon.pixelmap`) shipped and run like a network's weights.

A map fitted once is a small matrix (6×31 for degree 2) that turns each pixel's root-polynomial terms into
its spectrum. It travels as an hsrecon weights file (safetensors, one ``matrix`` tensor, the ``hsrecon``
metadata JSON with ``"kind": "root-polynomial"``: degree, input space, wavelengths, ridge, provenance,
training data) and is loaded by the same checked loader as a network (:func:`hsrecon.weights.load_weights`),
which returns a :class:`PixelMapWeights` for it: a model descriptor (as spandrel's) answering what callers
ask of :class:`~hsrecon.weights.Weights` — name, meta, input space and transform, windowing, predictor,
``info``'s facts — so ``convert``, ``eval --weights``, ``reconstruct`` and ``as_weights`` run it unchanged.

It reads each pixel alone, so it needs no windows, context, overlap or blending: its windowing is one
pixel (window 1, stride 1, pad 0), which :func:`hsrecon.pipeline.stream_reconstruct` runs as blocks of
whole rows, a few matrix products per block (``docs/benchmarks.md`` has its speed beside the network's).

A *routed* map (``routing`` in the metadata, a ``routes`` tensor of one matrix per route) also carries a
:class:`~hsrecon.lightroute.LightRouter`: before an image runs, its predictor reads the image's colours,
weighs the routes (kinds of light) and runs the posterior-weighted mean of their matrices, itself one map
(:meth:`PixelMapPredictor.for_image`). ``matrix`` is then the map for every light, which runs wherever
there is no image to read (``build``, ``inference_model``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from hsrecon.inputs import FedBySpace
from hsrecon.lightroute import FEATURE_NAMES, LightRouter, RoutedImage
from hsrecon.physics import WAVELENGTHS_NM
from hsrecon.pixelmap import RootPolynomialMap, apply_map, term_count, term_names
from hsrecon.weights_schema import PIXEL_MAP_KIND, check_pixel_map_fields, check_routing
from hsrecon.windows import Windowing

__all__ = [
    "MATRIX_KEY",
    "PIXEL_WINDOWING",
    "PixelMapMeta",
    "PixelMapPredictor",
    "PixelMapWeights",
    "check_pixel_map_tensors",
    "check_route_tensor",
    "checked_routes",
    "declared_kind",
]

MATRIX_KEY = "matrix"
ROUTES_KEY = "routes"
PIXEL_WINDOWING = Windowing(window=1, stride=1, pad=0, edge=0)
"""A per-pixel map's windowing: each pixel alone, no overlap, no reflection. ``stream_reconstruct`` runs
it as blocks of whole rows (``batch_size`` pixels each, default 2¹⁶)."""
_FORMAT = "hsrecon-weights"
_FORMAT_VERSION = 1


def declared_kind(text: str) -> object:
    """The ``kind`` the ``hsrecon`` metadata JSON ``text`` declares: None for a network's metadata (it has
    none) and for anything unreadable (the network's checks then say why)."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return data.get("kind") if isinstance(data, dict) else None


@dataclass(frozen=True)
class PixelMapMeta:
    """What a per-pixel map's weights file says about itself (the ``hsrecon`` metadata key, JSON)."""

    degree: int
    weights_version: str
    ridge: float = 0.0
    input_space: str = "ntire2020-clean"
    wavelengths_nm: tuple[float, ...] = WAVELENGTHS_NM
    provenance: dict = field(default_factory=dict)
    training: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    routing: dict = field(default_factory=dict)
    kind: str = PIXEL_MAP_KIND
    format: str = _FORMAT
    format_version: int = _FORMAT_VERSION

    @property
    def bands(self) -> int:
        return len(self.wavelengths_nm)

    def to_json(self) -> str:
        data = asdict(self)
        data["wavelengths_nm"] = list(self.wavelengths_nm)
        return json.dumps(data, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> PixelMapMeta:
        """Parse and check (:func:`hsrecon.weights_schema.check_pixel_map_fields`); ValueError naming the field."""
        data = json.loads(text)
        check_pixel_map_fields(data)
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown metadata keys {sorted(unknown)} for a {PIXEL_MAP_KIND} map")
        data["wavelengths_nm"] = tuple(float(w) for w in data["wavelengths_nm"])
        data["ridge"] = float(data["ridge"])
        return cls(**data)


def check_pixel_map_tensors(meta: PixelMapMeta, state: dict[str, torch.Tensor]) -> torch.Tensor:
    """The ``matrix`` tensor a map of ``meta`` needs (terms × bands; and for a routed map ``routes``, one
    such matrix per route, checked by :func:`check_route_tensor`): floating point, finite; ValueError
    naming what is wrong. Returns the matrix as float32 (the precision the map runs in)."""
    expected = {MATRIX_KEY, ROUTES_KEY} if meta.routing else {MATRIX_KEY}
    if set(state) != expected:
        holds = f"two tensors {MATRIX_KEY!r} and {ROUTES_KEY!r}" if meta.routing else f"one tensor {MATRIX_KEY!r}"
        routed = "routed " if meta.routing else ""
        raise ValueError(f"a {routed}{PIXEL_MAP_KIND} map holds {holds}, found {sorted(state)[:4]}")
    return _checked(MATRIX_KEY, state[MATRIX_KEY], (term_count(meta.degree), meta.bands), meta.degree)


def check_route_tensor(meta: PixelMapMeta, state: dict[str, torch.Tensor]) -> torch.Tensor | None:
    """A routed map's ``routes`` tensor (routes × terms × bands, float32), None for an unrouted map;
    ValueError naming what is wrong, a router whose features this hsrecon does not compute included."""
    if not meta.routing:
        return None
    return checked_routes(ROUTES_KEY, meta.routing, state[ROUTES_KEY], meta.degree, meta.bands)


def checked_routes(key: str, routing: dict, tensor: torch.Tensor, degree: int, bands: int) -> torch.Tensor:
    """The matrices a router (``routing``, checked) weighs: ``tensor`` (``key`` in its file) must hold one
    terms × bands matrix of a degree-``degree`` map per route, floating point and finite (float32 returned);
    ValueError naming what is wrong, a router whose features this hsrecon does not compute included. Shared by
    routed maps and networks whose prior is routed."""
    count, _ = check_routing(routing)
    if tuple(routing["features"]) != FEATURE_NAMES:
        raise ValueError("routing.features: not the features this hsrecon computes (hsrecon.lightroute)")
    return _checked(key, tensor, (count, term_count(degree), bands), degree)


def _checked(key: str, tensor: torch.Tensor, shape: tuple[int, ...], degree: int) -> torch.Tensor:
    if tuple(tensor.shape) != shape:
        raise ValueError(f"{key} has shape {tuple(tensor.shape)}, a degree-{degree} map needs {shape}")
    if not tensor.is_floating_point():
        raise ValueError(f"{key} holds {tensor.dtype}, not floating-point values")
    if not torch.isfinite(tensor).all():
        raise ValueError(f"{key} contains NaN or infinite values")
    return tensor.to(torch.float32)


class PixelMapPredictor:
    """Batches N×h×w×3 (float32, any h and w) → N×h×w×B: the map on every pixel, on one device, float32:
    numpy on the CPU (:func:`hsrecon.pixelmap.apply_map`), the torch module elsewhere (same numbers to
    float32 rounding, tested).

    A per-pixel map costs a few multiply-adds per band, so it always runs in float32 (``precision`` changes
    nothing) and the self-ensemble's flips cannot change a pixel (``tta`` changes nothing); ``on_note``
    says so once when either was asked for.
    """

    def __init__(
        self,
        module: RootPolynomialMap,
        *,
        device: str | torch.device = "cpu",
        precision: str = "fp32",
        tta: bool = False,
        on_note: Callable[[str], None] | None = None,
        router: LightRouter | None = None,
        routes: torch.Tensor | None = None,
    ) -> None:
        self.device = torch.device(device)
        self.module = module.to(self.device).eval()
        self._matrix = module.matrix.detach().cpu().numpy()
        self.router, self.routes = router, routes
        self.light: dict[str, float] = {}  # a routed image's posterior over the routes
        if on_note is not None and (precision != "fp32" or tta):
            asked = ", ".join(flag for flag, on in (("--precision " + precision, precision != "fp32"),
                                                     ("--tta", tta)) if on)  # fmt: skip
            on_note(f"a per-pixel map runs in float32 and is the same under flips: {asked} changes nothing")

    def for_image(self, pixels: np.ndarray, transform: Callable[[np.ndarray], np.ndarray]) -> PixelMapPredictor:
        """The predictor for one H×W×3 image: itself for an unrouted map; for a routed one, the map whose
        matrix is the routes' matrices weighted by the router's posterior on the image (``light`` holds it)."""
        if self.router is None or self.routes is None:
            return self
        read = RoutedImage.read(self.router, self.routes, pixels, transform)
        routed = PixelMapPredictor(RootPolynomialMap(read.matrix, self.module.degree), device=self.device)
        routed.light = read.light
        return routed

    @torch.inference_mode()
    def __call__(self, windows: np.ndarray) -> np.ndarray:
        windows = np.asarray(windows, dtype=np.float32)
        if self.device.type == "cpu":  # numpy in small chunks: no thread wakes for so little work
            return apply_map(windows, self._matrix, self.module.degree)
        x = torch.from_numpy(np.ascontiguousarray(windows)).to(self.device)
        return self.module.map_pixels(x).cpu().numpy()


@dataclass
class PixelMapWeights(FedBySpace):
    """A checked per-pixel root-polynomial map and what running it needs (the descriptor callers of
    :class:`~hsrecon.weights.Weights` use): ``path`` the file (None: made in memory), ``meta`` its
    metadata, ``matrix`` terms×B float32."""

    path: Path | None
    meta: PixelMapMeta
    matrix: torch.Tensor
    tuned: Windowing | None = None
    routes: torch.Tensor | None = None  # a routed map's matrices, one per route (check_route_tensor)

    kind = PIXEL_MAP_KIND
    per_pixel = True

    @classmethod
    def from_matrix(
        cls, matrix: np.ndarray | torch.Tensor, degree: int, routes: np.ndarray | None = None, **fields: object
    ) -> PixelMapWeights:
        """Weights of a fitted ``matrix`` in memory (checked as a file's would be); ``fields`` fill
        :class:`PixelMapMeta` (``weights_version`` defaults to ``in memory``); a routed map also gives
        ``routes`` (one matrix per route) and ``routing`` (:meth:`LightRouter.to_json`)."""
        meta = PixelMapMeta(degree=degree, **{"weights_version": "in memory", **fields})  # type: ignore[arg-type]
        check_pixel_map_fields(json.loads(meta.to_json()))
        state = {MATRIX_KEY: torch.as_tensor(np.asarray(matrix)).to(torch.float32)}
        if routes is not None:
            state[ROUTES_KEY] = torch.as_tensor(np.asarray(routes)).to(torch.float32)
        return cls(path=None, meta=meta, **cls.checked_tensors(meta, state))

    @staticmethod
    def checked_tensors(meta: PixelMapMeta, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor | None]:
        """``matrix`` and ``routes`` of a file's ``state``, checked against ``meta``; ValueError naming the fault."""
        return {"matrix": check_pixel_map_tensors(meta, state), "routes": check_route_tensor(meta, state)}

    @property
    def router(self) -> LightRouter | None:
        """A routed map's router (:mod:`hsrecon.lightroute`), None for a map for every image alike."""
        return LightRouter.from_json(self.meta.routing) if self.meta.routing else None

    @classmethod
    def from_module(cls, module: RootPolynomialMap, *, version: str = "in memory") -> PixelMapWeights:
        """Weights of a :class:`~hsrecon.pixelmap.RootPolynomialMap` in memory (31 bands at 400…700 nm)."""
        return cls.from_matrix(module.matrix.detach().cpu(), module.degree, weights_version=version)

    @property
    def name(self) -> str:
        """How outputs and reports name these weights: file name and version."""
        return f"{self.path.name if self.path else f'rpr{self.meta.degree}'} ({self.meta.weights_version})"

    @property
    def degree(self) -> int:
        return self.meta.degree

    @property
    def input_space(self) -> str:
        return self.meta.input_space

    @property
    def bands(self) -> int:
        return self.meta.bands

    @property
    def window(self) -> int:
        return PIXEL_WINDOWING.window

    @property
    def trained_window(self) -> int:
        """One pixel: the map never saw more than one."""
        return PIXEL_WINDOWING.window

    @property
    def size_multiple(self) -> int:
        return 1

    @property
    def state_dict(self) -> dict[str, torch.Tensor]:
        """The tensors of its file (as :attr:`Weights.state_dict <hsrecon.weights.Weights>`)."""
        return {MATRIX_KEY: self.matrix, **({ROUTES_KEY: self.routes} if self.routes is not None else {})}

    def windowing(self, window: int | None = None, stride: int | None = None, pad: int | None = None) -> Windowing:
        """Always :data:`PIXEL_WINDOWING`: the map reads each pixel alone, so any other window, stride or
        pad would only cost time; ValueError naming the parameter for one given."""
        for name, value, only in (("window", window, 1), ("stride", stride, 1), ("pad", pad, 0)):
            if value is not None and value != only:
                raise ValueError(f"{name} {value}: per-pixel weights read each pixel alone, so {name} is {only}")
        return PIXEL_WINDOWING

    @property
    def projects_by_default(self) -> bool:
        """A map's output is not projected by default: on held-out sets it changes MRAE by under 1%."""
        return False

    def build(self, *, device: str | torch.device = "cpu") -> RootPolynomialMap:
        """The map as a torch module (N×3×H×W → N×B×H×W), on ``device``."""
        return RootPolynomialMap(self.matrix, self.degree).eval().to(device)

    def inference_model(self, window: int | None = None) -> RootPolynomialMap:
        """The module itself: there is nothing to fold or freeze."""
        self.windowing(window)
        return self.build()

    def predictor(
        self,
        *,
        device: str | torch.device = "cpu",
        precision: str = "fp32",
        tta: bool = False,
        window: int | None = None,
        on_note: Callable[[str], None] | None = None,
    ) -> PixelMapPredictor:
        """Batches of pixels → spectra on ``device`` (:class:`PixelMapPredictor`)."""
        self.windowing(window)
        return PixelMapPredictor(
            self.build(), device=device, precision=precision, tta=tta, on_note=on_note,
            router=self.router, routes=self.routes,
        )  # fmt: skip

    def _routing_facts(self) -> dict:
        router = self.router
        if router is None:
            return {}
        return {"routes": f"{', '.join(router.routes)}: weighed per image by its colours (hsrecon.lightroute)"}

    def facts(self) -> dict:
        """What ``hsrecon info`` shows of a per-pixel map (beside the version, device and bundled names)."""
        terms, bands = term_count(self.degree), self.bands
        return {
            "model": f"root-polynomial regression, degree {self.degree} (Finlayson, Mackiewicz & Hurlbert 2015), "
            "each pixel alone",
            "kind": self.kind,
            "degree": self.degree,
            "terms": ", ".join(term_names(self.degree)),
            "matrix": f"{terms}×{bands} ({terms * bands} values)",
            "ridge": self.meta.ridge,
            "gflop_per_megapixel": round(2 * terms * bands * 1e6 / 1e9, 3),
            "windowing": PIXEL_WINDOWING.facts(),
            **self._routing_facts(),
            "input_space": self.input_space,
            "bands": bands,
            "wavelengths_nm": [self.meta.wavelengths_nm[0], self.meta.wavelengths_nm[-1]],
            "weights_path": str(self.path),
            "weights_version": self.meta.weights_version,
            "provenance": self.meta.provenance,
            "training": self.meta.training,
        }
