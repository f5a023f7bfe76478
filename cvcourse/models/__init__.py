"""Models the chapters build and train."""

from cvcourse.models.classifier import SmallCNN
from cvcourse.models.detector import DenseDetector
from cvcourse.models.unet import UNet, logits_to_mask

__all__ = ["DenseDetector", "SmallCNN", "UNet", "logits_to_mask"]
