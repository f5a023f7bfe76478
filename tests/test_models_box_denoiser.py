"""The box denoiser (DiffusionDet's decoder on chapter 08's backbone): shapes, the untrained stage returns its boxes,
R-CNN deltas, the backbone shared with the dense detector, learned proposals, gradients and bad input."""

import pytest
import torch
from torchvision import ops

from cvcourse.models import BoxDenoiser, DenseDetector
from cvcourse.models.box_denoiser import DELTA_WEIGHTS, apply_deltas

IMAGES = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
BOXES = torch.tensor([[[4.0, 4.0, 20.0, 30.0], [30.0, 10.0, 60.0, 40.0], [0.0, 0.0, 64.0, 64.0]]]).repeat(2, 1, 1)
T = torch.tensor([0, 999])


def small(**options) -> BoxDenoiser:
    torch.manual_seed(0)
    return BoxDenoiser(3, width=8, fpn_width=16, hidden=32, **options)


def test_one_output_per_stage_with_logits_and_boxes_inside_the_image():
    outputs = small(stages=3)(IMAGES, BOXES, T)
    assert len(outputs) == 3
    for stage in outputs:
        assert stage["logits"].shape == (2, 3, 3) and stage["boxes"].shape == (2, 3, 4)
        assert (stage["boxes"] >= 0).all() and (stage["boxes"] <= 64).all()


def test_the_untrained_model_returns_its_input_boxes_at_probability_one_percent():
    first = small()(IMAGES, BOXES, T)[0]
    assert torch.allclose(first["boxes"], BOXES)
    assert torch.allclose(first["logits"].sigmoid().mean(), torch.tensor(0.01), atol=0.01)


def test_deltas_move_the_centre_by_a_share_of_the_size_and_scale_the_sides():
    box = torch.tensor([[10.0, 20.0, 30.0, 60.0]])  # centre (20, 40), size 20 x 40
    moved = apply_deltas(box, torch.tensor([[DELTA_WEIGHTS[0] * 0.5, 0.0, 0.0, torch.log(torch.tensor(2.0))]]))
    assert torch.allclose(ops.box_convert(moved, "xyxy", "cxcywh"), torch.tensor([[30.0, 40.0, 20.0, 80.0]]))
    assert torch.allclose(apply_deltas(box, torch.zeros(1, 4)), box)


def test_timesteps_change_the_prediction_and_each_image_keeps_its_own_boxes():
    model = small().eval()  # batch norm's running statistics: an image's result does not depend on its batch
    torch.nn.init.normal_(model.stages[0].box_deltas.weight, std=0.1)
    outputs = model(IMAGES, BOXES, torch.tensor([0, 0]))[-1]["boxes"]
    assert not torch.allclose(outputs, model(IMAGES, BOXES, torch.tensor([0, 900]))[-1]["boxes"])
    one = model(IMAGES[:1], BOXES[:1], torch.tensor([0]))[-1]["boxes"]
    assert torch.allclose(one, outputs[:1], atol=1e-5)


def test_the_backbone_has_the_dense_detectors_parameter_names_so_a_trained_one_loads():
    detector = DenseDetector(3, width=8, fpn_width=16)
    model = small()
    missing = model.backbone.load_state_dict({k: v for k, v in detector.state_dict().items()
                                              if k in model.backbone.state_dict()})
    assert not missing.missing_keys
    assert torch.equal(model.backbone.stem[0][0].weight, detector.stem[0][0].weight)


def test_gradients_reach_the_backbone_the_stages_and_learned_proposals():
    model = small(learned_proposals=5)
    boxes = model.proposal_boxes(IMAGES)
    assert boxes.shape == (2, 5, 4)
    outputs = model(IMAGES, boxes, torch.zeros(2, dtype=torch.long))
    sum(stage["logits"].sum() + stage["boxes"].sum() for stage in outputs).backward()
    assert model.backbone.stem[0][0].weight.grad.abs().sum() > 0
    assert model.stages[1].class_logits.weight.grad.abs().sum() > 0
    assert model.learned.grad is not None


def test_bad_input_is_refused_with_the_fix():
    model = small()
    with pytest.raises(ValueError, match="multiples of 16"):
        model(torch.rand(2, 3, 60, 64), BOXES, T)
    with pytest.raises(ValueError, match=r"\(B, N, 4\)"):
        model(IMAGES, BOXES[0], T)
    with pytest.raises(ValueError, match="one integer timestep per image"):
        model(IMAGES, BOXES, torch.tensor([0.5, 1.0]))
    with pytest.raises(ValueError, match=r"\[0, 1000\)"):
        model(IMAGES, BOXES, torch.tensor([0, 1000]))
    with pytest.raises(ValueError, match="learned_proposals"):
        model.proposal_boxes(IMAGES)
    with pytest.raises(ValueError, match="even hidden"):
        BoxDenoiser(3, hidden=31)


def test_a_frozen_backbone_keeps_its_weights_and_statistics_while_the_decoder_learns():
    model = small(frozen_backbone=True).train()
    assert not model.backbone.training and model.stages[0].training
    before = {name: value.clone() for name, value in model.backbone.state_dict().items()}
    outputs = model(IMAGES, BOXES, T)
    sum(stage["logits"].sum() for stage in outputs).backward()
    assert all(p.grad is None for p in model.backbone.parameters())
    assert model.stages[0].class_logits.weight.grad is not None
    assert all(torch.equal(value, before[name]) for name, value in model.backbone.state_dict().items())
