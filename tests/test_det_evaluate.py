"""COCO-style evaluation against pycocotools' COCOeval, by hand, on empty images and on bad input."""

import math

import pytest
import torch

from cvcourse import bench
from cvcourse.benchmarks.detection import difference, differences, pycocotools_metrics, random_case
from cvcourse.data import ShapesScenes
from cvcourse.detection import (
    average_precision,
    evaluate_detections,
    precision_envelope,
    precision_recall,
    precision_recall_curve,
    to_coco,
)

CASES = 50
TOLERANCE = 1e-3


def detection(boxes, scores, labels):
    return {"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
            "scores": torch.tensor(scores, dtype=torch.float32), "labels": torch.tensor(labels, dtype=torch.int64)}


def truth(boxes, labels):
    return {"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
            "labels": torch.tensor(labels, dtype=torch.int64)}


def test_every_metric_matches_pycocotools_on_random_cases():
    worst = {}
    for seed in range(CASES):
        for key, gap in differences(*random_case(seed, max_images=4, max_objects=12)).items():
            worst[key] = max(worst.get(key, 0.0), gap)
            assert gap <= TOLERANCE, f"case {seed}: {key} differs from pycocotools by {gap}"
    assert set(worst) == {"map", "map_50", "map_75", "map_small", "map_medium", "map_large"}


def test_the_random_cases_cover_the_hard_situations_and_are_deterministic():
    cases = [random_case(seed, max_images=4, max_objects=12) for seed in range(CASES)]
    images = [(p, t) for predictions, targets in cases for p, t in zip(predictions, targets)]
    assert any(len(t["boxes"]) == 0 and len(p["boxes"]) > 0 for p, t in images)  # detections on an empty image
    assert any(len(p["boxes"]) == 0 and len(t["boxes"]) > 0 for p, t in images)  # objects nobody detected
    assert any(len(t["boxes"]) >= 20 for _, t in images)  # crowds
    assert any(len(p["scores"].unique()) < len(p["scores"]) for p, _ in images)  # tied scores
    assert any(len(torch.cat([t["labels"] for t in targets]).unique()) >= 3 for _, targets in cases)
    maps = [evaluate_detections(*case)["map"] for case in cases]
    assert min(maps) < 0.2 and max(maps) > 0.5  # from poor to good detectors
    again = random_case(7, max_images=4, max_objects=12)
    assert all(torch.equal(a["boxes"], b["boxes"]) for a, b in zip(again[0], cases[7][0]))


def test_more_than_100_detections_per_image_and_class_are_cut_as_in_pycocotools():
    generator = torch.Generator().manual_seed(0)
    corners = torch.rand(150, 2, generator=generator) * 200
    boxes = torch.cat([corners, corners + 20], dim=1)
    scores = torch.rand(150, generator=generator)
    predictions = [{"boxes": boxes, "scores": scores, "labels": torch.ones(150, dtype=torch.int64)}]
    targets = [{"boxes": boxes[scores.argsort()[:30]], "labels": torch.ones(30, dtype=torch.int64)}]  # the worst 30
    ours, reference = evaluate_detections(predictions, targets), pycocotools_metrics(predictions, targets)
    assert all(difference(ours[key], reference[key]) <= TOLERANCE for key in reference)
    assert ours["map"] < evaluate_detections(predictions, targets, max_detections=150)["map"]


def test_a_duplicate_is_a_false_positive_computed_by_hand():
    targets = [truth([[0, 0, 10, 10], [20, 20, 30, 30]], [1, 1])]
    predictions = [detection([[0, 0, 10, 10], [0, 0, 10, 10], [20, 20, 30, 30]], [0.9, 0.8, 0.7], [1, 1, 1])]
    # precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1: the envelope is 1 up to recall 0.5 (51 levels), then 2/3
    expected = (51 + 50 * 2 / 3) / 101
    result = evaluate_detections(predictions, targets)
    assert result["map"] == pytest.approx(expected) and result["map_50"] == pytest.approx(expected)
    assert pycocotools_metrics(predictions, targets)["map"] == pytest.approx(expected)


def test_a_detection_between_two_boxes_takes_the_last_of_equal_ious_as_pycocotools():
    targets = [truth([[0, 0, 10, 10], [2, 0, 12, 10]], [1, 1])]
    between = [1, 0, 11, 10]  # IoU 9/11 with both boxes
    predictions = [detection([between, [0, 0, 10, 10]], [0.9, 0.8], [1, 1])]
    # `between` takes box 1, leaving box 0 to the second detection (IoU 1): two TPs up to the threshold 0.8; from
    # 0.85 on, `between` is an FP and AP = 25.5 / 101. Taking box 0 would leave box 1 at IoU 2/3 instead.
    expected = (7 + 3 * 25.5 / 101) / 10
    assert evaluate_detections(predictions, targets)["map"] == pytest.approx(expected)
    assert pycocotools_metrics(predictions, targets)["map"] == pytest.approx(expected)


def test_perfect_detections_score_one_for_every_class():
    dataset = ShapesScenes(4, image_size=64, seed=0)
    targets = [dataset[i][1] for i in range(len(dataset))]
    predictions = [{"boxes": t["boxes"], "scores": torch.ones(len(t["labels"])), "labels": t["labels"]}
                   for t in targets]
    result = evaluate_detections(predictions, targets, num_classes=ShapesScenes.num_classes)
    assert result["map"] == result["map_50"] == result["map_75"] == 1.0
    present = {int(label) for t in targets for label in t["labels"]}
    assert all(result["map_per_class"][label] == 1.0 for label in present)
    assert all(math.isnan(result["map_per_class"][label]) for label in set(range(1, 5)) - present)


def test_empty_images_follow_the_documented_behaviour():
    empty_prediction, empty_truth = detection([], [], []), truth([], [])
    nothing = evaluate_detections([empty_prediction, empty_prediction], [empty_truth, empty_truth])
    assert all(math.isnan(nothing[key]) for key in ("map", "map_50", "map_small")) and nothing["map_per_class"] == {}
    missed = evaluate_detections([empty_prediction], [truth([[0, 0, 10, 10]], [2])])
    assert missed["map"] == 0.0 and missed["map_per_class"] == {2: 0.0}
    alarms_only = evaluate_detections([detection([[0, 0, 5, 5]], [0.9], [1])], [empty_truth])
    assert math.isnan(alarms_only["map"])
    one_found = [detection([[0, 0, 10, 10]], [0.9], [1]), empty_prediction]
    assert evaluate_detections(one_found, [truth([[0, 0, 10, 10]], [1]), empty_truth])["map"] == 1.0


def test_false_alarms_on_an_empty_image_lower_the_ap():
    targets = [truth([[0, 0, 10, 10]], [1]), truth([], [])]
    found = detection([[0, 0, 10, 10]], [0.5], [1])
    alarm = detection([[40, 40, 50, 50]], [0.9], [1])  # ranked first, on the image without objects
    assert evaluate_detections([found, alarm], targets)["map"] == pytest.approx(0.5)
    assert evaluate_detections([found, detection([], [], [])], targets)["map"] == 1.0


def test_ap_by_size_scores_only_objects_of_that_size():
    targets = [truth([[0, 0, 10, 10], [0, 0, 100, 100]], [1, 1])]  # areas 100 (small) and 10000 (large)
    predictions = [detection([[0, 0, 10, 10]], [0.9], [1])]
    result = evaluate_detections(predictions, targets)
    assert result["map_small"] == 1.0 and result["map_large"] == 0.0 and math.isnan(result["map_medium"])
    assert result["map"] == pytest.approx((51 * 1.0) / 101)


def test_precision_recall_and_average_precision_by_hand():
    scores = torch.tensor([0.6, 0.9, 0.7, 0.8])
    hits = torch.tensor([True, True, False, False])  # by score: TP, FP, FP, TP
    precision, recall = precision_recall(scores, hits, num_ground_truth=4)
    assert torch.allclose(precision, torch.tensor([1, 1 / 2, 1 / 3, 2 / 4], dtype=torch.float64))
    assert torch.allclose(recall, torch.tensor([1 / 4, 1 / 4, 1 / 4, 2 / 4], dtype=torch.float64))
    assert torch.allclose(precision_envelope(precision), torch.tensor([1, 0.5, 0.5, 0.5], dtype=torch.float64))
    assert average_precision(scores, hits, 4) == pytest.approx((26 * 1.0 + 25 * 0.5) / 101)
    assert average_precision(torch.zeros(0), torch.zeros(0, dtype=torch.bool), 3) == 0.0


def test_average_precision_names_bad_input():
    with pytest.raises(ValueError, match=r"num_ground_truth should be a positive integer, got 0; AP is undefined"):
        average_precision(torch.rand(3), torch.ones(3, dtype=torch.bool), 0)
    with pytest.raises(ValueError, match=r"3 true positives but only 2 ground-truth boxes: a box was matched twice"):
        average_precision(torch.rand(3), torch.ones(3, dtype=torch.bool), 2)


def test_precision_recall_curve_of_a_dataset():
    targets = [truth([[0, 0, 10, 10], [20, 20, 30, 30]], [1, 2]), truth([[0, 0, 20, 20]], [1])]
    predictions = [detection([[0, 0, 10, 11], [50, 50, 60, 60]], [0.9, 0.4], [1, 1]),
                   detection([[0, 0, 20, 20]], [0.6], [1])]
    precision, recall = precision_recall_curve(predictions, targets, label=1, iou_threshold=0.5)
    assert precision.tolist() == [1.0, 1.0, 2 / 3] and recall.tolist() == [0.5, 1.0, 1.0]
    with pytest.raises(ValueError, match=r"class 3 has no ground-truth box in targets"):
        precision_recall_curve(predictions, targets, label=3)


def test_to_coco_writes_xywh_boxes_box_areas_and_ids_from_one():
    dataset, results = to_coco([detection([[1, 2, 4, 8]], [0.5], [3])], [truth([[0, 0, 10, 5]], [1])])
    assert dataset["annotations"] == [{"id": 1, "image_id": 0, "category_id": 1, "bbox": [0.0, 0.0, 10.0, 5.0],
                                       "area": 50.0, "iscrowd": 0}]
    assert results == [{"image_id": 0, "category_id": 3, "bbox": [1.0, 2.0, 3.0, 6.0], "score": 0.5}]
    assert dataset["categories"] == [{"id": 1}, {"id": 3}] and dataset["images"] == [{"id": 0}]


def test_evaluation_names_bad_input():
    good_prediction, good_truth = detection([[0, 0, 5, 5]], [0.9], [1]), truth([[0, 0, 5, 5]], [1])
    with pytest.raises(ValueError, match=r"one prediction per target image, got 1 predictions and 2 targets"):
        evaluate_detections([good_prediction], [good_truth, good_truth])
    with pytest.raises(TypeError, match=r"lists of dicts, one per image; wrap a single image's dict in a list"):
        evaluate_detections(good_prediction, good_truth)
    with pytest.raises(ValueError, match=r"predictions\[0\] has no \['scores'\]; it needs the keys"):
        evaluate_detections([{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}], [good_truth])
    flipped = detection([[0, 0, 5, 5], [9, 9, 2, 2]], [0.9, 0.8], [1, 1])
    with pytest.raises(ValueError, match=r"predictions\[0\]\['boxes'\]\[1\] = .* has x2 < x1"):
        evaluate_detections([flipped], [good_truth])
    with pytest.raises(ValueError, match=r"targets\[0\]\['labels'\] should be in 1..4 \(0 is the background\)"):
        evaluate_detections([good_prediction], [truth([[0, 0, 5, 5]], [7])], num_classes=5)
    with pytest.raises(ValueError, match=r"predictions\[0\]\['scores'\] should be a float tensor \(1,\)"):
        evaluate_detections([{**good_prediction, "scores": torch.ones(2)}], [good_truth])
    with pytest.raises(ValueError, match=r"max_detections should be a positive integer, got 0; COCO uses 100"):
        evaluate_detections([good_prediction], [good_truth], max_detections=0)


def test_the_bench_entry_meets_its_target_in_the_smoke_profile():
    result = bench.run_entry("det.map_vs_reference", "smoke")
    assert result.passed and result.value <= TOLERANCE
    assert result.details["cases"] >= CASES


def test_size_ranges_can_be_scaled_to_small_images():
    from cvcourse.data import coco_area_ranges

    targets = [{"boxes": torch.tensor([[0.0, 0.0, 5.0, 5.0], [0.0, 0.0, 40.0, 40.0]]), "labels": torch.tensor([1, 1])}]
    predictions = [{"boxes": torch.tensor([[0.0, 0.0, 40.0, 40.0]]), "scores": torch.tensor([0.9]),
                    "labels": torch.tensor([1])}]
    coco = evaluate_detections(predictions, targets)
    scaled = evaluate_detections(predictions, targets, size_ranges=coco_area_ranges(128))
    assert coco["map_large"] != coco["map_large"]  # NaN: no box is 96x96 px
    assert scaled["map_large"] == pytest.approx(1.0) and scaled["map_small"] == pytest.approx(0.0)
    assert scaled["map"] == coco["map"]
    with pytest.raises(ValueError, match="small, medium, large"):
        evaluate_detections(predictions, targets, size_ranges={"tiny": (0.0, 1.0)})
