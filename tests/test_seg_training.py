"""Segmentation training helpers and the chapter's bench entries (smoke profile)."""

import pytest
import torch

from cvcourse import bench
from cvcourse.data import segmentation_transforms
from cvcourse.epochs import EmptyLoaderError
from cvcourse.models import UNet
from cvcourse.seeding import seed_everything
from cvcourse.segmentation import bce_dice_loss, segment, train_segmentation, weighted_bce
from cvcourse.segmentation.training import SegmentationPairs
from cvcourse.train import Trainer


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


def test_the_way_chapter_02_tells_students_to_resume(tmp_path):
    """Interrupted, then ``resume=True`` with the same checkpoint_dir: the run ends where an uninterrupted one does."""
    images, masks = toy_data(16)

    def run(steps, resume=False):
        seed_everything(0)
        model = UNet(1, 1, depth=1, base_width=4)
        train_segmentation(model, images, masks, loss_fn=bce_dice_loss, steps=steps, batch_size=4, lr=1e-2,
                           checkpoint_dir=tmp_path / ("b" if steps != 12 or resume else "a"), checkpoint_every=3,
                           resume=resume, progress=False)
        return model

    straight = run(12)
    original_fit = Trainer.fit

    def stop_at_7(self, loader, *, steps=None, epochs=None, resume=False):
        return original_fit(self, loader, steps=7, resume=resume)

    Trainer.fit = stop_at_7
    try:
        run(12, resume=False)  # trains 7 of its 12 steps, as if interrupted there
    finally:
        Trainer.fit = original_fit
    resumed = run(12, resume=True)
    assert all(torch.equal(a, b) for a, b in zip(straight.state_dict().values(), resumed.state_dict().values()))


def test_fewer_images_than_a_batch_stop_at_once_with_the_fix_and_train_without_dropping():
    images, masks = toy_data(5)
    with pytest.raises(EmptyLoaderError, match="smaller batch_size.*drop_last=False"):
        train_segmentation(UNet(1, 1, depth=1, base_width=2), images, masks, loss_fn=bce_dice_loss, steps=3,
                           batch_size=8, lr=1e-3, progress=False)
    trainer = train_segmentation(UNet(1, 1, depth=1, base_width=2), images, masks, loss_fn=bce_dice_loss, steps=3,
                                 batch_size=8, lr=1e-3, drop_last=False, progress=False)
    assert trainer.step == 3


def test_images_on_the_0_to_255_scale_are_refused_with_the_fix():
    images, masks = toy_data(4)
    with pytest.raises(ValueError, match="look like 0..255 pixels. Divide by 255"):
        train_segmentation(UNet(1, 1, depth=1, base_width=2), images * 255, masks, loss_fn=bce_dice_loss, steps=1,
                           batch_size=2, lr=1e-3, progress=False)
    with pytest.raises(ValueError, match=r"uint8.*ToDtype"):
        segment(UNet(1, 1, depth=1, base_width=2), (images * 255).to(torch.uint8))


def test_training_from_augmented_pairs_and_from_a_dataset():
    images, masks = toy_data(8)
    augment = segmentation_transforms(crop_size=12, elastic_alpha=10.0, elastic_sigma=2.0)
    pairs = SegmentationPairs(images, masks, augment)
    image, mask = pairs[0]
    assert image.shape == (1, 12, 12) and mask.shape == (12, 12) and mask.dtype == torch.int64
    assert set(mask.unique().tolist()) <= {0, 1}  # nearest neighbour: no new labels
    model = UNet(1, 1, depth=1, base_width=2)
    assert train_segmentation(model, images, masks, transforms=augment, loss_fn=bce_dice_loss, steps=2,
                              batch_size=4, lr=1e-3, progress=False).step == 2
    assert train_segmentation(model, pairs, loss_fn=bce_dice_loss, steps=2, batch_size=4, lr=1e-3,
                              progress=False).step == 2


def test_segment_returns_probabilities_or_logits_at_another_size():
    images, _ = toy_data(3)
    torch.manual_seed(0)
    binary, multi = UNet(1, 1, depth=1, base_width=2).eval(), UNet(1, 3, depth=1, base_width=2).eval()
    logits = segment(binary, images, output="logits")
    torch.testing.assert_close(segment(binary, images, output="probabilities"), torch.sigmoid(logits))
    assert segment(binary, images, output="mask", size=(32, 32)).shape == (3, 32, 32)
    probabilities = segment(multi, images, output="probabilities", size=(8, 8))
    assert probabilities.shape == (3, 3, 8, 8)
    torch.testing.assert_close(probabilities.sum(dim=1), torch.ones(3, 8, 8))
    with pytest.raises(ValueError, match="output must be one of mask, probabilities, logits"):
        segment(binary, images, output="scores")
