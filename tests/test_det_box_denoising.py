"""DiffusionDet's training and sampling: the corruption of Algorithm 1, the set loss over stages, the sampler of
Algorithm 2 (trailing timesteps, x_0 prediction, renewal, the ablation modes) against an oracle decoder, training."""

import pytest
import torch
from torch import nn

from cvcourse.detection import evaluate_detections
from cvcourse.detection.box_denoising import box_denoising_loss, noisy_boxes, sample_boxes, train_box_denoiser
from cvcourse.diffusion.schedules import NoiseSchedule
from cvcourse.models import BoxDenoiser

SCHEDULE = NoiseSchedule.cosine(1000)
SIZE = (64, 64)
TARGETS = [{"boxes": torch.tensor([[4.0, 4.0, 20.0, 30.0], [30.0, 10.0, 60.0, 40.0]]), "labels": torch.tensor([1, 3])},
           {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}]


class Oracle(nn.Module):
    """A decoder that knows the answer: every box becomes the ground-truth box nearest to it, scored 0.9 for its
    class; it records the timesteps it was told."""

    learned = None

    def __init__(self, target):
        super().__init__()
        self.target, self.told = target, []

    def features(self, images):
        return {}

    def decode(self, features, boxes, t):
        self.told.append(int(t[0]))
        centres = (boxes[..., :2] + boxes[..., 2:]) / 2
        truth_centres = (self.target["boxes"][:, :2] + self.target["boxes"][:, 2:]) / 2
        nearest = torch.cdist(centres, truth_centres[None].expand(len(boxes), -1, -1)).argmin(-1)
        logits = torch.full((*boxes.shape[:2], 3), -10.0)
        logits.scatter_(-1, (self.target["labels"][nearest] - 1)[..., None], 2.1972)  # sigmoid = 0.9
        return [{"logits": logits, "boxes": self.target["boxes"][nearest]}]


def test_noisy_boxes_keep_the_ground_truth_at_t_0_and_are_noise_at_t_T():
    generator = torch.Generator().manual_seed(0)
    boxes, t = noisy_boxes(TARGETS, SIZE, 10, SCHEDULE, generator=generator)
    assert boxes.shape == (2, 10, 4) and t.shape == (2,) and (t >= 0).all() and (t < 1000).all()
    assert (boxes >= 0).all() and (boxes <= 64).all()
    early = NoiseSchedule(SCHEDULE.betas.clone())
    early.alpha_bar[:] = 1.0  # as if every t were 0: no noise at all
    early.sqrt_alpha_bar[:], early.sqrt_one_minus_alpha_bar[:] = 1.0, 0.0
    clean, _ = noisy_boxes(TARGETS, SIZE, 10, early, generator=generator)
    assert torch.allclose(clean[0, :2], TARGETS[0]["boxes"], atol=1e-4)


def test_more_ground_truth_boxes_than_the_model_denoises_is_refused():
    with pytest.raises(ValueError, match="do not fit in 1 boxes"):
        noisy_boxes(TARGETS, SIZE, 1, SCHEDULE)


def test_the_loss_sums_every_stage_and_an_image_without_objects_is_fine():
    torch.manual_seed(0)
    model = BoxDenoiser(3, width=8, fpn_width=16, hidden=32, stages=2)
    losses = box_denoising_loss(model, SCHEDULE, torch.rand(2, 3, *SIZE), TARGETS, count=8)
    assert set(losses) == {"classification", "l1", "giou", "loss"}
    assert torch.isfinite(losses["loss"]) and losses["loss"] > 0
    losses["loss"].backward()
    assert all(stage.class_logits.weight.grad.abs().sum() > 0 for stage in model.stages)


def test_sampling_starts_at_T_minus_1_and_takes_the_asked_steps():
    oracle = Oracle(TARGETS[0])
    record = []
    sample_boxes(oracle, SCHEDULE, torch.rand(1, 3, *SIZE), count=6, steps=4, record=record)
    assert oracle.told[0] == 999 and len(oracle.told) == 4 and oracle.told == sorted(oracle.told, reverse=True)
    assert len(record) == 4 and record[0]["boxes"].shape == (1, 6, 4) and record[0]["scores"].shape == (1, 6)
    oracle.told.clear()
    sample_boxes(oracle, SCHEDULE, torch.rand(1, 3, *SIZE), count=6, steps=3, mode="fixed_t")
    assert oracle.told == [999, 999, 999]
    oracle.told.clear()
    sample_boxes(oracle, SCHEDULE, torch.rand(1, 3, *SIZE), count=6, steps=3, mode="fresh")
    assert oracle.told == [999, 999, 999]  # new boxes of pure noise each pass


@pytest.mark.parametrize("mode", ["ddim", "fresh", "fixed_t"])
@pytest.mark.parametrize("renewal", [0.5, None])
def test_an_oracle_decoder_is_found_perfectly_after_nms(mode, renewal):
    generator = torch.Generator().manual_seed(1)
    found = sample_boxes(Oracle(TARGETS[0]), SCHEDULE, torch.rand(1, 3, *SIZE), count=20, steps=2, mode=mode,
                         renewal_threshold=renewal, generator=generator)
    assert len(found[0]["boxes"]) == 2  # every box became one of the two objects; NMS kept one of each
    assert evaluate_detections(found, TARGETS[:1])["map"] == pytest.approx(1.0)


def test_sampling_is_deterministic_with_a_generator_and_count_and_steps_are_free():
    torch.manual_seed(0)
    model = BoxDenoiser(3, width=8, fpn_width=16, hidden=32).eval()
    images = torch.rand(2, 3, *SIZE)
    first = sample_boxes(model, SCHEDULE, images, count=8, steps=2, generator=torch.Generator().manual_seed(3))
    again = sample_boxes(model, SCHEDULE, images, count=8, steps=2, generator=torch.Generator().manual_seed(3))
    assert all(torch.equal(a["boxes"], b["boxes"]) for a, b in zip(first, again))
    for count, steps in [(1, 1), (32, 4)]:
        found = sample_boxes(model, SCHEDULE, images, count=count, steps=steps)
        assert len(found) == 2 and all(len(d["boxes"]) <= count * steps for d in found)
    with pytest.raises(ValueError, match="mode must be one of"):
        sample_boxes(model, SCHEDULE, images, count=8, steps=2, mode="denoise")
    with pytest.raises(ValueError, match="count and steps must be >= 1"):
        sample_boxes(model, SCHEDULE, images, count=0, steps=2)


def test_learned_proposals_run_one_pass_from_their_own_boxes():
    torch.manual_seed(0)
    model = BoxDenoiser(3, width=8, fpn_width=16, hidden=32, learned_proposals=5).eval()
    record = []
    sample_boxes(model, SCHEDULE, torch.rand(1, 3, *SIZE), count=50, steps=4, record=record)
    assert len(record) == 1 and torch.allclose(record[0]["boxes"], model.proposal_boxes(torch.rand(1, 3, *SIZE)))


def test_a_few_training_steps_lower_the_loss_on_a_tiny_set(tmp_path):
    from cvcourse.data import detection_scenes

    scenes = detection_scenes("train", 8, 64, transforms=None)
    torch.manual_seed(0)
    model = BoxDenoiser(4, width=8, fpn_width=16, hidden=32)
    trainer = train_box_denoiser(model, scenes, SCHEDULE, count=12, steps=30, batch_size=4, lr=3e-3,
                                 checkpoint_dir=tmp_path, checkpoint_every=15, progress=False)
    losses = trainer.history.series("loss")[1]
    assert trainer.step == 30 and all(torch.isfinite(torch.tensor(losses)))
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5
