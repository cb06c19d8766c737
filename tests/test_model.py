"""The network's structure: counts, shapes, coordinate channels, gradients, BatchNorm folding."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from hsrecon.model import (
    LWRDAN,
    RDAB,
    ChannelAttention,
    CoordChannels,
    KerasSameUpsample,
    LWRDANConfig,
    SpatialAttention,
    build_model,
    count_parameters,
    count_trainable,
    flops_per_pixel,
    fold_batchnorm,
)


def test_parameter_count_matches_paper_and_authors_file():
    model = build_model()
    assert count_parameters(model) == 233_059
    assert count_trainable(model) == 231_539


def test_parameter_count_per_part():
    model = build_model()
    parts = {name: count_parameters(module) for name, module in model.named_children()}
    assert parts == {"coords": 0, "unet": 119_036, "dense": 89_967, "fusion": 24_056}
    assert sum(isinstance(m, RDAB) for m in model.modules()) == 9
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 45


def test_flops_per_megapixel():
    # 590 M multiply-adds per 64×64 window, as an independent count of the authors' graph gives.
    gflop_per_mp = flops_per_pixel(build_model(), window=64) * 1e6 / 1e9
    assert gflop_per_mp == pytest.approx(288.107, rel=1e-4)


@pytest.mark.parametrize("shape", [(1, 3, 64, 64), (2, 3, 32, 96), (1, 3, 4, 8), (1, 3, 128, 68)])
def test_output_shape(shape):
    model = build_model().eval()
    with torch.no_grad():
        out = model(torch.rand(shape))
    assert out.shape == (shape[0], 31, shape[2], shape[3])
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("shape", [(1, 3, 63, 64), (1, 3, 64, 66), (1, 4, 64, 64), (3, 64, 64)])
def test_bad_input_shape_is_a_clear_error(shape):
    with pytest.raises(ValueError, match=r"multiples of 4|N×3×H×W"):
        build_model().eval()(torch.rand(shape))


def test_coordinate_channels_rows_then_columns():
    x = torch.zeros(1, 3, 5, 9)
    out = CoordChannels()(x)
    assert out.shape == (1, 5, 5, 9)
    rows, cols = out[0, 3], out[0, 4]
    # Channel 3 runs down the rows, −1 at the top to +1 at the bottom, normalised by H − 1.
    assert torch.allclose(rows[:, 0], torch.tensor([-1.0, -0.5, 0.0, 0.5, 1.0]))
    assert torch.equal(rows, rows[:, :1].expand(5, 9))
    # Channel 4 runs along the columns, normalised by W − 1.
    assert torch.allclose(cols[0], torch.linspace(-1, 1, 9))
    assert torch.equal(cols, cols[:1].expand(5, 9))


def test_keras_same_upsample_geometry():
    # Keras keeps the first 2n rows/columns of the full transposed convolution: with a kernel that is
    # 1 only at tap (0, 0), input pixel (i, j) lands on output (2i, 2j).
    up = KerasSameUpsample(1, 1)
    with torch.no_grad():
        up.conv.weight.zero_()
        up.conv.weight[0, 0, 0, 0] = 1.0
        up.conv.bias.zero_()
    x = torch.arange(1.0, 5.0).view(1, 1, 2, 2)
    y = up(x)
    assert y.shape == (1, 1, 4, 4)
    assert torch.equal(y[0, 0, ::2, ::2], x[0, 0])
    assert y[0, 0, 1::2].abs().sum() == 0


def test_gradient_reaches_every_trainable_parameter():
    model = build_model().train()
    # A channel-attention MLP has 1–4 hidden ReLU units; at random init one can be dead on every input,
    # which would hide a broken connection behind a legitimately zero gradient. Keep them alive.
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, ChannelAttention):
                module.mlp.fc1.bias.fill_(1.0)
    out = model(torch.rand(4, 3, 32, 32))
    out.square().mean().backward()
    silent = [name for name, p in model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert silent == []


def test_config_round_trip():
    config = LWRDANConfig(widths=(4, 8, 16), dense_width=8)
    assert LWRDANConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="unknown model config keys"):
        LWRDANConfig.from_dict({**config.to_dict(), "depth": 3})


def test_smaller_config_builds_and_runs():
    model = LWRDAN(LWRDANConfig(widths=(4, 8, 16), dense_width=8, blocks=(1, 1, 1, 1, 1))).eval()
    assert model(torch.rand(1, 3, 16, 16)).shape == (1, 31, 16, 16)
    assert count_parameters(model) < 233_059


def test_fold_batchnorm_equivalent_on_pretrained(bundled_model):
    folded = fold_batchnorm(bundled_model)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in folded.modules()) == 18
    x = torch.rand(3, 3, 64, 64)
    with torch.no_grad():
        reference, fast = bundled_model(x), folded(x)
        # The U-net's inner activations are what folding changes: compare them too.
        inner_ref = bundled_model.unet(bundled_model.coords(x))
        inner_fast = folded.unet(folded.coords(x))
    assert (reference - fast).abs().max() <= 1e-5
    assert (inner_ref - inner_fast).abs().max() <= 1e-5 * max(1.0, inner_ref.abs().max().item())


def test_fold_batchnorm_equivalent_on_random_statistics():
    model = build_model()
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            with torch.no_grad():
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
    model.eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert (model(x) - fold_batchnorm(model)(x)).abs().max() <= 1e-5


def test_ablation_without_coordconv_drops_exactly_the_coordinate_weights():
    full, ablated = LWRDAN(), LWRDAN(LWRDANConfig(coord_conv=False))
    # Two input channels fewer for the U-net's first 3×3 conv (8 filters) and the dense 1×1 conv (16).
    assert count_parameters(full) - count_parameters(ablated) == 2 * 9 * 8 + 2 * 16
    assert not any(isinstance(m, CoordChannels) for m in ablated.modules())
    assert ablated.unet.enc1.entry.in_channels == 3 and ablated.dense.conv1.in_channels == 3


def test_ablation_without_coordconv_is_translation_equivariant_in_the_interior():
    """With no coordinate channels the network is purely convolutional: moving the content by 4 pixels
    (the pooling period) moves the output with it, away from the borders; with them it does not."""
    torch.manual_seed(0)
    x = torch.rand(1, 3, 128, 128)  # the U-net's receptive field is wide: keep its borders far away
    shifted = torch.roll(x, shifts=4, dims=-1)
    for coord_conv, equal in ((False, True), (True, False)):
        model = LWRDAN(LWRDANConfig(coord_conv=coord_conv)).eval()
        with torch.no_grad():
            a, b = model(x)[..., 56:72, 56:68], model(shifted)[..., 56:72, 60:72]
        assert torch.allclose(a, b, atol=1e-4) is equal  # measured: 8e-6 without, 1.4e-2 with coordinates


def test_ablation_without_cbam_has_no_attention_and_passes_features_ungated():
    model = LWRDAN(LWRDANConfig(attention=False))
    assert not any(isinstance(m, (ChannelAttention, SpatialAttention)) for m in model.modules())
    attention_values = sum(
        count_parameters(m) for m in LWRDAN().modules() if isinstance(m, (ChannelAttention, SpatialAttention))
    )
    assert count_parameters(LWRDAN()) - count_parameters(model) == attention_values == 233_059 - 231_190
    block = RDAB(8, reduction=8, spatial_kernel=7, norm=nn.BatchNorm2d, attention=False).eval()
    x = torch.rand(2, 8, 16, 16)
    with torch.no_grad():
        features = block.body(torch.relu(block.pre_norm(x)))
        expected = torch.relu(block.post_norm(features + x + block.side(x)))
        assert torch.allclose(block(x), expected)


def test_ablation_switches_are_stored_only_when_off():
    assert "coord_conv" not in LWRDANConfig().to_dict() and "attention" not in LWRDANConfig().to_dict()
    for config in (LWRDANConfig(coord_conv=False), LWRDANConfig(attention=False)):
        assert LWRDANConfig.from_dict(config.to_dict()) == config
        assert False in config.to_dict().values()
