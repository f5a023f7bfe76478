"""Chapters 11 and 12's recipes (the few-label experiment on cells and on street scenes): the splits, the symmetries
and repetition of a few pairs, the augmentation, the scores, bad input."""

import dataclasses

import pytest
import torch
from torchvision import tv_tensors

from cvcourse import config
from cvcourse.data.streets import STREET_CLASSES
from cvcourse.recipes import ch11_generated_training_data as ch11
from cvcourse.recipes import ch12_generated_street_scenes as ch12
from cvcourse.recipes import few_labels
from cvcourse.segmentation.metrics import confusion_matrix, dice, mean_iou


@pytest.fixture(scope="module")
def cfg():
    return ch11.load("smoke", device="cpu")


def test_the_labelled_images_are_the_first_of_the_pool_and_the_splits_differ(cfg):
    pool_images, pool_masks = ch11.images_and_masks(cfg, "pool")
    images, masks = ch11.labelled(cfg, 5)
    assert torch.equal(images, pool_images[:5]) and torch.equal(masks, pool_masks[:5])
    test_masks, new_masks = ch11.images_and_masks(cfg, "test")[1], ch11.images_and_masks(cfg, "new masks")[1]
    assert len(new_masks) == cfg.generated_pairs and len(test_masks) == cfg.test_size
    assert not torch.equal(test_masks[:5], masks) and not torch.equal(new_masks[:5], masks)
    with pytest.raises(ValueError, match=r"K must lie in \[1, 64\]"):
        ch11.labelled(cfg, 65)


def test_strong_augmentation_moves_the_mask_with_the_image(cfg):
    torch.manual_seed(0)
    images, masks = ch11.images_and_masks(cfg, "pool")
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


@pytest.fixture(scope="module")
def streets():
    return ch12.load("smoke", device="cpu")


def test_street_scenes_are_three_channel_eight_class_and_not_square(streets):
    images, masks = ch12.images_and_masks(streets, "test")
    assert ch12.image_shape(streets) == (3, 32, 64) and images.shape == (streets.test_size, 3, 32, 64)
    assert masks.shape == (streets.test_size, 32, 64) and int(masks.max()) < len(STREET_CLASSES)
    assert few_labels.segmenter(streets, streets.segmenter)(images[:2]).shape == (2, len(STREET_CLASSES), 32, 64)


def test_street_augmentation_never_turns_the_sky_upside_down(streets):
    images, masks = ch12.images_and_masks(streets, "pool")
    augment = ch12.strong_augmentation(streets)
    for seed in range(20):
        torch.manual_seed(seed)
        _, mask = augment(tv_tensors.Image(images[0]), tv_tensors.Mask(masks[0]))
        assert (mask[0] == 0).float().mean() > 0.5  # the top row is still mostly sky
        assert (mask[-1] == 0).sum() == 0  # and the bottom row has none


def test_scores_are_mean_dice_for_cells_and_miou_for_streets(cfg, streets):
    predicted, true = torch.randint(0, 2, (4, 8, 8)), torch.randint(0, 2, (4, 8, 8))
    assert ch11.agreement(cfg, predicted, true) == pytest.approx(dice(predicted, true).mean().item())
    predicted, true = torch.randint(0, 8, (4, 8, 8)), torch.randint(0, 8, (4, 8, 8))
    assert ch12.agreement(streets, predicted, true) == pytest.approx(mean_iou(confusion_matrix(predicted, true, 8)))


def test_cells_refuse_a_size_that_is_not_square_and_an_unknown_dataset_is_named():
    with pytest.raises(ValueError, match="cells are square"):
        few_labels.DATASETS["cells"].draw(2, (8, 16), 0)
    leaves = config.load("leaves", few_labels.Settings, {"smoke": {"dataset": "leaves"}}, "smoke", "cpu")
    with pytest.raises(ValueError, match="unknown dataset 'leaves'; choose one of cells, streets"):
        few_labels.image_shape(leaves)


def test_datasetgan_pairs_of_street_scenes_hold_eight_class_masks(streets):
    tiny = dataclasses.replace(streets, settings=dataclasses.replace(
        streets.settings, generated_pairs=4, pool_size=8, test_size=4, labeller_steps=5, sample_steps=2,
        ddpm=dataclasses.replace(streets.settings.ddpm, steps=2, batch_size=4)))
    pairs = few_labels.datasetgan_pairs(tiny, 5)
    assert pairs["images"].shape == (4, 3, 32, 64) and pairs["masks"].shape == (4, 32, 64)
    assert pairs["masks"].dtype == torch.long and 0 <= int(pairs["masks"].min()) <= int(pairs["masks"].max()) < 8
    assert 0.0 <= pairs["labeller_test_score"] <= 1.0
