"""The offline image-quality measure: Fréchet distance, FCD against torchmetrics, the judge's confident share and class
coverage, the manifold scores (k-NN precision and recall, density, coverage), PSNR."""

import numpy as np
import pytest
import torch
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance

from cvcourse.data.glyphs import glyph_tensors
from cvcourse.generative.metrics import ImageQuality, frechet_distance, manifold_scores, psnr
from cvcourse.recipes.judge import JudgeRecipe, train_judge


@pytest.fixture(scope="module")
def glyphs(tmp_path_factory):
    """400 training and 200 held-out glyphs (16x16 keeps the tests fast), drawn into a temporary cache."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CVCOURSE_CACHE", str(tmp_path_factory.mktemp("cache")))
        return glyph_tensors(400, image_size=16, seed=0), glyph_tensors(200, image_size=16, seed=1)


@pytest.fixture(scope="module")
def judge(glyphs):
    """A briefly trained, narrow glyph classifier and the measure built on it."""
    (train_images, train_labels), (test_images, test_labels) = glyphs
    classifier, accuracy = train_judge(train_images, train_labels, test_images, test_labels, num_classes=10,
                                       recipe=JudgeRecipe(width=16, steps=60, batch_size=32, lr=1e-2))
    return ImageQuality(classifier, train_images, accuracy=accuracy)


def exact_gaussian_sample(mean: np.ndarray, covariance: np.ndarray, n: int, seed: int) -> np.ndarray:
    """``n`` points whose sample mean and (unbiased) covariance are exactly ``mean`` and ``covariance``."""
    points = np.random.default_rng(seed).standard_normal((n, len(mean)))
    points -= points.mean(axis=0)
    points = points @ np.linalg.inv(np.linalg.cholesky(np.cov(points, rowvar=False))).T  # whitened
    return points @ np.linalg.cholesky(covariance).T + mean


def symmetric_frechet(mu_a, sigma_a, mu_b, sigma_b) -> float:
    """Eq. 6 through the symmetric form Tr((S_a^1/2 S_b S_a^1/2)^1/2), with eigendecompositions only."""
    def sqrt_psd(matrix):
        values, vectors = np.linalg.eigh(matrix)
        return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T

    root_a = sqrt_psd(sigma_a)
    return float(np.sum((mu_a - mu_b) ** 2) + np.trace(sigma_a + sigma_b - 2 * sqrt_psd(root_a @ sigma_b @ root_a)))


def test_frechet_distance_of_a_set_with_itself_is_zero():
    features = torch.randn(500, 16, generator=torch.Generator().manual_seed(0))
    assert frechet_distance(features, features) == pytest.approx(0.0, abs=1e-8)
    assert frechet_distance(features, features + 1.0) == pytest.approx(16.0)  # a shift of 1 in every dimension


def test_frechet_distance_matches_the_closed_form_for_gaussians():
    mean_a, mean_b = np.array([0.0, 1.0, 2.0]), np.array([1.0, -1.0, 2.5])
    variances_a, variances_b = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    a = exact_gaussian_sample(mean_a, np.diag(variances_a), 400, seed=0)
    b = exact_gaussian_sample(mean_b, np.diag(variances_b), 300, seed=1)
    # diagonal covariances: ||mu_a - mu_b||^2 + sum (sigma_a - sigma_b)^2 over the standard deviations
    expected = np.sum((mean_a - mean_b) ** 2) + np.sum((np.sqrt(variances_a) - np.sqrt(variances_b)) ** 2)
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-9)  # 5.25 + 5.0
    random = np.random.default_rng(2).standard_normal((2, 6, 6))
    sigma_a, sigma_b = random[0] @ random[0].T + np.eye(6), random[1] @ random[1].T + 0.1 * np.eye(6)
    a = exact_gaussian_sample(np.zeros(6), sigma_a, 200, seed=3)
    b = exact_gaussian_sample(np.ones(6), sigma_b, 200, seed=4)
    assert frechet_distance(a, b) == pytest.approx(symmetric_frechet(np.zeros(6), sigma_a, np.ones(6), sigma_b),
                                                   rel=1e-7)


def test_frechet_distance_survives_singular_covariances():
    generator = torch.Generator().manual_seed(0)
    a, b = torch.randn(100, 4, generator=generator), torch.randn(100, 4, generator=generator) + 0.5
    dead = torch.zeros(100, 3)  # features that never fire (dead ReLUs) make both covariances singular
    with_dead = frechet_distance(torch.cat([a, dead], 1), torch.cat([b, dead], 1))
    assert np.isfinite(with_dead) and with_dead == pytest.approx(frechet_distance(a, b), abs=1e-4)


def test_frechet_distance_explains_bad_input():
    features = torch.randn(10, 4)
    with pytest.raises(ValueError, match="must be 2-D"):
        frechet_distance(torch.randn(10), features)
    with pytest.raises(ValueError, match="feature sizes differ: 4 and 5"):
        frechet_distance(features, torch.randn(10, 5))
    with pytest.raises(ValueError, match="at least 2"):
        frechet_distance(features, features[:1])
    with pytest.raises(ValueError, match="NaN"):
        frechet_distance(features, torch.full((10, 4), float("nan")))


def test_fcd_grows_with_blur_and_with_noise(judge, glyphs):
    _, (held_out, _) = glyphs
    points = [judge.reference_points(held_out, blur_sigma=sigma, noise_std=std, seed=0)
              for sigma, std in [(0.5, 0.05), (1.0, 0.1), (1.5, 0.2), (2.0, 0.4)]]
    assert judge.fcd(held_out) == points[0]["held_out"]
    blurred, noised = [point["blurred"] for point in points], [point["noised"] for point in points]
    assert points[0]["held_out"] < blurred[0] and all(np.diff(blurred) > 0), blurred
    assert points[0]["held_out"] < noised[0] and all(np.diff(noised) > 0), noised


def test_fcd_agrees_with_torchmetrics_given_the_same_feature_extractor(judge, glyphs):
    (train_images, _), (held_out, _) = glyphs

    class Features(nn.Module):
        num_features = judge.classifier.head.in_features  # spares torchmetrics a probe forward pass

        def forward(self, images):
            return judge.classifier.features(images)

    # with a custom feature module, normalize=True passes the float images to it unchanged
    metric = FrechetInceptionDistance(feature=Features(), normalize=True, reset_real_features=False)
    with torch.no_grad():
        metric.update(train_images, real=True)
        for images in (held_out, held_out.flip(-1)):
            metric.reset()  # forgets the generated images, keeps the real ones
            metric.update(images, real=False)
            # torchmetrics sums in float64, returns float32 and takes the root through eigenvalues: ~1e-7 apart
            assert judge.fcd(images) == pytest.approx(float(metric.compute()), rel=1e-6)
    assert judge.fcd(held_out.flip(-1)) > 10 * judge.fcd(held_out)  # mirrored digits are far from real ones


def test_confident_share_class_coverage_and_label_accuracy_on_hand_made_probabilities(judge, glyphs, monkeypatch):
    _, (held_out, _) = glyphs
    probabilities = torch.tensor([[0.95, 0.05, 0, 0, 0, 0, 0, 0, 0, 0],   # confident, class 0
                                  [0.5, 0.5, 0, 0, 0, 0, 0, 0, 0, 0],     # a tie: argmax says class 0
                                  [0.1, 0.9, 0, 0, 0, 0, 0, 0, 0, 0],     # exactly at the threshold, class 1
                                  [0, 0, 0.3, 0.7, 0, 0, 0, 0, 0, 0]])    # unsure, class 3
    def classifier_says(probabilities):
        features = torch.randn(len(probabilities), judge.classifier.head.in_features)
        monkeypatch.setattr(judge, "_outputs", lambda images: (features, probabilities))
        return held_out[:len(probabilities)]

    four = classifier_says(probabilities)
    assert judge.confident_share(four) == 0.5
    assert judge.class_coverage(four) == pytest.approx(1.5 / np.log2(10))  # histogram (1/2, 1/4, 1/4): 1.5 bits
    torch.testing.assert_close(judge.class_shares(four), torch.tensor([0.5, 0.25, 0, 0.25, 0, 0, 0, 0, 0, 0]))
    assert judge.label_accuracy(four, [0, 1, 1, 3]) == 0.75
    assert judge.label_accuracy(four, torch.tensor([1, 1, 0, 3])) == 0.25
    report = judge.report(four, labels=[0, 0, 1, 3])
    assert report["confident_share"] == 0.5 and report["label_accuracy"] == 1.0 and "fcd" in report
    assert set(judge.report(four)) == {"fcd", "confident_share", "class_coverage"}
    assert judge.verdicts(four) == {"confident": 0.5, "blend": 0.5, "unclear": 0.0}  # rows 2 and 4: two classes
    spread = classifier_says(torch.tensor([[0.5, 0.3, 0.2] + [0.0] * 7, [0.05, 0.86] + [0.01] * 8]))
    # 0.5 + 0.3 does not reach 0.9 (unclear), 0.86 + 0.05 does (a blend)
    assert judge.verdicts(spread) == {"confident": 0.0, "blend": 0.5, "unclear": 0.5}
    every_class = classifier_says(torch.eye(10))
    assert judge.class_coverage(every_class) == pytest.approx(1.0) and judge.confident_share(every_class) == 1.0
    assert judge.class_coverage(classifier_says(torch.eye(10)[[7] * 10])) == 0.0


def test_real_glyphs_are_judged_real(judge, glyphs):
    _, (held_out, labels) = glyphs
    assert judge.accuracy > 0.8
    report = judge.report(held_out, labels)
    assert report["label_accuracy"] == pytest.approx(judge.accuracy)
    assert report["class_coverage"] > 0.95  # every digit drawn about equally often
    assert report["confident_share"] > judge.confident_share(torch.rand_like(held_out))
    assert judge.class_coverage(held_out[:1].expand(50, -1, -1, -1)) == 0.0  # one image fifty times: one class
    same = ImageQuality.from_statistics(judge.classifier, judge.reference_mean, judge.reference_covariance, (16, 16))
    assert same.fcd(held_out) == judge.fcd(held_out)


def test_bad_images_are_explained(judge, glyphs):
    _, (held_out, labels) = glyphs
    with pytest.raises(ValueError, match=r"\(x \+ 1\) / 2"):
        judge.fcd(held_out * 2 - 1)  # a Tanh output
    with pytest.raises(ValueError, match=r"x.float\(\) / 255"):
        judge.fcd((held_out * 255).to(torch.uint8))
    with pytest.raises(ValueError, match=r"x.unsqueeze\(0\)"):
        judge.confident_share(held_out[0])
    with pytest.raises(ValueError, match=r"shape \(N, 1, H, W\), got \(200, 3, 16, 16\)"):
        judge.class_coverage(held_out.expand(-1, 3, -1, -1))
    with pytest.raises(ValueError, match="F.interpolate"):
        judge.fcd(torch.zeros(4, 1, 28, 28))
    with pytest.raises(ValueError, match="NaN"):
        judge.fcd(torch.full_like(held_out, float("nan")))
    with pytest.raises(ValueError, match="empty"):
        judge.fcd(held_out[:0])
    with pytest.raises(ValueError, match="at least 2"):
        judge.fcd(held_out[:1])
    with pytest.raises(TypeError, match="torch.stack"):
        judge.fcd(list(held_out))
    with pytest.raises(ValueError, match=r"labels must be in 0..9"):
        judge.label_accuracy(held_out, labels + 1)
    with pytest.raises(ValueError, match="one per image"):
        judge.label_accuracy(held_out, labels[:-1])
    with pytest.raises(ValueError, match="blur_sigma and noise_std must be > 0"):
        judge.reference_points(held_out, blur_sigma=0.0)


def test_bad_settings_are_explained(judge, glyphs):
    (train_images, train_labels), _ = glyphs
    with pytest.raises(TypeError, match="SmallCNN"):
        ImageQuality(nn.Identity(), train_images)
    with pytest.raises(ValueError, match="confidence must be in"):
        ImageQuality(judge.classifier, train_images, confidence=0.0)
    with pytest.raises(ValueError, match=r"must have shape \(64,\)"):
        ImageQuality.from_statistics(judge.classifier, np.zeros(8), np.eye(8), (16, 16))
    with pytest.raises(ValueError, match="int64 tensor"):
        train_judge(train_images, train_labels.float(), train_images, train_labels, num_classes=10)
    with pytest.raises(ValueError, match=r"\(x \+ 1\) / 2"):
        train_judge(train_images * 2 - 1, train_labels, train_images, train_labels, num_classes=10)


def test_psnr_matches_scikit_image_per_image():
    from skimage.metrics import peak_signal_noise_ratio

    generator = torch.Generator().manual_seed(0)
    references = torch.rand(3, 1, 8, 8, generator=generator)
    images = (references + 0.1 * torch.randn(3, 1, 8, 8, generator=generator)).clamp(0, 1)
    expected = [peak_signal_noise_ratio(r.numpy(), i.numpy(), data_range=1.0) for r, i in zip(references, images)]
    assert torch.allclose(psnr(images, references), torch.tensor(expected, dtype=torch.float32), atol=1e-4)
    assert torch.isinf(psnr(references, references)).all()
    with pytest.raises(ValueError, match="same shape"):
        psnr(images[:2], references)


def gaussian_features(count: int, seed: int, shift: float = 0.0, dimensions: int = 8) -> torch.Tensor:
    return torch.randn(count, dimensions, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) + shift


@pytest.mark.parametrize("k", [1, 3, 5])
def test_manifold_scores_match_the_authors_reference_implementation(k):
    from prdc import compute_prdc

    for real, fake in [(gaussian_features(300, 0), gaussian_features(250, 1, shift=0.3)),
                       (gaussian_features(200, 2), gaussian_features(200, 3, shift=2.0)),
                       (gaussian_features(150, 4, dimensions=3), gaussian_features(300, 5, dimensions=3) * 0.5)]:
        expected = compute_prdc(real.numpy(), fake.numpy(), nearest_k=k)
        got = manifold_scores(real, fake, k=k)
        assert got == pytest.approx({name: float(value) for name, value in expected.items()}, abs=1e-12)


def test_manifold_scores_on_cases_with_a_known_answer():
    real = gaussian_features(400, 0)
    same = manifold_scores(real, gaussian_features(400, 1))  # the same distribution
    assert same["precision"] > 0.85 and same["recall"] > 0.85 and 0.8 < same["density"] < 1.2
    assert same["coverage"] == pytest.approx(1 - 0.5**3, abs=0.05)  # Naeem et al.'s expected value for equal sizes
    assert manifold_scores(real, real.clone())["precision"] == manifold_scores(real, real.clone())["recall"] == 1.0
    far = manifold_scores(real, gaussian_features(400, 1, shift=50.0))  # disjoint sets
    assert far == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}
    collapsed = manifold_scores(real, real[:1].repeat(400, 1) + 1e-3 * gaussian_features(400, 2))  # mode collapse
    assert collapsed["precision"] == 1.0 and collapsed["recall"] < 0.05 and collapsed["coverage"] < 0.05
    # half of the real points: all real, but only half the diversity (their sparser balls reach into the other half)
    subset = manifold_scores(real, real[real[:, 0] > 0])
    assert subset["precision"] == 1.0 and subset["recall"] < 0.8 and subset["coverage"] < 0.8


def test_manifold_scores_explain_bad_input():
    with pytest.raises(ValueError, match="feature sizes differ"):
        manifold_scores(gaussian_features(10, 0), gaussian_features(10, 1, dimensions=4))
    with pytest.raises(ValueError, match=r"k must be an int in \[1, 9\]"):
        manifold_scores(gaussian_features(10, 0), gaussian_features(12, 1), k=10)


def test_the_judge_measures_manifold_scores_on_its_features(judge, glyphs):
    (train_images, _), (held_out, _) = glyphs
    scores = judge.manifold(held_out[:100], held_out[100:])
    assert set(scores) == {"precision", "recall", "density", "coverage"} and scores["precision"] > 0.8
    blurred = judge.manifold(held_out[:100] * 0.0 + held_out[:100].mean(), held_out[100:])  # one grey image
    assert blurred["recall"] < 0.1


def test_the_report_adds_the_manifold_scores_when_given_real_images(judge, glyphs):
    (_, _), (held_out, _) = glyphs
    report = judge.report(held_out[:100], real_images=held_out[100:200])
    assert set(report) == {"fcd", "confident_share", "class_coverage", "precision", "recall", "density", "coverage"}
    assert report["precision"] == judge.manifold(held_out[:100], held_out[100:200])["precision"]


def test_class_spread_is_the_mean_within_class_feature_variance_and_zero_for_copies(judge, glyphs):
    (_, _), (held_out, held_out_labels) = glyphs
    images, labels = held_out[:60], held_out_labels[:60]
    features = judge.features(images).double()
    expected = torch.stack([(features[labels == c] - features[labels == c].mean(0)).pow(2).sum(1).mean()
                            for c in labels.unique()]).mean()
    assert judge.class_spread(images, labels) == pytest.approx(float(expected))
    first_of_class = torch.stack([images[labels == c][0] for c in labels])  # each class drawn as one image
    assert judge.class_spread(first_of_class, labels) == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError, match="one class per image"):
        judge.class_spread(images, labels[:10])
