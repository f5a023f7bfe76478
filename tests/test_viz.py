import matplotlib

matplotlib.use("Agg")

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from torchvision.transforms.v2.functional import to_dtype
from torchvision.utils import draw_bounding_boxes, draw_segmentation_masks

from cvcourse import viz


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def random_image(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


# to_uint8


def test_to_uint8_matches_torchvision_to_dtype():
    image = random_image(3, 5, 7)
    assert torch.equal(viz.to_uint8(image), to_dtype(image, torch.uint8, scale=True))


def test_to_uint8_maps_value_range_onto_0_255():
    image = random_image(2, 3, 4, 4) * 2 - 1
    result = viz.to_uint8(image, value_range=(-1, 1))
    assert result.shape == (2, 3, 4, 4) and result.dtype == torch.uint8
    assert torch.equal(result, to_dtype((image + 1) / 2, torch.uint8, scale=True))
    ends = viz.to_uint8(torch.tensor([-1.0, 1.0]).view(1, 1, 2), value_range=(-1, 1))
    assert ends.flatten().tolist() == [0, 255]


def test_to_uint8_passes_uint8_through_and_accepts_one_channel():
    image = torch.randint(0, 256, (1, 4, 4), dtype=torch.uint8)
    assert viz.to_uint8(image) is image
    assert viz.to_uint8(random_image(1, 4, 4)).shape == (1, 4, 4)


def test_to_uint8_tolerates_rounding_just_outside_the_range():
    image = torch.tensor([-0.0005, 1.0005]).view(1, 1, 2)
    assert viz.to_uint8(image).flatten().tolist() == [0, 255]


@pytest.mark.parametrize(
    "image, error, match",
    [
        (torch.rand(4, 4), ValueError, r"got shape \(4, 4\).*unsqueeze\(0\)"),
        (torch.rand(4, 4, 3), ValueError, r"channels.*permute\(2, 0, 1\)"),
        (torch.rand(3, 4, 4) * 2 - 1, ValueError, r"outside value_range=\(0.0, 1.0\).*value_range=\(-1, 1\)"),
        (torch.ones(3, 4, 4, dtype=torch.int64), TypeError, r"float or uint8 image, got dtype torch.int64"),
        (np.zeros((3, 4, 4)), TypeError, r"expected an image tensor, got ndarray"),
    ],
)
def test_to_uint8_rejects_bad_input_with_a_fix(image, error, match):
    with pytest.raises(error, match=match):
        viz.to_uint8(image)


# show_images


def test_show_images_lays_out_a_grid_with_titles_and_gray_for_one_channel():
    figure = viz.show_images(random_image(5, 1, 6, 6), titles=list("abcde"), ncols=3)
    assert isinstance(figure, Figure)
    assert len(figure.axes) == 6  # 2 rows of 3, the last one empty
    shown = [ax for ax in figure.axes if ax.images]
    assert [ax.get_title() for ax in shown] == list("abcde")
    assert shown[0].images[0].get_cmap().name == "gray"
    first_image = viz.to_uint8(random_image(5, 1, 6, 6))[0, 0]
    np.testing.assert_array_equal(shown[0].images[0].get_array(), first_image)


def test_show_images_takes_a_list_of_differently_sized_images_and_a_value_range():
    images = [random_image(3, 4, 4) * 2 - 1, random_image(3, 8, 5) * 2 - 1]
    figure = viz.show_images(images, value_range=(-1, 1))
    assert [ax.images[0].get_array().shape for ax in figure.axes] == [(4, 4, 3), (8, 5, 3)]


def test_show_images_rejects_titles_of_the_wrong_length():
    with pytest.raises(ValueError, match="got 1 titles for 2 images"):
        viz.show_images(random_image(2, 3, 4, 4), titles=["only one"])


# class_colors


def test_class_colors_is_a_fixed_palette_with_black_background():
    colors = viz.class_colors(21)
    assert colors[0] == (0, 0, 0)
    assert len(set(colors)) == 21
    assert viz.class_colors(5) == colors[:5]
    assert all(isinstance(c, int) and 0 <= c <= 255 for color in colors for c in color)
    assert len(viz.class_colors(50)) == 50
    with pytest.raises(ValueError, match="at least 1"):
        viz.class_colors(0)


# overlay_masks


def test_overlay_masks_class_map_matches_torchvision_and_leaves_background():
    image = random_image(3, 6, 8)
    class_map = torch.zeros(6, 8, dtype=torch.int64)
    class_map[1:3, 2:5] = 2
    class_map[4:, :] = 4
    result = viz.overlay_masks(image, class_map, num_classes=5, alpha=0.4)
    palette = viz.class_colors(5)
    reference = draw_segmentation_masks(
        viz.to_uint8(image),
        torch.stack([class_map == 2, class_map == 4]),
        alpha=0.4,
        colors=[palette[2], palette[4]],
    )
    assert result.dtype == torch.uint8 and result.shape == (3, 6, 8)
    assert torch.equal(result, reference)
    assert torch.equal(result[:, class_map == 0], viz.to_uint8(image)[:, class_map == 0])


def test_overlay_masks_instance_masks_match_torchvision_on_a_gray_image():
    image = random_image(1, 5, 5)
    masks = torch.zeros(2, 5, 5, dtype=torch.bool)
    masks[0, :2] = True
    masks[1, 3:, 3:] = True
    result = viz.overlay_masks(image, masks)
    reference = draw_segmentation_masks(
        viz.to_uint8(image).expand(3, -1, -1), masks, alpha=0.5, colors=viz.class_colors(3)[1:]
    )
    assert torch.equal(result, reference)


def test_overlay_masks_with_nothing_to_draw_returns_the_image():
    image = random_image(3, 4, 4)
    assert torch.equal(viz.overlay_masks(image, torch.zeros(4, 4, dtype=torch.int64)), viz.to_uint8(image))


@pytest.mark.parametrize(
    "mask, num_classes, match",
    [
        (torch.zeros(5, 4, dtype=torch.int64), None, r"mask size \(5, 4\) differs from image size \(4, 4\)"),
        (torch.full((4, 4), 7), 5, r"labels in \[7, 7\] but num_classes=5.*including background"),
        (torch.full((4, 4), 255), 21, r"replace ignore labels"),
        (torch.zeros(4, 4, dtype=torch.bool), None, r"class map \(H, W\) of integers.*mask\[None\]"),
        (torch.zeros(4, 4), None, r"got shape \(4, 4\) and dtype torch.float32"),
    ],
)
def test_overlay_masks_rejects_bad_masks(mask, num_classes, match):
    with pytest.raises(ValueError, match=match):
        viz.overlay_masks(random_image(3, 4, 4), mask, num_classes=num_classes)


def test_overlay_masks_rejects_a_batch():
    with pytest.raises(ValueError, match=r"got a batch.*images\[i\]"):
        viz.overlay_masks(random_image(2, 3, 4, 4), torch.zeros(4, 4, dtype=torch.int64))


# draw_boxes

BOXES = torch.tensor([[1.0, 2.0, 20.0, 15.0], [10.0, 5.0, 30.0, 28.0]])


def test_draw_boxes_matches_torchvision_with_names_scores_and_class_colours():
    image = random_image(3, 32, 40)
    labels = torch.tensor([1, 3])
    scores = torch.tensor([0.934, 0.5])
    result = viz.draw_boxes(image, BOXES, labels, ["bg", "cat", "dog", "bird"], scores=scores)
    palette = viz.class_colors(4)
    reference = draw_bounding_boxes(
        viz.to_uint8(image), BOXES, labels=["cat 0.93", "bird 0.50"], colors=[palette[1], palette[3]]
    )
    assert result.dtype == torch.uint8 and result.shape == (3, 32, 40)
    assert torch.equal(result, reference)


def test_draw_boxes_without_class_names_writes_the_label_number():
    image = random_image(1, 32, 40)
    result = viz.draw_boxes(image, BOXES, torch.tensor([2, 2]), width=2)
    reference = draw_bounding_boxes(
        viz.to_uint8(image).expand(3, -1, -1),
        BOXES,
        labels=["2", "2"],
        colors=[viz.class_colors(3)[2]] * 2,
        width=2,
    )
    assert torch.equal(result, reference)


def test_draw_boxes_with_no_boxes_returns_the_image():
    image = random_image(3, 8, 8)
    assert torch.equal(viz.draw_boxes(image, torch.zeros(0, 4)), viz.to_uint8(image))


@pytest.mark.parametrize(
    "boxes, labels, scores, match",
    [
        (torch.zeros(4), None, None, r"boxes of shape \(N, 4\).*got shape \(4,\).*box\[None\]"),
        (BOXES, torch.tensor([1]), None, r"labels of shape \(2,\), one per box, got shape \(1,\)"),
        (BOXES, None, torch.tensor([0.5, 0.5, 0.5]), r"scores of shape \(2,\)"),
        (BOXES, torch.tensor([1, 9]), None, r"label 9 has no name: class_names has 4 entries"),
    ],
)
def test_draw_boxes_rejects_bad_input(boxes, labels, scores, match):
    with pytest.raises(ValueError, match=match):
        viz.draw_boxes(random_image(3, 32, 40), boxes, labels, ["bg", "cat", "dog", "bird"], scores=scores)


# show_sample


def scene() -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    masks = torch.zeros(2, 32, 40, dtype=torch.bool)
    masks[0, 2:16, 1:21] = True
    masks[1, 5:29, 10:31] = True
    semantic = torch.zeros(32, 40, dtype=torch.int64)
    semantic[masks[0]] = 1
    semantic[masks[1]] = 3
    target = {"boxes": BOXES, "labels": torch.tensor([1, 3]), "masks": masks, "semantic": semantic}
    return random_image(3, 32, 40), target


def test_show_sample_draws_image_masks_and_boxes_side_by_side():
    image, target = scene()
    figure = viz.show_sample(image, target, ["bg", "cat", "dog", "bird"])
    assert [ax.get_title() for ax in figure.axes] == ["image", "semantic mask", "boxes"]
    expected_overlay = viz.overlay_masks(image, target["semantic"], num_classes=4)
    shown_overlay = figure.axes[1].images[0].get_array()
    np.testing.assert_array_equal(shown_overlay, expected_overlay.permute(1, 2, 0).numpy())


@pytest.mark.parametrize(
    "keys, titles",
    [(["masks"], ["image", "instance masks"]), (["boxes"], ["image", "boxes"]), ([], ["image"])],
)
def test_show_sample_works_with_some_of_the_keys(keys, titles):
    image, target = scene()
    figure = viz.show_sample(image, {key: target[key] for key in keys}, ["bg", "cat", "dog", "bird"])
    assert [ax.get_title() for ax in figure.axes] == titles


# plot_history


class FakeHistory:
    def __init__(self, series: dict[str, tuple[list[int], list[float]]]):
        self._series = series

    def names(self) -> list[str]:
        return list(self._series)

    def series(self, name: str) -> tuple[list[int], list[float]]:
        return self._series[name]


HISTORY = FakeHistory(
    {
        "loss": (list(range(1, 11)), [10.0, 8, 9, 6, 5, 6, 4, 3, 3, 2]),
        "val_loss": ([5, 10], [6.0, 3.5]),
        "val_acc": ([5, 10], [0.5, 0.7]),
    }
)


def test_plot_history_puts_each_metric_on_its_own_axis():
    figure = viz.plot_history(HISTORY)
    loss_ax, acc_ax = figure.axes
    assert [line.get_label() for line in loss_ax.lines] == ["loss", "val_loss"]
    assert [line.get_label() for line in acc_ax.lines] == ["val_acc"]
    assert loss_ax.get_ylabel() == "loss" and acc_ax.get_ylabel() == "acc"
    np.testing.assert_array_equal(acc_ax.lines[0].get_ydata(), [0.5, 0.7])


def test_plot_history_smooths_with_a_moving_average_over_the_raw_curve():
    figure = viz.plot_history(HISTORY, names=["loss"], smooth=3, log_y=True)
    raw, smoothed = figure.axes[0].lines
    np.testing.assert_array_equal(raw.get_ydata(), HISTORY.series("loss")[1])
    np.testing.assert_array_equal(smoothed.get_xdata(), range(3, 11))
    reference = np.convolve(HISTORY.series("loss")[1], np.ones(3) / 3, mode="valid")
    np.testing.assert_allclose(smoothed.get_ydata(), reference)
    assert smoothed.get_color() == raw.get_color()
    assert figure.axes[0].get_yscale() == "log"


def test_plot_history_draws_everything_on_a_given_axis():
    figure, ax = plt.subplots()
    assert viz.plot_history(HISTORY, ax=ax) is figure
    assert len(ax.lines) == 3 and len(figure.axes) == 1


def test_plot_history_wraps_many_metrics_into_rows():
    history = FakeHistory({name: ([1, 2], [1.0, 2.0]) for name in ["a", "b", "c", "d"]})
    figure = viz.plot_history(history)
    assert len(figure.axes) == 6 and sum(bool(ax.lines) for ax in figure.axes) == 4


def test_plot_history_rejects_unknown_names_and_empty_history():
    with pytest.raises(ValueError, match=r"no series \['acc'\]; known series are \['loss', 'val_loss', 'val_acc'"):
        viz.plot_history(HISTORY, names=["acc"])
    with pytest.raises(ValueError, match="no series yet; train for at least one step"):
        viz.plot_history(FakeHistory({}))
    with pytest.raises(ValueError, match="must be >= 0"):
        viz.plot_history(HISTORY, smooth=-1)


# explore


def test_explore_builds_controls_draws_and_redraws():
    calls = []

    def draw(frequency: float, label: str) -> Figure:
        calls.append((frequency, label))
        figure, ax = plt.subplots()
        ax.plot(np.sin(frequency * np.linspace(0, 1, 20)))
        ax.set_title(label)
        return figure

    widget = viz.explore(draw, frequency=(1.0, 5.0, 0.5), label=widgets.Text(value="sine"))
    slider, text = widget.kwargs_widgets
    assert isinstance(slider, widgets.FloatSlider)
    assert (slider.min, slider.max, slider.step) == (1.0, 5.0, 0.5)
    assert slider.continuous_update is False
    assert calls == [(3.0, "sine")]  # drawn once with the initial values
    slider.value = 4.5
    widget.update()
    assert calls[-1] == (4.5, "sine")
    assert isinstance(widget.result, Figure) and widget.result.axes[0].get_title() == "sine"
    assert plt.get_fignums() == []  # shown figures are closed


def test_explore_reports_a_draw_that_returns_no_figure(caplog):
    widget = viz.explore(lambda n: None, n=(0, 3))
    assert widget.result is None
    assert "draw must return the matplotlib Figure it drew, got NoneType" in caplog.text


def test_explore_rejects_a_control_it_cannot_build():
    with pytest.raises(ValueError, match=r"control n=None cannot become a widget.*\(min, max\)"):
        viz.explore(lambda n: plt.figure(), n=None)


def test_explore_dataset_shows_the_sample_at_the_slider_index():
    dataset = [scene(), scene(), (scene()[0], {"boxes": BOXES})]
    widget = viz.explore_dataset(dataset, ["bg", "cat", "dog", "bird"])
    (slider,) = widget.kwargs_widgets
    assert (slider.min, slider.max, slider.value) == (0, 2, 0)
    assert len(widget.result.axes) == 3
    slider.value = 2
    widget.update()
    assert [ax.get_title() for ax in widget.result.axes] == ["image", "boxes"]
    with pytest.raises(ValueError, match="dataset is empty"):
        viz.explore_dataset([], ["bg"])


def test_plot_confusion_matrix_normalises_rows_and_checks_its_input():
    confusion = torch.tensor([[8, 2], [0, 0]])
    figure = viz.plot_confusion_matrix(confusion, ["background", "cell"])
    texts = [text.get_text() for text in figure.axes[0].texts]
    assert texts == ["0.80", "0.20", "0.00", "0.00"]  # an empty row stays zero instead of dividing by zero
    plt.close(figure)
    with pytest.raises(ValueError, match="square"):
        viz.plot_confusion_matrix(torch.zeros(2, 3), ["a", "b"])


def test_show_snapshots_draws_one_titled_row_per_step_and_refuses_a_mismatch():
    galleries = torch.rand(3, 5, 1, 8, 8)
    figure = viz.show_snapshots(galleries, [100, 200, 300], columns=4)
    titles = [ax.get_title() for ax in figure.axes if ax.get_title()]
    assert titles == ["step 100", "step 200", "step 300"] and len(figure.axes) >= 12
    plt.close(figure)
    with pytest.raises(ValueError, match="one snapshot per step"):
        viz.show_snapshots(galleries, [100, 200])
