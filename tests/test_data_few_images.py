"""A few images made the most of: exact symmetries, crops and whole repetition, masks moved with their images."""

import pytest
import torch

from cvcourse.data.few_images import crops, repeated, symmetries


def test_symmetries_are_the_eight_exact_flips_and_turns_of_image_and_mask_together():
    images = torch.arange(2 * 9, dtype=torch.float32).reshape(2, 1, 3, 3)
    masks = (images[:, 0] > 4).long()
    turned, turned_masks = symmetries(images, masks)
    assert turned.shape == (16, 1, 3, 3) and turned_masks.shape == (16, 3, 3)
    assert len({tuple(image.flatten().tolist()) for image in turned}) == 16  # all distinct
    assert torch.equal(turned_masks, (turned[:, 0] > 4).long())  # each mask moved with its image
    assert torch.equal(turned[:2], images)
    assert len(symmetries(images)) == 1


def test_upright_images_keep_their_up_and_down_only_flipped_left_right():
    images = torch.arange(2 * 6, dtype=torch.float32).reshape(2, 1, 2, 3)
    flipped, = symmetries(images, upright=True)
    assert torch.equal(flipped, torch.cat([images, images.flip(-1)]))


def test_repeated_fills_a_batch_with_whole_copies():
    images, masks = torch.rand(3, 1, 4, 4), torch.randint(0, 2, (3, 4, 4))
    more_images, more_masks = repeated((images, masks), 8)
    assert len(more_images) == 9 and torch.equal(more_images[3:6], images) and torch.equal(more_masks[6:], masks)
    assert len(repeated((images,), 2)[0]) == 3


def test_crops_are_every_full_height_window_at_the_stride_masks_moved_along():
    images = torch.arange(2 * 3 * 10, dtype=torch.float32).reshape(2, 1, 3, 10)
    masks = (images[:, 0] % 2).long()
    cropped, cropped_masks = crops(images, masks, width=4, stride=3)
    assert cropped.shape == (6, 1, 3, 4) and cropped_masks.shape == (6, 3, 4)  # left edges 0, 3, 6 of 2 images
    assert torch.equal(cropped[2:4], images[..., 3:7]) and torch.equal(cropped_masks, (cropped[:, 0] % 2).long())
    with pytest.raises(ValueError, match="width <= the image width"):
        crops(images, width=11, stride=1)
