"""Chapter 08's scenes as chapters 13 and 14 see them: the dataset their profile names, chapter 08's other settings."""

import pytest

from cvcourse.recipes import ch08_object_detection as ch08
from cvcourse.recipes import ch13_denoise_then_detect as ch13
from cvcourse.recipes import ch14_boxes_from_noise as ch14


@pytest.mark.parametrize("chapter", [ch13, ch14], ids=["13", "14"])
def test_the_gpu_profile_reads_penn_fudan_and_the_others_the_shape_scenes(chapter):
    for profile, dataset in (("smoke", "shapes"), ("cpu", "shapes"), ("gpu", "penn_fudan")):
        cfg = chapter.load(profile, device="cpu")
        cfg08 = ch08.settings_for(cfg)
        assert (cfg08.profile, cfg08.device, cfg08.dataset) == (profile, cfg.device, dataset)
        assert cfg08.steps == ch08.load(profile, device="cpu").steps  # chapter 08's detector, on that dataset
    assert ch08.class_names(ch08.settings_for(chapter.load("gpu", device="cpu"))) == ("background", "pedestrian")
    assert ch08.load("gpu", device="cpu").dataset == "shapes"  # chapter 08 itself keeps its shapes


def test_an_unknown_dataset_names_the_known_ones():
    cfg = ch08.load("smoke", device="cpu")
    with pytest.raises(ValueError, match="unknown dataset 'coco'; choose one of shapes, penn_fudan"):
        ch08.scenes("coco", "train", 4, 64)
    with pytest.raises(ValueError, match="unknown dataset 'coco'"):
        ch08.class_names(type("Settings", (), {"dataset": "coco"})())
    assert ch08.build_detector(cfg).num_classes == len(ch08.class_names(cfg)) - 1 == 4
