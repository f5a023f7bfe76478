"""Classical denoisers: the median filter against scipy's, the Gaussian filter's kernel and its identity at zero, and
tuning by PSNR that blurs more where there is more noise."""

import numpy as np
import pytest
import scipy.ndimage
import torch

from cvcourse.data import detection_scenes, gaussian_noise
from cvcourse.filters import gaussian_filter, median_filter, tune_filter


@pytest.mark.parametrize("size", [1, 3, 5])
def test_the_median_filter_matches_scipy_with_mirrored_borders(size):
    images = torch.rand(3, 2, 13, 17, generator=torch.Generator().manual_seed(size))
    expected = scipy.ndimage.median_filter(images.numpy(), size=(1, 1, size, size), mode="mirror")
    np.testing.assert_array_equal(median_filter(images, size, chunk_size=2).numpy(), expected)


def test_the_median_filter_removes_an_outlier_and_keeps_an_edge():
    image = torch.zeros(1, 1, 9, 9)
    image[..., :, 5:] = 1.0  # an edge
    spiked = image.clone()
    spiked[0, 0, 2, 2] = 1.0  # an isolated outlier
    assert torch.equal(median_filter(spiked, 3), image)


def test_the_gaussian_filter_keeps_the_mean_and_changes_nothing_at_zero():
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    assert torch.equal(gaussian_filter(images, 0.0), images)
    blurred = gaussian_filter(images, 1.5)
    assert blurred.std() < images.std()
    assert blurred.mean().item() == pytest.approx(images.mean().item(), abs=1e-2)


@pytest.mark.parametrize("call, message", [
    (lambda: median_filter(torch.rand(1, 3, 8, 8), 4), "odd int"),
    (lambda: median_filter(torch.rand(3, 8, 8), 3), r"unsqueeze\(0\)"),
    (lambda: gaussian_filter(torch.rand(1, 3, 8, 8), -1.0), "blur_sigma"),
    (lambda: tune_filter(gaussian_filter, [], torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8)), "at least one"),
    (lambda: tune_filter(gaussian_filter, [1.0], torch.rand(2, 3, 8, 8) * 3, torch.rand(2, 3, 8, 8)), r"\[0, 1\]"),
])
def test_bad_input_is_refused(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_tuning_picks_a_stronger_filter_for_stronger_noise():
    scenes = detection_scenes("val", 4, 64)
    clean = torch.stack([scenes[i][0].as_subclass(torch.Tensor) for i in range(len(scenes))])
    sigmas = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0)
    picked = [tune_filter(gaussian_filter, sigmas, gaussian_noise(clean, std, generator=torch.Generator()
                                                                  .manual_seed(0)), clean)
              for std in (0.02, 0.1, 0.4)]
    assert picked[0] < picked[1] < picked[2]
    assert tune_filter(median_filter, (1, 3, 5), gaussian_noise(clean, 0.3), clean) > 1
