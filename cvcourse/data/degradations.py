"""Degraded images for testing a detector: Gaussian noise and low light, and both as a random augmentation.

Michaelis et al. 2019 ("Benchmarking Robustness in Object Detection") measure detectors on test images corrupted at
several strengths, with the corruptions of ImageNet-C (Hendrycks & Dietterich 2019). Two of them here:

- ``gaussian_noise``: ``y = x + s n`` with ``n ~ N(0, I)``, ImageNet-C's Gaussian noise;
- ``low_light``: a short exposure, as a camera records it: ``y = gain x + read_noise n``, then rounded to 8 bits.
  ``brighten`` divides by the known gain again: ``y / gain = x + (read_noise / gain) n``, Gaussian noise of
  standard deviation ``read_noise / gain`` (plus the rounding, amplified by ``1 / gain``).

Every result is clipped to [0, 1], as a camera does and as ImageNet-C does. The price: where the clean image is near
0 or 1 the noise is cut off, so it is no longer exactly Gaussian of known standard deviation, the model that
purification (``cvcourse.diffusion.purification``) assumes; whether the denoisers survive that is part of what is
measured. Without clipping, a brightened low-light image would be Gaussian noise again (but for the rounding), and
the second degradation would measure nothing new. With it, the dark parts of a scene, recorded a few levels above
zero, lose the negative half of their noise: brighter and less noisy than the Gaussian model says.

Every function takes float images (3, H, W) or (N, 3, H, W) (grey ones too) in [0, 1], and an optional
``torch.Generator`` for the noise (drawn on the generator's device, then moved), so that a seed fixes it.
"""

from __future__ import annotations

import math

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

MAX_8_BIT = 255  # an 8-bit camera records the levels 0 to 255


def check_unit_images(images: torch.Tensor, what: str) -> None:
    """Raise unless ``images`` is one float image (C, H, W) or a batch (N, C, H, W) of grey or RGB images in [0, 1]."""
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"{what} takes a tensor of images, got {type(images).__name__}; stack a list with "
                        "torch.stack, convert an array with torch.from_numpy.")
    if images.ndim not in (3, 4) or images.shape[-3] not in (1, 3):
        raise ValueError(f"{what} takes one image (3, H, W) or a batch (N, 3, H, W) (grey: 1 channel), got shape "
                         f"{tuple(images.shape)}; add or move the channel dimension.")
    if not images.is_floating_point():
        raise ValueError(f"{what} takes float images in [0, 1], got {images.dtype}; convert 8-bit images with "
                         "images.float() / 255.")
    if not ((images >= 0) & (images <= 1)).all():
        raise ValueError(f"{what} takes images in [0, 1], got values in [{images.min().item():.3g}, "
                         f"{images.max().item():.3g}] (or NaN); clip them with images.clamp(0, 1) or map [-1, 1] "
                         "to [0, 1] with (images + 1) / 2.")


def check_gain(gain: float) -> None:
    """Raise unless ``0 < gain <= 1``: the share of the light the short exposure keeps."""
    if isinstance(gain, bool) or not isinstance(gain, (int, float)) or not 0 < gain <= 1:
        raise ValueError(f"gain is the share of the light a short exposure keeps and must lie in (0, 1], got "
                         f"{gain!r}; e.g. 0.1 for ten times less light, 1 for a normal exposure.")


def check_std(std: float, name: str) -> None:
    """Raise unless ``std`` is a finite standard deviation >= 0."""
    if isinstance(std, bool) or not isinstance(std, (int, float)) or not 0 <= std < math.inf:
        raise ValueError(f"{name} is a standard deviation on [0, 1] images and must be a number >= 0, got {std!r}; "
                         "e.g. 0.1 for mild noise, 0.5 for heavy noise.")


def standard_normal(images: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """N(0, I) noise of the images' shape drawn from ``generator`` (on its device), on the images' device."""
    device = generator.device if generator is not None else images.device
    return torch.randn(images.shape, generator=generator, device=device).to(images.device, images.dtype)


def gaussian_noise(images: torch.Tensor, std: float, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """``clip(x + std n, 0, 1)`` with ``n ~ N(0, I)``: ImageNet-C's Gaussian noise of standard deviation ``std``."""
    check_unit_images(images, "gaussian_noise")
    check_std(std, "std")
    return (images + std * standard_normal(images, generator)).clamp(0, 1)


def low_light(images: torch.Tensor, gain: float, read_noise: float, *,
              generator: torch.Generator | None = None) -> torch.Tensor:
    """A short exposure as an 8-bit camera records it: ``y = gain x + read_noise n``, clipped to [0, 1] and rounded
    to 1/255. ``gain`` in (0, 1] is the light kept; ``read_noise`` the sensor's noise, whatever the light."""
    check_unit_images(images, "low_light")
    check_gain(gain)
    check_std(read_noise, "read_noise")
    recorded = (gain * images + read_noise * standard_normal(images, generator)).clamp(0, 1)
    return (recorded * MAX_8_BIT).round() / MAX_8_BIT


def brighten(images: torch.Tensor, gain: float) -> torch.Tensor:
    """A low-light image divided by its known ``gain`` (clipped to [0, 1]): the clean image plus noise of standard
    deviation ``read_noise / gain``, cut off at 0 and 1."""
    check_unit_images(images, "brighten")
    check_gain(gain)
    return (images / gain).clamp(0, 1)


def low_light_noise_std(gain: float, read_noise: float) -> float:
    """The noise's standard deviation in a brightened low-light image: ``read_noise / gain``."""
    check_gain(gain)
    check_std(read_noise, "read_noise")
    return read_noise / gain


class RandomDegradation(v2.Transform):
    """A ``transforms.v2`` augmentation that degrades each image at a random strength, half the time with Gaussian
    noise of a standard deviation drawn from U(0, ``max_noise_std``), half the time with low light at a gain drawn
    log-uniformly from [``min_gain``, 1] and ``read_noise``, brightened again (as a detector sees it). Only the image
    changes: boxes, masks and labels pass through. The noise comes from torch's global generator."""

    _transformed_types = (tv_tensors.Image, lambda item: type(item) is torch.Tensor)

    def __init__(self, max_noise_std: float, min_gain: float, read_noise: float) -> None:
        super().__init__()
        check_std(max_noise_std, "max_noise_std")
        check_gain(min_gain)
        check_std(read_noise, "read_noise")
        self.max_noise_std, self.min_gain, self.read_noise = max_noise_std, min_gain, read_noise

    def make_params(self, flat_inputs: list) -> dict:
        low_light_now = bool(torch.rand(()) < 0.5)
        fraction = torch.rand(()).item()
        if low_light_now:
            return {"gain": math.exp(math.log(self.min_gain) * fraction)}
        return {"std": self.max_noise_std * fraction}

    def transform(self, item: torch.Tensor, params: dict) -> torch.Tensor:
        image = item.as_subclass(torch.Tensor)
        if "gain" in params:
            degraded = brighten(low_light(image, params["gain"], self.read_noise), params["gain"])
        else:
            degraded = gaussian_noise(image, params["std"])
        return tv_tensors.wrap(degraded, like=item) if isinstance(item, tv_tensors.Image) else degraded

    _get_params, _transform = make_params, transform  # the names torchvision before 0.21 calls
