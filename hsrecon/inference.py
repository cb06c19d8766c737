"""Make a trained LWRDAN fast for inference without changing what it computes (beyond float rounding).

Three steps, each checked:

1. **Fold BatchNorm** into the preceding convolutions (:func:`hsrecon.model.fold_batchnorm`, ≤ 1e-5).
2. **Freeze a branch whose output does not depend on the input.** With the published weights the
   attention U-net's output is, to float32 precision, the same map for every input (its last conv has
   weights ~1e-32 on 15 of 16 channels and the stored BatchNorm statistics zero the rest; see
   ``docs/model.md``). Computing it costs 21% of the network's FLOPs. :func:`freeze_constant_branch`
   runs the branch on a fixed set of probe windows (black, white, saturated primaries, uniform noise,
   dark noise, gradients); only if the *final* output with the branch replaced by its mean map stays
   within ``tolerance`` × the output's magnitude on every probe is it frozen. Retrained weights whose
   U-net works keep it: the check fails and nothing changes. The frozen map is kept per window size and
   the real branch still runs for any other size.
3. **Channels-last** memory format (faster oneDNN convolutions on CPU).

``docs/benchmarks.md`` has the speed of each step; ``tests/test_inference.py`` the equivalence checks.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from hsrecon.model import LWRDAN, fold_batchnorm

__all__ = ["FrozenBranch", "freeze_constant_branch", "prepare_model", "probe_windows"]


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
def freeze_constant_branch(model: LWRDAN, window: int, tolerance: float = 1e-5) -> tuple[LWRDAN, float]:
    """Return (model, measured deviation): the U-net frozen if its output is input-independent.

    ``deviation`` is the largest |Δ output| / max |output| over the probes when the U-net is replaced
    by its mean map; the model is returned unchanged when it exceeds ``tolerance``.
    """
    model = model.eval()
    probes = probe_windows(window, model.config.in_channels)
    coords = model.coords(probes)
    dense, unet = model.dense(coords), model.unet(coords)
    reference = model.fusion(dense + unet)
    constant = unet.mean(dim=0, keepdim=True)
    frozen_output = model.fusion(dense + constant)
    deviation = float((frozen_output - reference).abs().max() / reference.abs().max())
    if deviation > tolerance:
        return model, deviation
    frozen = copy.deepcopy(model)
    frozen.unet = FrozenBranch(frozen.unet, constant.clone())
    return frozen, deviation


def prepare_model(model: LWRDAN, *, window: int, freeze: bool = True, device: str | torch.device = "cpu") -> nn.Module:
    """The inference form of ``model``: BN folded, constant branch frozen (if proven so), channels-last."""
    prepared = fold_batchnorm(model)
    if freeze:
        prepared, _ = freeze_constant_branch(prepared, window)
    return prepared.to(device, memory_format=torch.channels_last)
