"""Segmentation metrics against scikit-learn, on random class maps and on hand-made masks."""

import math

import numpy as np
import pytest
import torch
from sklearn import metrics as sk

from cvcourse.segmentation import metrics

NUM_CLASSES = 4


def random_class_maps(seed: int, shape=(3, 16, 20), num_classes=NUM_CLASSES):
    generator = torch.Generator().manual_seed(seed)
    target = torch.randint(0, num_classes, shape, generator=generator)
    noise = torch.randint(0, num_classes, shape, generator=generator)
    pred = torch.where(torch.rand(shape, generator=generator) < 0.6, target, noise)  # mostly right
    return pred, target


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_confusion_matrix_matches_sklearn(seed):
    pred, target = random_class_maps(seed)
    cm = metrics.confusion_matrix(pred, target, NUM_CLASSES)
    expected = sk.confusion_matrix(target.flatten(), pred.flatten(), labels=range(NUM_CLASSES))
    assert cm.dtype == torch.int64 and cm.shape == (NUM_CLASSES, NUM_CLASSES)
    np.testing.assert_array_equal(cm.numpy(), expected)


def test_confusion_matrix_rows_are_true_classes_and_columns_predictions():
    target = torch.tensor([[0, 0, 1]])
    pred = torch.tensor([[0, 1, 1]])
    assert metrics.confusion_matrix(pred, target, 2).tolist() == [[1, 1], [0, 1]]
    bool_masks = metrics.confusion_matrix(pred.bool(), target.bool(), 2)
    assert bool_masks.tolist() == [[1, 1], [0, 1]]


def test_confusion_matrix_skips_ignored_pixels():
    pred, target = random_class_maps(3)
    target[:, :4] = 255  # e.g. a border region nobody labelled
    cm = metrics.confusion_matrix(pred, target, NUM_CLASSES, ignore_index=255)
    keep = target != 255
    expected = sk.confusion_matrix(target[keep], pred[keep], labels=range(NUM_CLASSES))
    np.testing.assert_array_equal(cm.numpy(), expected)
    assert cm.sum() == keep.sum()


def test_confusion_matrices_of_batches_add_up_to_the_whole_dataset():
    pred, target = random_class_maps(4, shape=(6, 8, 8))
    whole = metrics.confusion_matrix(pred, target, NUM_CLASSES)
    parts = sum(metrics.confusion_matrix(p, t, NUM_CLASSES) for p, t in zip(pred.split(2), target.split(2)))
    assert torch.equal(whole, parts)


@pytest.mark.parametrize("seed", [0, 1])
def test_scores_match_sklearn(seed):
    pred, target = random_class_maps(seed)
    y_true, y_pred = target.flatten().numpy(), pred.flatten().numpy()
    cm = metrics.confusion_matrix(pred, target, NUM_CLASSES)
    assert metrics.pixel_accuracy(cm) == pytest.approx(sk.accuracy_score(y_true, y_pred))
    np.testing.assert_allclose(metrics.iou_per_class(cm), sk.jaccard_score(y_true, y_pred, average=None), rtol=1e-6)
    assert metrics.mean_iou(cm) == pytest.approx(sk.jaccard_score(y_true, y_pred, average="macro"))
    np.testing.assert_allclose(metrics.dice_per_class(cm), sk.f1_score(y_true, y_pred, average=None), rtol=1e-6)


def test_a_class_absent_from_prediction_and_target_is_nan_and_left_out_of_the_mean():
    pred, target = random_class_maps(5, num_classes=3)  # class 3 never appears
    cm = metrics.confusion_matrix(pred, target, NUM_CLASSES)
    iou = metrics.iou_per_class(cm)
    assert math.isnan(iou[3]) and not iou[:3].isnan().any()
    assert math.isnan(metrics.dice_per_class(cm)[3])
    y_true, y_pred = target.flatten().numpy(), pred.flatten().numpy()
    assert metrics.mean_iou(cm) == pytest.approx(sk.jaccard_score(y_true, y_pred, labels=[0, 1, 2], average="macro"))


def test_iou_and_dice_by_hand():
    pred = torch.zeros(4, 5, dtype=torch.bool)
    target = torch.zeros(4, 5, dtype=torch.bool)
    pred[:2, :3] = True  # 6 pixels
    target[1:3, :2] = True  # 4 pixels, 2 of them shared with pred
    assert metrics.iou(pred, target).item() == pytest.approx(2 / 8)
    assert metrics.dice(pred, target).item() == pytest.approx(2 * 2 / 10)
    assert metrics.iou(pred, target).shape == ()


def test_binary_scores_are_per_image_and_match_sklearn():
    generator = torch.Generator().manual_seed(0)
    pred = torch.rand(5, 12, 9, generator=generator) < 0.5
    target = torch.rand(5, 12, 9, generator=generator) < 0.3
    iou, dice = metrics.iou(pred, target), metrics.dice(pred, target)
    assert iou.shape == dice.shape == (5,)
    for i in range(5):
        assert iou[i].item() == pytest.approx(sk.jaccard_score(target[i].flatten(), pred[i].flatten()))
        assert dice[i].item() == pytest.approx(sk.f1_score(target[i].flatten(), pred[i].flatten()))
    torch.testing.assert_close(dice, 2 * iou / (1 + iou))  # Dice and IoU rank predictions the same way
    assert torch.equal(metrics.iou(pred.long(), target.long()), iou)  # 0/1 integers work like bools


def test_empty_masks():
    empty, full = torch.zeros(2, 3, 3, dtype=torch.long), torch.ones(2, 3, 3, dtype=torch.long)
    assert metrics.iou(empty, empty).tolist() == [1.0, 1.0]  # nothing to find and nothing found
    assert metrics.dice(empty, empty).tolist() == [1.0, 1.0]
    assert metrics.iou(empty, full).tolist() == [0.0, 0.0]
    assert metrics.dice(full, empty).tolist() == [0.0, 0.0]


def test_mismatched_shapes_are_explained():
    pred, target = random_class_maps(0)
    with pytest.raises(ValueError, match=r"same shape, got \(3, 16\) and \(3, 16, 20\).*argmax\(dim=1\)"):
        metrics.confusion_matrix(pred[:, :, 0], target, NUM_CLASSES)
    with pytest.raises(ValueError, match="same shape"):
        metrics.iou(pred[0] > 1, target[1:] > 1)


def test_labels_outside_the_classes_name_the_values_and_the_fix():
    trimap = torch.randint(1, 4, (2, 8, 8), generator=torch.Generator().manual_seed(0))  # Oxford pets: 1, 2, 3
    with pytest.raises(ValueError,
                       match=r"target has labels outside \[0, 3\): values seen are \[1, 2, 3\].*trimap - 1"):
        metrics.confusion_matrix(trimap - 1, trimap, 3)
    with pytest.raises(ValueError, match=r"pred has labels outside \[0, 2\): values seen are \[-1, 0, 1\]"):
        metrics.confusion_matrix(torch.tensor([-1, 0, 1]), torch.tensor([0, 1, 1]), 2)
    with pytest.raises(ValueError, match=r"true_mask has labels outside \[0, 2\): values seen are \[0, 1, 2\]"):
        metrics.dice(torch.tensor([[0, 1, 1]]), torch.tensor([[0, 1, 2]]))
    with pytest.raises(ValueError, match="ignore_index"):
        metrics.confusion_matrix(trimap, torch.full_like(trimap, 255), 4)


def test_float_masks_are_refused_with_the_fix():
    probs = torch.rand(2, 4, 4)
    with pytest.raises(ValueError, match=r"pred_mask should hold class labels.*float32.*probs > 0.5"):
        metrics.iou(probs, probs > 0.5)
    with pytest.raises(ValueError, match=r"pred should hold class labels.*argmax\(dim=1\)"):
        metrics.confusion_matrix(probs, probs.long(), 2)


def test_other_bad_inputs():
    with pytest.raises(ValueError, match="num_classes should be a positive integer, got 0"):
        metrics.confusion_matrix(torch.zeros(2, dtype=torch.long), torch.zeros(2, dtype=torch.long), 0)
    with pytest.raises(ValueError, match=r"square confusion matrix \(K, K\), got \(2, 3\)"):
        metrics.iou_per_class(torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="counts no pixel"):
        metrics.pixel_accuracy(torch.zeros(2, 2, dtype=torch.long))
    with pytest.raises(ValueError,
                       match=r"masks \(H, W\) or a batch \(B, H, W\), got shape \(2, 1, 3, 3\).*squeeze\(1\)"):
        metrics.iou(torch.ones(2, 1, 3, 3, dtype=torch.bool), torch.ones(2, 1, 3, 3, dtype=torch.bool))
