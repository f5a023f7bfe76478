"""Models the chapters build and train."""

from cvcourse.models.autoencoder import KLAutoencoder
from cvcourse.models.box_denoiser import BoxDenoiser
from cvcourse.models.classifier import SmallCNN
from cvcourse.models.detector import DenseDetector, PyramidBackbone
from cvcourse.models.diffusion_unet import DiffusionUNet
from cvcourse.models.gan import Discriminator, Generator
from cvcourse.models.unet import UNet, logits_to_mask
from cvcourse.models.vae import VAE

__all__ = ["VAE", "BoxDenoiser", "KLAutoencoder", "DenseDetector", "DiffusionUNet", "Discriminator", "Generator",
           "PyramidBackbone", "SmallCNN", "UNet", "logits_to_mask"]
