"""U-Net: wiring as in the paper, any input size, binary and multiclass heads, embeddings, bad input."""

import pytest
import torch

from cvcourse.models import UNet, logits_to_mask
from cvcourse.models.blocks import ConvBlock, ResidualBlock, SelfAttention, Up, center_crop, crop_and_concat


@pytest.mark.parametrize("size", [(32, 32), (37, 53), (1, 1), (64, 17)])
@pytest.mark.parametrize("upsampling", ["transpose", "bilinear"])
@pytest.mark.parametrize("block", ["conv", "residual"])
def test_any_input_size_gives_an_output_of_the_same_size(size, upsampling, block):
    model = UNet(3, 5, depth=3, base_width=8, upsampling=upsampling, block=block, norm="group").eval()
    assert model(torch.rand(2, 3, *size)).shape == (2, 5, *size)


def test_skip_and_upsampled_maps_match_at_every_level():
    """The decoder joins each up-sampled map with the encoder map of the *same* level: equal sizes and
    equal channels, level by level, down to the bottleneck (the wiring the widely copied Keras example gets wrong)."""
    model = UNet(1, 1, depth=4, base_width=8).eval()
    seen = []

    def record(module, inputs):
        x, skip = inputs[:2]
        seen.append((tuple(module.up(x).shape), tuple(skip.shape)))

    for up in model.ups:
        up.register_forward_pre_hook(record)
    model(torch.rand(1, 1, 48, 80))
    assert len(seen) == 4
    for level, (upsampled, skip) in enumerate(seen):
        assert upsampled == skip, f"decoder level {level}: up-sampled {upsampled} vs skip {skip}"
    # from the bottleneck up: 64 -> 8 channels, 3x5 -> 24x40 pixels (input padded to 48x80, a multiple of 16)
    assert [s[1] for s in seen] == [(1, 64, 6, 10), (1, 32, 12, 20), (1, 16, 24, 40), (1, 8, 48, 80)]


def test_bottleneck_has_the_most_channels():
    model = UNet(3, 2, depth=4, base_width=16)
    assert model.downs[-1].block.conv2.out_channels == 16 * 2**4
    assert model.num_parameters == sum(p.numel() for p in model.parameters())


def test_gradients_reach_every_parameter():
    model = UNet(3, 4, depth=2, base_width=4, norm="group", dropout=0.1)
    model(torch.rand(2, 3, 20, 20)).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_the_residual_unet_has_the_same_wiring_with_ddpm_parts():
    model = UNet(4, 4, depth=2, base_width=8, norm="group", block="residual", attention=True, embed_dim=6)
    assert all(isinstance(level.block, ResidualBlock) for level in [*model.downs, *model.ups])
    assert isinstance(model.stem, ResidualBlock) and isinstance(model.middle.attention, SelfAttention)
    assert model.middle.attention.attention.embed_dim == 32  # at the bottleneck: 8 * 2**2 channels
    assert isinstance(model.middle.block, ResidualBlock) and UNet(4, 4, depth=2).middle is None
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    images, embedding = torch.rand(2, 4, 12, 12), torch.randn(2, 6)
    for _ in range(2):  # the zero-initialised second convolutions pass no gradient back until they move
        optimizer.zero_grad()
        model(images, embedding).pow(2).mean().backward()
        optimizer.step()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_a_residual_block_starts_as_its_skip_and_takes_a_scale_and_shift():
    torch.manual_seed(0)
    same, wider = ResidualBlock(8, 8, norm="group", embed_dim=4), ResidualBlock(8, 16, norm="group", embed_dim=4)
    x, embedding = torch.randn(2, 8, 5, 5), torch.randn(2, 4)
    assert torch.equal(same(x, embedding), x)
    torch.testing.assert_close(wider(x, embedding), wider.skip(x))
    torch.nn.init.normal_(same.conv2.weight)
    scale, shift = same.embed(embedding)[:, :, None, None].chunk(2, dim=1)
    h = same.norm2(same.conv1(same.act(same.norm1(x)))) * (1 + scale) + shift
    torch.testing.assert_close(same(x, embedding), x + same.conv2(same.act(h)))
    with pytest.raises(ValueError, match="needs an embedding"):
        same(x)


def test_self_attention_relates_every_position_to_every_other():
    torch.manual_seed(0)
    attention = SelfAttention(8, heads=2).eval()
    x = torch.randn(1, 8, 4, 4)
    changed = x.clone()
    changed[..., 0, 0] += 5.0  # one corner
    difference = (attention(changed) - attention(x) - (changed - x)).abs().sum(1)[0]
    assert (difference[1:, 1:] > 0).all()  # the far positions see the corner: a 3x3 convolution could not
    tokens = attention.norm(x).flatten(2).transpose(1, 2)
    expected, _ = attention.attention(tokens, tokens, tokens)
    torch.testing.assert_close(attention(x), x + expected.transpose(1, 2).reshape(1, 8, 4, 4))
    with pytest.raises(ValueError, match="divisible by heads"):
        SelfAttention(6, heads=4)


@pytest.mark.parametrize("norm", ["batch", "group", "instance", "none"])
def test_normalisations_build_and_run(norm):
    assert UNet(1, 1, depth=2, base_width=4, norm=norm)(torch.rand(2, 1, 16, 16)).shape == (2, 1, 16, 16)


def test_embedding_changes_the_output_and_is_required_once_configured():
    model = UNet(1, 1, depth=2, base_width=4, embed_dim=6).eval()
    images = torch.rand(2, 1, 16, 16)
    a, b = model(images, torch.zeros(2, 6)), model(images, torch.ones(2, 6))
    assert not torch.allclose(a, b)
    with pytest.raises(ValueError, match="needs an embedding"):
        model(images)


def test_crop_and_concat_takes_the_centre_and_puts_the_skip_first():
    skip = torch.arange(7 * 9, dtype=torch.float).reshape(1, 1, 7, 9)
    upsampled = torch.full((1, 2, 4, 4), -1.0)
    joined = crop_and_concat(skip, upsampled)
    assert joined.shape == (1, 3, 4, 4)
    assert torch.equal(joined[:, :1], skip[..., 1:5, 2:6]) and torch.equal(joined[:, 1:], upsampled)
    with pytest.raises(ValueError, match="larger size"):
        center_crop(upsampled, 5, 5)


def test_logits_to_mask_binary_and_multiclass():
    binary = torch.tensor([[[[2.0, -2.0]]]])
    assert logits_to_mask(binary).tolist() == [[[1, 0]]]
    assert logits_to_mask(binary, threshold=0.99).tolist() == [[[0, 0]]]
    multiclass = torch.tensor([[[[0.1, 3.0]], [[2.0, 0.0]], [[0.0, 0.0]]]])
    assert logits_to_mask(multiclass).tolist() == [[[1, 0]]]


def test_bad_input_is_explained():
    model = UNet(3, 2, depth=2, base_width=4)
    with pytest.raises(ValueError, match=r"expand\(-1, 3, -1, -1\).*in_channels=1"):
        model(torch.rand(1, 1, 16, 16))
    with pytest.raises(ValueError, match="unsqueeze"):
        model(torch.rand(3, 16, 16))
    with pytest.raises(ValueError, match="float images"):
        model(torch.zeros(1, 3, 16, 16, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"torch.float32 but the images are torch.float64.*images.to\(torch.float32\)"):
        model(torch.zeros(1, 3, 16, 16, dtype=torch.float64))
    with pytest.raises(ValueError, match="Unknown normalisation 'layer'"):
        UNet(norm="layer")
    with pytest.raises(ValueError, match="Unknown up-sampling"):
        Up(8, 4, mode="nearest")
    with pytest.raises(ValueError, match="depth"):
        UNet(depth=0)
    with pytest.raises(ValueError, match="Unknown block 'dense'.*conv, residual"):
        UNet(block="dense")
    with pytest.raises(ValueError, match="base_width must be a multiple of 8.*got base_width=20, e.g. use 16"):
        UNet(1, 1, depth=2, base_width=20, norm="group")
    for width in (4, 8, 24):  # group norm takes these: 4 channels in 4 groups, the others in 8
        UNet(1, 1, depth=2, base_width=width, norm="group")
    assert isinstance(model.stem, ConvBlock)
