"""Generated-image detection exercises: the DIRE map written out, and a split that does not leak.

``dire_map`` is compared with ``|x - reconstruct(invert(x))|`` for given inversion and reconstruction functions
(Wang et al. 2023, eq. 5); ``leak_free_split`` must keep every copy of an image on one side of the split. AUROC is
chapter 09's ``image_auroc`` exercise: the same metric, with 1 = generated instead of 1 = anomalous.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from cvcourse.exercises import ExerciseFailed, call_answer, checker
from cvcourse.exercises.generative import close, returned_tensor

# ---------------------------------------------------------------------------------------------
# dire_map(images, invert, reconstruct) -> |images - reconstruct(invert(images))|


def dire_cases() -> list[tuple[str, torch.Tensor, Callable, Callable]]:
    """(description, images in [0, 1], invert, reconstruct): simple stand-ins for DDIM inversion and sampling."""
    generator = torch.Generator().manual_seed(6)
    return [
        ("3 grey images, an inversion that doubles and a reconstruction that halves and shifts by 0.1",
         torch.rand(3, 1, 6, 6, generator=generator), lambda x: 2 * x, lambda z: z / 2 + 0.1),
        ("2 RGB images, a reconstruction that only gets the coarse image back",
         torch.rand(2, 3, 8, 8, generator=generator), lambda x: x - 0.5,
         lambda z: torch.nn.functional.avg_pool2d(z + 0.5, 2).repeat_interleave(2, -1).repeat_interleave(2, -2)),
    ]


def dire_mistakes(images: torch.Tensor, invert: Callable, reconstruct: Callable) -> list[tuple[torch.Tensor, str]]:
    round_trip = reconstruct(invert(images))
    return [
        (images - round_trip, "the error is signed: DIRE is its absolute value"),
        ((images - round_trip).pow(2), "this is the squared error: DIRE is the absolute difference"),
        ((images - reconstruct(images)).abs(), "the reconstruction starts from the inverted noise: "
                                               "reconstruct(invert(images)), not reconstruct(images)"),
        ((images - invert(images)).abs(), "invert(images) is the noise x_T, not an image: sample it back with "
                                          "reconstruct first"),
        ((images - round_trip).abs().mean(1), "keep the channels: DIRE is an image of the same shape as the input"),
    ]


@checker("dire_map")
def check_dire_map(answer: Callable[..., torch.Tensor]) -> str:
    """Compare with ``(images - reconstruct(invert(images))).abs()``."""
    cases = dire_cases()
    for case, images, invert, reconstruct in cases:
        result = call_answer("dire_map", answer, case, images.clone(), invert, reconstruct)
        got = returned_tensor(result, "dire_map", case, images.shape,
                              lambda shape: "DIRE is an image: one value per pixel and channel, the input's shape")
        if not close(got, (images - reconstruct(invert(images))).abs()):
            hint = next((hint for wrong, hint in dire_mistakes(images, invert, reconstruct)
                         if wrong.shape == got.shape and close(got, wrong)),
                        "invert, reconstruct, then the absolute difference with the input")
            raise ExerciseFailed(f"wrong DIRE for {case}: {hint}")
    return f"all {len(cases)} cases match |x - reconstruct(invert(x))|"


# ---------------------------------------------------------------------------------------------
# leak_free_split(images, test_fraction, seed) -> (train_indices, test_indices), no image content on both sides


def leaky_images(seed: int = 7) -> torch.Tensor:
    """45 images, 25 distinct: 10 appear twice and 5 three times, what a dataset holds when samples are drawn again
    with the same seed, or a file is saved under two names."""
    generator = torch.Generator().manual_seed(seed)
    unique = torch.rand(25, 1, 4, 4, generator=generator)
    return torch.cat([unique, unique[:10], unique[10:15], unique[10:15]])


def _digests(images: torch.Tensor) -> list[bytes]:
    return [image.numpy().tobytes() for image in images]


def _indices(value, name: str, count: int) -> list[int]:
    try:
        indices = [int(i) for i in torch.as_tensor(value).flatten().tolist()]
    except (TypeError, ValueError, RuntimeError):
        raise ExerciseFailed(f"leak_free_split should return (train_indices, test_indices), two lists or tensors of "
                             f"ints; {name} is {type(value).__name__}") from None
    if any(not 0 <= i < count for i in indices):
        raise ExerciseFailed(f"{name} holds indices outside 0..{count - 1}")
    return indices


@checker("leak_free_split")
def check_leak_free_split(answer: Callable[..., tuple]) -> str:
    """Every image in exactly one side, no content on both, about ``test_fraction`` of the images in the test side."""
    images, fraction = leaky_images(), 0.25
    for seed in (0, 1):
        result = call_answer("leak_free_split", answer, f"seed {seed}", images.clone(), fraction, seed)
        if not isinstance(result, (tuple, list)) or len(result) != 2:
            raise ExerciseFailed("leak_free_split should return two things: (train_indices, test_indices)")
        train, test = (_indices(value, name, len(images)) for value, name in zip(result, ("train", "test")))
        if sorted(train + test) != list(range(len(images))):
            raise ExerciseFailed("every image must be in exactly one side: the two index lists together must hold "
                                 f"0..{len(images) - 1} once each")
        digests = _digests(images)
        shared = {digests[i] for i in train} & {digests[i] for i in test}
        if shared:
            raise ExerciseFailed(f"{len(shared)} distinct images are in both train and test (as copies): the detector "
                                 "is then tested on images it trained on. Group identical images (e.g. by "
                                 "image.numpy().tobytes()) and split the groups, not the indices")
        if not 0.15 <= len(test) / len(images) <= 0.35:
            raise ExerciseFailed(f"the test side holds {len(test)} of {len(images)} images; test_fraction={fraction} "
                                 "asks for about a quarter")
    return "no image is on both sides, and about a quarter are held out"
