"""Degradations of test images: the noise's statistics, low light's gain and 8-bit levels, brightening back, a seed
that fixes the noise, the random augmentation on a detection scene, and clear errors for bad input."""

import pytest
import torch
from torchvision import tv_tensors

from cvcourse.data import (
    RandomDegradation,
    brighten,
    detection_scenes,
    gaussian_noise,
    low_light,
    low_light_noise_std,
)

GREY = torch.full((4, 3, 64, 64), 0.5)  # far from 0 and 1: clipping cuts off almost none of the noise


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_gaussian_noise_has_zero_mean_and_the_asked_std_and_is_clipped():
    for std in (0.05, 0.1, 0.15):
        noise = gaussian_noise(GREY, std, generator=seeded()) - GREY
        assert noise.mean().item() == pytest.approx(0.0, abs=3e-3)
        assert noise.std().item() == pytest.approx(std, rel=0.02)
    heavy = gaussian_noise(GREY, 0.5, generator=seeded())
    assert heavy.min() == 0 and heavy.max() == 1  # clipped, as a camera would
    assert torch.equal(gaussian_noise(GREY, 0.0), GREY)


def test_low_light_scales_by_the_gain_rounds_to_8_bits_and_brightens_back_to_known_noise():
    gain, read_noise = 0.25, 0.02
    dark = low_light(GREY, gain, read_noise, generator=seeded())
    assert dark.mean().item() == pytest.approx(gain * 0.5, abs=1e-3)
    assert torch.allclose(dark * 255, (dark * 255).round(), atol=1e-4)  # 8-bit levels
    noise = brighten(dark, gain) - GREY
    assert noise.mean().item() == pytest.approx(0.0, abs=3e-3)
    assert noise.std().item() == pytest.approx(low_light_noise_std(gain, read_noise), rel=0.03)
    assert low_light_noise_std(gain, read_noise) == pytest.approx(0.08)
    assert torch.equal(low_light(GREY, 1.0, 0.0), (GREY * 255).round() / 255)


def test_in_the_dark_clipping_cuts_off_noise_below_zero():
    black = torch.zeros(2, 3, 32, 32)
    brightened = brighten(low_light(black, 0.1, 0.03, generator=seeded()), 0.1)
    assert brightened.min() == 0 and brightened.mean() > 0.05  # the negative half of the noise is gone


def test_a_generator_fixes_the_noise_and_a_single_image_works():
    assert torch.equal(gaussian_noise(GREY, 0.1, generator=seeded(3)), gaussian_noise(GREY, 0.1, generator=seeded(3)))
    assert not torch.equal(gaussian_noise(GREY, 0.1, generator=seeded(3)),
                           gaussian_noise(GREY, 0.1, generator=seeded(4)))
    assert torch.equal(low_light(GREY, 0.3, 0.02, generator=seeded(1)), low_light(GREY, 0.3, 0.02, generator=seeded(1)))
    assert gaussian_noise(GREY[0], 0.1).shape == (3, 64, 64)


@pytest.mark.parametrize("call, message", [
    (lambda: gaussian_noise(GREY * 3, 0.1), r"in \[0, 1\].*clamp"),
    (lambda: gaussian_noise(GREY.to(torch.uint8), 0.1), r"float images.*/ 255"),
    (lambda: gaussian_noise(GREY[0, 0], 0.1), r"shape \(64, 64\)"),
    (lambda: gaussian_noise(GREY[:, :2], 0.1), r"\(N, 3, H, W\)"),
    (lambda: gaussian_noise(GREY, -0.1), "std is a standard deviation"),
    (lambda: gaussian_noise(GREY.numpy(), 0.1), "torch.from_numpy"),
    (lambda: low_light(GREY, 0.0, 0.02), r"gain .* \(0, 1\]"),
    (lambda: low_light(GREY, 1.5, 0.02), r"gain .* \(0, 1\]"),
    (lambda: low_light(GREY, 0.5, float("nan")), "read_noise"),
    (lambda: brighten(GREY, -1), "gain"),
    (lambda: RandomDegradation(0.5, 2.0, 0.02), "gain"),
])
def test_bad_input_is_refused_with_the_fix(call, message):
    with pytest.raises((ValueError, TypeError), match=message):
        call()


def test_the_random_degradation_changes_the_image_only_and_draws_both_kinds():
    image, target = detection_scenes("train", 1, 64)[0]
    augment = RandomDegradation(max_noise_std=0.3, min_gain=0.1, read_noise=0.03)
    torch.manual_seed(0)
    kinds = {"gain" if "gain" in augment.make_params([image]) else "std" for _ in range(20)}
    assert kinds == {"gain", "std"}
    degraded, same = augment(image, target)
    assert isinstance(degraded, tv_tensors.Image) and degraded.shape == image.shape
    assert 0 <= degraded.min() and degraded.max() <= 1 and not torch.equal(degraded, image)
    for key in ("boxes", "labels", "masks"):
        assert torch.equal(same[key], target[key])
    assert augment(image.as_subclass(torch.Tensor)).shape == image.shape  # a plain tensor is an image too
