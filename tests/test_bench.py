"""The bench runner: registry, targets, JSON lines, exit status, the results table."""

import dataclasses
import json

import pytest
import torch

from cvcourse import bench, config
from cvcourse.benchmarks import Entry, Outcome

KEYS = {"name", "metric", "value", "target", "seconds", "profile", "device", "passed", "reference_step_s"}


@dataclasses.dataclass(frozen=True)
class FakeSettings(config.Settings):
    value: float = 0.5
    targets: dict = dataclasses.field(default_factory=lambda: {"good": ">= 0.4", "bad": ">= 0.9", "fast": "<= 10"})


class FakeRecipe:
    """A recipe module's interface: CHAPTER, Settings, OVERRIDES and load."""

    CHAPTER, Settings, OVERRIDES = "99_fake", FakeSettings, {}

    @staticmethod
    def load(profile=None, device=None):
        return config.load(FakeRecipe.CHAPTER, FakeSettings, FakeRecipe.OVERRIDES, profile, device)


@pytest.fixture
def fake_entries(monkeypatch):
    """Two entries with fixed values judged by FakeRecipe's targets: one meets its target, one misses it."""
    fakes = (Entry("t.good", "score", FakeRecipe, "good", lambda cfg: Outcome(cfg.value)),
             Entry("t.bad", "score", FakeRecipe, "bad",
                   lambda cfg: Outcome(cfg.value, measured={"fast": 1.0}, details={"note": "x"})))
    monkeypatch.setattr(bench, "entries", lambda: {entry.name: entry for entry in fakes})
    monkeypatch.setattr(bench, "reference_step_seconds", lambda device: 0.0123)
    monkeypatch.setattr(FakeRecipe, "OVERRIDES", {})


def test_json_lines_and_exit_status(fake_entries, capsys):
    assert bench.main(["t.good", "--profile", "smoke", "--json"]) == 0
    line = json.loads(capsys.readouterr().out)
    assert KEYS <= set(line)
    assert line["passed"] is True and line["value"] == 0.5 and line["profile"] == "smoke"
    assert bench.main(["--profile", "smoke", "--json"]) == 1  # t.bad misses 0.9
    lines = [json.loads(text) for text in capsys.readouterr().out.splitlines()]
    assert [(r["name"], r["passed"]) for r in lines] == [("t.good", True), ("t.bad", False)]
    assert lines[1]["details"] == {"note": "x", "fast": 1.0, "check:fast <= 10": True}
    assert lines[1]["target"] == ">= 0.9"


def test_a_measured_figure_that_misses_its_target_fails_the_entry(fake_entries, monkeypatch):
    slow = Entry("t.slow", "score", FakeRecipe, "good", lambda cfg: Outcome(1.0, measured={"fast": 11.0}))
    result = bench.judge(slow, FakeRecipe.load("smoke"), slow.run(None), 1.0)
    assert result.passed is False and result.details["check:fast <= 10"] is False


def test_changing_a_recipe_target_changes_the_bench_verdict_and_the_notebook_check(fake_entries, monkeypatch):
    """Bench and check cell read one target: raise it in the recipe and both now fail the same value."""
    assert bench.run_entry("t.good", "smoke").passed
    FakeRecipe.load("smoke").check("good", 0.5)
    monkeypatch.setattr(FakeRecipe, "OVERRIDES", {"smoke": {"targets": {"good": ">= 0.6"}}})
    result = bench.run_entry("t.good", "smoke")
    assert not result.passed and result.target == ">= 0.6"
    with pytest.raises(AssertionError, match="misses its target >= 0.6"):
        FakeRecipe.load("smoke").check("good", 0.5)


def test_list_and_unknown_names(fake_entries, capsys):
    assert bench.main(["--list"]) == 0
    assert "t.good" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        bench.main(["t.nothing"])
    assert "Unknown bench entry t.nothing" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench.main(["t.good", "--profile", "huge"])
    assert "Valid profiles: smoke, cpu, gpu" in capsys.readouterr().err


def test_results_table_replaces_only_the_rerun_rows(fake_entries, tmp_path, monkeypatch):
    path = tmp_path / "results.md"
    path.write_text("# Results\n\nNotes a person wrote.\n")
    bench.main(["--profile", "smoke", "--results", str(path)])
    first = path.read_text()
    assert "Notes a person wrote." in first and "| t.good |" in first and "| t.bad |" in first
    assert "`python -m cvcourse.bench t.good --profile smoke`" in first
    assert "cores" in first and "reference step 12 ms" in first  # the machine and its speed are recorded
    monkeypatch.setattr(FakeRecipe, "OVERRIDES", {"smoke": {"value": 0.75}})
    bench.main(["t.good", "--profile", "smoke", "--results", str(path)])
    second = path.read_text()
    assert second.count("| t.good |") == 1 and "| 0.75 |" in second
    assert [line for line in second.splitlines() if "| t.bad |" in line] == \
           [line for line in first.splitlines() if "| t.bad |" in line]


def test_trainer_overhead_runs_in_the_smoke_profile(capsys):
    result = bench.run_entry("core.trainer_overhead", "smoke")
    assert result.value > 0 and result.details["trainer_s_median"] > 0 and result.details["hand_s_median"] > 0
    assert len(result.details["pair_ratios"].split()) == 2
    assert result.profile == "smoke" and result.target == "<= 1.05"


def test_command_line_module_sees_the_registered_entries():
    import subprocess
    import sys

    listed = subprocess.run([sys.executable, "-m", "cvcourse.bench", "--list"], capture_output=True, text=True,
                            check=True).stdout
    assert "core.trainer_overhead" in listed


def test_a_baseline_has_no_target_and_passes_on_its_checks(fake_entries):
    base = Entry("t.base", "score", FakeRecipe, None, lambda cfg: Outcome(0.1, checks={"ran": True}))
    result = bench.judge(base, FakeRecipe.load("smoke"), base.run(None), 1.0)
    assert result.passed and result.target is None
    assert "| baseline |" in bench.result_row(result)


def test_the_reference_step_is_a_short_real_measurement():
    assert 0 < bench.reference_step_seconds() < 5


def test_measuring_the_reference_step_leaves_the_global_random_state_alone():
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    bench.reference_step_seconds()
    assert torch.equal(torch.rand(3), expected)
