"""``python -m cvcourse.bench``: every chapter's headline experiment, measured against its recipe's targets.

Each entry (``cvcourse.benchmarks``) loads its chapter's recipe in the chosen profile, runs the experiment and
returns an :class:`cvcourse.benchmarks.Outcome`; the runner times it, judges its value and its other measured
figures against the recipe's targets (the same ones the notebook's check cell asserts), and prints one line (or
one JSON object) per entry::

    python -m cvcourse.bench --list
    python -m cvcourse.bench core.trainer_overhead --profile cpu --json
    python -m cvcourse.bench --profile cpu --results docs/results.md   # what `make bench` runs

The exit status is 1 when any result misses its target.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import os
import platform
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from cvcourse import benchmarks, config
from cvcourse.benchmarks import Entry
from cvcourse.models.classifier import SmallCNN
from cvcourse.timing import median_seconds

REFERENCE_BATCH, REFERENCE_REPEATS = 64, 10  # the speed figure: 10 training steps of SmallCNN on 64 glyph-sized images
TABLE_BEGIN, TABLE_END = "<!-- bench:begin -->", "<!-- bench:end -->"


@dataclass
class Result:
    name: str
    metric: str
    value: float
    target: str | None
    seconds: float
    profile: str
    device: str
    passed: bool
    details: dict[str, Any]
    reference_step_s: float  # the machine's speed just before the entry ran: see reference_step_seconds


def entries() -> dict[str, Entry]:
    """Every entry of the modules ``cvcourse.benchmarks.MODULES``, by name."""
    found: dict[str, Entry] = {}
    for module in benchmarks.MODULES:
        for entry in importlib.import_module(f"cvcourse.benchmarks.{module}").ENTRIES:
            if entry.name in found:
                raise ValueError(f"Bench entry {entry.name!r} is defined twice.")
            found[entry.name] = entry
    return found


def judge(entry: Entry, cfg: config.Config, outcome: benchmarks.Outcome, seconds: float) -> Result:
    """The outcome judged against ``cfg``'s targets: the headline value against ``entry.target``, each measured
    figure against the target of its name (where the profile has one), and the outcome's own checks."""
    targets = cfg.targets
    target = targets.get(entry.target) if entry.target is not None else None
    checks = {f"{name} {targets[name]}": targets[name].met_by(value)
              for name, value in outcome.measured.items() if name in targets}
    checks.update(outcome.checks)
    passed = (target is None or target.met_by(outcome.value)) and all(checks.values())
    details = {**outcome.details, **outcome.measured, **{f"check:{key}": ok for key, ok in checks.items()}}
    return Result(entry.name, entry.metric, float(outcome.value), str(target) if target else None, round(seconds, 2),
                  cfg.profile, str(cfg.device), passed, details, 0.0)


def run_entry(name: str, profile: str | None = None) -> Result:
    """Run one entry in ``profile`` and judge it against its recipe's targets."""
    known = entries()
    if name not in known:
        raise KeyError(f"Unknown bench entry {name!r}. Known entries: {', '.join(known)} (see --list).")
    entry = known[name]
    cfg = entry.recipe.load(profile)
    reference = reference_step_seconds(cfg.device)
    started = time.perf_counter()
    outcome = entry.run(cfg)
    result = judge(entry, cfg, outcome, time.perf_counter() - started)
    result.reference_step_s = round(reference, 4)
    return result


def reference_step_seconds(device: str | torch.device = "cpu") -> float:
    """The machine's speed at this moment: median seconds of one Adam step of a fixed SmallCNN on 64 1x28x28 images.

    A shared machine runs the same work at different speeds from day to day, so a time check that passes on one
    day can fail on another. Each row records this figure beside its seconds: rows whose reference steps differ
    by a factor k were measured on machines about k times apart in speed.
    """
    generator = torch.Generator().manual_seed(0)
    with torch.random.fork_rng(devices=[]):  # the entry's random numbers stay those it would draw without this
        torch.manual_seed(0)
        model = SmallCNN(10, in_channels=1).to(device)
    images = torch.rand(REFERENCE_BATCH, 1, 28, 28, generator=generator).to(device)
    labels = torch.randint(0, 10, (REFERENCE_BATCH,), generator=generator).to(device)
    optimizer = torch.optim.Adam(model.parameters())

    def step() -> None:
        loss = F.cross_entropy(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return median_seconds(step, device, repeats=REFERENCE_REPEATS, warmup=1)


def machine() -> str:
    """The machine in words: cores, CPU model and GPU."""
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        models = re.findall(r"model name\s*:\s*(.+)", cpuinfo.read_text())
        cpu = models[0].strip() if models else cpu
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{os.cpu_count()} cores ({cpu}), {gpu}"


def result_row(result: Result) -> str:
    details = ", ".join(f"{key}={_short(value)}" for key, value in result.details.items())
    command = f"`python -m cvcourse.bench {result.name} --profile {result.profile}`"
    metric = result.metric.replace("|", "\\|")  # a literal pipe would split the table cell
    return (f"| {result.name} | {metric} | {result.value:.4g} | {result.target or 'baseline'} | "
            f"{'yes' if result.passed else '**no**'} | {result.seconds:.1f} | {result.profile} | "
            f"{result.device} | {machine()}, reference step {result.reference_step_s * 1000:.0f} ms | "
            f"{datetime.date.today()} | {command} | {details} |")


def write_results(results: Sequence[Result], path: Path) -> None:
    """Put each result's row into the table of ``path``, replacing that entry's previous row."""
    header = ("| entry | metric | value | target | passed | seconds | profile | device | machine | date | "
              "command | details |\n|" + "---|" * 12)
    text = path.read_text() if path.exists() else f"# Measured results\n\n{TABLE_BEGIN}\n{TABLE_END}\n"
    if TABLE_BEGIN not in text:
        text = text.rstrip() + f"\n\n{TABLE_BEGIN}\n{TABLE_END}\n"
    before, rest = text.split(TABLE_BEGIN, 1)
    table, after = rest.split(TABLE_END, 1)
    rows = {line.split("|")[1].strip(): line for line in table.splitlines()
            if line.startswith("| ") and not line.startswith("| entry ")}
    rows.update({result.name: result_row(result) for result in results})
    body = "\n".join(rows[name] for name in sorted(rows))
    path.write_text(f"{before}{TABLE_BEGIN}\n{header}\n{body}\n{TABLE_END}{after}")


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cvcourse.bench", description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="entries to run (default: all)")
    parser.add_argument("--profile", help=f"one of {', '.join(config.PROFILES)} (default: $CVCOURSE_PROFILE)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument("--list", action="store_true", help="list the entries and their targets")
    parser.add_argument("--results", type=Path, help="also write the figures into this markdown file")
    args = parser.parse_args(argv)
    known = entries()
    try:
        profile = config.resolve_profile(args.profile)
        unknown = [name for name in args.names if name not in known]
        if unknown:
            raise KeyError(f"Unknown bench entry {', '.join(unknown)}. Known entries: {', '.join(known)}.")
    except (KeyError, ValueError) as error:
        parser.error(str(error).strip('"'))
    if args.list:
        for entry in known.values():
            target = entry.recipe.load(profile, device="cpu").targets.get(entry.target) if entry.target else None
            print(f"{entry.name:<28} {entry.metric} ({f'{entry.target} {target}' if target else 'no target'} "
                  f"in the {profile} profile)")
        return 0
    results = []
    for name in args.names or list(known):
        result = run_entry(name, args.profile)
        results.append(result)
        if args.json:
            print(json.dumps({key: value for key, value in asdict(result).items()}), flush=True)
        else:
            verdict = "passed" if result.passed else "MISSED"
            print(f"{result.name}: {result.metric} = {result.value:.4g} (target {result.target or 'none: baseline'}) "
                  f"{verdict} in {result.seconds:.1f} s [{result.profile}, {result.device}]", flush=True)
        if args.results:
            write_results([result], args.results)
    return 0 if all(result.passed for result in results) else 1


if __name__ == "__main__":
    sys.exit(main())
