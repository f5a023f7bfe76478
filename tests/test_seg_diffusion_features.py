"""Pixel features from a diffusion U-Net and the per-pixel labeller trained on them."""

import pytest
import torch

from cvcourse.diffusion import NoiseSchedule
from cvcourse.models import DiffusionUNet, UNet
from cvcourse.models.mask_diffusion_unet import MaskDiffusionUNet
from cvcourse.segmentation.diffusion_features import PixelLabeller, diffusion_features, fit_pixel_labeller
from cvcourse.segmentation.metrics import iou


def test_features_stack_every_decoder_level_at_every_timestep_at_the_image_size():
    torch.manual_seed(0)
    schedule = NoiseSchedule.named("cosine", 100)
    model = DiffusionUNet(1, base_width=8, depth=2, embed_dim=16, timesteps=100, patch_size=2)
    images = torch.rand(3, 1, 16, 16)
    features = diffusion_features(model, schedule, images, (5, 20), batch_size=2)
    assert features.shape == (3, 2 * (16 + 8), 16, 16)  # levels of width 16 and 8, two timesteps
    torch.testing.assert_close(features, diffusion_features(model, schedule, images, (5, 20)))  # seeded noise
    torch.testing.assert_close(features[:1], diffusion_features(model, schedule, images[:1], (5, 20)))
    assert not any(up._forward_hooks for up in model.unet.ups)  # the hooks are removed
    masked = MaskDiffusionUNet(1, 2, base_width=8, depth=2, embed_dim=16, timesteps=100)
    assert diffusion_features(masked, schedule, images, (5,)).shape == (3, 24, 16, 16)


def test_the_labeller_learns_a_rule_the_features_carry():
    torch.manual_seed(0)
    features = torch.randn(6, 5, 12, 12)
    masks = (features[:, 2] > 0.3).long()
    labeller = fit_pixel_labeller(features, masks, steps=200, seed=0)
    prediction = (torch.sigmoid(labeller(features)[:, 0]) > 0.5).long()
    assert iou(prediction, masks).mean().item() > 0.9
    assert isinstance(labeller, PixelLabeller) and not labeller.training
    classes = features[:, :3].argmax(1)
    multiclass = fit_pixel_labeller(features, classes, num_classes=3, steps=200, seed=0)
    assert (multiclass(features).argmax(1) == classes).float().mean().item() > 0.9


def test_bad_input_is_explained():
    schedule = NoiseSchedule.named("cosine", 100)
    model = DiffusionUNet(1, base_width=8, depth=1, embed_dim=16, timesteps=100)
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        diffusion_features(model, schedule, torch.full((1, 1, 8, 8), 255.0))
    with pytest.raises(ValueError, match=r"within \[0, 100\)"):
        diffusion_features(model, schedule, torch.rand(1, 1, 8, 8), (100,))
    with pytest.raises(ValueError, match="DiffusionUNet or MaskDiffusionUNet"):
        diffusion_features(UNet(1, 1, depth=1, base_width=4), schedule, torch.rand(1, 1, 8, 8), (5,))
    with pytest.raises(ValueError, match="same N, H and W"):
        fit_pixel_labeller(torch.randn(2, 3, 8, 8), torch.zeros(2, 4, 4, dtype=torch.long))
