"""The exercise registry: check, checker, call_answer, and the checkers registered on import."""

import pytest
import torch
from torchvision.ops import masks_to_boxes

from cvcourse import exercises
from cvcourse.exercises import ExerciseFailed


def test_importing_the_package_registers_the_checkers_of_every_chapter():
    assert {"boxes_from_masks", "iou_and_dice", "otsu_threshold", "crop_and_concat"} <= set(exercises.CHECKERS)


def test_passing_the_result_instead_of_the_function_is_explained():
    with pytest.raises(ExerciseFailed, match=r"got a Tensor; pass the function without calling it"):
        exercises.check("boxes_from_masks", torch.zeros(3, 4))


@pytest.mark.parametrize("name", sorted(exercises.CHECKERS))
def test_a_stub_is_not_done_yet(name):
    def stub(*args):
        raise NotImplementedError(f"Exercise: write {name}")

    with pytest.raises(ExerciseFailed, match=f"{name} is not done yet: write the function in the cell"):
        exercises.check(name, stub)


def test_unknown_exercise_lists_the_known_ones():
    with pytest.raises(KeyError, match=r"no exercise named 'boxes'; known exercises: \[.*'boxes_from_masks'"):
        exercises.check("boxes", masks_to_boxes)


def test_checker_registers_and_refuses_a_duplicate_name(monkeypatch, capsys):
    monkeypatch.setattr(exercises, "CHECKERS", {})

    @exercises.checker("double")
    def check_double(answer):
        if answer(2) != 4:
            raise ExerciseFailed("double(2) should be 4; multiply by 2")
        return "double works"

    assert exercises.check("double", lambda x: 2 * x)
    assert capsys.readouterr().out == "✓ double: double works\n"
    with pytest.raises(ExerciseFailed, match="multiply by 2"):
        exercises.check("double", lambda x: x + 1)
    with pytest.raises(ValueError, match="already has a checker"):
        exercises.checker("double")(check_double)
