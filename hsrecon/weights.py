"""Weights: safetensors files with metadata, the bundled pretrained weights, and safe, checked loading.

Weights are data with metadata (as in torchvision's ``_api.py``): an hsrecon weights file is a safetensors
file whose metadata key ``hsrecon`` holds one JSON object (:class:`WeightsMeta`): the model config, the
wavelengths, the window size the network was trained on, the input space it expects, provenance and
version. Loading checks all of it against the tensors and fails with one sentence naming the file and
the mismatch (:class:`WeightsError`). Pickles are never loaded.

Loaded weights are one object, :class:`Weights` (like spandrel's model descriptor): everything a caller
needs to run them is asked of it, never worked out again elsewhere: the window they were trained on and
the stride to use (:meth:`Weights.windowing`), how files reach their input space
(:meth:`Weights.transform`), and the one route to the fast inference form (:meth:`Weights.predictor`).

A file whose metadata says ``"kind": "root-polynomial"`` is a per-pixel map, not a network: the same loader
checks it against its own schema and returns a :class:`~hsrecon.pixelweights.PixelMapWeights`, which answers
the same questions (:func:`load_weights`, :func:`as_weights` and :func:`describe` take either).

The bundled weights (the authors' NTIRE 2020 clean-track model, converted) ship inside the package and
are found with ``importlib.resources`` after a plain ``pip install .``; in a source checkout they are
read from the repository's ``weights/`` folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save as safetensors_bytes
from torch import nn

from hsrecon import __version__
from hsrecon.inference import TorchPredictor, prepare_model
from hsrecon.inputs import FedBySpace
from hsrecon.lightroute import LightRouter
from hsrecon.model import LWRDAN, LWRDANConfig, count_parameters, count_trainable, flops_per_pixel
from hsrecon.physics import WAVELENGTHS_NM
from hsrecon.pixelmap import RootPolynomialMap
from hsrecon.pixelweights import PixelMapMeta, PixelMapWeights, checked_routes, declared_kind
from hsrecon.temps import write_atomic
from hsrecon.weights_schema import MAX_WINDOW, check_meta_fields, check_parameter_budget, check_safetensors_header
from hsrecon.windows import DEFAULT_PAD, Windowing, default_stride

__all__ = [
    "BUNDLED",
    "DEFAULT_WEIGHTS",
    "PRIOR_ROUTES_KEY",
    "WAVELENGTHS_NM",
    "BundledWeights",
    "Carried",
    "Weights",
    "WeightsError",
    "WeightsMeta",
    "as_weights",
    "bundled_path",
    "describe",
    "load_model",
    "load_weights",
    "resolve_weights",
    "save_weights",
    "sha256_of",
]

FORMAT = "hsrecon-weights"
PRIOR_ROUTES_KEY = "prior.routes"
"""A routed network's file: its prior's matrix per route (routes × terms × bands), beside the network's tensors."""
FORMAT_VERSION = 1
_MAX_HEADER_BYTES = 100 * 1024 * 1024


class WeightsError(ValueError):
    """A weights file that cannot be used; the message is one line naming the file and the problem."""


@dataclass(frozen=True)
class WeightsMeta:
    """What a weights file says about itself; stored as JSON in the safetensors metadata."""

    config: LWRDANConfig
    window_size: int
    input_space: str
    weights_version: str
    wavelengths_nm: tuple[float, ...] = WAVELENGTHS_NM
    num_params: int = 0
    trainable_params: int = 0
    provenance: dict = field(default_factory=dict)
    training: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    routing: dict = field(default_factory=dict)  # a routed prior's router (LightRouter.to_json); {}: none
    format: str = FORMAT
    format_version: int = FORMAT_VERSION

    def to_json(self) -> str:
        data = asdict(self)
        data["config"] = self.config.to_dict()
        data["wavelengths_nm"] = list(self.wavelengths_nm)
        if not self.routing:
            data.pop("routing")  # an unrouted network's file reads as before routing existed
        return json.dumps(data, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> WeightsMeta:
        """Parse and check the metadata: every field's type and range (:mod:`hsrecon.weights_schema`)
        first, then the network's size on the meta device, so a hostile file builds nothing."""
        data = json.loads(text)
        check_meta_fields(data)
        data["config"] = LWRDANConfig.from_dict(data["config"])
        check_parameter_budget(data["config"])
        data["wavelengths_nm"] = tuple(float(w) for w in data["wavelengths_nm"])
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown metadata keys {sorted(unknown)}")
        return cls(**data)


@dataclass(frozen=True)
class BundledWeights:
    """A weights file shipped with hsrecon, with the SHA-256 it must have (checked on every load), and the
    windowing measured best for it (``benchmarks/bench_windows.py``, ``docs/benchmarks.md``)."""

    name: str
    filename: str
    sha256: str
    summary: str
    windowing: Windowing | None = None
    # Window size → whether the U-net's output there is the constant map of its head's bias to 1e-5 of the
    # output (True) or depends on the input (False): a fact of the file, proven by tests/test_inference.py,
    # so a run of these weights skips the probes (hsrecon.inference.freeze_proven_branch; start-up).
    unet_constant: dict[int, bool] = field(default_factory=dict)
    # Whether convert and eval project this file's clean-rendering output by default (--plausible): a measured
    # fact of the file, not of every network. The authors' weights gain (held-out synthetic sets: MRAE -3 to
    # -9%, SAM within 0.3 deg); networks fine-tuned on recipe 3 lose (MRAE +2 to +6%, SAM +0.7 to +0.9 deg) and
    # per-pixel maps gain nothing (docs/input-spaces.md), so the default is per file.
    projects_by_default: bool = False


AUTHORS_WINDOWING = Windowing(window=192, stride=172, pad=16, edge=7, least_pad=8)
"""The authors' network's windows (and clean-v3's, the same network): its U-net is a constant and its coordinates
barely matter, so larger windows give the same cube. Pads of 8 and 12 serve the border as 16 does
(docs/benchmarks.md, "Small images"): an image that fewer windows cover with one of them gets it."""

CAMERA_WINDOWING = Windowing(window=64, stride=32, pad=32, edge=0)
"""The camera models' windows: a working U-net with global attention, so the output depends on the window and
the trained size stays; half-window overlap, the image mirrored by half a window."""

BUNDLED: dict[str, BundledWeights] = {
    "ntire2020-clean": BundledWeights(
        name="ntire2020-clean",
        filename="lwrdan_ntire2020_clean.safetensors",
        sha256="43490af30f802939b824328302e34669c63d87e1c95a6f730b20bd8d2ee7a762",
        summary="the paper's authors' model, trained on NTIRE 2020 clean-track data (MIT licence)",
        windowing=AUTHORS_WINDOWING,
        unet_constant={64: True, 192: True},  # deviations 3.5e-7 and 9.3e-6 (< 1e-5)
        projects_by_default=True,
    ),
    "clean-v3": BundledWeights(
        name="clean-v3",
        filename="lwrdan_clean_v3.safetensors",
        sha256="1713ac9fba8d553d6dc2a63deeca5b6016605c4442e4f9f7246ab1528a78cd03",
        summary="the default, for clean renderings: the authors' network (a quarter of the output) over per-pixel "
        "root-polynomial maps fitted on training data v3 and on recipe 1; beats the authors' weights on every "
        "held-out synthetic set in MRAE and spectral angle (weights/README.md)",
        # The authors' network with its last convolution scaled (hsrecon.model.over_prior): the same U-net
        # constant, windows and border; the map is per pixel, so windows change nothing of it.
        windowing=AUTHORS_WINDOWING,
        unet_constant={64: True, 192: True},
    ),
    "clean-v3-ft": BundledWeights(
        name="clean-v3-ft",
        filename="lwrdan_clean_v3_ft.safetensors",
        sha256="e6a636cb40ad020801395e5ad2807f9e8bc09081e0b672a0b2390b233f7e898a",
        summary="for clean renderings of materials and layouts unlike NTIRE's: clean-v3 fine-tuned on training "
        "data v3 for MRAE and spectral angle; beats the per-pixel map in both there, not on NTIRE-style scenes "
        "(weights/README.md)",
        unet_constant={64: False},  # deviation 0.056: fine-tuning woke its U-net, so it runs its trained window
    ),
    "clean-v3-auto": BundledWeights(
        name="clean-v3-auto",
        filename="lwrdan_clean_v3_auto.safetensors",
        sha256="1c07a37ad1c12d81d122cc339da8e507ad0e2e3df6bd40e009469460b8a120e7",
        summary="for clean renderings of scenes lit by daylight or tungsten: clean-v3's network over maps chosen per "
        "image by the light it shows, fine-tuned on daylight and tungsten scenes; worse under other lamps "
        "(weights/README.md)",
        unet_constant={64: False},  # deviation 6.2e-5: just awake, so it runs its trained window
    ),
    "camera": BundledWeights(
        name="camera",
        filename="lwrdan_camera.safetensors",
        sha256="1070aacb3934514c5c355e1ed04de1297c624de466828c2277a0839cae63cd1d",
        summary="for camera photos (sRGB JPEG), lowest relative error (MRAE) under any light; trained by hsrecon "
        "on its synthetic set (weights/README.md)",
        windowing=CAMERA_WINDOWING,
        unet_constant={64: False},  # deviation 0.25
    ),
    "camera-l2": BundledWeights(
        name="camera-l2",
        filename="lwrdan_camera_l2.safetensors",
        sha256="c50d31ac4e4d8bd9d88773476fab323969373735a74c90c603d3e7348e0abcdd",
        summary="for camera photos (sRGB JPEG), lower absolute error (RMSE) than camera and better on daylight; "
        "trained by hsrecon on its synthetic set (weights/README.md)",
        windowing=CAMERA_WINDOWING,
        unet_constant={64: False},  # deviation 0.66
    ),
    "camera-v3": BundledWeights(
        name="camera-v3",
        filename="lwrdan_camera_v3.safetensors",
        sha256="22965257035612cb6daf3fd8b29e77ab3281028545ad87975a9bd82cab8fbb99",
        summary="for camera photos (sRGB JPEG): camera-l2 fine-tuned on training data v3's photos for MRAE and "
        "spectral angle; the best bundled model on photos of unseen cameras and materials (weights/README.md)",
        windowing=CAMERA_WINDOWING,
        unet_constant={64: False},  # deviation 0.30
    ),
    "rpr2-clean-provisional": BundledWeights(
        name="rpr2-clean-provisional",
        filename="rpr2_clean_provisional.safetensors",
        sha256="7bfdd4828a3b1af9463160e95e64a184f3690e5124875996c1df9fe178761a77",
        summary="provisional: a per-pixel root-polynomial map (degree 2) for clean renderings, fitted on a small "
        "synthetic set; beats the authors' weights on held-out synthetic scenes, ~13x faster (weights/README.md)",
    ),
    **{
        f"rpr2-{kind}": BundledWeights(
            name=f"rpr2-{kind}",
            filename=f"rpr2_{kind}.safetensors",
            sha256=sha256,
            summary=f"a per-pixel root-polynomial map (degree 2) for clean renderings of scenes lit by {light}: use it "
            "when the light is known (weights/README.md)",
        )
        for kind, light, sha256 in (
            ("daylight", "daylight", "4d50ead35e108fb0b3a987fcf2cae8a0c08e83dba825a1fed57e7783eb8d0d00"),
            (
                "incandescent",
                "incandescent light (tungsten, halogen, CIE A)",
                "4b95b0264fe8cb6c5518751ab70e8beec05efeda45d7bb688bfd76a9d6f5db63",
            ),
            ("fluorescent", "fluorescent tubes", "fe22f8008d63bca6c42cee1610a0e61aadd7962aa0249c2c54435067265c3200"),
            ("led", "white LEDs", "567c488b62366a87d44aedac916b08acc291a029c88547d609494f1d9c631323"),
        )
    },
    "rpr2-auto": BundledWeights(
        name="rpr2-auto",
        filename="rpr2_auto.safetensors",
        sha256="51ad8a340fe658370362d9b857ec6dcc894d9ed7839ec8b428c00e9383e5b7c7",
        summary="a per-pixel root-polynomial map (degree 2) for clean renderings that reads the light from each "
        "image: its daylight and incandescent maps weighed by the image's colours (weights/README.md)",
    ),
}
DEFAULT_WEIGHTS = "clean-v3"


def _source_weights_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "weights"


def bundled_path(name: str) -> Path:
    """Where the bundled weights ``name`` are: inside the installed package, or the checkout's weights/."""
    entry = BUNDLED[name]
    packaged = resources.files("hsrecon").joinpath("_weights", entry.filename)
    if packaged.is_file():
        return Path(str(packaged))
    return _source_weights_dir() / entry.filename


def resolve_weights(spec: str | os.PathLike | None = None) -> Path:
    """A weights file from a bundled name (``ntire2020-clean``), a path, or ``None`` for the default."""
    if spec is None:
        spec = DEFAULT_WEIGHTS
    if isinstance(spec, str) and spec in BUNDLED:
        return bundled_path(spec)
    return Path(spec)


def sha256_of(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _read_header(path: Path) -> dict:
    """Parse the safetensors header by hand, so a truncated or foreign file gets a precise sentence."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        prefix = handle.read(8)
        if len(prefix) < 8:
            raise WeightsError(f"{path}: not a safetensors file ({size} bytes)")
        (header_len,) = struct.unpack("<Q", prefix)
        if header_len == 0 or header_len > min(size - 8, _MAX_HEADER_BYTES):
            raise WeightsError(f"{path}: not a safetensors file{_format_hint(prefix)}")
        raw = handle.read(header_len)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise WeightsError(f"{path}: not a safetensors file (unreadable header)") from None
    try:
        data_end = check_safetensors_header(header)
    except ValueError as error:
        raise WeightsError(f"{path}: not a valid safetensors file ({error})") from None
    if 8 + header_len + data_end > size:
        raise WeightsError(f"{path}: truncated (needs {8 + header_len + data_end} bytes, has {size})")
    return header


def _format_hint(prefix: bytes) -> str:
    """Name the format a misnamed file probably is, with the fix."""
    if prefix.startswith(b"\x89HDF"):
        return " but HDF5 (a Keras model? convert it with `hsrecon import-keras FILE -o OUT.safetensors`)"
    if prefix.startswith(b"PK") or prefix[:1] == b"\x80":
        return " but a pickle/PyTorch checkpoint, which hsrecon never loads (see docs/security.md)"
    return ""


CARRIED_ATTRIBUTE = "hsrecon_weights"
"""The attribute of a network built from weights (:meth:`Weights.build`) holding its :class:`Carried`."""


@dataclass(frozen=True)
class Carried:
    """What a network built from weights keeps of them (not its tensors, which it holds itself and may
    change): the metadata (training window, input space), the measured windowing, the file."""

    meta: WeightsMeta
    tuned: Windowing | None
    path: Path | None
    routes: torch.Tensor | None = None


@dataclass
class Weights(FedBySpace):
    """A checked set of weights and what running them needs: window, input space, inference form.

    ``path`` is the file they came from (None for weights made in memory, :meth:`from_model`); ``tuned`` the
    windowing measured for exactly these weights (the bundled ones), else None; ``digest`` the file's SHA-256
    (None in memory), which names facts proven once for a file (:attr:`BundledWeights.unet_constant`).
    A network whose prior is routed (``meta.routing``) also holds ``routes``, its prior's matrix per kind of
    light; ``state_dict``'s prior matrix is then the one for any light, which runs where no image is read.
    """

    path: Path | None
    meta: WeightsMeta
    state_dict: dict[str, torch.Tensor]
    tuned: Windowing | None = None
    digest: str | None = None
    routes: torch.Tensor | None = None

    @classmethod
    def from_model(
        cls,
        model: LWRDAN,
        *,
        window_size: int | None = None,
        input_space: str | None = None,
        version: str | None = None,
    ) -> Weights:
        """Weights of a network in memory, with its current tensors.

        A network built from weights (:meth:`build`, :func:`load_model`) carries what they said of
        themselves (:class:`Carried`): training window, measured windowing, input space, file; the
        arguments given override it (another ``window_size`` drops the measured windowing). A network that
        carries nothing (``LWRDAN(config)``, a training run's) does not know the window it was trained on,
        so ``window_size`` must be given: guessing would run the wrong windows without a word
        (``ValueError``). Its input space defaults to ``ntire2020-clean`` (the paper's).
        """
        carried: Carried | None = getattr(model, CARRIED_ATTRIBUTE, None)
        if carried is None and window_size is None:
            raise ValueError(
                "this LWRDAN carries no weights metadata, so the window it was trained on is unknown: give the "
                "window (window=… to reconstruct, window_size=… to Weights.from_model), or load the network with "
                "hsrecon.load_weights / load_model, which carry it"
            )
        base = carried.meta if carried is not None else None
        meta = make_meta(
            model,
            window_size=window_size if window_size is not None else base.window_size,
            input_space=input_space or (base.input_space if base else "ntire2020-clean"),
            weights_version=version or (base.weights_version if base else "in memory"),
            **({"provenance": base.provenance, "training": base.training, "metrics": base.metrics,
                "routing": base.routing} if base else {}),
        )  # fmt: skip
        keeps_windowing = carried is not None and meta.window_size == base.window_size
        return cls(
            path=carried.path if carried is not None else None,
            meta=meta,
            state_dict=model.state_dict(),
            tuned=carried.tuned if keeps_windowing else None,
            routes=carried.routes if carried is not None else None,
        )

    @property
    def name(self) -> str:
        """How outputs and reports name these weights: file name and version."""
        return f"{self.path.name if self.path else 'LWRDAN'} ({self.meta.weights_version})"

    @property
    def window(self) -> int:
        """The window these weights run in by default: the measured one, else the one they were trained on."""
        return self.windowing().window

    @property
    def trained_window(self) -> int:
        """The window size the network was trained on (its coordinate channels spanned it)."""
        return self.meta.window_size

    @property
    def input_space(self) -> str:
        """The input space the network learned (``hsrecon.inputs``)."""
        return self.meta.input_space

    @property
    def bands(self) -> int:
        return self.meta.config.out_bands

    @property
    def size_multiple(self) -> int:
        """Window sizes must be multiples of this (the U-net halves the window twice)."""
        return self.meta.config.size_multiple

    def build(self, *, device: str | torch.device = "cpu") -> LWRDAN:
        """The model with these weights as loaded, in eval mode (for training, inspection, export). It
        carries what the weights say of themselves (:class:`Carried`), so handing the bare network to
        :func:`~hsrecon.pipeline.reconstruct` runs it in its own windows, not in guessed ones."""
        model = LWRDAN(self.meta.config)
        model.load_state_dict(self.state_dict, strict=True)
        setattr(model, CARRIED_ATTRIBUTE, Carried(meta=self.meta, tuned=self.tuned, path=self.path, routes=self.routes))
        return model.eval().to(device)

    def windowing(self, window: int | None = None, stride: int | None = None, pad: int | None = None) -> Windowing:
        """How to run these weights over an image: their measured :class:`~hsrecon.windows.Windowing`
        (``tuned``), else their training window, half-window stride and :data:`~hsrecon.windows.DEFAULT_PAD`;
        ``window``, ``stride``, ``pad`` override it (another window gets half its size as stride unless
        given). The measured windowing's ``least_pad`` (:meth:`Windowing.for_image`) holds while the window,
        stride and pad are its own and the pad is not given. ValueError naming the parameter first
        (``window 30: must be …``) for one that cannot work; a value given is checked as given (0 is an error,
        not the default). A window (and a pad) is at most
        :data:`MAX_WINDOW`: an image is padded to at least one window and a band of windows is held across
        its width, so ``window 100000`` would ask for 120 GB.
        """
        base = self.tuned or Windowing(self.trained_window, default_stride(self.trained_window), DEFAULT_PAD)
        window = base.window if window is None else window
        if window % self.size_multiple or not self.size_multiple <= window <= MAX_WINDOW:
            raise ValueError(
                f"window {window}: must be a multiple of {self.size_multiple} from {self.size_multiple} to {MAX_WINDOW}"
            )
        if stride is None:
            stride = base.stride if window == base.window else default_stride(window)
        if not 0 < stride <= window:
            raise ValueError(f"stride {stride}: must be between 1 and the window ({window})")
        given_pad, pad = pad, base.pad if pad is None else pad
        if not 0 <= pad <= MAX_WINDOW:
            raise ValueError(f"pad {pad}: must be from 0 to {MAX_WINDOW}")
        ramp = min(window - stride, window // 2)  # the edge must leave a ramp of at least one pixel
        edge = max(0, min(base.edge, (ramp - 1) // 2))
        measured = (window, stride, pad) == (base.window, base.stride, base.pad) and given_pad is None
        return Windowing(window, stride, pad, edge=edge, least_pad=base.least_pad if measured else None)

    def inference_model(self, window: int | None = None) -> nn.Module:
        """The fast form for ``window`` (default: the training window), same outputs to float rounding
        (:func:`hsrecon.inference.prepare_model`: BN folded, a provably constant branch frozen). Whether the
        branch is constant is probed, unless the file's digest says it was proven (bundled weights)."""
        window = self.windowing(window).window
        return prepare_model(self.build(), window=window, proven=self.unet_constant(window))

    def unet_constant(self, window: int) -> bool | None:
        """Whether the U-net is proven constant at ``window`` for this very file (None: not known, probe)."""
        entry = self.bundled_entry
        return None if entry is None else entry.unet_constant.get(window)

    @property
    def projects_by_default(self) -> bool:
        """Whether its clean-rendering output is projected by default (:attr:`BundledWeights.projects_by_default`:
        measured per file; other files stay raw unless asked)."""
        entry = self.bundled_entry
        return entry is not None and entry.projects_by_default

    @property
    def bundled_entry(self) -> BundledWeights | None:
        """The bundled file these weights are, byte for byte (by SHA-256), else None."""
        return next((entry for entry in BUNDLED.values() if entry.sha256 == self.digest), None)

    def predictor(
        self,
        *,
        device: str | torch.device = "cpu",
        precision: str = "fp32",
        tta: bool = False,
        window: int | None = None,
        on_note: Callable[[str], None] | None = None,
    ) -> TorchPredictor:
        """Batches of windows → cubes on ``device``: the inference form for ``window`` in a
        :class:`~hsrecon.inference.TorchPredictor` (precision, self-ensemble, out-of-memory halving)."""
        model = self.inference_model(window)
        return TorchPredictor(
            model, device=device, precision=precision, tta=tta, on_note=on_note, router=self.router, routes=self.routes
        )

    @property
    def router(self) -> LightRouter | None:
        """A routed prior's router (:mod:`hsrecon.lightroute`), None for a prior the same for every image."""
        return LightRouter.from_json(self.meta.routing) if self.meta.routing else None

    @property
    def file_tensors(self) -> dict[str, torch.Tensor]:
        """Every tensor its file holds: the network's and, for a routed prior, :data:`PRIOR_ROUTES_KEY`."""
        return self.state_dict | ({PRIOR_ROUTES_KEY: self.routes} if self.routes is not None else {})


def as_weights(
    source: Weights | PixelMapWeights | LWRDAN | RootPolynomialMap | str | os.PathLike | None = None,
    *,
    window: int | None = None,
) -> Weights | PixelMapWeights:
    """Weights from what a caller holds: loaded weights, a network (:meth:`Weights.from_model`: one built
    from weights carries them; for one that carries nothing, ``window``, the window the caller runs it in,
    is taken as its training window, and without it ValueError), a per-pixel map
    (:meth:`PixelMapWeights.from_module`), or a bundled name or path to load (None: the default weights)."""
    if isinstance(source, Weights | PixelMapWeights):
        return source
    if isinstance(source, LWRDAN):
        carried = getattr(source, CARRIED_ATTRIBUTE, None) is not None
        return Weights.from_model(source, window_size=None if carried else window)
    if isinstance(source, RootPolynomialMap):
        return PixelMapWeights.from_module(source)
    return load_weights(source)


def load_weights(spec: str | os.PathLike | None = None) -> Weights | PixelMapWeights:
    """Read and check a weights file (a bundled name, a path, or ``None`` for the default weights): a
    network's (:class:`Weights`) or a per-pixel map's (:class:`~hsrecon.pixelweights.PixelMapWeights`), as
    its metadata's ``kind`` says."""
    path = resolve_weights(spec)
    if path.is_dir():
        raise WeightsError(f"{path}: a folder, not a weights file (give the .safetensors file in it)")
    if not path.is_file():
        looks_like_a_name = isinstance(spec, str) and not path.suffix and os.sep not in spec
        hint = f" or bundled name (bundled: {', '.join(BUNDLED)})" if looks_like_a_name else ""
        raise WeightsError(f"{path}: no such weights file{hint}")
    header = _read_header(path)
    meta = _parse_meta(path, header.get("__metadata__") or {})
    digest = sha256_of(path)
    if spec is None or (isinstance(spec, str) and spec in BUNDLED):
        _check_bundled_digest(path, digest, BUNDLED[spec or DEFAULT_WEIGHTS])
    try:
        with safe_open(str(path), framework="pt") as handle:
            state = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118 - safe_open is not a dict
    except Exception as error:  # safetensors raises its own untyped errors
        raise WeightsError(f"{path}: unreadable safetensors data ({error})") from None
    if isinstance(meta, PixelMapMeta):
        return _pixel_map(path, meta, state)
    routes = _prior_routes(path, meta, state)
    _check_tensors(path, meta, state)
    bundled = next((entry for entry in BUNDLED.values() if entry.sha256 == digest), None)
    tuned = bundled.windowing if bundled else None
    return Weights(path=path, meta=meta, state_dict=state, tuned=tuned, digest=digest, routes=routes)


def _prior_routes(path: Path, meta: WeightsMeta, state: dict[str, torch.Tensor]) -> torch.Tensor | None:
    """A routed network's prior matrices, taken out of ``state`` (the network's tensors stay) and checked
    against its routing; None for a network without routes (whose file may not hold them)."""
    if not meta.routing:
        return None
    if PRIOR_ROUTES_KEY not in state:
        raise WeightsError(f"{path}: routed weights without their {PRIOR_ROUTES_KEY!r} tensor")
    try:
        return checked_routes(
            PRIOR_ROUTES_KEY, meta.routing, state.pop(PRIOR_ROUTES_KEY), meta.config.prior_degree, meta.config.out_bands
        )
    except ValueError as error:
        raise WeightsError(f"{path}: {error}") from None


def _parse_meta(path: Path, metadata: dict) -> WeightsMeta | PixelMapMeta:
    if "hsrecon" not in metadata:
        raise WeightsError(f"{path}: safetensors without hsrecon metadata, so not hsrecon weights")
    kind = declared_kind(metadata["hsrecon"])
    if kind not in (None, PixelMapMeta.kind):
        shown = repr(kind) if len(repr(kind)) <= 40 else repr(kind)[:37] + "..."
        raise WeightsError(
            f"{path}: weights of kind {shown}, unknown to this hsrecon (it reads LWRDAN and {PixelMapMeta.kind})"
        )
    try:
        meta = (WeightsMeta if kind is None else PixelMapMeta).from_json(metadata["hsrecon"])
    except (ValueError, KeyError, TypeError, RecursionError) as error:
        raise WeightsError(f"{path}: invalid hsrecon metadata ({error})") from None
    if meta.format != FORMAT or meta.format_version > FORMAT_VERSION:
        raise WeightsError(f"{path}: weights format {meta.format} v{meta.format_version} is newer than this hsrecon")
    if isinstance(meta, PixelMapMeta):
        return meta
    if len(meta.wavelengths_nm) != meta.config.out_bands:
        raise WeightsError(
            f"{path}: metadata lists {len(meta.wavelengths_nm)} wavelengths for {meta.config.out_bands} bands"
        )
    return meta


def _pixel_map(path: Path, meta: PixelMapMeta, state: dict[str, torch.Tensor]) -> PixelMapWeights:
    """A per-pixel map's weights, its one tensor checked against its metadata."""
    try:
        tensors = PixelMapWeights.checked_tensors(meta, state)
    except ValueError as error:
        raise WeightsError(f"{path}: {error}") from None
    return PixelMapWeights(path=path, meta=meta, **tensors)


def _check_bundled_digest(path: Path, digest: str, entry: BundledWeights) -> None:
    if digest != entry.sha256:
        raise WeightsError(f"{path}: bundled weights damaged (SHA-256 {digest[:12]}…, expected {entry.sha256[:12]}…)")


def _check_tensors(path: Path, meta: WeightsMeta, state: dict[str, torch.Tensor]) -> None:
    """The tensors must be exactly those of an LWRDAN with the metadata's config, finite, counted right."""
    with torch.device("meta"):  # shapes only: nothing allocated
        expected = LWRDAN(meta.config).state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise WeightsError(
            f"{path}: tensors do not match an LWRDAN with the file's config "
            f"({len(missing)} missing, e.g. {missing[:2]}; {len(unexpected)} unexpected, e.g. {unexpected[:2]})"
        )
    for key, tensor in expected.items():
        if tuple(state[key].shape) != tuple(tensor.shape):
            raise WeightsError(f"{path}: {key} has shape {tuple(state[key].shape)}, expected {tuple(tensor.shape)}")
        if state[key].is_floating_point() and not torch.isfinite(state[key]).all():
            raise WeightsError(f"{path}: {key} contains NaN or infinite values")
    counted = sum(t.numel() for k, t in state.items() if not k.endswith("num_batches_tracked"))
    if counted != meta.num_params:
        raise WeightsError(f"{path}: {counted} values, but the metadata says {meta.num_params}")


def load_model(spec: str | os.PathLike | None = None, *, device: str | torch.device = "cpu") -> LWRDAN:
    """The model with the given (default: bundled) weights, in eval mode, on ``device``."""
    return load_weights(spec).build(device=device)


def describe(weights: Weights | PixelMapWeights, device: str | torch.device) -> dict:
    """What ``hsrecon info`` shows: the model, these weights and their provenance, the device, the bundled set."""
    if isinstance(weights, PixelMapWeights):
        bundled = {name: entry.summary for name, entry in BUNDLED.items()}
        return {"hsrecon_version": __version__, **weights.facts(), "device": str(device), "bundled_weights": bundled}
    model = weights.build()
    meta = weights.meta
    return {
        "hsrecon_version": __version__,
        "model": "LWRDAN",
        "config": meta.config.to_dict(),
        "parameters": count_parameters(model),
        "trainable_parameters": count_trainable(model),
        "gflop_per_megapixel": round(flops_per_pixel(model, weights.trained_window) * 1e6 / 1e9, 2),
        **({"prior_routes": _routes_fact(weights.router)} if weights.router is not None else {}),
        "window_size": weights.trained_window,
        "windowing": weights.windowing().facts(),
        "size_multiple": weights.size_multiple,
        "input_space": weights.input_space,
        "bands": len(meta.wavelengths_nm),
        "wavelengths_nm": [meta.wavelengths_nm[0], meta.wavelengths_nm[-1]],
        "weights_path": str(weights.path),
        "weights_version": meta.weights_version,
        "provenance": meta.provenance,
        "training": meta.training,
        "device": str(device),
        "bundled_weights": {name: entry.summary for name, entry in BUNDLED.items()},
    }


def _routes_fact(router: LightRouter) -> str:
    return f"{', '.join(router.routes)}: the prior's maps weighed per image by its colours (hsrecon.lightroute)"


def make_meta(model: LWRDAN, **fields: object) -> WeightsMeta:
    """Metadata for ``model`` with its parameter counts filled in from the model itself."""
    return WeightsMeta(
        config=model.config,
        num_params=count_parameters(model),
        trainable_params=count_trainable(model),
        **fields,  # type: ignore[arg-type]
    )


def save_weights(path: str | os.PathLike, state_dict: dict[str, torch.Tensor], meta: WeightsMeta) -> Path:
    """Write a weights file atomically (temporary file, then rename), so no half-written file remains.

    The output depends only on the tensors and the metadata (no timestamps), so the same inputs give the
    same bytes.
    """
    path = Path(path)
    tensors = {key: value.detach().cpu().contiguous() for key, value in state_dict.items()}
    metadata = {"hsrecon": meta.to_json()}  # one key: safetensors does not keep key order
    # Serialised here and written by hsrecon (not by safetensors into the path): the file gets the umask's
    # mode like every output, and a full disk is an OSError with its errno, not a SafetensorError.
    return write_atomic(path, safetensors_bytes(tensors, metadata=metadata))
