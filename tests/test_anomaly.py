"""Anomaly maps, partial diffusion, the patch feature memory and the evaluation: values, shapes, bad input."""

import dataclasses

import pytest
import torch
from sklearn.metrics import roc_auc_score
from torch import nn
from torchvision.transforms.v2.functional import gaussian_blur

from cvcourse.anomaly import (
    PatchMemory,
    anomaly_map,
    autoencoder_maps,
    evaluate,
    image_scores,
    partial_diffusion_maps,
    per_defect_auroc,
    pyramid_noise,
    random_features,
    resnet_features,
)
from cvcourse.data import inspection_split
from cvcourse.diffusion import NoiseSchedule

SCHEDULE = NoiseSchedule.named("cosine", 100)


def images(n=4, channels=3, size=16, seed=0):
    return torch.rand(n, channels, size, size, generator=torch.Generator().manual_seed(seed))


def test_anomaly_map_is_the_channel_mean_absolute_difference_then_a_gaussian_blur():
    x, y = images(), images(seed=1)
    raw = (x - y).abs().mean(1)
    assert torch.allclose(anomaly_map(x, y, blur_sigma=0), raw)
    assert torch.allclose(anomaly_map(x, y, blur_sigma=1.0), gaussian_blur(raw[:, None], [5, 5], [1.0, 1.0])[:, 0])
    assert anomaly_map(x, x).abs().max() == 0


@pytest.mark.parametrize("args, message", [
    ((images(), images(size=8)), "differ in shape"),
    ((images()[0], images()[0]), r"batch \(N, C, H, W\)"),
    ((images() * 2 - 1, images()), r"\[0, 1\]"),
])
def test_anomaly_map_rejects_bad_input(args, message):
    with pytest.raises(ValueError, match=message):
        anomaly_map(*args)


def test_negative_blur_and_image_scores():
    with pytest.raises(ValueError, match="blur_sigma"):
        anomaly_map(images(), images(), blur_sigma=-1)
    maps = torch.zeros(3, 5, 5)
    maps[1, 2, 3] = 4.0
    assert torch.equal(image_scores(maps), torch.tensor([0.0, 4.0, 0.0]))
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        image_scores(maps[:, None])


class ConstantAutoencoder(nn.Module):
    """Reconstructs every image as mid grey."""

    def __init__(self):
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(1))

    def reconstruct(self, x):
        return torch.full_like(x, 0.5)


def test_autoencoder_maps_use_the_reconstruction():
    x = images()
    maps, reconstructions = autoencoder_maps(ConstantAutoencoder(), x, blur_sigma=0, batch_size=3)
    assert torch.equal(reconstructions, torch.full_like(x, 0.5))
    assert torch.allclose(maps, (x - 0.5).abs().mean(1))


class OracleEps(nn.Module):
    """A noise predictor that knows the clean image: eps = (x_t - sqrt(alpha_bar) x0) / sqrt(1 - alpha_bar)."""

    def __init__(self, clean):
        super().__init__()
        self.clean = clean
        self.unused = nn.Parameter(torch.zeros(1))

    def forward(self, x_t, t, labels=None):
        alpha_bar = SCHEDULE.alpha_bar.float()[t].view(-1, 1, 1, 1)
        return (x_t - alpha_bar.sqrt() * (self.clean * 2 - 1)) / (1 - alpha_bar).sqrt()


@pytest.mark.parametrize("t_lambda", [1, 30, 80])
def test_a_model_that_knows_the_normal_image_reconstructs_it_so_the_map_is_the_defect(t_lambda):
    normal = images(2, size=12) * 0.6 + 0.2
    defective = normal.clone()
    defective[:, :, 3:6, 4:8] = 1.0
    maps, reconstructions = partial_diffusion_maps(OracleEps(normal), SCHEDULE, defective, t_lambda, steps=20,
                                                   blur_sigma=0)
    assert torch.allclose(reconstructions, normal, atol=1e-4)
    assert torch.allclose(maps, (defective - normal).abs().mean(1), atol=1e-4)


def test_partial_diffusion_maps_are_deterministic_average_draws_and_check_t_lambda():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 3, 1))
    eps = lambda x, t, labels=None: model(x)  # noqa: E731
    module = nn.Module()
    module.forward, module.parameters = eps, model.parameters
    x = images(3, size=8)
    one, _ = partial_diffusion_maps(module, SCHEDULE, x, 40, steps=10, seed=1)
    again, _ = partial_diffusion_maps(module, SCHEDULE, x, 40, steps=10, seed=1, batch_size=2)
    assert torch.allclose(one, again, atol=1e-6)
    other, _ = partial_diffusion_maps(module, SCHEDULE, x, 40, steps=10, seed=2)
    assert not torch.allclose(one, other)
    two, _ = partial_diffusion_maps(module, SCHEDULE, x, 40, steps=10, seed=1, draws=2)
    assert one.shape == two.shape == (3, 8, 8) and not torch.allclose(one, two)
    for bad in (-1, 100, 2.5):
        with pytest.raises(ValueError, match=r"t_lambda must be an int in \[0, T\)"):
            partial_diffusion_maps(module, SCHEDULE, x, bad)
    with pytest.raises(ValueError, match="draws"):
        partial_diffusion_maps(module, SCHEDULE, x, 10, draws=0)


def test_the_memory_finds_nothing_in_its_own_images_and_the_odd_patch_in_a_new_one():
    normal = torch.zeros(6, 3, 16, 16)
    normal[:, :, :, ::4] = 1.0  # vertical lines
    memory = PatchMemory(random_features(width=8), memory_size=None, blur_sigma=0).fit(normal)
    assert memory.maps(normal).abs().max() < 1e-3  # zero up to cdist's rounding (it uses a matrix product)
    odd = normal[:1].clone()
    odd[:, :, 8:12, 8:12] = 0.5
    maps = memory.maps(odd)
    assert maps.max() > 0.1
    peak = divmod(int(maps[0].argmax()), 16)
    assert 6 <= peak[0] <= 13 and 6 <= peak[1] <= 13


def test_the_memory_is_capped_reproducibly_and_rejects_misuse():
    normal = images(4, size=16)
    first = PatchMemory(random_features(), memory_size=50, seed=3).fit(normal).memory
    assert first.shape == (50, 128)
    assert torch.equal(first, PatchMemory(random_features(), memory_size=50, seed=3).fit(normal).memory)
    with pytest.raises(RuntimeError, match="fit"):
        PatchMemory(random_features()).maps(normal)
    with pytest.raises(ValueError, match="normal training images"):
        PatchMemory(random_features()).fit(normal[:0])
    with pytest.raises(ValueError, match="memory_size"):
        PatchMemory(random_features(), memory_size=0)


def test_feature_extractors_shapes_and_determinism():
    x = images(2, size=64)
    assert random_features(seed=1)(x).shape == (2, 128, 32, 32)
    assert torch.equal(random_features(seed=1)(x), random_features(seed=1)(x))
    assert not torch.equal(random_features(seed=1)(x), random_features(seed=2)(x))
    assert resnet_features(weights=None)(x).shape == (2, 384, 8, 8)


def test_evaluate_matches_scikit_learn_and_names_missing_masks():
    test = inspection_split("washer", "test", 20)
    maps = test.masks[:, 0].float() * 0.5 + torch.rand(20, 32, 32, generator=torch.Generator().manual_seed(0))
    result = evaluate(maps, test)
    assert result["image_auroc"] == pytest.approx(roc_auc_score(test.labels, maps.flatten(1).amax(1)))
    assert result["pixel_auroc"] == pytest.approx(roc_auc_score(test.masks.flatten(), maps.flatten()))
    assert 0 <= result["pro"] <= 1
    assert {key for key in result if key.startswith("image_auroc_")} == {
        "image_auroc_scratch", "image_auroc_hole", "image_auroc_stain"}
    normal = [i for i, d in enumerate(test.defects) if d == "good"]
    holes = [i for i, d in enumerate(test.defects) if d == "hole"]
    scores = maps.flatten(1).amax(1)
    assert per_defect_auroc(maps, test)["hole"] == pytest.approx(
        roc_auc_score([0] * len(normal) + [1] * len(holes), scores[normal + holes]))
    unmasked = dataclasses.replace(test, masks=None)
    assert set(evaluate(maps, unmasked, pixels=False)) == {k for k in result if k not in ("pixel_auroc", "pro")}
    with pytest.raises(ValueError, match="pixel metrics need ground-truth masks"):
        evaluate(maps, unmasked)
    with pytest.raises(ValueError, match=r"maps must be \(N, H, W\)"):
        evaluate(maps[:5], test)


def test_pyramid_noise_has_unit_variance_per_image_and_more_power_at_low_frequencies():
    generator = torch.Generator().manual_seed(0)
    coarse = pyramid_noise((8, 3, 32, 32), generator)
    white = torch.randn(8, 3, 32, 32, generator=generator)
    assert coarse.mean(dim=(1, 2, 3)).abs().max() < 1e-5
    assert torch.allclose(coarse.std(dim=(1, 2, 3)), torch.ones(8), atol=1e-5)

    def low_frequency_share(x):
        power = torch.fft.fft2(x).abs().pow(2)
        return (power[..., :4, :4].sum() / power.sum()).item()

    assert low_frequency_share(coarse) > 5 * low_frequency_share(white)  # white noise: 16 / 1024 of the power
    assert torch.equal(pyramid_noise((1, 1, 8, 8), torch.Generator().manual_seed(1)),
                       pyramid_noise((1, 1, 8, 8), torch.Generator().manual_seed(1)))
    for octaves, persistence in ((0, 0.8), (2, 0.0)):
        with pytest.raises(ValueError, match="octaves"):
            pyramid_noise((1, 1, 8, 8), octaves=octaves, persistence=persistence)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        pyramid_noise((8, 8))


def test_partial_diffusion_maps_take_either_noise_and_name_an_unknown_one():
    normal = images(2, size=16) * 0.6 + 0.2
    for noise in ("gaussian", "pyramid"):
        _, reconstructions = partial_diffusion_maps(OracleEps(normal), SCHEDULE, normal, 30, steps=10, noise=noise)
        assert torch.allclose(reconstructions, normal, atol=1e-4)
    with pytest.raises(ValueError, match="unknown noise 'simplex'"):
        partial_diffusion_maps(OracleEps(normal), SCHEDULE, normal, 30, noise="simplex")
