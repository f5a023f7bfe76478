"""Self-checking exercises.

In a chapter notebook the reference solution of an exercise sits in a code cell tagged ``solution``
and the next code cell checks it::

    exercises.check("boxes_from_masks", boxes_from_masks)

A checker accepts a correct answer and rejects wrong ones with a hint, never with the answer.
``cvcourse.student`` writes the students' copies, where each solution cell becomes a stub.
This module is the registry; the checkers live in one module per chapter or part (``chapter00``,
``segmentation``, ``detection``, ``generative``, ``diffusion``, ``ddpm``, ``anomaly``, ``forensics``,
``generated_data``) and register
themselves when the package is imported.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Checker = Callable[[Any], str]
CHECKERS: dict[str, Checker] = {}


class ExerciseFailed(AssertionError):
    """A wrong answer: the message says what is wrong and gives a hint, never the answer."""


def checker(name: str) -> Callable[[Checker], Checker]:
    """Register ``fn(answer) -> success message`` (raising ExerciseFailed) as the checker of ``name``."""

    def register(fn: Checker) -> Checker:
        if name in CHECKERS:
            raise ValueError(f"exercise {name!r} already has a checker; give the new exercise another name")
        CHECKERS[name] = fn
        return fn

    return register


def check(name: str, answer: Any) -> bool:
    """Check a student's answer to exercise ``name``: print "✓ name: message" and return True, or raise."""
    if name not in CHECKERS:
        raise KeyError(f"no exercise named {name!r}; known exercises: {sorted(CHECKERS)}")
    try:
        message = CHECKERS[name](answer)
    except NotImplementedError:
        raise ExerciseFailed(
            f"{name} is not done yet: write the function in the cell above, then run this cell again"
        ) from None
    print(f"✓ {name}: {message}")
    return True


def call_answer(name: str, answer: Any, case: str, *args: Any) -> Any:
    """Call the student's function on one case; a crash becomes ExerciseFailed naming the case."""
    if not callable(answer):
        raise ExerciseFailed(
            f"expected the function {name} itself, got a {type(answer).__name__}; "
            f"pass the function without calling it: check({name!r}, {name})"
        )
    try:
        return answer(*args)
    except NotImplementedError:
        raise
    except Exception as error:
        raise ExerciseFailed(f"{name} raised {type(error).__name__} on {case}: {error}") from error


# Importing the chapter modules registers their checkers; they need the registry above, so they come last.
from cvcourse.exercises import (anomaly, chapter00, ddpm, detection, diffusion, diffusion_detection, forensics,
                                generated_data, generative, segmentation)

__all__ = ["CHECKERS", "ExerciseFailed", "anomaly", "call_answer", "chapter00", "check", "checker", "ddpm", "detection",
           "diffusion", "diffusion_detection", "forensics", "generated_data", "generative", "segmentation"]
