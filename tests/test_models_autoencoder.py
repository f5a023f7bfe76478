"""KLAutoencoder: the spatial latent's shape, the [0, 1] output, the VAE interface, training with vae_step,
latent diffusion's LatentSpace over it, bad input."""

import pytest
import torch

from cvcourse.diffusion import LatentSpace
from cvcourse.generative.training import train_vae
from cvcourse.models import KLAutoencoder

pytestmark = pytest.mark.usefixtures("one_thread")


def small_autoencoder(channels: int = 1) -> KLAutoencoder:
    torch.manual_seed(0)
    return KLAutoencoder(4, channels=channels, width=8)


@pytest.mark.parametrize("size", [28, 32, 64])
@pytest.mark.parametrize("channels", [1, 3])
def test_latent_map_is_a_quarter_of_the_image_size_with_4_channels(size, channels):
    model = small_autoencoder(channels)
    images = torch.rand(2, channels, size, size)
    mu, logvar = model.encode(images)
    assert mu.shape == logvar.shape == (2, 4, size // 4, size // 4)
    reconstruction, mu_again, _ = model(images)
    assert reconstruction.shape == images.shape and torch.equal(mu, mu_again)
    assert 0 <= reconstruction.min() and reconstruction.max() <= 1
    assert torch.equal(model.reconstruct(images), model.decode(mu))


def test_training_with_the_vae_step_lowers_the_reconstruction_error():
    model = small_autoencoder()
    torch.manual_seed(1)
    images = torch.rand(64, 1, 7, 7).repeat_interleave(4, dim=-1).repeat_interleave(4, dim=-2)  # fits in 7 x 7
    before = (model.reconstruct(images) - images).pow(2).mean()
    train_vae(model, images, steps=60, batch_size=16, lr=3e-3, beta=1e-3, progress=False)
    after = (model.reconstruct(images) - images).pow(2).mean()
    assert after < 0.5 * before


def test_latent_space_encodes_to_the_posterior_mean_with_unit_variance():
    model = small_autoencoder()
    images = torch.rand(32, 1, 28, 28)
    space = LatentSpace(model).fit(images)
    latents = space.encode(images)
    assert latents.shape == space.latent_shape(32) == (32, 4, 7, 7)
    assert latents.std().item() == pytest.approx(1.0, rel=1e-4)
    torch.testing.assert_close(latents, model.encode(images)[0] * space.scale_factor)
    torch.testing.assert_close(space.decode(latents), model.reconstruct(images))


@pytest.mark.parametrize("images, message", [
    (torch.rand(2, 3, 28, 28), r"shape \(B, 1, H, W\)"),
    (torch.rand(1, 28, 28), r"shape \(B, 1, H, W\)"),
    (torch.rand(2, 1, 30, 30), "multiples of 4"),
    (torch.rand(2, 1, 28, 28) * 2 - 1, r"\(images \+ 1\) / 2"),
])
def test_bad_images_get_an_error_naming_the_fix(images, message):
    with pytest.raises(ValueError, match=message):
        small_autoencoder().encode(images)


def test_bad_latents_and_sizes_get_clear_errors():
    with pytest.raises(ValueError, match=r"latents of shape \(B, 4, h, w\)"):
        small_autoencoder().decode(torch.randn(2, 3, 7, 7))
    with pytest.raises(ValueError, match=">= 1"):
        KLAutoencoder(0)


def test_mean_pixel_starts_the_decoder_at_the_average_brightness():
    torch.manual_seed(0)
    model = KLAutoencoder(4, width=8, mean_pixel=0.1)
    with torch.no_grad():
        model.decoder[-2].weight.zero_()  # only the bias is left
    assert model.decode(torch.randn(2, 4, 7, 7)).mean().item() == pytest.approx(0.1)
    with pytest.raises(ValueError, match=r"images.mean\(\)"):
        KLAutoencoder(mean_pixel=1.5)
