"""RePaint inpainting: kept pixels exact, the rest from the model, checked with an oracle noise predictor."""

import pytest
import torch

from cvcourse.diffusion import NoiseSchedule, renoise, repaint

SCHEDULE = NoiseSchedule.cosine(100)


class Oracle(torch.nn.Module):
    """The exact noise predictor for data that is always the one image ``target``:
    eps = (x_t - sqrt(ab) x*) / sqrt(1 - ab)."""

    def __init__(self, target):
        super().__init__()
        self.target = torch.nn.Parameter(target, requires_grad=False)

    def forward(self, x, t, labels=None):
        alpha_bar = SCHEDULE.alpha_bar[t].to(x)[:, None, None, None]
        return (x - alpha_bar.sqrt() * self.target) / (1 - alpha_bar).sqrt()


def target_and_image():
    generator = torch.Generator().manual_seed(0)
    target = torch.rand(1, 1, 8, 8, generator=generator) * 2 - 1
    image = torch.rand(2, 1, 8, 8, generator=generator) * 2 - 1
    keep = torch.ones(1, 1, 8, 8, dtype=torch.bool)
    keep[..., 2:6, 2:6] = False
    return target, image, keep


@pytest.mark.parametrize("resample", [1, 3])
def test_kept_pixels_are_exact_and_the_hole_is_the_model_s(resample):
    target, image, keep = target_and_image()
    filled = repaint(Oracle(target), SCHEDULE, image, keep, steps=10, resample=resample,
                     generator=torch.Generator().manual_seed(1))
    assert filled.shape == image.shape
    assert torch.equal(filled[keep.expand_as(image)], image[keep.expand_as(image)])
    hole = ~keep.expand_as(image)
    assert (filled - target.expand_as(image))[hole].abs().max() < 1e-3


def test_repaint_is_deterministic_with_a_generator():
    target, image, keep = target_and_image()
    runs = [repaint(Oracle(target * 0.5), SCHEDULE, image, keep, steps=4, generator=torch.Generator().manual_seed(2))
            for _ in range(2)]
    assert torch.equal(*runs)


def test_renoise_is_the_forward_process_between_two_timesteps():
    x_prev = torch.full((20000,), 0.5)
    noised = renoise(SCHEDULE, x_prev, 9, 49, torch.randn(20000, generator=torch.Generator().manual_seed(0)))
    ratio = SCHEDULE.alpha_bar[49] / SCHEDULE.alpha_bar[9]
    assert noised.mean().item() == pytest.approx(0.5 * ratio.sqrt().item(), abs=0.02)
    assert noised.var().item() == pytest.approx(1 - ratio.item(), abs=0.02)
    clean = torch.zeros(3)
    assert torch.allclose(renoise(SCHEDULE, clean, -1, 99, torch.ones(3)), SCHEDULE.alpha_bar[99].neg().add(1).sqrt()
                          * torch.ones(3))


@pytest.mark.parametrize("keep, resample, match", [
    (torch.ones(1, 1, 8, 8), 1, "bool"),
    (torch.ones(1, 8, 8, dtype=torch.bool), 1, "broadcast"),
    (torch.ones(3, 1, 8, 8, dtype=torch.bool), 1, "broadcast"),
    (torch.ones(1, 1, 8, 8, dtype=torch.bool), 0, "resample"),
])
def test_bad_masks_and_settings_are_named(keep, resample, match):
    target, image, _ = target_and_image()
    with pytest.raises(ValueError, match=match):
        repaint(Oracle(target), SCHEDULE, image, keep, steps=4, resample=resample)
