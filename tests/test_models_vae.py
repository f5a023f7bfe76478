"""VAE: encoder and decoder shapes, the decoder's [0, 1] range, the reparameterised forward pass, sampling,
bad input."""

import pytest
import torch
from torch import nn

from cvcourse.models import VAE
from cvcourse.models.vae import reparameterize

LATENT = 6


pytestmark = pytest.mark.usefixtures("one_thread")


def small_vae(image_size: int = 28, channels: int = 1) -> VAE:
    torch.manual_seed(0)
    return VAE(LATENT, image_size=image_size, channels=channels, width=8)


@pytest.mark.parametrize("image_size", [28, 32, 64])
@pytest.mark.parametrize("channels", [1, 3])
def test_encode_decode_and_forward_shapes(image_size, channels):
    model = small_vae(image_size, channels)
    images = torch.rand(4, channels, image_size, image_size)
    mu, logvar = model.encode(images)
    assert mu.shape == logvar.shape == (4, LATENT)
    assert model.decode(mu).shape == images.shape
    reconstruction, mu_again, logvar_again = model(images)
    assert reconstruction.shape == images.shape
    assert torch.equal(mu, mu_again) and torch.equal(logvar, logvar_again)


def test_decoder_output_lies_in_0_1_through_a_sigmoid():
    model = small_vae()
    assert isinstance(model.decoder[-1], nn.Sigmoid)
    images = model.decode(10 * torch.randn(16, LATENT))  # wide latents push the sigmoid towards its bounds
    assert images.min() >= 0 and images.max() <= 1
    assert images.std() > 0


def test_forward_decodes_a_reparameterised_sample_of_the_posterior():
    model = small_vae()
    images = torch.rand(3, 1, 28, 28)
    torch.manual_seed(5)
    reconstruction, mu, logvar = model(images)
    torch.manual_seed(5)
    expected = model.decode(reparameterize(mu, logvar))
    torch.testing.assert_close(reconstruction, expected)
    assert not torch.equal(reconstruction, model.decode(mu))  # the sample is noisy, not the mean


def test_encoder_halves_the_size_at_every_level_and_decoder_mirrors_it():
    model = small_vae(32)
    down = [m for m in model.encoder if isinstance(m, nn.Conv2d)]
    up = [m for m in model.decoder if isinstance(m, nn.ConvTranspose2d)]
    assert [m.out_channels for m in down] == [8, 16, 32]
    assert [m.out_channels for m in up] == [16, 8, 1]
    assert all(m.stride == (2, 2) and m.kernel_size == (4, 4) for m in down + up)


def test_gradients_reach_every_parameter():
    model = small_vae()
    reconstruction, mu, logvar = model(torch.rand(2, 1, 28, 28))
    (reconstruction.sum() + mu.sum() + logvar.sum()).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_sample_decodes_the_prior_reproducibly_on_the_cpu():
    model = small_vae()
    images = model.sample(5, generator=torch.Generator().manual_seed(1))
    assert images.shape == (5, 1, 28, 28) and images.device.type == "cpu" and not images.requires_grad
    assert images.min() >= 0 and images.max() <= 1
    z = torch.randn(5, LATENT, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(images, model.decode(z))
    assert torch.equal(images, model.sample(5, generator=torch.Generator().manual_seed(1)))
    assert not torch.equal(images, model.sample(5, generator=torch.Generator().manual_seed(2)))


@pytest.mark.parametrize("shape", [(2, 3, 28, 28), (2, 1, 32, 32), (1, 28, 28), (2, 1, 28, 30)])
def test_refuses_images_of_the_wrong_shape(shape):
    with pytest.raises(ValueError, match=r"The VAE expects images of shape \(B, 1, 28, 28\), got"):
        small_vae()(torch.rand(shape))


@pytest.mark.parametrize("low, high", [(-1.0, 1.0), (0.0, 255.0), (0.0, 1.01)])
def test_refuses_images_outside_0_1_and_says_how_to_map_them(low, high):
    images = torch.linspace(low, high, 2 * 28 * 28).reshape(2, 1, 28, 28)
    with pytest.raises(ValueError, match=r"images in \[0, 1\], got values in .*\(images \+ 1\) / 2"):
        small_vae().encode(images)


@pytest.mark.parametrize("shape", [(2, LATENT + 1), (2, LATENT, 1, 1), (LATENT,)])
def test_decoder_refuses_latents_of_the_wrong_shape(shape):
    with pytest.raises(ValueError, match=rf"latents of shape \(B, {LATENT}\), got"):
        small_vae().decode(torch.randn(shape))


@pytest.mark.parametrize("image_size", [30, 48, 17])
def test_refuses_image_sizes_without_a_plan(image_size):
    with pytest.raises(ValueError, match="4 or 7 times a power of two"):
        VAE(LATENT, image_size=image_size)


def test_reconstruct_decodes_the_posterior_mean_without_gradients():
    torch.manual_seed(0)
    model = VAE(4, width=4).eval()
    images = torch.rand(3, 1, 28, 28)
    reconstruction = model.reconstruct(images)
    assert torch.equal(reconstruction, model.decode(model.encode(images)[0]).detach())
    assert not reconstruction.requires_grad
