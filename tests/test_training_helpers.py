"""Every training helper a notebook shows takes ``checkpoint_dir`` and ``resume``, as the chapters tell students to
use them: a run stopped part of the way and resumed with ``resume=True`` ends where an uninterrupted one does."""

import pytest
import torch

from cvcourse.data import detection_scenes
from cvcourse.detection.training import train_detector
from cvcourse.diffusion import NoiseSchedule
from cvcourse.diffusion.training import train_diffusion
from cvcourse.generative.training import train_gan, train_vae
from cvcourse.models import VAE, DenseDetector, DiffusionUNet, Discriminator, Generator, UNet
from cvcourse.seeding import seed_everything
from cvcourse.segmentation import bce_dice_loss, train_segmentation
from cvcourse.train import Trainer

STEPS, STOP = 6, 4
GLYPHS = torch.rand(16, 1, 28, 28), torch.randint(0, 10, (16,))


def segmentation(checkpoint_dir, resume):
    model = UNet(1, 1, depth=1, base_width=2)
    masks = (GLYPHS[0][:, 0] > 0.5).long()
    train_segmentation(model, GLYPHS[0], masks, loss_fn=bce_dice_loss, steps=STEPS, batch_size=4, lr=1e-3,
                       checkpoint_dir=checkpoint_dir, resume=resume, progress=False)
    return [model]


def detection(checkpoint_dir, resume):
    model = DenseDetector(4, width=8, fpn_width=16)
    train_detector(model, detection_scenes("train", 8, image_size=64), steps=STEPS, batch_size=4, lr=1e-3,
                   checkpoint_dir=checkpoint_dir, resume=resume, progress=False)
    return [model]


def gan(checkpoint_dir, resume):
    generator, discriminator = Generator(8, width=4), Discriminator(width=4)
    train_gan(generator, discriminator, *GLYPHS, steps=STEPS, batch_size=4, lr=2e-4, checkpoint_dir=checkpoint_dir,
              resume=resume, progress=False)
    return [generator, discriminator]


def vae(checkpoint_dir, resume):
    model = VAE(4, width=4)
    train_vae(model, GLYPHS[0], steps=STEPS, batch_size=4, lr=1e-3, checkpoint_dir=checkpoint_dir, resume=resume,
              progress=False)
    return [model]


def diffusion(checkpoint_dir, resume):
    model = DiffusionUNet(1, base_width=4, depth=1, timesteps=20)
    trainer = train_diffusion(model, NoiseSchedule.linear(20), *GLYPHS, steps=STEPS, batch_size=4, lr=1e-3,
                              ema_decay=0.9, checkpoint_dir=checkpoint_dir, resume=resume, progress=False)
    return [model, trainer.ema]


@pytest.mark.parametrize("helper", [segmentation, detection, gan, vae, diffusion], ids=lambda helper: helper.__name__)
def test_a_helper_resumes_exactly_with_resume_true(helper, tmp_path, monkeypatch):
    seed_everything(0)
    straight = helper(tmp_path / "a", resume=False)
    original_fit = Trainer.fit

    def stop_early(self, loader, *, steps=None, epochs=None, resume=False):
        return original_fit(self, loader, steps=STOP, resume=resume)

    with monkeypatch.context() as patch:
        patch.setattr(Trainer, "fit", stop_early)
        seed_everything(0)
        helper(tmp_path / "b", resume=False)  # trains STOP of its STEPS steps, as if interrupted there
    assert (tmp_path / "b" / f"step_{STOP:07d}.pt").is_file()
    seed_everything(0)
    resumed = helper(tmp_path / "b", resume=True)
    for expected, got in zip(straight, resumed):
        assert all(torch.equal(a, b) for a, b in zip(expected.state_dict().values(), got.state_dict().values()))
