"""The mask-conditioned noise predictor: one-hot channels, the null mask, guidance, L_simple on class maps."""

import pytest
import torch

from cvcourse.diffusion import NoiseSchedule, ddim_sample, diffusion_loss, drop_labels, eps_theta
from cvcourse.models.mask_diffusion_unet import MaskDiffusionUNet, mask_channels


def small_model(**options) -> MaskDiffusionUNet:
    torch.manual_seed(0)
    return MaskDiffusionUNet(1, 3, base_width=8, depth=1, embed_dim=16, timesteps=50, **options)


def test_mask_channels_are_one_hot_and_the_null_class_is_all_zero():
    masks = torch.tensor([[[0, 1], [2, 3]]])
    channels = mask_channels(masks, 3)
    assert channels.shape == (1, 3, 2, 2) and channels.dtype == torch.float32
    expected = torch.tensor([[[1, 0], [0, 0]], [[0, 1], [0, 0]], [[0, 0], [1, 0]]]).float()
    assert torch.equal(channels[0], expected)


def test_the_prediction_depends_on_the_mask_and_none_means_the_null_mask():
    model = small_model().eval()
    with torch.no_grad():
        model.denoiser.unet.head.weight.normal_()  # the head starts at zero: give the output something to show
        x_t, masks = torch.randn(2, 1, 8, 8), torch.randint(0, 3, (2, 8, 8))
        conditioned = model(x_t, 10, masks)
        assert conditioned.shape == x_t.shape
        assert not torch.allclose(conditioned, model(x_t, 10, torch.zeros_like(masks)))
        torch.testing.assert_close(model(x_t, 10), model(x_t, 10, torch.full_like(masks, 3)))


def test_guidance_and_ddim_sampling_take_masks_as_labels():
    model = small_model().eval()
    with torch.no_grad():
        model.denoiser.unet.head.weight.normal_(std=0.1)
        x_t, masks = torch.randn(2, 1, 8, 8), torch.randint(0, 3, (2, 8, 8))
        w = 2.0
        expected = (1 + w) * model(x_t, 5, masks) - w * model(x_t, 5)
        torch.testing.assert_close(eps_theta(model, x_t, 5, masks, guidance_scale=w), expected)
        samples = ddim_sample(model, NoiseSchedule.named("cosine", 50), (2, 1, 8, 8), steps=3, labels=masks,
                              guidance_scale=w, generator=torch.Generator().manual_seed(0))
    assert samples.shape == (2, 1, 8, 8) and torch.isfinite(samples).all()


def test_l_simple_trains_on_class_maps_and_drops_whole_masks():
    model = small_model()
    schedule = NoiseSchedule.named("cosine", 50)
    x0, masks = torch.rand(4, 1, 8, 8) * 2 - 1, torch.randint(0, 3, (4, 8, 8))
    loss = diffusion_loss(model, schedule, x0, masks, drop_label_prob=0.5, generator=torch.Generator().manual_seed(0))
    loss.backward()
    assert loss.item() == pytest.approx(1.0, abs=0.3)  # the zero head predicts eps = 0
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    dropped = drop_labels(torch.zeros(2000, 4, 4, dtype=torch.long), 3, 0.3, torch.Generator().manual_seed(0))
    per_mask = (dropped == 3).flatten(1)
    assert (per_mask.all(1) | ~per_mask.any(1)).all()  # every mask dropped whole, or kept whole
    assert per_mask.all(1).float().mean().item() == pytest.approx(0.3, abs=0.04)


def test_bad_masks_are_explained():
    model = small_model()
    x_t = torch.randn(2, 1, 8, 8)
    with pytest.raises(ValueError, match=r"one class map per image, shape \(2, 8, 8\)"):
        model(x_t, 1, torch.zeros(2, 4, 4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"masks\[:, 0\]"):
        mask_channels(torch.zeros(2, 1, 8, 8, dtype=torch.long), 3)
    with pytest.raises(ValueError, match="masks.long"):
        model(x_t, 1, torch.zeros(2, 8, 8))
    with pytest.raises(ValueError, match=r"\[0, 3\]"):
        model(x_t, 1, torch.full((2, 8, 8), 4))
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        model(torch.randn(2, 3, 8, 8), 1)
    with pytest.raises(ValueError, match="num_classes must be an int >= 2"):
        MaskDiffusionUNet(1, 1)
    with pytest.raises(ValueError, match="one class map per image"):
        diffusion_loss(model, NoiseSchedule.named("cosine", 50), x_t, torch.zeros(2, 4, 4, dtype=torch.long))
