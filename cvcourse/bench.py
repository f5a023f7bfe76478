"""``python -m cvcourse.bench``: every chapter's headline experiment, measured against its target.

Each entry is a function registered with :func:`register`; it receives the resolved configuration of
its own settings block in ``cvcourse.config.SETTINGS`` and returns an :class:`Outcome`. The runner
times it, compares the value with the target, and prints one line (or one JSON object) per entry::

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
import operator
import os
import platform
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from cvcourse import config
from cvcourse.device import median_seconds
from cvcourse.models.classifier import SmallCNN

# Modules whose import registers entries; each chapter adds its own module here.
ENTRY_MODULES = ("cvcourse.experiments.core", "cvcourse.experiments.segmentation", "cvcourse.experiments.detection",
                 "cvcourse.experiments.generative", "cvcourse.experiments.diffusion")
REFERENCE_BATCH, REFERENCE_REPEATS = 64, 10  # the speed figure: 10 training steps of SmallCNN on 64 glyph-sized images
COMPARISONS = {"<=": operator.le, ">=": operator.ge, "<": operator.lt, ">": operator.gt}
TABLE_BEGIN, TABLE_END = "<!-- bench:begin -->", "<!-- bench:end -->"


@dataclass
class Outcome:
    """What an experiment measured: its headline ``value``, extra pass/fail ``checks``, and ``details``."""

    value: float
    checks: dict[str, bool] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class Entry:
    name: str
    metric: str
    target: str | None  # None: a baseline, reported without a target
    run: Callable[[config.Config], Outcome]
    settings: str  # the block of cvcourse.config.SETTINGS the entry reads


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


REGISTRY: dict[str, Entry] = {}


def register(name: str, *, metric: str, target: str | None, settings: str | None = None) -> Callable:
    """Register ``fn(cfg) -> Outcome`` as bench entry ``name``; ``target`` reads like ``">= 0.95"``.

    ``target=None`` registers a baseline: its value is reported and only its checks decide ``passed``.
    ``cfg`` holds the settings of ``settings`` (a chapter, so its notebook and its bench entry run the
    same experiment), by default the entry's own block ``name``.
    """
    if target is not None:
        parse_target(target)

    def decorate(fn: Callable[[config.Config], Outcome]) -> Callable[[config.Config], Outcome]:
        if name in REGISTRY:
            raise ValueError(f"Bench entry {name!r} is registered twice.")
        REGISTRY[name] = Entry(name, metric, target, fn, settings or name)
        return fn

    return decorate


def parse_target(target: str) -> tuple[Callable[[float, float], bool], float]:
    match = re.fullmatch(r"\s*(<=|>=|<|>)\s*([-+0-9.eE]+)\s*", target)
    if not match:
        raise ValueError(f"A target reads like '>= 0.95' or '<= 1.05', got {target!r}.")
    return COMPARISONS[match[1]], float(match[2])


def entries() -> dict[str, Entry]:
    """Every registered entry (importing the chapters' experiment modules on first use)."""
    for module in ENTRY_MODULES:
        importlib.import_module(module)
    return REGISTRY


def run_entry(name: str, profile: str | None = None) -> Result:
    """Run one entry in ``profile`` and judge it against its target."""
    known = entries()
    if name not in known:
        raise KeyError(f"Unknown bench entry {name!r}. Known entries: {', '.join(known)} (see --list).")
    entry = known[name]
    cfg = config.load(entry.settings, profile)
    reference = reference_step_seconds(cfg.device)
    started = time.perf_counter()
    outcome = entry.run(cfg)
    seconds = time.perf_counter() - started
    meets_target = True
    if entry.target is not None:
        compare, threshold = parse_target(entry.target)
        meets_target = bool(compare(outcome.value, threshold))
    passed = meets_target and all(outcome.checks.values())
    details = {**outcome.details, **{f"check:{key}": ok for key, ok in outcome.checks.items()}}
    return Result(name, entry.metric, float(outcome.value), entry.target, round(seconds, 2), cfg.profile,
                  str(cfg.device), passed, details, round(reference, 4))


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
    if args.list:
        for entry in known.values():
            print(f"{entry.name:<28} {entry.metric} {entry.target or '(baseline)'}")
        return 0
    try:
        config.resolve_profile(args.profile)
        unknown = [name for name in args.names if name not in known]
        if unknown:
            raise KeyError(f"Unknown bench entry {', '.join(unknown)}. Known entries: {', '.join(known)}.")
    except (KeyError, ValueError) as error:
        parser.error(str(error).strip('"'))
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
    # Run the imported module's main, not this __main__ copy: the experiment modules register their
    # entries in cvcourse.bench.REGISTRY, which __main__ would not see.
    from cvcourse import bench

    sys.exit(bench.main())
