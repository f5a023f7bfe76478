"""DCGAN (Radford et al. 2016) for small images, unconditional or conditioned on a class label.

The paper's architecture rules (section 3), and why:
- no pooling: the generator up-samples with fractionally-strided (transposed) convolutions and the
  discriminator down-samples with strided ones, so both learn their own resampling;
- batch norm in both networks, except the generator's output layer and the discriminator's input layer:
  normalising those layers made the paper's training oscillate, because the output must be free to take
  the data's own mean and scale, and the first layer must see the real pixels' statistics;
- ReLU in the generator with a Tanh output (a bounded output in [-1, 1] learns faster to cover the colour
  range; real images are mapped to [-1, 1] to match), LeakyReLU(0.2) in the discriminator (gradients
  also flow for negative activations, so the generator gets a signal from every unit);
- weights drawn from N(0, 0.02).

The conditional GAN (Mirza & Osindero 2014) feeds the label to both players: the generator gets a label
embedding beside z, the discriminator gets the label as an extra input channel, so it judges whether an
image is a real image *of that class*.
"""

from __future__ import annotations

import torch
from torch import nn

from cvcourse.models.blocks import upsampling_plan


def dcgan_init(module: nn.Module) -> None:
    """DCGAN's initialisation: conv and linear weights from N(0, 0.02); batch norm scales from N(1, 0.02).

    Label embeddings keep PyTorch's N(0, 1), the scale of z: at 0.02 the label would barely move the output.
    """
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if getattr(module, "bias", None) is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def check_condition_labels(labels: torch.Tensor | None, num_classes: int | None, batch_size: int, who: str) -> None:
    """Labels are required by a conditional model, refused by an unconditional one, and lie in [0, num_classes)."""
    if num_classes is None:
        if labels is not None:
            raise ValueError(f"This {who} is unconditional: call it without labels, or build it with num_classes=K.")
        return
    if labels is None:
        raise ValueError(f"This {who} is conditional (num_classes={num_classes}): pass labels, a (B,) int64 tensor.")
    if labels.shape != (batch_size,) or labels.dtype != torch.int64:
        raise ValueError(f"labels must be a ({batch_size},) int64 tensor, got {tuple(labels.shape)} {labels.dtype}.")
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes}), got values in [{int(labels.min())}, "
                         f"{int(labels.max())}].")


class Generator(nn.Module):
    """``G(z, labels=None)``: latents (B, latent_dim) -> images (B, channels, image_size, image_size) in [-1, 1]."""

    def __init__(self, latent_dim: int = 64, *, image_size: int = 28, channels: int = 1, width: int = 64,
                 num_classes: int | None = None) -> None:
        super().__init__()
        start, doublings = upsampling_plan(image_size)
        self.latent_dim, self.image_size = latent_dim, image_size
        self.channels, self.num_classes = channels, num_classes
        self.label_embedding = nn.Embedding(num_classes, latent_dim) if num_classes else None
        inputs = latent_dim * (2 if num_classes else 1)
        top = width * 2 ** (doublings - 1)
        self.project = nn.Sequential(  # "project and reshape": z -> (top, start, start)
            nn.Linear(inputs, top * start * start, bias=False), nn.Unflatten(1, (top, start, start)),
            nn.BatchNorm2d(top), nn.ReLU(inplace=True))
        layers: list[nn.Module] = []
        for level in range(doublings - 1):
            in_width = top // 2**level
            layers += [nn.ConvTranspose2d(in_width, in_width // 2, 4, stride=2, padding=1, bias=False),
                       nn.BatchNorm2d(in_width // 2), nn.ReLU(inplace=True)]
        layers += [nn.ConvTranspose2d(width, channels, 4, stride=2, padding=1), nn.Tanh()]  # no BN on the output
        self.upsample = nn.Sequential(*layers)
        self.apply(dcgan_init)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"The generator expects latents of shape (B, {self.latent_dim}), got {tuple(z.shape)}; "
                             f"draw them with torch.randn(batch_size, {self.latent_dim}).")
        check_condition_labels(labels, self.num_classes, len(z), "generator")
        if self.label_embedding is not None:
            z = torch.cat([z, self.label_embedding(labels)], dim=1)
        return self.upsample(self.project(z))

    @torch.no_grad()
    def sample(self, count: int, *, labels: torch.Tensor | None = None, generator: torch.Generator | None = None,
               batch_size: int = 500) -> torch.Tensor:
        """``count`` images in [0, 1] (the Tanh output mapped by ``(x + 1) / 2``), on the CPU, in eval mode.

        Ready for ``viz.show_images`` and the quality measure; ``generator`` makes the latents reproducible.
        """
        if count < 1:
            raise ValueError(f"count must be at least 1, got {count}.")
        if labels is not None and len(labels) != count:
            raise ValueError(f"labels must hold one label per image: {count} images but {len(labels)} labels.")
        device = next(self.parameters()).device
        z = torch.randn(count, self.latent_dim, generator=generator)
        was_training = self.training
        self.eval()
        try:
            chunks = [self(z[i:i + batch_size].to(device),
                           None if labels is None else labels[i:i + batch_size].to(device)).float().cpu()
                      for i in range(0, count, batch_size)]
        finally:
            self.train(was_training)
        return (torch.cat(chunks) + 1) / 2


class Discriminator(nn.Module):
    """``D(images, labels=None)``: images (B, channels, S, S) in [-1, 1] -> one logit per image (B,).

    DCGAN's shape: strided convolutions, each doubling the width, down to a 4x4 map (28 -> 14 -> 7 -> 4, 32 -> 16 ->
    8 -> 4), read by one 4x4 convolution into a single logit, so the verdict sees the whole image and the network is
    about as deep as the generator (Radford et al. 2016, Fig. 1 mirrored; their code ends the same way).
    """

    def __init__(self, *, image_size: int = 28, channels: int = 1, width: int = 64,
                 num_classes: int | None = None) -> None:
        super().__init__()
        upsampling_plan(image_size)  # the sizes the generator can draw are the sizes D judges
        self.image_size, self.channels, self.num_classes = image_size, channels, num_classes
        # the label as one extra input channel, a learned image per class
        self.label_map = nn.Embedding(num_classes, image_size * image_size) if num_classes else None
        size, out_width = image_size, width
        layers: list[nn.Module] = [nn.Conv2d(channels + (1 if num_classes else 0), width, 4 - size % 2, stride=2,
                                             padding=1), nn.LeakyReLU(0.2, inplace=True)]  # no BN on the input layer
        size = (size + 1) // 2
        while size > 4:  # an even map halves with a 4x4 kernel, an odd one (7) with a 3x3: 7 -> 4
            layers += [nn.Conv2d(out_width, 2 * out_width, 4 - size % 2, stride=2, padding=1, bias=False),
                       nn.BatchNorm2d(2 * out_width), nn.LeakyReLU(0.2, inplace=True)]
            size, out_width = (size + 1) // 2, 2 * out_width
        self.features = nn.Sequential(*layers)
        self.classify = nn.Sequential(nn.Conv2d(out_width, 1, size), nn.Flatten())
        self.apply(dcgan_init)

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        expected = (self.channels, self.image_size, self.image_size)
        if images.ndim != 4 or tuple(images.shape[1:]) != expected:
            raise ValueError(f"The discriminator expects images of shape (B, {', '.join(map(str, expected))}), got "
                             f"{tuple(images.shape)}.")
        if images.min() < -1.001 or images.max() > 1.001:
            raise ValueError(f"The discriminator expects images in [-1, 1] (the generator's Tanh range), got values "
                             f"in [{images.min().item():.3g}, {images.max().item():.3g}]; map [0, 1] images with "
                             "images * 2 - 1.")
        check_condition_labels(labels, self.num_classes, len(images), "discriminator")
        if self.label_map is not None:
            label_channel = self.label_map(labels).view(-1, 1, self.image_size, self.image_size)
            images = torch.cat([images, label_channel], dim=1)
        return self.classify(self.features(images)).squeeze(1)
