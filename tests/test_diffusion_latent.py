"""Latent diffusion glue: the scale factor gives unit-variance latents, decode undoes encode, bad autoencoders."""

import pytest
import torch
import torch.nn.functional as F

from cvcourse.diffusion import LatentSpace, NoiseSchedule, ddim_sample, diffusion_loss
from cvcourse.models.diffusion_unet import DiffusionUNet


class PoolingAutoencoder:
    """Averages 2x2 blocks into 2 latent channels of spread ~7 around 3; decoding inverts it for blocky images."""

    def encode(self, images):
        pooled = F.avg_pool2d(images, 2)
        return torch.cat([pooled, -pooled], dim=1) * 7 + 3

    def decode(self, latents):
        return F.interpolate((latents[:, :1] - 3) / 7, scale_factor=2, mode="nearest")


def blocky_images(n: int) -> torch.Tensor:
    coarse = torch.rand(n, 1, 4, 4, generator=torch.Generator().manual_seed(0)) * 2 - 1
    return F.interpolate(coarse, scale_factor=2, mode="nearest")


def test_fit_scales_the_latents_to_unit_variance_and_decode_undoes_encode():
    images = blocky_images(32)
    space = LatentSpace(PoolingAutoencoder()).fit(images)
    latents = space.encode(images)
    assert latents.shape == (32, 2, 4, 4) and space.latent_shape(5) == (5, 2, 4, 4)
    assert latents.std().item() == pytest.approx(1.0, abs=1e-4)
    expected = 1 / PoolingAutoencoder().encode(images).std().item()
    assert space.scale_factor == pytest.approx(expected)
    torch.testing.assert_close(space.decode(latents), images, atol=1e-5, rtol=1e-5)
    assert LatentSpace(PoolingAutoencoder(), scale_factor=0.5).encode(images).std().item() == pytest.approx(
        0.5 / expected, rel=1e-4)


def test_diffusion_trains_and_samples_in_latent_space():
    images = blocky_images(4)
    space = LatentSpace(PoolingAutoencoder()).fit(images)
    model, schedule = DiffusionUNet(2, base_width=4, depth=1, embed_dim=8), NoiseSchedule.cosine(20)
    loss = diffusion_loss(model, schedule, space.encode(images))
    loss.backward()
    assert torch.isfinite(loss) and model.unet.head.weight.grad is not None
    latents = ddim_sample(model, schedule, space.latent_shape(3), steps=4, clip_x0=False,
                          generator=torch.Generator().manual_seed(0))
    assert space.decode(latents).shape == (3, 1, 8, 8)


def test_bad_autoencoders_and_missing_scales_are_explained():
    with pytest.raises(TypeError, match=r"encode\(images\) -> latents and decode"):
        LatentSpace(torch.nn.Identity())
    with pytest.raises(ValueError, match="positive"):
        LatentSpace(PoolingAutoencoder(), scale_factor=0.0)
    space = LatentSpace(PoolingAutoencoder())
    with pytest.raises(ValueError, match=r"call fit\(images\)"):
        space.encode(blocky_images(2))
    with pytest.raises(ValueError, match="latent shape is known after"):
        LatentSpace(PoolingAutoencoder()).latent_shape(4)

    class Lists(PoolingAutoencoder):
        def encode(self, images):
            return super().encode(images).tolist()

    with pytest.raises(TypeError, match="must return a tensor"):
        LatentSpace(Lists()).fit(blocky_images(2))


def test_an_encoder_returning_a_posterior_is_encoded_to_its_mean():
    class VAE(PoolingAutoencoder):
        def encode(self, images):
            latents = super().encode(images)
            return latents, torch.full_like(latents, -3.0)  # (mu, logvar)

    images = blocky_images(4)
    torch.testing.assert_close(LatentSpace(VAE(), scale_factor=2.0).encode(images),
                               LatentSpace(PoolingAutoencoder(), scale_factor=2.0).encode(images))
