"""DDIM inversion and partial diffusion with a tiny model trained here for a few seconds on Gaussian blobs."""

import pytest
import torch

from cvcourse.diffusion import (
    NoiseSchedule,
    ddim_invert,
    ddim_reconstruct,
    ddim_sample,
    diffusion_loss,
    partial_diffusion,
)
from cvcourse.models.diffusion_unet import DiffusionUNet

SIZE, STEPS = 12, 10


def blobs(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """One Gaussian blob per image, in [-1, 1], at a random place and size; the label is the half it lies in."""
    centre = torch.rand(n, 2, generator=generator) * (SIZE - 5) + 2.5
    radius = torch.rand(n, generator=generator) + 1.5
    y, x = torch.meshgrid(torch.arange(SIZE).float(), torch.arange(SIZE).float(), indexing="ij")
    squared_distance = (x - centre[:, 0, None, None]) ** 2 + (y - centre[:, 1, None, None]) ** 2
    images = torch.exp(-squared_distance / (2 * radius[:, None, None] ** 2))
    return (images * 2 - 1)[:, None], (centre[:, 0] > SIZE / 2).long()


@pytest.fixture(scope="module")
def trained():
    """300 Adam steps (about 3 s on one core): the loss falls from 1 to about 0.05."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: one thread is fastest, and much faster on a busy CPU
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    schedule = NoiseSchedule.cosine(100)
    model = DiffusionUNet(1, base_width=8, depth=1, num_classes=2, embed_dim=32)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(300):
        images, labels = blobs(32, generator)
        loss = diffusion_loss(model, schedule, images, labels, drop_label_prob=0.2, generator=generator)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    yield model.eval(), schedule, loss.item()
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def held_out():
    return blobs(16, torch.Generator().manual_seed(123))


def mse(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).pow(2).mean().item()


def test_the_model_learned_something(trained):
    assert trained[2] < 0.15


def test_inversion_then_sampling_reconstructs_the_images(trained, held_out):
    """Measured: MSE 0.007 (seeds 0-4 of the training: 0.005-0.02) against 1.0 for samples from fresh noise."""
    model, schedule, _ = trained
    images, labels = held_out
    reconstruction = ddim_reconstruct(model, schedule, images, steps=STEPS, labels=labels)
    from_noise = ddim_sample(model, schedule, images.shape, steps=STEPS, labels=labels,
                             generator=torch.Generator().manual_seed(1))
    assert mse(reconstruction, images) < 0.04
    assert mse(reconstruction, images) < 0.05 * mse(from_noise, images)
    assert torch.equal(reconstruction, ddim_reconstruct(model, schedule, images, steps=STEPS, labels=labels))


def test_inverted_images_look_like_the_noise_the_sampler_starts_from(trained, held_out):
    model, schedule, _ = trained
    x_T = ddim_invert(model, schedule, held_out[0], steps=STEPS, labels=held_out[1])
    assert x_T.shape == held_out[0].shape
    assert abs(x_T.mean().item()) < 0.2 and 0.7 < x_T.std().item() < 1.3


def test_partial_diffusion_keeps_more_of_the_image_the_earlier_it_starts(trained, held_out):
    model, schedule, _ = trained
    images, labels = held_out
    errors = [mse(partial_diffusion(model, schedule, images, t_start, labels=labels,
                                    generator=torch.Generator().manual_seed(0)), images) for t_start in (5, 40, 99)]
    assert errors[0] < 0.01 and errors[0] < errors[1] < errors[2]
    ddim = [partial_diffusion(model, schedule, images, 40, steps=STEPS, eta=0.5, labels=labels,
                              generator=torch.Generator().manual_seed(0)) for _ in range(2)]
    assert torch.equal(ddim[0], ddim[1]) and mse(ddim[0], images) < errors[2]


def test_bad_input_is_explained(trained, held_out):
    model, schedule, _ = trained
    images = held_out[0]
    with pytest.raises(ValueError, match="eta=0.5 is a DDIM setting"):
        partial_diffusion(model, schedule, images, 10, eta=0.5)
    with pytest.raises(ValueError, match=r"t_start must be an int in \[0, T\) = \[0, 100\)"):
        partial_diffusion(model, schedule, images, 100)
    with pytest.raises(ValueError, match=r"steps must be an int in \[1, T\]"):
        ddim_invert(model, schedule, images, steps=101)
    with pytest.raises(ValueError, match=r"t_end must be an int in \[0, T\)"):
        ddim_invert(model, schedule, images, t_end=-1)
