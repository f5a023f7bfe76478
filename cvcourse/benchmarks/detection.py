"""The detection chapters' headline experiments.

- ``det.map_vs_reference``: the course's COCO evaluation (``cvcourse.detection.evaluate``) against
  pycocotools' COCOeval on random detection problems: crowded and empty images, images without
  detections, several classes, duplicates, tied scores. The value is the largest difference in mAP@[.5:.95],
  AP50 or AP75 over all cases;
- ``det.detector_shapes``: the anchor-free dense detector (``cvcourse.models.DenseDetector``) trained from
  scratch on synthetic shape scenes, COCO mAP@0.5 and mAP@[.5:.95] on the held-out test split.
"""

from __future__ import annotations

import contextlib
import io
import math

import torch
from torchvision import ops

from cvcourse.benchmarks import Entry, Outcome
from cvcourse.config import Config
from cvcourse.detection import evaluate_detections, to_coco
from cvcourse.recipes import ch08_object_detection as recipe

HEADLINE_METRICS = ("map", "map_50", "map_75")
SIZE_METRICS = ("map_small", "map_medium", "map_large")


def random_boxes(generator: torch.Generator, count: int, image_size: int) -> torch.Tensor:
    """``count`` xyxy boxes inside an image_size x image_size image, from a few pixels to most of the image."""
    centres = torch.rand(count, 2, generator=generator) * image_size
    sizes = torch.exp(torch.empty(count, 2).uniform_(math.log(4), math.log(0.8 * image_size), generator=generator))
    boxes = ops.box_convert(torch.cat([centres, sizes], dim=1), "cxcywh", "xyxy")
    return ops.clip_boxes_to_image(boxes, (image_size, image_size))


def jitter(generator: torch.Generator, boxes: torch.Tensor, spread: float, image_size: int) -> torch.Tensor:
    """The boxes moved and resized at random by about ``spread`` times their size, as a detector's guesses."""
    x, y, w, h = ops.box_convert(boxes, "xyxy", "cxcywh").unbind(dim=1)
    noise = torch.randn(4, len(boxes), generator=generator) * spread
    moved = torch.stack([x + noise[0] * w, y + noise[1] * h, w * noise[2].exp(), h * noise[3].exp()], dim=1)
    return ops.clip_boxes_to_image(ops.box_convert(moved, "cxcywh", "xyxy"), (image_size, image_size))


def random_case(seed: int, max_images: int, max_objects: int) -> tuple[list[dict], list[dict]]:
    """(predictions, targets) of a random detection problem in torchvision's format.

    1 to 4 classes; 1 to ``max_images`` images of 64 to 512 pixels with 0 to ``max_objects`` objects (three
    times as many in every fifth case: crowds); detections find about 80% of the objects, loosely or tightly,
    repeat 30% of them, mislabel 10%, add false alarms, and miss whole images; every fourth case rounds the
    scores to one decimal (ties). There is at least one detection, which pycocotools needs.
    """
    generator = torch.Generator().manual_seed(seed)

    def randint(low: int, high: int) -> int:
        return int(torch.randint(low, high + 1, (), generator=generator))

    def chance(probability: float, count: int = 1) -> torch.Tensor:
        return torch.rand(count, generator=generator) < probability

    num_classes, spread = randint(1, 4), 0.02 + 0.2 * torch.rand(1, generator=generator).item()
    crowd = 3 if seed % 5 == 0 else 1
    predictions, targets = [], []
    for _ in range(randint(1, max_images)):
        image_size = randint(64, 512)
        truths = random_boxes(generator, randint(0, crowd * max_objects), image_size)
        labels = torch.randint(1, num_classes + 1, (len(truths),), generator=generator)
        targets.append({"boxes": truths, "labels": labels})
        found = chance(0.8, len(truths))
        repeated = found & chance(0.3, len(truths))
        sources = torch.cat([truths[found], truths[repeated]])
        guessed = torch.cat([labels[found], labels[repeated]])
        guessed = torch.where(chance(0.1, len(guessed)), torch.randint(1, num_classes + 1, guessed.shape,
                                                                       generator=generator), guessed)
        false_alarms = random_boxes(generator, randint(0, 3 * crowd), image_size)
        boxes = torch.cat([jitter(generator, sources, spread, image_size), false_alarms])
        labels = torch.cat([guessed, torch.randint(1, num_classes + 1, (len(false_alarms),), generator=generator)])
        if chance(0.15):  # an image the detector misses entirely
            boxes, labels = boxes[:0], labels[:0]
        scores = torch.rand(len(boxes), generator=generator)
        predictions.append({"boxes": boxes, "scores": scores.round(decimals=1) if seed % 4 == 0 else scores,
                            "labels": labels})
    if sum(len(prediction["boxes"]) for prediction in predictions) == 0:
        predictions[0] = {"boxes": targets[0]["boxes"][:0].new_tensor([[1.0, 1.0, 9.0, 9.0]]),
                          "scores": torch.ones(1), "labels": torch.ones(1, dtype=torch.int64)}
    return predictions, targets


def pycocotools_metrics(predictions: list[dict], targets: list[dict]) -> dict[str, float]:
    """pycocotools' COCOeval box metrics of the same data (stats[0:6]), NaN where it reports -1."""
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError as error:
        raise ImportError("the reference needs pycocotools: pip install pycocotools "
                          "(or install cvcourse with its dev extra: pip install -e .[dev])") from error
    dataset, results = to_coco(predictions, targets)
    if not results:
        raise ValueError("pycocotools cannot load an empty result list; give it at least one detection")
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress and a table
        truth = COCO()
        truth.dataset = dataset
        truth.createIndex()
        evaluation = COCOeval(truth, truth.loadRes(results), iouType="bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    stats = [float("nan") if value == -1 else float(value) for value in evaluation.stats[:6]]
    return dict(zip(HEADLINE_METRICS + SIZE_METRICS, stats))


def difference(ours: float, reference: float) -> float:
    """|ours - reference|; 0 when both are NaN (nothing to score), inf when only one is."""
    if math.isnan(ours) or math.isnan(reference):
        return 0.0 if math.isnan(ours) and math.isnan(reference) else math.inf
    return abs(ours - reference)


def differences(predictions: list[dict], targets: list[dict]) -> dict[str, float]:
    """The difference of each COCO metric between the course's evaluation and pycocotools'."""
    ours, reference = evaluate_detections(predictions, targets), pycocotools_metrics(predictions, targets)
    return {key: difference(ours[key], reference[key]) for key in reference}


def map_vs_reference(cfg: Config) -> Outcome:
    settings = cfg.reference
    cases = [differences(*random_case(seed, settings.max_images, settings.max_objects))
             for seed in range(settings.cases)]
    headline = max(case[key] for case in cases for key in HEADLINE_METRICS)
    by_size = max(case[key] for case in cases for key in SIZE_METRICS)
    return Outcome(value=headline, checks={"ap_by_size_within_0.001": by_size <= 1e-3},
                   details={"cases": settings.cases, "largest_size_ap_difference": by_size})


def detector_shapes(cfg: Config) -> Outcome:
    scores = recipe.train_and_evaluate(cfg)
    return Outcome(scores["map_50"], measured={"map": scores["map"], "train_s": scores["train_s"]},
                   details={"map_75": scores["map_75"], "steps": cfg.steps, "test_images": scores["test_images"]})


ENTRIES = (
    Entry("det.map_vs_reference", "largest |course - pycocotools| in mAP, AP50, AP75", recipe,
          "map_difference_to_pycocotools", map_vs_reference),
    Entry("det.detector_shapes", "mAP@0.5 on held-out shape scenes", recipe, "map_50", detector_shapes),
)
