"""Segmentation training helpers and the chapter's bench entries (smoke profile)."""

import pytest
import torch

from cvcourse import bench
from cvcourse.models import UNet
from cvcourse.seeding import seed_everything
from cvcourse.segmentation import bce_dice_loss, segment, train_segmentation, weighted_bce


def toy_data(n: int = 16):
    """Bright squares on a dark background: the mask is where the image is bright."""
    generator = torch.Generator().manual_seed(0)
    masks = torch.zeros(n, 16, 16, dtype=torch.long)
    for i in range(n):
        top, left = torch.randint(0, 8, (2,), generator=generator).tolist()
        masks[i, top:top + 8, left:left + 8] = 1
    images = (0.2 + 0.6 * masks[:, None].float() + 0.05 * torch.randn(n, 1, 16, 16, generator=generator)).clamp(0, 1)
    return images, masks


def test_training_learns_a_toy_task_and_segment_returns_masks():
    images, masks = toy_data()
    seed_everything(0)
    model = UNet(1, 1, depth=2, base_width=4)
    trainer = train_segmentation(model, images, masks, loss_fn=bce_dice_loss, steps=40, batch_size=8, lr=1e-2,
                                 progress=False)
    predicted = segment(model, images)
    assert predicted.shape == masks.shape and predicted.dtype == torch.int64
    assert (predicted == masks).float().mean() > 0.95
    assert trainer.history.mean("loss", last=5) < trainer.history.mean("loss")


def test_weight_maps_travel_with_their_batch():
    images, masks = toy_data(8)
    seen = []

    def loss_fn(logits, batch_masks, weights):
        seen.append(torch.equal(weights, batch_masks.float() + 1))  # each weight map belongs to its mask
        return weighted_bce(logits, batch_masks, weights)

    train_segmentation(UNet(1, 1, depth=1, base_width=2), images, masks, weight_maps=masks.float() + 1,
                       loss_fn=loss_fn, steps=3, batch_size=4, lr=1e-3, progress=False)
    assert seen == [True, True, True]


def test_mismatched_lengths_are_explained():
    images, masks = toy_data(4)
    with pytest.raises(ValueError, match="4 images for 3 masks"):
        train_segmentation(UNet(1, 1, depth=1, base_width=2), images, masks[:3], loss_fn=bce_dice_loss, steps=1,
                           batch_size=2, lr=1e-3, progress=False)


def test_segmentation_bench_entries_run_in_the_smoke_profile():
    otsu = bench.run_entry("seg.otsu_cells", "smoke")
    unet = bench.run_entry("seg.unet_cells", "smoke")
    scenes = bench.run_entry("seg.unet_scenes", "smoke")
    assert otsu.target is None and 0 < otsu.value < 1
    assert unet.details["otsu_dice"] == pytest.approx(otsu.value)
    assert unet.value > otsu.value  # even the smoke-sized U-Net beats the threshold
    assert 0 < scenes.value <= 1 and len([k for k in scenes.details if k.startswith("iou_")]) >= 5
