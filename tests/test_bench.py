"""The bench runner: registry, targets, JSON lines, exit status, the results table."""

import json

import pytest
import torch

from cvcourse import bench, config

KEYS = {"name", "metric", "value", "target", "seconds", "profile", "device", "passed", "reference_step_s"}


@pytest.fixture
def fake_entries(monkeypatch):
    """Two entries with fixed values: one meets its target, one misses it."""
    monkeypatch.setattr(bench, "REGISTRY", {})
    monkeypatch.setattr(bench, "ENTRY_MODULES", ())
    monkeypatch.setattr(bench, "reference_step_seconds", lambda device: 0.0123)
    for name in ("t.good", "t.bad"):
        monkeypatch.setitem(config.SETTINGS, name, {p: {"value": 0.5} for p in config.PROFILES})
    bench.register("t.good", metric="score", target=">= 0.4")(lambda cfg: bench.Outcome(cfg.value))
    bench.register("t.bad", metric="score", target=">= 0.9")(
        lambda cfg: bench.Outcome(cfg.value, checks={"fast": True}, details={"note": "x"}))


def test_json_lines_and_exit_status(fake_entries, capsys):
    assert bench.main(["t.good", "--profile", "smoke", "--json"]) == 0
    line = json.loads(capsys.readouterr().out)
    assert KEYS <= set(line)
    assert line["passed"] is True and line["value"] == 0.5 and line["profile"] == "smoke"
    assert bench.main(["--profile", "smoke", "--json"]) == 1  # t.bad misses 0.9
    lines = [json.loads(text) for text in capsys.readouterr().out.splitlines()]
    assert [(r["name"], r["passed"]) for r in lines] == [("t.good", True), ("t.bad", False)]
    assert lines[1]["details"] == {"note": "x", "check:fast": True}


def test_a_failed_check_fails_the_entry(fake_entries, monkeypatch):
    monkeypatch.setitem(config.SETTINGS, "t.slow", {p: {} for p in config.PROFILES})
    bench.register("t.slow", metric="score", target=">= 0")(lambda cfg: bench.Outcome(1.0, checks={"fast": False}))
    assert bench.run_entry("t.slow", "smoke").passed is False


def test_list_and_unknown_names(fake_entries, capsys):
    assert bench.main(["--list"]) == 0
    assert "t.good" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        bench.main(["t.nothing"])
    assert "Unknown bench entry t.nothing" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench.main(["t.good", "--profile", "huge"])
    assert "Valid profiles: smoke, cpu, gpu" in capsys.readouterr().err


@pytest.mark.parametrize("target", ["0.9", ">= x", "== 1"])
def test_malformed_targets_are_rejected(target):
    with pytest.raises(ValueError, match="A target reads like"):
        bench.parse_target(target)


def test_results_table_replaces_only_the_rerun_rows(fake_entries, tmp_path):
    path = tmp_path / "results.md"
    path.write_text("# Results\n\nNotes a person wrote.\n")
    bench.main(["--profile", "smoke", "--results", str(path)])
    first = path.read_text()
    assert "Notes a person wrote." in first and "| t.good |" in first and "| t.bad |" in first
    assert "`python -m cvcourse.bench t.good --profile smoke`" in first
    assert "cores" in first and "reference step 12 ms" in first  # the machine and its speed are recorded
    config.SETTINGS["t.good"]["smoke"]["value"] = 0.75
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


def test_a_baseline_has_no_target_and_passes_on_its_checks(fake_entries, monkeypatch):
    monkeypatch.setitem(config.SETTINGS, "t.base", {p: {} for p in config.PROFILES})
    bench.register("t.base", metric="score", target=None)(lambda cfg: bench.Outcome(0.1, checks={"ran": True}))
    result = bench.run_entry("t.base", "smoke")
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
