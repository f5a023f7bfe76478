"""Models the chapters build and train."""

from cvcourse.models.autoencoder import KLAutoencoder
from cvcourse.models.classifier import SmallCNN
from cvcourse.models.detector import DenseDetector
from cvcourse.models.diffusion_unet import DiffusionUNet
from cvcourse.models.gan import Discriminator, Generator
from cvcourse.models.unet import UNet, logits_to_mask
from cvcourse.models.vae import VAE

__all__ = ["VAE", "KLAutoencoder", "DenseDetector", "DiffusionUNet", "Discriminator", "Generator", "SmallCNN", "UNet", "logits_to_mask"]
