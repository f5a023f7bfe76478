"""Pictures for the course: image grids, mask and box overlays, training curves, small widgets.

Images follow the course convention: float tensors (C, H, W) or (B, C, H, W) with values in
``value_range`` (usually [0, 1]; [-1, 1] in the diffusion chapters), or uint8 tensors.
Drawing on images uses ``torchvision.utils``; every function returns what it made
(a matplotlib Figure or a uint8 image tensor), so notebooks can show it, save it or test it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import ipywidgets as widgets
import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import display
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from torchvision.transforms.v2.functional import to_dtype
from torchvision.utils import draw_bounding_boxes, draw_segmentation_masks

# Float images may stray this far outside value_range (rounding in normalisation) and still count as inside.
RANGE_TOLERANCE = 1e-3


def to_uint8(image: torch.Tensor, value_range: tuple[float, float] = (0.0, 1.0)) -> torch.Tensor:
    """Convert a float image (C, H, W) or batch (B, C, H, W) in ``value_range`` to uint8 in [0, 255].

    uint8 images pass through unchanged. The scaling is torchvision's
    ``transforms.v2.functional.to_dtype(..., torch.uint8, scale=True)`` after mapping value_range to [0, 1].
    """
    if not isinstance(image, torch.Tensor):
        raise TypeError(
            f"expected an image tensor, got {type(image).__name__}; "
            "convert it first, e.g. with torchvision.transforms.v2.functional.to_image(...)"
        )
    if image.ndim not in (3, 4):
        raise ValueError(
            f"expected an image (C, H, W) or a batch (B, C, H, W), got shape {tuple(image.shape)}; "
            "for a grayscale image (H, W) add the channel axis with image.unsqueeze(0)"
        )
    channels = image.shape[-3]
    if channels not in (1, 3):
        raise ValueError(
            f"expected 1 or 3 channels in dimension -3, got shape {tuple(image.shape)}; "
            "if the channels come last (H, W, C), use image.permute(2, 0, 1)"
        )
    if image.dtype == torch.uint8:
        return image
    if not image.is_floating_point():
        raise TypeError(
            f"expected a float or uint8 image, got dtype {image.dtype}; "
            "for a class map use overlay_masks(image, class_map), otherwise convert with image.float()"
        )
    low, high = value_range
    seen_low, seen_high = image.min().item(), image.max().item()
    if not (low - RANGE_TOLERANCE <= seen_low and seen_high <= high + RANGE_TOLERANCE):
        raise ValueError(
            f"image values lie in [{seen_low:.3g}, {seen_high:.3g}], outside value_range={value_range}; "
            "if the image is in [-1, 1] pass value_range=(-1, 1), "
            f"otherwise clamp it first with image.clamp({low}, {high})"
        )
    unit = ((image - low) / (high - low)).clamp(0.0, 1.0)
    return to_dtype(unit, torch.uint8, scale=True)


def _single_rgb(image: torch.Tensor) -> torch.Tensor:
    """One uint8 RGB image (3, H, W) on the CPU, as torchvision.utils drawing functions expect."""
    if isinstance(image, torch.Tensor) and image.ndim == 4:
        raise ValueError(
            f"expected one image (C, H, W), got a batch of shape {tuple(image.shape)}; pass images[i]"
        )
    image = to_uint8(image).cpu()
    return image.expand(3, -1, -1) if image.shape[0] == 1 else image


def show_images(
    images: torch.Tensor | Sequence[torch.Tensor],
    titles: Sequence[str] | None = None,
    ncols: int = 8,
    value_range: tuple[float, float] = (0.0, 1.0),
    scale: float = 1.5,
) -> Figure:
    """Show a batch (B, C, H, W), one image (C, H, W) or a list of images in a grid; grayscale in gray."""
    if isinstance(images, torch.Tensor) and images.ndim == 3:
        images = [images]
    images = [to_uint8(image, value_range).cpu() for image in images]
    if not images:
        raise ValueError("got no images to show; pass a batch (B, C, H, W) or a non-empty list of images")
    if titles is not None and len(titles) != len(images):
        raise ValueError(f"got {len(titles)} titles for {len(images)} images; pass one title per image")
    ncols = min(ncols, len(images))
    nrows = math.ceil(len(images) / ncols)
    aspect = images[0].shape[-2] / images[0].shape[-1]  # height / width, so wide images get short rows
    row_height = scale * aspect + (0.3 if titles is not None else 0.0)
    figure, axes = plt.subplots(nrows, ncols, figsize=(scale * ncols, row_height * nrows), squeeze=False)
    for index, ax in enumerate(axes.flat):
        ax.axis("off")
        if index >= len(images):
            continue
        pixels = images[index].permute(1, 2, 0).numpy()
        if pixels.shape[-1] == 1:
            ax.imshow(pixels[..., 0], cmap="gray", vmin=0, vmax=255)
        else:
            ax.imshow(pixels)
        if titles is not None:
            ax.set_title(titles[index], fontsize=8)
    figure.tight_layout()
    return figure


def show_snapshots(galleries: torch.Tensor, steps: Sequence[int], columns: int | None = None,
                   scale: float = 0.9) -> Figure:
    """One row per training snapshot, titled with its step: ``galleries`` (snapshots, N, C, H, W) holds the same
    noise sampled with the weights of each of ``steps`` (as ``cvcourse.diffusion.training.Snapshots`` records it);
    ``columns`` shows only the first ones of each row."""
    if galleries.ndim != 5 or len(galleries) != len(steps):
        raise ValueError(f"galleries must be (snapshots, N, C, H, W) with one snapshot per step, got shape "
                         f"{tuple(galleries.shape)} for {len(steps)} steps")
    galleries = galleries[:, :columns]
    titles = [f"step {step}" if column == 0 else "" for step in steps for column in range(galleries.shape[1])]
    return show_images(galleries.flatten(0, 1), ncols=galleries.shape[1], titles=titles, scale=scale)


def class_colors(num_classes: int) -> list[tuple[int, int, int]]:
    """A fixed palette: class 0 (background) is black, then matplotlib's tab20, strong hues first, cycled."""
    if num_classes < 1:
        raise ValueError(f"num_classes must be at least 1 (the background), got {num_classes}")
    tab20 = matplotlib.colormaps["tab20"].colors
    hues = tab20[0::2] + tab20[1::2]
    palette = [tuple(round(255 * channel) for channel in rgb) for rgb in hues]
    return [(0, 0, 0)] + [palette[i % len(palette)] for i in range(num_classes - 1)]


def overlay_masks(
    image: torch.Tensor,
    mask: torch.Tensor,
    num_classes: int | None = None,
    alpha: float = 0.5,
) -> torch.Tensor:
    """Draw a class map (H, W) int (0 = background, not drawn) or instance masks (N, H, W) bool on an image.

    Class c gets ``class_colors(num_classes)[c]``; instance i gets colour i + 1 of the palette.
    Uses ``torchvision.utils.draw_segmentation_masks``; returns uint8 (3, H, W).
    """
    image, mask = _single_rgb(image), mask.cpu()
    if mask.shape[-2:] != image.shape[-2:]:
        raise ValueError(
            f"mask size {tuple(mask.shape[-2:])} differs from image size {tuple(image.shape[-2:])}; "
            "resize the mask with nearest-neighbour interpolation or pass the image it belongs to"
        )
    if mask.ndim == 3 and mask.dtype == torch.bool:
        masks, colors = mask, class_colors(len(mask) + 1)[1:]
    elif mask.ndim == 2 and not mask.is_floating_point() and mask.dtype != torch.bool:
        num_classes = int(mask.max()) + 1 if num_classes is None else num_classes
        if mask.min() < 0 or mask.max() >= num_classes:
            raise ValueError(
                f"class map has labels in [{int(mask.min())}, {int(mask.max())}] "
                f"but num_classes={num_classes}; "
                "labels must lie in [0, num_classes): pass the number of classes including background 0, "
                "and replace ignore labels (e.g. 255) with 0 before drawing"
            )
        present = [label for label in mask.unique().tolist() if label != 0]
        palette = class_colors(num_classes)
        masks = mask[None] == torch.tensor(present, dtype=mask.dtype)[:, None, None]
        colors = [palette[label] for label in present]
    else:
        raise ValueError(
            f"expected a class map (H, W) of integers or instance masks (N, H, W) of bools, "
            f"got shape {tuple(mask.shape)} and dtype {mask.dtype}; "
            "for a single bool mask pass mask[None], for soft (float) masks pass mask > 0.5"
        )
    if len(masks) == 0:
        return image.clone()
    return draw_segmentation_masks(image, masks, alpha=alpha, colors=colors)


def draw_boxes(
    image: torch.Tensor,
    boxes: torch.Tensor,
    labels: torch.Tensor | None = None,
    class_names: Sequence[str] | None = None,
    scores: torch.Tensor | None = None,
    width: int = 1,
) -> torch.Tensor:
    """Draw XYXY boxes (N, 4) with text "name" or "name 0.93", coloured by class.

    Uses ``torchvision.utils.draw_bounding_boxes``; returns uint8 (3, H, W).
    """
    image, boxes = _single_rgb(image), boxes.cpu()
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(
            f"expected boxes of shape (N, 4) as [x1, y1, x2, y2] pixels, got shape {tuple(boxes.shape)}; "
            "for one box pass box[None]"
        )
    for name, values in (("labels", labels), ("scores", scores)):
        if values is not None and values.shape != (len(boxes),):
            raise ValueError(
                f"expected {name} of shape ({len(boxes)},), one per box, got shape {tuple(values.shape)}"
            )
    if labels is not None and class_names is not None and len(labels) and labels.max() >= len(class_names):
        raise ValueError(
            f"label {int(labels.max())} has no name: class_names has {len(class_names)} entries; "
            "pass the class names of the dataset the labels come from"
        )
    if len(boxes) == 0:
        return image.clone()
    label_list = [1] * len(boxes) if labels is None else labels.tolist()
    palette = class_colors(max(label_list) + 1)
    colors = [palette[label] for label in label_list]
    texts = None
    if labels is not None:
        texts = [class_names[label] if class_names is not None else str(label) for label in label_list]
    if scores is not None:
        names = texts or [""] * len(boxes)
        texts = [f"{name} {score:.2f}".strip() for name, score in zip(names, scores.tolist())]
    return draw_bounding_boxes(image, boxes, labels=texts, colors=colors, width=width)


def show_sample(
    image: torch.Tensor, target: Mapping[str, torch.Tensor], class_names: Sequence[str]
) -> Figure:
    """Show an image, its mask overlay and its labelled boxes side by side.

    The mask panel uses ``target["semantic"]`` (else ``target["masks"]``); the box panel uses
    ``target["boxes"]`` and ``target["labels"]``. Panels whose keys are missing are left out.
    """
    panels = [("image", to_uint8(image))]
    if "semantic" in target:
        semantic = overlay_masks(image, target["semantic"], num_classes=len(class_names))
        panels.append(("semantic mask", semantic))
    elif "masks" in target:
        panels.append(("instance masks", overlay_masks(image, target["masks"])))
    if "boxes" in target:
        panels.append(("boxes", draw_boxes(image, target["boxes"], target.get("labels"), class_names)))
    return show_images([picture for _, picture in panels], titles=[title for title, _ in panels], scale=3.0)


class History(Protocol):
    """What plot_history needs from a training history."""

    def names(self) -> list[str]: ...

    def series(self, name: str) -> tuple[list[int], list[float]]: ...


def metric_group(name: str) -> str:
    """The metric a series measures: its name without a train/val/test prefix ("val_loss" -> "loss")."""
    return re.sub(r"^(train|val|valid|test)[/_.\-]", "", name)


def moving_average(values: Sequence[float], window: int) -> np.ndarray:
    """Mean of each run of ``window`` consecutive values (len(values) - window + 1 of them)."""
    return np.convolve(np.asarray(values, dtype=float), np.ones(window) / window, mode="valid")


def plot_history(
    history: History,
    names: Sequence[str] | None = None,
    ax: Axes | None = None,
    smooth: int = 0,
    log_y: bool = False,
) -> Figure:
    """Plot training curves: one axis per metric, or all on ``ax``.

    Series of the same metric share an axis: "loss", "train_loss" and "val_loss" are all "loss".

    With ``smooth`` > 1 a moving average over that many points is drawn over the faint raw curve.
    """
    known = history.names()
    names = known if names is None else list(names)
    if not names:
        raise ValueError("the history has no series yet; train for at least one step before plotting")
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ValueError(f"history has no series {unknown}; known series are {known}")
    if smooth < 0:
        raise ValueError(f"smooth is a moving-average window and must be >= 0, got {smooth}")
    groups = list(dict.fromkeys(metric_group(name) for name in names))
    if ax is None:
        ncols = min(len(groups), 3)
        nrows = math.ceil(len(groups) / ncols)
        figure, axes = plt.subplots(nrows, ncols, figsize=(4.5 * ncols, 3.2 * nrows), squeeze=False)
        for unused_ax in axes.flat[len(groups) :]:
            unused_ax.axis("off")
        ax_of_group = dict(zip(groups, axes.flat))
    else:
        figure, ax_of_group = ax.figure, dict.fromkeys(groups, ax)
    for name in names:
        steps, values = history.series(name)
        target_ax = ax_of_group[metric_group(name)]
        if smooth > 1 and len(values) >= smooth:
            (raw,) = target_ax.plot(steps, values, alpha=0.3)
            smoothed = moving_average(values, smooth)
            target_ax.plot(steps[smooth - 1 :], smoothed, color=raw.get_color(), label=name)
        else:
            target_ax.plot(steps, values, label=name)
    for group, group_ax in ax_of_group.items():
        group_ax.set_xlabel("step")
        group_ax.set_ylabel(group if ax is None else "value")
        group_ax.grid(alpha=0.3)
        group_ax.legend(fontsize=8)
        if log_y:
            group_ax.set_yscale("log")
    figure.tight_layout()
    return figure


def explore(draw: Callable[..., Figure], **controls: Any) -> widgets.interactive:
    """Controls that redraw ``draw(**values)`` when they change; a thin layer over ``ipywidgets.interactive``.

    ``draw`` returns the Figure it drew. Controls are ipywidgets or abbreviations as in ``interact``,
    e.g. ``(0, 10)`` or ``(0.0, 1.0, 0.1)``. Sliders redraw when released, not while dragged.
    """

    def show(**values: Any) -> Figure:
        figure = draw(**values)
        if not isinstance(figure, Figure):
            raise TypeError(
                f"draw must return the matplotlib Figure it drew, got {type(figure).__name__}; "
                "end it with `return fig` where fig, ax = plt.subplots()"
            )
        display(figure)
        plt.close(figure)
        return figure

    control_widgets = {}
    for name, control in controls.items():
        widget = widgets.interactive.widget_from_abbrev(control)
        if widget is None:
            raise ValueError(
                f"control {name}={control!r} cannot become a widget; "
                "pass an ipywidgets widget or a tuple (min, max) or (min, max, step)"
            )
        if hasattr(widget, "continuous_update"):
            widget.continuous_update = False
        control_widgets[name] = widget
    return widgets.interactive(show, **control_widgets)


def explore_dataset(
    dataset: Sequence[tuple[torch.Tensor, Mapping[str, torch.Tensor]]], class_names: Sequence[str]
) -> widgets.interactive:
    """An index slider that shows ``show_sample(*dataset[index], class_names)``."""
    if len(dataset) == 0:
        raise ValueError("the dataset is empty; check the split and the data folder it was loaded from")
    slider = widgets.IntSlider(value=0, min=0, max=len(dataset) - 1, description="index")
    return explore(lambda index: show_sample(*dataset[index], class_names), index=slider)


def plot_confusion_matrix(confusion: torch.Tensor, class_names: Sequence[str], ax: Axes | None = None) -> Figure:
    """A confusion matrix (rows = true class, columns = predicted) normalised per row, counts in each cell."""
    confusion = torch.as_tensor(confusion, dtype=torch.float64)
    if confusion.ndim != 2 or confusion.shape[0] != confusion.shape[1] or len(class_names) != len(confusion):
        raise ValueError(f"expected a square (K, K) matrix with K = {len(class_names)} class names, "
                         f"got shape {tuple(confusion.shape)}")
    rates = confusion / confusion.sum(dim=1, keepdim=True).clamp(min=1)
    if ax is None:
        size = 1.0 + 0.6 * len(class_names)
        figure, ax = plt.subplots(figsize=(size + 1.0, size))
    else:
        figure = ax.figure
    image = ax.imshow(rates.numpy(), cmap="Blues", vmin=0, vmax=1)
    for (row, column), rate in np.ndenumerate(rates.numpy()):
        ax.text(column, row, f"{rate:.2f}", ha="center", va="center", fontsize=7,
                color="white" if rate > 0.6 else "black")
    ax.set_xticks(range(len(class_names)), class_names, rotation=45, ha="right")
    ax.set_yticks(range(len(class_names)), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    figure.colorbar(image, ax=ax, fraction=0.046, label="fraction of the true class")
    figure.tight_layout()
    return figure
