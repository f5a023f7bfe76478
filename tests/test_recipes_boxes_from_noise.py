"""Chapter 14's recipe (boxes from noise): the backbone comes from chapter 08's detector, the tables cover
every setting and are cached, with a tiny detector and box denoiser in a private cache."""

import dataclasses

import pytest
import torch

from cvcourse.recipes import boxes_from_noise
from real_formats import write_penn_fudan  # isort: skip
from cvcourse.recipes import ch08_object_detection as ch08
from cvcourse.recipes import ch14_boxes_from_noise as ch14


@pytest.fixture
def cfg(tmp_path, monkeypatch, one_thread):
    monkeypatch.setenv("CVCOURSE_CACHE", str(tmp_path))
    detector_cfg = ch08.load("smoke", device="cpu")
    tiny_detector = dataclasses.replace(detector_cfg.settings, train_size=16, test_size=4, steps=4, batch_size=4)
    monkeypatch.setattr(ch08, "settings_for", lambda cfg: dataclasses.replace(
        detector_cfg, settings=dataclasses.replace(tiny_detector, dataset=cfg.dataset)))
    smoke = ch14.load("smoke", device="cpu")
    tiny = dataclasses.replace(smoke.boxes, steps=4, train_boxes=12, eval_boxes=(4, 12), eval_steps=(1, 2), boxes=12)
    return dataclasses.replace(smoke, settings=dataclasses.replace(smoke.settings, boxes=tiny))


def test_the_box_denoiser_starts_from_the_detectors_trained_backbone(cfg):
    detector, _ = ch08.trained_detector(ch08.settings_for(cfg))
    model = boxes_from_noise.build_box_denoiser(cfg)
    for name, value in model.backbone.state_dict().items():
        assert torch.equal(value, detector.state_dict()[name]), name
    assert model.learned is None and boxes_from_noise.build_box_denoiser(cfg, learned_proposals=True).learned.shape \
        == (cfg.boxes.boxes, 4)


def test_the_tables_cover_every_setting_and_come_back_from_the_cache(cfg):
    table = boxes_from_noise.boxes_and_steps_table(cfg, progress=False)
    assert [(row["boxes"], row["steps"]) for row in table] == [(4, 1), (4, 2), (12, 1), (12, 2)]
    assert all(0 <= row["map"] <= row["map_50"] <= 1 and row["ms_per_image"] > 0 for row in table)
    assert boxes_from_noise.boxes_and_steps_table(cfg, progress=False) == table
    ablations = boxes_from_noise.ablation_table(cfg, progress=False)
    assert [row["sampler"] for row in ablations] == ["DDIM steps", "fresh boxes every pass", "fixed timestep",
                                                     "no box renewal", "learned proposals (Sparse R-CNN)"]
    assert len(ablations[0]["seed_maps"]) == 3 and ablations[0]["seed_maps"][0] == ablations[0]["map"]
    comparison = boxes_from_noise.dense_comparison(cfg, progress=False)
    assert set(comparison) == {"dense detector (FCOS)", "box denoiser (DiffusionDet)"}
    assert all(row["parameters"] > 0 and row["train_s"] > 0 for row in comparison.values())
    assert comparison["box denoiser (DiffusionDet)"]["map"] == pytest.approx(
        next(row["map"] for row in ablations if row["sampler"] == "DDIM steps"))


def test_changing_how_boxes_are_sampled_does_not_retrain(cfg, monkeypatch):
    boxes_from_noise.trained_box_denoiser(cfg, progress=False)
    resampled = dataclasses.replace(cfg, settings=dataclasses.replace(
        cfg.settings, boxes=dataclasses.replace(cfg.boxes, eval_boxes=(2,), sample_steps=3)))
    monkeypatch.setattr(boxes_from_noise, "train_box_denoiser", lambda *a, **k: pytest.fail("retrained"))
    boxes_from_noise.trained_box_denoiser(resampled, progress=False)


def test_the_table_holds_what_the_summary_compares_even_off_the_grid(cfg):
    off_grid = dataclasses.replace(cfg, settings=dataclasses.replace(
        cfg.settings, boxes=dataclasses.replace(cfg.boxes, eval_steps=(2,), sample_steps=3, eval_boxes=(4,))))
    table = boxes_from_noise.boxes_and_steps_table(off_grid, progress=False)
    assert {(row["boxes"], row["steps"]) for row in table} == {(4, 1), (4, 2), (4, 3), (12, 1), (12, 2), (12, 3)}
    summary = ch14.boxes_summary(off_grid, table)
    assert (summary["main"]["boxes"], summary["main"]["steps"], summary["one_step"]["steps"]) == (12, 3, 1)


def test_the_box_denoiser_learns_penn_fudan_pedestrians_as_the_gpu_profile_does(cfg, tmp_path, monkeypatch):
    monkeypatch.setenv("CVCOURSE_DATA", str(tmp_path / "data"))
    write_penn_fudan(tmp_path / "data", count=30)
    pedestrians = dataclasses.replace(cfg, settings=dataclasses.replace(cfg.settings, dataset="penn_fudan"))
    assert ch14.class_names(pedestrians) == ("background", "pedestrian")
    model = boxes_from_noise.build_box_denoiser(pedestrians)
    images, targets = boxes_from_noise.test_scenes(pedestrians)
    assert images.shape[1:] == (3, 128, 128) and all(set(t["labels"].tolist()) == {1} for t in targets)
    found = boxes_from_noise.evaluate(pedestrians, model, images, targets, count=8, steps=1)
    assert 0 <= found["map"] <= found["map_50"] <= 1
    table = boxes_from_noise.boxes_and_steps_table(pedestrians, progress=False)
    assert table != boxes_from_noise.boxes_and_steps_table(cfg, progress=False)  # each dataset has its own cache
