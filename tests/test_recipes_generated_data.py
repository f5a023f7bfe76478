"""Chapter 11's recipe: the splits, the symmetries and repetition of a few pairs, the augmentation, bad input."""

import pytest
import torch
from torchvision import tv_tensors

from cvcourse.recipes import ch11_generated_training_data as ch11


@pytest.fixture(scope="module")
def cfg():
    return ch11.load("smoke", device="cpu")


def test_the_labelled_images_are_the_first_of_the_pool_and_the_splits_differ(cfg):
    pool_images, pool_masks = ch11.cells(cfg, "pool")
    images, masks = ch11.labelled(cfg, 5)
    assert torch.equal(images, pool_images[:5]) and torch.equal(masks, pool_masks[:5])
    test_masks, new_masks = ch11.cells(cfg, "test")[1], ch11.cells(cfg, "new masks")[1]
    assert len(new_masks) == cfg.generated_pairs and len(test_masks) == cfg.test_size
    assert not torch.equal(test_masks[:5], masks) and not torch.equal(new_masks[:5], masks)
    with pytest.raises(ValueError, match=r"K must lie in \[1, 64\]"):
        ch11.labelled(cfg, 65)


def test_symmetries_are_the_eight_exact_flips_and_turns_of_image_and_mask_together():
    images = torch.arange(2 * 9, dtype=torch.float32).reshape(2, 1, 3, 3)
    masks = (images[:, 0] > 4).long()
    turned, turned_masks = ch11.symmetries(images, masks)
    assert turned.shape == (16, 1, 3, 3) and turned_masks.shape == (16, 3, 3)
    assert len({tuple(image.flatten().tolist()) for image in turned}) == 16  # all distinct
    assert torch.equal(turned_masks, (turned[:, 0] > 4).long())  # each mask moved with its image
    assert torch.equal(turned[:2], images)
    assert len(ch11.symmetries(images)) == 1


def test_repeated_fills_a_batch_with_whole_copies():
    images, masks = torch.rand(3, 1, 4, 4), torch.randint(0, 2, (3, 4, 4))
    more_images, more_masks = ch11.repeated((images, masks), 8)
    assert len(more_images) == 9 and torch.equal(more_images[3:6], images) and torch.equal(more_masks[6:], masks)
    assert len(ch11.repeated((images,), 2)[0]) == 3


def test_strong_augmentation_moves_the_mask_with_the_image(cfg):
    torch.manual_seed(0)
    images, masks = ch11.cells(cfg, "pool")
    augment = ch11.strong_augmentation(cfg)
    image, mask = augment(tv_tensors.Image(images[0]), tv_tensors.Mask(masks[0]))
    assert image.shape == images[0].shape and mask.shape == masks[0].shape
    assert set(mask.unique().tolist()) <= {0, 1}
    assert not torch.equal(image, images[0])
    bright_inside = image[0][mask == 1].mean() - image[0][mask == 0].mean()
    assert bright_inside > 0  # the cells are still where the mask says


def test_an_unknown_regime_is_refused(cfg):
    with pytest.raises(ValueError, match="unknown regime 'mixup'.*real, augmented"):
        ch11.regime_data(cfg, 5, "mixup")
    assert ch11.regime_data(cfg, 5, "real")[2] is False
