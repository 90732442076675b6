r"""Emergence-law fit (Snell et al. 2024) from a CSV of (loss, data, accuracy) points.

Run:

  python -m experiments.fit_scaling --config experiments/configs/scaling/emergence.py \
      --workdir /tmp/fit_emergence

Snell et al. released no data, so with `csv=""` (default) the points are drawn from the law
itself: E(D) = 2.0 + 0.02 ((log D)^1.5 - (log 10)^1.5), A = 0.6, chance B = 0.25, noise 0.02,
16 checkpoints with L in [2.05, 3.2] (all pre-emergence at D0 = 10) x D in {1e2..1e5}.
Expected runtime on 2 CPU cores: 119 s measured. Expected result (measured): E(D0) MLE 2.008,
5-95% posterior band [1.864, 2.065] and bootstrap band [1.853, 2.051], both containing the
truth 2.0; determined = true. The `far` preset gives determined = false. PNG: emergence.png.
"""

import ml_collections


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Preset `arg` in {None/"default", "far" (only far-from-emergence checkpoints)}."""
  c = ml_collections.ConfigDict()
  c.kind = "emergence"  # which pipeline experiments.fit_scaling runs
  c.csv = ""  # columns loss,data,accuracy; "" = synthetic points from the law
  c.synthetic_loss_low = 2.05  # synthetic checkpoints: lowest pretraining loss
  c.synthetic_loss_high = 3.2  # synthetic checkpoints: highest pretraining loss
  c.form = "log_power"  # "log_power" (paper) or "power" (ablation)
  c.d0 = 10.0  # low-data limit D0 of the few-shot prediction E(D0)
  c.chance = -1.0  # fixed chance accuracy; < 0 fits it
  c.num_bootstrap = 200  # point resamples
  c.num_chains = 16  # NUTS chains (blackjax: pip install -e .[bayes])
  c.num_mcmc = 3000  # steps per chain (first half discarded)
  c.seed = 0  # bootstrap / MCMC / synthetic-noise key
  if arg == "far":
    c.synthetic_loss_low = 2.8
    c.synthetic_loss_high = 3.6
  elif arg not in (None, "", "default"):
    raise ValueError(f"unknown preset {arg!r}")
  return c
