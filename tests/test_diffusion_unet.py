"""DiffusionUNet: the DDPM timestep embedding, conditioning on t and labels, one U-Net family, bad input."""

import pytest
import torch

from cvcourse.models.diffusion_unet import DiffusionUNet, timestep_embedding
from cvcourse.models.unet import UNet


def randomised(model: DiffusionUNet) -> DiffusionUNet:
    """The model with a random output head (it starts at zero, which hides every input)."""
    torch.nn.init.normal_(model.unet.head.weight)
    return model.eval()


def test_timestep_embedding_is_ddpm_get_timestep_embedding():
    t = torch.tensor([0, 1, 17, 999])
    embedding = timestep_embedding(t, 8)
    angles = t[:, None] * torch.tensor([10_000 ** (-i / 3) for i in range(4)])  # 1 down to 1 / 10000
    torch.testing.assert_close(embedding, torch.cat([angles.sin(), angles.cos()], dim=1))
    assert torch.equal(embedding[0], torch.tensor([0.0] * 4 + [1.0] * 4))


def test_timestep_embedding_matches_diffusers():
    embeddings = pytest.importorskip("diffusers.models.embeddings")
    t = torch.arange(0, 1000, 37)
    torch.testing.assert_close(timestep_embedding(t, 64), embeddings.get_timestep_embedding(t, 64), atol=1e-5,
                               rtol=1e-5)


def test_output_has_the_input_shape_and_starts_at_zero():
    model = DiffusionUNet(3, base_width=4, depth=2, embed_dim=16)
    x = torch.randn(2, 3, 13, 10)
    eps = model(x, torch.tensor([0, 999]))
    assert eps.shape == x.shape and torch.equal(eps, torch.zeros_like(x))
    assert isinstance(model.unet, UNet) and model.unet.out_channels == 3
    assert model.num_parameters == sum(p.numel() for p in model.parameters())


def test_patches_are_the_pixels_stacked_as_channels():
    torch.manual_seed(0)
    model = randomised(DiffusionUNet(1, base_width=8, depth=2, block="residual", attention=True, patch_size=2,
                                     embed_dim=16))
    assert model.unet.in_channels == model.unet.out_channels == 4
    x, t = torch.randn(2, 1, 28, 28), torch.tensor([3, 700])
    patches = torch.nn.functional.pixel_unshuffle(x, 2)
    assert patches.shape == (2, 4, 14, 14) and torch.equal(patches[:, :, 0, 0], x[:, 0, :2, :2].flatten(1))
    expected = torch.nn.functional.pixel_shuffle(model.unet(patches, model.embed(t)), 2)
    torch.testing.assert_close(model(x, t), expected)
    assert model(x, t).shape == x.shape
    with pytest.raises(ValueError, match="divisible by 2.*27 -> 28"):
        model(torch.randn(1, 1, 27, 28), 1)
    with pytest.raises(ValueError, match="patch_size must be 1"):
        DiffusionUNet(patch_size=4)


def test_timestep_and_label_change_the_prediction():
    torch.manual_seed(0)
    model = randomised(DiffusionUNet(1, base_width=4, depth=1, num_classes=3, embed_dim=16))
    x = torch.randn(1, 1, 8, 8).expand(3, -1, -1, -1)
    by_label = model(x, 10, torch.tensor([0, 1, 2]))
    by_time = model(x, torch.tensor([0, 100, 900]), torch.tensor([1, 1, 1]))
    for outputs in (by_label, by_time):
        assert not torch.allclose(outputs[0], outputs[1]) and not torch.allclose(outputs[1], outputs[2])
    # an int t is the same timestep for the batch, labels=None the null label (3) for every image
    assert torch.equal(model(x, 10, torch.tensor([0, 1, 2])), model(x, torch.full((3,), 10), torch.tensor([0, 1, 2])))
    assert torch.equal(model(x, 10), model(x, 10, torch.full((3,), 3)))
    assert model.label_embedding.num_embeddings == 4


def test_gradients_reach_every_parameter_once_the_head_has_moved():
    model = DiffusionUNet(1, base_width=4, depth=2, num_classes=2, embed_dim=8)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    x, t, labels = torch.randn(4, 1, 8, 8), torch.tensor([1, 5, 50, 500]), torch.tensor([0, 1, 2, 0])
    for _ in range(2):
        optimizer.zero_grad()
        (model(x, t, labels) - x).pow(2).mean().backward()
        optimizer.step()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_bad_input_is_explained():
    model = DiffusionUNet(1, base_width=4, depth=1, num_classes=2, embed_dim=8)
    x = torch.zeros(2, 1, 8, 8)
    with pytest.raises(ValueError, match="one timestep per image"):
        model(x, torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match="non-negative"):
        model(x, -1)
    with pytest.raises(TypeError, match="int or a tensor"):
        model(x, "10")
    with pytest.raises(ValueError, match=r"\[0, 2\].*null label"):
        model(x, 1, torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="labels.long"):
        model(x, 1, torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="one label per image"):
        model(x, 1, torch.tensor([0]))
    with pytest.raises(ValueError, match="unconditional"):
        DiffusionUNet(1, base_width=4, depth=1, embed_dim=8)(x, 1, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"DiffusionUNet\(in_channels=3\)"):
        model(torch.zeros(2, 3, 8, 8), 1)
    with pytest.raises(ValueError, match="even"):
        DiffusionUNet(embed_dim=7)
    with pytest.raises(ValueError, match="num_classes"):
        DiffusionUNet(num_classes=0)
    with pytest.raises(ValueError, match="unsqueeze"):
        model(torch.zeros(1, 8, 8), 1)
    with pytest.raises(ValueError, match=r"\[0, 1000\) \(T = 1000\), got up to 1000"):
        model(x, 1000)
    short = DiffusionUNet(1, base_width=4, depth=1, embed_dim=8, timesteps=20)
    assert short(x, 19).shape == x.shape
    with pytest.raises(ValueError, match="DiffusionUNet\\(timesteps=T\\)"):
        short(x, torch.tensor([3, 20]))
