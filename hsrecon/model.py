"""LWRDAN: the lightweight residual dense attention network for RGB → 31-band spectral reconstruction.

The paper describes the network in section 2 (Figure 1); the authors' published Keras model
(``../shared/reference/``, ``model_config`` inside the HDF5) is the exact specification, and where the two
disagree this file follows the model, saying so on the line. ``docs/model.md`` lists every difference.

Build order, as in torchvision's model files: blocks → config → network → builder.

The network knows nothing of files, windows or devices: it maps an ``N×3×H×W`` tensor to ``N×31×H×W``.
The coordinate channels span the tensor it is given, so the size of that tensor (the *window*) is part of
the model's contract: the published weights were trained on 64×64 windows.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hsrecon.pixelmap import RootPolynomialMap, term_count

__all__ = [
    "LWRDAN",
    "RDAB",
    "ChannelAttention",
    "ConvBNReLU",
    "CoordChannels",
    "DenseBranch",
    "KerasSameUpsample",
    "LWRDANConfig",
    "SpatialAttention",
    "Stage",
    "UNetBranch",
    "build_model",
    "count_parameters",
    "count_trainable",
    "flops_per_pixel",
    "fold_batchnorm",
    "over_prior",
    "with_prior_matrix",
]

NormFactory = Callable[[int], nn.Module]

ABLATION_SWITCHES = ("coord_conv", "attention")


class CoordChannels(nn.Module):
    """Append two coordinate channels to the input (CoordConv, section 2.1).

    As the authors' ``CoordinateChannel2D`` layer does: channel ``C`` is ``2·i/(H−1) − 1`` for row ``i``
    (−1 at the top, +1 at the bottom) and channel ``C+1`` is ``2·j/(W−1) − 1`` for column ``j``, computed
    over the tensor given, i.e. over the inference window, never over the whole photo.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        rows = torch.linspace(-1.0, 1.0, h, dtype=x.dtype, device=x.device)
        cols = torch.linspace(-1.0, 1.0, w, dtype=x.dtype, device=x.device)
        row_channel = rows.view(1, 1, h, 1).expand(n, 1, h, w)
        col_channel = cols.view(1, 1, 1, w).expand(n, 1, h, w)
        return torch.cat([x, row_channel, col_channel], dim=1)


class ConvBNReLU(nn.Sequential):
    """3×3 convolution, BatchNorm, ReLU: the unit the authors' model repeats inside every RDAB."""

    def __init__(self, in_channels: int, out_channels: int, *, norm: NormFactory, kernel_size: int = 3) -> None:
        super().__init__(
            OrderedDict(
                conv=nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2),
                norm=norm(out_channels),
                act=nn.ReLU(inplace=True),
            )
        )


class ChannelAttention(nn.Module):
    """CBAM channel attention (section 2.2): one MLP shared by the average- and max-pooled descriptors.

    Returns the sigmoid gate (``N×C×1×1``), not the gated features: the RDAB adds the channel-gated and
    the spatially-gated features, as the authors' graph does (``F_o = F_i + F_int + CA + SA``).
    """

    def __init__(self, channels: int, reduction: int) -> None:
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.mlp = nn.Sequential(
            OrderedDict(fc1=nn.Linear(channels, hidden), act=nn.ReLU(inplace=True), fc2=nn.Linear(hidden, channels))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        avg = self.mlp(x.mean(dim=(2, 3)))
        peak = self.mlp(x.amax(dim=(2, 3)))
        return torch.sigmoid(avg + peak)[:, :, None, None]


class SpatialAttention(nn.Module):
    """CBAM spatial attention: channel-wise mean and max maps (mean first), a k×k conv, sigmoid.

    Returns the gate (``N×1×H×W``). The convolution has no bias, as in the authors' model.
    """

    def __init__(self, kernel_size: int = 7) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        maps = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return torch.sigmoid(self.conv(maps))


class RDAB(nn.Module):
    """Residual dense attention block (section 2.2, eqs. 1–3, 6), as the authors' graph builds it.

    The authors' model differs from the paper's text (the model wins): the body is a plain chain
    BN → ReLU → (conv → BN → ReLU) × 2 rather than a densely connected one, a side ``conv → BN → ReLU``
    on the block input replaces the 1×1 local fusion, and the block ends in BN → ReLU:

        features = body(relu(pre_norm(x)))
        out = relu(post_norm(features·CA(features) + features·SA(features) + x + side(x)))
    """

    def __init__(
        self, channels: int, *, reduction: int, spatial_kernel: int, norm: NormFactory, attention: bool = True
    ) -> None:
        super().__init__()
        self.pre_norm = norm(channels)
        self.body = nn.Sequential(ConvBNReLU(channels, channels, norm=norm), ConvBNReLU(channels, channels, norm=norm))
        # attention=False is the paper's "without CBAM" ablation: the features pass ungated, once.
        self.channel_attention = ChannelAttention(channels, reduction) if attention else None
        self.spatial_attention = SpatialAttention(spatial_kernel) if attention else None
        self.side = ConvBNReLU(channels, channels, norm=norm)
        self.post_norm = norm(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.body(F.relu(self.pre_norm(x)))
        if self.channel_attention is None:
            attended = features
        else:
            attended = features * self.channel_attention(features) + features * self.spatial_attention(features)
        return F.relu(self.post_norm(attended + x + self.side(x)))


class KerasSameUpsample(nn.Module):
    """3×3 stride-2 transposed convolution with Keras's ``padding='same'`` geometry.

    Keras keeps the first ``2n`` rows and columns of the full transposed-convolution result; PyTorch's
    ``padding=1, output_padding=1`` would keep rows 1…2n instead, a one-pixel shift. So: no padding, then
    crop ``[:2n, :2n]``.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.ConvTranspose2d(in_channels, out_channels, 3, stride=2, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        return self.conv(x)[..., : 2 * h, : 2 * w]


class Stage(nn.Module):
    """One U-net level: an entry layer (conv, or transposed conv on the way up) and a chain of RDABs.

    The entry layer's raw output is the first RDAB's input ``x`` (its residual), as in the authors' graph.
    """

    def __init__(self, entry: nn.Module, blocks: list[RDAB]) -> None:
        super().__init__()
        self.entry = entry
        self.blocks = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.entry(x))


@dataclass(frozen=True)
class LWRDANConfig:
    """Every width and hyperparameter of the network; the defaults are the authors' published model.

    ``blocks`` counts the RDABs per U-net stage in the order encoder 1, encoder 2, bottleneck,
    decoder 2, decoder 1 (nine in all). ``coord_conv`` and ``attention`` exist for the paper's ablations
    (section 3): without them the input is the RGB alone, and the RDABs have no CBAM gates.
    ``bn_momentum`` uses PyTorch's convention; the authors' Keras model trained with Keras momentum 0
    (running statistics = the last batch), which only matters when training (see ``docs/model.md``).
    ``prior_degree`` (0: none, the paper's network) puts a per-pixel root-polynomial map of that degree
    (:class:`hsrecon.pixelmap.RootPolynomialMap`, its matrix a buffer of the weights) under the network: the
    output is the map's spectrum plus the network's correction (design (b) of issue 24, ``docs/training.md``).
    """

    in_channels: int = 3
    out_bands: int = 31
    widths: tuple[int, int, int] = (8, 16, 32)
    blocks: tuple[int, int, int, int, int] = (2, 2, 2, 2, 1)
    dense_width: int = 16
    reduction: int = 8
    spatial_kernel: int = 7
    head_kernel: int = 5
    dropout: float = 0.2
    bn_eps: float = 1e-4
    bn_momentum: float = 0.1
    coord_conv: bool = True
    attention: bool = True
    prior_degree: int = 0
    size_multiple: int = field(default=4, init=False)

    def to_dict(self) -> dict:
        """Plain-JSON form, for weights metadata (``size_multiple`` is derived, so left out).

        The ablation switches are written only when switched off, so the published model's metadata (and
        the bundled file's bytes and digest) stay what they were before the switches existed.
        """
        data = asdict(self)
        data.pop("size_multiple")
        for switch in ABLATION_SWITCHES:
            if data[switch]:
                data.pop(switch)
        if not data["prior_degree"]:
            data.pop("prior_degree")
        return data

    @property
    def branch_input_channels(self) -> int:
        """Channels both branches see: the RGB, plus the two coordinate channels unless ablated."""
        return self.in_channels + (2 if self.coord_conv else 0)

    @classmethod
    def from_dict(cls, data: dict) -> LWRDANConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error so a newer file is not half-read."""
        known = {f.name for f in cls.__dataclass_fields__.values() if f.init}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown model config keys: {sorted(unknown)}")
        values = dict(data)
        for key in ("widths", "blocks"):
            if key in values:
                values[key] = tuple(values[key])
        return cls(**values)


def _rdabs(channels: int, count: int, config: LWRDANConfig, norm: NormFactory) -> list[RDAB]:
    options = {"reduction": config.reduction, "spatial_kernel": config.spatial_kernel, "attention": config.attention}
    return [RDAB(channels, norm=norm, **options) for _ in range(count)]


class UNetBranch(nn.Module):
    """The multiscale hierarchical branch (section 2): RDAB stages in a two-level U-net.

    full (w1) → pool → half (w2) → pool, dropout → quarter (w3) → up → half (w2), concat encoder-half,
    dropout → up → full (w1), concat encoder-full → k×k conv to the bands.
    """

    def __init__(self, config: LWRDANConfig, norm: NormFactory) -> None:
        super().__init__()
        w1, w2, w3 = config.widths
        n_enc1, n_enc2, n_bottleneck, n_dec2, n_dec1 = config.blocks
        self.enc1 = Stage(nn.Conv2d(config.branch_input_channels, w1, 3, padding=1), _rdabs(w1, n_enc1, config, norm))
        self.enc2 = Stage(nn.Conv2d(w1, w2, 3, padding=1), _rdabs(w2, n_enc2, config, norm))
        self.bottleneck = Stage(nn.Conv2d(w2, w3, 3, padding=1), _rdabs(w3, n_bottleneck, config, norm))
        self.dec2 = Stage(KerasSameUpsample(w3, w2), _rdabs(w2, n_dec2, config, norm))
        self.dec1 = Stage(KerasSameUpsample(2 * w2, w1), _rdabs(w1, n_dec1, config, norm))
        self.pool = nn.MaxPool2d(2)
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Conv2d(2 * w1, config.out_bands, config.head_kernel, padding=config.head_kernel // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        full = self.enc1(x)
        half = self.enc2(self.pool(full))
        quarter = self.bottleneck(self.dropout(self.pool(half)))
        up_half = self.dec2(quarter)
        up_full = self.dec1(self.dropout(torch.cat([up_half, half], dim=1)))
        return self.head(torch.cat([up_full, full], dim=1))


class DenseBranch(nn.Module):
    """The dense feature extraction branch (section 2.3, eq. 7), at full resolution, on the CoordConv input.

    1×1 → 3×3 → 5×5 → 7×7 convolutions with ReLU. The authors' graph feeds conv3 with [c1, c2], conv4 with
    [c2, c3] (not all earlier outputs, as eq. 7 reads), and the head with [c1, c2, c3, c4].
    """

    def __init__(self, config: LWRDANConfig) -> None:
        super().__init__()
        cin, width = config.branch_input_channels, config.dense_width
        self.conv1 = nn.Conv2d(cin, width, 1)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)
        self.conv3 = nn.Conv2d(2 * width, width, 5, padding=2)
        self.conv4 = nn.Conv2d(2 * width, width, 7, padding=3)
        self.head = nn.Conv2d(4 * width, config.out_bands, config.head_kernel, padding=config.head_kernel // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c1 = F.relu(self.conv1(x))
        c2 = F.relu(self.conv2(c1))
        c3 = F.relu(self.conv3(torch.cat([c1, c2], dim=1)))
        c4 = F.relu(self.conv4(torch.cat([c2, c3], dim=1)))
        return self.head(torch.cat([c1, c2, c3, c4], dim=1))


class LWRDAN(nn.Module):
    """The whole network: CoordConv input shared by both branches, branch outputs added, a last k×k conv.

    The paper's figure suggests the branches are concatenated; the authors' model adds them (``add_21``)
    and the final conv (``op0``) is linear. Input ``N×3×H×W`` with H and W multiples of 4 (two 2×2
    poolings, undone by stride-2 transposed convolutions); output ``N×31×H×W`` in the scale of the
    training cubes, unclamped.
    """

    def __init__(self, config: LWRDANConfig | None = None) -> None:
        super().__init__()
        self.config = config or LWRDANConfig()
        norm = partial(nn.BatchNorm2d, eps=self.config.bn_eps, momentum=self.config.bn_momentum)
        self.coords = CoordChannels() if self.config.coord_conv else nn.Identity()
        self.unet = UNetBranch(self.config, norm)
        self.dense = DenseBranch(self.config)
        k = self.config.head_kernel
        self.fusion = nn.Conv2d(self.config.out_bands, self.config.out_bands, k, padding=k // 2)
        if self.config.prior_degree:
            terms = term_count(self.config.prior_degree)
            self.prior = RootPolynomialMap(torch.zeros(terms, self.config.out_bands), self.config.prior_degree)
            nn.init.zeros_(self.fusion.weight)  # untrained, the network is its prior (training fits the matrix)
            nn.init.zeros_(self.fusion.bias)

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        self._check_input(rgb)
        x = self.coords(rgb)
        out = self.fusion(self.dense(x) + self.unet(x))
        return out + self.prior(rgb) if self.config.prior_degree else out

    def _check_input(self, rgb: torch.Tensor) -> None:
        """Fail with a sentence rather than a shape error deep inside a concatenation."""
        if rgb.ndim != 4 or rgb.shape[1] != self.config.in_channels:
            raise ValueError(f"expected an N×{self.config.in_channels}×H×W tensor, got shape {tuple(rgb.shape)}")
        h, w = rgb.shape[-2:]
        m = self.config.size_multiple
        if h % m or w % m or h < m or w < m:
            raise ValueError(f"window height and width must be positive multiples of {m}, got {h}×{w}")


def build_model(config: LWRDANConfig | None = None) -> LWRDAN:
    """Build an untrained LWRDAN (PyTorch default initialisation); load weights with ``hsrecon.weights``."""
    return LWRDAN(config)


def over_prior(
    network: LWRDAN, matrix: torch.Tensor | np.ndarray, degree: int, *, network_share: float = 0.0
) -> LWRDAN:
    """A network over a per-pixel prior: ``network_share`` × the network's output plus (1 − share) × the
    root-polynomial map of ``matrix`` (terms × bands, fitted on the values the network sees).

    Both terms are linear in the last convolution and the matrix, so the mixture is one LWRDAN with a prior
    (``prior_degree``): the last convolution scaled by the share, the matrix by its complement. Share 0 is
    design (b)'s start (the untrained correction is zero, the model is its prior); share 1 the network alone.
    A fraction between is a blend that runs, in windows, wherever a network runs, at a network's cost: the
    bundled ``clean-v3`` (the default) is the authors' network at share 0.25 over the weighted sum of two maps,
    one fitted on training data v3 and one on recipe 1 (``docs/training.md``). ``network`` must have no prior
    of its own; it is left unchanged.
    """
    if network.config.prior_degree:
        raise ValueError("this network already has a per-pixel prior; give the network without one")
    if not 0.0 <= network_share <= 1.0:
        raise ValueError(f"the network's share must be in [0, 1], got {network_share}")
    model = LWRDAN(replace(network.config, prior_degree=degree))
    prior = torch.as_tensor(matrix, dtype=torch.float32)
    state = network.state_dict() | {"prior.matrix": (1.0 - network_share) * prior}
    model.load_state_dict(state)
    with torch.no_grad():
        model.fusion.weight.mul_(network_share)
        model.fusion.bias.mul_(network_share)
    return model.train(network.training)


def with_prior_matrix(model: LWRDAN, matrix: torch.Tensor) -> LWRDAN:
    """``model`` with another prior matrix, sharing every other layer (no copy of the network's tensors): the
    per-image prior of a routed network (:mod:`hsrecon.lightroute`), made once per image at no cost. ``model``
    may be an inference form (``hsrecon.inference``); it must have a prior (``prior_degree``)."""
    if not isinstance(getattr(model, "prior", None), RootPolynomialMap):
        raise ValueError("this network has no per-pixel prior to replace")
    routed = copy.copy(model)
    routed._modules = dict(model._modules)  # a shallow copy shares the module table; the prior is its own
    routed.prior = RootPolynomialMap(matrix.to(model.prior.matrix.device), model.prior.degree)
    return routed


def count_parameters(model: nn.Module) -> int:
    """Values in the model the way Keras and the paper count them: parameters + BN running mean/variance.

    PyTorch's ``num_batches_tracked`` counters are bookkeeping, not model values, and are left out; a
    per-pixel prior's fitted matrix (``prior_degree``) is a model value, though not trained by gradient.
    """
    params = sum(p.numel() for p in model.parameters())
    stats = sum(
        m.running_mean.numel() + m.running_var.numel()
        for m in model.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None
    )
    priors = sum(m.matrix.numel() for m in model.modules() if isinstance(m, RootPolynomialMap))
    return params + stats + priors


def count_trainable(model: nn.Module) -> int:
    """Trainable parameters only."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def flops_per_pixel(model: LWRDAN, window: int = 64) -> float:
    """Floating-point operations per output pixel (2 × multiply-adds of convolutions and dense layers).

    Counted by hooks over one forward pass on a ``window``×``window`` input, so it follows the code.
    Element-wise work (BN, ReLU, attention products) is left out, as is customary.
    """
    macs = 0

    def conv_hook(module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
        nonlocal macs
        # Each output pixel of a conv, and each input pixel of a transposed conv, costs one
        # multiply-add per weight.
        pixels = _inputs[0] if isinstance(module, nn.ConvTranspose2d) else output
        macs += pixels.shape[0] * pixels.shape[-2] * pixels.shape[-1] * module.weight.numel()

    def linear_hook(module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
        nonlocal macs
        macs += output.shape[0] * module.weight.numel()

    handles = []
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
            handles.append(module.register_forward_hook(conv_hook))
        elif isinstance(module, nn.Linear):
            handles.append(module.register_forward_hook(linear_hook))
    try:
        was_training = model.training
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, _input_channels(model), window, window))
        model.train(was_training)
    finally:
        for handle in handles:
            handle.remove()
    return 2.0 * macs / (window * window)


def _input_channels(model: nn.Module) -> int:
    config = getattr(model, "config", None)
    return config.in_channels if config is not None else 3


def _fold_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A conv whose output equals ``bn(conv(x))`` with the BN's running statistics (inference only)."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    folded = copy.deepcopy(conv)
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    with torch.no_grad():
        folded.weight.copy_(conv.weight * scale.view(-1, 1, 1, 1))
        folded.bias = nn.Parameter((bias - bn.running_mean) * scale + bn.bias)
    return folded


def fold_batchnorm(model: LWRDAN) -> LWRDAN:
    """Return an inference copy with every conv → BN pair merged into one conv.

    27 of the 45 BatchNorms follow a convolution directly and vanish; the other 18 (each RDAB's
    ``pre_norm`` on its input and ``post_norm`` on the residual sum) act on tensors that are also used
    unnormalised, so they stay, as fixed per-channel affine maps in eval mode. Training keeps BatchNorm:
    use the unfolded model.
    """
    folded = copy.deepcopy(model).eval()
    for module in folded.modules():
        if isinstance(module, ConvBNReLU) and isinstance(module.norm, nn.BatchNorm2d):
            module.conv = _fold_conv_bn(module.conv, module.norm)
            module.norm = nn.Identity()
    return folded
