"""Chapter 11's headline experiment: generated image-mask pairs for a segmenter with few labels.

- ``gen2seg.cells_few_labels``: the faithfulness IoU of the mask-conditioned model's pairs (the judge's masks of the
  generated images against the masks they were generated for, mean over K) as the headline; the few-label table
  (test Dice, mean and spread over the seeds, per regime and K) and each K's best regime in the details; and the
  ranking the chapter states, checked: generated pairs clearly beat the real ones alone at the fewest labels, and
  their gain shrinks as real labels grow (the published pattern).

The models, pairs and scores come from the cache (or are trained first), as in the chapter.
"""

from __future__ import annotations

from cvcourse.benchmarks import Entry, Outcome
from cvcourse.config import Config
from cvcourse.recipes import ch11_generated_training_data as ch11
from cvcourse.statistics import clearly_different, mean_and_spread


def cells_few_labels(cfg: Config) -> Outcome:
    faithful = {k: ch11.faithfulness(cfg, **ch11.mask_pairs(cfg, k)) for k in cfg.label_counts}
    table = ch11.few_label_table(cfg)
    summary = {(regime, k): mean_and_spread(scores) for regime, row in table.items() for k, scores in row.items()}
    details = {f"K={k} {regime} dice": f"{mean:.3f} ± {spread:.3f}" for (regime, k), (mean, spread) in summary.items()}
    best = {k: max(ch11.REGIMES, key=lambda regime: summary[regime, k][0]) for k in cfg.label_counts}
    fewest, most = min(cfg.label_counts), max(cfg.label_counts)
    gain = {k: summary["generated", k][0] - summary["real", k][0] for k in (fewest, most)}
    checks = {f"generated pairs clearly beat the real ones alone at K={fewest}":
              gain[fewest] > 0 and clearly_different(table["generated"][fewest], table["real"][fewest]),
              f"the gain is smaller at K={most} than at K={fewest}": gain[most] < gain[fewest]}
    return Outcome(sum(faithful.values()) / len(faithful), checks=checks,
                   details={"seeds": len(cfg.seeds), **{f"K={k} faithfulness": v for k, v in faithful.items()},
                            **{f"K={k} best": regime for k, regime in best.items()}, **details})


ENTRIES = (
    Entry("gen2seg.cells_few_labels", "faithfulness IoU of mask-conditioned generated cells (mean over K)", ch11,
          "faithfulness_iou", cells_few_labels),
)
