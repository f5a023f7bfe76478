"""Chapter 02's recipe on real datasets: the same U-Net trained and measured on Oxford-IIIT Pet and ISBI 2012, here
on tiny files in their real formats."""

import dataclasses

import pytest

from cvcourse import config
from cvcourse.recipes import ch02_unet

from real_formats import write_isbi, write_pet_dataset  # isort: skip


@pytest.fixture
def data(tmp_path, monkeypatch):
    monkeypatch.setenv("CVCOURSE_DATA", str(tmp_path))
    write_pet_dataset(tmp_path)
    write_isbi(tmp_path, pages=10, size=(48, 40))
    return tmp_path


@pytest.mark.parametrize("name, channels, classes", [("Oxford-IIIT Pet", 3, 3), ("ISBI 2012", 1, 2)])
def test_a_real_dataset_trains_the_chapters_u_net_and_is_measured(data, name, channels, classes, one_thread):
    cfg = ch02_unet.load("smoke", device="cpu")
    cfg = dataclasses.replace(cfg, settings=config.with_overrides(cfg.settings, {"real_steps": 3, "batch_size": 32}))
    train, test, got_channels, got_classes = ch02_unet.real_splits(cfg, name)
    assert (got_channels, got_classes) == (channels, classes)
    image, mask = train[0]
    side = cfg.real_image_size if name == "Oxford-IIIT Pet" else cfg.real_crop
    assert image.shape == (channels, side, side) and mask.shape == (side, side)  # ISBI: crops padded to the side
    result = ch02_unet.train_on_real(cfg, train, test, channels, classes, progress=False)
    assert len(train) < cfg.batch_size  # fewer images than a batch: the last partial batch is kept
    assert result["test_images"] == len(test) and 0 <= result["miou"] <= 1 and len(result["iou"]) == classes
    assert 0 <= result["pixel_accuracy"] <= 1 and result["train_s"] > 0
    if name == "ISBI 2012":  # the last fifth of the pages, whole, never trained on
        assert len(test) == 2 and test[0][0].shape == (1, 48, 40) and len(train) == 8


def test_an_unknown_real_dataset_names_the_choices():
    with pytest.raises(ValueError, match="Oxford-IIIT Pet, ISBI 2012"):
        ch02_unet.real_splits(ch02_unet.load("smoke", device="cpu"), "Cityscapes")
