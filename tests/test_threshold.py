"""Otsu's threshold against scikit-image, and connected objects against scipy / scikit-image."""

import numpy as np
import pytest
import torch
from skimage.filters import threshold_otsu
from skimage.measure import label as skimage_label

from cvcourse.segmentation import (
    between_class_variance,
    count_objects,
    label_objects,
    otsu_threshold,
    threshold,
)


def bimodal(generator, shape=(40, 50), dark=0.3, bright=0.7, bright_fraction=0.3, spread=0.06):
    is_bright = torch.rand(shape, generator=generator) < bright_fraction
    image = torch.where(is_bright, bright, dark) + spread * torch.randn(shape, generator=generator)
    return image, is_bright


def random_images(count: int = 60):
    """Uniform, log-normal, bimodal and integer-valued images of various sizes and ranges."""
    generator = torch.Generator().manual_seed(0)
    for i in range(count):
        shape = (8 + i % 23, 12 + i % 17)
        kind = i % 4
        if kind == 0:
            yield torch.rand(shape, generator=generator, dtype=torch.float64) * (1 + i)
        elif kind == 1:
            yield torch.randn(shape, generator=generator, dtype=torch.float64).exp()
        elif kind == 2:
            fraction = 0.05 + 0.9 * torch.rand((), generator=generator).item()
            yield bimodal(generator, shape, bright_fraction=fraction)[0].double()
        else:
            yield torch.randint(-50, 300, shape, generator=generator).double()


def test_otsu_matches_skimage_within_one_bin_on_many_images():
    for image in random_images():
        bin_width = (image.max() - image.min()).item() / 256
        assert abs(otsu_threshold(image) - threshold_otsu(image.numpy())) <= bin_width


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int16, torch.int64])
def test_otsu_matches_skimage_exactly_on_integer_images(dtype):
    """scikit-image histograms an integer image with one bin per value; so does the course, so they agree exactly."""
    generator = torch.Generator().manual_seed(3)
    for i in range(20):
        image, _ = bimodal(generator, (24 + i, 31), bright_fraction=0.1 + 0.04 * i)
        image = (image * (200 if i % 2 else 255)).round().clamp(0, 255).to(dtype)
        assert otsu_threshold(image) == threshold_otsu(image.numpy())
        expected = image.numpy() > threshold_otsu(image.numpy())
        assert (threshold(image, otsu_threshold(image)).numpy() == expected).all()


@pytest.mark.parametrize("bins", [16, 64, 1000])
def test_otsu_matches_skimage_for_other_bin_counts(bins):
    image = bimodal(torch.Generator().manual_seed(1))[0].double()
    bin_width = (image.max() - image.min()).item() / bins
    assert abs(otsu_threshold(image, bins=bins) - threshold_otsu(image.numpy(), nbins=bins)) <= bin_width


def test_otsu_separates_a_bimodal_image():
    image, is_bright = bimodal(torch.Generator().manual_seed(2), bright_fraction=0.2)
    t = otsu_threshold(image)
    assert 0.4 < t < 0.6  # between the modes 0.3 and 0.7, not at the mean (about 0.38)
    mask = threshold(image, t)
    assert mask.dtype == torch.bool and mask.shape == image.shape
    assert (mask == is_bright).float().mean() > 0.99
    assert otsu_threshold(image) == t  # deterministic


def test_between_class_variance_plus_within_class_variance_is_the_total_variance():
    image = torch.randn(30, 30, generator=torch.Generator().manual_seed(3)).exp()
    centres, between = between_class_variance(image, bins=32)
    assert centres.shape == (32,) and between.shape == (31,)
    histogram = torch.histc(image.double(), bins=32, min=image.min().item(), max=image.max().item())
    values = centres.repeat_interleave(histogram.long())  # every pixel moved to its bin centre
    for k in [0, 5, 17, 30]:
        dark, bright = values[values <= centres[k]], values[values > centres[k]]
        if len(dark) == 0 or len(bright) == 0:
            assert between[k].isnan()
            continue
        within = (len(dark) * dark.var(correction=0) + len(bright) * bright.var(correction=0)) / len(values)
        assert (between[k] + within).item() == pytest.approx(values.var(correction=0).item())


def test_otsu_threshold_of_an_image_with_two_values_lies_between_them():
    image = torch.tensor([[0.2, 0.2, 0.8], [0.8, 0.8, 0.2]])
    t = otsu_threshold(image)
    assert 0.2 <= t < 0.8 and torch.equal(threshold(image, t), image > 0.5)


def two_squares_touching_at_a_corner_and_a_bar() -> torch.Tensor:
    mask = torch.zeros(8, 10, dtype=torch.bool)
    mask[1:3, 1:3] = True
    mask[3:5, 3:5] = True  # touches the first square diagonally only
    mask[:, 8] = True
    return mask


def test_count_objects_depends_on_the_connectivity():
    mask = two_squares_touching_at_a_corner_and_a_bar()
    assert count_objects(mask) == 3
    assert count_objects(mask, connectivity=8) == 2
    assert count_objects(torch.zeros(4, 4, dtype=torch.long)) == 0


@pytest.mark.parametrize("connectivity, skimage_connectivity", [(4, 1), (8, 2)])
def test_label_objects_matches_skimage(connectivity, skimage_connectivity):
    mask = torch.rand(32, 40, generator=torch.Generator().manual_seed(4)) < 0.4
    labels = label_objects(mask, connectivity)
    assert labels.dtype == torch.int64 and labels.shape == mask.shape
    np.testing.assert_array_equal(labels.numpy(), skimage_label(mask.numpy(), connectivity=skimage_connectivity))
    assert torch.equal(labels > 0, mask)


def test_bad_images_are_explained():
    with pytest.raises(ValueError, match=r"grayscale image \(H, W\), got shape \(3, 8, 8\).*rgb_to_grayscale"):
        otsu_threshold(torch.rand(3, 8, 8))
    with pytest.raises(ValueError, match=r"no threshold separates a constant image \(every pixel is 0.5\)"):
        otsu_threshold(torch.full((8, 8), 0.5))
    with pytest.raises(ValueError, match="NaN or infinite.*nan_to_num"):
        otsu_threshold(torch.tensor([[0.0, float("nan")], [1.0, 0.5]]))
    with pytest.raises(ValueError, match="bins should be an integer >= 2, got 1"):
        otsu_threshold(torch.rand(8, 8), bins=1)
    with pytest.raises(TypeError, match="expected an image tensor"):
        otsu_threshold(np.random.rand(8, 8))


def test_bad_masks_are_explained():
    with pytest.raises(ValueError, match=r"one binary mask \(H, W\), got \(2, 4, 4\)"):
        label_objects(torch.zeros(2, 4, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"got dtype torch.float32.*mask > 0.5"):
        count_objects(torch.rand(4, 4))
    with pytest.raises(ValueError, match=r"0s and 1s, got values \[0, 1, 2\].*labels > 0"):
        count_objects(torch.tensor([[0, 1, 2]]))
    with pytest.raises(ValueError, match=r"connectivity should be 4 \(edge neighbours\) or 8 \(diagonals too\), got 6"):
        count_objects(torch.zeros(4, 4, dtype=torch.bool), connectivity=6)
