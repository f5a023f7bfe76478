"""Chapters 11 and 12's headline experiment: generated image-mask pairs for a segmenter with few labels.

- ``gen2seg.cells_few_labels`` (chapter 11) and ``gen2seg.streets_few_labels`` (chapter 12): the faithfulness of the
  mask-conditioned model's pairs (the judge's masks of the generated images against the masks they were generated
  for, mean over K: IoU for the cells, mIoU for the scenes) as the headline; the few-label table (test score, mean
  and spread over the seeds, per regime and K) and each K's best regime in the details; and the ranking each
  chapter states, checked.

The models, pairs and scores come from the cache (or are trained first), as in the chapters.
"""

from __future__ import annotations

from types import ModuleType

from cvcourse.benchmarks import Entry, Outcome
from cvcourse.config import Config
from cvcourse.recipes import ch11_generated_training_data as ch11
from cvcourse.recipes import ch12_generated_street_scenes as ch12
from cvcourse.statistics import clearly_different, mean_and_spread


def few_labels(cfg: Config, recipe: ModuleType, checks) -> Outcome:
    """The headline faithfulness and the table of ``recipe``'s chapter, judged by ``checks(cfg, table, gain)``
    (``gain[k]``: the generated regime's mean score minus the real one's)."""
    faithful = {k: recipe.faithfulness(cfg, **recipe.mask_pairs(cfg, k)) for k in cfg.label_counts}
    table = recipe.few_label_table(cfg)
    summary = {(regime, k): mean_and_spread(scores) for regime, row in table.items() for k, scores in row.items()}
    details = {f"K={k} {regime}": f"{mean:.3f} ± {spread:.3f}" for (regime, k), (mean, spread) in summary.items()}
    best = {k: max(cfg.regimes, key=lambda regime: summary[regime, k][0]) for k in cfg.label_counts}
    gain = {k: summary["generated", k][0] - summary["real", k][0] for k in cfg.label_counts}
    return Outcome(sum(faithful.values()) / len(faithful), checks=checks(cfg, table, gain),
                   details={"seeds": len(cfg.seeds), **{f"K={k} faithfulness": v for k, v in faithful.items()},
                            **{f"K={k} best": regime for k, regime in best.items()}, **details})


def cells_ranking(cfg: Config, table: dict, gain: dict) -> dict[str, bool]:
    """Chapter 11: generated pairs clearly beat the real ones alone at the fewest labels, and their gain shrinks as
    real labels grow (the published pattern)."""
    fewest, most = min(cfg.label_counts), max(cfg.label_counts)
    return {f"generated pairs clearly beat the real ones alone at K={fewest}":
            gain[fewest] > 0 and clearly_different(table["generated"][fewest], table["real"][fewest]),
            f"the gain is smaller at K={most} than at K={fewest}": gain[most] < gain[fewest]}


def cells_few_labels(cfg: Config) -> Outcome:
    return few_labels(cfg, ch11, cells_ranking)


def streets_ranking(cfg: Config, table: dict, gain: dict) -> dict[str, bool]:
    """Chapter 12: on the scenes the generated pairs never clearly beat the real ones alone, the real ones alone are
    the best regime at the most labels, and the generated pairs' gain (a loss) is smaller there than at the fewest."""
    fewest, most = min(cfg.label_counts), max(cfg.label_counts)
    real_is_best = all(mean_and_spread(table["real"][most])[0] >= mean_and_spread(row[most])[0]
                       for row in table.values())
    return {"generated scenes clearly beat the real ones alone at no K":
            not any(gain[k] > 0 and clearly_different(table["generated"][k], table["real"][k])
                    for k in cfg.label_counts),
            f"the real scenes alone are the best regime at K={most}": real_is_best,
            f"the gain is smaller at K={most} than at K={fewest}": gain[most] < gain[fewest]}


def streets_few_labels(cfg: Config) -> Outcome:
    return few_labels(cfg, ch12, streets_ranking)


ENTRIES = (
    Entry("gen2seg.cells_few_labels", "faithfulness IoU of mask-conditioned generated cells (mean over K)", ch11,
          "faithfulness_iou", cells_few_labels),
    Entry("gen2seg.streets_few_labels", "faithfulness mIoU of mask-conditioned generated street scenes (mean over K)",
          ch12, "faithfulness_miou", streets_few_labels),
)
