"""Measuring generated images offline: the Fréchet distance on the course classifier's features, and more.

FID (Heusel et al. 2017, "GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash Equilibrium")
fits a Gaussian to the Inception-v3 pool features of real images and another to those of generated images,
and reports the Fréchet distance between the two Gaussians (their eq. 6). Inception's weights are a download,
and ImageNet features say little about 28x28 digits, so the course uses the pooled penultimate features of its
own classifier (``SmallCNN.features``) instead: the Fréchet Classifier Distance, FCD. FCD values compare only
with other FCD values from the same classifier, never with published FIDs; and, since the estimate is biased
upwards for small sets (Chong & Forsyth 2020), only between sets of the same size.

The classifier also judges each image: ``confident_share`` is the share of images it recognises confidently,
``class_coverage`` how evenly the images spread over the classes (a GAN that collapses onto a few digits loses it),
``label_accuracy`` how often a class-conditional generator draws the class it was asked for. The confident share
alone rewards a collapsed generator that draws one perfect digit; :func:`manifold_scores` gives the standard
precision and recall (Kynkäänniemi et al. 2019), density and coverage (Naeem et al. 2020) on the same features,
which compare the samples with real images one by one. ``reference_points`` puts an FCD in context: the FCD of
held-out real images (the floor a perfect generator reaches), of blurred ones and of noised ones. The course's
judge of glyphs is trained by :mod:`cvcourse.recipes.judge`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
import scipy.linalg
import torch
from torchvision.transforms.v2 import functional as TF

from cvcourse.device import pick_device
from cvcourse.inference import evaluating
from cvcourse.models.classifier import SmallCNN

SINGULAR_OFFSET = 1e-6  # added to the covariances' diagonals when their product is singular, as the FID code does
CONVERSIONS = ("convert a Tanh output in [-1, 1] with (x + 1) / 2, uint8 or 0..255 values with x.float() / 255, "
               "small overshoots with x.clamp(0, 1)")


def check_images(images: torch.Tensor, channels: int, image_size: Sequence[int] | None = None,
                 name: str = "images") -> None:
    """Raise unless ``images`` is a float batch ``(N, channels, H, W)`` in [0, 1] (of ``image_size`` if given)."""
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor (N, {channels}, H, W), got {type(images).__name__}; "
                        "stack a list with torch.stack, convert an array with torch.from_numpy.")
    if not images.is_floating_point():
        raise ValueError(f"{name} must be float in [0, 1], got dtype {images.dtype}: {CONVERSIONS}.")
    if images.ndim != 4 or images.shape[1] != channels:
        hint = (" Add the batch dimension with x.unsqueeze(0) (one image) or the channel dimension with "
                "x.unsqueeze(1) (a batch of grey images)." if images.ndim == 3 else "")
        raise ValueError(f"{name} must have shape (N, {channels}, H, W), got {tuple(images.shape)}.{hint}")
    if len(images) == 0:
        raise ValueError(f"{name} is empty: pass at least one image.")
    if image_size is not None and tuple(images.shape[-2:]) != tuple(image_size):
        raise ValueError(f"{name} are {tuple(images.shape[-2:])} pixels but the reference images are "
                         f"{tuple(image_size)}: resize with F.interpolate(x, size={tuple(image_size)}, "
                         "mode='bilinear', antialias=True).")
    if not torch.isfinite(images).all():
        raise ValueError(f"{name} contain NaN or infinite values: the model that made them diverged.")
    low, high = float(images.min()), float(images.max())
    if low < 0 or high > 1:
        raise ValueError(f"{name} must be in [0, 1], got values in [{low:.3g}, {high:.3g}]: {CONVERSIONS}.")


def _as_features(features: torch.Tensor | np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(features.detach().cpu() if isinstance(features, torch.Tensor) else features, np.float64)
    if array.ndim != 2:
        raise ValueError(f"{name} must be 2-D (samples, features), got shape {array.shape}; "
                         "flatten each sample's features, e.g. x.flatten(1).")
    if len(array) < 2:
        raise ValueError(f"{name} has {len(array)} sample(s): a covariance needs at least 2 (use many more: the "
                         "estimate is biased for small sets).")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contains NaN or infinite values.")
    return array


def _gaussian(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (unbiased) covariance of the rows of ``features``."""
    return features.mean(axis=0), np.cov(features, rowvar=False, ddof=1)


def _frechet(mu_a: np.ndarray, sigma_a: np.ndarray, mu_b: np.ndarray, sigma_b: np.ndarray) -> float:
    """``||mu_a - mu_b||^2 + Tr(sigma_a + sigma_b - 2 (sigma_a sigma_b)^(1/2))`` (Heusel et al. 2017, eq. 6).

    As in the reference FID code: a singular product is retried with ``SINGULAR_OFFSET`` added to both
    diagonals, and the tiny imaginary parts that ``sqrtm`` returns from rounding are dropped.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", scipy.linalg.LinAlgWarning)
        covariance_mean = scipy.linalg.sqrtm(sigma_a @ sigma_b)
    singular = any(issubclass(warning.category, scipy.linalg.LinAlgWarning) for warning in caught)
    if singular or not np.isfinite(covariance_mean).all():
        offset = np.eye(len(sigma_a)) * SINGULAR_OFFSET
        covariance_mean = scipy.linalg.sqrtm((sigma_a + offset) @ (sigma_b + offset))
    if np.iscomplexobj(covariance_mean):
        if not np.allclose(np.diagonal(covariance_mean).imag, 0, atol=1e-3):
            raise ValueError(f"The covariances' product has a matrix square root with imaginary part up to "
                             f"{np.abs(covariance_mean.imag).max():.3g}: use more samples than features.")
        covariance_mean = covariance_mean.real
    difference = mu_a - mu_b
    return float(difference @ difference + np.trace(sigma_a) + np.trace(sigma_b) - 2 * np.trace(covariance_mean))


def frechet_distance(features_a: torch.Tensor | np.ndarray, features_b: torch.Tensor | np.ndarray) -> float:
    """The Fréchet distance between Gaussians fitted to two sets of features ``(N, D)``, in float64."""
    features_a, features_b = _as_features(features_a, "features_a"), _as_features(features_b, "features_b")
    if features_a.shape[1] != features_b.shape[1]:
        raise ValueError(f"The feature sizes differ: {features_a.shape[1]} and {features_b.shape[1]}; "
                         "compute both sets with the same feature extractor.")
    return _frechet(*_gaussian(features_a), *_gaussian(features_b))


class ImageQuality:
    """Judges images with a trained ``classifier`` against the features of ``reference_images`` (real, training).

    Images are float ``(N, C, H, W)`` in [0, 1], of the reference images' channels and size. ``confidence``
    is the top class probability an image needs to count as confident. ``accuracy`` is the classifier's
    held-out accuracy, kept for reports.
    """

    def __init__(self, classifier: SmallCNN, reference_images: torch.Tensor, *, confidence: float = 0.9,
                 batch_size: int = 500, device: str | torch.device | None = None,
                 accuracy: float | None = None) -> None:
        self._configure(classifier, confidence, batch_size, device, accuracy)
        check_images(reference_images, classifier.in_channels, name="reference_images")
        self.image_size = tuple(reference_images.shape[-2:])
        self.reference_mean, self.reference_covariance = _gaussian(
            _as_features(self.features(reference_images), "reference_images"))

    @classmethod
    def from_statistics(cls, classifier: SmallCNN, reference_mean: torch.Tensor | np.ndarray,
                        reference_covariance: torch.Tensor | np.ndarray, image_size: Sequence[int], *,
                        confidence: float = 0.9, batch_size: int = 500, device: str | torch.device | None = None,
                        accuracy: float | None = None) -> ImageQuality:
        """The same judge from reference statistics computed before (``reference_mean``, ``reference_covariance``
        of an ImageQuality with this classifier) and the reference images' ``(H, W)``: skips their features."""
        quality = cls.__new__(cls)
        quality._configure(classifier, confidence, batch_size, device, accuracy)
        quality.image_size = tuple(image_size)
        quality.reference_mean = np.asarray(reference_mean, np.float64)
        quality.reference_covariance = np.asarray(reference_covariance, np.float64)
        size = classifier.head.in_features
        if quality.reference_mean.shape != (size,) or quality.reference_covariance.shape != (size, size):
            raise ValueError(f"This classifier has {size} features: reference_mean must have shape ({size},) and "
                             f"reference_covariance ({size}, {size}), got {quality.reference_mean.shape} and "
                             f"{quality.reference_covariance.shape}.")
        return quality

    def _configure(self, classifier: SmallCNN, confidence: float, batch_size: int,
                   device: str | torch.device | None, accuracy: float | None) -> None:
        if not isinstance(classifier, SmallCNN):
            raise TypeError(f"ImageQuality needs a trained cvcourse SmallCNN, got {type(classifier).__name__}.")
        if not 0.0 < confidence <= 1.0:
            raise ValueError(f"confidence must be in (0, 1], e.g. 0.9; got {confidence}.")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an int >= 1, e.g. 500; got {batch_size!r}.")
        self.device = pick_device(device)
        self.classifier = classifier.to(self.device).eval()
        self.num_classes = classifier.head.out_features
        self.confidence, self.batch_size, self.accuracy = confidence, batch_size, accuracy

    def _outputs(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Features ``(N, D)`` and class probabilities ``(N, num_classes)``, on the CPU."""
        check_images(images, self.classifier.in_channels, self.image_size)
        features, probabilities = [], []
        with evaluating(self.classifier):
            for batch in images.split(self.batch_size):
                batch_features = self.classifier.features(batch.to(self.device, torch.float32))
                features.append(batch_features.cpu())
                probabilities.append(self.classifier.head(batch_features).softmax(dim=1).cpu())
        return torch.cat(features), torch.cat(probabilities)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """The classifier's pooled penultimate features ``(N, D)``."""
        return self._outputs(images)[0]

    def probabilities(self, images: torch.Tensor) -> torch.Tensor:
        """The classifier's class probabilities ``(N, num_classes)``."""
        return self._outputs(images)[1]

    def _fcd(self, features: torch.Tensor) -> float:
        return _frechet(*_gaussian(_as_features(features, "images")), self.reference_mean, self.reference_covariance)

    def fcd(self, images: torch.Tensor) -> float:
        """The Fréchet Classifier Distance of ``images`` (at least 2; compare sets of equal size) to the reference."""
        return self._fcd(self.features(images))

    def confident_share(self, images: torch.Tensor) -> float:
        """The share of images whose top class probability is at least ``confidence``."""
        return self._confident_share(self.probabilities(images))

    def class_shares(self, images: torch.Tensor) -> torch.Tensor:
        """The predicted classes' histogram ``(num_classes,)``: the share of images read as each class."""
        return self._class_shares(self.probabilities(images)).float()

    def class_coverage(self, images: torch.Tensor) -> float:
        """Entropy of the predicted classes' histogram over ``log(num_classes)``: 1 all equally often, 0 one only."""
        return self._class_coverage(self.probabilities(images))

    def verdicts(self, images: torch.Tensor) -> dict[str, float]:
        """The shares of images the classifier reads as ``confident`` (top class >= ``confidence``, as in
        ``confident_share``), as a ``blend`` (no class reaches it, the top two together do: it hesitates between two
        classes) or as ``unclear`` (neither). They sum to 1.
        """
        probabilities = self.probabilities(images)
        confident = self._confident(probabilities)
        blend = ~confident & (probabilities.topk(2, dim=1).values.sum(dim=1) >= self.confidence)
        return {name: float(share.double().mean())
                for name, share in (("confident", confident), ("blend", blend), ("unclear", ~confident & ~blend))}

    def label_accuracy(self, images: torch.Tensor, labels: torch.Tensor | Sequence[int]) -> float:
        """The share of images classified as the class in ``labels`` (what a conditional generator was asked for)."""
        return self._label_accuracy(self.probabilities(images), labels)

    def class_spread(self, images: torch.Tensor, labels: torch.Tensor | Sequence[int]) -> float:
        """The diversity within each class: the mean squared distance of the judge's features to their class's
        mean, averaged over the classes in ``labels`` (the class each image was asked for, or is). 0 when every image
        of a class is the same; compare with real images' value (a collapsed conditional generator falls far below)."""
        labels = torch.as_tensor(labels)
        if labels.shape != (len(images),):
            raise ValueError(f"labels must hold one class per image: {len(images)} images, labels of shape "
                             f"{tuple(labels.shape)}.")
        features = self.features(images).double()
        per_class = [(features[labels == label] - features[labels == label].mean(0)).pow(2).sum(1).mean()
                     for label in labels.unique()]
        return float(torch.stack(per_class).mean())

    def _confident(self, probabilities: torch.Tensor) -> torch.Tensor:
        """Per image: does its top class reach ``confidence``? (``confident_share`` is the share that does.)"""
        return probabilities.max(dim=1).values >= self.confidence

    def _confident_share(self, probabilities: torch.Tensor) -> float:
        return float(self._confident(probabilities).double().mean())

    def _class_shares(self, probabilities: torch.Tensor) -> torch.Tensor:
        return torch.bincount(probabilities.argmax(dim=1), minlength=self.num_classes).double() / len(probabilities)

    def _class_coverage(self, probabilities: torch.Tensor) -> float:
        share = self._class_shares(probabilities)
        share = share[share > 0]
        return float((share * share.log()).sum().neg().clamp(min=0) / math.log(self.num_classes))  # never -0.0

    def _label_accuracy(self, probabilities: torch.Tensor, labels: torch.Tensor | Sequence[int]) -> float:
        labels = torch.as_tensor(labels)
        if labels.is_floating_point() or labels.shape != probabilities.shape[:1]:
            raise ValueError(f"labels must be {len(probabilities)} integer class indices (one per image), got "
                             f"{labels.dtype} of shape {tuple(labels.shape)}.")
        if len(labels) and (labels.min() < 0 or labels.max() >= self.num_classes):
            raise ValueError(f"labels must be in 0..{self.num_classes - 1}, got {int(labels.min())}.."
                             f"{int(labels.max())}.")
        return float((probabilities.argmax(dim=1) == labels).double().mean())

    def report(self, images: torch.Tensor, labels: torch.Tensor | Sequence[int] | None = None, *,
               real_images: torch.Tensor | None = None, k: int = 3) -> dict[str, float]:
        """``fcd``, ``confident_share``, ``class_coverage``; given ``labels``, ``label_accuracy``; given
        ``real_images`` (held-out, as many as ``images``), the manifold scores ``precision``, ``recall``,
        ``density`` and ``coverage`` (:func:`manifold_scores`)."""
        features, probabilities = self._outputs(images)
        result = {"fcd": self._fcd(features), "confident_share": self._confident_share(probabilities),
                  "class_coverage": self._class_coverage(probabilities)}
        if labels is not None:
            result["label_accuracy"] = self._label_accuracy(probabilities, labels)
        if real_images is not None:
            result.update(manifold_scores(self.features(real_images), features, k=k))
        return result

    def manifold(self, images: torch.Tensor, real_images: torch.Tensor, k: int = 3) -> dict[str, float]:
        """Improved precision and recall, density and coverage of ``images`` against ``real_images``, on the judge's
        features (:func:`manifold_scores`); compare sets of equal size."""
        return manifold_scores(self.features(real_images), self.features(images), k=k)

    def reference_points(self, held_out_images: torch.Tensor, *, blur_sigma: float = 1.0, noise_std: float = 0.2,
                         seed: int = 0) -> dict[str, float]:
        """FCDs that put a model's FCD in context, each against the reference.

        ``held_out``: real images not in the reference set (what a perfect generator would score; use as many as
        the generated set); ``blurred``: the same after a Gaussian blur of ``blur_sigma`` pixels; ``noised``: the
        same plus Gaussian noise of std ``noise_std``, clipped to [0, 1].
        """
        check_images(held_out_images, self.classifier.in_channels, self.image_size, "held_out_images")
        blurred, noised = degrade(held_out_images, blur_sigma=blur_sigma, noise_std=noise_std, seed=seed)
        return {"held_out": self.fcd(held_out_images), "blurred": self.fcd(blurred), "noised": self.fcd(noised)}


def degrade(images: torch.Tensor, *, blur_sigma: float = 1.0, noise_std: float = 0.2,
            seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``images`` in [0, 1] blurred by a Gaussian of ``blur_sigma`` pixels, and the same plus Gaussian noise of std
    ``noise_std`` (clipped to [0, 1]): the real images made worse that every FCD is printed beside."""
    if blur_sigma <= 0 or noise_std <= 0:
        raise ValueError(f"blur_sigma and noise_std must be > 0, got {blur_sigma} and {noise_std}.")
    kernel = 2 * math.ceil(3 * blur_sigma) + 1
    blurred = TF.gaussian_blur(images, [kernel, kernel], [blur_sigma, blur_sigma])
    noise = torch.randn(images.shape, generator=torch.Generator().manual_seed(seed))
    return blurred, (images + noise_std * noise.to(images.device)).clamp(0, 1)


def _kth_neighbour_distances(features: torch.Tensor, k: int) -> torch.Tensor:
    """Each point's distance to its ``k``-th nearest neighbour in the same set (itself not counted)."""
    return torch.cdist(features, features).kthvalue(k + 1, dim=1).values


def manifold_scores(real_features: torch.Tensor | np.ndarray, fake_features: torch.Tensor | np.ndarray,
                    k: int = 3) -> dict[str, float]:
    """Where generated samples lie relative to real ones, from k-nearest-neighbour balls in a feature space.

    Each real point's ball reaches its ``k``-th nearest real neighbour (and each fake point's its ``k``-th fake one):
    - ``precision``: the share of fakes inside some real ball (Kynkaanniemi et al. 2019, eq. 1-2): how much of what
      the model draws looks real;
    - ``recall``: the share of reals inside some fake ball: how much of the real distribution the model reaches;
    - ``density``: the number of real balls a fake lies in, over ``k``, averaged (Naeem et al. 2020, eq. 3): about 1
      when fakes are distributed like reals, more when they crowd where reals are dense, less in outliers;
    - ``coverage``: the share of real balls that hold at least one fake (Naeem et al. 2020, eq. 4), which, unlike
      recall, fake outliers cannot inflate.
    Distances are Euclidean, in float64; a point on a ball's edge is outside (as in the authors' code).
    """
    real = torch.as_tensor(_as_features(real_features, "real_features"))
    fake = torch.as_tensor(_as_features(fake_features, "fake_features"))
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"The feature sizes differ: {real.shape[1]} and {fake.shape[1]}; compute both sets with the "
                         "same feature extractor.")
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k < min(len(real), len(fake)):
        raise ValueError(f"k must be an int in [1, {min(len(real), len(fake)) - 1}] (fewer than each set's size), "
                         f"got {k!r}; 3 is the usual choice.")
    real_radii, fake_radii = _kth_neighbour_distances(real, k), _kth_neighbour_distances(fake, k)
    distances = torch.cdist(real, fake)  # (real, fake)
    in_real_balls = distances < real_radii[:, None]
    return {"precision": float(in_real_balls.any(dim=0).double().mean()),
            "recall": float((distances < fake_radii[None, :]).any(dim=1).double().mean()),
            "density": float(in_real_balls.sum(dim=0).double().mean() / k),
            "coverage": float(in_real_balls.any(dim=1).double().mean())}


def psnr(images: torch.Tensor, references: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio per image, ``10 log10(data_range^2 / MSE)`` in dB: shape (N,).

    Averaged over images (not computed from the pooled MSE), as reconstruction papers report it; identical
    images give +inf.
    """
    if images.shape != references.shape or images.ndim != 4:
        raise ValueError(f"psnr expects two batches of the same shape (N, C, H, W), got {tuple(images.shape)} and "
                         f"{tuple(references.shape)}.")
    mse = (images.double() - references.double()).pow(2).flatten(1).mean(1)
    return (10 * torch.log10(data_range**2 / mse)).float()
