"""The anchor-free dense detector (FCOS-style): shapes, targets, loss, decoding, bad input."""

import pytest
import torch

from cvcourse.detection.fcos import LEVEL_RANGES, assign, centerness_target, decode, fcos_loss, level_points
from cvcourse.models.detector import STRIDES, DenseDetector
from cvcourse.seeding import seed_everything


def test_outputs_per_level_have_the_right_shapes_and_positive_distances():
    outputs = DenseDetector(4, width=8, fpn_width=16)(torch.rand(2, 3, 64, 96))
    assert len(outputs) == len(STRIDES)
    for out, stride in zip(outputs, STRIDES):
        size = (64 // stride, 96 // stride)
        assert out["cls_logits"].shape == (2, 4, *size)
        assert out["distances"].shape == (2, 4, *size) and (out["distances"] > 0).all()
        assert out["centerness"].shape == (2, 1, *size)


def test_classification_starts_at_the_prior_probability():
    outputs = DenseDetector(3, width=8, fpn_width=16, prior=0.01)(torch.rand(1, 3, 32, 32))
    mean_probability = torch.sigmoid(outputs[0]["cls_logits"]).mean().item()
    assert mean_probability == pytest.approx(0.01, rel=0.5)


def test_centerness_is_one_at_the_centre_and_falls_towards_the_border():
    distances = torch.tensor([[5.0, 5.0, 5.0, 5.0], [1.0, 5.0, 9.0, 5.0], [1.0, 1.0, 9.0, 9.0]])
    assert centerness_target(distances).tolist() == pytest.approx([1.0, (1 / 9) ** 0.5, 1 / 9])


def test_each_object_is_learned_on_the_level_of_its_size():
    outputs = DenseDetector(2, width=8, fpn_width=16)(torch.rand(1, 3, 128, 128))
    points = level_points(outputs, STRIDES)
    small, large = torch.tensor([[10.0, 10.0, 22.0, 22.0]]), torch.tensor([[20.0, 20.0, 100.0, 100.0]])
    sizes = [len(p) for p in points]
    for box, level in ((small, 0), (large, 2)):
        matches, _ = assign(points, box)
        per_level = torch.split(matches >= 0, sizes)
        assert [bool(m.any()) for m in per_level] == [i == level for i in range(3)], LEVEL_RANGES


def test_loss_is_finite_has_gradients_and_handles_an_image_without_objects():
    seed_everything(0)
    model = DenseDetector(4, width=8, fpn_width=16)
    targets = [{"boxes": torch.tensor([[8.0, 8.0, 40.0, 30.0], [50.0, 40.0, 60.0, 60.0]]),
                "labels": torch.tensor([1, 4])},
               {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}]
    losses = fcos_loss(model(torch.rand(2, 3, 64, 64)), targets, STRIDES)
    assert set(losses) == {"cls", "box", "centerness"} and all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert model.cls_logits.weight.grad.abs().sum() > 0 and model.box_distances.weight.grad.abs().sum() > 0
    empty = [targets[1], targets[1]]
    assert fcos_loss(model(torch.rand(2, 3, 64, 64)), empty, STRIDES)["box"].item() == 0.0


def test_labels_outside_the_classes_are_refused():
    model = DenseDetector(2, width=8, fpn_width=16)
    targets = [{"boxes": torch.tensor([[8.0, 8.0, 40.0, 40.0]]), "labels": torch.tensor([3])}]
    with pytest.raises(ValueError, match=r"labels must be in 1\.\.2"):
        fcos_loss(model(torch.rand(1, 3, 64, 64)), targets, STRIDES)


def test_decode_recovers_a_box_written_into_the_outputs():
    model = DenseDetector(3, width=8, fpn_width=16).eval()
    with torch.no_grad():
        outputs = model(torch.rand(1, 3, 64, 64))
    for out in outputs:  # silence every location ...
        out["cls_logits"].fill_(-20.0)
        out["centerness"].fill_(-20.0)
    level, row, column = outputs[1], 3, 2  # ... except one on stride 8: centre (20, 28)
    level["cls_logits"][0, 1, row, column] = 20.0
    level["centerness"][0, 0, row, column] = 20.0
    level["distances"][0, :, row, column] = torch.tensor([10.0, 6.0, 4.0, 2.0])
    detections = decode(outputs, STRIDES)
    assert detections[0]["labels"].tolist() == [2]
    torch.testing.assert_close(detections[0]["boxes"], torch.tensor([[10.0, 22.0, 24.0, 30.0]]))


def test_training_reduces_the_loss_on_a_tiny_set():
    seed_everything(0)
    model = DenseDetector(2, width=8, fpn_width=16)
    images = torch.rand(2, 3, 64, 64)
    targets = [{"boxes": torch.tensor([[8.0, 8.0, 40.0, 30.0]]), "labels": torch.tensor([1])},
               {"boxes": torch.tensor([[30.0, 20.0, 60.0, 60.0]]), "labels": torch.tensor([2])}]
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        loss = sum(fcos_loss(model(images), targets, STRIDES).values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_bad_images_are_explained():
    model = DenseDetector(2, width=8, fpn_width=16)
    with pytest.raises(ValueError, match="multiples of 16"):
        model(torch.rand(1, 3, 60, 64))
    with pytest.raises(ValueError, match=r"RGB batches \(B, 3, H, W\)"):
        model(torch.rand(3, 64, 64))
    with pytest.raises(ValueError, match=r"float images in \[0, 1\], got torch.uint8.*ToDtype"):
        model(torch.zeros(1, 3, 64, 64, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"images.to\(torch.float32\)"):
        model(torch.zeros(1, 3, 64, 64, dtype=torch.float64))


def test_scene_memory_flips_boxes_with_the_image():
    from torchvision import tv_tensors

    from cvcourse.detection.training import SceneMemory

    image = tv_tensors.Image(torch.rand(3, 32, 48))
    target = {"boxes": tv_tensors.BoundingBoxes([[0.0, 2.0, 10.0, 12.0]], format="XYXY", canvas_size=(32, 48)),
              "labels": torch.tensor([1])}
    flipped_image, flipped = SceneMemory([(image, target)])[0]  # v2.RandomHorizontalFlip, p = 0.5
    if torch.equal(flipped_image, image.flip(-1)):
        assert flipped["boxes"].tolist() == [[38.0, 2.0, 48.0, 12.0]]
    else:
        assert torch.equal(flipped_image, image) and flipped["boxes"].tolist() == [[0.0, 2.0, 10.0, 12.0]]
    assert type(flipped_image) is torch.Tensor and type(flipped["boxes"]) is torch.Tensor



def test_train_detector_and_detect_return_torchvision_style_results():
    from cvcourse.data import detection_scenes
    from cvcourse.detection.training import detect, train_detector

    scenes = detection_scenes("train", 8, image_size=64)
    seed_everything(0)
    trainer = train_detector(DenseDetector(4, width=8, fpn_width=16), scenes, steps=3, batch_size=4, lr=1e-3,
                             progress=False)
    assert trainer.step == 3 and set(trainer.history.names()) >= {"loss", "cls", "box", "centerness"}
    images = torch.stack([scenes[i][0].as_subclass(torch.Tensor) for i in range(2)])
    found = detect(trainer.model, images, score_threshold=0.0, max_detections=7)
    assert len(found) == 2
    for detections in found:
        assert set(detections) == {"boxes", "scores", "labels"} and len(detections["boxes"]) <= 7
        assert ((detections["labels"] >= 1) & (detections["labels"] <= 4)).all()
        assert (detections["boxes"] >= 0).all() and (detections["boxes"] <= 64).all()
        assert torch.equal(detections["scores"], detections["scores"].sort(descending=True).values)
