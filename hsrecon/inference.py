"""Inference: the fast form of a trained LWRDAN, and the predictor that runs it on batches of windows.

The inference form (:func:`prepare_model`) computes what the model as loaded computes, to float rounding,
in three checked steps:

1. **Fold BatchNorm** into the preceding convolutions (:func:`hsrecon.model.fold_batchnorm`, ≤ 1e-5).
2. **Freeze a branch whose output does not depend on the input.** With the published weights the
   attention U-net's output is, to float32 precision, the same map for every input (its last conv has
   weights ~1e-32 on 15 of 16 channels and the stored BatchNorm statistics zero the rest; see
   ``docs/model.md``). :func:`freeze_constant_branch` runs the branch on a fixed set of probe windows
   (black, white, saturated primaries, uniform noise, dark noise, gradients); only if the *final* output
   with the branch replaced by its mean map stays within ``tolerance`` × the output's magnitude on every
   probe is it frozen. Retrained weights whose U-net works keep it: the check fails and nothing changes.
   The frozen map is kept per window size and the real branch still runs for any other size.
3. **Channels-last** memory format (oneDNN's convolutions prefer it on CPU).

:class:`TorchPredictor` runs a module on batches of windows on one device (precision, the 8-fold
self-ensemble, halving the batch when the device runs out of memory). The one way to both is
:meth:`hsrecon.weights.Weights.predictor`. ``docs/benchmarks.md`` has the speed of each step;
``tests/test_inference.py`` the equivalence checks.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hsrecon.lightroute import LightRouter, RoutedImage
from hsrecon.model import LWRDAN, fold_batchnorm, with_prior_matrix

__all__ = [
    "PRECISIONS",
    "DeviceOutOfMemoryError",
    "FrozenBranch",
    "Predictor",
    "TorchPredictor",
    "cpu_bfloat16",
    "freeze_constant_branch",
    "freeze_proven_branch",
    "has_native_bfloat16",
    "head_bias_map",
    "prepare_model",
    "probe_windows",
]

# A predictor maps a batch of windows N×k×k×3 (float32, NHWC) to N×k×k×bands (float32).
Predictor = Callable[[np.ndarray], np.ndarray]

PRECISIONS = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}
"""``precision`` names and the autocast dtype each runs the network under (None: plain float32)."""


class FrozenBranch(nn.Module):
    """A branch replaced by a fixed output map for one window size; other sizes run the real branch."""

    def __init__(self, branch: nn.Module, value: torch.Tensor) -> None:
        super().__init__()
        self.branch = branch
        self.register_buffer("value", value)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] == self.value.shape[-2:]:
            return self.value.to(x.dtype).expand(x.shape[0], -1, -1, -1)
        return self.branch(x)


def probe_windows(size: int, channels: int = 3) -> torch.Tensor:
    """Deterministic probe inputs covering the range an input may take: 16 windows of size × size."""
    generator = torch.Generator().manual_seed(20201)
    ramp = torch.linspace(0, 1, size)
    probes = [
        torch.zeros(channels, size, size),
        torch.ones(channels, size, size),
        *(torch.eye(channels)[c].view(channels, 1, 1).expand(channels, size, size) for c in range(channels)),
        ramp.view(1, 1, size).expand(channels, size, size),
        ramp.view(1, size, 1).expand(channels, size, size),
        *(torch.rand(channels, size, size, generator=generator) for _ in range(5)),
        *(0.3 * torch.rand(channels, size, size, generator=generator) for _ in range(4)),
    ]
    return torch.stack(probes)


@torch.no_grad()  # not inference_mode: the frozen map must stay a normal tensor (ONNX export, training code)
def freeze_constant_branch(
    model: LWRDAN, window: int, tolerance: float = 1e-5, constant: torch.Tensor | None = None
) -> tuple[LWRDAN, float]:
    """Return (model, measured deviation): the U-net frozen if its output is input-independent.

    ``deviation`` is the largest |Δ output| / max |output| over the probes when the U-net is replaced
    by its mean map; the model is returned unchanged when it exceeds ``tolerance``. The probes go through
    one at a time (a window of 192 px is as many pixels as 9 of 64), and since the fusion convolution is
    linear the change of the output is that convolution of the change of the branch alone. ``constant``
    is the map to check (default: the branch's mean output over the probes).
    """
    model = model.eval()
    unets, peak = [], 0.0
    for probe in probe_windows(window, model.config.in_channels).split(1):
        coords = model.coords(probe)
        unet = model.unet(coords)
        peak = max(peak, float(model.fusion(model.dense(coords) + unet).abs().max()))
        unets.append(unet)
    constant = torch.cat(unets).mean(dim=0, keepdim=True) if constant is None else constant
    change = max(float(_linear_part(model.fusion, constant - unet).abs().max()) for unet in unets)
    deviation = change / peak if peak else change  # an all-zero output (an untrained prior model) is constant
    if deviation > tolerance:
        return model, deviation
    frozen = copy.deepcopy(model)
    frozen.unet = FrozenBranch(frozen.unet, constant.clone())
    return frozen, deviation


def _linear_part(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """A convolution without its bias: how its output changes when its input changes by ``x``."""
    return F.conv2d(x, conv.weight, None, conv.stride, conv.padding, conv.dilation, conv.groups)


def prepare_model(
    model: LWRDAN,
    *,
    window: int,
    freeze: bool = True,
    device: str | torch.device = "cpu",
    proven: bool | None = None,
) -> nn.Module:
    """The inference form of ``model``: BN folded, constant branch frozen (if proven so), channels-last.

    ``proven`` is what is already known of this model at ``window`` (:attr:`BundledWeights.unet_constant`
    of its file, proven by the tests): True freezes the branch without the probes, False leaves it, None
    probes (:func:`freeze_constant_branch`).
    """
    prepared = fold_batchnorm(model)  # a copy of its own: frozen in place below
    if freeze and proven is None:
        prepared, _ = freeze_constant_branch(prepared, window)
    elif freeze and proven:
        prepared.unet = FrozenBranch(prepared.unet, head_bias_map(prepared, window))  # freeze_proven_branch, uncopied
    return prepared.to(device, memory_format=torch.channels_last)


def head_bias_map(model: LWRDAN, window: int) -> torch.Tensor:
    """The U-net's head bias as a 1×bands×window×window map: what a U-net whose head sees (almost) nothing
    outputs, as the published weights' does (``docs/model.md``: head weights ~1e-32, the one live input
    channel zeroed by its BatchNorm)."""
    bias = model.unet.head.bias.detach()
    return bias.view(1, -1, 1, 1).expand(1, -1, window, window).clone()


@torch.no_grad()
def freeze_proven_branch(model: LWRDAN, window: int) -> LWRDAN:
    """``model`` with its U-net frozen at ``window`` to :func:`head_bias_map`, with neither probes nor a
    pass through the branch (whose first run alone costs a second: oneDNN builds a kernel per shape). Only
    for a file proven (``freeze_constant_branch(model, window, constant=head_bias_map(model, window))``
    within tolerance, ``tests/test_inference.py``) to have a constant U-net with that map at that window."""
    frozen = copy.deepcopy(model.eval())
    frozen.unet = FrozenBranch(frozen.unet, head_bias_map(model, window))
    return frozen


# --- bf16 on the CPU ---------------------------------------------------------------------------------------


class _CastOutput(nn.Module):
    """A layer run in float32 whose output goes on in ``dtype``: cast once, where the next layers need it."""

    def __init__(self, layer: nn.Module, dtype: torch.dtype) -> None:
        super().__init__()
        self.layer = layer
        self.dtype = dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x).to(self.dtype)


class _CastInput(nn.Module):
    """A branch run in ``dtype`` on a float32 input, its output back in float32."""

    def __init__(self, branch: nn.Module, dtype: torch.dtype) -> None:
        super().__init__()
        self.branch = branch.to(dtype)
        self.dtype = dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.branch(x.to(self.dtype)).float()


def cpu_bfloat16(model: LWRDAN) -> LWRDAN:
    """``model`` (an inference form) with its inner convolutions in bfloat16 and its ends in float32.

    Why not autocast: rounding the input (RGB and coordinates) to bf16's 8-bit mantissa moves every
    feature of a pixel the same way, and rounding the output does the same to the cube; autocast does
    both, and its cubes are ~0.9% from fp32. Here the first convolution (1×1, 0.1% of the FLOPs) runs
    in float32 and hands bf16 on, the dense convolutions (79%) and a live U-net run in bf16, and their
    sum enters the last convolution (21%) in float32: 0.13–0.16% from fp32 at 1.6× its speed on a CPU with
    AVX512-BF16 (``docs/benchmarks.md``, "bf16 on the CPU"). A frozen U-net map stays float32.
    """
    mixed = copy.deepcopy(model)
    first = copy.deepcopy(mixed.dense.conv1)  # kept apart: .to() converts modules in place
    mixed.dense = mixed.dense.to(torch.bfloat16)
    mixed.dense.conv1 = _CastOutput(first, torch.bfloat16)
    if not isinstance(mixed.unet, FrozenBranch):
        mixed.unet = _CastInput(mixed.unet, torch.bfloat16)
    return mixed


def has_native_bfloat16() -> bool:
    """Whether this CPU computes bf16 in hardware (AVX512-BF16 or AMX): where ``cpu_bfloat16`` is fast.
    Elsewhere oneDNN emulates it, slower than float32."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a torch built without oneDNN
        return False


# --- running a module on batches of windows ------------------------------------------------------------


class DeviceOutOfMemoryError(RuntimeError):
    """The device ran out of memory even for one window per forward pass.

    Raised only after halving the batch down to one window. Every later image needs the same memory
    per window, so a batch of files should stop rather than fail each one the same way.
    """


def _is_out_of_memory(error: BaseException) -> bool:
    """torch's OutOfMemoryError (CUDA), MemoryError, or the RuntimeErrors other back ends raise for it."""
    if isinstance(error, DeviceOutOfMemoryError):
        return False
    if isinstance(error, torch.OutOfMemoryError | MemoryError):
        return True
    text = str(error).lower()
    return isinstance(error, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def _release_device_memory() -> None:
    """Return the failed batch's cached blocks to the device before retrying with fewer windows."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()


def _dihedral(x: torch.Tensor, k: int) -> torch.Tensor:
    """The k-th of the 8 flips/rotations of an N×C×H×W batch (k = 0 is the identity)."""
    x = torch.flip(x, dims=(-1,)) if k >= 4 else x
    return torch.rot90(x, k % 4, dims=(-2, -1))


def _undo_dihedral(x: torch.Tensor, k: int) -> torch.Tensor:
    x = torch.rot90(x, -(k % 4), dims=(-2, -1))
    return torch.flip(x, dims=(-1,)) if k >= 4 else x


class TorchPredictor:
    """Run a torch model on batches of windows on one device, optionally with the 8-fold self-ensemble.

    ``model`` runs as given (an LWRDAN's inference form comes from :meth:`hsrecon.weights.Weights.predictor`).
    ``precision`` ``fp16``/``bf16`` runs the network under autocast, except an LWRDAN in ``bf16`` on the CPU,
    which runs as :func:`cpu_bfloat16` (its ends in float32); outputs come back float32.
    ``tta`` averages the outputs over the 8 flips/rotations of each window (8× the compute).

    Out of memory on the device, the same windows are run again in halves, down to one window per
    pass, and the size that worked is kept as :attr:`max_batch` for every later call (a long batch of
    files pays for the discovery once); ``on_note`` hears of each halving. Outputs are the same as with
    a batch that fits from the start. Out of memory at one window raises :class:`DeviceOutOfMemoryError`.

    A network whose per-pixel prior is routed (``router`` and ``routes``, one prior matrix per kind of light)
    adapts to each image: :meth:`for_image` reads the image's light and returns the predictor whose prior is
    the routes blended by the router's posterior (``light`` holds it), sharing every other layer.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        device: str | torch.device = "cpu",
        precision: str = "fp32",
        tta: bool = False,
        on_note: Callable[[str], None] | None = None,
        router: LightRouter | None = None,
        routes: torch.Tensor | None = None,
    ) -> None:
        self.device = torch.device(device)
        self.router, self.routes = router, routes
        self.light: dict[str, float] = {}  # a routed image's posterior over the routes
        if precision == "bf16" and self.device.type == "cpu" and isinstance(model, LWRDAN):
            model, precision = cpu_bfloat16(model), "fp32"  # its own dtypes, no autocast
        # Channels-last: the windows arrive as NHWC arrays, and oneDNN's convolutions run faster on it.
        self.model = model.eval().to(self.device, memory_format=torch.channels_last)
        self.dtype = PRECISIONS[precision]
        self.tta = tta
        self.max_batch: int | None = None  # learned from out-of-memory errors; None: no limit met yet
        self.on_note = on_note

    def for_image(self, pixels: np.ndarray, transform: Callable[[np.ndarray], np.ndarray]) -> TorchPredictor:
        """The predictor for one H×W×3 image: itself for a network without routes; for a routed one, a
        predictor whose prior matrix is the routes weighted by the router's posterior on the image."""
        if self.router is None or self.routes is None:
            return self
        read = RoutedImage.read(self.router, self.routes, pixels, transform)
        routed = copy.copy(self)
        routed.model = with_prior_matrix(self.model, read.matrix)
        routed.router = routed.routes = None  # adapted once: applying for_image again changes nothing
        routed.light = read.light
        return routed

    def __call__(self, windows: np.ndarray) -> np.ndarray:
        if len(windows) == 0:
            return self._run(windows)
        size = self.max_batch or len(windows)
        outputs: list[np.ndarray] = []
        start = 0
        while start < len(windows):
            chunk = windows[start : start + size]
            result = self._attempt(chunk)
            if result is None:
                size = self._halve(len(chunk))
                continue
            outputs.append(result)
            start += len(chunk)
        return outputs[0] if len(outputs) == 1 else np.concatenate(outputs)

    def _attempt(self, windows: np.ndarray) -> np.ndarray | None:
        """The outputs, or None when the device ran out of memory (other errors propagate)."""
        try:
            return self._run(windows)
        except Exception as error:
            if not _is_out_of_memory(error):
                raise
        return None  # returned outside the handler, so the failed pass's tensors are already freed

    def _halve(self, failed: int) -> int:
        _release_device_memory()
        if failed <= 1:
            raise DeviceOutOfMemoryError(f"{self.device}: out of memory even with one window per pass")
        self.max_batch = (failed + 1) // 2
        if self.on_note is not None:
            self.on_note(f"{self.device}: out of memory with {failed} windows per pass; retrying with {self.max_batch}")
        return self.max_batch

    @torch.inference_mode()
    def _run(self, windows: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(windows)).to(self.device).permute(0, 3, 1, 2)  # NCHW view
        if not self.tta:
            return self._forward(x).permute(0, 2, 3, 1).float().cpu().numpy()
        total = None
        for k in range(8):
            y = _undo_dihedral(self._forward(_dihedral(x, k)), k)
            total = y if total is None else total + y
        return (total / 8).permute(0, 2, 3, 1).float().cpu().numpy()

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.dtype is None:
            return self.model(x)
        with torch.autocast(device_type=self.device.type, dtype=self.dtype):
            return self.model(x).float()
