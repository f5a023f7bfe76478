"""materialize: a dataset as two plain tensors."""

import pytest
import torch
from torchvision import tv_tensors

from cvcourse.data import SingleShapes, materialize


def test_materialize_stacks_images_and_labels_in_order():
    dataset = SingleShapes(12, image_size=16, seed=3)
    images, labels = materialize(dataset)
    assert images.shape == (12, 3, 16, 16) and labels.shape == (12,) and labels.dtype == torch.int64
    assert type(images) is torch.Tensor  # plain tensors, not tv_tensors
    assert torch.equal(images[5], dataset[5][0]) and labels[5] == dataset[5][1]


def test_materialize_rejects_empty_and_non_tensor_datasets():
    with pytest.raises(ValueError, match="empty"):
        materialize([])
    with pytest.raises(TypeError, match="image tensor"):
        materialize([("not an image", 0)])
    assert isinstance(SingleShapes(1, image_size=16)[0][0], tv_tensors.Image)


def test_materialize_picks_a_mask_out_of_dict_targets():
    dataset = [(torch.rand(1, 4, 4), {"mask": tv_tensors.Mask(torch.ones(4, 4, dtype=torch.int64))})] * 3
    images, masks = materialize(dataset, target_key="mask")
    assert images.shape == (3, 1, 4, 4) and masks.shape == (3, 4, 4) and type(masks) is torch.Tensor
    with pytest.raises(KeyError, match=r"keys \['mask'\]: pass target_key="):
        materialize(dataset)
