"""Which prediction learns which object: anchors and their matching, the box coder, and FCOS's anchor-free rule.

A dense detector predicts at every location of a feature map of stride ``s`` (the map is ``s`` times
smaller than the image). Location (row i, column j) looks at the image around its *centre*
((j + 0.5) * s, (i + 0.5) * s): the centre of the s x s block of pixels it covers. (torchvision's
``AnchorGenerator`` puts it at (j * s, i * s), the block's corner; the course uses the centre.)

Two ways to turn ground-truth boxes into per-location training targets:

- **Anchors** (Faster R-CNN, Ren et al. 2015; SSD; RetinaNet, Lin et al. 2017): each location carries
  boxes of a few sizes and aspect ratios (``make_anchors``). An anchor whose IoU with a ground-truth box is
  high enough learns that box (``match_anchors``), as an offset from the anchor (``encode`` / ``decode``).
- **Anchor-free** (FCOS, Tian et al. 2019; YOLOX): a location learns the object whose box contains its
  centre, as the distances to the box's four sides (``fcos_targets``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torchvision import ops

from cvcourse.detection.boxes import check_box_tensor, check_boxes

BACKGROUND, IGNORE = -1, -2  # match values of an anchor or location that learns no object
DEFAULT_WEIGHTS = (1.0, 1.0, 1.0, 1.0)  # RPN and RetinaNet; Faster R-CNN's second stage uses (10, 10, 5, 5)
MAX_LOG_SCALE = math.log(1000 / 16)  # decode never grows a box more than 1000/16 times (as torchvision)


def grid_centres(feature_size: tuple[int, int], stride: float) -> torch.Tensor:
    """(H * W, 2) image coordinates (x, y) of the centre of every location of an (H, W) feature map,
    ((j + 0.5) * stride, (i + 0.5) * stride), in row-major order: location (i, j) is row i * W + j."""
    height, width = feature_size
    ys = (torch.arange(height, dtype=torch.float32) + 0.5) * stride
    xs = (torch.arange(width, dtype=torch.float32) + 0.5) * stride
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([grid_x.flatten(), grid_y.flatten()], dim=1)


def make_anchors(feature_size: tuple[int, int], stride: float, sizes: Sequence[float],
                 aspect_ratios: Sequence[float] = (0.5, 1.0, 2.0)) -> torch.Tensor:
    """(H * W * A, 4) xyxy anchors of one feature map, A = len(aspect_ratios) * len(sizes) per location.

    An anchor of size s and aspect ratio r = height / width has area s^2: width s / sqrt(r), height
    s * sqrt(r), centred on its location (``grid_centres``). Order: location by location, and within a
    location ratio by ratio, size by size (as ``torchvision.models.detection.anchor_utils.AnchorGenerator``,
    which differs only by its centres at j * stride and by rounding the anchors to whole pixels).
    """
    if not sizes or not aspect_ratios or min(sizes) <= 0 or min(aspect_ratios) <= 0:
        raise ValueError(f"sizes and aspect_ratios should be non-empty lists of positive numbers, got {sizes!r} "
                         f"and {aspect_ratios!r}; e.g. sizes=(32,), aspect_ratios=(0.5, 1.0, 2.0)")
    sizes = torch.as_tensor(sizes, dtype=torch.float32)
    root_ratios = torch.as_tensor(aspect_ratios, dtype=torch.float32).sqrt()
    widths = (sizes[None, :] / root_ratios[:, None]).flatten()  # (A,), ratio-major
    heights = (sizes[None, :] * root_ratios[:, None]).flatten()
    half_extent = torch.stack([widths, heights], dim=1) / 2  # (A, 2)
    centres = grid_centres(feature_size, stride)[:, None, :]  # (L, 1, 2)
    return torch.cat([centres - half_extent, centres + half_extent], dim=2).reshape(-1, 4)


def match_anchors(anchors: torch.Tensor, gt_boxes: torch.Tensor, fg_iou: float = 0.5,
                  bg_iou: float = 0.4) -> torch.Tensor:
    """(A,) int64: for each anchor, the index of the ground-truth box it learns, or BACKGROUND (-1) or
    IGNORE (-2) (RetinaNet's rule; ``torchvision.models.detection._utils.Matcher`` with
    ``allow_low_quality_matches=True``).

    An anchor goes to the box it overlaps most: matched if that IoU >= ``fg_iou``, background if < ``bg_iou``,
    ignored (no loss) in between. Then every box gets at least its best anchors (all anchors tied at its
    highest IoU), even below ``fg_iou``, so small or oddly shaped objects are learnt too; such an anchor
    takes the box it overlaps most. A box that overlaps no anchor at all is left unmatched (torchvision's
    Matcher would then hand every non-overlapping anchor to box 0). No ground truth: all background.
    """
    check_boxes(anchors, name="anchors")
    check_boxes(gt_boxes, name="gt_boxes")
    if not 0 <= bg_iou <= fg_iou <= 1:
        raise ValueError(f"need 0 <= bg_iou <= fg_iou <= 1, got bg_iou={bg_iou}, fg_iou={fg_iou}; "
                         "RetinaNet uses fg_iou=0.5, bg_iou=0.4, Faster R-CNN's RPN 0.7 and 0.3")
    if gt_boxes.shape[0] == 0:
        return torch.full((anchors.shape[0],), BACKGROUND, dtype=torch.int64, device=anchors.device)
    iou = ops.box_iou(gt_boxes, anchors)  # (G, A)
    best_iou, best_gt = iou.max(dim=0)  # for each anchor, its most overlapping box
    matches = best_gt.clone()
    matches[best_iou < fg_iou] = IGNORE
    matches[best_iou < bg_iou] = BACKGROUND
    highest_for_gt = iou.max(dim=1, keepdim=True).values  # (G, 1): each box's best IoU with any anchor
    _, best_anchors = torch.nonzero((iou == highest_for_gt) & (highest_for_gt > 0), as_tuple=True)
    matches[best_anchors] = best_gt[best_anchors]
    return matches


def check_weights(weights: Sequence[float]) -> None:
    """Raise a ValueError unless ``weights`` are the box coder's four positive weights."""
    if len(weights) != 4 or min(weights) <= 0:
        raise ValueError(f"weights should be four positive numbers (wx, wy, ww, wh), got {weights!r}; "
                         "use (1.0, 1.0, 1.0, 1.0), or (10.0, 10.0, 5.0, 5.0) as Faster R-CNN's box head")


def encode(boxes: torch.Tensor, anchors: torch.Tensor, weights: Sequence[float] = DEFAULT_WEIGHTS) -> torch.Tensor:
    """(N, 4) regression targets (tx, ty, tw, th) of xyxy ``boxes`` relative to their ``anchors`` (N, 4)
    (Faster R-CNN, Ren et al. 2015, eq. 2; ``torchvision.models.detection._utils.BoxCoder.encode_single``):

        tx = wx (x - xa) / wa,  ty = wy (y - ya) / ha,  tw = ww log(w / wa),  th = wh log(h / ha)

    with (x, y, w, h) the centre and size of a box and (xa, ya, wa, ha) those of its anchor. Dividing by
    the anchor's size makes the targets scale-free; the ``weights`` rescale them to about unit variance.
    """
    check_boxes(boxes)
    check_boxes(anchors, name="anchors")
    check_weights(weights)
    if boxes.shape != anchors.shape:
        raise ValueError(f"boxes and anchors should pair up, got shapes {tuple(boxes.shape)} and "
                         f"{tuple(anchors.shape)}; pass gt_boxes[matches[foreground]] with anchors[foreground]")
    for name, tensor in (("boxes", boxes), ("anchors", anchors)):
        if (tensor[:, 2:] <= tensor[:, :2]).any():
            raise ValueError(f"{name} should have positive widths and heights (log(0) is -inf); drop empty ones "
                             "with remove_small_boxes(boxes, 1e-3)")
    wx, wy, ww, wh = weights
    x, y, w, h = ops.box_convert(boxes, "xyxy", "cxcywh").unbind(dim=1)
    xa, ya, wa, ha = ops.box_convert(anchors, "xyxy", "cxcywh").unbind(dim=1)
    return torch.stack([wx * (x - xa) / wa, wy * (y - ya) / ha, ww * torch.log(w / wa), wh * torch.log(h / ha)], 1)


def decode(deltas: torch.Tensor, anchors: torch.Tensor, weights: Sequence[float] = DEFAULT_WEIGHTS) -> torch.Tensor:
    """(N, 4) xyxy boxes from regression outputs ``deltas`` (N, 4) and their ``anchors``: the inverse of
    ``encode`` (``BoxCoder.decode_single``). tw and th are clamped at log(1000 / 16) so exp cannot overflow."""
    check_box_tensor(deltas, name="deltas")
    check_boxes(anchors, name="anchors")
    check_weights(weights)
    if deltas.shape != anchors.shape:
        raise ValueError(f"deltas and anchors should pair up, got shapes {tuple(deltas.shape)} and "
                         f"{tuple(anchors.shape)}; predict one (tx, ty, tw, th) per anchor")
    wx, wy, ww, wh = weights
    xa, ya, wa, ha = ops.box_convert(anchors, "xyxy", "cxcywh").unbind(dim=1)
    tx, ty, tw, th = deltas.unbind(dim=1)
    x, y = xa + wa * tx / wx, ya + ha * ty / wy
    w = wa * torch.exp((tw / ww).clamp(max=MAX_LOG_SCALE))
    h = ha * torch.exp((th / wh).clamp(max=MAX_LOG_SCALE))
    return ops.box_convert(torch.stack([x, y, w, h], dim=1), "cxcywh", "xyxy")


def fcos_targets(points: torch.Tensor, gt_boxes: torch.Tensor,
                 size_range: tuple[float, float] = (0.0, math.inf)) -> tuple[torch.Tensor, torch.Tensor]:
    """FCOS's assignment for the locations of one feature-pyramid level (Tian et al. 2019, sec. 3.1-3.2).

    ``points`` (P, 2) are the locations' centres (x, y) (``grid_centres``). A location learns a box when
    its centre lies strictly inside it and the largest of its distances to the four sides,
    max(l, t, r, b), is within ``size_range`` (FCOS: (0, 64) on stride 8, (64, 128) on stride 16, ...,
    so each level learns objects of its scale). If several boxes qualify, the smallest (in area) wins.

    Returns ``matches`` (P,) int64, a box index or BACKGROUND (-1), and ``distances`` (P, 4), the
    (l, t, r, b) regression targets of the matched box (0 for background locations).
    """
    if not isinstance(points, torch.Tensor) or points.ndim != 2 or points.shape[1] != 2:
        shape = tuple(points.shape) if isinstance(points, torch.Tensor) else type(points).__name__
        raise ValueError(f"points should be (P, 2) centres (x, y), got {shape}; make them with grid_centres")
    check_boxes(gt_boxes, name="gt_boxes")
    low, high = size_range
    matches = torch.full((points.shape[0],), BACKGROUND, dtype=torch.int64, device=points.device)
    if gt_boxes.shape[0] == 0:
        return matches, points.new_zeros(points.shape[0], 4)
    x, y = points[:, 0, None], points[:, 1, None]  # (P, 1), against every box (1, G)
    x1, y1, x2, y2 = gt_boxes.T[:, None, :]
    distances = torch.stack([x - x1, y - y1, x2 - x, y2 - y], dim=2)  # (P, G, 4): left, top, right, bottom
    reach = distances.max(dim=2).values
    candidate = (distances.min(dim=2).values > 0) & (reach >= low) & (reach <= high)
    area_if_candidate = torch.where(candidate, ops.box_area(gt_boxes)[None, :], math.inf)
    smallest_area, smallest_box = area_if_candidate.min(dim=1)
    foreground = smallest_area < math.inf
    matches[foreground] = smallest_box[foreground]
    targets = distances[torch.arange(points.shape[0]), smallest_box] * foreground[:, None]
    return matches, targets
