"""Anomaly detection: learn what normal looks like from normal images only, then point at what is not.

Every method here turns a batch of test images into an anomaly map (N, H, W), higher where a pixel looks less
normal, and an image score (the map's maximum):

- ``reconstruction``: an image minus its reconstruction, by an autoencoder or by partial diffusion (AnoDDPM,
  Wyatt et al. 2022): what the model cannot put back is the anomaly;
- ``noise``: the jump's noise, white or coarse (AnoDDPM's simplex noise has most of its power at low frequencies);
- ``memory``: a memory of normal patch features and the distance of each test patch to its nearest neighbour
  there (PatchCore, Roth et al. 2022), with random or pretrained convolutional features;
- ``evaluate``: image AUROC, pixel AUROC and PRO of a method's maps on a test split, per defect kind.
"""

from cvcourse.anomaly.evaluate import evaluate, per_defect_auroc
from cvcourse.anomaly.memory import PatchMemory, random_features, resnet_features
from cvcourse.anomaly.noise import pyramid_noise
from cvcourse.anomaly.reconstruction import (
    anomaly_map,
    autoencoder_maps,
    image_scores,
    partial_diffusion_maps,
)

__all__ = [
    "PatchMemory",
    "anomaly_map",
    "autoencoder_maps",
    "evaluate",
    "image_scores",
    "partial_diffusion_maps",
    "per_defect_auroc",
    "pyramid_noise",
    "random_features",
    "resnet_features",
]
