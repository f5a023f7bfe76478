"""DCGAN Generator and Discriminator: shapes, the paper's architecture rules and initialisation, conditioning,
sampling, bad input."""

import pytest
import torch
from torch import nn

from cvcourse.models import Discriminator, Generator
from cvcourse.models.blocks import upsampling_plan
from cvcourse.models.gan import dcgan_init

LATENT, CLASSES = 16, 10


pytestmark = pytest.mark.usefixtures("one_thread")


def small_pair(image_size: int = 28, channels: int = 1, num_classes: int | None = None):
    torch.manual_seed(0)
    return (Generator(LATENT, image_size=image_size, channels=channels, width=8, num_classes=num_classes),
            Discriminator(image_size=image_size, channels=channels, width=8, num_classes=num_classes))


# ---------------------------------------------------------------------------------------------
# upsampling_plan


@pytest.mark.parametrize("image_size, plan", [(28, (7, 2)), (32, (4, 3)), (56, (7, 3)), (64, (4, 4)),
                                              (112, (7, 4)), (128, (4, 5))])
def test_upsampling_plan_starts_at_4_or_7_and_doubles_to_the_image_size(image_size, plan):
    assert upsampling_plan(image_size) == plan
    start, doublings = plan
    assert start * 2**doublings == image_size


@pytest.mark.parametrize("image_size", [30, 48, 14, 8, 7, 0, -32, 32.0, 100])
def test_upsampling_plan_refuses_other_sizes_and_says_how_to_resize(image_size):
    with pytest.raises(ValueError, match=rf"4 or 7 times a power of two, at least 28.*got {image_size}\..*Resize"):
        upsampling_plan(image_size)


def test_upsampling_plan_refuses_16_as_its_message_says():
    with pytest.raises(ValueError, match="at least 28"):
        upsampling_plan(16)


def test_upsampling_plan_names_image_size_for_a_string():
    with pytest.raises((TypeError, ValueError), match="image_size"):
        upsampling_plan("32")


# ---------------------------------------------------------------------------------------------
# shapes and ranges


@pytest.mark.parametrize("image_size", [28, 32, 64])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("num_classes", [None, CLASSES])
def test_generator_and_discriminator_shapes_and_ranges(image_size, channels, num_classes):
    G, D = small_pair(image_size, channels, num_classes)
    z = 3 * torch.randn(5, LATENT)  # wide latents push the Tanh towards its bounds
    labels = torch.arange(5) if num_classes else None
    fakes = G(z, labels)
    assert fakes.shape == (5, channels, image_size, image_size)
    assert fakes.min() >= -1 and fakes.max() <= 1
    assert fakes.min() < 0 < fakes.max()
    logits = D(fakes, labels)
    assert logits.shape == (5,) and logits.dtype == torch.float32
    assert D(torch.rand(5, channels, image_size, image_size) * 2 - 1, labels).shape == (5,)


@pytest.mark.parametrize("image_size, start, top", [(28, 7, 16), (32, 4, 32), (64, 4, 64)])
def test_project_and_reshape_then_double_with_halving_widths(image_size, start, top):
    G, D = small_pair(image_size)
    hidden = G.project(torch.randn(3, LATENT))
    assert hidden.shape == (3, top, start, start)
    widths = [m.out_channels for m in G.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert widths == [top // 2**k for k in range(1, len(widths))] + [1]
    strided = len(widths) + (1 if start == 7 else 0)  # D halves down to 4x4: 7 takes one halving more
    assert [m.out_channels for m in D.modules() if isinstance(m, nn.Conv2d)] == [8 * 2**k for k in range(strided)] + [1]


# ---------------------------------------------------------------------------------------------
# the DCGAN rules and initialisation


def layers_after(model: nn.Module, kind: type) -> list[tuple[nn.Module, nn.Module]]:
    """Each layer of ``kind`` with the module that follows it, in the order of ``model.modules()``."""
    flat = [m for m in model.modules() if not list(m.children())]
    return [(layer, following) for layer, following in zip(flat, flat[1:]) if isinstance(layer, kind)]


@pytest.mark.parametrize("num_classes", [None, CLASSES])
def test_batch_norm_everywhere_except_generator_output_and_discriminator_input(num_classes):
    G, D = small_pair(32, 3, num_classes)
    g_convs = layers_after(G, nn.ConvTranspose2d)
    assert all(isinstance(after, nn.BatchNorm2d) for _, after in g_convs[:-1])
    assert isinstance(g_convs[-1][1], nn.Tanh) and G.upsample[-1] is g_convs[-1][1]  # Tanh is the output
    d_convs = layers_after(D, nn.Conv2d)
    assert isinstance(d_convs[0][1], nn.LeakyReLU) and d_convs[0][1].negative_slope == 0.2
    assert all(isinstance(after, nn.BatchNorm2d) for _, after in d_convs[1:-1])
    assert d_convs[0][0].in_channels == 3 + (1 if num_classes else 0)  # the label is one extra channel
    activations = {type(m) for m in G.modules()} & {nn.ReLU, nn.LeakyReLU}
    assert activations == {nn.ReLU}
    pooling = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.Upsample)
    assert not any(isinstance(m, pooling) for m in [*G.modules(), *D.modules()])
    assert all(conv.stride == (2, 2) for conv, _ in g_convs + d_convs[:-1])
    assert d_convs[-1][0].kernel_size == (4, 4) and d_convs[-1][0].out_channels == 1  # the 4x4 map read as one logit


def test_dcgan_initialisation_draws_weights_from_n0_002_and_zeroes_biases():
    torch.manual_seed(0)
    G = Generator(64, image_size=32, channels=3, width=64, num_classes=CLASSES)
    D = Discriminator(image_size=32, channels=3, width=64, num_classes=CLASSES)
    weights = [m for m in [*G.modules(), *D.modules()] if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))]
    assert len(weights) == 8
    for module in weights:
        assert module.weight.std().item() == pytest.approx(0.02, rel=0.1), module
        assert abs(module.weight.mean().item()) < 0.002, module
        if getattr(module, "bias", None) is not None:
            assert torch.equal(module.bias, torch.zeros_like(module.bias))
    norms = [m for m in [*G.modules(), *D.modules()] if isinstance(m, nn.BatchNorm2d)]
    scales = torch.cat([m.weight.detach() for m in norms])
    assert scales.mean().item() == pytest.approx(1.0, abs=0.005) and scales.std().item() == pytest.approx(0.02, rel=0.2)
    assert all(torch.equal(m.bias, torch.zeros_like(m.bias)) for m in norms)
    embeddings = [m for m in [*G.modules(), *D.modules()] if isinstance(m, nn.Embedding)]
    assert len(embeddings) == 2  # label embeddings keep N(0, 1), the scale of z
    assert all(m.weight.std().item() == pytest.approx(1.0, rel=0.1) for m in embeddings)


def test_dcgan_init_leaves_other_modules_alone():
    layer = nn.LayerNorm(8)
    before = [p.clone() for p in layer.parameters()]
    dcgan_init(layer)
    assert all(torch.equal(a, b) for a, b in zip(before, layer.parameters()))


# ---------------------------------------------------------------------------------------------
# conditioning


def test_the_label_changes_the_generated_image_and_the_discriminators_verdict():
    G, D = small_pair(28, num_classes=CLASSES)
    G.eval(), D.eval()
    z = torch.randn(1, LATENT).expand(CLASSES, LATENT)
    fakes = G(z, torch.arange(CLASSES)).detach()
    by_label = torch.cdist(fakes.flatten(1), fakes.flatten(1))[~torch.eye(CLASSES, dtype=torch.bool)]
    others = G(torch.randn(CLASSES, LATENT), torch.zeros(CLASSES, dtype=torch.int64)).detach()
    by_latent = torch.cdist(others.flatten(1), others.flatten(1))[~torch.eye(CLASSES, dtype=torch.bool)]
    # every pair of classes differs, by as much as a label embedding of the scale of z moves the image
    assert by_label.min() > 0.1 * by_latent.median()
    image = fakes[:1].expand(CLASSES, -1, -1, -1)
    verdicts = D(image, torch.arange(CLASSES))
    assert verdicts.unique().numel() == CLASSES


# ---------------------------------------------------------------------------------------------
# sampling


def test_sample_maps_the_generator_output_to_0_1_reproducibly_on_the_cpu():
    G, _ = small_pair(28)
    G.eval()
    images = G.sample(6, generator=torch.Generator().manual_seed(3))
    assert images.shape == (6, 1, 28, 28) and images.device.type == "cpu" and images.dtype == torch.float32
    assert images.min() >= 0 and images.max() <= 1 and not images.requires_grad
    z = torch.randn(6, LATENT, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        torch.testing.assert_close(images, (G(z) + 1) / 2)
    assert torch.equal(images, G.sample(6, generator=torch.Generator().manual_seed(3)))
    assert not torch.equal(images, G.sample(6, generator=torch.Generator().manual_seed(4)))


@pytest.mark.parametrize("training", [True, False])
def test_sample_runs_in_eval_mode_and_restores_the_mode(training):
    G, _ = small_pair(28)
    G(torch.randn(4, LATENT))  # moves the running statistics away from their start
    G.train(training)
    running_mean = G.project[2].running_mean.clone()
    G.sample(4)
    assert G.training is training
    assert all(m.training is training for m in G.modules())
    assert torch.equal(G.project[2].running_mean, running_mean)  # eval mode: batch norm statistics untouched


@pytest.mark.parametrize("num_classes", [None, CLASSES])
def test_sample_in_batches_equals_sample_at_once(num_classes):
    G, _ = small_pair(28, num_classes=num_classes)
    labels = torch.arange(23) % CLASSES if num_classes else None
    at_once = G.sample(23, labels=labels, generator=torch.Generator().manual_seed(0))
    batched = G.sample(23, labels=labels, generator=torch.Generator().manual_seed(0), batch_size=5)
    assert batched.shape == (23, 1, 28, 28)
    torch.testing.assert_close(batched, at_once)
    if num_classes:  # each image keeps its own label across the chunks
        z = torch.randn(23, LATENT, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            torch.testing.assert_close(batched[17:], (G.eval()(z[17:], labels[17:]) + 1) / 2)


# ---------------------------------------------------------------------------------------------
# bad input


@pytest.mark.parametrize("shape", [(2, 5), (2, LATENT, 1, 1), (LATENT,)])
def test_generator_refuses_latents_of_the_wrong_shape(shape):
    G, _ = small_pair(28)
    with pytest.raises(ValueError, match=rf"latents of shape \(B, {LATENT}\).*torch\.randn\(batch_size, {LATENT}\)"):
        G(torch.randn(shape))


def labelled_call(who: str, num_classes: int | None):
    """``who`` (the generator or the discriminator) called on a batch of 3 with the given labels."""
    G, D = small_pair(28, num_classes=num_classes)
    z, images = torch.randn(3, LATENT), torch.rand(3, 1, 28, 28) * 2 - 1
    return (lambda labels: G(z, labels)) if who == "generator" else (lambda labels: D(images, labels))


@pytest.mark.parametrize("who", ["generator", "discriminator"])
def test_labels_are_required_by_a_conditional_model(who):
    with pytest.raises(ValueError, match=rf"This {who} is conditional \(num_classes=10\): pass labels"):
        labelled_call(who, CLASSES)(None)


@pytest.mark.parametrize("who", ["generator", "discriminator"])
def test_labels_are_refused_by_an_unconditional_model(who):
    with pytest.raises(ValueError, match=rf"This {who} is unconditional: call it without labels.*num_classes=K"):
        labelled_call(who, None)(torch.zeros(3, dtype=torch.int64))


@pytest.mark.parametrize("who", ["generator", "discriminator"])
@pytest.mark.parametrize("labels, message", [
    (torch.tensor([0, 3, 10]), r"labels must lie in \[0, 10\), got values in \[0, 10\]"),
    (torch.tensor([-1, 3, 9]), r"labels must lie in \[0, 10\), got values in \[-1, 9\]"),
    (torch.tensor([0, 1, 2], dtype=torch.int32), r"labels must be a \(3,\) int64 tensor, got \(3,\) torch\.int32"),
    (torch.tensor([0.0, 1.0, 2.0]), r"labels must be a \(3,\) int64 tensor, got \(3,\) torch\.float32"),
    (torch.tensor([[0], [1], [2]]), r"labels must be a \(3,\) int64 tensor, got \(3, 1\) torch\.int64"),
    (torch.tensor([0, 1]), r"labels must be a \(3,\) int64 tensor, got \(2,\)"),
])
def test_bad_labels_are_named(who, labels, message):
    with pytest.raises(ValueError, match=message):
        labelled_call(who, CLASSES)(labels)


@pytest.mark.parametrize("shape", [(2, 3, 28, 28), (2, 1, 32, 32), (1, 28, 28), (2, 1, 28, 32)])
def test_discriminator_refuses_images_of_the_wrong_shape(shape):
    _, D = small_pair(28)
    with pytest.raises(ValueError, match=r"expects images of shape \(B, 1, 28, 28\), got"):
        D(torch.zeros(shape))


@pytest.mark.parametrize("low, high", [(0.0, 255.0), (-1.5, 1.0), (-1.0, 1.1)])
def test_discriminator_refuses_images_outside_minus_1_1_and_says_how_to_map_them(low, high):
    _, D = small_pair(28)
    images = torch.linspace(low, high, 2 * 28 * 28).reshape(2, 1, 28, 28)
    with pytest.raises(ValueError, match=r"images in \[-1, 1\].*got values in .*images \* 2 - 1"):
        D(images)


def test_sample_refuses_a_count_below_one_and_a_label_count_mismatch():
    G, _ = small_pair(28, num_classes=CLASSES)
    with pytest.raises(ValueError, match="at least 1"):
        G.sample(0, labels=torch.zeros(0, dtype=torch.int64))
    with pytest.raises(ValueError, match="5 images but 2 labels"):
        G.sample(5, labels=torch.zeros(2, dtype=torch.int64))


@pytest.mark.parametrize("image_size, sizes", [(28, [14, 7, 4, 1]), (32, [16, 8, 4, 1]), (64, [32, 16, 8, 4, 1])])
def test_the_discriminator_halves_to_a_4x4_map_and_reads_it_whole(image_size, sizes):
    D = Discriminator(image_size=image_size, width=8)
    x, seen = torch.zeros(2, 1, image_size, image_size), []
    for module in [*D.features, *D.classify]:
        x = module(x)
        if isinstance(module, nn.Conv2d):
            seen.append(x.shape[-1])
    assert seen == sizes
