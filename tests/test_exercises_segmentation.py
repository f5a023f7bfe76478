"""The segmentation exercises: each accepts correct answers and names realistic mistakes."""

import pytest
import torch
from skimage.filters import threshold_otsu
from torchvision.transforms.v2.functional import center_crop

from cvcourse import exercises
from cvcourse.exercises import ExerciseFailed
from cvcourse.exercises import segmentation as seg_exercises
from cvcourse.segmentation import metrics, otsu_threshold

# ---------------------------------------------------------------------------------------------
# iou_and_dice


def iou_and_dice_by_hand(pred, target):
    """A correct answer written the way a student would."""
    pred, target = pred.bool(), target.bool()
    intersection = (pred & target).sum().item()
    union = (pred | target).sum().item()
    if union == 0:
        return 1.0, 1.0
    return intersection / union, 2 * intersection / (pred.sum().item() + target.sum().item())


def dice_computed_as_iou(pred, target):
    iou, _ = iou_and_dice_by_hand(pred, target)
    return iou, iou


def union_computed_as_sum(pred, target):
    pred, target = pred.bool(), target.bool()
    total = (pred.sum() + target.sum()).item()
    intersection = (pred & target).sum().item()
    return (intersection / total, 2 * intersection / total) if total else (1.0, 1.0)


def nan_for_empty_masks(pred, target):
    pred, target = pred.bool(), target.bool()
    intersection = (pred & target).float().sum()
    return intersection / (pred | target).sum(), 2 * intersection / (pred.sum() + target.sum())


def test_iou_and_dice_accepts_the_metrics_and_a_hand_written_solution(capsys):
    assert exercises.check("iou_and_dice", lambda p, t: (metrics.iou(p, t), metrics.dice(p, t)))
    assert exercises.check("iou_and_dice", iou_and_dice_by_hand)
    assert capsys.readouterr().out.splitlines() == [
        "✓ iou_and_dice: all 6 cases match cvcourse.segmentation.metrics.iou and cvcourse.segmentation.metrics.dice"
    ] * 2


def test_iou_and_dice_cases_include_empty_masks_and_are_deterministic():
    cases = seg_exercises.iou_and_dice_cases()
    assert all(torch.equal(a, b) for (_, a, _), (_, b, _) in zip(cases, seg_exercises.iou_and_dice_cases()))
    assert any(not pred.any() and not target.any() for _, pred, target in cases)
    assert any(not pred.any() and target.any() for _, pred, target in cases)
    scores = [metrics.iou(pred, target).item() for _, pred, target in cases]
    assert 0 < scores[0] < 1 and 0.0 in scores and 1.0 in scores


@pytest.mark.parametrize(
    "wrong_answer, hint",
    [
        (dice_computed_as_iou, r"two overlapping rectangles: your Dice equals the IoU"),
        (union_computed_as_sum, r"the union counts the overlap twice"),
        (nan_for_empty_masks, r"two empty masks: two empty masks agree perfectly.*return 1.0"),
        (lambda p, t: iou_and_dice_by_hand(p, t)[::-1], r"the two scores are swapped"),
        (lambda p, t: iou_and_dice_by_hand(p, t)[0], r"should return two numbers \(iou, dice\), got float"),
        (lambda p, t: (torch.ones(2), 1.0), r"should return the IoU as one number, got Tensor.*\.item\(\)"),
        (lambda p, t: (iou_and_dice_by_hand(p, t)[0], 0.5), r"the IoU is right but the Dice is not"),
    ],
)
def test_iou_and_dice_recognises_common_mistakes(wrong_answer, hint):
    with pytest.raises(ExerciseFailed, match=hint):
        exercises.check("iou_and_dice", wrong_answer)


def test_iou_and_dice_failures_never_print_the_expected_scores():
    _, pred, target = seg_exercises.iou_and_dice_cases()[0]
    with pytest.raises(ExerciseFailed) as failure:
        exercises.check("iou_and_dice", lambda p, t: (0.5, 0.5))
    for score in (metrics.iou(pred, target).item(), metrics.dice(pred, target).item()):
        assert f"{score:.2f}" not in str(failure.value) and f"{score:.2f}"[1:] not in str(failure.value)


# ---------------------------------------------------------------------------------------------
# otsu_threshold


def otsu_with_a_loop(image):
    """A correct answer with a Python loop over 100 bins."""
    low, high = image.min().item(), image.max().item()
    histogram = torch.histc(image, bins=100, min=low, max=high)
    centres = low + (torch.arange(100) + 0.5) * (high - low) / 100
    best, best_t = -1.0, low
    for k in range(99):
        w0, w1 = histogram[: k + 1].sum(), histogram[k + 1 :].sum()
        if w0 == 0 or w1 == 0:
            continue
        mu0 = (histogram[: k + 1] * centres[: k + 1]).sum() / w0
        mu1 = (histogram[k + 1 :] * centres[k + 1 :]).sum() / w1
        variance = (w0 * w1 * (mu0 - mu1) ** 2).item()
        if variance > best:
            best, best_t = variance, centres[k].item()
    return best_t


def largest_within_class_variance_with_a_loop(image):
    """The mistake: maximise w0 var0 + w1 var1 instead of minimising it."""
    low, high = image.min().item(), image.max().item()
    p = torch.histc(image, bins=256, min=low, max=high)
    centres = low + (torch.arange(256) + 0.5) * (high - low) / 256
    best, best_t = -1.0, low
    for k in range(255):
        dark, bright = slice(0, k + 1), slice(k + 1, 256)
        w0, w1 = p[dark].sum(), p[bright].sum()
        if w0 == 0 or w1 == 0:
            continue
        mu0, mu1 = (p[dark] * centres[dark]).sum() / w0, (p[bright] * centres[bright]).sum() / w1
        var0 = (p[dark] * (centres[dark] - mu0) ** 2).sum() / w0
        var1 = (p[bright] * (centres[bright] - mu1) ** 2).sum() / w1
        within = (w0 * var0 + w1 * var1).item()
        if within > best:
            best, best_t = within, centres[k].item()
    return best_t


def test_otsu_accepts_the_course_skimage_and_a_hand_written_loop(capsys):
    assert exercises.check("otsu_threshold", otsu_threshold)
    assert exercises.check("otsu_threshold", lambda image: threshold_otsu(image.numpy()))
    assert exercises.check("otsu_threshold", otsu_with_a_loop)
    assert capsys.readouterr().out.splitlines() == [
        "✓ otsu_threshold: all 3 images match cvcourse.segmentation.otsu_threshold"
    ] * 3


def test_otsu_cases_are_bimodal_images_where_the_mistakes_are_far_from_otsu():
    cases = seg_exercises.otsu_cases()
    assert all(torch.equal(a, b) for (_, a), (_, b) in zip(cases, seg_exercises.otsu_cases()))
    for _, image in cases:
        bin_width = (image.max() - image.min()).item() / 256
        expected = otsu_threshold(image)
        assert abs(image.mean().item() - expected) > 10 * bin_width
        assert abs(largest_within_class_variance_with_a_loop(image) - expected) > 10 * bin_width


@pytest.mark.parametrize(
    "wrong_answer, hint",
    [
        (lambda image: image.mean(), r"threshold 0.3793 is wrong for a dark image .*: this is the mean intensity"),
        (largest_within_class_variance_with_a_loop,
         r"hardly separates anything, as if it maximised the within-class variance"),
        (
            lambda image: int((otsu_threshold(image) - image.min()) / (image.max() - image.min()) * 256),
            r"threshold 114 is wrong.*looks like a bin index",
        ),
        (lambda image: image.median(), r"make a histogram of 256 bins"),
        (lambda image: image.max() + 1, r"should be an intensity between the image's min 0.04531 and max 0.9992"),
        (lambda image: [0.5], r"should return the threshold as one number, got list"),
    ],
)
def test_otsu_recognises_common_mistakes(wrong_answer, hint):
    with pytest.raises(ExerciseFailed, match=hint):
        exercises.check("otsu_threshold", wrong_answer)


def test_otsu_failures_never_print_the_expected_threshold():
    _, image = seg_exercises.otsu_cases()[0]
    with pytest.raises(ExerciseFailed) as failure:
        exercises.check("otsu_threshold", lambda image: image.median())
    assert f"{otsu_threshold(image):.3g}" not in str(failure.value)


# ---------------------------------------------------------------------------------------------
# crop_and_concat


def crop_and_concat_by_hand(skip, upsampled, round_up=False):
    """A correct answer; ``round_up`` puts the extra pixel of an odd margin at the top and the left."""
    height, width = upsampled.shape[-2:]
    top, left = (skip.shape[-2] - height + round_up) // 2, (skip.shape[-1] - width + round_up) // 2
    return torch.cat([skip[..., top : top + height, left : left + width], upsampled], dim=1)


def centre_crop(skip, upsampled):
    return center_crop(skip, list(upsampled.shape[-2:]))


def slices_from_both_ends(skip, upsampled):
    """The mistake x[a:-b]: empty when there is nothing to crop (b = 0)."""
    rows, cols = skip.shape[-2] - upsampled.shape[-2], skip.shape[-1] - upsampled.shape[-1]
    cropped = skip[..., rows // 2 : -(rows - rows // 2), cols // 2 : -(cols - cols // 2)]
    return torch.cat([cropped, upsampled], dim=1)


def test_crop_and_concat_accepts_both_centre_crops_and_torchvision(capsys):
    assert exercises.check("crop_and_concat", crop_and_concat_by_hand)
    assert exercises.check("crop_and_concat", lambda s, u: torch.cat([centre_crop(s, u), u], dim=1))
    assert exercises.check("crop_and_concat", lambda s, u: crop_and_concat_by_hand(s, u, round_up=True))
    assert capsys.readouterr().out.splitlines() == [
        "✓ crop_and_concat: all 4 cases match a centre crop of skip concatenated before upsampled"
    ] * 3


def test_crop_and_concat_cases_cover_odd_margins_equal_channels_and_no_crop():
    cases = seg_exercises.crop_and_concat_cases()
    assert all(torch.equal(a, b) for (_, a, _), (_, b, _) in zip(cases, seg_exercises.crop_and_concat_cases()))
    margins = [(s.shape[-2] - u.shape[-2], s.shape[-1] - u.shape[-1]) for _, s, u in cases]
    assert any(m % 2 for pair in margins for m in pair) and (0, 0) in margins
    assert any(m >= 2 for pair in margins for m in pair)  # a corner crop differs from a centre crop
    assert cases[0][1].shape[1] == cases[0][2].shape[1]  # equal channels: a wrong dim gives a result


@pytest.mark.parametrize(
    "wrong_answer, hint",
    [
        (lambda s, u: torch.cat([s[..., : u.shape[-2], : u.shape[-1]], u], dim=1), "crops the top-left corner"),
        (lambda s, u: torch.cat([s[..., -u.shape[-2] :, -u.shape[-1] :], u], dim=1), "crops the bottom-right corner"),
        (lambda s, u: torch.cat([centre_crop(s, u), u], dim=0), r"got \(4, 3, 8, 6\): .*wrong dimension"),
        (lambda s, u: torch.cat([centre_crop(s, u), u], dim=-1), r"got \(2, 3, 8, 12\): .*wrong dimension"),
        (lambda s, u: torch.cat([u, centre_crop(s, u)], dim=1), "the order is reversed.*\\[skip, upsampled\\]"),
        (slices_from_both_ends, r"raised RuntimeError on maps of the same size.*\n.*x\[a:-b\] with b = 0 is empty"),
        (lambda s, u: centre_crop(s, u), r"should return shape \(2, 6, 8, 6\).*got \(2, 3, 8, 6\)"),
        (lambda s, u: torch.cat([centre_crop(s, u), u], dim=1).numpy(), "should return a torch.Tensor, got ndarray"),
    ],
)
def test_crop_and_concat_recognises_common_mistakes(wrong_answer, hint):
    with pytest.raises(ExerciseFailed, match=hint):
        exercises.check("crop_and_concat", wrong_answer)
