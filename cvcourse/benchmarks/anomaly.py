"""Chapter 09's headline experiments: anomaly detection on the inspection set, every method on the same test split.

- ``anom.partial_diffusion``: AnoDDPM-style partial diffusion at the chosen t_lambda: its weakest image AUROC (and
  pixel AUROC) over the regular-texture and object categories; the stochastic texture, the t_lambda sweep and the
  jump with coarse (pyramid) noise instead of Gaussian noise in the details;
- ``anom.baselines``: the autoencoder and the feature memory on the same split, reported, with the comparisons the
  chapter concludes (``CLAIMS``) checked per category in the profiles they were measured in (``CLAIMS_CHECKED``).

Both retrain their models (``rebuild=True``) so that the training time is measured, and leave them in the cache.
"""

from __future__ import annotations

from cvcourse.benchmarks import Entry, Outcome
from cvcourse.config import Config
from cvcourse.recipes import ch09_anomaly_detection as ch09

FIGURES = ("image_auroc", "pixel_auroc", "pro", "seconds_per_image")


def _figures(results, methods) -> dict[str, float]:
    return {f"{name} {method} {figure}": results[name][method][figure]
            for name in results for method in methods for figure in FIGURES}


def partial_diffusion(cfg: Config) -> Outcome:
    ddpm, info = ch09.trained_ddpm(cfg, rebuild=True)
    results = ch09.run_methods(cfg, None, ddpm, methods=("partial_diffusion",))
    floors = ch09.headline(cfg, results)
    sweep = ch09.t_lambda_sweep(cfg, ddpm)
    details = {**_figures(results, ["partial_diffusion"]), "t_lambda": cfg.t_lambda, "train_s": info["seconds"],
               "steps": info["steps"]}
    details.update({f"{name} t={t} {figure}": metrics[figure] for name, by_t in sweep.items()
                    for t, metrics in by_t.items() for figure in ("image_auroc", "pixel_auroc")})
    details.update({f"{name} noise={noise} {figure}": metrics[figure]
                    for name, by_noise in ch09.noise_comparison(cfg, ddpm, sweep).items()
                    for noise, metrics in by_noise.items() for figure in ("image_auroc", "pixel_auroc")})
    return Outcome(floors["partial_image_auroc"], measured={"partial_pixel_auroc": floors["partial_pixel_auroc"]},
                   details=details)


def baselines(cfg: Config) -> Outcome:
    autoencoder, info = ch09.trained_autoencoder(cfg, rebuild=True)
    ddpm, _ = ch09.trained_ddpm(cfg)
    results = ch09.run_methods(cfg, autoencoder, ddpm)
    autoencoder_auroc = min(results[name]["autoencoder"]["image_auroc"] for name in results)
    claims = ch09.claims_hold(cfg, results)
    checked = cfg.profile in ch09.CLAIMS_CHECKED  # elsewhere the claims are reported until measured there
    details = {**_figures(results, ["autoencoder", "feature_memory"]), "autoencoder_train_s": info["seconds"],
               "features": cfg.features}
    if not checked:
        details.update({f"claim {claim}": holds for claim, holds in claims.items()})
    return Outcome(autoencoder_auroc, checks=claims if checked else {}, details=details)


ENTRIES = (
    Entry("anom.partial_diffusion", "partial diffusion image AUROC, weakest of the regular texture and the object",
          ch09, "partial_image_auroc", partial_diffusion),
    Entry("anom.baselines", "autoencoder image AUROC, weakest category (the comparisons are checked)", ch09, None,
          baselines),
)
