"""The U-Net weight map: hand-made cells, a brute-force reference, class balance and bad input."""

import math

import numpy as np
import pytest
import torch
from sklearn.utils.class_weight import compute_class_weight

from cvcourse.segmentation import class_balance_weights, unet_weight_map, weighted_bce


def two_cells() -> torch.Tensor:
    """Two 10 x 10 cells with a gap of two background columns (13 and 14) between them."""
    instances = torch.zeros(20, 40, dtype=torch.long)
    instances[5:15, 3:13] = 1
    instances[5:15, 15:25] = 2
    return instances


def brute_force_weight_map(instances: torch.Tensor, w0: float = 10.0, sigma: float = 5.0) -> torch.Tensor:
    """Eq. 2 pixel by pixel: distances to every pixel of every cell with torch.cdist."""
    height, width = instances.shape
    rows, cols = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    pixels = torch.stack([rows.flatten(), cols.flatten()], dim=1).double()
    ids = [i for i in instances.unique().tolist() if i > 0]
    nearest = torch.stack([torch.cdist(pixels, pixels[instances.flatten() == i]).min(dim=1).values for i in ids])
    d1, d2 = nearest.sort(dim=0).values[:2]
    border = w0 * torch.exp(-((d1 + d2) ** 2) / (2 * sigma**2)) * (instances.flatten() == 0)
    return class_balance_weights(instances > 0) + border.reshape(height, width).float()


def test_the_gap_between_two_cells_gets_a_high_weight():
    instances = two_cells()
    weights = unet_weight_map(instances)
    assert weights.dtype == torch.float32 and weights.shape == instances.shape
    background, foreground = 800 / (2 * 600), 800 / (2 * 200)  # 600 background and 200 cell pixels
    # column 13: 1 pixel from cell 1 and 2 pixels from cell 2
    assert weights[10, 13].item() == pytest.approx(background + 10 * math.exp(-(3**2) / (2 * 5**2)))
    assert weights[10, 13] > 8 * weights[10, 35]
    assert weights[10, 38].item() == pytest.approx(background, abs=1e-3)  # far from both cells: ~w_c
    assert torch.all(weights[instances > 0] == foreground)  # the border term is for background pixels only


def test_matches_a_brute_force_computation_with_three_cells():
    instances = torch.zeros(24, 30, dtype=torch.long)
    instances[2:8, 2:9] = 1
    instances[10:14, 4:7] = 7  # ids need not be consecutive
    instances[3:20, 12:14] = 3
    instances[18:22, 20:28] = 4
    torch.testing.assert_close(unet_weight_map(instances), brute_force_weight_map(instances))
    torch.testing.assert_close(unet_weight_map(instances, w0=3.0, sigma=2.0), brute_force_weight_map(instances, 3, 2))


def test_fewer_than_two_cells_leave_only_the_class_balance():
    one_cell = torch.zeros(10, 12, dtype=torch.long)
    one_cell[2:5, 3:9] = 1
    assert torch.equal(unet_weight_map(one_cell), class_balance_weights(one_cell > 0))
    assert torch.equal(unet_weight_map(torch.zeros(6, 6, dtype=torch.long)), torch.ones(6, 6))
    assert torch.equal(unet_weight_map(two_cells(), w0=0.0), class_balance_weights(two_cells() > 0))


def test_class_balance_matches_sklearn():
    mask = torch.rand(15, 17, generator=torch.Generator().manual_seed(0)) < 0.2
    weights = class_balance_weights(mask)
    expected = compute_class_weight("balanced", classes=np.array([False, True]), y=mask.flatten().numpy())
    assert weights[~mask].unique().tolist() == pytest.approx([expected[0]])
    assert weights[mask].unique().tolist() == pytest.approx([expected[1]])
    assert weights[mask].sum().item() == pytest.approx(weights[~mask].sum().item())  # equal total weight


def test_a_mask_with_gaps_inside_the_instances_weights_the_gaps():
    instances = torch.zeros(20, 40, dtype=torch.long)
    instances[5:15, 3:14] = 1  # the two cells touch: column 13 belongs to cell 1 ...
    instances[5:15, 14:25] = 2
    mask = instances > 0
    mask[:, 13] = False  # ... but the target cuts a background gap there, as SyntheticCells does
    weights = unet_weight_map(instances, mask=mask)
    assert weights[10, 13] > 8  # 1 pixel from each cell
    assert torch.equal(weights, unet_weight_map(instances * mask))
    assert unet_weight_map(instances)[10, 13] < 2  # without the mask the gap is inside a cell


def test_the_weight_map_feeds_weighted_bce():
    instances = two_cells()
    weights = unet_weight_map(instances)[None]
    logits = torch.zeros(1, 1, *instances.shape)
    loss = weighted_bce(logits, (instances > 0)[None].long(), weights)
    assert loss.item() == pytest.approx(math.log(2) * weights.mean().item())


def test_bad_input_is_explained():
    with pytest.raises(ValueError, match=r"instance map \(H, W\), got \(1, 20, 40\).*torch.stack"):
        unet_weight_map(two_cells()[None])
    with pytest.raises(ValueError, match=r"integer cell ids.*got dtype torch.bool.*label_objects"):
        unet_weight_map(two_cells() > 0)
    with pytest.raises(ValueError, match="cell ids should be >= 0.*got minimum -1"):
        unet_weight_map(two_cells() - 1)
    with pytest.raises(ValueError, match="sigma > 0, got w0=10.0, sigma=0"):
        unet_weight_map(two_cells(), sigma=0)
    with pytest.raises(ValueError, match=r"mask should have the instances' shape \(20, 40\), got \(20, 41\)"):
        unet_weight_map(two_cells(), mask=torch.ones(20, 41, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"mask should hold class labels.*float32"):
        unet_weight_map(two_cells(), mask=torch.ones(20, 40))
